package command

import (
	"slices"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/identity/identitytest"
	"github.com/deck-mesh/deck/node/placement"
	"github.com/deck-mesh/deck/node/snapshot"
)

// soloCluster is n healthy, active nodes (ids 1..n) and one solo group per
// entry of runs, whose member runs on the node runs names, each adding load
// to its node's gauge the way meshos computes it (the declared sum).
func soloCluster(n int, runs []identity.NodeID, load float64) (*snapshot.ClusterSnapshot, placement.Spec) {
	cs := &snapshot.ClusterSnapshot{BuiltAt: time.Unix(1000, 0)}
	for i := 1; i <= n; i++ {
		cs.Nodes = append(cs.Nodes, snapshot.NodeView{NodeSnapshot: snapshot.NodeSnapshot{ID: identity.NodeID(i)}})
	}
	var spec placement.Spec
	for gi, node := range runs {
		g := placement.GroupSpec{Name: string(rune('a' + gi)), DaemonKind: "k", Members: 1, Load: load}
		spec.Groups = append(spec.Groups, g)
		v := &cs.Nodes[node-1]
		v.Daemons = append(v.Daemons, snapshot.Daemon{ID: placement.DaemonID(g.Name, 0), Node: node,
			Lineage: snapshot.Lineage{Group: g.Name}, Lifecycle: snapshot.LifecycleRunning})
		v.Resources.Saturation += load
	}
	return cs, spec
}

// truthMoves is what the nodes end up doing: placement over the cluster as
// it settles (settle applied to a copy), diffed against where daemons run.
func truthMoves(cs *snapshot.ClusterSnapshot, spec placement.Spec, settle func(*snapshot.ClusterSnapshot)) []api.DaemonMove {
	settled := *cs
	settled.Nodes = slices.Clone(cs.Nodes)
	settle(&settled)
	d := placement.Diff(placement.Place(cs, spec, nil), placement.Place(&settled, spec, nil))
	var out []api.DaemonMove
	for _, c := range d.Daemons {
		out = append(out, api.DaemonMove{Daemon: c.Daemon, From: c.From, To: c.To})
	}
	return out
}

// A node leaving maintenance shows ExitingMaintenance for a tick or two,
// then Recovery, where it takes placements again. A drain previewed in that
// gap must send the drained daemons where the nodes will: to the returning,
// empty node too, not only to the nodes already in the pool.
func TestPreviewDrainCountsANodeLeavingMaintenance(t *testing.T) {
	cs, spec := soloCluster(3, []identity.NodeID{1, 1, 1, 2}, 0.2)
	cs.Nodes[2].Maintenance.State = snapshot.MaintExiting
	br := preview(t, cs, spec, api.Action{Verb: api.VerbDrain, Node: 1, Duration: time.Minute})
	want := truthMoves(cs, spec, func(s *snapshot.ClusterSnapshot) {
		s.Nodes[0].Maintenance.State = snapshot.MaintEntering
		s.Nodes[2].Maintenance.State = snapshot.MaintRecovery
	})
	if !slices.ContainsFunc(want, func(m api.DaemonMove) bool { return m.To == 3 }) {
		t.Fatalf("test cluster does not exercise the returning node: truth %v", want)
	}
	if !slices.Equal(br.Migrated, want) {
		t.Fatalf("preview moves %v, the nodes make %v", br.Migrated, want)
	}
	// The same holds when only the committed intent says the node exits.
	cs.Nodes[2].Maintenance.State = snapshot.MaintMaintenance
	st := exitIntent(t, 3)
	br, err := PreviewWith(cs, spec, st, api.Action{Verb: api.VerbDrain, Node: 1, Duration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(br.Migrated, want) {
		t.Fatalf("with exit intent: preview moves %v, the nodes make %v", br.Migrated, want)
	}
	// Exit-maintenance on the exiting node itself stays quiet.
	br = preview(t, cs, spec, api.Action{Verb: api.VerbExitMaintenance, Node: 3})
	if len(br.Warnings) != 0 {
		t.Fatalf("warnings %v", br.Warnings)
	}
}

// exitIntent is a folded admin state whose one event is exit-maintenance
// on node.
func exitIntent(t *testing.T, node identity.NodeID) *AdminState {
	t.Helper()
	alice := identitytest.Key(t, "alice")
	st, err := Apply(mustState(t, genesisOf(t, 1, 1, "alice")), ev(t, api.Action{Verb: api.VerbExitMaintenance, Node: node}, 0, 1, alice))
	if err != nil {
		t.Fatal(err)
	}
	return st
}
