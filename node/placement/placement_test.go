package placement

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/deck-mesh/deck/node/placement/placementtest"
	"github.com/deck-mesh/deck/node/snapshot"
)

// clusterOf is placementtest.ClusterOf.
var clusterOf = placementtest.ClusterOf

func testSpec() Spec {
	return Spec{Groups: []GroupSpec{
		{Name: "solo", Kind: snapshot.GroupSolo, DaemonKind: "counter", Members: 1, ChainReplicas: 2, Load: 0.1},
		{Name: "rep", Kind: snapshot.GroupReplica, DaemonKind: "counter", Members: 3, ChainReplicas: 3, Load: 0.2},
		{Name: "stby", Kind: snapshot.GroupStandby, DaemonKind: "counter", Members: 2, ChainReplicas: 2, Load: 0.1},
		{Name: "fork", Kind: snapshot.GroupFork, DaemonKind: "counter", Members: 2, Parent: "rep", ForkAt: 7, Load: 0.05},
	}}
}

// applyAssignment makes cs show assignment a as the current state (daemons
// running where assigned, replicas held, leaders claimed), like the cluster
// would after reconciling.
func applyAssignment(cs *snapshot.ClusterSnapshot, a *Assignment) *snapshot.ClusterSnapshot {
	out := *cs
	out.Nodes = slices.Clone(cs.Nodes)
	for i := range out.Nodes {
		v := &out.Nodes[i]
		v.Daemons, v.Replicas = nil, nil
		for _, id := range a.DaemonsOn(v.ID) {
			p := a.Daemons[id]
			v.Daemons = append(v.Daemons, snapshot.Daemon{ID: id, Lineage: p.Lineage, Node: v.ID, Lifecycle: snapshot.LifecycleRunning})
		}
		for _, c := range a.ChainsOn(v.ID) {
			cp := a.Chains[c]
			r := snapshot.Replica{Chain: c, Term: cp.Term}
			if cp.Leader == v.ID {
				r.Role = snapshot.Leader
			}
			v.Replicas = append(v.Replicas, r)
		}
	}
	return &out
}

func TestPlaceSpreadsAndFillsChains(t *testing.T) {
	cs := clusterOf(5)
	a := Place(cs, testSpec(), nil)
	if len(a.Unplaced) != 0 {
		t.Fatalf("unplaced: %v", a.Unplaced)
	}
	// Members of one group land on distinct nodes while nodes suffice.
	for _, g := range testSpec().Groups {
		seen := map[NodeID]bool{}
		for _, id := range a.Groups[g.Name].Members {
			n := a.NodeOf(id)
			if seen[n] {
				t.Errorf("group %s: two members on %v", g.Name, n)
			}
			seen[n] = true
		}
	}
	for name, c := range a.Chains {
		if len(c.Holders) != c.Desired {
			t.Errorf("chain %s: %d holders, want %d", name, len(c.Holders), c.Desired)
		}
		if !slices.Contains(c.Holders, c.Leader) {
			t.Errorf("chain %s: leader %v not a holder %v", name, c.Leader, c.Holders)
		}
		if c.Term != 1 {
			t.Errorf("chain %s: first term %d, want 1", name, c.Term)
		}
	}
	if g := a.Groups["stby"]; g.Active == "" || g.Term != 1 {
		t.Errorf("standby: active %q term %d", g.Active, g.Term)
	}
	if p := a.Daemons["fork-1"]; p.Lineage.ForkAt != 7 || p.Lineage.Kind != snapshot.GroupFork {
		t.Errorf("fork lineage %+v", p.Lineage)
	}
}

