package meshos

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Timers override the defaults in limits.go; zero fields keep the default.
// Tests shrink them so a crash loop or a drain takes milliseconds.
type Timers struct {
	Tick               time.Duration
	BackoffInitial     time.Duration
	BackoffMax         time.Duration
	CrashLoopWindow    time.Duration
	CrashLoopHold      time.Duration
	StableRun          time.Duration
	StopGrace          time.Duration
	PullCooldown       time.Duration
	ChainStabilization time.Duration
	DropStabilization  time.Duration
	RecoveryWindow     time.Duration
	MigrationStep      time.Duration // per-step ack timeout
	MigrationRetainFor time.Duration
	MigrationRetry     time.Duration // wait before re-trying a failed migration
	AvoidRTT           time.Duration
	AvoidTTL           time.Duration
	CheckpointEvery    time.Duration
	GateReportEvery    time.Duration
	SendTimeout        time.Duration
	QuorumHeardWithin  time.Duration
	DrainRatePerSec    int
	BackpressureHigh   float64
	BackpressureLow    float64

	// DuplicateRaceWindow: another node's claim to run a daemon that runs
	// here, first seen this soon after the local copy started, is a race
	// placement settles; a later one cannot stop the local copy
	// (attribution.go).
	DuplicateRaceWindow time.Duration
}

func (t Timers) withDefaults() Timers {
	d := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	d(&t.Tick, DefaultTickInterval)
	d(&t.BackoffInitial, DefaultBackoffInitial)
	d(&t.BackoffMax, DefaultBackoffMax)
	d(&t.CrashLoopWindow, DefaultCrashLoopWindow)
	d(&t.CrashLoopHold, DefaultCrashLoopHold)
	d(&t.StableRun, DefaultStableRun)
	d(&t.StopGrace, DefaultStopGrace)
	d(&t.PullCooldown, DefaultPullCooldown)
	d(&t.ChainStabilization, DefaultChainStabilization)
	d(&t.DropStabilization, DefaultDropStabilization)
	d(&t.RecoveryWindow, DefaultRecoveryWindow)
	d(&t.MigrationStep, DefaultMigrationStepTimeout)
	d(&t.MigrationRetainFor, DefaultMigrationRetainFor)
	d(&t.MigrationRetry, DefaultMigrationRetryAfter)
	d(&t.AvoidRTT, DefaultAvoidRTT)
	d(&t.AvoidTTL, DefaultAvoidTTL)
	d(&t.CheckpointEvery, DefaultCheckpointEvery)
	d(&t.GateReportEvery, DefaultGateReportEvery)
	d(&t.SendTimeout, DefaultSendTimeout)
	d(&t.QuorumHeardWithin, DefaultQuorumHeardWithin)
	d(&t.DuplicateRaceWindow, DefaultDuplicateRaceWindow)
	if t.DrainRatePerSec <= 0 {
		t.DrainRatePerSec = DefaultDrainRatePerSec
	}
	if t.BackpressureHigh <= 0 {
		t.BackpressureHigh = DefaultBackpressureHigh
	}
	if t.BackpressureLow <= 0 || t.BackpressureLow >= t.BackpressureHigh {
		// Keep the default gap ratio so the flag cannot flap.
		t.BackpressureLow = t.BackpressureHigh * DefaultBackpressureLow / DefaultBackpressureHigh
	}
	return t
}

// Config configures a Runtime.
type Config struct {
	Self         identity.NodeID
	Label        string
	Addr         string
	Version      string
	Capabilities []string
	Spec         Spec
	// Factories builds daemons by GroupSpec.DaemonKind. A node without the
	// factory for a kind refuses migrations of it; make placement aware of
	// that with a capability in Capabilities and the group's Requires.
	Factories map[string]Factory
	Messenger messaging.Messenger
	Logs      LogSink     // optional
	Failures  FailureSink // optional
	Clock     func() time.Time
	// Resources samples the node's gauges (optional). Without it CPU and
	// memory come from /proc where available and Saturation is the declared
	// load of the daemons running here.
	Resources func() snapshot.Resources
	Timers    Timers
}

