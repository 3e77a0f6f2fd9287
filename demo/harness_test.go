package demo

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deck-mesh/deck/demo/workloads"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/meshos"
	"github.com/deck-mesh/deck/node/snapshot"
)

// fakeDemo is a Demo with n members and keys but no nodes, for the pure
// parts of the harness.
func fakeDemo(t *testing.T, n int) *Demo {
	t.Helper()
	d := &Demo{links: map[[2]int]bool{}, blocked: map[[2]int]bool{}, impaired: map[[2]int]impairment{}}
	for i := range n {
		k, err := identity.Generate()
		if err != nil {
			t.Fatal(err)
		}
		d.members = append(d.members, &member{idx: i, label: fmt.Sprintf("node-%d", i+1), key: k})
	}
	return d
}

func (d *Demo) ids(idx ...int) []identity.NodeID {
	var out []identity.NodeID
	for _, i := range idx {
		out = append(out, d.members[i].key.ID)
	}
	return out
}

func TestCutPairs(t *testing.T) {
	d := fakeDemo(t, 5)
	pair := func(i, j int) [2]int { return [2]int{min(i, j), max(i, j)} }
	cons := func(i int) [2]int { return [2]int{i, consoleIdx} }
	tests := []struct {
		name string
		f    api.Fault
		want [][2]int
	}{
		{"one node from the rest: the console stays with the rest",
			api.Fault{Kind: api.FaultPartition, Nodes: d.ids(0)},
			[][2]int{pair(0, 1), pair(0, 2), pair(0, 3), pair(0, 4), cons(0)}},
		{"a minority pair keeps its own link",
			api.Fault{Kind: api.FaultPartition, Nodes: d.ids(1, 3)},
			[][2]int{pair(1, 0), pair(1, 2), pair(1, 4), pair(3, 0), pair(3, 2), pair(3, 4), cons(1), cons(3)}},
		{"naming the majority: the console stays with it",
			api.Fault{Kind: api.FaultPartition, Nodes: d.ids(0, 1, 2)},
			[][2]int{pair(0, 3), pair(0, 4), pair(1, 3), pair(1, 4), pair(2, 3), pair(2, 4), cons(3), cons(4)}},
		{"between named peers: the console is not cut",
			api.Fault{Kind: api.FaultPartition, Nodes: d.ids(0), Peers: d.ids(2, 4)},
			[][2]int{pair(0, 2), pair(0, 4)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := d.cutPairs(tt.f)
			sortPairs(got)
			want := slices.Clone(tt.want)
			sortPairs(want)
			if !slices.Equal(slices.Compact(got), want) {
				t.Errorf("cutPairs = %v, want %v", got, want)
			}
		})
	}
}

func sortPairs(p [][2]int) {
	slices.SortFunc(p, func(a, b [2]int) int {
		if a[0] != b[0] {
			return a[0] - b[0]
		}
		return a[1] - b[1]
	})
}

