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

// Training run model: loss follows a decaying power-law-ish curve towards a
// floor, with multiplicative noise and rare spikes; the learning rate warms
// up then follows a cosine schedule.
const (
	trainerStepsPerSec     = 4.0
	trainerMaxStepsPerTick = 64
	CheckpointEverySteps   = 500
	trainerTotalSteps      = 200_000
	trainerWarmupSteps     = 2_000
	trainerPeakLR          = 3e-4
	trainerLossStart       = 10.8
	trainerLossFloor       = 1.9
	trainerLossTauSteps    = 6_000.0
	trainerTokensPerStep   = 32 * 2048 // global batch × sequence length
	trainerStepsPerEpoch   = 25_000
	trainerCheckpointGiB   = 2.6
	trainerSummaryTicks    = 20
	trainerSpikeTicks      = 6 // ticks a loss spike keeps the trainer degraded
)

type trainerState struct {
	Step           uint64  `json:"step"`
	Loss           float64 `json:"loss"`
	LossEMA        float64 `json:"loss_ema"`
	BestLoss       float64 `json:"best_loss"`
	Tokens         uint64  `json:"tokens"`
	LastCheckpoint uint64  `json:"last_checkpoint"`
	Checkpoints    uint64  `json:"checkpoints"`
	Carry          float64 `json:"carry"`
	// CkptBlobs are the checkpoint blobs kept on the dataforts, oldest
	// first (hex hashes; the last is the newest, the next one's parent);
	// SinceBlob the simulated seconds since the last one was stored.
	CkptBlobs []string `json:"ckpt_blobs,omitempty"`
	SinceBlob float64  `json:"since_blob,omitempty"`
}

type trainer struct {
	active bool
	term   uint64
	s      trainerState
	spike  int // ticks left degraded after a loss spike
	// storing: a checkpoint blob is on its way to the dataforts.
	storing bool
}

func newTrainer(info meshos.DaemonInfo, _ *rand.Rand) kernel {
	return &trainer{
		active: info.Lineage.Active,
		term:   info.Lineage.Term,
		s:      trainerState{Loss: trainerLossStart, LossEMA: trainerLossStart, BestLoss: trainerLossStart},
	}
}

func (k *trainer) syncedThrough() uint64 { return k.s.LastCheckpoint }

func (k *trainer) profile() satProfile {
	if !k.active {
		// A warm standby holds weights in memory and prefetches data only.
		return satProfile{Base: 0.08, Amplitude: 0.03, Period: 5 * time.Minute, Noise: 0.02, BurstsPerHour: 1, BurstSize: 0.15}
	}
	return satProfile{Base: 0.62, Amplitude: 0.08, Period: 11 * time.Minute, Noise: 0.04, BurstsPerHour: 3, BurstSize: 0.3}
}

func lrAt(step uint64) float64 {
	s := float64(step)
	warm := math.Min(1, s/trainerWarmupSteps)
	progress := math.Min(1, s/trainerTotalSteps)
	return trainerPeakLR * warm * 0.5 * (1 + math.Cos(math.Pi*progress))
}

func (k *trainer) start(e *env) {
	if !k.active {
		e.logf(api.LevelInfo, "warm standby (term %d): holding checkpoint step %d, ready for promotion", k.term, k.s.LastCheckpoint)
		return
	}
	if k.s.Step == 0 {
		e.logf(api.LevelInfo, "active trainer (term %d): starting run at step 0, %d steps planned, checkpoint every %d",
			k.term, trainerTotalSteps, CheckpointEverySteps)
	} else {
		e.logf(api.LevelInfo, "active trainer (term %d): resuming at step %d from checkpoint %d, loss %.4f",
			k.term, k.s.Step, k.s.LastCheckpoint, k.s.Loss)
	}
	e.logf(api.LevelDebug, "optimizer adamw β=(0.9, 0.95) wd 0.1, peak lr %.1e, warmup %d steps", trainerPeakLR, trainerWarmupSteps)
}

