package workloads

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/meshos"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Health and load thresholds shared by every kind.
const (
	// DegradedSaturation and UnhealthySaturation are where saturation alone
	// makes a daemon report degraded or unhealthy.
	DegradedSaturation  = 0.85
	UnhealthySaturation = 0.95
	// drainSaturationFactor scales offered load while draining: new work is
	// refused, in-flight work finishes.
	drainSaturationFactor = 0.3
	// backpressureRelief is how much of its load a daemon sheds at
	// backpressure level 1, and backpressureSlowdown how much slower its work
	// loop runs.
	backpressureRelief   = 0.5
	backpressureSlowdown = 0.6
	// maxStepSeconds bounds one simulation step, so a process that was
	// suspended resumes without teleporting drones or jumping counters.
	maxStepSeconds = 10.0
	// MaxStateBytes bounds a snapshot accepted by Restore; real states are
	// a few hundred bytes.
	MaxStateBytes = 64 << 10
	// stateVersion is the snapshot envelope format.
	stateVersion = 1
)

// kernel is one kind's simulation. The daemon calls it with its mutex held,
// and everything it wants logged goes through env so that the logger is
// never called under that lock.
type kernel interface {
	profile() satProfile
	start(e *env)
	tick(e *env)
	health() (snapshot.DaemonHealthState, string)
	// overload says, in the kind's own terms, what high saturation does.
	overload(sat float64) string
	drain(e *env, on bool, grace time.Duration)
	// pressure logs entering (level > 0) or leaving (level 0) backpressure.
	pressure(e *env, level float64)
	shutdown(e *env, grace time.Duration)
	// fatal picks the reason for a crash.
	fatal(e *env) string
	// state is the JSON-serialisable state.
	state() any
	// restore decodes a state snapshotted by a daemon of kind, validates it
	// and adopts it; on error the kernel is unchanged.
	restore(kind string, raw json.RawMessage) error
}

// kernels builds a fresh kernel per kind.
var kernels = map[string]func(info meshos.DaemonInfo, rng *rand.Rand) kernel{
	KindInference: newInference,
	KindTrainer:   newTrainer,
	KindForge:     newForge,
	KindSensor:    newSensor,
	KindDrone:     newDrone,
	KindStage:     newStage,
}

type logLine struct {
	level api.LogLevel
	text  string
}

// env is what a kernel sees during one call.
type env struct {
	rng *rand.Rand
	// dt is the simulated time since the previous tick, in seconds.
	dt float64
	// demand is the offered load, 0..1, before drain and backpressure.
	demand float64
	// throttle is the work speed, 0..1: 1 - backpressureSlowdown*level.
	throttle float64
	draining bool
	sat      float64
	ticks    uint64
	lines    []logLine
	// jobs collects the blob I/O the kernel asks for (nil: the daemon has
	// no blob store, see Options.Blobs).
	jobs *[]blobJob
}

func (e *env) logf(l api.LogLevel, format string, args ...any) {
	e.lines = append(e.lines, logLine{l, fmt.Sprintf(format, args...)})
}

// chance is a per-tick probability: log chatter scales with the tick.
func (e *env) chance(p float64) bool { return e.rng.Float64() < p }

// perHour is the probability that an event with the given rate happens in
// this step: events that matter to the simulation keep their rate whatever
// the tick.
func (e *env) perHour(rate float64) bool {
	return e.rng.Float64() < 1-math.Exp(-rate*e.dt/3600)
}

// every is true once per n ticks.
func (e *env) every(n uint64) bool { return e.ticks%n == 0 }

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// daemon is the meshos.Daemon every kind shares: the Run loop, control
// handling, crash injection, saturation and health.
type daemon struct {
	kind    string
	info    meshos.DaemonInfo
	opts    Options
	running atomic.Bool

	mu       sync.Mutex
	k        kernel
	rng      *rand.Rand
	sat      satModel
	satNow   float64
	health   snapshot.DaemonHealthState
	reason   string
	draining bool
	pressure float64
	ticks    uint64
	// pending are blob jobs asked for and not yet handed to the worker;
	// withBlobs says a worker runs (Run started one).
	pending    []blobJob
	withBlobs  bool
	stopWorker func()
}

func newDaemon(kind string, info meshos.DaemonInfo, o Options) *daemon {
	seed := o.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	h := fnv.New64a()
	io.WriteString(h, info.ID)
	rng := rand.New(rand.NewPCG(seed, h.Sum64()))
	k := kernels[kind](info, rng)
	d := &daemon{kind: kind, info: info, opts: o, k: k, rng: rng}
	d.sat = newSatModel(k.profile(), rng)
	return d
}

