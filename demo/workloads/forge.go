package workloads

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/meshos"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Rollout forge model: actors run episodes of a policy forked from the
// trainer; the mean reward climbs with experience towards a ceiling that
// differs per fork (each fork explores with its own entropy bonus).
const (
	forgeActors          = 16
	forgeEpisodesPerSec  = 2.5
	forgeMaxEpisodeSteps = 1000
	forgeRewardStart     = 80.0
	forgeRewardGain      = 120.0
	forgeRewardTau       = 3000.0 // episodes
	forgeRewardSD        = 30.0
	forgeReplayCapacityK = 100
	forgeSummaryTicks    = 8
	forgeMaxEpisodesTick = 200
	// forgeCollapsesPerHour is the rate of bad policy updates that make the
	// reward collapse for forgeCollapseTicks before the fork recovers.
	forgeCollapsesPerHour = 0.5
	forgeCollapseTicks    = 20
	forgeCollapseFactor   = 0.35
)

type forgeState struct {
	PolicyStep uint64  `json:"policy_step"`
	Episodes   uint64  `json:"episodes"`
	EnvSteps   uint64  `json:"env_steps"`
	RewardEMA  float64 `json:"reward_ema"`
	Best       float64 `json:"best"`
	Truncated  uint64  `json:"truncated"`
	Carry      float64 `json:"carry"`
	// Rollouts are the rollout blobs kept on the dataforts, oldest first
	// (hex hashes); Batches counts the batches stored; SinceRollout and
	// SinceRefresh are simulated seconds since the last rollout batch and
	// the last policy refresh (a checkpoint read).
	Rollouts     []string `json:"rollouts,omitempty"`
	Batches      uint64   `json:"batches,omitempty"`
	SinceRollout float64  `json:"since_rollout,omitempty"`
	SinceRefresh float64  `json:"since_refresh,omitempty"`
}

type forge struct {
	fork     int
	forkAt   uint64 // the trainer-chain seq forked from
	entropy  float64
	s        forgeState
	collapse int // ticks left of a reward collapse
	// blobBusy: a blob job is on its way; policy is the checkpoint blob
	// the actors roll out, policyName its name, policyAge the simulated
	// seconds since it was taken.
	blobBusy   bool
	policy     api.BlobHash
	policyName string
	policyAge  float64
}

func newForge(info meshos.DaemonInfo, _ *rand.Rand) kernel {
	return &forge{
		fork:    info.Lineage.Index,
		forkAt:  info.Lineage.ForkAt,
		entropy: 0.01 * float64(1+info.Lineage.Index),
		s:       forgeState{PolicyStep: info.Lineage.ForkAt, RewardEMA: forgeRewardStart, Best: forgeRewardStart},
	}
}

func (k *forge) profile() satProfile {
	return satProfile{Base: 0.5, Amplitude: 0.12, Period: 6 * time.Minute, Noise: 0.05, BurstsPerHour: 3, BurstSize: 0.3}
}

func (k *forge) start(e *env) {
	e.logf(api.LevelInfo, "fork f[%d]@%d: %d actors rolling out policy from trainer step %d, entropy bonus %.2f",
		k.fork, k.forkAt, forgeActors, k.s.PolicyStep, k.entropy)
}

func (k *forge) meanReward() float64 {
	ceiling := forgeRewardGain * (1 - 2*math.Abs(k.entropy-0.02)) // the middle setting does best
	return forgeRewardStart + ceiling*(1-math.Exp(-float64(k.s.Episodes)/forgeRewardTau))
}

