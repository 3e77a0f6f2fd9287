package decktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/placement"
	"github.com/deck-mesh/deck/node/snapshot"
)

// StreamBufferRecords is the fixture streams' buffer.
const StreamBufferRecords = 8192

// ICECommit is one committed ICE proposal as recorded by the fixture.
type ICECommit struct {
	Action api.Action
	Sigs   []api.Signature
}

// Client is the fixture api.Client. Its command plane is the node's: a
// command.Commands over source (the fixture's view, Spec and admin state)
// and committer (the fixture's admin ledger), see the package doc.
type Client struct {
	mu sync.Mutex
	// nodes is the nodes' side of the view, as SetSnapshot set it; snap is
	// what Snapshot publishes: nodes with the admin fold's fields filled.
	nodes    *snapshot.ClusterSnapshot
	snap     *snapshot.ClusterSnapshot
	clock    func() time.Time
	opKey    *identity.Key
	opName   string
	readOnly string
	logs     []api.LogRecord
	failures []api.FailureRecord
	history  []snapshot.NodeSnapshot

	// The admin ledger: its genesis, every event in commit order (the
	// fixture's history first), the fold of them and its AUDIT records.
	genesis command.Genesis
	ledger  []*command.Event
	state   *command.AdminState
	audit   []api.AuditRecord
	// commits are the accepted events committed through this client.
	commits []*command.Event
	cmds    *command.Commands
	nonces  io.Reader
	// FailCommit, when set, makes the ledger refuse every admin and ICE
	// commit with it, after the command plane's own checks passed (to test
	// the refusal toasts).
	FailCommit error

	// blobBytes are the blobs Put into the fixture; blobIntents the blobs
	// whose intent changed through it, in order.
	blobBytes   map[api.BlobHash][]byte
	blobIntents []api.BlobHash
	// remote are the members of the subnets the view knows by summary
	// only, by path; focus is the one drilled into ("" none), focusCalls
	// every FocusSubnet accepted (subnets.go).
	remote     map[string][]snapshot.NodeView
	focus      string
	focusCalls []string

	// name is the cluster's name ("": ClusterName).
	name      string
	watchers  []watcher
	logSubs   []*api.Stream[api.LogRecord]
	failSubs  []*api.Stream[api.FailureRecord]
	auditSubs []*api.Stream[api.AuditRecord]
}

// New returns a fixture client over the fixture cluster with the full
// ledger (Snapshot), operator alice, clock T0, with logsN backlog log
// records.
func New(logsN int) *Client {
	c := &Client{
		nodes: cluster(), clock: func() time.Time { return T0 }, opKey: OperatorKey("alice"), opName: "alice",
		logs: Logs(logsN), failures: Failures(),
		nonces: &nonceStream{}, remote: remoteByPath(),
	}
	c.history = buildHistory(c.nodes)
	c.setLedger(Genesis(), Ledger())
	c.cmds = c.newCommands()
	return c
}

// NewCluster is New for a second fixture cluster, for the multi-cluster
// tests: the same shape (the same node ids, daemons and ledger), named
// name, each node's label prefixed with name and a dash, so a screen shows
// at once which cluster it reads.
func NewCluster(name string, logsN int) *Client {
	c := New(logsN)
	nodes := *c.nodes
	nodes.Cluster = name
	nodes.Nodes = append([]snapshot.NodeView(nil), nodes.Nodes...)
	for i := range nodes.Nodes {
		nodes.Nodes[i].Label = name + "-" + nodes.Nodes[i].Label
	}
	c.name = name
	c.nodes = &nodes
	c.history = buildHistory(c.nodes)
	c.publishLocked()
	return c
}

// watcher is one WatchSnapshots channel and the context it lives for.
type watcher struct {
	ctx context.Context
	ch  chan *snapshot.ClusterSnapshot
}

// Subscribed counts what is still subscribed to this client: snapshot
// watches whose context is live and log, failure and audit streams not
// closed. A deck that left this cluster must have none.
func (c *Client) Subscribed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, w := range c.watchers {
		if w.ctx.Err() == nil {
			n++
		}
	}
	open := func(done <-chan struct{}) {
		select {
		case <-done:
		default:
			n++
		}
	}
	for _, s := range c.logSubs {
		open(s.Done())
	}
	for _, s := range c.failSubs {
		open(s.Done())
	}
	for _, s := range c.auditSubs {
		open(s.Done())
	}
	return n
}