func TestPlaceRules(t *testing.T) {
	spec := testSpec()
	base := clusterOf(5)
	settled := applyAssignment(base, Place(base, spec, nil))
	before := Place(settled, spec, nil)

	tests := []struct {
		name  string
		edit  func(v *snapshot.NodeView)
		node  NodeID
		check func(t *testing.T, a *Assignment, node NodeID)
	}{
		{"stable when nothing changes", func(v *snapshot.NodeView) {}, 1, func(t *testing.T, a *Assignment, _ NodeID) {
			if d := Diff(before, a); len(d.Daemons)+len(d.Replicas)+len(d.Leaders) != 0 {
				t.Fatalf("settled cluster moved: %+v", d)
			}
		}},
		{"cordon keeps existing", func(v *snapshot.NodeView) { v.Cordoned = true }, 2, func(t *testing.T, a *Assignment, n NodeID) {
			if !slices.Equal(a.DaemonsOn(n), before.DaemonsOn(n)) {
				t.Fatalf("cordoned node lost daemons: %v -> %v", before.DaemonsOn(n), a.DaemonsOn(n))
			}
		}},
		{"maintenance empties node", func(v *snapshot.NodeView) { v.Maintenance.State = snapshot.MaintEntering }, 3, emptied},
		{"unreachable empties node", func(v *snapshot.NodeView) { v.Health = snapshot.Unreachable }, 4, emptied},
		{"stale empties node", func(v *snapshot.NodeView) { v.Stale = true }, 5, emptied},
		{"drain failed keeps draining", func(v *snapshot.NodeView) { v.Maintenance.State = snapshot.MaintDrainFailed }, 1, emptied},
		{"recovery keeps daemons", func(v *snapshot.NodeView) { v.Maintenance.State = snapshot.MaintRecovery }, 1, func(t *testing.T, a *Assignment, n NodeID) {
			if !slices.Equal(a.DaemonsOn(n), before.DaemonsOn(n)) {
				t.Fatalf("recovering node lost daemons")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cs := *settled
			cs.Nodes = slices.Clone(settled.Nodes)
			tc.edit(&cs.Nodes[tc.node-1])
			a := Place(&cs, spec, nil)
			tc.check(t, a, tc.node)
			if len(a.Unplaced) != 0 {
				t.Fatalf("unplaced with 4 live nodes: %v", a.Unplaced)
			}
		})
	}
}

func emptied(t *testing.T, a *Assignment, n NodeID) {
	t.Helper()
	if ds := a.DaemonsOn(n); len(ds) != 0 {
		t.Fatalf("node %v keeps daemons %v", n, ds)
	}
	if cs := a.ChainsOn(n); len(cs) != 0 {
		t.Fatalf("node %v keeps chains %v", n, cs)
	}
	for _, c := range a.Chains {
		if c.Leader == n {
			t.Fatalf("node %v still leads %s", n, c.Name)
		}
	}
}

func TestPlaceCordonBlocksNew(t *testing.T) {
	cs := clusterOf(3)
	for i := range cs.Nodes {
		cs.Nodes[i].Cordoned = i != 2
	}
	a := Place(cs, Spec{Groups: []GroupSpec{{Name: "g", DaemonKind: "k", Kind: snapshot.GroupReplica, Members: 3}}}, nil)
	for _, id := range a.DaemonIDs() {
		if a.NodeOf(id) != 3 {
			t.Fatalf("%s on cordoned node %v", id, a.NodeOf(id))
		}
	}
}

func TestPlaceCapabilitiesAndUnplaced(t *testing.T) {
	cs := clusterOf(3)
	cs.Nodes[1].Capabilities = []string{"cpu", "gpu"}
	spec := Spec{Groups: []GroupSpec{{Name: "inf", DaemonKind: "k", Kind: snapshot.GroupReplica, Members: 2, Requires: []string{"gpu"}}}}
	a := Place(cs, spec, nil)
	// Spreading is a preference; capability is a rule: both go to node 2.
	if a.NodeOf("inf-0") != 2 || a.NodeOf("inf-1") != 2 {
		t.Fatalf("gpu daemons on %v %v", a.NodeOf("inf-0"), a.NodeOf("inf-1"))
	}
	cs.Nodes[1].Health = snapshot.Suspect
	a = Place(cs, spec, nil)
	if !slices.Equal(a.Unplaced, []string{"inf-0", "inf-1"}) {
		t.Fatalf("unplaced %v", a.Unplaced)
	}
}

func TestPlaceAvoidsAvoidedNodes(t *testing.T) {
	cs := clusterOf(3)
	cs.Nodes[0].Avoid = []snapshot.AvoidEntry{{Peer: 2}}
	a := Place(cs, Spec{Groups: []GroupSpec{{Name: "g", DaemonKind: "k", Kind: snapshot.GroupReplica, Members: 2}}}, nil)
	for _, id := range a.DaemonIDs() {
		if a.NodeOf(id) == 2 {
			t.Fatalf("%s placed on avoided node", id)
		}
	}
}

func TestPlaceSaturation(t *testing.T) {
	cs := clusterOf(2)
	cs.Nodes[0].Resources.Saturation = 0.95
	a := Place(cs, Spec{Groups: []GroupSpec{{Name: "g", DaemonKind: "k", Members: 1, Load: 0.3}}}, nil)
	if a.NodeOf("g-0") != 2 {
		t.Fatalf("placed on the saturated node")
	}
	p := ProjectedSaturation(cs, Spec{Groups: []GroupSpec{{Name: "g", DaemonKind: "k", Members: 1, Load: 0.3}}}, a)
	if p[1] != 0.95 || p[2] != 0.3 {
		t.Fatalf("projected %v", p)
	}
}

func TestChainLeaderRules(t *testing.T) {
	spec := Spec{Groups: []GroupSpec{{Name: "g", DaemonKind: "k", Members: 1, ChainReplicas: 3}}}
	cs := clusterOf(4)
	a := Place(cs, spec, nil)
	c := a.Chains["g"]
	// Lowest mean RTT wins among holders; our edges make low ids fastest.
	if c.Leader != c.Holders[0] {
		t.Fatalf("leader %v, holders %v", c.Leader, c.Holders)
	}
	settled := applyAssignment(cs, a)
	// A claimant with a higher term (force-cutover) takes over and keeps it.
	other := c.Holders[2]
	for i := range settled.Nodes {
		for j := range settled.Nodes[i].Replicas {
			r := &settled.Nodes[i].Replicas[j]
			if settled.Nodes[i].ID == other {
				r.Role, r.Term = snapshot.Leader, c.Term+1
			}
		}
	}
	b := Place(settled, spec, nil)
	if b.Chains["g"].Leader != other || b.Chains["g"].Term != c.Term+1 {
		t.Fatalf("cutover leader %v term %d", b.Chains["g"].Leader, b.Chains["g"].Term)
	}
	// Losing the leader's node elects a new one under a higher term.
	for i := range settled.Nodes {
		if settled.Nodes[i].ID == other {
			settled.Nodes[i].Health = snapshot.Unreachable
		}
	}
	d := Place(settled, spec, nil)
	if d.Chains["g"].Leader == other || d.Chains["g"].Term <= c.Term+1 || len(d.Chains["g"].Holders) != 3 {
		t.Fatalf("after loss: %+v", d.Chains["g"])
	}
}

func TestEvictionExcludes(t *testing.T) {
	spec := Spec{Groups: []GroupSpec{{Name: "g", DaemonKind: "k", Members: 1, ChainReplicas: 2}}}
	cs := clusterOf(3)
	a := Place(cs, spec, nil)
	victim := a.Chains["g"].Holders[0]
	b := PlaceWith(applyAssignment(cs, a), spec, nil, OptionsFor(ClusterIntent{Evictions: []ReplicaEviction{{Chain: "g", Node: victim, Gen: 1}}}))
	if slices.Contains(b.Chains["g"].Holders, victim) || len(b.Chains["g"].Holders) != 2 {
		t.Fatalf("victim %v still in %v", victim, b.Chains["g"].Holders)
	}
}

func TestStandbyPromotion(t *testing.T) {
	spec := Spec{Groups: []GroupSpec{{Name: "s", DaemonKind: "k", Kind: snapshot.GroupStandby, Members: 3}}}
	cs := clusterOf(4)
	a := Place(cs, spec, nil)
	settled := applyAssignment(cs, a)
	act := a.Groups["s"].Active
	actNode := a.NodeOf(act)
	for i := range settled.Nodes {
		v := &settled.Nodes[i]
		for j := range v.Daemons {
			d := &v.Daemons[j]
			if d.ID == "s-2" {
				d.Lineage.Synced = 99 // the best-synced standby
			}
		}
		if v.ID == actNode {
			v.Health = snapshot.Unreachable
		}
	}
	b := Place(settled, spec, nil)
	if act == "s-2" {
		t.Skip("placement made the best-synced member active; nothing to promote")
	}
	if b.Groups["s"].Active != "s-2" || b.Groups["s"].Term != a.Groups["s"].Term+1 {
		t.Fatalf("promotion: %+v (was %s term %d)", b.Groups["s"], act, a.Groups["s"].Term)
	}
}

// TestPlaceDeterministic is the property every node relies on: the same
// snapshot gives the same assignment whatever the order of cs.Nodes, map
// iteration or repetition.
func TestPlaceDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 200; iter++ {
		cs := randomCluster(r)
		spec := randomSpec(r)
		a := Place(cs, spec, nil)
		shuffled := *cs
		shuffled.Nodes = slices.Clone(cs.Nodes)
		r.Shuffle(len(shuffled.Nodes), func(i, j int) { shuffled.Nodes[i], shuffled.Nodes[j] = shuffled.Nodes[j], shuffled.Nodes[i] })
		for k := 0; k < 3; k++ {
			b := Place(&shuffled, spec, nil)
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("iter %d: placement differs:\n%+v\n%+v", iter, a, b)
			}
		}
		// Settling on the answer is a fixed point: no further moves.
		c := Place(applyAssignment(cs, a), spec, nil)
		if d := Diff(a, c); len(d.Daemons) != 0 || len(d.Replicas) != 0 {
			t.Fatalf("iter %d: not a fixed point: %+v", iter, d)
		}
	}
}

