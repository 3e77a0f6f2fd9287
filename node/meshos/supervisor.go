package meshos

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
)

// LogSink receives leveled log records (the lead wires it to the node's log
// chain, which assigns Seq). It must not block for long.
type LogSink interface{ AppendLog(api.LogRecord) }

// FailureSink receives failure records (admit gates, failed migrations,
// crashes, DrainFailed). It must not block for long.
type FailureSink interface{ AppendFailure(snapshot.Failure) }

// timing is the supervisor's clock and backoff policy (Config overrides).
type timing struct {
	now            func() time.Time
	backoffInitial time.Duration
	backoffMax     time.Duration
	crashWindow    time.Duration
	crashHold      time.Duration
	stableRun      time.Duration
	stopGrace      time.Duration
	poll           time.Duration
}

// supervisor runs one daemon: it builds instances, runs them, recovers
// panics, applies backoff and the crash-loop gate, and polls health.
type supervisor struct {
	info    DaemonInfo
	factory Factory
	t       timing
	log     func(level api.LogLevel, daemon, text string)
	fail    func(source, reason string)

	mu        sync.Mutex
	inst      Daemon // the running (or last) instance
	life      snapshot.Lifecycle
	health    snapshot.DaemonHealthState
	reason    string
	sat       float64
	restart   snapshot.RestartKind
	until     time.Time
	restarts  int
	crashes   []time.Time
	backoff   time.Duration
	startedAt time.Time
	lineage   snapshot.Lineage
	stopping  bool
	bounce    bool     // restart requested: end this run without counting a crash
	state     []byte   // restore before the next Run (migration, chain checkpoint)
	warmed    warmCopy // warm standby: the active's latest checkpoint (standby.go)
	ctl       chan Control
	cancelRun context.CancelFunc

	wake chan struct{}
	done chan struct{}
	// changed, when set before start, is called (without s.mu) when the
	// daemon starts running or crashes, so its node republishes at once
	// instead of up to a tick later.
	changed func()
	// origin is what the Runtime knew of other copies when this one
	// started; guarded by the Runtime's mu (attribution.go).
	origin *copyOrigin
}

func newSupervisor(info DaemonInfo, f Factory, t timing, log func(api.LogLevel, string, string), fail func(string, string), state []byte) *supervisor {
	return &supervisor{
		info: info, factory: f, t: t, log: log, fail: fail,
		life: snapshot.LifecyclePending, lineage: info.Lineage, state: state,
		backoff: t.backoffInitial,
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
}

// start launches the supervision goroutine; it ends when ctx ends or stop
// completes.
func (s *supervisor) start(ctx context.Context) { go s.supervise(ctx) }

func (s *supervisor) supervise(ctx context.Context) {
	defer close(s.done)
	for {
		s.mu.Lock()
		if s.stopping {
			s.life = snapshot.LifecycleStopped
			s.mu.Unlock()
			return
		}
		wait := s.until.Sub(s.t.now())
		s.mu.Unlock()
		if wait > 0 {
			tm := time.NewTimer(wait)
			select {
			case <-tm.C:
			case <-s.wake:
				tm.Stop()
			case <-ctx.Done():
				tm.Stop()
				s.markStopped()
				return
			}
			continue
		}
		if ctx.Err() != nil {
			s.markStopped()
			return
		}
		s.runOnce(ctx)
	}
}

func (s *supervisor) markStopped() {
	s.mu.Lock()
	s.life = snapshot.LifecycleStopped
	s.mu.Unlock()
}

// runOnce builds (or reuses a restored) instance and runs it to its end.
func (s *supervisor) runOnce(ctx context.Context) {
	s.mu.Lock()
	s.life = snapshot.LifecycleStarting
	state := s.state
	s.state = nil
	s.mu.Unlock()

	inst, err := s.build(state)
	if err != nil {
		s.crashed(err, time.Duration(0))
		return
	}
	runCtx, cancel := context.WithCancel(ctx)
	ctl := make(chan Control, ControlQueueLen)
	now := s.t.now()
	s.mu.Lock()
	s.inst, s.ctl, s.cancelRun = inst, ctl, cancel
	s.life = snapshot.LifecycleRunning
	s.startedAt = now
	s.health, s.reason, s.sat = snapshot.DaemonHealthy, "", 0
	stopping := s.stopping
	s.mu.Unlock()
	s.notifyChanged()
	if stopping {
		// A stop raced the start: the Shutdown it sent found no channel.
		cancel()
	}

	runDone := make(chan error, 1)
	go func() { runDone <- s.safeRun(runCtx, inst, ctl) }()
	tk := time.NewTicker(s.t.poll)
	defer tk.Stop()
	for {
		select {
		case err := <-runDone:
			cancel()
			ran := s.t.now().Sub(now)
			s.mu.Lock()
			stopping, bounce := s.stopping, s.bounce
			s.bounce = false
			s.ctl, s.cancelRun = nil, nil
			s.mu.Unlock()
			switch {
			case stopping:
				return
			case bounce:
				s.mu.Lock()
				s.restarts++
				s.life = snapshot.LifecycleStarting
				s.mu.Unlock()
				s.log(api.LevelInfo, s.info.ID, "restarted on request")
				return
			case err == nil:
				err = errors.New("run returned without a shutdown")
			}
			s.crashed(err, ran)
			return
		case <-tk.C:
			s.poll(inst)
		}
	}
}

func (s *supervisor) build(state []byte) (inst Daemon, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("factory or restore panicked: %v", r)
		}
	}()
	inst = s.factory(s.info)
	if inst == nil {
		return nil, fmt.Errorf("factory for kind %q returned nil", s.info.Kind)
	}
	if state != nil {
		if err := inst.Restore(state); err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
	}
	return inst, nil
}

