package chain

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/ratelimit"
)

// SubscriptionService carries log and failure subscriptions over
// messaging.ChanSubscribe. A mesh channel has one handler per node, so one
// service plays both roles:
//
//   - server (when it has a DB): a client's lease (a filter and a resume
//     seq) is set up off the receive path (leasework.go: a per-client setup
//     budget, a bounded queue, LeaseSetupWorkers doing the backfill scans),
//     then a goroutine tails the local "logs" or "failures" log and pushes
//     matching records, at most PushMaxRecords / PushMaxBytes per
//     push and PushesPerSecond pushes per second. When a lease falls more
//     than MaxBacklogRecords behind the head, the oldest records are skipped
//     and counted (dropped), and the client is told it lagged. A lease not
//     renewed within LeaseTTL ends.
//   - client: SubscribeLogs / SubscribeFailures send a lease to every node
//     every RenewInterval, merge the pushes of all nodes into one bounded
//     api.Stream, de-duplicate by per-node seq, and when a push shows a gap
//     (a lost datagram) mark the stream lagged and ask that node to rewind
//     to the last seq received + 1. A pushed record is believed only
//     about its sender: one whose node id is not the pushing node's (the
//     Noise-authenticated peer) is dropped and counted (Misattributed).
//     A node's logs and failures are only ever its own records (its log
//     and failure sinks stamp its id), so nothing legitimate is relayed;
//     the one honest source of a foreign id is a data dir reused under a
//     new node key, whose old records then read as another node's and
//     are dropped like forgeries, since they cannot be told apart.
type SubscriptionService struct {
	db  *DB
	m   messaging.Messenger
	cfg SubscriptionConfig

	runCtx atomic.Pointer[context.Context]

	smu       sync.Mutex
	leases    map[leaseKey]*lease
	perClient map[identity.NodeID]int
	stopped   bool // Run is ending: no lease is set up any more

	setups      chan leaseSetup
	setupBudget *ratelimit.Table[identity.NodeID]

	cmu    sync.RWMutex
	subs   map[uint64]*clientSub
	nextID atomic.Uint64

	stats subStats
}

// SubscriptionConfig tunes the service; zero fields take defaults.
type SubscriptionConfig struct {
	LeaseTTL           time.Duration // default DefaultLeaseTTL
	RenewInterval      time.Duration // default DefaultLeaseRenewInterval
	PushesPerSecond    float64       // per lease; default DefaultPushesPerSecond
	MaxBacklogRecords  uint64        // default LeaseMaxBacklogRecords
	LogBackfillRecords uint64        // default DefaultLogBackfillRecords
	StreamLen          int           // client stream buffer; default SubscriberStreamLen
}

func (c SubscriptionConfig) withDefaults() SubscriptionConfig {
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.RenewInterval <= 0 {
		c.RenewInterval = DefaultLeaseRenewInterval
	}
	if c.PushesPerSecond <= 0 {
		c.PushesPerSecond = DefaultPushesPerSecond
	}
	if c.MaxBacklogRecords == 0 {
		c.MaxBacklogRecords = LeaseMaxBacklogRecords
	}
	if c.LogBackfillRecords == 0 {
		c.LogBackfillRecords = DefaultLogBackfillRecords
	}
	if c.StreamLen <= 0 {
		c.StreamLen = SubscriberStreamLen
	}
	return c
}

type subStats struct {
	leases, expired, refused, pushes, pushed, dropped, lagged, tailLagged, rewinds, sendErrors, malformed, stray atomic.Uint64
	rateLimited, setupQueueFull, backfillTruncated                                                               atomic.Uint64
	misattributed                                                                                                atomic.Uint64 // client side: pushed records naming another node
}