// nonceStream is the command plane's nonce source: nonceAt's values after
// the history's, one per read, so every fresh client draws the same
// sequence (io.ReadFull asks again if a read wants more than one value).
type nonceStream struct{ drawn atomic.Uint64 }

func (n *nonceStream) Read(p []byte) (int, error) {
	b := nonceAt(uint64(len(history)) + n.drawn.Add(1))
	return copy(p, b[:]), nil
}

// newCommands builds the command plane for the client's operator (none when
// read-only) on its clock and nonce stream.
func (c *Client) newCommands() *command.Commands {
	cfg := command.Config{Source: source{c}, Committer: committer{c}, Now: c.now, Rand: c.nonces}
	if c.readOnly == "" {
		cfg.Signer = identity.KeySigner{K: c.opKey}
	}
	cmds, err := command.New(cfg)
	if err != nil {
		// Source and Committer are always set above.
		panic(fmt.Sprintf("decktest: %v", err))
	}
	return cmds
}

func (c *Client) commands() *command.Commands {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cmds
}

func (c *Client) now() time.Time {
	c.mu.Lock()
	f := c.clock
	c.mu.Unlock()
	return f()
}

// SetClock replaces the fixture clock (proposal windows, commit windows and
// the freeze and lockouts the published snapshot shows use it).
func (c *Client) SetClock(f func() time.Time) { c.mu.Lock(); c.clock = f; c.mu.Unlock() }

// SetReadOnly makes Operator() report a read-only client with reason, and
// the command plane one without a signer.
func (c *Client) SetReadOnly(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readOnly = reason
	c.cmds = c.newCommands()
}

// SetSnapshot replaces the nodes' side of the view and notifies watchers.
// The fields the admin fold owns (freeze, operators, thresholds, lockouts,
// admin head) are the ledger's, whatever s says: to change them, commit or
// use SetLedger. A nil s publishes no snapshot (a console still waiting).
func (c *Client) SetSnapshot(s *snapshot.ClusterSnapshot) {
	c.mu.Lock()
	c.nodes = s
	snap := c.publishLocked()
	c.mu.Unlock()
	c.notify(snap)
}

// SetLedger replaces the admin ledger with events on genesis g (a cluster
// born with g's operators and thresholds), folds it with the node's fold
// and publishes the result. Events that do not meet g fold as rejected, as
// on a node.
func (c *Client) SetLedger(g command.Genesis, events []*command.Event) error {
	if _, _, err := command.Fold(g, events); err != nil {
		return fmt.Errorf("decktest: %w", err)
	}
	c.mu.Lock()
	c.setLedger(g, events)
	snap := c.publishLocked()
	c.mu.Unlock()
	c.notify(snap)
	return nil
}

// setLedger folds events on g; c.mu is held (or c is not shared yet).
func (c *Client) setLedger(g command.Genesis, events []*command.Event) {
	c.genesis = g
	c.ledger = append([]*command.Event(nil), events...)
	c.state, c.audit = fold(g, events)
	c.publishLocked()
}

// publishLocked rebuilds the published snapshot from nodes and the admin
// fold at the fixture clock, as the node's cluster view does; c.mu is held.
func (c *Client) publishLocked() *snapshot.ClusterSnapshot {
	if c.nodes == nil {
		c.snap = nil
		return nil
	}
	cs := *c.nodes
	c.applyFocus(&cs)
	fillAdmin(&cs, c.state, uint64(len(c.ledger)), c.clock())
	c.snap = &cs
	return c.snap
}

func (c *Client) notify(s *snapshot.ClusterSnapshot) {
	c.mu.Lock()
	ws := make([]chan *snapshot.ClusterSnapshot, len(c.watchers))
	for i, w := range c.watchers {
		ws[i] = w.ch
	}
	c.mu.Unlock()
	for _, w := range ws {
		select {
		case <-w:
		default:
		}
		select {
		case w <- s:
		default:
		}
	}
}

// EmitLogs offers records to every log subscriber.
func (c *Client) EmitLogs(recs ...api.LogRecord) {
	c.mu.Lock()
	subs := append([]*api.Stream[api.LogRecord](nil), c.logSubs...)
	c.mu.Unlock()
	for _, s := range subs {
		for _, r := range recs {
			s.Offer(r)
		}
	}
}

