package decktest

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

// StreamBufferRecords is the fixture streams' buffer.
const StreamBufferRecords = 8192

// ICEWindow is the commit window of a fixture ICE proposal (DESIGN §5).
const ICEWindow = 60 * time.Second

// ICECommit is one committed ICE proposal as recorded by the fixture.
type ICECommit struct {
	Action api.Action
	Sigs   []api.Signature
}

// Client is the fixture api.Client.
type Client struct {
	mu       sync.Mutex
	snap     *snapshot.ClusterSnapshot
	clock    func() time.Time
	opKey    *identity.Key
	opName   string
	readOnly string
	logs     []api.LogRecord
	failures []api.FailureRecord
	audit    []api.AuditRecord
	history  []snapshot.NodeSnapshot

	committed    []api.Action
	iceCommitted []ICECommit
	nonce        int
	// FailCommit, when set, makes every admin and ICE commit fail with it
	// (to test the refusal toasts).
	FailCommit error

	watchers  []chan *snapshot.ClusterSnapshot
	logSubs   []*api.Stream[api.LogRecord]
	failSubs  []*api.Stream[api.FailureRecord]
	auditSubs []*api.Stream[api.AuditRecord]
}

// New returns a fixture client over Snapshot(), operator alice, clock T0,
// with logsN backlog log records.
func New(logsN int) *Client {
	c := &Client{
		snap: Snapshot(), clock: func() time.Time { return T0 }, opKey: OperatorKey("alice"), opName: "alice",
		logs: Logs(logsN), failures: Failures(), audit: Audit(),
	}
	c.history = buildHistory(c.snap)
	return c
}

// SetClock replaces the fixture clock (proposal windows use it).
func (c *Client) SetClock(f func() time.Time) { c.mu.Lock(); c.clock = f; c.mu.Unlock() }

// SetReadOnly makes Operator() report a read-only client with reason.
func (c *Client) SetReadOnly(reason string) { c.mu.Lock(); c.readOnly = reason; c.mu.Unlock() }

// SetSnapshot replaces the snapshot and notifies watchers.
func (c *Client) SetSnapshot(s *snapshot.ClusterSnapshot) {
	c.mu.Lock()
	c.snap = s
	ws := append([]chan *snapshot.ClusterSnapshot(nil), c.watchers...)
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

// Committed returns the admin actions committed so far.
func (c *Client) Committed() []api.Action {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]api.Action(nil), c.committed...)
}

// ICECommitted returns the ICE proposals committed so far.
func (c *Client) ICECommitted() []ICECommit {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]ICECommit(nil), c.iceCommitted...)
}

// SignAs signs payload as a fixture operator, in the co-signing text flow's
// place (what `deck ice sign` would produce).
func SignAs(name string, payload []byte) api.Signature {
	k := OperatorKey(name)
	return api.Signature{Operator: k.ID, Sig: k.Sign(payload)}
}

func (c *Client) Cluster() string { return ClusterName }

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