// SubscriptionStats are the service's counters.
type SubscriptionStats struct {
	Leases     uint64 // leases currently served
	Expired    uint64 // leases ended for want of renewal
	Refused    uint64 // leases refused (caps)
	Pushes     uint64 // pushes sent
	Pushed     uint64 // records pushed
	Dropped    uint64 // records skipped by the backlog bound (server side)
	Lagged     uint64 // times a lease fell behind its backlog bound (server side)
	TailLagged uint64 // times a lease's local tail fell back to disk (no loss)
	Rewinds    uint64 // leases rewound after a client saw a gap
	SendErrors uint64
	Malformed  uint64 // messages or records that did not decode
	Stray      uint64 // pushes for no known subscription

	RateLimited       uint64 // lease setups and rewinds refused by the client's setup budget
	SetupQueueFull    uint64 // lease setups refused because the setup queue was full
	BackfillTruncated uint64 // filtered backfills that hit the scan budget before their matches
	// Misattributed counts pushed records (client side) that named a node
	// other than the one that pushed them: dropped, never shown.
	Misattributed uint64
}

// NewSubscriptionService makes the service. db may be nil for a node that
// only subscribes (it then serves no leases). Call Run to start it.
func NewSubscriptionService(db *DB, m messaging.Messenger, cfg SubscriptionConfig) *SubscriptionService {
	s := &SubscriptionService{
		db:        db,
		m:         m,
		cfg:       cfg.withDefaults(),
		leases:    map[leaseKey]*lease{},
		perClient: map[identity.NodeID]int{},
		subs:      map[uint64]*clientSub{},

		setups:      make(chan leaseSetup, LeaseSetupQueueLen),
		setupBudget: ratelimit.New[identity.NodeID](LeaseSetupsPerSecondPerClient, LeaseSetupBurstPerClient, MaxLeaseClients),
	}
	// Random start: a restarted client must not reuse ids a server still
	// holds leases for.
	s.nextID.Store(rand.Uint64() >> 1)
	return s
}

// Stats returns the counters.
func (s *SubscriptionService) Stats() SubscriptionStats {
	st := &s.stats
	s.smu.Lock()
	n := len(s.leases)
	s.smu.Unlock()
	return SubscriptionStats{
		Leases: uint64(n), Expired: st.expired.Load(), Refused: st.refused.Load(), Pushes: st.pushes.Load(),
		Pushed: st.pushed.Load(), Dropped: st.dropped.Load(), Lagged: st.lagged.Load(), TailLagged: st.tailLagged.Load(), Rewinds: st.rewinds.Load(),
		SendErrors: st.sendErrors.Load(), Malformed: st.malformed.Load(), Stray: st.stray.Load(),
		RateLimited: st.rateLimited.Load(), SetupQueueFull: st.setupQueueFull.Load(), BackfillTruncated: st.backfillTruncated.Load(),
		Misattributed: st.misattributed.Load(),
	}
}

// Run registers the ChanSubscribe handler and expires leases until ctx
// ends; then every lease and subscription of the service ends.
func (s *SubscriptionService) Run(ctx context.Context) error {
	s.runCtx.Store(&ctx)
	stopWorkers := s.startSetupWorkers()
	s.m.Handle(messaging.ChanSubscribe, s.Handle)
	every := min(s.cfg.LeaseTTL/4, time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.smu.Lock()
			s.stopped = true
			ls := make([]*lease, 0, len(s.leases))
			for _, l := range s.leases {
				ls = append(ls, l)
			}
			s.smu.Unlock()
			// No setup is queued after stopped: the workers end every
			// lease still waiting for one, so each done below closes.
			stopWorkers()
			for _, l := range ls {
				l.cancel()
				<-l.done
			}
			return nil
		case <-t.C:
			now := time.Now().UnixNano()
			s.smu.Lock()
			for _, l := range s.leases {
				if l.expires.Load() < now {
					l.cancel()
					s.stats.expired.Add(1)
				}
			}
			s.smu.Unlock()
		}
	}
}

// send delivers msg, short-circuiting to our own handler for self (the
// embedded node subscribes to its own logs like any other node's).
func (s *SubscriptionService) send(ctx context.Context, to identity.NodeID, msg []byte) error {
	if to == s.m.Self() {
		s.Handle(to, msg)
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, SubscribeSendTimeout)
	defer cancel()
	return s.m.Send(sctx, to, messaging.ChanSubscribe, msg)
}

