package clusterview

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/gossip"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/identity/identitytest"
	"github.com/deck-mesh/deck/node/mesh"
	"github.com/deck-mesh/deck/node/snapshot"
)

var testNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// snap is a small hand-made snapshot for fold tests.
func snap(id identity.NodeID, opts ...func(*snapshot.NodeSnapshot)) *snapshot.NodeSnapshot {
	ns := &snapshot.NodeSnapshot{ID: id, Label: id.Short(), StartedAt: testNow.Add(-time.Hour)}
	for _, o := range opts {
		o(ns)
	}
	return ns
}

func verified(ns *snapshot.NodeSnapshot, age time.Duration) gossip.Verified {
	return gossip.Verified{Snapshot: ns, Epoch: 1, Seq: 1, SignedAt: testNow.Add(-age), ReceivedAt: testNow.Add(-age)}
}

func withReplicas(rs ...snapshot.Replica) func(*snapshot.NodeSnapshot) {
	return func(ns *snapshot.NodeSnapshot) { ns.Replicas = append(ns.Replicas, rs...) }
}

func withPeers(ps ...snapshot.PeerView) func(*snapshot.NodeSnapshot) {
	return func(ns *snapshot.NodeSnapshot) { ns.Peers = append(ns.Peers, ps...) }
}

func withDaemons(ds ...snapshot.Daemon) func(*snapshot.NodeSnapshot) {
	return func(ns *snapshot.NodeSnapshot) { ns.Daemons = append(ns.Daemons, ds...) }
}

func TestFoldNodesHealthAndStaleness(t *testing.T) {
	const self, a, b, c, d = 10, 20, 30, 40, 50
	in := Input{
		Cluster: "test", Self: self, Now: testNow, Generation: 9,
		Snapshots: []gossip.Verified{
			verified(snap(self), 0),
			verified(snap(a), time.Second),
			verified(snap(b), gossip.DefaultStaleAfter+time.Millisecond),
			verified(snap(d), gossip.DefaultStaleAfter), // exactly at the bound: still fresh
		},
		Peers: []mesh.PeerInfo{
			{ID: a, Health: mesh.Suspect, HealthSince: testNow.Add(-3 * time.Second), RTT: 4 * time.Millisecond, Flaps: 2},
			{ID: b, Health: mesh.Unreachable},
			{ID: c, Addr: "127.0.0.1:9000", Direct: true, Health: mesh.Healthy, RTT: time.Millisecond},
			{ID: self, Health: mesh.Unreachable}, // a transport listing itself must not make self unhealthy
		},
	}
	cs := Fold(in)
	if cs.Cluster != "test" || cs.Self != self || cs.Generation != 9 || !cs.BuiltAt.Equal(testNow) {
		t.Fatalf("header %+v", cs)
	}
	tests := []struct {
		id          identity.NodeID
		health      snapshot.Health
		stale       bool
		rtt         time.Duration
		flaps       int
		addr, label string
	}{
		{self, snapshot.Healthy, false, 0, 0, "", snapshot.NodeID(self).Short()},
		{a, snapshot.Suspect, false, 4 * time.Millisecond, 2, "", snapshot.NodeID(a).Short()},
		{b, snapshot.Unreachable, true, 0, 0, "", snapshot.NodeID(b).Short()},
		{c, snapshot.Healthy, true, time.Millisecond, 0, "127.0.0.1:9000", ""}, // transport only
		{d, snapshot.Unreachable, false, 0, 0, "", snapshot.NodeID(d).Short()}, // gossip only
	}
	if len(cs.Nodes) != len(tests) {
		t.Fatalf("%d nodes, want %d", len(cs.Nodes), len(tests))
	}
	for i, tt := range tests {
		nv := cs.Nodes[i]
		if nv.ID != tt.id || nv.Health != tt.health || nv.Stale != tt.stale || nv.RTT != tt.rtt ||
			nv.Flaps != tt.flaps || nv.Addr != tt.addr || nv.Label != tt.label {
			t.Errorf("node %d: %+v, want %+v", i, nv, tt)
		}
	}
	if n := cs.Node(a); !n.HealthSince.Equal(testNow.Add(-3 * time.Second)) {
		t.Errorf("health since %v", n.HealthSince)
	}
	if n := cs.Node(self); !n.HealthSince.Equal(testNow.Add(-time.Hour)) {
		t.Errorf("self healthy since %v, want its start", n.HealthSince)
	}
	// A custom bound.
	in.StaleAfter = 500 * time.Millisecond
	if Fold(in).Node(a).Stale != true {
		t.Error("StaleAfter override ignored")
	}
	// Self without a snapshot yet still appears.
	in.Snapshots = nil
	if cs := Fold(in); cs.Node(self) == nil || cs.Node(self).Health != snapshot.Healthy {
		t.Error("self missing before its first snapshot")
	}
}