func (k *forge) tick(e *env) {
	if e.draining {
		if e.chance(0.3) {
			e.logf(api.LevelDebug, "drained: %d actors parked, replay buffer flushed at episode %d", forgeActors, k.s.Episodes)
		}
		return
	}
	if k.collapse > 0 {
		k.collapse--
		if k.collapse == 0 {
			e.logf(api.LevelInfo, "reward recovered: policy rolled back to last good update, ema %.1f", k.s.RewardEMA)
		}
	} else if e.perHour(forgeCollapsesPerHour) {
		k.collapse = forgeCollapseTicks
		e.logf(api.LevelError, "reward collapse after policy update: kl %.2f over 0.05 limit; rolling back", 0.08+0.2*e.rng.Float64())
	}
	mean := k.meanReward()
	if k.collapse > 0 {
		mean *= forgeCollapseFactor
	}
	k.s.Carry += forgeEpisodesPerSec * e.dt * e.throttle * (0.4 + 0.6*e.demand)
	n := min(uint64(k.s.Carry), forgeMaxEpisodesTick)
	k.s.Carry -= float64(uint64(k.s.Carry))
	first := k.s.Episodes + 1
	var sum float64
	var steps uint64
	newBest := false
	for range n {
		k.s.Episodes++
		r := mean + forgeRewardSD*e.rng.NormFloat64()
		l := uint64(300 + e.rng.IntN(700))
		if e.rng.Float64() < 0.02 {
			l = forgeMaxEpisodeSteps
			k.s.Truncated++
			e.logf(api.LevelWarn, "episode %d truncated at %d steps (time limit), reward %.1f", k.s.Episodes, l, r)
		}
		steps += l
		sum += r
		k.s.RewardEMA += (r - k.s.RewardEMA) * 0.05
		if r > k.s.Best {
			k.s.Best, newBest = r, true
		}
	}
	k.s.EnvSteps += steps
	if n > 0 && e.chance(0.35) {
		if e.rng.IntN(2) == 0 {
			e.logf(api.LevelTrace, "actor %d: env reset seed 0x%04x", e.rng.IntN(forgeActors), e.rng.IntN(1<<16))
		} else {
			e.logf(api.LevelTrace, "actor %d: episode %d step %d reward-to-go %.1f", e.rng.IntN(forgeActors), k.s.Episodes, e.rng.IntN(forgeMaxEpisodeSteps), 200*e.rng.Float64())
		}
	}
	if e.chance(0.2) {
		fill := min(float64(k.s.EnvSteps)/1000, forgeReplayCapacityK)
		e.logf(api.LevelDebug, "replay buffer %.0fk/%dk transitions, sample staleness %.1f policy steps", fill, forgeReplayCapacityK, 1+3*e.sat)
	}
	if n > 0 && (newBest || e.every(forgeSummaryTicks)) {
		e.logf(api.LevelInfo, "episodes %d-%d: mean reward %.1f (ema %.1f, best %.1f), mean length %d",
			first, k.s.Episodes, sum/float64(n), k.s.RewardEMA, k.s.Best, steps/n)
	}
	if e.chance(0.004) {
		e.logf(api.LevelError, "env worker %d exited with status 137, respawning", e.rng.IntN(forgeActors))
	}
	k.blobWork(e)
}

// blobWork refreshes the policy from the newest checkpoint blob every
// PolicyRefreshEvery and stores a rollout batch derived from it every
// RolloutBlobEvery, keeping the newest RolloutBlobsKept.
func (k *forge) blobWork(e *env) {
	k.s.SinceRefresh += e.dt
	k.s.SinceRollout += e.dt
	if k.blobBusy {
		return
	}
	k.policyAge += e.dt
	var job blobJob
	switch {
	case k.s.SinceRefresh >= PolicyRefreshEvery.Seconds() && (k.policy.IsZero() || k.policyAge >= PolicyUpdateEvery.Seconds()):
		// A policy update: the newest checkpoint.
		job = readCheckpointJob(func(e *env, info api.BlobInfo, err error) {
			k.blobBusy = false
			switch {
			case errors.Is(err, errNoCheckpoint):
				e.logf(api.LevelDebug, "policy update: %v", err)
			case err != nil:
				e.logf(api.LevelWarn, "policy update from the dataforts failed: %v", err)
			default:
				if info.Hash != k.policy {
					e.logf(api.LevelInfo, "policy updated to checkpoint blob %s (%s, %d chunks verified)", info.Hash.Short(), info.Name, info.Chunks)
				}
				k.policy, k.policyName, k.policyAge = info.Hash, info.Name, 0
			}
		})
		k.s.SinceRefresh = 0
	case k.s.SinceRefresh >= PolicyRefreshEvery.Seconds():
		// The actors load the policy's weights again.
		policy := k.policy
		job = readBlobJob(policy, func(e *env, info api.BlobInfo, err error) {
			k.blobBusy = false
			if err != nil {
				// Gone (the trainer's retention) or unreachable: take the
				// newest at the next refresh.
				e.logf(api.LevelWarn, "actors: loading policy %s failed (%v); updating to the newest checkpoint", policy.Short(), err)
				k.policy = api.BlobHash{}
			}
		})
		k.s.SinceRefresh = 0
	case k.s.SinceRollout >= RolloutBlobEvery.Seconds() && !k.policy.IsZero():
		batch := k.s.Batches + 1
		name := fmt.Sprintf("forge-%d/rollouts-%05d", k.fork, batch)
		policy, policyName := k.policy, k.policyName
		job = putJob(blobBytes(uint64(k.fork)<<48|batch, RolloutBlobBytes), api.BlobPutOptions{Replicas: BlobReplicas, Name: name, Parent: policy},
			func(e *env, info api.BlobInfo, err error) {
				k.blobBusy = false
				if err != nil {
					e.logf(api.LevelWarn, "rollout batch %d: storing %s failed: %v", batch, name, err)
					return
				}
				k.s.Batches = batch
				var drop string
				k.s.Rollouts, drop = keepNewest(k.s.Rollouts, info.Hash.String(), RolloutBlobsKept)
				e.logf(api.LevelInfo, "rollout batch %d stored as blob %s (%s), derived from %s", batch, info.Hash.Short(), name, policyName)
				if drop != "" {
					e.blob(removeBlobJob(drop, "rollout batch"))
				}
			})
		k.s.SinceRollout = 0
	default:
		return
	}
	k.blobBusy = e.blob(job)
}