// Handle is the messaging.ChanSubscribe handler; it never blocks.
func (s *SubscriptionService) Handle(from identity.NodeID, msg []byte) {
	m, err := decodeSub(bytes.Clone(msg))
	if err != nil {
		s.stats.malformed.Add(1)
		return
	}
	switch m.Type {
	case subLeaseLogs, subLeaseFailures:
		s.onLease(from, m)
	case subCancel:
		s.smu.Lock()
		if l := s.leases[leaseKey{from, m.Sub}]; l != nil {
			l.cancel()
		}
		s.smu.Unlock()
	case subPushLogs, subPushFailures:
		s.cmu.RLock()
		c := s.subs[m.Sub]
		s.cmu.RUnlock()
		if c == nil || (m.Type == subPushLogs) != (c.kind == subLeaseLogs) {
			s.stats.stray.Add(1)
			return
		}
		c.onPush(from, m)
	}
}

// ---- server role ----

type leaseKey struct {
	client identity.NodeID
	sub    uint64
}

type lease struct {
	key        leaseKey
	kind       subType
	filter     api.LogFilter
	matchLower string
	expires    atomic.Int64 // Unix nanoseconds
	sentTo     atomic.Uint64
	lastPush   atomic.Int64
	rewind     chan uint64
	cancel     context.CancelFunc
	done       chan struct{}
}

// onLease runs on the receive path: it renews a known lease, or admits a
// new one (caps, the client's setup budget, room in the setup queue) and
// queues its setup. It never reads the log: the setup workers do
// (leasework.go).
func (s *SubscriptionService) onLease(from identity.NodeID, m *subMsg) {
	if s.db == nil {
		return
	}
	p := s.runCtx.Load()
	if p == nil {
		return
	}
	now := time.Now()
	key := leaseKey{from, m.Sub}
	s.smu.Lock()
	defer s.smu.Unlock()
	if s.stopped {
		return
	}
	if l := s.leases[key]; l != nil {
		s.renewLocked(l, m, now)
		return
	}
	if len(s.leases) >= MaxLeases || s.perClient[from] >= MaxLeasesPerClient {
		s.stats.refused.Add(1)
		return
	}
	if !s.setupBudget.Allow(from, s.db.Now()) {
		s.stats.rateLimited.Add(1)
		return
	}
	ctx, cancel := context.WithCancel(*p)
	l := &lease{
		key:        key,
		kind:       m.Type,
		filter:     m.Filter,
		matchLower: strings.ToLower(m.Filter.Match),
		rewind:     make(chan uint64, 1),
		cancel:     cancel,
		done:       make(chan struct{}),
	}
	l.expires.Store(now.Add(s.cfg.LeaseTTL).UnixNano())
	if !s.queueSetup(leaseSetup{ctx: ctx, l: l, resume: m.Resume}) {
		cancel()
		s.stats.setupQueueFull.Add(1)
		return
	}
	s.leases[key] = l
	s.perClient[from]++
}

// renewLocked extends a lease and passes on a rewind the client asked for
// (or implied), within the client's setup budget: a rewind re-reads the log
// from the client's cursor, as a setup does.
func (s *SubscriptionService) renewLocked(l *lease, m *subMsg, now time.Time) {
	l.expires.Store(now.Add(s.cfg.LeaseTTL).UnixNano())
	sent := l.sentTo.Load()
	quiet := now.UnixNano()-l.lastPush.Load() > int64(RewindQuietInterval)
	// An explicit rewind (the client saw a gap), or a renewal that is
	// behind what we sent while nothing is in flight (the last push was
	// lost and no later one revealed the gap).
	if m.Resume == 0 || m.Resume >= sent || (m.Flags&subFlagRewind == 0 && !quiet) {
		return
	}
	if !s.setupBudget.Allow(l.key.client, s.db.Now()) {
		// The next quiet renewal asks again.
		s.stats.rateLimited.Add(1)
		return
	}
	select {
	case l.rewind <- m.Resume:
	default:
	}
}