func randomCluster(r *rand.Rand) *snapshot.ClusterSnapshot {
	cs := clusterOf(1 + r.IntN(12))
	for i := range cs.Nodes {
		v := &cs.Nodes[i]
		v.Resources.Saturation = float64(r.IntN(10)) / 10
		if r.IntN(6) == 0 {
			v.Cordoned = true
		}
		if r.IntN(8) == 0 {
			v.Health = snapshot.Unreachable
		}
		if r.IntN(3) == 0 {
			v.Capabilities = append(v.Capabilities, "gpu")
		}
	}
	return cs
}

func randomSpec(r *rand.Rand) Spec {
	var s Spec
	for i := 0; i < 1+r.IntN(6); i++ {
		g := GroupSpec{Name: fmt.Sprintf("g%d", i), DaemonKind: "k", Kind: snapshot.GroupKind(r.IntN(3)),
			Members: 1 + r.IntN(4), ChainReplicas: r.IntN(4), Load: float64(r.IntN(5)) / 10}
		if r.IntN(4) == 0 {
			g.Requires = []string{"gpu"}
		}
		s.Groups = append(s.Groups, g)
	}
	return s
}

func TestDiffAndStability(t *testing.T) {
	spec := Spec{Groups: []GroupSpec{{Name: "g", DaemonKind: "k", Kind: snapshot.GroupReplica, Members: 2, ChainReplicas: 2}}}
	cs := clusterOf(4)
	a := Place(cs, spec, nil)
	settled := applyAssignment(cs, a)
	n := a.NodeOf("g-0")
	for i := range settled.Nodes {
		if settled.Nodes[i].ID == n {
			settled.Nodes[i].Maintenance.State = snapshot.MaintEntering
		}
	}
	b := Place(settled, spec, nil)
	d := Diff(a, b)
	if len(d.Daemons) != 1 || d.Daemons[0].Daemon != "g-0" || d.Daemons[0].From != n || d.Daemons[0].To == n {
		t.Fatalf("daemon diff %+v", d.Daemons)
	}
	if d.Stability() >= 1 || d.Stability() <= 0 {
		t.Fatalf("stability %v", d.Stability())
	}
	if !slices.Contains(d.Nodes(), n) {
		t.Fatalf("nodes %v miss %v", d.Nodes(), n)
	}
	if s := Diff(a, a).Stability(); s != 1 {
		t.Fatalf("self-diff stability %v", s)
	}
	cur := CurrentAssignment(settled, spec)
	if cur.NodeOf("g-0") != n || len(cur.Chains["g"].Holders) != 2 {
		t.Fatalf("current %+v", cur.Daemons)
	}
}

