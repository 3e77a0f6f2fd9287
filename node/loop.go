package node

import (
	"context"
	"hash/fnv"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/clusterview"
	"github.com/deck-mesh/deck/node/gossip"
	"github.com/deck-mesh/deck/node/meshos"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/placement"
	"github.com/deck-mesh/deck/node/snapshot"
)

// refreshInterval is how often the node refolds its cluster view when
// nothing signals a change: liveness (Suspect, Unreachable) and staleness
// change with time alone.
const refreshInterval = 500 * time.Millisecond

// loop folds the cluster view whenever gossip, MeshOS or the admin ledger
// changes, and at refreshInterval otherwise.
func (n *Node) loop(ctx context.Context) {
	// Until the view settles, poll fast so the settle quiet period (and a
	// console's first complete view) is measured in tens of milliseconds,
	// not refresh intervals.
	t := time.NewTicker(settlePoll)
	defer t.Stop()
	gapTimer := time.NewTimer(0)
	defer gapTimer.Stop()
	var st settle
	settling, asked := true, false
	for {
		if !asked {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-n.gs.Changes():
			case <-n.rt.Changes():
			case <-n.fold.Changed():
			case <-n.wake:
			}
		}
		asked = false
		n.refresh(time.Now(), &st)
		if settling && n.viewSettled {
			settling = false
			t.Reset(refreshInterval)
		}
		if settling {
			continue
		}
		// Coalesce bursts: every peer's snapshot change wakes the loop,
		// and on a busy cluster that is dozens a second. One refold per
		// gap carries them all; an explicit Refresh cuts the gap short.
		gap := refreshMinGap
		if n.opts.Observer {
			gap = observerRefreshGap
		}
		gapTimer.Reset(gap)
		select {
		case <-ctx.Done():
			return
		case <-gapTimer.C:
		case <-n.wake:
			asked = true
			// Go ≥ 1.23 timers: Stop (and the next Reset) discard a
			// pending expiry, so there is nothing to drain.
			gapTimer.Stop()
		}
	}
}

// refreshMinGap is the least time between two refolds once the node places.
const refreshMinGap = 400 * time.Millisecond

// observerRefreshGap is the least time between two change-driven refolds of
// a console's node once its view settled: what a person watching a screen
// cannot tell from instant, at a fraction of folding on every peer's
// announcement (the idle demo's largest single CPU cost before).
const observerRefreshGap = 200 * time.Millisecond

// settle tracks, before placement starts, since when the view has been
// settled with the same set of nodes (loop goroutine only).
type settle struct {
	members uint64
	since   time.Time
}

// refresh publishes this node's own snapshot when it changed, folds the
// cluster view, hands it to MeshOS and wakes watchers on structural change.
func (n *Node) refresh(now time.Time, set *settle) {
	st := n.tr.Stats()
	gst := n.gs.Stats()
	sub := n.subs.Stats()
	n.rt.SetCounters(snapshot.Counters{
		PacketsIn: st.PacketsIn, PacketsOut: st.PacketsOut, BytesIn: st.BytesIn, BytesOut: st.BytesOut,
		Drops: st.Drops, ReplaysRejected: st.ReplaysRejected, AuthFailures: st.AuthFailures + gst.Rejected,
		HandshakesRateLimited: st.HandshakesRateLimited, Forwarded: st.Forwarded,
		LogsDropped: sub.Dropped,
	})
	n.syncTrust(now)
	if n.scoped {
		n.refreshScope(now)
	}
	peers := n.tr.Peers()
	n.rt.SetPeers(peerViews(peers))
	if !n.opts.Observer {
		n.rt.SetDatafort(n.blobs.Snapshot())
	}
	pending := n.tr.Pending()
	// Publish on every refresh: gossip signs and sends at once only when the
	// generation changed; gauges and counters that move without a new
	// generation ride on the next re-announce.
	if own := n.rt.Latest(); own != nil {
		pub := *own
		pub.Observer = n.opts.Observer
		pub.Addr = n.PublicAddr()
		pub.PendingPeers = pendingPeerViews(pending)
		pub.Subnet = n.subnet
		if n.scoped {
			pub.Gateway = n.scope.gatewayView(peers)
		}
		if err := n.gs.Publish(&pub); err != nil {
			n.opts.Logf("node: publish snapshot: %v", err)
		}
	}
	n.recordHistory(now)
	cs := n.foldCluster(now)
	finger := fingerprint(cs)
	changed := finger != n.lastFinger
	if changed {
		n.lastFinger = finger
	}
	n.pub.store(cs, changed)
	// For Stats: what this refresh read, so a scrape takes no lock. The
	// fold's progress is read before the head: the fold never passes the
	// ledger, so the lag between them is never negative.
	folded := n.fold.LocalSeq()
	n.observed.Store(&observed{at: now, peers: peers, pendingPeers: len(pending), gossip: gst, subscriptions: sub,
		ledger: n.ledger.Head(), foldedSeq: folded})
	if !n.viewSettled {
		// Placement waits until the node has a settled view (every peer it
		// knows Healthy with a fresh snapshot) that kept the same members
		// for placementSettleQuiet, or placementSettleMax passed. A node
		// that places on a partial view takes work and chain replicas the
		// nodes it has not heard yet already hold or will take, and the
		// cluster spends its first seconds undoing that; one that places
		// while a peer is still Unreachable (heard through gossip before
		// its own handshake) does the same, since placement ignores it.
		if !set.ready(cs, n.key.ID, now) && now.Sub(n.started) < placementSettleMax {
			return
		}
		n.viewSettled = true
		n.viewSettledOnce.Store(true)
	}
	if n.opts.Observer {
		return // a console's node never hosts work: its MeshOS only reports
	}
	state := n.AdminState()
	n.rt.SetCluster(placement.HostingView(cs), state.Intent())
}