// ErrConfig wraps configuration errors from New.
var ErrConfig = errors.New("meshos: bad config")

// Runtime is one node's MeshOS. Create it with New, start it with Run.
type Runtime struct {
	cfg     Config
	tm      Timers
	now     func() time.Time
	self    NodeID
	sup     timing
	kinds   map[string]GroupSpec // group name → spec
	latest  atomic.Pointer[snapshot.NodeSnapshot]
	baseCtx atomic.Pointer[context.Context]

	changes      chan struct{}
	kick         chan struct{} // run a pass now (the first cluster view)
	inbox        chan inbound
	inboxShare   inboxShare
	inboxDropped atomic.Uint64
	badMessages  atomic.Uint64
	sendSem      chan struct{}
	sendDropped  atomic.Uint64
	// misattributed counts messages refused for their sender (attribution.go).
	misattributed atomic.Uint64

	mu           sync.Mutex
	ctx          context.Context
	cluster      *snapshot.ClusterSnapshot
	intent       ClusterIntent
	haveIntent   bool
	counters     snapshot.Counters
	datafort     snapshot.Datafort      // SetDatafort
	blobs        []snapshot.BlobHolding // SetDatafort
	peers        []snapshot.PeerView
	daemons      map[string]*supervisor
	replicas     map[string]*replica
	migOut       map[string]*outMigration
	migIn        map[string]*inMigration
	finished     []finishedMigration
	migSeq       uint64
	migRetryAt   map[string]time.Time // daemon → no new migration before
	maint        snapshot.Maintenance
	maintGen     uint64
	avoid        map[NodeID]snapshot.AvoidEntry
	pending      map[string]*snapshot.PendingAction
	failures     []snapshot.Failure
	failSeq      uint64
	gates        gateState
	acted        actedGens
	trend        []float64
	gen          uint64
	lastHash     uint64
	hashedSat    map[string]float64 // saturations the last structural hash used, by daemon ("": the node's)
	startedAt    time.Time
	assign       *Assignment
	backpressure bool
	lastPush     time.Time
	pushed       map[string]uint64 // daemon → hash of the last checkpoint pushed
	// forkStates holds what each local fork member starts from once the
	// fork point is known; forkAsked rate-limits asking for it (fork.go).
	forkStates  map[string]forkStart
	forkAsked   map[string]time.Time
	pushes      []push
	freshUntil  map[NodeID]time.Time      // invalidated nodes: their work placed as if new until then
	view        *snapshot.ClusterSnapshot // the last pass's planning view
	seenPending map[string]bool
}

type inbound struct {
	from NodeID
	msg  *message
}

// finishedMigration is a migration retained for display, with the fencing
// generation the peer reported at cutover.
type finishedMigration struct {
	m        snapshot.Migration
	at       time.Time
	out      bool
	peerGen  uint64
	cutover  bool
	lineage  snapshot.Lineage
	daemonID string
}