func TestSpecValidate(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		ok   bool
	}{
		{"ok", testSpec(), true},
		{"empty name", Spec{Groups: []GroupSpec{{DaemonKind: "k"}}}, false},
		{"no kind", Spec{Groups: []GroupSpec{{Name: "a"}}}, false},
		{"dup", Spec{Groups: []GroupSpec{{Name: "a", DaemonKind: "k"}, {Name: "a", DaemonKind: "k"}}}, false},
		{"members", Spec{Groups: []GroupSpec{{Name: "a", DaemonKind: "k", Members: GroupMembersMax + 1}}}, false},
		{"replicas", Spec{Groups: []GroupSpec{{Name: "a", DaemonKind: "k", ChainReplicas: -1}}}, false},
		{"load", Spec{Groups: []GroupSpec{{Name: "a", DaemonKind: "k", Load: 2}}}, false},
		{"orphan fork", Spec{Groups: []GroupSpec{{Name: "a", DaemonKind: "k", Kind: snapshot.GroupFork, Parent: "x"}}}, false},
	}
	for _, tc := range tests {
		if err := tc.spec.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: err %v", tc.name, err)
		}
	}
}

// BenchmarkPlace1000x100 places 1,000 daemons over 100 nodes from scratch
// and, separately, re-places a settled cluster (the per-tick case).
func BenchmarkPlace1000x100(b *testing.B) {
	cs := clusterOf(100)
	var spec Spec
	for i := 0; i < 100; i++ {
		spec.Groups = append(spec.Groups, GroupSpec{Name: fmt.Sprintf("g%d", i), DaemonKind: "k",
			Kind: snapshot.GroupReplica, Members: 10, ChainReplicas: 3, Load: 0.05})
	}
	b.Run("fresh", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Place(cs, spec, nil)
		}
	})
	settled := applyAssignment(cs, Place(cs, spec, nil))
	b.Run("settled", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Place(settled, spec, nil)
		}
	})
}

