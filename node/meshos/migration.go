package meshos

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Migration moves a live daemon, keeping its id, in six phases:
//
//	Snapshot  source: the running daemon serialises its state
//	Transfer  source → target: offer (daemon info + state); the target
//	          builds a fresh instance and restores it (Restore) to prove
//	          the state loads, then acks
//	Replay    source stops the daemon and sends its final state (the gap
//	          since the snapshot); the target restores that
//	Cutover   target starts the daemon; the source forgets it
//	Complete  both sides keep the record for display
//
// Every step is retried on timeout (MigrationRetriesMax); a failure (or a
// kill) before cutover rolls back: the source restarts the daemon from its
// final state if it had stopped it, tells the target to discard, and
// records the failure. Cutover messages carry each side's snapshot
// generation so stale snapshots cannot make a node act on the old location.

type outMigration struct {
	id      string
	daemon  string
	source  NodeID // this node
	target  NodeID
	p       DaemonPlacement
	sup     *supervisor
	started time.Time
	acks    chan *message
	killed  chan struct{}
	once    sync.Once

	mu       sync.Mutex
	phase    snapshot.MigrationPhase
	progress float64
	retries  int
	err      string
	killWhy  string
}

func (m *outMigration) view() snapshot.Migration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return snapshot.Migration{ID: m.id, Daemon: m.daemon, Source: m.source, Target: m.target, Phase: m.phase,
		Progress: m.progress, Retries: m.retries, StartedAt: m.started, Error: m.err}
}

func (m *outMigration) set(ph snapshot.MigrationPhase, prog float64) {
	m.mu.Lock()
	m.phase, m.progress = ph, prog
	m.mu.Unlock()
}

func (m *outMigration) kill(why string) {
	m.once.Do(func() {
		m.mu.Lock()
		m.killWhy = why
		m.mu.Unlock()
		close(m.killed)
	})
}

type inMigration struct {
	id        string
	daemon    string
	source    NodeID
	target    NodeID // this node
	p         DaemonPlacement
	started   time.Time
	lastHeard time.Time
	phase     snapshot.MigrationPhase
	progress  float64
	state     []byte
}

func (m *inMigration) view() snapshot.Migration {
	return snapshot.Migration{ID: m.id, Daemon: m.daemon, Source: m.source, Target: m.target, Phase: m.phase,
		Progress: m.progress, StartedAt: m.started}
}

func (rt *Runtime) outboundFor(daemon string) *outMigration {
	for _, m := range rt.migOut {
		if m.daemon == daemon {
			return m
		}
	}
	return nil
}

func (rt *Runtime) inboundFor(daemon string) *inMigration {
	for _, m := range rt.migIn {
		if m.daemon == daemon {
			return m
		}
	}
	return nil
}

// startMigrationLocked begins moving s to p.Node.
func (rt *Runtime) startMigrationLocked(s *supervisor, p DaemonPlacement) {
	rt.migSeq++
	now := rt.now()
	m := &outMigration{
		id:     fmt.Sprintf("%016x>%s#%d", uint64(rt.self), p.ID, rt.migSeq),
		daemon: p.ID, source: rt.self, target: p.Node, p: p, sup: s, started: now,
		acks: make(chan *message, 8), killed: make(chan struct{}),
		phase: snapshot.PhaseSnapshot,
	}
	m.p.Lineage = s.view(rt.self, now).Lineage
	rt.migOut[m.id] = m
	s.setLifecycle(snapshot.LifecycleDraining)
	s.control(Control{Kind: CtlDrainStart, Grace: rt.tm.StopGrace})
	rt.logf(api.LevelInfo, p.ID, "migrating to %v (%s)", p.Node, m.id)
	ctx := rt.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	go rt.runMigration(ctx, m)
}

var errKilled = errors.New("migration killed")

