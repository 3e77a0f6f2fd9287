package command

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/identity/identitytest"
	"github.com/deck-mesh/deck/node/placement"
	"github.com/deck-mesh/deck/node/snapshot"
)

func preview(t *testing.T, cs *snapshot.ClusterSnapshot, spec placement.Spec, a api.Action) api.BlastRadius {
	t.Helper()
	br, err := Preview(cs, spec, a)
	if err != nil {
		t.Fatalf("preview %s: %v", a.Verb, err)
	}
	return br
}

// busiest is the node running the most daemons.
func busiest(cs *snapshot.ClusterSnapshot) *snapshot.NodeView {
	best := &cs.Nodes[0]
	for i := range cs.Nodes {
		if len(cs.Nodes[i].Daemons) > len(best.Daemons) {
			best = &cs.Nodes[i]
		}
	}
	return best
}

func TestPreviewDrainMovesEverythingOff(t *testing.T) {
	cs, spec := buildCluster(t, 8, 6, 3, 3, 0.05)
	v := busiest(cs)
	br := preview(t, cs, spec, api.Action{Verb: api.VerbDrain, Node: v.ID, Duration: time.Minute})
	if len(br.Migrated) != len(v.Daemons) {
		t.Fatalf("%d daemons move, node runs %d", len(br.Migrated), len(v.Daemons))
	}
	for _, m := range br.Migrated {
		if m.From != v.ID || m.To == 0 || m.To == v.ID {
			t.Fatalf("move %+v", m)
		}
	}
	if len(br.Replicas) != len(v.Replicas) {
		t.Fatalf("%d replicas move, node holds %d", len(br.Replicas), len(v.Replicas))
	}
	for _, r := range br.Replicas {
		if r.From != v.ID || r.To == 0 {
			t.Fatalf("replica %+v", r)
		}
	}
	if !slices.Contains(br.Nodes, v.ID) || len(br.Nodes) < 2 {
		t.Fatalf("nodes %v", br.Nodes)
	}
	want := (time.Duration(len(br.Migrated))*DaemonMigrationTime + time.Duration(len(br.Replicas))*ReplicaMoveTime) / DrainParallelism
	if br.DrainTime != want {
		t.Fatalf("drain time %v, want %v", br.DrainTime, want)
	}
	if br.StabilityBefore != 1 || br.StabilityAfter >= 1 {
		t.Fatalf("stability %v → %v", br.StabilityBefore, br.StabilityAfter)
	}
	if br.SnapshotGen != cs.Generation || br.Hash == ([32]byte{}) {
		t.Fatal("gen / hash")
	}
	if len(br.Daemons) != len(v.Daemons) {
		t.Fatalf("daemons %v", br.Daemons)
	}
}

func TestPreviewPerVerb(t *testing.T) {
	cs, spec := buildCluster(t, 6, 4, 2, 3, 0.05)
	v := busiest(cs)
	chain := cs.Chains[0]
	var follower identity.NodeID
	for _, h := range chain.Holders {
		if h != chain.Leader {
			follower = h
		}
	}
	cases := []struct {
		a     api.Action
		check func(t *testing.T, br api.BlastRadius)
	}{
		{api.Action{Verb: api.VerbCordon, Node: v.ID}, func(t *testing.T, br api.BlastRadius) {
			// Cordon blocks new placements; nothing running moves.
			if len(br.Migrated)+len(br.Replicas) != 0 || !reflect.DeepEqual(br.Nodes, []identity.NodeID{v.ID}) {
				t.Fatalf("%+v", br)
			}
		}},
		{api.Action{Verb: api.VerbFreezeCluster, Reason: "x", Duration: time.Minute}, func(t *testing.T, br api.BlastRadius) {
			if len(br.Migrated)+len(br.Replicas)+len(br.Restarted) != 0 || len(br.Warnings) == 0 {
				t.Fatalf("%+v", br)
			}
		}},
		{api.Action{Verb: api.VerbRestartAllDaemons, Node: v.ID}, func(t *testing.T, br api.BlastRadius) {
			if len(br.Restarted) != len(v.Daemons) || len(br.Migrated) != 0 || br.DrainTime == 0 {
				t.Fatalf("%+v", br)
			}
		}},
		{api.Action{Verb: api.VerbForceRestartDaemon, Daemon: v.Daemons[0].ID}, func(t *testing.T, br api.BlastRadius) {
			if !reflect.DeepEqual(br.Restarted, []string{v.Daemons[0].ID}) || !reflect.DeepEqual(br.Nodes, []identity.NodeID{v.ID}) {
				t.Fatalf("%+v", br)
			}
		}},
		{api.Action{Verb: api.VerbForceEvictReplica, Chain: chain.Name, Peer: follower}, func(t *testing.T, br api.BlastRadius) {
			if len(br.Replicas) != 1 || br.Replicas[0].From != follower || br.Replicas[0].To == 0 || br.Replicas[0].Chain != chain.Name {
				t.Fatalf("%+v", br.Replicas)
			}
		}},
		{api.Action{Verb: api.VerbForceCutover, Chain: chain.Name, Peer: follower}, func(t *testing.T, br api.BlastRadius) {
			want := []api.LeaderMove{{Chain: chain.Name, From: chain.Leader, To: follower}}
			if !reflect.DeepEqual(br.Leaders, want) || len(br.Replicas) != 0 {
				t.Fatalf("leaders %+v replicas %+v", br.Leaders, br.Replicas)
			}
		}},
		{api.Action{Verb: api.VerbDropReplicas, Node: v.ID}, func(t *testing.T, br api.BlastRadius) {
			if len(br.Replicas) != len(v.Replicas) || len(br.Migrated) != 0 {
				t.Fatalf("%+v", br)
			}
		}},
		{api.Action{Verb: api.VerbForceDrain, Node: v.ID}, func(t *testing.T, br api.BlastRadius) {
			if len(br.Migrated) != len(v.Daemons) {
				t.Fatalf("%+v", br)
			}
		}},
		{api.Action{Verb: api.VerbAddOperator, OperatorID: identitytest.Key(t, "z").ID, OperatorName: "z", OperatorKey: identitytest.Key(t, "z").Public}, func(t *testing.T, br api.BlastRadius) {
			if len(br.Nodes) != 0 || len(br.Warnings) != 1 {
				t.Fatalf("%+v", br)
			}
		}},
	}
	for _, c := range cases {
		t.Run(string(c.a.Verb), func(t *testing.T) { c.check(t, preview(t, cs, spec, c.a)) })
	}
}

