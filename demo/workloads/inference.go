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

// Inference serving model.
const (
	inferencePeakRPS       = 160.0 // requests/s at demand 1
	inferenceTokensPerReq  = 190.0 // mean generated+prompt tokens per request
	inferenceMaxBatch      = 32
	inferenceSLOMs         = 300.0 // p99 batch latency objective
	inferenceBaseLatencyMs = 70.0
	inferenceSummaryTicks  = 10
	inferenceContextTokens = 8192
)

var inferenceModels = []string{"kestrel-7b-q4", "kestrel-13b-awq", "osprey-8x7b-fp8"}

// inferenceState is what survives a migration.
type inferenceState struct {
	Model    string  `json:"model"`
	Requests uint64  `json:"requests"`
	Shed     uint64  `json:"shed"`
	Tokens   uint64  `json:"tokens"`
	Batches  uint64  `json:"batches"`
	KVCache  float64 `json:"kv_cache"`
	// Carry holds the fractional request left over from the last tick, so
	// low rates still add up.
	Carry float64 `json:"carry"`
	// Window counts requests since the last summary line.
	WindowReq uint64  `json:"window_req"`
	WindowSec float64 `json:"window_sec"`
	P99Ms     float64 `json:"p99_ms"`
}

type inference struct {
	member int
	s      inferenceState
	slo    int // ticks left of an SLO warning cooldown
}

func newInference(info meshos.DaemonInfo, rng *rand.Rand) kernel {
	return &inference{member: info.Lineage.Index, s: inferenceState{Model: pick(rng, inferenceModels)}}
}

func (k *inference) profile() satProfile {
	return satProfile{Base: 0.45, Amplitude: 0.15, Period: 7 * time.Minute, Noise: 0.05, BurstsPerHour: 4, BurstSize: 0.35}
}

func (k *inference) start(e *env) {
	e.logf(api.LevelInfo, "replica m[%d] serving %s: max batch %d, context %d tokens, SLO p99 %.0f ms",
		k.member, k.s.Model, inferenceMaxBatch, inferenceContextTokens, inferenceSLOMs)
	e.logf(api.LevelDebug, "loaded weights for %s (%.1f GiB) and warmed %d CUDA graphs",
		k.s.Model, 3.8+e.rng.Float64()*4, 8+e.rng.IntN(9))
}

func (k *inference) latency(sat float64, r *rand.Rand) float64 {
	over := math.Max(0, sat-0.7)
	return inferenceBaseLatencyMs + 120*sat + 6000*over*over + r.NormFloat64()*6
}

func (k *inference) tick(e *env) {
	offered := inferencePeakRPS * e.demand * e.dt
	served := offered * e.throttle
	if e.draining {
		// New requests go to the other replicas; only the in-flight tail
		// finishes here.
		served = math.Min(served, float64(inferenceMaxBatch)*e.dt)
	}
	shed := offered - served
	k.s.Carry += served
	n := uint64(k.s.Carry)
	k.s.Carry -= float64(n)
	k.s.Requests += n
	k.s.Shed += uint64(math.Max(shed, 0))
	tok := uint64(float64(n) * inferenceTokensPerReq * (0.85 + 0.3*e.rng.Float64()))
	k.s.Tokens += tok
	batches := (n + inferenceMaxBatch - 1) / inferenceMaxBatch
	k.s.Batches += batches
	k.s.WindowReq += n
	k.s.WindowSec += e.dt
	k.s.P99Ms = math.Max(0, k.latency(e.sat, e.rng))
	// KV-cache occupancy follows load with a lag.
	k.s.KVCache = clamp01(k.s.KVCache + (0.35+0.65*e.sat-k.s.KVCache)*0.3 + e.rng.NormFloat64()*0.01)

	if e.chance(0.35) && n > 0 {
		seqs := 1 + e.rng.Uint64N(min(n, inferenceMaxBatch))
		e.logf(api.LevelTrace, "batch %d: %d seqs, %d prompt + %d gen tokens, %.0f ms",
			k.s.Batches, seqs, int(float64(seqs)*(60+40*e.rng.Float64())), int(float64(seqs)*(90+60*e.rng.Float64())), k.s.P99Ms*(0.5+0.3*e.rng.Float64()))
	}
	if e.chance(0.2) {
		switch e.rng.IntN(3) {
		case 0:
			e.logf(api.LevelDebug, "kv-cache %.0f%% used, evicted %d blocks (lru)", k.s.KVCache*100, e.rng.IntN(40))
		case 1:
			e.logf(api.LevelDebug, "prefix cache hit ratio %.2f over last %d requests", 0.55+0.35*e.rng.Float64(), max(n, 1))
		default:
			e.logf(api.LevelDebug, "scheduler: %d waiting, %d running, %d swapped", int(e.sat*40*e.rng.Float64()), min(n, inferenceMaxBatch), e.rng.IntN(3))
		}
	}
	if e.every(inferenceSummaryTicks) && k.s.WindowSec > 0 {
		e.logf(api.LevelInfo, "served %d req in %.0fs (%.0f req/s), p99 %.0f ms, %.1fk tok/s, %d shed total",
			k.s.WindowReq, k.s.WindowSec, float64(k.s.WindowReq)/k.s.WindowSec, k.s.P99Ms,
			float64(k.s.WindowReq)*inferenceTokensPerReq/k.s.WindowSec/1000, k.s.Shed)
		k.s.WindowReq, k.s.WindowSec = 0, 0
	}
	if k.slo > 0 {
		k.slo--
	} else if k.s.P99Ms > inferenceSLOMs {
		k.slo = 5
		e.logf(api.LevelWarn, "p99 batch latency %.0f ms over %.0f ms SLO; shedding %.0f%% of new requests",
			k.s.P99Ms, inferenceSLOMs, 100*(k.s.P99Ms-inferenceSLOMs)/k.s.P99Ms)
	}
	if e.chance(0.01) {
		e.logf(api.LevelWarn, "request %08x: prompt of %d tokens exceeds context %d, truncated",
			e.rng.Uint32(), inferenceContextTokens+e.rng.IntN(4000), inferenceContextTokens)
	}
	if e.chance(0.004) {
		e.logf(api.LevelError, "tokenizer sidecar: deadline exceeded after 2s on request %08x, retrying", e.rng.Uint32())
	}
}

