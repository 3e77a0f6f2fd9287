package meshos

import (
	"slices"
	"strings"
	"testing"

	"github.com/deck-mesh/deck/node/snapshot"
)

// TestDuplicatesAgreeOnOneCopyWhenNeitherIsPlaced: a partition leaves a
// daemon running on two nodes, and after the heal placement wants it on a
// third while backpressure holds every migration. The copies must agree on
// the one that hands it over and the other must stop; before, both waited to
// migrate and the daemon ran twice for as long as backpressure lasted.
func TestDuplicatesAgreeOnOneCopyWhenNeitherIsPlaced(t *testing.T) {
	spec := Spec{Groups: []GroupSpec{
		{Name: "solo", Kind: snapshot.GroupSolo, DaemonKind: "counter", Members: 1, Load: 0.5},
	}}
	// One node at 0.5 declared load puts the mean saturation of three
	// over 0.1: backpressure is on throughout and no migration is admitted.
	lowWater := func(_ NodeID, cfg *Config) { cfg.Timers.BackpressureHigh = 0.1 }
	c := newClusterIntent(t, 3, spec, func(ids []NodeID, in *ClusterIntent) {
		in.Nodes[ids[1]] = NodeIntent{Cordoned: true}
		in.Nodes[ids[2]] = NodeIntent{Cordoned: true}
	}, lowWater)
	a, b, target := c.ids[0], c.ids[1], c.ids[2]
	runningOn := func() []NodeID {
		var on []NodeID
		for _, id := range c.ids {
			for _, d := range c.rts[id].Latest().Daemons {
				if d.ID == "solo-0" && d.Lifecycle == snapshot.LifecycleRunning {
					on = append(on, id)
				}
			}
		}
		return on
	}
	c.waitFor("solo-0 on the one uncordoned node", func() bool { return slices.Equal(runningOn(), []NodeID{a}) })
	c.waitFor("backpressure on every node", func() bool {
		for _, id := range c.ids {
			rt := c.rts[id]
			rt.mu.Lock()
			on := rt.backpressure
			rt.mu.Unlock()
			if !on {
				return false
			}
		}
		return true
	})

	// Partition a away; b, uncordoned, starts its own copy.
	c.isolate(a, true)
	c.editNode(b, func(ni *NodeIntent) { ni.Cordoned = false })
	c.waitFor("a second copy behind the partition", func() bool { return slices.Equal(runningOn(), []NodeID{a, b}) })

	// Both holders drain and only the third node may host: the heal shows
	// two copies, neither where placement wants it.
	// One edit, so no fold shows the drains without the heal (b alone
	// would be the only copy and migrate it whenever backpressure dips).
	c.setIntent(func(in *ClusterIntent) {
		in.Nodes[a] = NodeIntent{Maintenance: MaintIntentEnter, MaintGen: 1}
		in.Nodes[b] = NodeIntent{Maintenance: MaintIntentEnter, MaintGen: 1}
		in.Nodes[target] = NodeIntent{}
		c.hub.SetDown(a, false)
		c.dead[a] = false // c.mu is held by setIntent
	})
	c.waitFor("one copy left, on the node that hands it over", func() bool {
		return slices.Equal(runningOn(), []NodeID{a})
	})
	if p := c.rts[b].Assignment().Daemons["solo-0"]; p.Node != target || p.HandOver != a {
		t.Fatalf("b's assignment: node %v hand-over %v, want %v from %v", p.Node, p.HandOver, target, a)
	}
	// The scenario is what it claims: the survivor's move is held by
	// backpressure, not done.
	c.waitFor("the hand-over held by backpressure", func() bool {
		for _, p := range c.rts[a].Latest().Pending {
			if p.Target == "solo-0" && strings.Contains(p.Blocked, "backpressure") {
				return true
			}
		}
		return false
	})
	if !c.sinks[b].hasLog("stopped duplicate") {
		t.Fatal("b stopped its copy without saying why")
	}
}
