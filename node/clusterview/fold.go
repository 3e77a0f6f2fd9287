// Package clusterview folds what one node knows of its cluster into the
// immutable snapshot.ClusterSnapshot the deck renders: the verified
// NodeSnapshots gossip holds, the local transport's peer view, the admin
// ledger's fold (command.AdminState) and the workload spec's groups and
// chains. Fold is a pure function; the node calls it on every refresh and
// publishes the result behind an atomic pointer.
package clusterview

import (
	"bytes"
	"cmp"
	"slices"
	"time"

	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/gossip"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Input is everything Fold reads. Fold does not retain it, but the
// returned snapshot shares the (immutable) NodeSnapshot slices.
type Input struct {
	Cluster string
	Self    identity.NodeID
	Now     time.Time
	// Generation is the caller's ClusterSnapshot counter.
	Generation uint64
	// StaleAfter marks a node stale when its newest announcement is older;
	// 0 means gossip.DefaultStaleAfter.
	StaleAfter time.Duration
	// Snapshots are the verified snapshots (gossip.Gossip.Latest), own
	// included. Fold attributes everything in one to its node (ID): gossip
	// refuses a snapshot whose daemons or failures name another node
	// (gossip.CheckSelfDescribed), and holders, members and edges are read
	// by the snapshot's id, never an entry's.
	Snapshots []gossip.Verified
	// Peers is the local transport's view (messaging.Messenger.Peers).
	Peers []messaging.PeerInfo
	// Admin is the admin ledger's fold; its freeze (as of Now), registry,
	// thresholds and running lockouts go into the view as AdminState hands
	// them out (copies, sorted). Nil leaves them zero.
	Admin *command.AdminState
	// Ledger is the admin ledger's local head (count, last seq, link hash);
	// Fold sets AppliedThrough from Admin.
	Ledger snapshot.AdminHead
	// Groups are the workload spec's groups as the view shows one before
	// any member runs (Name, Kind, Desired, Parent, ForkAt, Chain); Members
	// and Term are the fold's to fill and are ignored here.
	Groups []snapshot.Group
	// Pending are the peers the local transport holds as pending (not
	// admitted); every current snapshot's PendingPeers are merged with them.
	Pending []snapshot.PendingPeer
	// Chains are the spec's desired chains (Name, Group, Desired); holders,
	// leader and head seq are the fold's to fill and are ignored here. A
	// chain without a Group takes the group whose Chain names it.
	Chains []snapshot.Chain
}

// Fold builds the ClusterSnapshot. It is a pure function of its input:
// the same input, in any order, gives a deeply equal result.
//
//   - Nodes: every node with a snapshot or known to the transport (a node
//     without a snapshot shows what the transport knows, marked Stale), with
//     health, RTT and flaps as seen from here; Self is Healthy; a node the
//     transport does not know is Unreachable.
//   - Stale nodes keep their last snapshot in Nodes but do not count toward
//     chain holders, group members or edges: their claims are not current.
//   - Edges: direct, not-unreachable links from every current node's Peers
//     and the local transport, A < B, the smaller RTT kept when both ends
//     report one; only between nodes in Nodes.
//   - Chains: the desired ones and every chain a current node holds,
//     unless the transport declared that node Unreachable (a killed node's
//     replicas stop counting then, not 15 s later when it goes stale); holders
//     sorted; leader the Leader-role holder with the highest term, then seq
//     (lowest id on a tie: two leaders in one term is a split the chain
//     layer must resolve, the fold only shows one deterministically); head seq the highest any holder reports.
//   - Groups: the specified ones and every group a current daemon names;
//     members are daemon ids, sorted and deduplicated (a migrating daemon is
//     reported by two nodes).
func Fold(in Input) *snapshot.ClusterSnapshot {
	staleAfter := in.StaleAfter
	if staleAfter <= 0 {
		staleAfter = gossip.DefaultStaleAfter
	}
	cs := &snapshot.ClusterSnapshot{
		Cluster:    in.Cluster,
		Self:       in.Self,
		BuiltAt:    in.Now,
		Generation: in.Generation,
		AdminHead:  in.Ledger,
	}
	if in.Admin != nil {
		in.Admin.FillSnapshot(cs, in.Now)
		cs.AdminHead.AppliedThrough = in.Admin.Position()
	}

	// Newest announcement per node; duplicates in the input resolve the same
	// way whatever their order.
	snaps := make(map[identity.NodeID]*gossip.Verified, len(in.Snapshots))
	for i := range in.Snapshots {
		v := &in.Snapshots[i]
		if v.Snapshot == nil || !v.Snapshot.ID.Valid() {
			continue
		}
		if cur, ok := snaps[v.Snapshot.ID]; !ok || verifiedNewer(v, cur) {
			snaps[v.Snapshot.ID] = v
		}
	}
	peers := make(map[identity.NodeID]*messaging.PeerInfo, len(in.Peers))
	for i := range in.Peers {
		p := &in.Peers[i]
		if p.ID.Valid() && p.ID != in.Self {
			if cur, ok := peers[p.ID]; !ok || peerBefore(p, cur) {
				peers[p.ID] = p
			}
		}
	}

	ids := make([]identity.NodeID, 0, len(snaps)+len(peers)+1)
	for id := range snaps {
		ids = append(ids, id)
	}
	for id := range peers {
		if _, ok := snaps[id]; !ok {
			ids = append(ids, id)
		}
	}
	if _, ok := snaps[in.Self]; !ok && in.Self.Valid() {
		ids = append(ids, in.Self)
	}
	slices.Sort(ids)

	cs.Nodes = make([]snapshot.NodeView, len(ids))
	current := make([]*snapshot.NodeSnapshot, 0, len(snaps))
	holding := make([]*snapshot.NodeSnapshot, 0, len(snaps)) // current and reachable
	for i, id := range ids {
		nv := &cs.Nodes[i]
		v, hasSnap := snaps[id]
		p := peers[id]
		if hasSnap {
			nv.NodeSnapshot = *v.Snapshot
			if v.Role == identity.RoleConsole && id != in.Self {
				// Certified as a console: whatever its snapshot claims, it
				// hosts nothing, holds nothing and is never placed on.
				nv.Observer, nv.Capabilities, nv.Daemons, nv.Replicas = true, nil, nil, nil
				nv.Datafort, nv.Blobs = snapshot.Datafort{}, nil
			}
			nv.ReceivedAt = v.ReceivedAt
			nv.Stale = in.Now.Sub(v.ReceivedAt) > staleAfter
			if !nv.Stale {
				current = append(current, v.Snapshot)
			}
		} else {
			nv.ID = id
			nv.Stale = true
		}
		switch {
		case id == in.Self:
			nv.Health = snapshot.Healthy
			nv.HealthSince = nv.StartedAt
			nv.HeardAt = in.Now
		case p != nil:
			nv.Health = p.Health
			nv.HealthSince = p.HealthSince
			nv.HeardAt = p.LastHeard
			nv.RTT = p.RTT
			nv.Flaps = p.Flaps
			if nv.Addr == "" {
				nv.Addr = p.Addr
			}
		default:
			nv.Health = snapshot.Unreachable
		}
		// A node the transport declared Unreachable (killed, cut off) no
		// longer holds anything as far as this node can tell. One the
		// transport has not met but whose fresh snapshot gossip relayed is
		// reachable through others and still counts.
		if hasSnap && !nv.Stale && !nv.Observer && !(p != nil && p.Health == snapshot.Unreachable) {
			holding = append(holding, v.Snapshot)
		}
	}

	cs.PendingNodes = foldPending(in, current)
	cs.Edges = foldEdges(in, ids, current)
	cs.Chains = foldChains(in, holding)
	cs.Groups = foldGroups(in, current)
	cs.Blobs = FoldBlobs(holding)
	return cs
}

// MaxClusterBlobs bounds the blobs the view lists (each node publishes at
// most its hottest gossip.MaxBlobsPerSnapshot).
const MaxClusterBlobs = 1024

// FoldBlobs merges the blobs the holding nodes (current, reachable, not
// consoles) report, by hash: holders sorted, heat summed, the largest
// desired count and any pin (holders converge on one newest intent; while
// an intent spreads, the view shows the stronger word), the earliest
// storage time. Only a datafort node's report counts.
func FoldBlobs(holding []*snapshot.NodeSnapshot) []snapshot.BlobView {
	byHash := map[[32]byte]*snapshot.BlobView{}
	for _, ns := range holding {
		if !ns.Datafort.Enabled {
			continue
		}
		for _, b := range ns.Blobs {
			v := byHash[b.Hash]
			if v == nil {
				if len(byHash) >= MaxClusterBlobs {
					continue
				}
				v = &snapshot.BlobView{Hash: b.Hash, Size: b.Size, Name: b.Name, Parent: b.Parent, Operator: b.Operator, StoredAt: b.StoredAt}
				byHash[b.Hash] = v
			}
			if !slices.Contains(v.Holders, ns.ID) {
				v.Holders = append(v.Holders, ns.ID)
				v.Heat += b.Heat
			}
			v.Replicas = max(v.Replicas, b.Replicas)
			v.Pinned = v.Pinned || b.Pinned
			if !b.StoredAt.IsZero() && (v.StoredAt.IsZero() || b.StoredAt.Before(v.StoredAt)) {
				v.StoredAt = b.StoredAt
			}
		}
	}
	out := make([]snapshot.BlobView, 0, len(byHash))
	for _, v := range byHash {
		slices.Sort(v.Holders)
		out = append(out, *v)
	}
	slices.SortFunc(out, func(a, b snapshot.BlobView) int { return bytes.Compare(a.Hash[:], b.Hash[:]) })
	return out
}

func verifiedNewer(a, b *gossip.Verified) bool {
	return cmp.Or(cmp.Compare(a.Epoch, b.Epoch), cmp.Compare(a.Seq, b.Seq),
		a.ReceivedAt.Compare(b.ReceivedAt)) > 0
}

// peerBefore orders duplicate PeerInfos for one id deterministically (the
// transport never sends duplicates, but Fold must not depend on that).
func peerBefore(a, b *messaging.PeerInfo) bool {
	return cmp.Or(cmp.Compare(a.Health, b.Health), a.LastHeard.Compare(b.LastHeard)*-1,
		cmp.Compare(a.Addr, b.Addr)) < 0
}

func foldEdges(in Input, ids []identity.NodeID, current []*snapshot.NodeSnapshot) []snapshot.Edge {
	type pair struct{ a, b identity.NodeID }
	known := func(id identity.NodeID) bool { _, ok := slices.BinarySearch(ids, id); return ok }
	edges := make(map[pair]time.Duration)
	add := func(x, y identity.NodeID, rtt time.Duration) {
		if x == y || !known(x) || !known(y) {
			return
		}
		if x > y {
			x, y = y, x
		}
		k := pair{x, y}
		old, ok := edges[k]
		// A zero RTT is "not measured yet", not a fast link.
		switch {
		case !ok, old == 0:
			edges[k] = max(rtt, 0)
		case rtt > 0 && rtt < old:
			edges[k] = rtt
		}
	}
	for _, ns := range current {
		for _, p := range ns.Peers {
			if p.Direct && p.Health != snapshot.Unreachable {
				add(ns.ID, p.Peer, p.RTT)
			}
		}
	}
	for _, p := range in.Peers {
		if p.Direct && p.Health != snapshot.Unreachable {
			add(in.Self, p.ID, p.RTT)
		}
	}
	out := make([]snapshot.Edge, 0, len(edges))
	for k, rtt := range edges {
		out = append(out, snapshot.Edge{A: k.a, B: k.b, RTT: rtt})
	}
	slices.SortFunc(out, func(x, y snapshot.Edge) int { return cmp.Or(cmp.Compare(x.A, y.A), cmp.Compare(x.B, y.B)) })
	return out
}

func foldChains(in Input, current []*snapshot.NodeSnapshot) []snapshot.Chain {
	type acc struct {
		holders    []identity.NodeID
		leader     identity.NodeID
		leaderTerm uint64
		leaderSeq  uint64
		head       uint64
	}
	chains := make(map[string]*acc)
	get := func(name string) *acc {
		a := chains[name]
		if a == nil {
			a = &acc{}
			chains[name] = a
		}
		return a
	}
	// Two specs of one chain is a spec error; sorting first makes the one
	// that wins independent of input order.
	specs := slices.Clone(in.Chains)
	slices.SortFunc(specs, func(a, b snapshot.Chain) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(b.Desired, a.Desired), cmp.Compare(a.Group, b.Group))
	})
	spec := make(map[string]snapshot.Chain, len(specs))
	for _, c := range specs {
		if _, dup := spec[c.Name]; !dup && c.Name != "" {
			spec[c.Name] = c
			get(c.Name)
		}
	}
	for _, ns := range current {
		for _, r := range ns.Replicas {
			if r.Chain == "" {
				continue
			}
			a := get(r.Chain)
			a.holders = append(a.holders, ns.ID)
			a.head = max(a.head, r.Seq)
			if r.Role == snapshot.Leader && (!a.leader.Valid() ||
				cmp.Or(cmp.Compare(r.Term, a.leaderTerm), cmp.Compare(r.Seq, a.leaderSeq), cmp.Compare(a.leader, ns.ID)) > 0) {
				a.leader, a.leaderTerm, a.leaderSeq = ns.ID, r.Term, r.Seq
			}
		}
	}
	groupOf := make(map[string]string, len(in.Groups))
	for _, g := range in.Groups {
		if g.Chain != "" {
			if cur, ok := groupOf[g.Chain]; !ok || g.Name < cur {
				groupOf[g.Chain] = g.Name
			}
		}
	}
	out := make([]snapshot.Chain, 0, len(chains))
	for name, a := range chains {
		slices.Sort(a.holders)
		group := spec[name].Group
		if group == "" {
			group = groupOf[name]
		}
		out = append(out, snapshot.Chain{
			Name:    name,
			Group:   group,
			Desired: spec[name].Desired,
			Holders: slices.Compact(a.holders),
			Leader:  a.leader,
			HeadSeq: a.head,
		})
	}
	slices.SortFunc(out, func(x, y snapshot.Chain) int { return cmp.Compare(x.Name, y.Name) })
	return out
}