// safeRun turns a panic into an error so it counts as a crash.
func (s *supervisor) safeRun(ctx context.Context, d Daemon, ctl <-chan Control) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, firstLines(debug.Stack(), 6))
		}
	}()
	return d.Run(ctx, ctl, daemonLogger{s})
}

func firstLines(b []byte, n int) string {
	for i, c := range b {
		if c == '\n' {
			n--
			if n == 0 {
				return string(b[:i])
			}
		}
	}
	return string(b)
}

// poll reads the daemon's self-reported health and saturation; a panic in
// either marks it unhealthy instead of killing the supervisor.
func (s *supervisor) poll(d Daemon) {
	var h snapshot.DaemonHealthState
	var reason string
	var sat float64
	func() {
		defer func() {
			if r := recover(); r != nil {
				h, reason = snapshot.DaemonUnhealthy, fmt.Sprintf("health probe panicked: %v", r)
			}
		}()
		h, reason = d.Health()
		sat = d.Saturation()
	}()
	if sat < 0 || sat != sat {
		sat = 0
	}
	if sat > 1 {
		sat = 1
	}
	if h > snapshot.DaemonUnhealthy {
		h = snapshot.DaemonUnhealthy
	}
	s.mu.Lock()
	s.health, s.reason, s.sat = h, reason, sat
	s.mu.Unlock()
}

// crashed records a crash and sets the restart gate: backoff doubling from
// backoffInitial to backoffMax, or CrashLooping after CrashLoopCrashes
// crashes inside crashWindow. A run longer than stableRun resets both.
func (s *supervisor) crashed(err error, ran time.Duration) {
	now := s.t.now()
	s.mu.Lock()
	if ran >= s.t.stableRun {
		s.crashes = s.crashes[:0]
		s.backoff = s.t.backoffInitial
	}
	kept := s.crashes[:0]
	for _, c := range s.crashes {
		if now.Sub(c) < s.t.crashWindow {
			kept = append(kept, c)
		}
	}
	s.crashes = append(kept, now)
	s.life = snapshot.LifecycleCrashed
	s.restarts++
	var msg string
	if len(s.crashes) >= CrashLoopCrashes {
		s.restart = snapshot.RestartCrashLooping
		s.until = now.Add(s.t.crashHold)
		msg = fmt.Sprintf("crash-looping: %d crashes in %s; gated until %s: %v", len(s.crashes), s.t.crashWindow, s.until.UTC().Format(time.RFC3339), err)
	} else {
		s.restart = snapshot.RestartBackingOff
		s.until = now.Add(s.backoff)
		msg = fmt.Sprintf("crashed (%d in window), restarting in %s: %v", len(s.crashes), s.backoff, err)
		s.backoff = min(2*s.backoff, s.t.backoffMax)
	}
	s.mu.Unlock()
	s.log(api.LevelError, s.info.ID, msg)
	s.fail("daemon", s.info.ID+": "+msg)
	s.notifyChanged()
}

func (s *supervisor) notifyChanged() {
	if s.changed != nil {
		s.changed()
	}
}

