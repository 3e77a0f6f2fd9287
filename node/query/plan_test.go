package query

import (
	"strings"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

func nv(id identity.NodeID, label string, h snapshot.Health, rtt time.Duration) snapshot.NodeView {
	return snapshot.NodeView{NodeSnapshot: snapshot.NodeSnapshot{ID: id, Label: label}, Health: h, RTT: rtt}
}

// TestPlanPicksTheNearestHealthyHolder: a replicated chain's fragment goes
// to its healthy holder with the lowest RTT, the others after it in order
// (suspect, then unreachable, last); ties break on the id.
func TestPlanPicksTheNearestHealthyHolder(t *testing.T) {
	const a, b, c, d = identity.NodeID(0xa), identity.NodeID(0xb), identity.NodeID(0xc), identity.NodeID(0xd)
	view := &snapshot.ClusterSnapshot{
		Nodes: []snapshot.NodeView{nv(a, "a", snapshot.Healthy, 9*time.Millisecond), nv(b, "b", snapshot.Suspect, time.Millisecond),
			nv(c, "c", snapshot.Healthy, 2*time.Millisecond), nv(d, "d", snapshot.Unreachable, 0)},
		Chains: []snapshot.Chain{{Name: "trainer", Holders: []identity.NodeID{d, b, a, c}}},
	}
	pl, err := Compile(`latest(trainer)`, &Catalog{View: view, Self: 0x99, Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	got := pl.Frags[0].holders
	want := []identity.NodeID{c, a, b, d}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("holders %v, want %v", got, want)
		}
	}
	// Held here: this node first.
	view.Chains[0].Holders = append(view.Chains[0].Holders, 0x99)
	pl, _ = Compile(`latest(trainer)`, &Catalog{View: view, Self: 0x99, Now: t0})
	if pl.Frags[0].holders[0] != 0x99 {
		t.Fatalf("a chain held here planned on %v first", pl.Frags[0].holders[0])
	}
}

// TestPlansAreDeterministic: the same query over the same view and clock
// gives the same plan text and key; another clock (relative times) or
// another holder order gives another key.
func TestPlansAreDeterministic(t *testing.T) {
	e := localEngine(t)
	cat := func(now time.Time) *Catalog { return &Catalog{View: e.cfg.View(), Self: self, Now: now} }
	q := `between(logs, -5m, now) where level >= warn | count by daemon | sort count desc`
	p1, err := Compile(q, cat(t0))
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := Compile(q, cat(t0))
	if p1.Text != p2.Text || p1.Key != p2.Key {
		t.Fatalf("two compilations differ:\n%s\n%s", p1.Text, p2.Text)
	}
	p3, _ := Compile(q, cat(t0.Add(time.Second)))
	if p3.Key == p1.Key {
		t.Fatal("a later now gave the same key")
	}
	for _, want := range []string{"sort count desc", "merge count by daemon (partial on the holders)", "partial count by daemon", "@ this node"} {
		if !strings.Contains(p1.Text, want) {
			t.Errorf("plan lacks %q:\n%s", want, p1.Text)
		}
	}
}

// TestPushdown: filters before a window or aggregate, the window, the
// aggregate and a limit go to the holders; what follows stays here.
func TestPushdown(t *testing.T) {
	e := localEngine(t)
	pl, err := Compile(`between(logs, 1, 100) where level >= warn | window 10 seq | count by window | where count > 1 | sort window | limit 2`,
		&Catalog{View: e.cfg.View(), Self: self, Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	f := pl.Frags[0].frag
	if f.Filter == nil || f.Window.Kind != windowSeq || f.Agg == nil || f.Limit != 0 {
		t.Fatalf("fragment %+v", f)
	}
	if !strings.Contains(pl.Text, "limit 2\n└─ sort window\n   └─ filter count > 1\n      └─ merge count by window") {
		t.Fatalf("plan:\n%s", pl.Text)
	}
	pl, _ = Compile(`scan(logs) | limit 3 | select text`, &Catalog{View: e.cfg.View(), Self: self, Now: t0})
	if f := pl.Frags[0].frag; f.Limit != 3 || f.Needed != 1<<colSeq|1<<5 {
		t.Fatalf("limit and the column mask not pushed: limit %d, needed %b", f.Limit, f.Needed)
	}
}
