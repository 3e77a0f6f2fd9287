package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/codec"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/placement"
	"github.com/deck-mesh/deck/node/ratelimit"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/node/subnet"
)

// Aggregators. Every node of a subnet places its subnet's aggregator group
// with the real scheduler (placement.Place over its own, subnet-local
// view, a replica group of AggregatorReplicas spread over distinct
// nodes, the previous group's members kept where they still live), so
// every member computes the same group without asking anyone. The leader
// (the first member, in daemon order, that was in the previous summary's
// group, else aggregator-0's node) folds the view into a SubnetSummary
// every SummaryInterval, with the generation after the newest it holds,
// signs it, and floods it: to SummaryFanout random direct peers of its
// own subnet and every direct peer across a boundary; every node that
// believes a newer generation (subnet.Store.Accept) passes it on the same
// way. When the leader dies its peers see it Unreachable, placement moves
// its member, and the next member of the old group leads, continuing the
// generation it holds.

// Aggregator timing and sizes.
const (
	// AggregatorReplicas is the size of a subnet's aggregator group.
	AggregatorReplicas = 3
	// aggregatorGroup names the group in placement (daemon ids
	// aggregator-0 …).
	aggregatorGroup = "aggregator"
	// SummaryInterval is how often the leader builds a summary.
	SummaryInterval = time.Second
	// SummaryFanout is how many random direct peers of its own subnet a
	// node passes a new summary to (besides every cross-boundary link).
	SummaryFanout = 4
	// summaryLeadGrace is how long a started node waits to hear its
	// subnet's summary before it may lead with generation 1.
	summaryLeadGrace = 3 * time.Second
	// leaderSilence is how long a group member waits for its subnet's
	// summary before it builds one though another should lead.
	leaderSilence = 3 * SummaryInterval
	// subnetInbox bounds the summary worker's queue; subnetPerPeerPerSecond
	// and subnetPerPeerBurst what one peer may make it handle.
	subnetInbox            = 256
	subnetPerPeerPerSecond = 50
	subnetPerPeerBurst     = 100
	// subnetQueryTimeout bounds each member asked by QuerySubnet.
	subnetQueryTimeout = 2 * time.Second
	// maxSubnetQueries bounds the queries in flight from this node.
	maxSubnetQueries = 64
	// rosterEvery is how many generations may pass without the roster.
	rosterEvery = 10
	// relayedQuerySlots bounds the relayed queries a node runs at once
	// (beyond, it answers none: the asker times out).
	relayedQuerySlots = 8
)

// ChanSubnet message kinds.
const (
	subnetAnnounce = 1 // [kind][signed summary]
	subnetQuery    = 2 // [kind][nonce u64][path]
	subnetAnswer   = 3 // [kind][nonce u64][signed summary, or nothing]
	// subnetRelayedQuery asks a direct neighbour to put the query to the
	// group and pass the signed answer back: how a console in no subnet's
	// roster (the root of a carved mesh), to which only its neighbours
	// believe routes, reaches a remote aggregator.
	subnetRelayedQuery = 4 // [kind][nonce u64][path]
)

// aggregation is the node's summary service state.
type aggregation struct {
	inbox   chan inbound
	limiter *ratelimit.Table[identity.NodeID]
	rng     *rand.Rand // worker goroutine only

	mu      sync.Mutex
	group   []identity.NodeID // own subnet's group as last placed, sorted
	leader  identity.NodeID
	desired int
	waiting map[uint64]pendingQuery // queries in flight by nonce
	nonce   uint64
	relayed chan struct{} // relayedQuerySlots tokens
	// rosterSent is the generation that last carried the roster (worker
	// goroutine only).
	rosterSent uint64
}

// pendingQuery is a query in flight: whom it was put to, where its answer
// goes.
type pendingQuery struct {
	to identity.NodeID
	ch chan *subnet.Signed
}

type inbound struct {
	from identity.NodeID
	msg  []byte
}

func (n *Node) openSubnets() {
	n.summaries = subnet.NewStore(n.summarySigner, n.localGroup)
	n.agg = &aggregation{
		inbox:   make(chan inbound, subnetInbox),
		limiter: ratelimit.New[identity.NodeID](subnetPerPeerPerSecond, subnetPerPeerBurst, 1024),
		rng:     rand.New(rand.NewPCG(uint64(n.key.ID), uint64(time.Now().UnixNano()))),
		waiting: map[uint64]pendingQuery{},
		relayed: make(chan struct{}, relayedQuerySlots),
	}
	n.tr.Handle(messaging.ChanSubnet, n.handleSubnet)
}