func TestCheckFault(t *testing.T) {
	d := fakeDemo(t, 3)
	stranger, _ := identity.Generate()
	tests := []struct {
		name string
		f    api.Fault
		code int
	}{
		{"kill", api.Fault{Kind: api.FaultKill, Nodes: d.ids(0)}, api.ExitOK},
		{"heal needs nothing", api.Fault{Kind: api.FaultHeal}, api.ExitOK},
		{"slow with delay", api.Fault{Kind: api.FaultSlow, Nodes: d.ids(1), Delay: 300 * time.Millisecond}, api.ExitOK},
		{"slow with loss only", api.Fault{Kind: api.FaultSlow, Nodes: d.ids(1), Loss: 0.05}, api.ExitOK},
		{"crashloop", api.Fault{Kind: api.FaultCrashLoop, Daemon: "sensor-array-0"}, api.ExitOK},
		{"unknown kind", api.Fault{Kind: "explode", Nodes: d.ids(0)}, api.ExitInvalid},
		{"kill without a node", api.Fault{Kind: api.FaultKill}, api.ExitInvalid},
		{"partition without a node", api.Fault{Kind: api.FaultPartition}, api.ExitInvalid},
		{"node not in the demo", api.Fault{Kind: api.FaultKill, Nodes: []identity.NodeID{stranger.ID}}, api.ExitNotFound},
		{"peer not in the demo", api.Fault{Kind: api.FaultPartition, Nodes: d.ids(0), Peers: []identity.NodeID{stranger.ID}}, api.ExitNotFound},
		{"slow without delay or loss", api.Fault{Kind: api.FaultSlow, Nodes: d.ids(1)}, api.ExitInvalid},
		{"delay over the bound", api.Fault{Kind: api.FaultSlow, Nodes: d.ids(1), Delay: MaxFaultDelay + 1}, api.ExitInvalid},
		{"negative delay", api.Fault{Kind: api.FaultSlow, Nodes: d.ids(1), Delay: -1}, api.ExitInvalid},
		{"loss over 1", api.Fault{Kind: api.FaultSlow, Nodes: d.ids(1), Loss: 1.5}, api.ExitInvalid},
		{"NaN loss", api.Fault{Kind: api.FaultSlow, Nodes: d.ids(1), Loss: nan()}, api.ExitInvalid},
		{"crashloop without a daemon", api.Fault{Kind: api.FaultCrashLoop}, api.ExitInvalid},
		{"corrupt-chunk", api.Fault{Kind: api.FaultCorruptChunk, Nodes: d.ids(2)}, api.ExitOK},
		{"corrupt-chunk on two nodes", api.Fault{Kind: api.FaultCorruptChunk, Nodes: d.ids(1, 2)}, api.ExitInvalid},
		{"fill-disk", api.Fault{Kind: api.FaultFillDisk, Nodes: d.ids(0)}, api.ExitOK},
		{"fill-disk without a node", api.Fault{Kind: api.FaultFillDisk}, api.ExitInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := api.ExitCode(d.checkFault(tt.f)); got != tt.code {
				t.Errorf("checkFault(%+v) exit code %d (%v), want %d", tt.f, got, d.checkFault(tt.f), tt.code)
			}
		})
	}
}

func nan() float64 { z := 0.0; return z / z }

func TestResolveNode(t *testing.T) {
	d := fakeDemo(t, 3)
	id := d.members[1].key.ID
	for _, ref := range []string{"node-2", "2", " node-2 ", id.String()} {
		got, err := d.ResolveNode(ref)
		if err != nil || got != id {
			t.Errorf("ResolveNode(%q) = %v, %v; want %v", ref, got, err, id)
		}
	}
	stranger, _ := identity.Generate()
	for _, ref := range []string{"node-4", "0", "4", "", "nodes", stranger.ID.String()} {
		if _, err := d.ResolveNode(ref); api.ExitCode(err) != api.ExitNotFound {
			t.Errorf("ResolveNode(%q) = %v, want not found", ref, err)
		}
	}
}

// view builds a cluster snapshot for settleProblems: each node with its
// health, daemons and replicas.
type fakeNode struct {
	m        *member
	health   snapshot.Health
	stale    bool
	observer bool
	daemons  []string
	replicas []string
}

func view(nodes ...fakeNode) *snapshot.ClusterSnapshot {
	cs := &snapshot.ClusterSnapshot{}
	for _, n := range nodes {
		nv := snapshot.NodeView{Health: n.health, Stale: n.stale}
		nv.ID, nv.Label, nv.BuiltAt, nv.Observer = n.m.key.ID, n.m.label, time.Now(), n.observer
		for _, id := range n.daemons {
			nv.Daemons = append(nv.Daemons, snapshot.Daemon{ID: id, Lifecycle: snapshot.LifecycleRunning})
		}
		for _, c := range n.replicas {
			nv.Replicas = append(nv.Replicas, snapshot.Replica{Chain: c})
		}
		cs.Nodes = append(cs.Nodes, nv)
	}
	return cs
}