func (rt *Runtime) runMigration(ctx context.Context, m *outMigration) {
	state, err := m.sup.snapshotState()
	if err == nil && len(state) > DaemonStateBytesMax {
		err = fmt.Errorf("state of %d bytes exceeds %d", len(state), DaemonStateBytesMax)
	}
	if err != nil {
		rt.rollback(m, false, nil, fmt.Errorf("snapshot: %w", err))
		return
	}
	m.set(snapshot.PhaseTransfer, 0.2)
	offer := &message{Kind: msgMigOffer, Mig: m.id, Daemon: m.daemon, Group: m.p.Group,
		Index: uint32(m.p.Index), DKind: m.p.Kind, Lineage: m.p.Lineage, State: state}
	if _, err := rt.step(ctx, m, offer, snapshot.PhaseRestore); err != nil {
		rt.rollback(m, false, nil, fmt.Errorf("transfer: %w", err))
		return
	}
	m.set(snapshot.PhaseRestore, 0.4)

	// Replay: stop here, send what changed since the snapshot.
	m.set(snapshot.PhaseReplay, 0.5)
	m.sup.setLifecycle(snapshot.LifecycleMigrating)
	inst := m.sup.stop(rt.tm.StopGrace)
	final, err := finalState(inst)
	if err == nil && len(final) > DaemonStateBytesMax {
		err = fmt.Errorf("final state of %d bytes exceeds %d", len(final), DaemonStateBytesMax)
	}
	if err != nil {
		rt.rollback(m, true, state, fmt.Errorf("final snapshot: %w", err))
		return
	}
	if _, err := rt.step(ctx, m, &message{Kind: msgMigReplay, Mig: m.id, State: final}, snapshot.PhaseReplay); err != nil {
		rt.rollback(m, true, final, fmt.Errorf("replay: %w", err))
		return
	}
	m.set(snapshot.PhaseCutover, 0.8)
	rt.mu.Lock()
	gen := rt.gen
	rt.mu.Unlock()
	ack, err := rt.step(ctx, m, &message{Kind: msgMigCutover, Mig: m.id, Gen: gen}, snapshot.PhaseCutover)
	if err != nil {
		rt.rollback(m, true, final, fmt.Errorf("cutover: %w", err))
		return
	}
	m.set(snapshot.PhaseComplete, 1)
	rt.mu.Lock()
	if rt.daemons[m.daemon] == m.sup {
		delete(rt.daemons, m.daemon)
	}
	delete(rt.migOut, m.id)
	rt.finished = append(rt.finished, finishedMigration{m: m.view(), at: rt.now(), out: true,
		peerGen: ack.Gen, cutover: true, lineage: m.p.Lineage, daemonID: m.daemon})
	rt.mu.Unlock()
	rt.logf(api.LevelInfo, m.daemon, "migrated to %v (%s, %d retries)", m.target, m.id, m.view().Retries)
}

func finalState(inst Daemon) (state []byte, err error) {
	if inst == nil {
		return nil, errors.New("no instance")
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("snapshot panicked: %v", r)
		}
	}()
	return inst.Snapshot()
}

// step sends msg and waits for the target's ack of phase want, resending
// on timeout up to MigrationRetriesMax times.
func (rt *Runtime) step(ctx context.Context, m *outMigration, msg *message, want snapshot.MigrationPhase) (*message, error) {
	for attempt := 0; attempt <= MigrationRetriesMax; attempt++ {
		if attempt > 0 {
			m.mu.Lock()
			m.retries++
			m.mu.Unlock()
		}
		rt.send(m.target, msg)
		tm := time.NewTimer(rt.tm.MigrationStep)
	wait:
		for {
			select {
			case <-ctx.Done():
				tm.Stop()
				return nil, ctx.Err()
			case <-m.killed:
				tm.Stop()
				m.mu.Lock()
				why := m.killWhy
				m.mu.Unlock()
				return nil, fmt.Errorf("%w: %s", errKilled, why)
			case ack := <-m.acks:
				if ack.Phase != want {
					continue // a late ack of an earlier step
				}
				tm.Stop()
				if !ack.OK {
					return nil, fmt.Errorf("target refused: %s", ack.Reason)
				}
				return ack, nil
			case <-tm.C:
				break wait
			}
		}
	}
	return nil, fmt.Errorf("no ack from %v after %d attempts", m.target, MigrationRetriesMax+1)
}