func (d *daemon) env(dt float64) *env {
	var jobs *[]blobJob
	if d.withBlobs {
		jobs = &d.pending
	}
	return &env{
		jobs:     jobs,
		rng:      d.rng,
		dt:       dt,
		demand:   d.sat.demand,
		throttle: 1 - backpressureSlowdown*d.pressure,
		draining: d.draining,
		sat:      d.satNow,
		ticks:    d.ticks,
	}
}

// Run is the daemon's main loop; see meshos.Daemon.
func (d *daemon) Run(ctx context.Context, ctl <-chan meshos.Control, log meshos.Logger) error {
	if !d.running.CompareAndSwap(false, true) {
		return fmt.Errorf("workloads: %s is already running", d.info.ID)
	}
	defer d.running.Store(false)
	if err := d.crashLoopCheck(log); err != nil {
		return err
	}
	jobs := d.startBlobWorker(ctx, log)
	defer d.stopBlobWorker()
	emit(log, d.call(0, func(e *env) { d.k.start(e) }))
	t := time.NewTicker(d.opts.Tick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			// The supervisor pulled the plug without a Shutdown: not a crash,
			// so no error, but say so.
			emit(log, []logLine{{api.LevelWarn, "stopped without shutdown: " + context.Cause(ctx).Error()}})
			return nil
		case c, ok := <-ctl:
			if !ok {
				// No more control events; ctx still ends the loop.
				ctl = nil
				continue
			}
			lines, stop := d.control(c)
			emit(log, lines)
			if stop {
				return nil
			}
		case now := <-t.C:
			if err := d.crashLoopCheck(log); err != nil {
				return err
			}
			lines, err := d.advance(now.Sub(last))
			last = now
			emit(log, lines)
			if jobs != nil {
				emit(log, d.dispatchBlobJobs(jobs))
			}
			if err != nil {
				return err
			}
		}
	}
}

// crashLoopCheck fails the daemon while the demo's crash-loop fault is on.
func (d *daemon) crashLoopCheck(log meshos.Logger) error {
	if !CrashLooping(d.info.ID) {
		return nil
	}
	var reason string
	lines := d.call(0, func(e *env) {
		reason = d.k.fatal(e)
		e.logf(api.LevelError, "fatal: %s (crash-loop fault injected)", reason)
	})
	emit(log, lines)
	return fmt.Errorf("workloads: %s: crash-loop fault injected: %s", d.info.ID, reason)
}

func emit(log meshos.Logger, lines []logLine) {
	for _, l := range lines {
		log.Log(l.level, "%s", l.text)
	}
}

// call runs f on the kernel under the lock and returns what it logged.
func (d *daemon) call(dt float64, f func(e *env)) []logLine {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.env(dt)
	f(e)
	return e.lines
}

// control applies one control event; stop reports a clean shutdown.
func (d *daemon) control(c meshos.Control) (lines []logLine, stop bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.env(0)
	switch c.Kind {
	case meshos.CtlShutdown:
		d.k.shutdown(e, c.Grace)
		return e.lines, true
	case meshos.CtlDrainStart:
		if !d.draining {
			d.draining = true
			d.k.drain(e, true, c.Grace)
		}
	case meshos.CtlDrainFinish:
		if d.draining {
			d.draining = false
			d.k.drain(e, false, 0)
		}
	case meshos.CtlBackpressureOn:
		lvl := c.Level
		if math.IsNaN(lvl) || lvl <= 0 {
			// A level that says nothing still means "slow down": use the
			// mildest meaningful level rather than ignoring the event.
			lvl = 0.1
		}
		d.pressure = min(lvl, 1)
		d.k.pressure(e, d.pressure)
	case meshos.CtlBackpressureOff:
		if d.pressure > 0 {
			d.pressure = 0
			d.k.pressure(e, 0)
		}
	case meshos.CtlStandbySync:
		if d.info.Lineage.Kind != snapshot.GroupStandby || d.info.Lineage.Active {
			break // only a warm standby takes the active's state
		}
		if err := d.adoptLocked(c.State); err != nil {
			e.logf(api.LevelWarn, "standby sync through chain seq %d refused, keeping the previous copy: %v", c.Seq, err)
			break
		}
		e.logf(api.LevelDebug, "warm standby synced to the active's checkpoint (chain seq %d)", c.Seq)
	default:
		e.logf(api.LevelWarn, "ignoring unknown control event %d", c.Kind)
	}
	return e.lines, false
}