func (k *trainer) tick(e *env) {
	if k.spike > 0 {
		k.spike--
	}
	if !k.active {
		k.warmTick(e)
		return
	}
	if e.draining {
		if e.chance(0.3) {
			e.logf(api.LevelDebug, "drained: paused at step %d, checkpoint %d durable", k.s.Step, k.s.LastCheckpoint)
		}
		return
	}
	k.s.Carry += trainerStepsPerSec * e.dt * e.throttle * (0.7 + 0.3*(1-e.sat))
	steps := min(uint64(k.s.Carry), trainerMaxStepsPerTick)
	k.s.Carry -= float64(uint64(k.s.Carry))
	var gradNorm float64
	for range steps {
		k.s.Step++
		k.s.Tokens += trainerTokensPerStep
		clean := trainerLossFloor + (trainerLossStart-trainerLossFloor)*math.Exp(-float64(k.s.Step)/trainerLossTauSteps)
		k.s.Loss = clean * (1 + 0.015*e.rng.NormFloat64())
		gradNorm = 0.4 + 0.3*math.Abs(e.rng.NormFloat64())
		if e.rng.Float64() < 0.0015 {
			k.s.Loss = clean * (1.3 + 0.5*e.rng.Float64())
			gradNorm = 5 + 15*e.rng.Float64()
			k.spike = trainerSpikeTicks
			e.logf(api.LevelWarn, "loss spike %.3f at step %d (ema %.3f), grad norm %.1f clipped to 1.0; skipping batch",
				k.s.Loss, k.s.Step, k.s.LossEMA, gradNorm)
		}
		k.s.LossEMA += (k.s.Loss - k.s.LossEMA) * 0.02
		k.s.BestLoss = math.Min(k.s.BestLoss, k.s.LossEMA)
		if k.s.Step%CheckpointEverySteps == 0 {
			k.s.LastCheckpoint = k.s.Step
			k.s.Checkpoints++
			e.logf(api.LevelInfo, "checkpoint step %d saved (%.1f GiB in %.1fs), synced_through=%d",
				k.s.Step, trainerCheckpointGiB, 2+3*e.rng.Float64()+4*e.sat, k.s.Step)
		}
	}
	k.checkpointBlob(e)
	if steps > 0 && e.chance(0.4) {
		e.logf(api.LevelTrace, "step %d loss %.4f lr %.2e grad-norm %.2f %.0fk tok/s",
			k.s.Step, k.s.Loss, lrAt(k.s.Step), gradNorm, float64(steps)*trainerTokensPerStep/math.Max(e.dt, 1e-3)/1000)
	}
	if e.chance(0.2) {
		if e.rng.IntN(2) == 0 {
			e.logf(api.LevelDebug, "dataloader: shard %d/%d, prefetch %d/8, host mem %.0f%%",
				(k.s.Step/400)%1024, 1024, 4+e.rng.IntN(5), 40+30*e.sat)
		} else {
			e.logf(api.LevelDebug, "all-reduce %d MiB in %.0f ms (%.1f GB/s)", 1400+e.rng.IntN(200), 80+200*e.sat, 18-8*e.sat)
		}
	}
	if e.every(trainerSummaryTicks) {
		e.logf(api.LevelInfo, "epoch %d %.1f%%: loss ema %.4f (best %.4f), lr %.2e, %.2fB tokens seen",
			k.s.Step/trainerStepsPerEpoch, 100*float64(k.s.Step%trainerStepsPerEpoch)/trainerStepsPerEpoch,
			k.s.LossEMA, k.s.BestLoss, lrAt(k.s.Step), float64(k.s.Tokens)/1e9)
	}
	if e.chance(0.003) {
		e.logf(api.LevelError, "checkpoint upload to datafort: connection reset by peer (attempt %d/5), retrying", 1+e.rng.IntN(3))
	}
}

// checkpointBlob stores the weights at the current step as a blob every
// CheckpointBlobEvery, derived from the previous checkpoint blob, and
// removes the ones past CheckpointBlobsKept.
func (k *trainer) checkpointBlob(e *env) {
	k.s.SinceBlob += e.dt
	if k.storing || k.s.SinceBlob < CheckpointBlobEvery.Seconds() {
		return
	}
	var parent api.BlobHash
	if n := len(k.s.CkptBlobs); n > 0 {
		parent, _ = parseBlobHash(k.s.CkptBlobs[n-1])
	}
	step := k.s.Step
	name := fmt.Sprintf("%s%06d", CheckpointBlobPrefix, step)
	job := putJob(blobBytes(step, CheckpointBlobBytes), api.BlobPutOptions{Replicas: BlobReplicas, Name: name, Parent: parent},
		func(e *env, info api.BlobInfo, err error) {
			k.storing = false
			if err != nil {
				e.logf(api.LevelWarn, "checkpoint step %d: storing %s on the dataforts failed: %v", step, name, err)
				return
			}
			var drop string
			k.s.CkptBlobs, drop = keepNewest(k.s.CkptBlobs, info.Hash.String(), CheckpointBlobsKept)
			e.logf(api.LevelInfo, "checkpoint step %d stored as blob %s (%s, %d replicas)", step, info.Hash.Short(), name, len(info.Holders))
			if drop != "" {
				e.blob(removeBlobJob(drop, "checkpoint"))
			}
		})
	if e.blob(job) {
		k.storing, k.s.SinceBlob = true, 0
	}
}