func (k *inference) health() (snapshot.DaemonHealthState, string) {
	if k.s.KVCache > 0.97 {
		return snapshot.DaemonDegraded, fmt.Sprintf("kv-cache %.0f%% full: preempting sequences", k.s.KVCache*100)
	}
	return snapshot.DaemonHealthy, ""
}

func (k *inference) overload(sat float64) string {
	return fmt.Sprintf("p99 %.0f ms over %.0f ms SLO at %.0f%% saturation", math.Max(k.s.P99Ms, inferenceSLOMs), inferenceSLOMs, sat*100)
}

func (k *inference) drain(e *env, on bool, grace time.Duration) {
	if on {
		e.logf(api.LevelInfo, "drain (grace %s): refusing new requests, routing to other replicas; finishing in-flight batches", grace)
		return
	}
	e.logf(api.LevelInfo, "drain over: accepting requests again")
}

func (k *inference) pressure(e *env, level float64) {
	if level > 0 {
		e.logf(api.LevelWarn, "backpressure %.2f: max batch %d → %d, shedding low-priority requests",
			level, inferenceMaxBatch, max(1, int(float64(inferenceMaxBatch)*(1-backpressureSlowdown*level))))
		return
	}
	e.logf(api.LevelInfo, "backpressure off: max batch back to %d", inferenceMaxBatch)
}

func (k *inference) shutdown(e *env, grace time.Duration) {
	e.logf(api.LevelInfo, "shutdown (grace %s): flushed in-flight batches; served %d requests, %d tokens", grace, k.s.Requests, k.s.Tokens)
}

func (k *inference) fatal(e *env) string {
	return pick(e.rng, []string{
		fmt.Sprintf("CUDA error: out of memory (tried to allocate %.2f GiB)", 0.5+2*e.rng.Float64()),
		"NCCL watchdog: all-reduce timed out after 600000 ms",
		"segfault in paged-attention kernel (signal 11)",
	})
}

func (k *inference) state() any { return &k.s }

func (k *inference) restore(kind string, raw json.RawMessage) error {
	if kind != KindInference {
		return fmt.Errorf("%w: %s", errWrongKind, kind)
	}
	s, err := restoreAs(raw, func(s *inferenceState) error {
		if s.Model == "" || len(s.Model) > 64 {
			return errors.New("model name missing or too long")
		}
		if !finite(s.Carry, s.WindowSec, s.P99Ms) || !in01(s.KVCache, s.Carry) || s.WindowSec < 0 || s.P99Ms < 0 {
			return errors.New("counters out of range")
		}
		return nil
	})
	if err != nil {
		return err
	}
	k.s = *s
	return nil
}