// placementSettleMax bounds how long a starting node waits for a complete
// view before it places anyway (a lone first node must still start work).
const placementSettleMax = 3 * time.Second

// placementSettleQuiet is how long a settled view must keep the same
// members before placement starts: nodes joining together discover each
// other within a few gossip rounds, and a node that places on the first
// two it hears takes a share of everything.
const placementSettleQuiet = 300 * time.Millisecond

// settlePoll is the loop's refresh cadence while placement waits.
const settlePoll = 50 * time.Millisecond

// ready reports whether the view has been settled, with the same members,
// for placementSettleQuiet.
func (st *settle) ready(cs *snapshot.ClusterSnapshot, self snapshot.NodeID, now time.Time) bool {
	members, ok := settledView(cs, self)
	if !ok {
		st.since = time.Time{}
		return false
	}
	if st.since.IsZero() || members != st.members {
		st.members, st.since = members, now
	}
	return now.Sub(st.since) >= placementSettleQuiet
}

// settledView reports whether the view has at least one peer and every
// node it lists is Healthy with a fresh snapshot, and hashes its members.
func settledView(cs *snapshot.ClusterSnapshot, self snapshot.NodeID) (uint64, bool) {
	h := fnv.New64a()
	var b [8]byte
	peers := 0
	for _, nv := range cs.Nodes {
		if nv.ID == self || nv.Observer {
			continue
		}
		if nv.BuiltAt.IsZero() || nv.Stale || nv.Health != snapshot.Healthy {
			return 0, false
		}
		for i := range b {
			b[i] = byte(uint64(nv.ID) >> (8 * i))
		}
		h.Write(b[:])
		peers++
	}
	return h.Sum64(), peers > 0
}

// foldCluster builds the ClusterSnapshot from gossip, the transport's peer
// view, the admin fold and the workload spec.
func (n *Node) foldCluster(now time.Time) *snapshot.ClusterSnapshot {
	head := n.ledger.Head()
	peers := n.tr.Peers()
	if n.scoped {
		// The view shows in full only the subnets in scope: a peer of
		// another (a gateway's link, a route) is not a member here.
		in := peers[:0:0]
		for _, p := range peers {
			if n.inScope(p.Subnet) && (p.Role != 0 || n.subnet == "") {
				in = append(in, p)
			}
		}
		peers = in
	}
	in := clusterview.Input{
		Cluster: n.opts.Cluster.Name, Self: n.key.ID, Now: now,
		Snapshots: n.gs.Latest(), Peers: peers, Pending: pendingPeerViews(n.tr.Pending()),
		Admin:  n.AdminState(),
		Ledger: snapshot.AdminHead{Count: head.Count, LastSeq: head.LastSeq, Hash: head.Hash},
	}
	// The spec's groups and chains as the view shows them before any
	// member runs.
	for _, g := range n.opts.Spec.Groups {
		chainName := ""
		if g.ChainReplicas > 0 {
			chainName = meshos.ChainName(g.Name)
			in.Chains = append(in.Chains, snapshot.Chain{Name: chainName, Group: g.Name, Desired: g.ChainReplicas})
		}
		in.Groups = append(in.Groups, snapshot.Group{Name: g.Name, Kind: g.Kind, Desired: g.Members,
			Parent: g.Parent, ForkAt: g.ForkAt, Chain: chainName})
	}
	n.mu.Lock()
	n.generation++
	in.Generation = n.generation
	n.mu.Unlock()
	cs := dropDepartedConsoles(clusterview.Fold(in), n.key.ID)
	cs.LocalSubnet = n.subnet
	if n.summaries != nil {
		cs.Subnets, cs.Aggregators = n.subnetViews(now)
	}
	return cs
}