// New validates cfg and builds a Runtime (nothing runs until Run).
func New(cfg Config) (*Runtime, error) {
	if !cfg.Self.Valid() {
		return nil, fmt.Errorf("%w: Self: %w", ErrConfig, identity.ErrZeroID)
	}
	if cfg.Messenger == nil {
		return nil, fmt.Errorf("%w: Messenger is required", ErrConfig)
	}
	if cfg.Messenger.Self() != cfg.Self {
		return nil, fmt.Errorf("%w: Messenger is %v, Self is %v", ErrConfig, cfg.Messenger.Self(), cfg.Self)
	}
	if err := cfg.Spec.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	tm := cfg.Timers.withDefaults()
	rt := &Runtime{
		cfg: cfg, tm: tm, now: cfg.Clock, self: cfg.Self,
		kinds:       map[string]GroupSpec{},
		changes:     make(chan struct{}, 1),
		kick:        make(chan struct{}, 1),
		inbox:       make(chan inbound, InboxLen),
		sendSem:     make(chan struct{}, SendsInflightMax),
		daemons:     map[string]*supervisor{},
		replicas:    map[string]*replica{},
		migOut:      map[string]*outMigration{},
		migIn:       map[string]*inMigration{},
		migRetryAt:  map[string]time.Time{},
		avoid:       map[NodeID]snapshot.AvoidEntry{},
		pending:     map[string]*snapshot.PendingAction{},
		seenPending: map[string]bool{},
		pushed:      map[string]uint64{},
		forkStates:  map[string]forkStart{},
		freshUntil:  map[NodeID]time.Time{},
		forkAsked:   map[string]time.Time{},
		gates:       newGateState(),
	}
	for _, g := range cfg.Spec.Groups {
		rt.kinds[g.Name] = g
	}
	rt.sup = timing{
		now: cfg.Clock, backoffInitial: tm.BackoffInitial, backoffMax: tm.BackoffMax,
		crashWindow: tm.CrashLoopWindow, crashHold: tm.CrashLoopHold, stableRun: tm.StableRun,
		stopGrace: tm.StopGrace, poll: tm.Tick,
	}
	rt.startedAt = rt.now()
	rt.maint = snapshot.Maintenance{State: snapshot.MaintActive, Since: rt.startedAt}
	rt.publish(rt.now())
	return rt, nil
}

// Latest is the node's current snapshot; lock-free, never nil after New.
// The value is immutable.
func (rt *Runtime) Latest() *snapshot.NodeSnapshot { return rt.latest.Load() }

// Changes signals (coalesced, capacity one) each structural change of
// Latest: the cue for gossip to sign and publish.
func (rt *Runtime) Changes() <-chan struct{} { return rt.changes }

// Assignment is the placement this node computed on its last tick (nil
// before the first cluster view).
func (rt *Runtime) Assignment() *Assignment {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.assign
}

// SetCluster hands in the latest folded cluster view and admin intent.
func (rt *Runtime) SetCluster(cs *snapshot.ClusterSnapshot, intent ClusterIntent) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.cluster == nil && cs != nil {
		// The first view: place now rather than up to a tick later.
		rt.wake()
	}
	rt.cluster = cs
	if !rt.haveIntent {
		// One-shot generations that predate this process were acted on (or
		// deliberately skipped) by an earlier life of the node.
		rt.acted.baseline(rt.self, intent)
		rt.haveIntent = true
	}
	rt.intent = intent
}

// wake asks Run for a pass now rather than at the next tick; wakes
// that arrive while one is pending merge. Safe with or without rt.mu.
func (rt *Runtime) wake() {
	select {
	case rt.kick <- struct{}{}:
	default:
	}
}

// SetCounters records the transport's counters for the next snapshot.
func (rt *Runtime) SetCounters(c snapshot.Counters) {
	rt.mu.Lock()
	rt.counters = c
	rt.mu.Unlock()
}

// SetDatafort records the node's blob store telemetry and the blobs it
// holds (node/blob) for its snapshot. A draining node stays in
// EnteringMaintenance until d.DrainLeft is 0: its blob replicas moved.
func (rt *Runtime) SetDatafort(d snapshot.Datafort, blobs []snapshot.BlobHolding) {
	blobs = slices.Clone(blobs)
	rt.mu.Lock()
	rt.datafort, rt.blobs = d, blobs
	rt.mu.Unlock()
}

// SetPeers records this node's view of its neighbours (RTT, health): the
// snapshot's mesh edges and the avoid list's input.
func (rt *Runtime) SetPeers(p []snapshot.PeerView) {
	p = slices.Clone(p)
	slices.SortFunc(p, func(a, b snapshot.PeerView) int { return cmp.Compare(a.Peer, b.Peer) })
	rt.mu.Lock()
	rt.peers = p
	rt.mu.Unlock()
}