func (k *trainer) warmTick(e *env) {
	if e.chance(0.25) {
		if e.rng.IntN(2) == 0 {
			e.logf(api.LevelTrace, "prefetch shard %d/%d: %d MiB in %d ms",
				(k.s.LastCheckpoint/400+uint64(e.rng.IntN(64)))%1024, 1024, 96+e.rng.IntN(160), 40+e.rng.IntN(200))
		} else {
			e.logf(api.LevelTrace, "weights resident check: layer %d/%d crc %08x ok", e.rng.IntN(48), 48, e.rng.Uint32())
		}
	}
	if e.every(trainerSummaryTicks) {
		e.logf(api.LevelDebug, "warm standby (term %d): synced_through=%d, weights resident, %.1f%% host mem, %d pinned buffers",
			k.term, k.s.LastCheckpoint, 30+10*e.rng.Float64(), 4+e.rng.IntN(5))
	}
	if e.chance(0.002) {
		e.logf(api.LevelWarn, "checkpoint manifest for step %d not yet visible on datafort (%d ms), will retry",
			k.s.LastCheckpoint+CheckpointEverySteps, 500+e.rng.IntN(2500))
	}
	if e.chance(0.001) {
		e.logf(api.LevelError, "pinned host buffer allocation failed (%d MiB), falling back to pageable", 512+e.rng.IntN(512))
	}
}

func (k *trainer) health() (snapshot.DaemonHealthState, string) {
	if k.spike > 0 {
		return snapshot.DaemonDegraded, fmt.Sprintf("loss spike near step %d: batch skipped, watching for divergence", k.s.Step)
	}
	return snapshot.DaemonHealthy, ""
}

func (k *trainer) overload(sat float64) string {
	return fmt.Sprintf("step time %.0f ms, %.0f%% over budget", 250/(1-0.7*sat), 100*(1/(1-0.7*sat)-1))
}

func (k *trainer) drain(e *env, on bool, grace time.Duration) {
	switch {
	case on && k.active:
		e.logf(api.LevelInfo, "drain (grace %s): finishing step %d and writing checkpoint", grace, k.s.Step)
		// Work stops at a durable point, so whoever takes over loses nothing.
		k.s.LastCheckpoint = k.s.Step
		k.s.Checkpoints++
		e.logf(api.LevelInfo, "checkpoint step %d saved, synced_through=%d; training paused", k.s.Step, k.s.Step)
	case on:
		e.logf(api.LevelInfo, "drain (grace %s): warm standby releasing prefetch buffers", grace)
	case k.active:
		e.logf(api.LevelInfo, "drain over: resuming training at step %d", k.s.Step)
	default:
		e.logf(api.LevelInfo, "drain over: warm standby resuming prefetch")
	}
}

func (k *trainer) pressure(e *env, level float64) {
	if level > 0 {
		e.logf(api.LevelWarn, "backpressure %.2f: gradient accumulation %d → %d micro-batches, step rate down %.0f%%",
			level, 8, 8+int(16*level), 100*backpressureSlowdown*level)
		return
	}
	e.logf(api.LevelInfo, "backpressure off: gradient accumulation back to 8 micro-batches")
}

func (k *trainer) shutdown(e *env, grace time.Duration) {
	if k.active {
		e.logf(api.LevelInfo, "shutdown (grace %s): step %d, last checkpoint %d, loss ema %.4f", grace, k.s.Step, k.s.LastCheckpoint, k.s.LossEMA)
		return
	}
	e.logf(api.LevelInfo, "shutdown (grace %s): warm standby synced through %d", grace, k.s.LastCheckpoint)
}

func (k *trainer) fatal(e *env) string {
	return pick(e.rng, []string{
		"CUDA error: an illegal memory access was encountered",
		fmt.Sprintf("dataloader worker %d killed by signal 9 (OOM)", e.rng.IntN(8)),
		"NCCL error: unhandled system error (connection closed by peer)",
	})
}

func (k *trainer) state() any { return &k.s }

func validTrainerState(s *trainerState) error {
	if !finite(s.Loss, s.LossEMA, s.BestLoss, s.Carry) || s.Loss <= 0 || s.LossEMA <= 0 || s.BestLoss <= 0 || !in01(s.Carry) {
		return errors.New("loss or carry out of range")
	}
	if s.LastCheckpoint > s.Step {
		return fmt.Errorf("checkpoint %d is ahead of step %d", s.LastCheckpoint, s.Step)
	}
	if !finite(s.SinceBlob) || s.SinceBlob < 0 {
		return errors.New("since_blob out of range")
	}
	return validKept(s.CkptBlobs, CheckpointBlobsKept)
}

func (k *trainer) restore(kind string, raw json.RawMessage) error {
	if kind != KindTrainer {
		return fmt.Errorf("%w: %s", errWrongKind, kind)
	}
	s, err := restoreAs(raw, validTrainerState)
	if err != nil {
		return err
	}
	k.s = *s
	if !k.active {
		// A warm standby only has what was checkpointed: anything after the
		// last checkpoint is replayed by the active member, not by us.
		k.s.Step = k.s.LastCheckpoint
	}
	return nil
}