func (s *SubscriptionService) endLease(l *lease) {
	s.smu.Lock()
	if s.leases[l.key] == l {
		delete(s.leases, l.key)
		if s.perClient[l.key.client]--; s.perClient[l.key.client] <= 0 {
			delete(s.perClient, l.key.client)
		}
	}
	s.smu.Unlock()
	close(l.done)
}

func (l *lease) matches(rec api.LogRecord) bool {
	f := l.filter
	return rec.Level >= f.MinLevel &&
		(f.Node == 0 || rec.Node == f.Node) &&
		(f.Daemon == "" || rec.Daemon == f.Daemon) &&
		(l.matchLower == "" || strings.Contains(strings.ToLower(rec.Text), l.matchLower))
}

// leaseRun is one lease's pushing state, owned by its goroutine.
type leaseRun struct {
	s       *SubscriptionService
	l       *lease
	log     *Log
	tail    *Tail
	start   uint64 // where the lease began
	cursor  uint64 // next seq to consume
	sentTo  uint64 // the last push covered up to here
	batch   [][]byte
	bytes   int
	dropped uint64
	lagged  uint64
	tokens  float64
	refill  time.Time
	dirty   bool // counters changed since the last push
}

func (s *SubscriptionService) runLease(ctx context.Context, l *lease, log *Log, start uint64) {
	s.stats.leases.Add(1)
	r := &leaseRun{s: s, l: l, log: log, start: start, cursor: start, sentTo: start, tokens: max(1, s.cfg.PushesPerSecond), refill: time.Now()}
	l.sentTo.Store(start)
	r.tail = log.Tail(ctx, start)
	defer func() {
		r.tail.Close()
		<-r.tail.Done()
		s.endLease(l)
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case to := <-l.rewind:
			r.restart(ctx, to)
			s.stats.rewinds.Add(1)
			continue
		case <-r.tail.LagSignal():
			// The local tail fell back to disk: nothing is lost, so the
			// client is not told; only the server's counter shows it.
			s.stats.tailLagged.Add(1)
			continue
		case e, ok := <-r.tail.C():
			if !ok {
				return
			}
			r.take(e)
		}
		r.drain()
		r.enforceBacklog(ctx)
		if len(r.batch) == 0 && !r.dirty {
			continue // nothing matched: the next push's range covers these
		}
		if !r.waitToken(ctx) {
			return
		}
		r.drain() // records that arrived while waiting ride along
		r.push(ctx)
	}
}

// restart re-tails from seq to (a rewind, or a push that could not be sent).
func (r *leaseRun) restart(ctx context.Context, to uint64) {
	r.tail.Close()
	<-r.tail.Done()
	r.cursor, r.sentTo, r.start = to, to, min(r.start, to)
	r.l.sentTo.Store(to)
	r.batch, r.bytes = nil, 0
	r.tail = r.log.Tail(ctx, to)
}

// take consumes one entry: matching records join the batch.
func (r *leaseRun) take(e Entry) {
	r.cursor = e.Seq + 1
	var rec []byte
	if r.l.kind == subLeaseLogs {
		lr, err := LogRecordOf(e)
		if err != nil {
			r.s.stats.malformed.Add(1)
			return
		}
		if !r.l.matches(lr) {
			return
		}
		rec = AppendLogRecord(nil, lr)
	} else {
		fr, err := FailureRecordOf(e)
		if err != nil {
			r.s.stats.malformed.Add(1)
			return
		}
		rec = AppendFailureRecord(nil, fr)
	}
	r.batch = append(r.batch, rec)
	r.bytes += len(rec) + 3
}

func (r *leaseRun) full() bool {
	return len(r.batch) >= PushMaxRecords || r.bytes >= PushMaxBytes-maxStoredRecordBytes
}

// drain takes whatever the tail already holds, up to one push.
func (r *leaseRun) drain() {
	for !r.full() {
		select {
		case e, ok := <-r.tail.C():
			if !ok {
				return
			}
			r.take(e)
		default:
			return
		}
	}
}