// dropDepartedConsoles removes observer nodes (consoles) whose snapshots
// went stale: a CLI run leaves one behind every time, and a console that
// left is not part of the cluster.
func dropDepartedConsoles(cs *snapshot.ClusterSnapshot, self snapshot.NodeID) *snapshot.ClusterSnapshot {
	keep := cs.Nodes[:0:0]
	for _, nv := range cs.Nodes {
		if nv.Observer && nv.ID != self && (nv.Stale || nv.Health == snapshot.Unreachable) {
			continue
		}
		keep = append(keep, nv)
	}
	if len(keep) == len(cs.Nodes) {
		return cs
	}
	gone := make(map[snapshot.NodeID]bool, len(cs.Nodes)-len(keep))
	for _, nv := range cs.Nodes {
		gone[nv.ID] = true
	}
	for _, nv := range keep {
		delete(gone, nv.ID)
	}
	edges := cs.Edges[:0:0]
	for _, e := range cs.Edges {
		if !gone[e.A] && !gone[e.B] {
			edges = append(edges, e)
		}
	}
	cs.Nodes, cs.Edges = keep, edges
	return cs
}

// fingerprint hashes what makes a cluster view structurally different:
// node generations, liveness and staleness, admin head, freeze and
// lockouts. Ages, RTT jitter and countdowns do not count.
func fingerprint(cs *snapshot.ClusterSnapshot) uint64 {
	h := fnv.New64a()
	var b [8]byte
	put := func(v uint64) {
		for i := range b {
			b[i] = byte(v >> (8 * i))
		}
		h.Write(b[:])
	}
	for _, nv := range cs.Nodes {
		put(uint64(nv.ID))
		put(nv.Generation)
		put(uint64(nv.Health))
		if nv.Stale {
			put(1)
		} else {
			put(0)
		}
	}
	put(cs.AdminHead.Count)
	if cs.Freeze.Active {
		put(uint64(cs.Freeze.Until.UnixMilli()))
	}
	put(uint64(len(cs.Lockouts)))
	put(uint64(len(cs.Edges)))
	put(uint64(len(cs.Admitted)))
	put(uint64(len(cs.Revoked)))
	for _, p := range cs.PendingNodes {
		put(uint64(p.ID))
	}
	for _, v := range cs.Subnets {
		put(v.Generation)
		if v.Detailed {
			put(1)
		}
	}
	return h.Sum64()
}

func peerViews(ps []messaging.PeerInfo) []snapshot.PeerView {
	out := make([]snapshot.PeerView, 0, len(ps))
	for _, p := range ps {
		out = append(out, snapshot.PeerView{Peer: p.ID, Health: p.Health, RTT: p.RTT, Direct: p.Direct})
	}
	return out
}

// logSink writes MeshOS and daemon logs to the node's log chain.
type logSink struct{ n *Node }

func (s logSink) AppendLog(rec api.LogRecord) {
	if rec.Node == 0 {
		rec.Node = s.n.key.ID
	}
	_ = s.n.db.AppendLog(rec)
}

// failureSink writes gated and failed actions to the failures chain.
type failureSink struct{ n *Node }

func (s failureSink) AppendFailure(f snapshot.Failure) {
	if f.Node == 0 {
		f.Node = s.n.key.ID
	}
	_ = s.n.db.AppendFailure(f)
}

// recordHistory keeps every node's snapshot changes this node has seen (its
// own included) in the snapshots log, so a console can scroll back in time.
func (n *Node) recordHistory(now time.Time) {
	for _, v := range n.gs.Latest() {
		ns := v.Snapshot
		if ns == nil || n.histGen[ns.ID] == ns.Generation {
			continue
		}
		// A node keeps its own history; a console (observer) keeps every
		// node's, for its operator's scroll-back. Recording every peer on
		// every node cost each one an fsync per peer change.
		if ns.ID != n.key.ID && !n.opts.Observer {
			continue
		}
		if last, ok := n.histAt[ns.ID]; ok && now.Sub(last) < historyMinGap {
			continue
		}
		n.histAt[ns.ID] = now
		b, err := gossip.EncodeSnapshot(ns)
		if err != nil {
			continue
		}
		if _, err := n.db.AppendSnapshot(n.ctx, ns.ID, now, b); err != nil {
			n.opts.Logf("node: snapshot history: %v", err)
			continue
		}
		n.histGen[ns.ID] = ns.Generation
		if len(n.histGen) > maxHistoryNodes {
			clear(n.histGen) // bounded: a reset only re-records the current ones
			clear(n.histAt)
		}
	}
}

// maxHistoryNodes caps the per-node generation map of recordHistory.
const maxHistoryNodes = 4096

// historyMinGap bounds how often one node's snapshot is recorded: chain
// progress changes a snapshot every tick, and scroll-back needs seconds.
const historyMinGap = 2 * time.Second