func TestFoldEdges(t *testing.T) {
	const self, a, b, c, stale = 1, 2, 3, 4, 5
	in := Input{
		Self: self, Now: testNow,
		Snapshots: []gossip.Verified{
			verified(snap(a, withPeers(
				snapshot.PeerView{Peer: b, Direct: true, RTT: 5 * time.Millisecond},
				snapshot.PeerView{Peer: c, Direct: false, RTT: 9 * time.Millisecond},      // relayed: not an edge
				snapshot.PeerView{Peer: self, Direct: true, Health: snapshot.Unreachable}, // broken link
				snapshot.PeerView{Peer: 99, Direct: true, RTT: time.Millisecond},          // unknown node
				snapshot.PeerView{Peer: a, Direct: true, RTT: time.Millisecond})), 0),     // self loop
			verified(snap(b, withPeers(snapshot.PeerView{Peer: a, Direct: true, RTT: 3 * time.Millisecond},
				snapshot.PeerView{Peer: c, Direct: true, RTT: 0})), 0), // RTT not measured yet
			verified(snap(c, withPeers(snapshot.PeerView{Peer: b, Direct: true, RTT: 7 * time.Millisecond})), 0),
			verified(snap(stale, withPeers(snapshot.PeerView{Peer: a, Direct: true, RTT: time.Millisecond})), time.Hour),
		},
		Peers: []mesh.PeerInfo{{ID: a, Direct: true, Health: mesh.Healthy, RTT: 2 * time.Millisecond}},
	}
	want := []snapshot.Edge{
		{A: self, B: a, RTT: 2 * time.Millisecond},
		{A: a, B: b, RTT: 3 * time.Millisecond},
		{A: b, B: c, RTT: 7 * time.Millisecond},
	}
	if got := Fold(in).Edges; !reflect.DeepEqual(got, want) {
		t.Fatalf("edges %+v\nwant  %+v", got, want)
	}
}