// enforceBacklog drops the oldest unsent records when the lease is too far
// behind the head: bounded memory and bandwidth beat an unbounded queue,
// and the drops are counted, not hidden.
func (r *leaseRun) enforceBacklog(ctx context.Context) {
	_, last := r.log.Bounds()
	bound := r.s.cfg.MaxBacklogRecords
	if last < r.cursor || last-r.cursor+1 <= bound {
		return
	}
	target := last - bound/2
	dropped := uint64(len(r.batch))
	r.batch, r.bytes = nil, 0
	for r.cursor <= target {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-r.tail.C():
			if !ok {
				return
			}
			r.take(e)
			dropped += uint64(len(r.batch))
			r.batch, r.bytes = nil, 0
		}
	}
	r.dropped += dropped
	r.lagged++
	r.dirty = true
	r.s.stats.dropped.Add(dropped)
	r.s.stats.lagged.Add(1)
}

// waitToken blocks until the lease's push rate allows one more push.
func (r *leaseRun) waitToken(ctx context.Context) bool {
	rate := r.s.cfg.PushesPerSecond
	burst := max(1, rate)
	for {
		now := time.Now()
		r.tokens = min(burst, r.tokens+now.Sub(r.refill).Seconds()*rate)
		r.refill = now
		if r.tokens >= 1 {
			r.tokens--
			return true
		}
		wait := time.Duration((1 - r.tokens) / rate * float64(time.Second))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

func (r *leaseRun) push(ctx context.Context) {
	typ := subPushLogs
	if r.l.kind == subLeaseFailures {
		typ = subPushFailures
	}
	m := &subMsg{Type: typ, Sub: r.l.key.sub, Start: r.start, From: r.sentTo, To: r.cursor, Dropped: r.dropped, Lagged: r.lagged, Records: r.batch}
	if err := r.s.send(ctx, r.l.key.client, m.encode()); err != nil {
		// Nothing reached the client: read the same records again later
		// rather than leave a hole the client cannot see.
		r.s.stats.sendErrors.Add(1)
		if ctx.Err() == nil {
			r.restart(ctx, r.sentTo)
		}
		return
	}
	r.s.stats.pushes.Add(1)
	r.s.stats.pushed.Add(uint64(len(r.batch)))
	r.sentTo = r.cursor
	r.l.sentTo.Store(r.cursor)
	r.l.lastPush.Store(time.Now().UnixNano())
	r.batch, r.bytes, r.dirty = nil, 0, false
}

// ---- client role ----

type clientSub struct {
	s      *SubscriptionService
	id     uint64
	kind   subType
	filter api.LogFilter
	since  uint64
	nodes  func() []identity.NodeID
	logs   *api.Stream[api.LogRecord]
	fails  *api.Stream[api.FailureRecord]

	mu      sync.Mutex
	cursors map[identity.NodeID]*subCursor
	wake    chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
}

type subCursor struct {
	next            uint64 // next seq expected from this node
	known           bool
	dropped, lagged uint64 // the server's running totals seen so far
	rewind          bool
}

// SubscribeLogs follows matching log records of every node nodes() lists
// (re-read at every renewal, so nodes that join are picked up), starting
// with each node's recent DefaultLogBackfillRecords.
func (s *SubscriptionService) SubscribeLogs(ctx context.Context, nodes func() []identity.NodeID, f api.LogFilter) (*api.Stream[api.LogRecord], error) {
	if len(f.Daemon) > MaxDaemonNameBytes || len(f.Match) > MaxFilterMatchBytes || f.MinLevel > api.LevelError {
		return nil, fmt.Errorf("%w: log filter out of bounds", ErrInvalid)
	}
	c, err := s.newSub(ctx, subLeaseLogs, nodes)
	if err != nil {
		return nil, err
	}
	c.filter = f
	c.logs = api.NewStream[api.LogRecord](s.cfg.StreamLen, c.cancel)
	s.startSub(c)
	return c.logs, nil
}

// SubscribeFailures follows failure records with seq > sinceSeq of every
// node (each node numbers its own failures).
func (s *SubscriptionService) SubscribeFailures(ctx context.Context, nodes func() []identity.NodeID, sinceSeq uint64) (*api.Stream[api.FailureRecord], error) {
	c, err := s.newSub(ctx, subLeaseFailures, nodes)
	if err != nil {
		return nil, err
	}
	c.since = sinceSeq
	c.fails = api.NewStream[api.FailureRecord](s.cfg.StreamLen, c.cancel)
	s.startSub(c)
	return c.fails, nil
}

func (s *SubscriptionService) newSub(ctx context.Context, kind subType, nodes func() []identity.NodeID) (*clientSub, error) {
	if s.runCtx.Load() == nil {
		return nil, fmt.Errorf("%w: subscription service not running", api.ErrNotConnected)
	}
	s.cmu.Lock()
	defer s.cmu.Unlock()
	if len(s.subs) >= MaxClientSubscriptions {
		return nil, fmt.Errorf("%w: %d subscriptions open", ErrInvalid, MaxClientSubscriptions)
	}
	c := &clientSub{s: s, id: s.nextID.Add(1), kind: kind, nodes: nodes, cursors: map[identity.NodeID]*subCursor{}, wake: make(chan struct{}, 1)}
	c.ctx, c.cancel = context.WithCancel(ctx)
	s.subs[c.id] = c
	return c, nil
}

// startSub runs the subscription until its context ends, the stream is
// closed (whose onClose cancels the context) or the service stops.
func (s *SubscriptionService) startSub(c *clientSub) {
	ctx := c.ctx
	runCtx := *s.runCtx.Load()
	go func() {
		defer func() {
			s.cmu.Lock()
			delete(s.subs, c.id)
			s.cmu.Unlock()
			c.closeStream()
			c.cancelAll()
		}()
		t := time.NewTicker(s.cfg.RenewInterval)
		defer t.Stop()
		c.renew(ctx)
		for {
			select {
			case <-ctx.Done():
				return
			case <-runCtx.Done():
				return
			case <-t.C:
				c.renew(ctx)
			case <-c.wake:
				c.renew(ctx)
			}
		}
	}()
}

func (c *clientSub) closeStream() {
	if c.logs != nil {
		c.logs.Close()
	} else {
		c.fails.Close()
	}
}

// renew sends a lease to every listed node (in parallel: one unreachable
// node must not delay the rest) and cancels leases of nodes no longer listed.
func (c *clientSub) renew(ctx context.Context) {
	listed := map[identity.NodeID]bool{}
	var msgs []struct {
		to  identity.NodeID
		msg []byte
	}
	c.mu.Lock()
	for _, n := range c.nodes() {
		if !n.Valid() || listed[n] || (c.kind == subLeaseLogs && c.filter.Node != 0 && n != c.filter.Node) {
			continue
		}
		if len(listed) >= MaxSubscriptionNodes {
			break
		}
		listed[n] = true
		cur := c.cursors[n]
		if cur == nil {
			cur = &subCursor{}
			if c.kind == subLeaseFailures {
				cur.next, cur.known = c.since+1, true
			}
			c.cursors[n] = cur
		}
		m := &subMsg{Type: c.kind, Sub: c.id, Filter: c.filter}
		if cur.known {
			m.Resume = cur.next
		}
		if cur.rewind {
			m.Flags |= subFlagRewind
			cur.rewind = false
		}
		msgs = append(msgs, struct {
			to  identity.NodeID
			msg []byte
		}{n, m.encode()})
	}
	var gone []identity.NodeID
	for n := range c.cursors {
		if !listed[n] {
			gone = append(gone, n)
			delete(c.cursors, n)
		}
	}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, x := range msgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.s.send(ctx, x.to, x.msg); err != nil {
				c.s.stats.sendErrors.Add(1)
			}
		}()
	}
	cancel := (&subMsg{Type: subCancel, Sub: c.id}).encode()
	for _, n := range gone {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.s.send(ctx, n, cancel)
		}()
	}
	wg.Wait()
}