// Committed returns the admin actions committed through this client and
// accepted by the fold, in commit order.
func (c *Client) Committed() []api.Action {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []api.Action
	for _, ev := range c.commits {
		if ev.Kind() != command.KindICE {
			out = append(out, ev.Action())
		}
	}
	return out
}

// ICECommitted returns the ICE events committed through this client and
// accepted by the fold, with their signatures, in commit order.
func (c *Client) ICECommitted() []ICECommit {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []ICECommit
	for _, ev := range c.commits {
		if ev.Kind() == command.KindICE {
			out = append(out, ICECommit{Action: ev.Action(), Sigs: ev.Signatures()})
		}
	}
	return out
}

// SignAs signs payload as a fixture operator, in the co-signing text flow's
// place (what `deck ice sign` would produce).
func SignAs(name string, payload []byte) api.Signature {
	k := OperatorKey(name)
	return api.Signature{Operator: k.ID, Sig: k.Sign(payload)}
}

func (c *Client) Cluster() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.name != "" {
		return c.name
	}
	return ClusterName
}

func (c *Client) Operator() (api.OperatorInfo, bool, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.readOnly != "" {
		return api.OperatorInfo{}, false, c.readOnly
	}
	return api.OperatorInfo{ID: c.opKey.ID, Name: c.opName}, true, ""
}

func (c *Client) Snapshot() *snapshot.ClusterSnapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snap
}

func (c *Client) Admin() api.AdminCommands { return c.commands().Admin() }

func (c *Client) ICE() api.IceCommands { return c.commands().ICE() }

func (c *Client) Preview(ctx context.Context, a api.Action) (api.BlastRadius, error) {
	return c.commands().Preview(ctx, a)
}

// source is the command plane's view of the fixture, as the node's is of
// the node: the published snapshot as placement sees it, the fixture Spec
// and the current fold.
type source struct{ c *Client }

func (s source) Snapshot() *snapshot.ClusterSnapshot { return placement.HostingView(s.c.Snapshot()) }
func (s source) Spec() placement.Spec                { return Spec() }
func (s source) AdminState() *command.AdminState {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.c.state
}

// committer is the fixture's admin ledger: it appends the event, folds it
// into a clone of the state with command.Apply (a rejection is recorded in
// AUDIT, as a node's ledger records it), publishes the new state and
// snapshot, and offers the AUDIT record to subscribers.
type committer struct{ c *Client }

func (cm committer) Commit(ctx context.Context, ev *command.Event) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	c := cm.c
	c.mu.Lock()
	if c.FailCommit != nil {
		err := c.FailCommit
		c.mu.Unlock()
		return 0, err
	}
	next, rejected := command.Apply(c.state, ev)
	c.ledger = append(c.ledger, ev)
	seq := uint64(len(c.ledger))
	rec := command.AuditRecordFor(ev, rejected, seq)
	c.state = next
	c.audit = append(c.audit, rec)
	if rejected == nil {
		c.commits = append(c.commits, ev)
	}
	snap := c.publishLocked()
	subs := append([]*api.Stream[api.AuditRecord](nil), c.auditSubs...)
	c.mu.Unlock()
	c.notify(snap)
	for _, s := range subs {
		s.Offer(rec)
	}
	return seq, nil
}

var (
	_ api.Client        = (*Client)(nil)
	_ api.SubnetClient  = (*Client)(nil)
	_ command.Source    = source{}
	_ command.Committer = committer{}
)

func (c *Client) WatchSnapshots(ctx context.Context) <-chan *snapshot.ClusterSnapshot {
	ch := make(chan *snapshot.ClusterSnapshot, 1)
	c.mu.Lock()
	c.watchers = append(c.watchers, watcher{ctx: ctx, ch: ch})
	c.mu.Unlock()
	return ch
}

func (c *Client) SubscribeLogs(ctx context.Context, f api.LogFilter) (*api.Stream[api.LogRecord], error) {
	s := api.NewStream[api.LogRecord](StreamBufferRecords, nil)
	c.mu.Lock()
	backlog := c.logs
	c.logSubs = append(c.logSubs, s)
	c.mu.Unlock()
	for _, r := range backlog {
		if matchLog(f, r) {
			s.Offer(r)
		}
	}
	return s, nil
}

