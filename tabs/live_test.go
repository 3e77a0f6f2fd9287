package tabs

import (
	"strings"
	"testing"
	"time"

	"github.com/deck-mesh/deck/deck/decktest"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
)

// The tests below pin what the live node sends that the fixture did not:
// two-sided migration records, stale daemon lists of unreachable nodes,
// observer consoles, audit records without a local seq or time.

func TestMigrationsMergeBothEnds(t *testing.T) {
	s := decktest.Quiet()
	src, dst := &s.Nodes[1], &s.Nodes[2] // gibson → wintermute
	src.Migrations = []snapshot.Migration{{ID: "m1", Daemon: "d", Target: dst.ID, Phase: snapshot.PhaseCutover, Progress: 0.9, Retries: 1, StartedAt: decktest.T0.Add(-time.Minute)}}
	dst.Migrations = []snapshot.Migration{{ID: "m1", Daemon: "d", Source: src.ID, Phase: snapshot.PhaseRestore, Progress: 0.4, StartedAt: decktest.T0.Add(-50 * time.Second)}}
	var got []*snapshot.Migration
	for _, m := range AllMigrations(s) {
		if m.ID == "m1" {
			got = append(got, m)
		}
	}
	if len(got) != 1 {
		t.Fatalf("m1 listed %d times", len(got))
	}
	m := got[0]
	if m.Source != src.ID || m.Target != dst.ID || m.Phase != snapshot.PhaseCutover || m.Progress != 0.9 || m.Retries != 1 ||
		!m.StartedAt.Equal(decktest.T0.Add(-time.Minute)) {
		t.Fatalf("merged %+v", m)
	}
}

func TestDaemonsOfUnreachableNodes(t *testing.T) {
	s := decktest.Quiet()
	// freeside is unreachable and still lists "beacon-0"; it was re-placed on
	// villa, and freeside's stale list also has a daemon nobody else runs.
	var villa, free *snapshot.NodeView
	for i := range s.Nodes {
		switch s.Nodes[i].ID {
		case decktest.Villa:
			villa = &s.Nodes[i]
		case decktest.Freeside:
			free = &s.Nodes[i]
		}
	}
	villa.Daemons = append(villa.Daemons, snapshot.Daemon{ID: "beacon-0", Kind: "beacon", Node: decktest.Villa, Lifecycle: snapshot.LifecycleRunning})
	free.Daemons = append(free.Daemons, snapshot.Daemon{ID: "orphan", Kind: "x", Node: decktest.Freeside, Lifecycle: snapshot.LifecycleRunning})
	rows := DaemonRows(s, decktest.T0)
	seen := map[string]int{}
	for _, r := range rows {
		seen[r.Key]++
		switch r.Key {
		case "beacon-0":
			if r.Cells[3] != "villa" || r.Cells[4] != "running" {
				t.Errorf("beacon should be the reachable instance: %v", r.Cells)
			}
		case "orphan":
			if r.Cells[4] != "unseen" {
				t.Errorf("orphan %v", r.Cells)
			}
		}
	}
	for k, n := range seen {
		if n > 1 {
			t.Errorf("%s listed %d times", k, n)
		}
	}
	if d := FindDaemon(s, "beacon-0"); d == nil || d.Node != decktest.Villa {
		t.Errorf("FindDaemon picked %+v", d)
	}
	c := CountDaemons(s)
	if c.Unseen != 1 || c.Total != len(rows) {
		t.Errorf("counts %+v (rows %d)", c, len(rows))
	}
}

func TestNaturalLess(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"node-2", "node-10", true},
		{"node-10", "node-2", false},
		{"node-02", "node-2", false},
		{"a", "b", true},
		{"n1", "n1x", true},
		{"x", "x", false},
		{"inference-9", "inference-10", true},
	}
	for _, tc := range tests {
		if got := NaturalLess(tc.a, tc.b); got != tc.want {
			t.Errorf("NaturalLess(%q,%q) = %v", tc.a, tc.b, got)
		}
	}
}

func TestNearestLinksOmitConsoleAndCap(t *testing.T) {
	s := decktest.Quiet()
	// A full mesh of the hosting nodes plus the console's links.
	s.Edges = nil
	for i := range s.Nodes {
		for j := i + 1; j < len(s.Nodes); j++ {
			s.Edges = append(s.Edges, snapshot.Edge{A: s.Nodes[i].ID, B: s.Nodes[j].ID, RTT: time.Duration(i+j) * time.Millisecond})
		}
	}
	links := NearestLinks(s)
	deg := map[api.NodeID]int{}
	for _, e := range links {
		if e.A == decktest.Console || e.B == decktest.Console {
			t.Fatalf("console link drawn: %+v", e)
		}
		deg[e.A]++
		deg[e.B]++
	}
	hosting := HostingNodes(s)
	if len(links) > hosting*MapNearestLinks || len(links) < hosting*MapNearestLinks/2 {
		t.Errorf("%d links drawn of %d for %d nodes", len(links), len(s.Edges), hosting)
	}
	l := Layout(s, ByRTT(s), 120, 40)
	if len(l.pos) != len(s.Nodes) {
		t.Fatalf("placed %d of %d", len(l.pos), len(s.Nodes))
	}
	if !strings.Contains(strings.Join(l.render(testCtx(0).Theme, 0), "\n"), "deck (this console)") {
		t.Error("the console is not labelled on the map")
	}
}

func TestAuditRecordsWithoutLocalSeq(t *testing.T) {
	s := decktest.Quiet()
	issued := decktest.T0.Add(-time.Minute)
	recs := []api.AuditRecord{
		{EventID: "aa", At: time.Unix(0, 0).UTC(), IssuedAt: issued, Action: api.Action{Verb: api.VerbCordon, Node: decktest.Chiba}},
		{EventID: "bb", At: time.Unix(0, 0).UTC(), IssuedAt: issued.Add(time.Second), Action: api.Action{Verb: api.VerbUncordon, Node: decktest.Chiba}},
	}
	rows := AuditRows(s, recs, false, 0)
	if rows[0].Key == rows[1].Key {
		t.Fatalf("duplicate keys %q", rows[0].Key)
	}
	if rows[0].Cells[0] != "—" || rows[0].Cells[1] != "09:25:54" {
		t.Errorf("seq/when %v", rows[0].Cells)
	}
}