// cancelAll tells every node the subscription ended, so leases end now
// rather than at expiry.
func (c *clientSub) cancelAll() {
	c.mu.Lock()
	nodes := make([]identity.NodeID, 0, len(c.cursors))
	for n := range c.cursors {
		nodes = append(nodes, n)
	}
	c.mu.Unlock()
	msg := (&subMsg{Type: subCancel, Sub: c.id}).encode()
	ctx, cancel := context.WithTimeout(context.Background(), SubscribeSendTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.s.send(ctx, n, msg)
		}()
	}
	wg.Wait()
}

func (c *clientSub) onPush(from identity.NodeID, m *subMsg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.cursors[from]
	if cur == nil {
		c.s.stats.stray.Add(1)
		return
	}
	// Server totals: a smaller value means the server restarted the lease.
	delta := func(seen *uint64, now uint64) uint64 {
		d := now
		if now >= *seen {
			d = now - *seen
		}
		*seen = now
		return d
	}
	if d := delta(&cur.dropped, m.Dropped); d > 0 {
		c.addDropped(d)
	}
	if d := delta(&cur.lagged, m.Lagged); d > 0 {
		c.markLagged(d)
	}
	if !cur.known {
		cur.next, cur.known = m.Start, true
	}
	if m.From > cur.next {
		// A push went missing: take nothing from this one (the rewind
		// resends it) so the stream never shows a hole.
		c.markLagged(1)
		cur.rewind = true
		signal(c.wake)
		return
	}
	for _, raw := range m.Records {
		if seq, ok := c.takePushed(from, raw, cur.next, m.To); ok {
			cur.next = seq + 1
		}
	}
	cur.next = max(cur.next, m.To)
}