func (k *forge) health() (snapshot.DaemonHealthState, string) {
	if k.collapse > 0 || k.s.RewardEMA < 0.7*k.meanReward() {
		return snapshot.DaemonDegraded, fmt.Sprintf("reward ema %.1f collapsed below expected %.1f", k.s.RewardEMA, k.meanReward())
	}
	return snapshot.DaemonHealthy, ""
}

func (k *forge) overload(sat float64) string {
	return fmt.Sprintf("%d/%d actors busy, rollout staleness %.1f policy steps", forgeActors, forgeActors, 1+3*sat)
}

func (k *forge) drain(e *env, on bool, grace time.Duration) {
	if on {
		e.logf(api.LevelInfo, "drain (grace %s): finishing %d in-flight episodes, parking actors", grace, forgeActors)
		return
	}
	e.logf(api.LevelInfo, "drain over: %d actors rolling out again", forgeActors)
}

func (k *forge) pressure(e *env, level float64) {
	if level > 0 {
		e.logf(api.LevelWarn, "backpressure %.2f: pausing %d of %d actors", level, int(float64(forgeActors)*backpressureSlowdown*level), forgeActors)
		return
	}
	e.logf(api.LevelInfo, "backpressure off: all %d actors running", forgeActors)
}

func (k *forge) shutdown(e *env, grace time.Duration) {
	e.logf(api.LevelInfo, "shutdown (grace %s): %d episodes, %d env steps, best reward %.1f", grace, k.s.Episodes, k.s.EnvSteps, k.s.Best)
}

func (k *forge) fatal(e *env) string {
	return pick(e.rng, []string{
		fmt.Sprintf("env pool deadlock: %d/%d actors stuck for more than 30s", forgeActors, forgeActors),
		fmt.Sprintf("policy checkpoint @%d failed checksum verification", k.s.PolicyStep),
		"shared-memory ring buffer corrupted (bad magic 0x0000)",
	})
}

func (k *forge) state() any { return &k.s }

// restore accepts a forge state (a migrated fork) or a trainer state: a fork
// is born from the parent's checkpoint, so it starts from that step.
func (k *forge) restore(kind string, raw json.RawMessage) error {
	switch kind {
	case KindForge:
		s, err := restoreAs(raw, func(s *forgeState) error {
			if !finite(s.RewardEMA, s.Best, s.Carry, s.SinceRollout, s.SinceRefresh) || !in01(s.Carry) ||
				s.SinceRollout < 0 || s.SinceRefresh < 0 {
				return errors.New("reward, carry or blob timers out of range")
			}
			return validKept(s.Rollouts, RolloutBlobsKept)
		})
		if err != nil {
			return err
		}
		k.s = *s
	case KindTrainer:
		t, err := restoreAs(raw, validTrainerState)
		if err != nil {
			return err
		}
		k.s = forgeState{PolicyStep: t.LastCheckpoint, RewardEMA: forgeRewardStart, Best: forgeRewardStart}
	default:
		return fmt.Errorf("%w: %s", errWrongKind, kind)
	}
	return nil
}