// TestOverReplicatedChainTrimsTheSameHolderInEveryView: after a heal a
// chain has one holder too many. Each node sees its own seq fresh and the
// others' a little stale, so each follower looks furthest along in its own
// view; every view must still pick the same holders, or each keeps itself
// and the extra copy never goes.
func TestOverReplicatedChainTrimsTheSameHolderInEveryView(t *testing.T) {
	spec := Spec{Groups: []GroupSpec{{Name: "g", DaemonKind: "k", Members: 1, ChainReplicas: 3}}}
	const leader = NodeID(2)
	followers := []NodeID{1, 3, 4}
	var first []NodeID
	for _, self := range append([]NodeID{leader}, followers...) {
		cs := clusterOf(5)
		for i := range cs.Nodes {
			v := &cs.Nodes[i]
			r := snapshot.Replica{Chain: "g", Role: snapshot.Follower, Term: 4, Seq: 96}
			switch {
			case v.ID == leader:
				r.Role, r.Seq = snapshot.Leader, 99
			case v.ID == 5:
				continue // holds nothing
			}
			if v.ID == self {
				r.Seq += 3 // fresh in its own view
			}
			v.Replicas = []snapshot.Replica{r}
		}
		c := Place(cs, spec, nil).Chains["g"]
		if len(c.Holders) != 3 || !slices.Contains(c.Holders, leader) || c.Leader != leader {
			t.Fatalf("view of %v: holders %v leader %v", self, c.Holders, c.Leader)
		}
		if first == nil {
			first = c.Holders
		} else if !slices.Equal(first, c.Holders) {
			t.Fatalf("view of %v keeps %v, another view keeps %v", self, c.Holders, first)
		}
	}
	// A deposed same-term leader goes before a follower.
	cs := clusterOf(4)
	for i := range cs.Nodes {
		v := &cs.Nodes[i]
		r := snapshot.Replica{Chain: "g", Role: snapshot.Follower, Term: 4, Seq: 50}
		if v.ID == 1 || v.ID == 2 {
			r.Role = snapshot.Leader
		}
		if v.ID == 1 {
			r.Seq = 10 // claimed while cut off; lost to node 2
		}
		v.Replicas = []snapshot.Replica{r}
	}
	if c := Place(cs, spec, nil).Chains["g"]; slices.Contains(c.Holders, 1) || c.Leader != 2 {
		t.Fatalf("deposed leader kept: holders %v leader %v", c.Holders, c.Leader)
	}
}

// TestHostingViewDropsObservers: a console's node (observer) is the least
// loaded healthy node of a cluster, so placement over the raw view would put
// daemons on it; over HostingView nothing lands there, and the caller's
// snapshot is left as it was.
func TestHostingViewDropsObservers(t *testing.T) {
	cs := clusterOf(3)
	if got := HostingView(cs); got != cs {
		t.Fatal("a view without observers is not returned as is")
	}
	console := snapshot.NodeView{NodeSnapshot: snapshot.NodeSnapshot{ID: 99, Capabilities: []string{"cpu"}, Observer: true}}
	cs.Nodes = append(cs.Nodes, console)
	for i := range cs.Nodes[:3] {
		cs.Nodes[i].Resources.Saturation = 0.5
	}
	raw := Place(cs, testSpec(), nil)
	if len(raw.DaemonsOn(99)) == 0 {
		t.Fatal("the raw view places nothing on the idle observer: the test shows nothing")
	}
	view := HostingView(cs)
	if len(cs.Nodes) != 4 || !cs.Nodes[3].Observer {
		t.Fatal("HostingView modified its input")
	}
	if len(view.Nodes) != 3 || slices.ContainsFunc(view.Nodes, func(v snapshot.NodeView) bool { return v.Observer }) {
		t.Fatalf("observer left in the view: %d nodes", len(view.Nodes))
	}
	if a := Place(view, testSpec(), nil); len(a.DaemonsOn(99)) != 0 || len(a.ChainsOn(99)) != 0 {
		t.Fatal("placement over the hosting view used the observer")
	}
	if HostingView(nil) != nil {
		t.Fatal("nil view")
	}
}