// Run drives the node until ctx ends: one reconcile pass per tick (the timer
// is reset after the work, so a slow pass delays the next instead of
// skipping it), with inbound mesh messages handled between ticks. On return
// every local daemon has been shut down.
func (rt *Runtime) Run(ctx context.Context) error {
	rt.mu.Lock()
	if rt.ctx != nil {
		rt.mu.Unlock()
		return errors.New("meshos: Run called twice")
	}
	rt.ctx = ctx
	rt.baseCtx.Store(&ctx)
	rt.mu.Unlock()
	rt.cfg.Messenger.Handle(messaging.ChanMigration, rt.handle)
	defer rt.shutdown()
	tm := time.NewTimer(0)
	defer tm.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case in := <-rt.inbox:
			rt.inboxShare.give(in.from)
			rt.dispatch(in)
		case <-tm.C:
			rt.tick(rt.now())
			tm.Reset(rt.tm.Tick)
		case <-rt.kick:
			if !tm.Stop() {
				select {
				case <-tm.C:
				default:
				}
			}
			rt.tick(rt.now())
			tm.Reset(rt.tm.Tick)
		}
	}
}

func (rt *Runtime) shutdown() {
	rt.mu.Lock()
	sups := make([]*supervisor, 0, len(rt.daemons))
	for _, s := range rt.daemons {
		sups = append(sups, s)
	}
	rt.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range sups {
		wg.Add(1)
		go func() { defer wg.Done(); s.stop(rt.tm.StopGrace) }()
	}
	wg.Wait()
}

// handle is the Messenger handler: decode (bounded, copying) and queue.
func (rt *Runtime) handle(from identity.NodeID, b []byte) {
	if !rt.inboxShare.take(from) {
		rt.inboxDropped.Add(1)
		return
	}
	m, err := decodeMessage(b)
	if err != nil {
		rt.inboxShare.give(from)
		if n := rt.badMessages.Add(1); n == 1 || n%100 == 0 {
			rt.logf(api.LevelWarn, "", "dropped bad message from %v (%d so far): %v", from, n, err)
		}
		return
	}
	select {
	case rt.inbox <- inbound{from: from, msg: m}:
	default:
		rt.inboxShare.give(from)
		rt.inboxDropped.Add(1)
	}
}

// send delivers m to a peer without blocking the caller; at most
// SendsInflightMax sends run at once and the rest are dropped and counted
// (every protocol here retries on its own schedule).
func (rt *Runtime) send(to NodeID, m *message) {
	b, err := m.encode()
	if err != nil {
		rt.logf(api.LevelError, m.Daemon, "encode %d for %v: %v", m.Kind, to, err)
		return
	}
	select {
	case rt.sendSem <- struct{}{}:
	default:
		rt.sendDropped.Add(1)
		return
	}
	ctx := rt.runCtx()
	go func() {
		defer func() { <-rt.sendSem }()
		cctx, cancel := context.WithTimeout(ctx, rt.tm.SendTimeout)
		defer cancel()
		if err := rt.cfg.Messenger.Send(cctx, to, messaging.ChanMigration, b); err != nil && ctx.Err() == nil {
			rt.logf(api.LevelDebug, m.Daemon, "send %d to %v: %v", m.Kind, to, err)
		}
	}()
}

// runCtx is Run's context (Background before Run). Lock-free because
// send is called with rt.mu held.
func (rt *Runtime) runCtx() context.Context {
	if c := rt.baseCtx.Load(); c != nil {
		return *c
	}
	return context.Background()
}

func (rt *Runtime) dispatch(in inbound) {
	switch in.msg.Kind {
	case msgMigAck:
		rt.onMigAck(in.from, in.msg)
	case msgMigOffer, msgMigReplay, msgMigCutover, msgMigAbort:
		rt.onMigTarget(in.from, in.msg)
	case msgChainAppend:
		rt.onChainAppend(in.from, in.msg)
	case msgChainSyncReq:
		rt.onChainSyncReq(in.from, in.msg)
	case msgChainSyncResp:
		rt.onChainSyncResp(in.from, in.msg)
	case msgWarmReq:
		rt.onWarmReq(in.from, in.msg)
	case msgWarmResp:
		rt.onWarmResp(in.from, in.msg)
	case msgForkReq:
		rt.onForkReq(in.from, in.msg)
	case msgForkResp:
		rt.onForkResp(in.from, in.msg)
	}
}

