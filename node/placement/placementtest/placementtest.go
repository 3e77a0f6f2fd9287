// Package placementtest builds the cluster views placement tests start
// from, shared by the placement package's tests and the runtime's (which
// place through it).
package placementtest

import (
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

// ClusterOf builds a ClusterSnapshot of n healthy, active nodes with ids
// 1..n, capability "cpu", and a full mesh of edges whose RTT grows with
// the node ids.
func ClusterOf(n int) *snapshot.ClusterSnapshot {
	cs := &snapshot.ClusterSnapshot{BuiltAt: time.Unix(1000, 0)}
	for i := 1; i <= n; i++ {
		cs.Nodes = append(cs.Nodes, snapshot.NodeView{NodeSnapshot: snapshot.NodeSnapshot{
			ID: identity.NodeID(i), Capabilities: []string{"cpu"},
		}})
	}
	for i := 1; i <= n; i++ {
		for j := i + 1; j <= n; j++ {
			cs.Edges = append(cs.Edges, snapshot.Edge{A: identity.NodeID(i), B: identity.NodeID(j), RTT: time.Duration(i+j) * time.Millisecond})
		}
	}
	return cs
}
