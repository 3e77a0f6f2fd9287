package meshos

import (
	"slices"
	"testing"

	"github.com/deck-mesh/deck/node/placement"
	"github.com/deck-mesh/deck/node/placement/placementtest"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Moved here from placement_test.go when pure placement became its own
// package: this test also covers the runtime's claimedLeader and caughtUp.

// clusterOf is placementtest.ClusterOf.
var clusterOf = placementtest.ClusterOf

// TestChainHealRules: after a partition heals, two leaders claim one chain.
// The higher (term, seq) wins everywhere, the loser ranks as a follower
// when the chain is over-replicated, and a holder dropping out is not held
// forever by a leader that is behind it.
func TestChainHealRules(t *testing.T) {
	spec := Spec{Groups: []GroupSpec{{Name: "g", DaemonKind: "k", Members: 1, ChainReplicas: 2}}}
	cs := clusterOf(3)
	set := func(id NodeID, r snapshot.Replica) {
		for i := range cs.Nodes {
			if cs.Nodes[i].ID == id {
				r.Chain = "g"
				cs.Nodes[i].Replicas = []snapshot.Replica{r}
			}
		}
	}
	// Node 1 (lowest id, lowest RTT) was cut off and claimed term 2 at seq
	// 5; node 3 led the majority at term 2 to seq 18, node 2 followed it.
	set(1, snapshot.Replica{Role: snapshot.Leader, Term: 2, Seq: 5})
	set(2, snapshot.Replica{Role: snapshot.Follower, Term: 2, Seq: 18})
	set(3, snapshot.Replica{Role: snapshot.Leader, Term: 2, Seq: 18})
	a := placement.Place(cs, spec, nil)
	c := a.Chains["g"]
	if c.Leader != 3 || c.Term != 2 || !slices.Equal(c.Holders, []NodeID{2, 3}) {
		t.Fatalf("same term: leader %v term %d holders %v, want 3, 2, [2 3]", c.Leader, c.Term, c.Holders)
	}
	if got := claimedLeader(cs, "g", 0); got.node != 3 {
		t.Fatalf("claimedLeader %v, want 3", got.node)
	}
	// A higher term beats more progress: it fenced the other claim.
	set(1, snapshot.Replica{Role: snapshot.Leader, Term: 3, Seq: 5})
	if c := placement.Place(cs, spec, nil).Chains["g"]; c.Leader != 1 || c.Term != 3 {
		t.Fatalf("higher term: leader %v term %d, want 1, 3", c.Leader, c.Term)
	}
	// Equal (term, seq): the lowest id, on every node alike.
	set(1, snapshot.Replica{Role: snapshot.Leader, Term: 2, Seq: 18})
	if c := placement.Place(cs, spec, nil).Chains["g"]; c.Leader != 1 {
		t.Fatalf("tie: leader %v, want 1", c.Leader)
	}

	// caughtUp: node 2 (seq 18) leaves a chain whose assigned leader (node 1)
	// is at seq 5 in the same term and never syncs. The winning claim is the
	// yardstick, so node 2 waits only for what that leader has.
	set(1, snapshot.Replica{Role: snapshot.Leader, Term: 2, Seq: 5})
	set(3, snapshot.Replica{Role: snapshot.Follower, Term: 2, Seq: 5})
	cp := ChainPlacement{Name: "g", Holders: []NodeID{1, 3}, Leader: 1, Term: 2}
	if !caughtUp(cs, cp, 2, 2, 18) {
		t.Fatal("drop held by a leader behind the dropping holder")
	}
	// Self leads: every other assigned holder needs all of self's entries.
	set(2, snapshot.Replica{Role: snapshot.Leader, Term: 3, Seq: 18})
	if caughtUp(cs, cp, 2, 3, 18) {
		t.Fatal("the leader dropped before its followers had its entries")
	}
	// A holder still in an older term has not heard the winner yet.
	set(2, snapshot.Replica{Role: snapshot.Follower, Term: 2, Seq: 18})
	set(1, snapshot.Replica{Role: snapshot.Leader, Term: 4, Seq: 20})
	set(3, snapshot.Replica{Role: snapshot.Follower, Term: 2, Seq: 20})
	if caughtUp(cs, cp, 2, 2, 18) {
		t.Fatal("caught up although a holder is not in the leader's term")
	}
}