// logf writes a runtime (daemon "") or daemon log record.
func (rt *Runtime) logf(level api.LogLevel, daemon, format string, args ...any) {
	rt.logText(level, daemon, fmt.Sprintf(format, args...))
}

func (rt *Runtime) logText(level api.LogLevel, daemon, text string) {
	if rt.cfg.Logs == nil {
		return
	}
	if len(text) > LogTextBytesMax {
		text = text[:LogTextBytesMax]
	}
	rt.cfg.Logs.AppendLog(api.LogRecord{At: rt.now(), Node: rt.self, Daemon: daemon, Level: level, Text: text})
}

// failLocked records a failure in the snapshot ring and the sink. rt.mu held.
func (rt *Runtime) failLocked(source, reason string) {
	rt.failSeq++
	f := snapshot.Failure{Seq: rt.failSeq, At: rt.now(), Node: rt.self, Source: source, Reason: reason}
	rt.failures = append(rt.failures, f)
	if len(rt.failures) > FailuresRingMax {
		rt.failures = slices.Delete(rt.failures, 0, len(rt.failures)-FailuresRingMax)
	}
	if rt.cfg.Failures != nil {
		rt.cfg.Failures.AppendFailure(f)
	}
}

func (rt *Runtime) fail(source, reason string) {
	rt.mu.Lock()
	rt.failLocked(source, reason)
	rt.mu.Unlock()
}

// tick is one reconcile pass.
func (rt *Runtime) tick(now time.Time) {
	rt.mu.Lock()
	// Pending actions not noted again during this pass are done.
	rt.seenPending = map[string]bool{}
	rt.reapLocked(now)
	rt.refreshAvoidLocked(now)
	rt.applyIntentLocked(now)
	rt.stepMaintenanceLocked(now)
	rt.reconcileLocked(now)
	rt.stepChainsLocked(now)
	rt.updateBackpressureLocked(now)
	for id := range rt.pending {
		if !rt.seenPending[id] {
			delete(rt.pending, id)
			delete(rt.gates.reported, id)
		}
	}
	rt.mu.Unlock()
	rt.runPushes()
	rt.publish(now)
}

// reapLocked drops stopped supervisors and expired finished migrations.
func (rt *Runtime) reapLocked(now time.Time) {
	for id, s := range rt.daemons {
		select {
		case <-s.done:
			// A daemon stopped for its migration's replay stays listed
			// until cutover (or rollback restarts it).
			if rt.outboundFor(id) == nil {
				delete(rt.daemons, id)
			}
		default:
		}
	}
	rt.expireInboundLocked(now)
	kept := rt.finished[:0]
	for _, f := range rt.finished {
		if now.Sub(f.at) < rt.tm.MigrationRetainFor {
			kept = append(kept, f)
		}
	}
	rt.finished = kept
	if len(rt.finished) > MigrationsRetainedMax {
		rt.finished = slices.Delete(rt.finished, 0, len(rt.finished)-MigrationsRetainedMax)
	}
	for d, at := range rt.migRetryAt {
		if !now.Before(at) {
			delete(rt.migRetryAt, d)
		}
	}
}

func (rt *Runtime) factoryFor(group string) (GroupSpec, Factory, bool) {
	g, ok := rt.kinds[group]
	if !ok {
		return GroupSpec{}, nil, false
	}
	f, ok := rt.cfg.Factories[g.DaemonKind]
	return g, f, ok && f != nil
}

// startDaemonLocked starts a supervisor for p with an optional state.
func (rt *Runtime) startDaemonLocked(p DaemonPlacement, state []byte) bool {
	_, f, ok := rt.factoryFor(p.Group)
	if !ok {
		return false
	}
	info := DaemonInfo{ID: p.ID, Group: p.Group, Kind: p.Kind, Lineage: p.Lineage}
	s := newSupervisor(info, f, rt.sup, rt.logText, rt.fail, state)
	s.changed = rt.wake
	s.origin = rt.originLocked(p.ID, rt.now())
	rt.daemons[p.ID] = s
	ctx := rt.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	s.start(ctx)
	return true
}