// advance moves the simulation on by dt: saturation, the kernel's work,
// health, and the spontaneous-crash roll.
func (d *daemon) advance(dt time.Duration) ([]logLine, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	sec := math.Min(math.Max(dt.Seconds(), 0), maxStepSeconds)
	factor := 1 - backpressureRelief*d.pressure
	if d.draining {
		factor *= drainSaturationFactor
	}
	d.satNow = d.sat.advance(sec, d.rng, factor)
	d.ticks++
	e := d.env(sec)
	d.k.tick(e)
	d.updateHealth()
	if d.opts.CrashesPerHour > 0 && e.perHour(d.opts.CrashesPerHour) {
		reason := d.k.fatal(e)
		e.logf(api.LevelError, "fatal: %s", reason)
		return e.lines, fmt.Errorf("workloads: %s crashed: %s", d.info.ID, reason)
	}
	return e.lines, nil
}

func (d *daemon) updateHealth() {
	st, why := snapshot.DaemonHealthy, ""
	switch {
	case d.satNow >= UnhealthySaturation:
		st, why = snapshot.DaemonUnhealthy, d.k.overload(d.satNow)
	case d.satNow >= DegradedSaturation:
		st, why = snapshot.DaemonDegraded, d.k.overload(d.satNow)
	}
	kst, kwhy := d.k.health()
	switch {
	case kst > st:
		st, why = kst, kwhy
	case kst == st && kst != snapshot.DaemonHealthy:
		why = why + "; " + kwhy
	}
	d.health, d.reason = st, why
}

// Health reports the health computed at the last tick.
func (d *daemon) Health() (snapshot.DaemonHealthState, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.health, d.reason
}

// Saturation reports the saturation computed at the last tick.
func (d *daemon) Saturation() float64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.satNow
}

// SyncedThrough is the checkpoint a trainer (active or warm) holds, for the
// supervisor to publish as Lineage.Synced; 0 for other kinds.
func (d *daemon) SyncedThrough() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.k.(interface{ syncedThrough() uint64 }); ok {
		return s.syncedThrough()
	}
	return 0
}

type envelope struct {
	Version int             `json:"v"`
	Kind    string          `json:"kind"`
	ID      string          `json:"id"`
	State   json.RawMessage `json:"state"`
}

// Snapshot serialises the kernel state; safe while Run is running.
func (d *daemon) Snapshot() ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, err := json.Marshal(d.k.state())
	if err != nil {
		return nil, fmt.Errorf("workloads: snapshot %s: %w", d.info.ID, err)
	}
	return json.Marshal(envelope{Version: stateVersion, Kind: d.kind, ID: d.info.ID, State: st})
}

// Restore loads a snapshot into this (not yet running) instance. The bytes
// come over the mesh from another node, so they are bounded and validated;
// on error the instance is unchanged.
func (d *daemon) Restore(state []byte) error {
	if d.running.Load() {
		return fmt.Errorf("workloads: restore %s: daemon is running", d.info.ID)
	}
	if len(state) > MaxStateBytes {
		return fmt.Errorf("workloads: restore %s: state is %d bytes, at most %d", d.info.ID, len(state), MaxStateBytes)
	}
	var env envelope
	if err := decodeStrict(state, &env); err != nil {
		return fmt.Errorf("workloads: restore %s: %w", d.info.ID, err)
	}
	if env.Version != stateVersion {
		return fmt.Errorf("workloads: restore %s: state version %d, want %d", d.info.ID, env.Version, stateVersion)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.k.restore(env.Kind, env.State); err != nil {
		return fmt.Errorf("workloads: restore %s from %s state of %q: %w", d.info.ID, env.Kind, env.ID, err)
	}
	return nil
}

// adoptLocked loads a state envelope into the running kernel (d.mu held):
// a warm standby taking the active member's checkpoint. The bytes are
// bounded and validated like Restore's; on error nothing changes.
func (d *daemon) adoptLocked(state []byte) error {
	if len(state) > MaxStateBytes {
		return fmt.Errorf("state is %d bytes, at most %d", len(state), MaxStateBytes)
	}
	var env envelope
	if err := decodeStrict(state, &env); err != nil {
		return err
	}
	if env.Version != stateVersion {
		return fmt.Errorf("state version %d, want %d", env.Version, stateVersion)
	}
	return d.k.restore(env.Kind, env.State)
}

var errWrongKind = errors.New("state is of another kind")

// decodeStrict decodes exactly one JSON value with no unknown fields.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad state: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("bad state: trailing data")
	}
	return nil
}

// restoreAs decodes raw into a fresh T, validates it, and only then lets
// the caller adopt it.
func restoreAs[T any](raw json.RawMessage, validate func(*T) error) (*T, error) {
	v := new(T)
	if err := decodeStrict(raw, v); err != nil {
		return nil, err
	}
	if err := validate(v); err != nil {
		return nil, err
	}
	return v, nil
}

// finite reports whether every x is a finite number.
func finite(xs ...float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

// in01 reports whether every x is in [0, 1].
func in01(xs ...float64) bool {
	for _, x := range xs {
		if !(x >= 0 && x <= 1) {
			return false
		}
	}
	return true
}
