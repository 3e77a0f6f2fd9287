package meshos

import (
	"testing"

	"github.com/deck-mesh/deck/node/snapshot"
)

// TestInvalidateMovesWorkOffACordonedNode: invalidate-placement on a
// cordoned node (which takes no new placements, so a fresh placement puts
// nothing back) moves its daemons AND its chain replicas away. Replicas
// need every node to place the node's work as if new: the new holder must
// agree to take the replica before the old one may drop it.
func TestInvalidateMovesWorkOffACordonedNode(t *testing.T) {
	spec := Spec{Groups: []GroupSpec{
		{Name: "rep", Kind: snapshot.GroupReplica, DaemonKind: "counter", Members: 2, ChainReplicas: 2},
	}}
	c := newCluster(t, 5, spec)
	c.waitFor("convergence", c.settled)
	var target NodeID
	for _, id := range c.live() {
		rt := c.rts[id]
		rt.mu.Lock()
		holds := rt.replicas[ChainName("rep")] != nil
		rt.mu.Unlock()
		if holds {
			target = id
			break
		}
	}
	if target == 0 {
		t.Fatal("no node holds a replica of rep")
	}
	c.editNode(target, func(ni *NodeIntent) { ni.Cordoned = true })
	c.editNode(target, func(ni *NodeIntent) { ni.InvalidateGen = 1 })
	c.waitFor("the cordoned node's work moved off it", func() bool {
		ns := c.node(target)
		if ns == nil || len(ns.Replicas) > 0 {
			return false
		}
		for _, d := range ns.Daemons {
			if d.Lifecycle != snapshot.LifecycleStopped {
				return false
			}
		}
		return c.settled()
	})
}