func (c *Client) WatchSnapshots(ctx context.Context) <-chan *snapshot.ClusterSnapshot {
	ch := make(chan *snapshot.ClusterSnapshot, 1)
	c.mu.Lock()
	c.watchers = append(c.watchers, ch)
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

func (c *Client) Admin() api.AdminCommands { return adminCmds{c} }

func (c *Client) ICE() api.IceCommands { return iceCmds{c} }

func (c *Client) Preview(ctx context.Context, a api.Action) (api.BlastRadius, error) {
	return project(c.Snapshot(), a)
}

func (c *Client) record(a api.Action, ice bool, sigs []api.Signature) (api.Receipt, error) {
	c.mu.Lock()
	if c.readOnly != "" {
		c.mu.Unlock()
		return api.Receipt{}, fmt.Errorf("%s: %w", c.readOnly, api.ErrPermission)
	}
	if c.FailCommit != nil {
		err := c.FailCommit
		c.mu.Unlock()
		return api.Receipt{}, err
	}
	now := c.clock()
	seq := uint64(len(c.audit) + 1)
	rec := api.AuditRecord{Seq: seq, EventID: fmt.Sprintf("ev-%04d", seq), At: now, IssuedAt: now,
		Operator: c.opKey.ID, Action: a, ICE: ice, Signatures: sigs, Nonce: fmt.Sprintf("n%04d", seq)}
	if ice {
		c.iceCommitted = append(c.iceCommitted, ICECommit{Action: a, Sigs: sigs})
	} else {
		c.committed = append(c.committed, a)
		rec.Signatures = []api.Signature{{Operator: c.opKey.ID, Sig: c.opKey.Sign([]byte(a.Target()))}}
	}
	c.audit = append(c.audit, rec)
	subs := append([]*api.Stream[api.AuditRecord](nil), c.auditSubs...)
	op := c.opKey.ID
	c.mu.Unlock()
	for _, s := range subs {
		s.Offer(rec)
	}
	return api.Receipt{EventID: rec.EventID, Verb: a.Verb, Target: a.Target(), Operator: op, CommittedAt: now, Seq: seq}, nil
}

type adminCmds struct{ c *Client }

func (a adminCmds) Drain(ctx context.Context, n api.NodeID, d time.Duration) (api.Receipt, error) {
	return a.Commit(ctx, api.Action{Verb: api.VerbDrain, Node: n, Duration: d})
}
func (a adminCmds) EnterMaintenance(ctx context.Context, n api.NodeID, d time.Duration) (api.Receipt, error) {
	return a.Commit(ctx, api.Action{Verb: api.VerbEnterMaintenance, Node: n, Duration: d})
}
func (a adminCmds) ExitMaintenance(ctx context.Context, n api.NodeID) (api.Receipt, error) {
	return a.Commit(ctx, api.Action{Verb: api.VerbExitMaintenance, Node: n})
}
func (a adminCmds) Cordon(ctx context.Context, n api.NodeID) (api.Receipt, error) {
	return a.Commit(ctx, api.Action{Verb: api.VerbCordon, Node: n})
}
func (a adminCmds) Uncordon(ctx context.Context, n api.NodeID) (api.Receipt, error) {
	return a.Commit(ctx, api.Action{Verb: api.VerbUncordon, Node: n})
}
func (a adminCmds) DropReplicas(ctx context.Context, n api.NodeID, chains []string) (api.Receipt, error) {
	return a.Commit(ctx, api.Action{Verb: api.VerbDropReplicas, Node: n, Chains: chains})
}
func (a adminCmds) InvalidatePlacement(ctx context.Context, n api.NodeID) (api.Receipt, error) {
	return a.Commit(ctx, api.Action{Verb: api.VerbInvalidatePlacement, Node: n})
}
func (a adminCmds) RestartAllDaemons(ctx context.Context, n api.NodeID) (api.Receipt, error) {
	return a.Commit(ctx, api.Action{Verb: api.VerbRestartAllDaemons, Node: n})
}
func (a adminCmds) ClearAvoidList(ctx context.Context, n api.NodeID) (api.Receipt, error) {
	return a.Commit(ctx, api.Action{Verb: api.VerbClearAvoidList, Node: n})
}
func (a adminCmds) RestartDaemon(ctx context.Context, d string) (api.Receipt, error) {
	return a.Commit(ctx, api.Action{Verb: api.VerbRestartDaemon, Daemon: d})
}
func (a adminCmds) Commit(ctx context.Context, act api.Action) (api.Receipt, error) {
	if act.Verb.IsICE() {
		return api.Receipt{}, fmt.Errorf("%s is an ICE verb: %w", act.Verb, api.ErrInvalid)
	}
	if s := a.c.Snapshot(); s.Freeze.Active && a.c.clock().Before(s.Freeze.Until) {
		return api.Receipt{}, fmt.Errorf("%s refused: %w (%s)", act.Verb, api.ErrFrozen, s.Freeze.Reason)
	}
	return a.c.record(act, false, nil)
}

// Prepare is the admin path of a console that showed a preview: it
// recomputes the projection and refuses, with the new one, when it moves
// anything differently from confirmed (the node's command.PreviewChanged).
func (a adminCmds) Prepare(ctx context.Context, confirmed api.BlastRadius) (api.SimulatedProposal, error) {
	act := confirmed.Action
	if act.Verb.IsICE() {
		return nil, fmt.Errorf("%s is an ICE verb: %w", act.Verb, api.ErrInvalid)
	}
	if _, ok, why := a.c.Operator(); !ok {
		return nil, fmt.Errorf("%s: %w", why, api.ErrPermission)
	}
	br, err := project(a.c.Snapshot(), act)
	if err != nil {
		return nil, err
	}
	if err := command.PreviewChanged(&confirmed, &br); err != nil {
		return nil, err
	}
	a.c.mu.Lock()
	a.c.nonce++
	nonce := a.c.nonce
	issued := a.c.clock()
	a.c.mu.Unlock()
	moves := command.HashMoves(&br)
	payload := fmt.Appendf(nil, api.AdminPayloadPrefix+"%s|%s|nonce-%d|%d|%x", act.Verb, act.Target(), nonce, issued.UnixMilli(), moves)
	return &simulated{c: a.c, a: act, br: br, payload: payload, issued: issued, admin: true}, nil
}

func (a adminCmds) Threshold() int { return a.c.Snapshot().AdminThreshold }

type iceCmds struct{ c *Client }

func (i iceCmds) FreezeCluster(ctx context.Context, reason string, ttl time.Duration) (api.Proposal, error) {
	return i.Propose(ctx, api.Action{Verb: api.VerbFreezeCluster, Reason: reason, Duration: ttl})
}
func (i iceCmds) ThawCluster(ctx context.Context) (api.Proposal, error) {
	return i.Propose(ctx, api.Action{Verb: api.VerbThawCluster})
}
func (i iceCmds) FlushAvoidLists(ctx context.Context) (api.Proposal, error) {
	return i.Propose(ctx, api.Action{Verb: api.VerbFlushAvoidLists})
}
func (i iceCmds) ForceEvictReplica(ctx context.Context, chain string, v api.NodeID) (api.Proposal, error) {
	return i.Propose(ctx, api.Action{Verb: api.VerbForceEvictReplica, Chain: chain, Peer: v})
}
func (i iceCmds) ForceRestartDaemon(ctx context.Context, d string) (api.Proposal, error) {
	return i.Propose(ctx, api.Action{Verb: api.VerbForceRestartDaemon, Daemon: d})
}
func (i iceCmds) ForceCutover(ctx context.Context, chain string, t api.NodeID) (api.Proposal, error) {
	return i.Propose(ctx, api.Action{Verb: api.VerbForceCutover, Chain: chain, Peer: t})
}
func (i iceCmds) KillMigration(ctx context.Context, id string) (api.Proposal, error) {
	return i.Propose(ctx, api.Action{Verb: api.VerbKillMigration, Migration: id})
}
func (i iceCmds) ForceDrain(ctx context.Context, n api.NodeID) (api.Proposal, error) {
	return i.Propose(ctx, api.Action{Verb: api.VerbForceDrain, Node: n})
}
func (i iceCmds) Propose(ctx context.Context, a api.Action) (api.Proposal, error) {
	if !a.Verb.IsICE() {
		return nil, fmt.Errorf("%s is not an ICE verb: %w", a.Verb, api.ErrInvalid)
	}
	if _, ok, why := i.c.Operator(); !ok {
		return nil, fmt.Errorf("%s: %w", why, api.ErrPermission)
	}
	s := i.c.Snapshot()
	for _, l := range s.Lockouts {
		if l.Verb == string(a.Verb) && l.Target == a.Target() && i.c.clock().Before(l.Until) {
			return nil, fmt.Errorf("%s %s until %s: %w", a.Verb, a.Target(), l.Until.Format(time.TimeOnly), api.ErrLockedOut)
		}
	}
	return &proposal{c: i.c, a: a}, nil
}
func (i iceCmds) Load(ctx context.Context, payload []byte) (api.SimulatedProposal, error) {
	return nil, fmt.Errorf("decktest: payload loading is not part of the fixture: %w", api.ErrInvalid)
}
func (i iceCmds) Threshold() int { return i.c.Snapshot().ICEThreshold }

type proposal struct {
	c        *Client
	a        api.Action
	consumed bool
}

func (p *proposal) Action() api.Action { return p.a }

func (p *proposal) Simulate(ctx context.Context) (api.SimulatedProposal, error) {
	if p.consumed {
		return nil, api.ErrConsumed
	}
	p.consumed = true
	br, err := project(p.c.Snapshot(), p.a)
	if err != nil {
		return nil, err
	}
	p.c.mu.Lock()
	p.c.nonce++
	nonce := p.c.nonce
	issued := p.c.clock()
	p.c.mu.Unlock()
	payload := fmt.Appendf(nil, "net-deck-ice:%s|%s|nonce-%d|%d|%x", p.a.Verb, p.a.Target(), nonce, issued.UnixMilli(), br.Hash)
	return &simulated{c: p.c, a: p.a, br: br, payload: payload, issued: issued}, nil
}

type simulated struct {
	c        *Client
	a        api.Action
	br       api.BlastRadius
	payload  []byte
	issued   time.Time
	consumed bool
	admin    bool // prepared by Admin().Prepare: admin threshold, what moves rechecked at commit
}

func (s *simulated) Action() api.Action           { return s.a }
func (s *simulated) BlastRadius() api.BlastRadius { return s.br }
func (s *simulated) SigningPayload() []byte       { return append([]byte(nil), s.payload...) }
func (s *simulated) IssuedAt() time.Time          { return s.issued }
func (s *simulated) ExpiresAt() time.Time         { return s.issued.Add(ICEWindow) }

func (s *simulated) Sign() (api.Signature, error) {
	if _, ok, why := s.c.Operator(); !ok {
		return api.Signature{}, fmt.Errorf("%s: %w", why, api.ErrPermission)
	}
	return api.Signature{Operator: s.c.opKey.ID, Sig: s.c.opKey.Sign(s.payload)}, nil
}

func (s *simulated) Check(sig api.Signature) error {
	for _, op := range s.c.Snapshot().Operators {
		if op.ID == sig.Operator {
			if !ed25519.Verify(ed25519.PublicKey(op.PublicKey), s.payload, sig.Sig) {
				return fmt.Errorf("bad signature by %s: %w", op.Name, api.ErrPermission)
			}
			return nil
		}
	}
	return fmt.Errorf("operator %s is not registered: %w", sig.Operator, api.ErrPermission)
}

func (s *simulated) Commit(ctx context.Context, sigs []api.Signature) (api.Receipt, error) {
	if s.consumed {
		return api.Receipt{}, api.ErrConsumed
	}
	s.consumed = true
	if !s.c.clock().Before(s.ExpiresAt()) {
		return api.Receipt{}, api.ErrExpired
	}
	seen := map[api.NodeID]bool{}
	var valid []api.Signature
	for _, sig := range sigs {
		if seen[sig.Operator] || s.Check(sig) != nil {
			continue
		}
		seen[sig.Operator] = true
		valid = append(valid, sig)
	}
	th := s.c.Snapshot().ICEThreshold
	if s.admin {
		th = s.c.Snapshot().AdminThreshold
	}
	if len(valid) < th {
		return api.Receipt{}, fmt.Errorf("%d of %d: %w", len(valid), th, api.ErrBelowThreshold)
	}
	if s.admin {
		now, err := project(s.c.Snapshot(), s.a)
		if err != nil {
			return api.Receipt{}, err
		}
		if err := command.PreviewChanged(&s.br, &now); err != nil {
			return api.Receipt{}, err
		}
		return adminCmds{s.c}.Commit(ctx, s.a)
	}
	return s.c.record(s.a, true, valid)
}

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

// project is the fixture's blast-radius projection: it moves what the
// action displaces onto the least saturated eligible nodes of the snapshot
// and derives counts, hot nodes, drain time, stability and warnings from
// that — a small stand-in for the node's reconcile simulation, computed from
// the data rather than canned.
func project(s *snapshot.ClusterSnapshot, a api.Action) (api.BlastRadius, error) {
	br := api.BlastRadius{Action: a, SnapshotGen: s.Generation, StabilityBefore: 1, StabilityAfter: 1}
	total := 0
	for _, n := range s.Nodes {
		total += len(n.Daemons) + len(n.Replicas)
	}
	load := map[api.NodeID]float64{}
	for _, n := range s.Nodes {
		load[n.ID] = n.Resources.Saturation
	}
	eligible := func(exclude api.NodeID, holders []api.NodeID) api.NodeID {
		best, bestLoad := api.NodeID(0), 2.0
		for _, n := range s.Nodes {
			if n.ID == exclude || n.Observer || n.Health != snapshot.Healthy || n.Cordoned || n.Maintenance.State != snapshot.MaintActive {
				continue
			}
			held := false
			for _, h := range holders {
				held = held || h == n.ID
			}
			if !held && load[n.ID] < bestLoad {
				best, bestLoad = n.ID, load[n.ID]
			}
		}
		return best
	}
	addNode := func(id api.NodeID) {
		if id == 0 {
			return
		}
		for _, x := range br.Nodes {
			if x == id {
				return
			}
		}
		br.Nodes = append(br.Nodes, id)
	}
	moved := 0
	if s.Freeze.Active && a.Verb != api.VerbThawCluster {
		br.Warnings = append(br.Warnings, "cluster is frozen: "+s.Freeze.Reason)
	}
	switch a.Verb {
	case api.VerbDrain, api.VerbEnterMaintenance, api.VerbForceDrain, api.VerbDropReplicas, api.VerbInvalidatePlacement:
		n := s.Node(a.Node)
		if n == nil {
			return br, fmt.Errorf("node %s: %w", a.Node, api.ErrNotFound)
		}
		addNode(n.ID)
		if n.Maintenance.State != snapshot.MaintActive {
			br.Warnings = append(br.Warnings, "node already "+n.Maintenance.State.String())
		}
		if a.Verb != api.VerbDropReplicas {
			for _, d := range n.Daemons {
				to := eligible(n.ID, nil)
				br.Daemons = append(br.Daemons, d.ID)
				br.Migrated = append(br.Migrated, api.DaemonMove{Daemon: d.ID, From: n.ID, To: to})
				load[to] += d.Saturation / 2
				addNode(to)
				moved++
				br.DrainTime += 20 * time.Second
			}
		}
		for _, r := range n.Replicas {
			var ch snapshot.Chain
			for _, c := range s.Chains {
				if c.Name == r.Chain {
					ch = c
				}
			}
			to := eligible(n.ID, ch.Holders)
			br.Replicas = append(br.Replicas, api.ReplicaMove{Chain: r.Chain, From: n.ID, To: to})
			addNode(to)
			moved++
			br.DrainTime += 15 * time.Second
			if to == 0 {
				br.Warnings = append(br.Warnings, fmt.Sprintf("%s: no eligible target, quorum at risk (%d of %d)", r.Chain, ch.Held()-1, ch.Desired))
			}
			if r.Role == snapshot.Leader {
				br.Warnings = append(br.Warnings, r.Chain+": leader moves, expect a cutover")
			}
		}
	case api.VerbRestartDaemon, api.VerbForceRestartDaemon:
		found := false
		for _, n := range s.Nodes {
			for _, d := range n.Daemons {
				if d.ID == a.Daemon {
					found = true
					addNode(n.ID)
				}
			}
		}
		if !found {
			return br, fmt.Errorf("daemon %s: %w", a.Daemon, api.ErrNotFound)
		}
		br.Daemons = []string{a.Daemon}
		br.Restarted = []string{a.Daemon}
		br.DrainTime = 5 * time.Second
	case api.VerbForceEvictReplica, api.VerbForceCutover:
		var ch *snapshot.Chain
		for i := range s.Chains {
			if s.Chains[i].Name == a.Chain {
				ch = &s.Chains[i]
			}
		}
		if ch == nil {
			return br, fmt.Errorf("chain %s: %w", a.Chain, api.ErrNotFound)
		}
		addNode(a.Peer)
		if a.Verb == api.VerbForceEvictReplica {
			to := eligible(a.Peer, ch.Holders)
			br.Replicas = []api.ReplicaMove{{Chain: ch.Name, From: a.Peer, To: to}}
			addNode(to)
			moved++
			if ch.Held()-1 < ch.Desired {
				br.Warnings = append(br.Warnings, fmt.Sprintf("%s drops to %d of %d holders until re-replicated", ch.Name, ch.Held()-1, ch.Desired))
			}
		} else {
			addNode(ch.Leader)
			holder := false
			for _, h := range ch.Holders {
				holder = holder || h == a.Peer
			}
			if !holder {
				br.Warnings = append(br.Warnings, "target does not hold "+ch.Name+": it must catch up first")
			}
		}
	case api.VerbKillMigration:
		for _, n := range s.Nodes {
			for _, m := range n.Migrations {
				if m.ID == a.Migration {
					br.Daemons = []string{m.Daemon}
					addNode(m.Source)
					addNode(m.Target)
					br.Warnings = append(br.Warnings, m.Daemon+" rolls back to "+m.Source.Short())
				}
			}
		}
		if len(br.Daemons) == 0 {
			return br, fmt.Errorf("migration %s: %w", a.Migration, api.ErrNotFound)
		}
	default:
		n := s.Node(a.Node)
		if a.Node != 0 && n == nil {
			return br, fmt.Errorf("node %s: %w", a.Node, api.ErrNotFound)
		}
		addNode(a.Node)
	}
	for _, n := range s.Nodes {
		if load[n.ID] >= api.HotSaturation && load[n.ID] != n.Resources.Saturation {
			br.HotNodes = append(br.HotNodes, api.HotNode{Node: n.ID, Projected: load[n.ID]})
		}
	}
	if total > 0 {
		br.StabilityAfter = 1 - float64(moved)/float64(total)
	}
	br.Hash = sha256.Sum256(fmt.Appendf(nil, "%+v|%d", a, s.Generation))
	return br, nil
}

// ErrFixture marks failures injected by tests.
var ErrFixture = errors.New("decktest: injected failure")