// takePushed decodes one pushed record and offers it to the stream when it
// lies in [next, to) and is attributed to from, the node that pushed it: a
// node speaks for its own records only. ok reports whether the record
// consumed its seq (a misattributed one does: it is dropped, counted, and
// the cursor moves past it as past any other).
func (c *clientSub) takePushed(from identity.NodeID, raw []byte, next, to uint64) (seq uint64, ok bool) {
	if c.kind == subLeaseLogs {
		rec, err := DecodeLogRecord(raw)
		if err != nil {
			c.s.stats.malformed.Add(1)
			return 0, false
		}
		if rec.Seq < next || rec.Seq >= to {
			return 0, false
		}
		if rec.Node != from {
			c.s.stats.misattributed.Add(1)
			return rec.Seq, true
		}
		c.logs.Offer(rec)
		return rec.Seq, true
	}
	rec, err := DecodeFailureRecord(raw)
	if err != nil {
		c.s.stats.malformed.Add(1)
		return 0, false
	}
	if rec.Seq < next || rec.Seq >= to {
		return 0, false
	}
	if rec.Node != from {
		c.s.stats.misattributed.Add(1)
		return rec.Seq, true
	}
	c.fails.Offer(rec)
	return rec.Seq, true
}

func (c *clientSub) addDropped(n uint64) {
	if c.logs != nil {
		c.logs.AddDropped(n)
	} else {
		c.fails.AddDropped(n)
	}
}

func (c *clientSub) markLagged(n uint64) {
	if c.logs != nil {
		c.logs.MarkLagged(n)
	} else {
		c.fails.MarkLagged(n)
	}
}

// filtered reports whether f selects fewer than all records.
func filtered(f api.LogFilter) bool {
	return f.MinLevel > api.LevelTrace || f.Node != 0 || f.Daemon != "" || f.Match != ""
}

// backfillStart walks the log backwards from its end until it has seen want
// matching records or MaxFilteredBackfillScanRecords records (truncated),
// and returns the seq to tail from (never later than fallback).
func backfillStart(log *Log, l *lease, want uint64, fallback uint64) (start uint64, truncated bool) {
	_, last := log.Bounds()
	if last == 0 || want == 0 {
		return fallback, false
	}
	start = fallback
	var matched, scanned uint64
	_ = log.Reverse(last+1, func(e Entry) bool {
		scanned++
		if rec, err := LogRecordOf(e); err == nil && l.matches(rec) {
			matched++
			start = e.Seq
		}
		return matched < want && scanned < MaxFilteredBackfillScanRecords
	})
	truncated = matched < want && scanned >= MaxFilteredBackfillScanRecords
	return min(start, fallback), truncated
}
