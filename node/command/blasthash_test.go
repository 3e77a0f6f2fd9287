package command

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/identity/identitytest"
	"github.com/deck-mesh/deck/node/snapshot"
)

// receiversDown returns a copy of cs in which every node that br moves
// something onto is unreachable, so the same action now moves elsewhere.
func receiversDown(t *testing.T, cs *snapshot.ClusterSnapshot, br api.BlastRadius) *snapshot.ClusterSnapshot {
	t.Helper()
	to := map[identity.NodeID]bool{}
	for _, r := range br.Replicas {
		to[r.To] = true
	}
	for _, m := range br.Migrated {
		to[m.To] = true
	}
	delete(to, 0)
	if len(to) == 0 {
		t.Fatalf("the drain moves nothing onto another node: %+v", br)
	}
	next := *cs
	next.Generation++
	next.Nodes = slices.Clone(cs.Nodes)
	for i := range next.Nodes {
		if to[next.Nodes[i].ID] {
			next.Nodes[i].Health = snapshot.Unreachable
		}
	}
	return &next
}

// A console that confirmed one projection and commits after the cluster
// moved on is refused with the new projection, and commits nothing; the
// confirmed one, once re-confirmed, commits carrying its HashMoves.
func TestPrepareRefusesStalePreview(t *testing.T) {
	cs, spec := buildCluster(t, 6, 4, 2, 2, 0.1)
	r := newRig(t, genesisOf(t, 1, 1, "alice"), cs, spec)
	c := r.console(t, identitytest.Key(t, "alice"))
	drain := api.Action{Verb: api.VerbDrain, Node: cs.Nodes[0].ID, Duration: 5 * time.Minute}
	confirmed, err := c.Preview(t.Context(), drain)
	if err != nil {
		t.Fatal(err)
	}
	r.src.mu.Lock()
	r.src.cs = receiversDown(t, cs, confirmed)
	r.src.mu.Unlock()

	_, err = c.Admin().Prepare(t.Context(), confirmed)
	var pc *api.PreviewChangedError
	if !errors.Is(err, api.ErrPreviewChanged) || !errors.As(err, &pc) {
		t.Fatalf("stale preview: got %v, want ErrPreviewChanged", err)
	}
	if api.ExitCode(err) != api.ExitRefused {
		t.Fatalf("exit code %d, want %d", api.ExitCode(err), api.ExitRefused)
	}
	fresh, err := c.Preview(t.Context(), drain)
	if err != nil {
		t.Fatal(err)
	}
	if HashMoves(&pc.Preview) != HashMoves(&fresh) || HashMoves(&fresh) == HashMoves(&confirmed) {
		t.Fatal("the refusal does not carry the new projection")
	}
	if len(pc.Changes) == 0 {
		t.Fatal("the refusal names no change")
	}
	if len(r.led.events) != 0 {
		t.Fatalf("%d events committed against a stale preview", len(r.led.events))
	}

	sp, err := c.Admin().Prepare(t.Context(), pc.Preview)
	if err != nil {
		t.Fatalf("re-confirmed preview: %v", err)
	}
	sig, err := sp.Sign()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sp.Commit(t.Context(), []api.Signature{sig}); err != nil {
		t.Fatal(err)
	}
	if len(r.led.events) != 1 || r.led.errs[0] != nil {
		t.Fatalf("commit: %d events, fold errors %v", len(r.led.events), r.led.errs)
	}
	if got := r.led.events[0].BlastHash(); got != HashMoves(&fresh) {
		t.Fatalf("event BlastHash %x, want the confirmed projection's %x", got, HashMoves(&fresh))
	}
}

// The projection is recomputed at commit too: a prepared admin action
// whose cluster changes while co-signatures are collected is refused.
func TestCommitRefusesChangedProjection(t *testing.T) {
	cs, spec := buildCluster(t, 6, 4, 2, 2, 0.1)
	r := newRig(t, genesisOf(t, 1, 1, "alice"), cs, spec)
	c := r.console(t, identitytest.Key(t, "alice"))
	drain := api.Action{Verb: api.VerbDrain, Node: cs.Nodes[0].ID, Duration: 5 * time.Minute}
	confirmed, err := c.Preview(t.Context(), drain)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := c.Admin().Prepare(t.Context(), confirmed)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := sp.Sign()
	if err != nil {
		t.Fatal(err)
	}
	r.src.mu.Lock()
	r.src.cs = receiversDown(t, cs, confirmed)
	r.src.mu.Unlock()
	_, err = sp.Commit(t.Context(), []api.Signature{sig})
	var pc *api.PreviewChangedError
	if !errors.As(err, &pc) || len(pc.Changes) == 0 {
		t.Fatalf("commit after the cluster changed: %v, want a PreviewChangedError naming the changes", err)
	}
	if len(r.led.events) != 0 {
		t.Fatal("committed against a changed projection")
	}
}

// HashMoves depends on what moves, not on list order, warnings or gauges.
func TestHashMovesCanonical(t *testing.T) {
	a := api.BlastRadius{
		Action:   api.Action{Verb: api.VerbDrain, Node: 1},
		Nodes:    []identity.NodeID{1, 2, 3},
		Replicas: []api.ReplicaMove{{Chain: "a", From: 1, To: 2}, {Chain: "b", From: 1, To: 3}},
		Migrated: []api.DaemonMove{{Daemon: "d1", From: 1, To: 2}},
	}
	b := a
	b.Nodes = []identity.NodeID{3, 1, 2}
	b.Replicas = []api.ReplicaMove{a.Replicas[1], a.Replicas[0]}
	b.Warnings = []string{"cluster overloaded"}
	b.HotNodes = []api.HotNode{{Node: 2, Projected: 0.9}}
	b.DrainTime = time.Minute
	if HashMoves(&a) != HashMoves(&b) || PreviewChanged(&a, &b) != nil {
		t.Fatal("same moves in another order hash differently")
	}
	c := a
	c.Replicas = []api.ReplicaMove{{Chain: "a", From: 1, To: 3}, a.Replicas[1]}
	err := PreviewChanged(&a, &c)
	var pc *api.PreviewChangedError
	if !errors.As(err, &pc) {
		t.Fatalf("a moved replica is not a change: %v", err)
	}
	want := []string{"replica a " + identity.NodeID(1).String() + " → " + identity.NodeID(2).String() + " no longer moves",
		"replica a " + identity.NodeID(1).String() + " → " + identity.NodeID(3).String() + " now moves"}
	if !slices.Equal(pc.Changes, want) {
		t.Fatalf("changes %q, want %q", pc.Changes, want)
	}
	d := a
	d.Action.Node = 2
	if HashMoves(&a) == HashMoves(&d) || len(DiffMoves(&a, &d)) == 0 {
		t.Fatal("another target is not a change")
	}
}