// localGroup is the store's view of the group this node places for its
// own subnet (a console places none).
func (n *Node) localGroup(path string) ([]identity.NodeID, bool) {
	if path != n.subnet || n.opts.Observer {
		return nil, false
	}
	n.agg.mu.Lock()
	defer n.agg.mu.Unlock()
	if len(n.agg.group) == 0 {
		return nil, false
	}
	return slices.Clone(n.agg.group), true
}

// handleSubnet is the ChanSubnet handler: it never blocks.
func (n *Node) handleSubnet(from identity.NodeID, msg []byte) {
	if len(msg) < 1 || len(msg) > 1+8+subnet.MaxSignedBytes {
		return
	}
	select {
	case n.agg.inbox <- inbound{from: from, msg: bytes.Clone(msg)}:
	default:
	}
}

// runSubnets is the summary worker: it judges what arrives and, on a
// subnet member, builds the summary when it leads.
func (n *Node) runSubnets(ctx context.Context) {
	t := time.NewTicker(SummaryInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-n.agg.inbox:
			if n.agg.limiter.Allow(m.from, time.Now()) {
				n.receiveSubnet(ctx, m.from, m.msg)
			}
		case now := <-t.C:
			n.summaries.Sweep(now)
			// A mesh without subnets has nothing to summarise: its nodes
			// see each other in full, as before subnets existed.
			if n.scoped && !n.opts.Observer {
				n.aggregate(now)
			}
		}
	}
}

func (n *Node) receiveSubnet(ctx context.Context, from identity.NodeID, msg []byte) {
	switch msg[0] {
	case subnetAnnounce:
		s, err := subnet.Decode(msg[1:])
		if err != nil {
			return
		}
		if ok, _ := n.summaries.Accept(s, time.Now()); ok {
			n.floodSummary(msg, from, s.Summary.Path)
		}
	case subnetQuery, subnetRelayedQuery:
		r := codec.NewReader(msg[1:], subnet.ErrMalformed)
		nonce := r.U64()
		path := r.String(codec.PrefixU8, identity.MaxSubnetBytes, "path")
		if r.Finish() != nil {
			return
		}
		if msg[0] == subnetRelayedQuery {
			n.relayQuery(ctx, from, nonce, path)
			return
		}
		var s *subnet.Signed
		if e, ok := n.summaries.Get(path); ok {
			s = &e.Signed
		}
		n.answerQuery(ctx, from, nonce, s)
	case subnetAnswer:
		if len(msg) < 9 {
			return
		}
		nonce := binary.BigEndian.Uint64(msg[1:9])
		n.agg.mu.Lock()
		q, ok := n.agg.waiting[nonce]
		if ok && q.to == from {
			delete(n.agg.waiting, nonce)
		}
		n.agg.mu.Unlock()
		if !ok || q.to != from {
			return // not asked of the sender: another node cannot answer for it
		}
		var s *subnet.Signed
		if len(msg) > 9 {
			s, _ = subnet.Decode(msg[9:])
		}
		q.ch <- s // buffered 1, and the nonce is gone: one send at most
	}
}