func TestPreviewDoesNotTouchTheSnapshot(t *testing.T) {
	cs, spec := buildCluster(t, 6, 4, 2, 3, 0.05)
	pristine, _ := buildCluster(t, 6, 4, 2, 3, 0.05)
	v := busiest(cs)
	chain := cs.Chains[0]
	for _, a := range []api.Action{
		{Verb: api.VerbDrain, Node: v.ID},
		{Verb: api.VerbExitMaintenance, Node: v.ID},
		{Verb: api.VerbCordon, Node: v.ID},
		{Verb: api.VerbClearAvoidList, Node: v.ID},
		{Verb: api.VerbFlushAvoidLists},
		{Verb: api.VerbForceCutover, Chain: chain.Name, Peer: chain.Holders[len(chain.Holders)-1]},
		{Verb: api.VerbInvalidatePlacement, Node: v.ID},
	} {
		preview(t, cs, spec, a)
		if !reflect.DeepEqual(cs, pristine) {
			t.Fatalf("%s modified the snapshot", a.Verb)
		}
	}
}

func TestPreviewWarnings(t *testing.T) {
	t.Run("last healthy holder", func(t *testing.T) {
		cs, spec := buildCluster(t, 5, 1, 1, 2, 0.05)
		chain := cs.Chains[0]
		// The other holder is unreachable: the one left is the last.
		cs.Node(chain.Holders[1]).Health = snapshot.Unreachable
		br := preview(t, cs, spec, api.Action{Verb: api.VerbDrain, Node: chain.Holders[0]})
		if !containsText(br.Warnings, "last healthy holder") {
			t.Fatalf("warnings %v", br.Warnings)
		}
	})
	t.Run("quorum loss", func(t *testing.T) {
		cs, spec := buildCluster(t, 3, 1, 1, 3, 0.05)
		chain := cs.Chains[0]
		cs.Node(chain.Holders[2]).Health = snapshot.Suspect
		br := preview(t, cs, spec, api.Action{Verb: api.VerbForceEvictReplica, Chain: chain.Name, Peer: chain.Holders[0]})
		if !containsText(br.Warnings, "loses quorum") {
			t.Fatalf("warnings %v", br.Warnings)
		}
	})
	t.Run("already draining", func(t *testing.T) {
		cs, spec := buildCluster(t, 4, 2, 2, 2, 0.05)
		cs.Nodes[0].Maintenance.State = snapshot.MaintEntering
		br := preview(t, cs, spec, api.Action{Verb: api.VerbDrain, Node: cs.Nodes[0].ID})
		if !containsText(br.Warnings, "already draining") {
			t.Fatalf("warnings %v", br.Warnings)
		}
	})
	t.Run("hot nodes and overload", func(t *testing.T) {
		// Three nodes at 0.6 each; draining one pushes the rest past 0.8.
		cs, spec := buildCluster(t, 3, 6, 1, 0, 0.3)
		br := preview(t, cs, spec, api.Action{Verb: api.VerbDrain, Node: cs.Nodes[0].ID})
		if len(br.HotNodes) == 0 || !containsText(br.Warnings, "overloaded") {
			t.Fatalf("hot %v warnings %v", br.HotNodes, br.Warnings)
		}
		for _, h := range br.HotNodes {
			if h.Projected < api.HotSaturation || h.Node == cs.Nodes[0].ID {
				t.Fatalf("hot node %+v", h)
			}
		}
	})
	t.Run("frozen", func(t *testing.T) {
		cs, spec := buildCluster(t, 4, 2, 2, 2, 0.05)
		cs.Freeze = snapshot.Freeze{Active: true, Reason: "incident", Until: t0.Add(time.Minute)}
		br := preview(t, cs, spec, api.Action{Verb: api.VerbCordon, Node: cs.Nodes[0].ID})
		if !containsText(br.Warnings, "frozen") {
			t.Fatalf("warnings %v", br.Warnings)
		}
		// Thaw projects what resumes: before is the cluster as it stands.
		cs.Nodes[0].Maintenance.State = snapshot.MaintEntering
		br = preview(t, cs, spec, api.Action{Verb: api.VerbThawCluster})
		if len(br.Migrated) == 0 {
			t.Fatalf("thaw shows nothing resuming: %+v", br)
		}
	})
}