func matchLog(f api.LogFilter, r api.LogRecord) bool {
	return r.Level >= f.MinLevel && (f.Node == 0 || f.Node == r.Node) && (f.Daemon == "" || f.Daemon == r.Daemon)
}

func (c *Client) SubscribeFailures(ctx context.Context, since uint64) (*api.Stream[api.FailureRecord], error) {
	s := api.NewStream[api.FailureRecord](StreamBufferRecords, nil)
	c.mu.Lock()
	backlog := c.failures
	c.failSubs = append(c.failSubs, s)
	c.mu.Unlock()
	for _, r := range backlog {
		if r.Seq > since {
			s.Offer(r)
		}
	}
	return s, nil
}

func (c *Client) History(ctx context.Context, node api.NodeID, before time.Time, n int) ([]snapshot.NodeSnapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []snapshot.NodeSnapshot
	for _, h := range c.history { // newest first
		if len(out) >= n {
			break
		}
		if h.BuiltAt.Before(before) && (node == 0 || h.ID == node) {
			out = append(out, h)
		}
	}
	return out, nil
}

// buildHistory derives past node snapshots (one a minute for ten minutes)
// from the fixture: older snapshots lack the most recent pending actions.
func buildHistory(s *snapshot.ClusterSnapshot) []snapshot.NodeSnapshot {
	var out []snapshot.NodeSnapshot
	for m := 1; m <= 10; m++ {
		at := T0.Add(-time.Duration(m) * time.Minute)
		for _, n := range s.Nodes {
			ns := n.NodeSnapshot
			ns.BuiltAt = at
			ns.Pending = nil
			for _, p := range n.Pending {
				if !p.Since.After(at) {
					ns.Pending = append(ns.Pending, p)
				}
			}
			out = append(out, ns)
		}
	}
	return out
}

func (c *Client) Audit() api.AuditQuery { return &auditQuery{c: c, limit: -1} }

type auditQuery struct {
	c         *Client
	limit     int
	op        api.NodeID
	t0, t1    time.Time
	forceOnly bool
	since     uint64
}

func (q *auditQuery) clone() *auditQuery                      { n := *q; return &n }
func (q *auditQuery) Recent(n int) api.AuditQuery             { x := q.clone(); x.limit = n; return x }
func (q *auditQuery) ByOperator(id api.NodeID) api.AuditQuery { x := q.clone(); x.op = id; return x }
func (q *auditQuery) Between(a, b time.Time) api.AuditQuery {
	x := q.clone()
	x.t0, x.t1 = a, b
	return x
}
func (q *auditQuery) ForceOnly() api.AuditQuery       { x := q.clone(); x.forceOnly = true; return x }
func (q *auditQuery) Since(seq uint64) api.AuditQuery { x := q.clone(); x.since = seq; return x }

func (q *auditQuery) match(r api.AuditRecord) bool {
	return (q.op == 0 || r.Operator == q.op) && (!q.forceOnly || r.ICE) && r.Seq > q.since &&
		(q.t0.IsZero() || !r.At.Before(q.t0)) && (q.t1.IsZero() || r.At.Before(q.t1))
}

func (q *auditQuery) Collect(ctx context.Context) ([]api.AuditRecord, error) {
	q.c.mu.Lock()
	defer q.c.mu.Unlock()
	var out []api.AuditRecord
	for _, r := range q.c.audit {
		if q.match(r) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	if q.limit >= 0 && len(out) > q.limit {
		out = out[len(out)-q.limit:]
	}
	return out, nil
}

func (q *auditQuery) Stream(ctx context.Context) (*api.Stream[api.AuditRecord], error) {
	recs, err := q.Collect(ctx)
	if err != nil {
		return nil, err
	}
	s := api.NewStream[api.AuditRecord](StreamBufferRecords, nil)
	for _, r := range recs {
		s.Offer(r)
	}
	q.c.mu.Lock()
	q.c.auditSubs = append(q.c.auditSubs, s)
	q.c.mu.Unlock()
	return s, nil
}

func (q *auditQuery) Verify(ctx context.Context) error { return nil }

// ErrFixture marks failures injected by tests.
var ErrFixture = errors.New("decktest: injected failure")