// answerQuery sends the answer to query nonce (s nil: none held).
func (n *Node) answerQuery(ctx context.Context, to identity.NodeID, nonce uint64, s *subnet.Signed) {
	out := binary.BigEndian.AppendUint64([]byte{subnetAnswer}, nonce)
	if s != nil {
		if b, err := s.Encode(); err == nil {
			out = append(out, b...)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, subnetQueryTimeout)
	_ = n.tr.Send(sctx, to, messaging.ChanSubnet, out)
	cancel()
}

// relayQuery puts a neighbour's query to the subnet's group on its
// behalf, off the worker (at most relayedQuerySlots at once), and passes
// the signed answer back as it came: the asker believes it or not by the
// same rules as any summary. Only a node relays, and only for a direct
// neighbour.
func (n *Node) relayQuery(ctx context.Context, from identity.NodeID, nonce uint64, path string) {
	if n.opts.Observer || !n.directPeer(from) {
		return
	}
	select {
	case n.agg.relayed <- struct{}{}:
	default:
		return
	}
	go func() {
		defer func() { <-n.agg.relayed }()
		s, err := n.askGroup(ctx, path)
		if err != nil {
			s = nil
		}
		n.answerQuery(ctx, from, nonce, s)
	}()
}

// directPeer reports whether id is a live direct neighbour.
func (n *Node) directPeer(id identity.NodeID) bool {
	for _, p := range n.tr.Peers() {
		if p.ID == id {
			return p.Direct && p.Health != snapshot.Unreachable
		}
	}
	return false
}

// floodSummary passes an announce on: to SummaryFanout random direct
// peers of this node's subnet and to every direct peer of another (but
// never back to from).
func (n *Node) floodSummary(msg []byte, from identity.NodeID, _ string) {
	var own, across []identity.NodeID
	for _, p := range n.tr.Peers() {
		if !p.Direct || p.ID == from || p.Health == snapshot.Unreachable || p.Role == 0 {
			continue
		}
		if p.Subnet == n.subnet {
			own = append(own, p.ID)
		} else {
			across = append(across, p.ID)
		}
	}
	n.agg.rng.Shuffle(len(own), func(i, j int) { own[i], own[j] = own[j], own[i] })
	targets := append(own[:min(len(own), SummaryFanout)], across...)
	ctx, cancel := context.WithTimeout(n.ctx, subnetQueryTimeout)
	defer cancel()
	for _, to := range targets {
		// Direct peers hold sessions, so a send queues at once; a full
		// queue drops, and the next generation repairs it.
		_ = n.tr.Send(ctx, to, messaging.ChanSubnet, msg)
	}
}

// aggregate places the group and, when this node leads, builds, signs,
// stores and floods the next summary. Worker goroutine only.
func (n *Node) aggregate(now time.Time) {
	cs := n.pub.load()
	held, haveHeld := n.summaries.Get(n.subnet)
	var prev []identity.NodeID
	if haveHeld {
		prev = held.Group
	}
	group, leader, desired := placeAggregators(cs, n.subnet, prev)
	n.agg.mu.Lock()
	n.agg.group, n.agg.leader, n.agg.desired = group, leader, desired
	n.agg.mu.Unlock()
	if !n.viewSettledOnce.Load() || !slices.Contains(group, n.key.ID) {
		return
	}
	// The leader builds. Should views disagree on who leads (each member
	// placing another), the subnet would fall silent: a member of the
	// group that has heard no summary of it for leaderSilence takes over.
	silent := !haveHeld || now.Sub(held.ReceivedAt) > leaderSilence
	if leader != n.key.ID && !silent {
		return
	}
	if !haveHeld && now.Sub(n.started) < summaryLeadGrace {
		return // a subnet that has a summary tells a new leader its generation first
	}
	s := &subnet.Signed{Summary: foldSummary(cs, n.subnet, n.summaries.All(), now), Group: group, Desired: desired}
	s.Summary.Generation = 1
	if haveHeld {
		s.Summary.Generation = held.Summary.Generation + 1
	}
	// The roster rides along when it changed, and every rosterEvery
	// generations for nodes that missed it; in between a summary carries
	// none and receivers keep the last (a subnet is never empty: its
	// aggregator is in it), so a summary's size does not grow with its
	// subnet every second.
	members := roster(cs, n.subnet)
	if !haveHeld || !slices.Equal(members, held.Roster) || s.Summary.Generation >= n.agg.rosterSent+rosterEvery {
		s.Members = members
	}
	if err := subnet.Sign(n.key, encodeCert(n.cert.Load()), s); err != nil {
		n.opts.Logf("node: subnet summary: %v", err)
		return
	}
	if ok, err := n.summaries.Accept(s, now); !ok {
		if err != nil {
			n.opts.Logf("node: own subnet summary refused: %v", err)
		}
		return
	}
	if len(s.Members) > 0 {
		n.agg.rosterSent = s.Summary.Generation
	}
	b, err := s.Encode()
	if err != nil {
		return
	}
	n.floodSummary(append([]byte{subnetAnnounce}, b...), 0, s.Summary.Path)
}

// placeAggregators places the aggregator group of subnet path on cs (the
// subnet's own view) with the scheduler, the previous group's members
// pinned where they run so placement keeps them while they live. It
// returns the group (sorted), its leader and the desired size.
func placeAggregators(cs *snapshot.ClusterSnapshot, path string, prev []identity.NodeID) ([]identity.NodeID, identity.NodeID, int) {
	// What differs between members' views from moment to moment (load,
	// RTT, avoid lists) is left out: every member must place the same
	// group from the same live nodes, or each may think another leads.
	view := &snapshot.ClusterSnapshot{Self: cs.Self}
	hosts := 0
	for _, nv := range placement.HostingView(cs).Nodes {
		if nv.Subnet != path {
			continue
		}
		nv.Daemons, nv.Replicas, nv.Avoid, nv.Resources = nil, nil, nil, snapshot.Resources{}
		if i := slices.Index(prev, nv.ID); i >= 0 {
			nv.Daemons = []snapshot.Daemon{{ID: placement.DaemonID(aggregatorGroup, i), Node: nv.ID,
				Lifecycle: snapshot.LifecycleRunning,
				Lineage:   snapshot.Lineage{Kind: snapshot.GroupReplica, Group: aggregatorGroup, Index: i}}}
		}
		if nv.Health == snapshot.Healthy && !nv.Stale {
			hosts++
		}
		view.Nodes = append(view.Nodes, nv)
	}
	desired := min(AggregatorReplicas, max(hosts, 1))
	a := placement.Place(view, placement.Spec{Groups: []placement.GroupSpec{{
		Name: aggregatorGroup, Kind: snapshot.GroupReplica, DaemonKind: aggregatorGroup, Members: desired,
	}}}, nil)
	var group []identity.NodeID
	var leader, first identity.NodeID
	for i := range desired {
		at := a.NodeOf(placement.DaemonID(aggregatorGroup, i))
		if !at.Valid() || slices.Contains(group, at) {
			continue
		}
		group = append(group, at)
		if !first.Valid() {
			first = at
		}
		if !leader.Valid() && slices.Contains(prev, at) {
			leader = at
		}
	}
	if !leader.Valid() {
		leader = first
	}
	slices.Sort(group)
	return group, leader, desired
}

// roster lists the members of subnet path the view holds a fresh snapshot
// of (consoles included: they are reached across the boundary too).
func roster(cs *snapshot.ClusterSnapshot, path string) []identity.NodeID {
	var out []identity.NodeID
	for _, nv := range cs.Nodes {
		if nv.Subnet == path && !nv.Stale && !nv.BuiltAt.IsZero() && len(out) < subnet.MaxRoster {
			out = append(out, nv.ID)
		}
	}
	slices.Sort(out)
	return out
}

// foldSummary folds the members of subnet path in cs (its own view) into a
// summary; held supplies the children (subnets whose parent is path).
func foldSummary(cs *snapshot.ClusterSnapshot, path string, held []subnet.Entry, now time.Time) snapshot.SubnetSummary {
	s := snapshot.SubnetSummary{Path: path, BuiltAt: now.UTC().Truncate(time.Millisecond)}
	blobs := map[[32]byte]uint64{}
	healthy := 0
	satSum := 0.0
	for i := range cs.Nodes {
		nv := &cs.Nodes[i]
		if nv.Observer || nv.Subnet != path {
			continue
		}
		s.Nodes[min(int(nv.Health), 2)]++
		if nv.Stale || nv.Health == snapshot.Unreachable {
			continue
		}
		for _, d := range nv.Daemons {
			s.Daemons[min(int(d.Health), 2)]++
		}
		s.ChainsHeld += len(nv.Replicas)
		for _, b := range nv.Blobs {
			blobs[b.Hash] = b.Size
		}
		if slices.Contains(nv.Capabilities, CapabilityGateway) && len(s.Gateways) < subnet.MaxGateways {
			s.Gateways = append(s.Gateways, nv.ID)
		}
		if nv.Health == snapshot.Healthy {
			healthy++
			sat := min(max(nv.Resources.Saturation, 0), 1)
			satSum += sat
			if !nv.Cordoned && nv.Maintenance.State == snapshot.MaintActive {
				s.Capacity += 1 - sat
			}
		}
	}
	if healthy > 0 {
		s.Saturation = satSum / float64(healthy)
	}
	for _, c := range cs.Chains {
		s.ChainsDesired += c.Desired
	}
	s.Blobs = len(blobs)
	for _, size := range blobs {
		s.BlobBytes += size
	}
	for _, e := range held {
		c := e.Summary.Path
		if c != "" && c != path && snapshot.Parent(c) == path && len(s.Children) < subnet.MaxChildren {
			s.Children = append(s.Children, c)
		}
	}
	slices.Sort(s.Gateways)
	return s
}

// subnetViews is the view's Subnets and Aggregators: every summary held,
// the own subnet (Local, Detailed) and the focused one (Detailed).
func (n *Node) subnetViews(now time.Time) ([]snapshot.SubnetView, []snapshot.Aggregator) {
	focus := *n.scope.focus.Load()
	var views []snapshot.SubnetView
	var aggs []snapshot.Aggregator
	seen := false
	for _, e := range n.summaries.All() {
		p := e.Summary.Path
		seen = seen || p == n.subnet
		views = append(views, snapshot.SubnetView{SubnetSummary: e.Summary, Local: p == n.subnet,
			Detailed: p == n.subnet || p == focus, Stale: e.Stale(now)})
		aggs = append(aggs, snapshot.Aggregator{Subnet: p, Members: slices.Clone(e.Group), Desired: e.Desired,
			Leader: e.Summary.Aggregator, Generation: e.Summary.Generation, UpdatedAt: e.ReceivedAt})
	}
	if !seen {
		views = append(views, snapshot.SubnetView{SubnetSummary: snapshot.SubnetSummary{Path: n.subnet}, Local: true, Detailed: true})
		slices.SortFunc(views, func(a, b snapshot.SubnetView) int { return strings.Compare(a.Path, b.Path) })
	}
	return views, aggs
}

// FocusSubnet implements api.SubnetClient on the node: the view follows
// the members of subnet path (asked through its aggregator group and
// gateways, then each other) until the focus moves. It returns once a
// member's snapshot arrived, or with ctx's end.
func (n *Node) FocusSubnet(ctx context.Context, path string) error {
	if err := identity.ValidateSubnet(path); err != nil {
		return fmt.Errorf("%w: %w", api.ErrInvalid, err)
	}
	if path == "" || path == n.subnet {
		n.gs.SetFocus("", nil)
		none := ""
		n.scope.focus.Store(&none)
		n.poke()
		return nil
	}
	e, ok := n.summaries.Get(path)
	if !ok {
		return fmt.Errorf("%w: subnet %q (no summary of it has reached this node)", api.ErrNotFound, path)
	}
	via := slices.Clone(e.Group)
	for _, g := range e.Summary.Gateways {
		if !slices.Contains(via, g) {
			via = append(via, g)
		}
	}
	n.scope.focus.Store(&path)
	n.gs.SetFocus(path, via)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		for _, v := range n.gs.Latest() {
			if v.Subnet == path {
				n.poke()
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: no member of %q answered (%v)", api.ErrTimeout, path, ctx.Err())
		case <-t.C:
		}
	}
}

// QuerySubnet implements api.SubnetClient on the node: the newest summary
// of path from its aggregator group (the leader first), believed only as
// subnet.Store.Accept believes any summary.
func (n *Node) QuerySubnet(ctx context.Context, path string) (snapshot.SubnetSummary, error) {
	if err := identity.ValidateSubnet(path); err != nil {
		return snapshot.SubnetSummary{}, fmt.Errorf("%w: %w", api.ErrInvalid, err)
	}
	if _, ok := n.summaries.Get(path); !ok {
		return snapshot.SubnetSummary{}, fmt.Errorf("%w: subnet %q (no summary of it has reached this node)", api.ErrNotFound, path)
	}
	if _, inRoster := n.summaries.Get(n.subnet); !inRoster && n.scoped {
		// No roster names this node, so only its neighbours route to it:
		// a neighbour asks for it.
		return n.queryThroughNeighbour(ctx, path)
	}
	s, err := n.askGroup(ctx, path)
	if err != nil {
		return snapshot.SubnetSummary{}, err
	}
	return s.Summary, nil
}

// askGroup asks the group of path, leader first, and returns the first
// answer this node believes (stored when newer than what it holds).
func (n *Node) askGroup(ctx context.Context, path string) (*subnet.Signed, error) {
	e, ok := n.summaries.Get(path)
	if !ok {
		return nil, fmt.Errorf("%w: subnet %q", api.ErrNotFound, path)
	}
	asks := []identity.NodeID{e.Summary.Aggregator}
	for _, g := range e.Group {
		if g != e.Summary.Aggregator {
			asks = append(asks, g)
		}
	}
	var last error = api.ErrNotConnected
	for _, to := range asks {
		if to == n.key.ID {
			cur, _ := n.summaries.Get(path)
			return &cur.Signed, nil
		}
		s, err := n.askSummary(ctx, to, path, subnetQuery)
		if err != nil {
			last = err
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if err := n.believeAnswer(s, path); err != nil {
			last = fmt.Errorf("%w: %s: %w", api.ErrPermission, to, err)
			continue
		}
		cur, _ := n.summaries.Get(path)
		return &cur.Signed, nil
	}
	return nil, fmt.Errorf("subnet %q: %w", path, last)
}

// queryThroughNeighbour asks live direct neighbours (nodes) in turn to
// put the query to the group.
func (n *Node) queryThroughNeighbour(ctx context.Context, path string) (snapshot.SubnetSummary, error) {
	var last error = fmt.Errorf("%w: no neighbour to ask", api.ErrNotConnected)
	for _, p := range n.tr.Peers() {
		if !p.Direct || p.Health == snapshot.Unreachable || p.Role != identity.RoleNode {
			continue
		}
		s, err := n.askSummary(ctx, p.ID, path, subnetRelayedQuery)
		if err == nil {
			err = n.believeAnswer(s, path)
		}
		if err != nil {
			last = err
			if ctx.Err() != nil {
				break
			}
			continue
		}
		cur, _ := n.summaries.Get(path)
		return cur.Summary, nil
	}
	return snapshot.SubnetSummary{}, fmt.Errorf("subnet %q: %w", path, last)
}

// believeAnswer judges an answered summary as any summary: believed and
// stored, or already outrun by what the flood brought meanwhile.
func (n *Node) believeAnswer(s *subnet.Signed, path string) error {
	if s.Summary.Path != path {
		return fmt.Errorf("%w: asked for %q, answered %q", api.ErrPermission, path, s.Summary.Path)
	}
	if _, err := n.summaries.Accept(s, time.Now()); err != nil && !errorsIsReplayOfHeld(n, s) {
		return fmt.Errorf("%w: an answer this node does not believe: %w", api.ErrPermission, err)
	}
	return nil
}

// errorsIsReplayOfHeld: an answer older than what the node holds meanwhile
// (the flood was faster) still means the group answered.
func errorsIsReplayOfHeld(n *Node, s *subnet.Signed) bool {
	cur, ok := n.summaries.Get(s.Summary.Path)
	return ok && cur.Summary.Generation >= s.Summary.Generation && s.Verify() == nil
}

// askSummary sends one query and waits for its answer.
func (n *Node) askSummary(ctx context.Context, to identity.NodeID, path string, kind byte) (*subnet.Signed, error) {
	ch := make(chan *subnet.Signed, 1)
	n.agg.mu.Lock()
	if len(n.agg.waiting) >= maxSubnetQueries {
		n.agg.mu.Unlock()
		return nil, fmt.Errorf("%w: %d subnet queries in flight", api.ErrNotConnected, maxSubnetQueries)
	}
	n.agg.nonce++
	nonce := n.agg.nonce
	n.agg.waiting[nonce] = pendingQuery{to: to, ch: ch}
	n.agg.mu.Unlock()
	defer func() {
		n.agg.mu.Lock()
		delete(n.agg.waiting, nonce)
		n.agg.mu.Unlock()
	}()
	w := codec.NewWriter(binary.BigEndian.AppendUint64([]byte{kind}, nonce), subnet.ErrMalformed)
	w.String(codec.PrefixU8, identity.MaxSubnetBytes, "path", path)
	if err := w.Err(); err != nil {
		return nil, err
	}
	timeout := subnetQueryTimeout
	if kind == subnetRelayedQuery {
		timeout *= AggregatorReplicas + 1 // the neighbour asks each member in turn
	}
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := n.tr.Send(qctx, to, messaging.ChanSubnet, w.B); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", api.ErrNotConnected, to, err)
	}
	select {
	case s := <-ch:
		if s == nil {
			return nil, fmt.Errorf("%w: %s holds no summary of %q", api.ErrNotFound, to, path)
		}
		return s, nil
	case <-qctx.Done():
		return nil, fmt.Errorf("%w: %s did not answer", api.ErrTimeout, to)
	}
}