func foldGroups(in Input, current []*snapshot.NodeSnapshot) []snapshot.Group {
	groups := make(map[string]*snapshot.Group)
	specified := make(map[string]bool, len(in.Groups))
	// Two specs with one name is a spec error; sorting first makes the one
	// that wins independent of input order.
	specs := slices.Clone(in.Groups)
	slices.SortFunc(specs, func(a, b snapshot.Group) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Kind, b.Kind), cmp.Compare(b.Desired, a.Desired),
			cmp.Compare(a.Parent, b.Parent), cmp.Compare(a.ForkAt, b.ForkAt), cmp.Compare(a.Chain, b.Chain))
	})
	for _, s := range specs {
		if _, ok := groups[s.Name]; ok || s.Name == "" {
			continue
		}
		groups[s.Name] = &snapshot.Group{Name: s.Name, Kind: s.Kind, Desired: s.Desired,
			Parent: s.Parent, ForkAt: s.ForkAt, Chain: s.Chain}
		specified[s.Name] = true
	}
	// Members are gathered flat and sorted by (group, daemon id) through an
	// index, which moves 4-byte ints instead of string-bearing structs.
	// A group only seen in daemons takes its kind from its lowest daemon id,
	// so the result does not depend on node order.
	total := 0
	for _, ns := range current {
		total += len(ns.Daemons)
	}
	all := make([]groupMember, 0, total)
	for _, ns := range current {
		for i := range ns.Daemons {
			d := &ns.Daemons[i]
			if d.Lineage.Group != "" && d.ID != "" {
				all = append(all, groupMember{d.Lineage.Group, d.ID, d.Lineage.Kind, d.Lineage.Term, d.Lineage.ForkAt})
			}
		}
	}
	idx := make([]int32, len(all))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortFunc(idx, func(a, b int32) int {
		x, y := &all[a], &all[b]
		return cmp.Or(cmp.Compare(x.group, y.group), cmp.Compare(x.id, y.id), cmp.Compare(x.term, y.term))
	})
	for i := 0; i < len(idx); {
		name := all[idx[i]].group
		j := i
		for j < len(idx) && all[idx[j]].group == name {
			j++
		}
		g := groups[name]
		if g == nil {
			g = &snapshot.Group{Name: name, Kind: all[idx[i]].kind}
			groups[name] = g
		}
		g.Members = make([]string, 0, j-i)
		for _, k := range idx[i:j] {
			m := &all[k]
			g.Term = max(g.Term, m.term)
			if !specified[name] && m.kind == snapshot.GroupFork {
				g.ForkAt = max(g.ForkAt, m.forkAt)
			}
			if n := len(g.Members); n == 0 || g.Members[n-1] != m.id {
				g.Members = append(g.Members, m.id)
			}
		}
		i = j
	}
	out := make([]snapshot.Group, 0, len(groups))
	for _, g := range groups {
		out = append(out, *g)
	}
	slices.SortFunc(out, func(x, y snapshot.Group) int { return cmp.Compare(x.Name, y.Name) })
	return out
}