func TestPreviewKillMigration(t *testing.T) {
	cs, spec := buildCluster(t, 4, 2, 2, 2, 0.05)
	src := &cs.Nodes[0]
	d := src.Daemons[0]
	var dst identity.NodeID
	for _, v := range cs.Nodes {
		if v.ID != src.ID {
			dst = v.ID
			break
		}
	}
	src.Migrations = []snapshot.Migration{{ID: "mig-1", Daemon: d.ID, Source: src.ID, Target: dst, Phase: snapshot.PhaseTransfer}}
	br := preview(t, cs, spec, api.Action{Verb: api.VerbKillMigration, Migration: "mig-1"})
	// Without the kill the daemon ends on dst; with it, it stays on src.
	want := []api.DaemonMove{{Daemon: d.ID, From: dst, To: src.ID}}
	if !reflect.DeepEqual(br.Migrated, want) {
		t.Fatalf("migrated %+v", br.Migrated)
	}
}

func TestBlastHash(t *testing.T) {
	cs, spec := buildCluster(t, 6, 4, 2, 3, 0.05)
	a := api.Action{Verb: api.VerbDrain, Node: cs.Nodes[1].ID}
	one, two := preview(t, cs, spec, a), preview(t, cs, spec, a)
	if one.Hash != two.Hash || one.Hash != HashBlastRadius(&one) {
		t.Fatal("hash is not deterministic")
	}
	// Gauges jitter between nodes and are not bound.
	jittered := one
	jittered.StabilityAfter += 0.001
	if HashBlastRadius(&jittered) != one.Hash {
		t.Fatal("a float gauge changed the hash")
	}
	other := preview(t, cs, spec, api.Action{Verb: api.VerbDrain, Node: cs.Nodes[2].ID})
	if other.Hash == one.Hash {
		t.Fatal("different drains, same hash")
	}
	moved := one
	moved.Replicas = slices.Clone(one.Replicas)
	moved.Replicas[0].To++
	if HashBlastRadius(&moved) == one.Hash {
		t.Fatal("a different move, same hash")
	}
}

// TestStabilityMatchesMeshOS pins the shortcut to MeshOS's own definition.
func TestStabilityMatchesMeshOS(t *testing.T) {
	cs, spec := buildCluster(t, 8, 6, 3, 3, 0.05)
	current := placement.CurrentAssignment(cs, spec)
	for _, a := range []api.Action{
		{Verb: api.VerbDrain, Node: busiest(cs).ID},
		{Verb: api.VerbInvalidatePlacement, Node: cs.Nodes[2].ID},
		{Verb: api.VerbForceEvictReplica, Chain: cs.Chains[1].Name, Peer: cs.Chains[1].Holders[0]},
		{Verb: api.VerbCordon, Node: cs.Nodes[0].ID},
	} {
		p := &projection{a: a, spec: spec, base: cs, current: current}
		if err := p.lookup(); err != nil {
			t.Fatal(err)
		}
		p.applyAction(current)
		after := placement.PlaceWith(p.after, spec, nil, p.afterOpts)
		if got, want := stability(current, after), placement.Diff(current, after).Stability(); got != want {
			t.Fatalf("%s: stability %v, meshos says %v", a.Verb, got, want)
		}
		if got := stability(after, current); got != placement.Diff(after, current).Stability() {
			t.Fatalf("%s: reversed stability %v", a.Verb, got)
		}
	}
}