// rollback undoes a failed migration: the daemon runs here again (from its
// final state if it had been stopped) and the target discards its copy.
//
// The daemon is back (and the migration gone from migOut) before the abort
// is sent, so no view shows the daemon nowhere once the target has let go.
func (rt *Runtime) rollback(m *outMigration, stopped bool, state []byte, err error) {
	defer rt.send(m.target, &message{Kind: msgMigAbort, Mig: m.id, Reason: truncate(err.Error(), ReasonBytesMax)})
	m.mu.Lock()
	m.phase, m.err = snapshot.PhaseRolledBack, truncate(err.Error(), ReasonBytesMax)
	m.mu.Unlock()
	rt.mu.Lock()
	defer rt.mu.Unlock()
	delete(rt.migOut, m.id)
	if stopped {
		if rt.daemons[m.daemon] == m.sup {
			delete(rt.daemons, m.daemon)
		}
		if rt.ctx == nil || rt.ctx.Err() == nil {
			rt.startDaemonLocked(m.p, state)
		}
	} else {
		m.sup.control(Control{Kind: CtlDrainFinish})
		m.sup.setLifecycle(snapshot.LifecycleRunning)
	}
	rt.migRetryAt[m.daemon] = rt.now().Add(rt.tm.MigrationRetry)
	rt.finished = append(rt.finished, finishedMigration{m: m.view(), at: rt.now(), out: true, daemonID: m.daemon})
	rt.failLocked("migration", fmt.Sprintf("%s → %v rolled back: %v", m.daemon, m.target, err))
	rt.logText(api.LevelWarn, m.daemon, fmt.Sprintf("migration %s rolled back: %v", m.id, err))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (rt *Runtime) onMigAck(from NodeID, msg *message) {
	rt.mu.Lock()
	m := rt.migOut[msg.Mig]
	rt.mu.Unlock()
	if m == nil || m.target != from {
		return
	}
	select {
	case m.acks <- msg:
	default:
	}
}

func (rt *Runtime) ack(to NodeID, mig string, ph snapshot.MigrationPhase, err error) {
	a := &message{Kind: msgMigAck, Mig: mig, Phase: ph, OK: err == nil}
	if err != nil {
		a.Reason = truncate(err.Error(), ReasonBytesMax)
	}
	rt.mu.Lock()
	a.Gen = rt.gen
	rt.mu.Unlock()
	rt.send(to, a)
}

// onMigTarget runs the target side. Every step is idempotent: a retried
// message is re-acked without redoing the work.
func (rt *Runtime) onMigTarget(from NodeID, msg *message) {
	switch msg.Kind {
	case msgMigOffer:
		rt.onOffer(from, msg)
	case msgMigReplay:
		rt.mu.Lock()
		m := rt.migIn[msg.Mig]
		if m == nil || m.source != from {
			rt.mu.Unlock()
			rt.ack(from, msg.Mig, snapshot.PhaseReplay, errors.New("unknown migration"))
			return
		}
		m.lastHeard = rt.now()
		p := m.p
		rt.mu.Unlock()
		err := rt.tryRestore(p, msg.State)
		rt.mu.Lock()
		if err == nil && rt.migIn[msg.Mig] == m {
			m.state, m.phase, m.progress = msg.State, snapshot.PhaseReplay, 0.7
		}
		rt.mu.Unlock()
		rt.ack(from, msg.Mig, snapshot.PhaseReplay, err)
	case msgMigCutover:
		rt.mu.Lock()
		for _, f := range rt.finished {
			if f.m.ID == msg.Mig && !f.out && f.cutover {
				rt.mu.Unlock()
				rt.ack(from, msg.Mig, snapshot.PhaseCutover, nil) // a retry
				return
			}
		}
		m := rt.migIn[msg.Mig]
		if m == nil || m.source != from || m.phase != snapshot.PhaseReplay {
			rt.mu.Unlock()
			rt.ack(from, msg.Mig, snapshot.PhaseCutover, errors.New("not ready for cutover"))
			return
		}
		if old := rt.daemons[m.daemon]; old != nil {
			// A fresh start raced the migration; the migrated state wins.
			delete(rt.daemons, m.daemon)
			go old.stop(rt.tm.StopGrace)
		}
		rt.startDaemonLocked(m.p, m.state)
		delete(rt.migIn, m.id)
		m.phase, m.progress = snapshot.PhaseComplete, 1
		rt.finished = append(rt.finished, finishedMigration{m: m.view(), at: rt.now(), peerGen: msg.Gen,
			cutover: true, lineage: m.p.Lineage, daemonID: m.daemon})
		rt.mu.Unlock()
		rt.logf(api.LevelInfo, m.daemon, "arrived from %v (%s)", from, m.id)
		rt.ack(from, msg.Mig, snapshot.PhaseCutover, nil)
	case msgMigAbort:
		rt.mu.Lock()
		if m := rt.migIn[msg.Mig]; m != nil && m.source == from {
			delete(rt.migIn, m.id)
			m.phase = snapshot.PhaseRolledBack
			rt.finished = append(rt.finished, finishedMigration{m: m.view(), at: rt.now(), daemonID: m.daemon})
			rt.logText(api.LevelInfo, m.daemon, "migration "+m.id+" aborted by source: "+msg.Reason)
		}
		rt.mu.Unlock()
	}
}

func (rt *Runtime) onOffer(from NodeID, msg *message) {
	rt.mu.Lock()
	if m := rt.migIn[msg.Mig]; m != nil {
		rt.mu.Unlock()
		if m.source == from {
			rt.ack(from, msg.Mig, snapshot.PhaseRestore, nil)
		}
		return
	}
	if !rt.handsOverHereLocked(msg.Daemon, from) {
		// Only the copy placement hands the daemon over from may move it
		// here (attribution.go). No ack: a source whose view was a tick
		// ahead of ours retries the offer; one that is not a host hears
		// nothing.
		rt.mu.Unlock()
		rt.refuseSender(from, msg, "offer of a daemon it does not hand over here")
		return
	}
	g, _, ok := rt.factoryFor(msg.Group)
	var refuse error
	switch {
	case !ok:
		refuse = fmt.Errorf("no factory for group %q here", msg.Group)
	case DaemonID(msg.Group, int(msg.Index)) != msg.Daemon || int(msg.Index) >= groupMembers(g) || g.DaemonKind != msg.DKind:
		refuse = fmt.Errorf("daemon %q is not member %d of group %q", msg.Daemon, msg.Index, msg.Group)
	case rt.daemons[msg.Daemon] != nil && rt.daemons[msg.Daemon].lifecycle() == snapshot.LifecycleRunning:
		refuse = errors.New("already running here")
	case len(rt.migIn)+len(rt.migOut) >= MigrationsInflightMax:
		refuse = fmt.Errorf("%d migrations in flight", MigrationsInflightMax)
	case rt.maint.State != snapshot.MaintActive && rt.maint.State != snapshot.MaintRecovery:
		refuse = fmt.Errorf("node is %s", rt.maint.State)
	}
	rt.mu.Unlock()
	if refuse != nil {
		rt.ack(from, msg.Mig, snapshot.PhaseRestore, refuse)
		return
	}
	p := DaemonPlacement{ID: msg.Daemon, Group: msg.Group, Index: int(msg.Index), Kind: msg.DKind, Lineage: msg.Lineage, Node: rt.self}
	if err := rt.tryRestore(p, msg.State); err != nil {
		rt.ack(from, msg.Mig, snapshot.PhaseRestore, err)
		return
	}
	now := rt.now()
	rt.mu.Lock()
	rt.migIn[msg.Mig] = &inMigration{id: msg.Mig, daemon: msg.Daemon, source: from, target: rt.self, p: p, started: now,
		lastHeard: now, phase: snapshot.PhaseRestore, progress: 0.4, state: msg.State}
	rt.mu.Unlock()
	rt.ack(from, msg.Mig, snapshot.PhaseRestore, nil)
}

// tryRestore proves state loads into a fresh instance of p's kind.
func (rt *Runtime) tryRestore(p DaemonPlacement, state []byte) (err error) {
	_, f, ok := rt.factoryFor(p.Group)
	if !ok {
		return fmt.Errorf("no factory for group %q", p.Group)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("restore panicked: %v", r)
		}
	}()
	d := f(DaemonInfo{ID: p.ID, Group: p.Group, Kind: p.Kind, Lineage: p.Lineage})
	if d == nil {
		return errors.New("factory returned nil")
	}
	if err := d.Restore(state); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// dropInboundLocked abandons an inbound migration (killed, or the source
// went silent) and tells the source.
func (rt *Runtime) dropInboundLocked(m *inMigration, why string) {
	delete(rt.migIn, m.id)
	ph := m.phase
	m.phase = snapshot.PhaseRolledBack
	rt.finished = append(rt.finished, finishedMigration{m: m.view(), at: rt.now(), daemonID: m.daemon})
	rt.failLocked("migration", fmt.Sprintf("inbound %s from %v dropped: %s", m.daemon, m.source, why))
	a := &message{Kind: msgMigAck, Mig: m.id, Phase: nextPhase(ph), Reason: truncate(why, ReasonBytesMax), Gen: rt.gen}
	rt.send(m.source, a)
}

func nextPhase(p snapshot.MigrationPhase) snapshot.MigrationPhase {
	switch p {
	case snapshot.PhaseRestore:
		return snapshot.PhaseReplay
	case snapshot.PhaseReplay:
		return snapshot.PhaseCutover
	}
	return p
}

// expireInboundLocked drops inbound migrations whose source went silent.
func (rt *Runtime) expireInboundLocked(now time.Time) {
	limit := rt.tm.MigrationStep * time.Duration(MigrationRetriesMax+2)
	for _, m := range rt.migIn {
		if now.Sub(m.lastHeard) > limit {
			rt.dropInboundLocked(m, fmt.Sprintf("source silent for %s", limit))
		}
	}
}