// info snapshot for publishing.
func (s *supervisor) view(node NodeID, now time.Time) snapshot.Daemon {
	s.mu.Lock()
	defer s.mu.Unlock()
	rk, until := s.restart, s.until
	if rk != snapshot.RestartIdle && !now.Before(until) && s.life == snapshot.LifecycleRunning {
		// The gate passed and the daemon is running again.
		rk, until = snapshot.RestartIdle, time.Time{}
	}
	return snapshot.Daemon{
		ID: s.info.ID, Name: s.info.ID, Kind: s.info.Kind, Lineage: s.lineage, Node: node,
		Lifecycle: s.life, Health: s.health, HealthReason: s.reason, Saturation: s.sat,
		Restart: rk, RestartUntil: until, Restarts: s.restarts, StartedAt: s.startedAt,
	}
}

// gated reports whether the crash-loop gate holds the daemon, and until when.
func (s *supervisor) gated(now time.Time) (bool, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restart == snapshot.RestartCrashLooping && now.Before(s.until), s.until
}

// control delivers ev without blocking; a full queue drops the hint.
func (s *supervisor) control(ev Control) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctl == nil {
		return false
	}
	select {
	case s.ctl <- ev:
		return true
	default:
		return false
	}
}

// setLifecycle marks draining/migrating for display.
func (s *supervisor) setLifecycle(l snapshot.Lifecycle) {
	s.mu.Lock()
	if s.life == snapshot.LifecycleRunning || s.life == snapshot.LifecycleDraining || s.life == snapshot.LifecycleMigrating {
		s.life = l
	}
	s.mu.Unlock()
}

func (s *supervisor) lineageNow() snapshot.Lineage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lineage
}

func (s *supervisor) setLineage(l snapshot.Lineage) {
	s.mu.Lock()
	s.lineage = l
	s.mu.Unlock()
}

// restartNow ends the current run and starts a fresh instance. force also
// clears the crash history and gate (ICE force-restart).
func (s *supervisor) restartNow(force bool) {
	s.mu.Lock()
	if force {
		s.crashes = s.crashes[:0]
		s.backoff = s.t.backoffInitial
	}
	s.restart, s.until = snapshot.RestartIdle, time.Time{}
	if s.ctl != nil {
		s.bounce = true
		select {
		case s.ctl <- Control{Kind: CtlShutdown, Grace: s.t.stopGrace}:
		default:
		}
		cancel := s.cancelRun
		s.mu.Unlock()
		// A restart does not wait for the grace: the old instance's state
		// is discarded anyway.
		if cancel != nil {
			cancel()
		}
	} else {
		s.restarts++
		s.mu.Unlock()
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// stop shuts the daemon down (Shutdown{grace}, then cancel) and waits for
// the supervisor to end, at most grace plus a short bound. It returns the
// last instance so a migration can take its final snapshot.
func (s *supervisor) stop(grace time.Duration) Daemon {
	s.mu.Lock()
	s.stopping = true
	if s.ctl != nil {
		select {
		case s.ctl <- Control{Kind: CtlShutdown, Grace: grace}:
		default:
		}
	}
	cancel := s.cancelRun
	inst := s.inst
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	tm := time.NewTimer(grace)
	defer tm.Stop()
	select {
	case <-s.done:
		return inst
	case <-tm.C:
	}
	if cancel != nil {
		cancel()
	}
	tm2 := time.NewTimer(grace)
	defer tm2.Stop()
	select {
	case <-s.done:
	case <-tm2.C:
		s.log(api.LevelError, s.info.ID, "did not stop within its grace after cancel; abandoned")
	}
	return inst
}

// snapshotState asks the current instance for its state.
func (s *supervisor) snapshotState() (state []byte, err error) {
	s.mu.Lock()
	inst := s.inst
	s.mu.Unlock()
	if inst == nil {
		return nil, errors.New("no instance to snapshot")
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("snapshot panicked: %v", r)
		}
	}()
	return inst.Snapshot()
}

func (s *supervisor) lifecycle() snapshot.Lifecycle {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.life
}

func (s *supervisor) healthy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.life == snapshot.LifecycleRunning && s.health == snapshot.DaemonHealthy
}

// daemonLogger bounds and forwards a daemon's log lines.
type daemonLogger struct{ s *supervisor }

func (l daemonLogger) Log(level api.LogLevel, format string, args ...any) {
	text := fmt.Sprintf(format, args...)
	if len(text) > LogTextBytesMax {
		text = text[:LogTextBytesMax]
	}
	l.s.log(level, l.s.info.ID, text)
}
