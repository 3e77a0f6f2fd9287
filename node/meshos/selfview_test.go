package meshos

import (
	"math"
	"testing"

	"github.com/deck-mesh/deck/node/placement"
	"github.com/deck-mesh/deck/node/snapshot"
)

// TestSelfViewSaturationIsWhatRunsNow: a node plans on its own live
// daemons, so its own saturation must be theirs too. Taken from the last
// snapshot (built before a daemon arrived), placement subtracts the new
// daemon's load from a gauge that never had it, and the node looks lighter
// to itself than to every other node and to the blast-radius preview:
// they then disagree on where the next daemon goes (issue 17).
func TestSelfViewSaturationIsWhatRunsNow(t *testing.T) {
	spec := placement.Spec{Groups: []placement.GroupSpec{
		{Name: "rep", Kind: snapshot.GroupReplica, DaemonKind: "counter", Members: 2, Load: 0.3},
	}}
	c := newCluster(t, 1, spec)
	c.waitFor("convergence", c.settled)
	rt := c.rts[c.ids[0]]
	rt.mu.Lock()
	defer rt.mu.Unlock()
	// The last snapshot as built before the daemons started.
	stale := *rt.latest.Load()
	stale.Resources.Saturation = 0
	rt.latest.Store(&stale)
	self := rt.viewLocked(rt.now()).Node(rt.self)
	if self == nil {
		t.Fatal("the view has no entry for the node itself")
	}
	if got, want := self.Resources.Saturation, 0.6; math.Abs(got-want) > 1e-9 {
		t.Errorf("own saturation %.2f with two daemons of load 0.3 running, want %.2f", got, want)
	}
}