func TestFoldChains(t *testing.T) {
	const a, b, c, d = 1, 2, 3, 4
	in := Input{
		Self: a, Now: testNow,
		Snapshots: []gossip.Verified{
			verified(snap(a, withReplicas(
				snapshot.Replica{Chain: "alpha", Role: snapshot.Leader, Seq: 10, Term: 2},
				snapshot.Replica{Chain: "beta", Role: snapshot.Follower, Seq: 3})), 0),
			verified(snap(b, withReplicas(
				snapshot.Replica{Chain: "alpha", Role: snapshot.Follower, Seq: 12, Term: 2},
				snapshot.Replica{Chain: "beta", Role: snapshot.Leader, Seq: 5, Term: 1})), 0),
			// A deposed leader of an older term with a higher seq is not the leader.
			verified(snap(c, withReplicas(snapshot.Replica{Chain: "alpha", Role: snapshot.Leader, Seq: 11, Term: 1})), 0),
			// A stale holder does not count.
			verified(snap(d, withReplicas(snapshot.Replica{Chain: "beta", Role: snapshot.Leader, Seq: 99, Term: 9})), time.Hour),
		},
		Chains: []snapshot.Chain{{Name: "alpha", Group: "inference", Desired: 3}, {Name: "gamma", Desired: 2},
			{Name: "beta", Desired: 3}, {Name: "beta", Desired: 1}}, // a duplicate spec: the larger wins
		Groups: []snapshot.Group{{Name: "sensors", Chain: "beta"}},
	}
	want := []snapshot.Chain{
		{Name: "alpha", Group: "inference", Desired: 3, Holders: []identity.NodeID{a, b, c}, Leader: a, HeadSeq: 12},
		{Name: "beta", Group: "sensors", Desired: 3, Holders: []identity.NodeID{a, b}, Leader: b, HeadSeq: 5},
		{Name: "gamma", Desired: 2, Holders: nil, HeadSeq: 0},
	}
	got := Fold(in).Chains
	for i := range got {
		if len(got[i].Holders) == 0 {
			got[i].Holders = nil
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("chains\n got %+v\nwant %+v", got, want)
	}
	if got[0].Status() != "ok" || got[1].Status() != "under" {
		t.Fatalf("status %s %s", got[0].Status(), got[1].Status())
	}
}

func TestFoldGroups(t *testing.T) {
	const a, b, c = 1, 2, 3
	dm := func(id, group string, kind snapshot.GroupKind, term uint64) snapshot.Daemon {
		return snapshot.Daemon{ID: id, Lineage: snapshot.Lineage{Kind: kind, Group: group, Term: term, ForkAt: 77}}
	}
	in := Input{
		Self: a, Now: testNow,
		Snapshots: []gossip.Verified{
			verified(snap(a, withDaemons(dm("web-1", "web", snapshot.GroupReplica, 0), dm("db-a", "db", snapshot.GroupStandby, 3),
				dm("solo-x", "", snapshot.GroupSolo, 0))), 0),
			// web-1 is migrating: both nodes report it.
			verified(snap(b, withDaemons(dm("web-1", "web", snapshot.GroupReplica, 0), dm("web-0", "web", snapshot.GroupReplica, 0),
				dm("db-b", "db", snapshot.GroupStandby, 4), dm("f-1", "exp", snapshot.GroupFork, 0))), 0),
			verified(snap(c, withDaemons(dm("web-9", "web", snapshot.GroupReplica, 0))), time.Hour), // stale
		},
		Groups: []snapshot.Group{
			// Members and Term in a spec are the fold's to fill: ignored.
			{Name: "web", Kind: snapshot.GroupReplica, Desired: 3, Chain: "web", Members: []string{"ghost"}, Term: 9},
			{Name: "db", Kind: snapshot.GroupStandby, Desired: 2},
			{Name: "idle", Kind: snapshot.GroupReplica, Desired: 1},
		},
	}
	want := []snapshot.Group{
		{Name: "db", Kind: snapshot.GroupStandby, Desired: 2, Term: 4, Members: []string{"db-a", "db-b"}},
		{Name: "exp", Kind: snapshot.GroupFork, ForkAt: 77, Members: []string{"f-1"}},
		{Name: "idle", Kind: snapshot.GroupReplica, Desired: 1},
		{Name: "web", Kind: snapshot.GroupReplica, Desired: 3, Chain: "web", Members: []string{"web-0", "web-1"}},
	}
	if got := Fold(in).Groups; !reflect.DeepEqual(got, want) {
		t.Fatalf("groups\n got %+v\nwant %+v", got, want)
	}
}

// TestFoldShowsAdminState folds a real admin state (two operators, one
// committed ICE freeze) and checks the view shows it as AdminState hands it
// out: the freeze as of Now, the registry sorted, the thresholds, the
// freeze's lockout, and the ledger head with the fold's position.
func TestFoldShowsAdminState(t *testing.T) {
	alice, carol := identitytest.Key(t, "alice"), identitytest.Key(t, "carol")
	st, err := command.NewState(command.Genesis{Cluster: "c", AdminThreshold: 1, ICEThreshold: 1,
		Operators: []command.GenesisOperator{{Name: "carol", PublicKey: carol.Public}, {Name: "alice", PublicKey: alice.Public}}})
	if err != nil {
		t.Fatal(err)
	}
	issued := testNow.Add(-time.Second)
	b := command.Body{Kind: command.KindICE, Cluster: "c", Proposer: alice.ID, Nonce: command.Nonce{1},
		Action:     api.Action{Verb: api.VerbFreezeCluster, Reason: "incident", Duration: time.Minute},
		IssuedAtMs: issued.UnixMilli(), BlastHash: [32]byte{9}}
	p, err := b.SigningPayload()
	if err != nil {
		t.Fatal(err)
	}
	ev, err := command.NewEvent(b, []api.Signature{{Operator: alice.ID, Sig: alice.Sign(p)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Apply(ev); err != nil {
		t.Fatalf("freeze refused: %v", err)
	}
	in := Input{Self: 1, Now: testNow, Admin: st, Ledger: snapshot.AdminHead{Count: 5, LastSeq: 5, Hash: [32]byte{7}}}
	cs := Fold(in)
	if !cs.Freeze.Active || cs.Freeze.Reason != "incident" || cs.AdminThreshold != 1 || cs.ICEThreshold != 1 {
		t.Fatalf("admin %+v", cs)
	}
	if want := (snapshot.AdminHead{Count: 5, LastSeq: 5, Hash: [32]byte{7}, AppliedThrough: issued}); cs.AdminHead != want {
		t.Fatalf("head %+v, want %+v", cs.AdminHead, want)
	}
	if len(cs.Operators) != 2 || cmp.Compare(cs.Operators[0].ID, cs.Operators[1].ID) >= 0 {
		t.Fatalf("operators not sorted by id: %+v", cs.Operators)
	}
	if len(cs.Lockouts) != 1 || cs.Lockouts[0].Verb != string(api.VerbFreezeCluster) {
		t.Fatalf("lockouts %+v", cs.Lockouts)
	}
	// The freeze is shown as of Now: past its Until it is over.
	in.Now = testNow.Add(2 * time.Minute)
	if Fold(in).Freeze.Active {
		t.Fatal("freeze shown active after its Until")
	}
	// No admin state: the admin fields stay zero, the ledger head shows.
	if cs := Fold(Input{Self: 1, Now: testNow, Ledger: snapshot.AdminHead{Count: 2}}); cs.Freeze.Active || cs.Operators != nil || cs.AdminHead.Count != 2 {
		t.Fatalf("without admin state: %+v", cs)
	}
}

// randomSnapshot is a node snapshot with up to maxList random peers,
// daemons and replicas: the parts Fold reads.
func randomSnapshot(r *rand.Rand, id identity.NodeID, maxList int) *snapshot.NodeSnapshot {
	ns := &snapshot.NodeSnapshot{ID: id, Label: id.Short(), Generation: r.Uint64N(100),
		StartedAt: testNow.Add(-time.Duration(r.IntN(3600)) * time.Second)}
	for range r.IntN(maxList + 1) {
		ns.Peers = append(ns.Peers, snapshot.PeerView{Health: snapshot.Health(r.IntN(3)), Direct: r.IntN(2) == 0,
			RTT: time.Duration(r.IntN(10)) * time.Millisecond})
	}
	for range r.IntN(maxList + 1) {
		ns.Daemons = append(ns.Daemons, snapshot.Daemon{ID: fmt.Sprintf("d%d", r.IntN(20)), Node: id,
			Lineage: snapshot.Lineage{Kind: snapshot.GroupKind(r.IntN(4)), Term: r.Uint64N(4), ForkAt: r.Uint64N(50)}})
	}
	for range r.IntN(maxList + 1) {
		ns.Replicas = append(ns.Replicas, snapshot.Replica{Role: snapshot.ReplicaRole(r.IntN(2)), Seq: r.Uint64N(1000), Term: r.Uint64N(4)})
	}
	return ns
}

// randomInput is a cluster of n nodes with random but valid state.
func randomInput(r *rand.Rand, n int) Input {
	in := Input{Cluster: "c", Self: 1, Now: testNow, Generation: 3}
	for i := range n {
		id := identity.NodeID(i + 1)
		ns := randomSnapshot(r, id, 4)
		// Make peers and groups overlap across nodes so dedup paths run.
		for j := range ns.Peers {
			ns.Peers[j].Peer = identity.NodeID(1 + r.IntN(n))
		}
		for j := range ns.Daemons {
			ns.Daemons[j].Lineage.Group = []string{"g1", "g2", "g3"}[r.IntN(3)]
		}
		for j := range ns.Replicas {
			ns.Replicas[j].Chain = []string{"c1", "c2", "c3", "c4"}[r.IntN(4)]
		}
		age := time.Duration(r.IntN(30)) * time.Second
		in.Snapshots = append(in.Snapshots, gossip.Verified{Snapshot: ns, Epoch: 1, Seq: uint64(i), ReceivedAt: testNow.Add(-age)})
		in.Peers = append(in.Peers, mesh.PeerInfo{ID: id, Direct: r.IntN(2) == 0, Health: snapshot.Health(r.IntN(3)),
			RTT: time.Duration(r.IntN(10)) * time.Millisecond})
	}
	in.Peers = append(in.Peers, mesh.PeerInfo{ID: identity.NodeID(n + 5), Health: mesh.Healthy})
	in.Chains = []snapshot.Chain{{Name: "c1", Group: "g1", Desired: 3}, {Name: "c9", Desired: 1}}
	in.Groups = []snapshot.Group{{Name: "g2", Desired: 2}, {Name: "g9", Desired: 1, Chain: "c2"}}
	return in
}

func TestFoldDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	in := randomInput(r, 30)
	want := Fold(in)
	for i := range 20 {
		shuffled := in
		shuffled.Snapshots = slices.Clone(in.Snapshots)
		shuffled.Peers = slices.Clone(in.Peers)
		shuffled.Groups = slices.Clone(in.Groups)
		shuffled.Chains = slices.Clone(in.Chains)
		r.Shuffle(len(shuffled.Snapshots), func(i, j int) {
			shuffled.Snapshots[i], shuffled.Snapshots[j] = shuffled.Snapshots[j], shuffled.Snapshots[i]
		})
		r.Shuffle(len(shuffled.Peers), func(i, j int) { shuffled.Peers[i], shuffled.Peers[j] = shuffled.Peers[j], shuffled.Peers[i] })
		r.Shuffle(len(shuffled.Groups), func(i, j int) { shuffled.Groups[i], shuffled.Groups[j] = shuffled.Groups[j], shuffled.Groups[i] })
		r.Shuffle(len(shuffled.Chains), func(i, j int) { shuffled.Chains[i], shuffled.Chains[j] = shuffled.Chains[j], shuffled.Chains[i] })
		got := Fold(shuffled)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("permutation %d folds differently", i)
		}
	}
	// Sorted as documented.
	if !slices.IsSortedFunc(want.Nodes, func(a, b snapshot.NodeView) int { return cmp.Compare(a.ID, b.ID) }) ||
		!slices.IsSortedFunc(want.Chains, func(a, b snapshot.Chain) int { return cmp.Compare(a.Name, b.Name) }) ||
		!slices.IsSortedFunc(want.Groups, func(a, b snapshot.Group) int { return cmp.Compare(a.Name, b.Name) }) {
		t.Fatal("fold output not sorted")
	}
	for _, e := range want.Edges {
		if e.A >= e.B {
			t.Fatalf("edge %+v not normalised", e)
		}
	}
}
