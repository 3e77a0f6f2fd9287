package node_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/meshos"
	"github.com/deck-mesh/deck/node/nodetest"
	"github.com/deck-mesh/deck/node/snapshot"
)

// TestPreviewPredictsWhatTheMeshDoes previews, then commits, a seeded
// sequence of drains of the busiest node (some with another node cordoned
// first), restoring each with exit-maintenance and uncordon before the
// next, and checks every predicted daemon and replica move against where
// the work settled.
func TestPreviewPredictsWhatTheMeshDoes(t *testing.T) {
	if testing.Short() {
		t.Skip("real mesh")
	}
	const drains = 4
	m := startMeshWith(t, 6, fastTimers)
	r := rand.New(rand.NewPCG(17, 4))
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cl := adminClient(t, m, 0)
	where := waitPlaced(t, m, "initial placement")
	predicted, matched := 0, 0
	for step := 0; step < drains; step++ {
		victim := busiest(where)
		var cordoned identity.NodeID
		if r.IntN(2) == 0 {
			ids := []identity.NodeID{}
			for _, nd := range m.nodes {
				if nd.ID() != victim {
					ids = append(ids, nd.ID())
				}
			}
			cordoned = ids[r.IntN(len(ids))]
			if _, err := cl.Admin().Cordon(ctx, cordoned); err != nil {
				t.Fatal(err)
			}
			nodetest.Eventually(t, "cordon visible", func() bool {
				nv := nodeView(m.nodes[0], cordoned)
				return nv != nil && nv.Cordoned
			})
		}
		// The preview is read on a view where every node is Healthy and
		// current, as an operator reads it: on a loaded machine a node a
		// heartbeat late is Suspect for a moment, and a preview taken then
		// rightly leaves it out of the pool while the mesh, a second later,
		// places on it.
		nodetest.Eventually(t, "every node healthy before the preview", func() bool {
			return allHealthy(m.nodes[0].Cluster(), len(m.nodes))
		})
		holdersBefore := holdersOf(m.nodes[0].Cluster())
		br, err := cl.Preview(ctx, api.Action{Verb: api.VerbDrain, Node: victim, Duration: 2 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Admin().Drain(ctx, victim, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		nodetest.Eventually(t, "victim drained", func() bool {
			nv := nodeView(m.nodes[0], victim)
			return nv != nil && nv.Maintenance.State == snapshot.MaintMaintenance && len(nv.Daemons) == 0 && len(nv.Replicas) == 0
		})
		after := waitPlaced(t, m, "placement after drain")
		holdersAfter := holdersOf(m.nodes[0].Cluster())
		for _, mv := range br.Migrated {
			predicted++
			if after[mv.Daemon] == mv.To {
				matched++
			} else {
				t.Logf("drain %d of %s: predicted %s %s→%s, it went to %s", step+1, victim, mv.Daemon, mv.From, mv.To, after[mv.Daemon])
			}
		}
		for _, mv := range br.Replicas {
			predicted++
			ok := (mv.From == 0 || !slices.Contains(holdersAfter[mv.Chain], mv.From)) &&
				(mv.To == 0 || slices.Contains(holdersAfter[mv.Chain], mv.To))
			if ok {
				matched++
			} else {
				t.Logf("drain %d of %s: predicted replica %s %s→%s, holders %v → %v", step+1, victim, mv.Chain, mv.From, mv.To, holdersBefore[mv.Chain], holdersAfter[mv.Chain])
			}
		}
		if _, err := cl.Admin().ExitMaintenance(ctx, victim); err != nil {
			t.Fatal(err)
		}
		if cordoned != 0 {
			if _, err := cl.Admin().Uncordon(ctx, cordoned); err != nil {
				t.Fatal(err)
			}
		}
		// Restored before the next drain, as in the report this test comes
		// from: back to Active and uncordoned.
		nodetest.Eventually(t, "victim back to active", func() bool {
			nv := nodeView(m.nodes[0], victim)
			return nv != nil && nv.Maintenance.State == snapshot.MaintActive && !nv.Cordoned
		})
		nodetest.Eventually(t, "restore folded", func() bool {
			ni := m.nodes[0].AdminState().Intent().Nodes
			return ni[victim].Maintenance == meshos.MaintIntentExit && (cordoned == 0 || !ni[cordoned].Cordoned)
		})
		where = waitPlaced(t, m, "placement after restore")
	}
	if predicted == 0 {
		t.Fatal("no move was predicted")
	}
	rate := float64(matched) / float64(predicted)
	t.Logf("preview accuracy: %d of %d predicted moves happened (%.1f%%) over %d drains", matched, predicted, 100*rate, drains)
	if rate < 0.95 {
		t.Fatalf("preview accuracy %.1f%% below 95%%", 100*rate)
	}
}

// holdersOf is each chain's holders as the view shows them.
func holdersOf(cs *snapshot.ClusterSnapshot) map[string][]identity.NodeID {
	out := map[string][]identity.NodeID{}
	for _, c := range cs.Chains {
		out[c.Name] = slices.Clone(c.Holders)
	}
	return out
}

// allHealthy: the view has n hosting nodes, every one Healthy with a fresh
// snapshot.
func allHealthy(cs *snapshot.ClusterSnapshot, n int) bool {
	hosts := 0
	for _, nv := range cs.Nodes {
		if nv.Observer {
			continue
		}
		if nv.Health != snapshot.Healthy || nv.Stale {
			return false
		}
		hosts++
	}
	return hosts == n
}