func TestSettleProblems(t *testing.T) {
	d := fakeDemo(t, 4)
	m := d.members
	obs := &member{idx: consoleIdx, label: "deck", key: mustKey(t)}
	spec := meshos.Spec{Groups: []meshos.GroupSpec{
		{Name: "inference", Kind: snapshot.GroupReplica, DaemonKind: workloads.KindInference, Members: 2, ChainReplicas: 2},
		{Name: "stage-ctl", Kind: snapshot.GroupSolo, DaemonKind: workloads.KindStage, Members: 3}, // solo: one member whatever Members says
	}}
	all := []string{"inference-0", "inference-1", "stage-ctl-0"}
	up := m[:3]
	tests := []struct {
		name string
		cs   *snapshot.ClusterSnapshot
		up   []*member
		want []string
	}{
		{"settled", view(
			fakeNode{m: m[0], daemons: all[:1], replicas: []string{"inference"}},
			fakeNode{m: m[1], daemons: all[1:], replicas: []string{"inference"}},
			fakeNode{m: m[2]},
			fakeNode{m: obs, observer: true}), up, nil},
		{"a killed node's claims do not count", view(
			fakeNode{m: m[0], daemons: all, replicas: []string{"inference"}},
			fakeNode{m: m[1]},
			fakeNode{m: m[2]},
			fakeNode{m: m[3], health: snapshot.Unreachable, daemons: all, replicas: []string{"inference"}}), up,
			[]string{"chain inference held 1/2 (under)"}},
		{"node not seen, suspect, stale", view(
			fakeNode{m: m[0], daemons: all, replicas: []string{"inference"}},
			fakeNode{m: m[1], health: snapshot.Suspect, replicas: []string{"inference"}},
			fakeNode{m: m[3], stale: true}), []*member{m[0], m[1], m[2], m[3]},
			[]string{"node-2 suspect", "node-3 not seen", "node-4 stale", "chain inference held 1/2 (under)"}},
		{"duplicate, missing, over, observer", view(
			fakeNode{m: m[0], daemons: all[:1], replicas: []string{"inference"}},
			fakeNode{m: m[1], daemons: all[:1], replicas: []string{"inference"}},
			fakeNode{m: m[2], replicas: []string{"inference"}},
			fakeNode{m: obs, observer: true, daemons: all[2:], replicas: []string{"inference"}}), up,
			[]string{"stage-ctl-0 runs on observer deck", "inference-0 runs on 2 nodes (node-1, node-2)", "inference-1 not running",
				"observer deck holds a replica of inference", "chain inference held 3/2 (over)", "stage-ctl-0 not running"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := settleProblems(tt.cs, tt.up, spec)
			if !slices.Equal(got, tt.want) {
				t.Errorf("settleProblems =\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

func mustKey(t *testing.T) *identity.Key {
	k, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestDetector(t *testing.T) {
	d := fakeDemo(t, 2)
	victim, other := d.members[0], d.members[1]
	dt := newDetector()
	t0 := time.Now()
	dt.injected(api.Fault{Kind: api.FaultKill}, victim.key.ID)
	dt.injected(api.Fault{Kind: api.FaultPause}, other.key.ID)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	steps := []struct {
		at     time.Time
		v, o   snapshot.Health
		oGen   uint64
		oBuilt time.Time
	}{
		{at(1), snapshot.Healthy, snapshot.Healthy, 1, at(0.9)},
		{at(3), snapshot.Suspect, snapshot.Suspect, 2, at(2.95)}, // both detected
		{at(4), snapshot.Suspect, snapshot.Healthy, 2, at(2.95)}, // the pause was undone before Unreachable
		{at(5.2), snapshot.Unreachable, snapshot.Healthy, 3, at(5.1)},
		{at(6), snapshot.Unreachable, snapshot.Healthy, 3, at(5.1)},
	}
	for _, s := range steps {
		cs := view(fakeNode{m: victim, health: s.v}, fakeNode{m: other, health: s.o})
		cs.Nodes[1].Generation, cs.Nodes[1].BuiltAt, cs.Nodes[1].ReceivedAt = s.oGen, s.oBuilt, s.at
		dt.observe(cs, s.at)
	}
	samples, det := dt.results()
	if len(det) != 2 {
		t.Fatalf("%d detections, want 2: %+v", len(det), det)
	}
	k, p := det[0], det[1]
	if k.Kind != api.FaultKill || k.DetectedAt != at(3) || k.SeenAs != "suspect" || k.UnreachableAt != at(5.2) {
		t.Errorf("kill detection %+v: want suspect at +3s, unreachable at +5.2s", k)
	}
	if p.Kind != api.FaultPause || p.DetectedAt != at(3) || !p.UnreachableAt.IsZero() {
		t.Errorf("pause detection %+v: want suspect at +3s, never unreachable", p)
	}
	want := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond}
	if !slices.Equal(samples, want) {
		t.Errorf("latency samples %v, want %v (one per new generation, received minus built)", samples, want)
	}
	if got := percentile(samples, 0.5); got != 50*time.Millisecond {
		t.Errorf("p50 %v", got)
	}
	if dt.observe(view(), at(7)); len(dt.pending) != 0 {
		t.Errorf("finished detections still pending: %d", len(dt.pending))
	}
}