// groupMember is one daemon's claim to a group, as foldGroups needs it.
type groupMember struct {
	group, id    string
	kind         snapshot.GroupKind
	term, forkAt uint64
}

// foldPending merges every member's report of peers waiting for admission
// with the local transport's: one entry per node id (latest sighting wins
// for address and reason, earliest first-seen kept), the reporters listed,
// and nothing for a node that is a member in this view.
func foldPending(in Input, current []*snapshot.NodeSnapshot) []snapshot.PendingNode {
	byID := map[identity.NodeID]*snapshot.PendingNode{}
	add := func(reporter identity.NodeID, p snapshot.PendingPeer) {
		if !p.ID.Valid() {
			return
		}
		cur := byID[p.ID]
		if cur == nil {
			if len(byID) >= MaxPendingNodes {
				return
			}
			cur = &snapshot.PendingNode{PendingPeer: p}
			byID[p.ID] = cur
		} else {
			if p.LastSeen.After(cur.LastSeen) {
				first := cur.FirstSeen
				cur.PendingPeer = p
				cur.FirstSeen = first
			}
			if p.FirstSeen.Before(cur.FirstSeen) {
				cur.FirstSeen = p.FirstSeen
			}
		}
		if !slices.Contains(cur.SeenBy, reporter) {
			cur.SeenBy = append(cur.SeenBy, reporter)
		}
	}
	for _, p := range in.Pending {
		add(in.Self, p)
	}
	for _, ns := range current {
		if ns.ID == in.Self {
			continue // the local transport's list is fresher
		}
		for _, p := range ns.PendingPeers {
			add(ns.ID, p)
		}
	}
	members := map[identity.NodeID]bool{}
	for _, ns := range current {
		members[ns.ID] = true
	}
	out := make([]snapshot.PendingNode, 0, len(byID))
	for id, p := range byID {
		if members[id] {
			continue // pending at one node, a member by the view's lights
		}
		p.Key = slices.Clone(p.Key)
		slices.Sort(p.SeenBy)
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b snapshot.PendingNode) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// MaxPendingNodes bounds the pending nodes the view lists: every member
// reports at most gossip.MaxPendingPeersPerSnapshot, so this only caps a
// flood of minted identities across many members.
const MaxPendingNodes = 256
