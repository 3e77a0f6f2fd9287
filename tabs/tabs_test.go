package tabs

import (
	"strconv"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"

	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/deck/decktest"
	"github.com/deck-mesh/deck/deck/store"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
)

func TestLineageLabel(t *testing.T) {
	tests := []struct {
		l    snapshot.Lineage
		want string
	}{
		{snapshot.Lineage{}, "SOLO"},
		{snapshot.Lineage{Kind: snapshot.GroupReplica, Index: 2}, "REP m[2]"},
		{snapshot.Lineage{Kind: snapshot.GroupStandby, Active: true}, "STBY active"},
		{snapshot.Lineage{Kind: snapshot.GroupStandby}, "STBY warm"},
		{snapshot.Lineage{Kind: snapshot.GroupFork, Index: 1, ForkAt: 4821}, "FORK f[1]@4821"},
	}
	for _, tc := range tests {
		if got := LineageLabel(tc.l); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.l, got, tc.want)
		}
	}
}

func TestRowFunctions(t *testing.T) {
	s := decktest.Snapshot()
	now := decktest.T0
	nodes := NodeRows(s)
	if len(nodes) != 10 {
		t.Fatalf("%d node rows", len(nodes))
	}
	// Hosting nodes sorted by label, the console last.
	if nodes[0].Cells[0] != "chiba" || nodes[9].Key != decktest.Console.String() {
		t.Errorf("order: first %v, last %v", nodes[0].Cells, nodes[9].Cells)
	}
	byKey := func(key string) []string {
		for _, r := range nodes {
			if r.Key == key {
				return r.Cells
			}
		}
		t.Fatalf("no row %s", key)
		return nil
	}
	if c := byKey(decktest.Console.String()); c[0] != "deck (this console)" || c[2] != "console" || c[3] != decktest.LocalSubnet || c[4] != "·" || c[10] != "—" {
		t.Errorf("console row %v", c)
	}
	if c := byKey(decktest.Freeside.String()); c[5] != "—" || c[2] != "unreachable" || c[4] != "—" || c[10] != "1/1?" {
		t.Errorf("unreachable row %v", c)
	}
	if got := NodesSummary(s); !strings.HasPrefix(got, "9 nodes · 7 healthy · 1 suspect · 1 unreachable · 1 cordoned") || !strings.HasSuffix(got, "+1 console · 2 pending") {
		t.Errorf("summary %q", got)
	}
	for _, r := range MaintRows(s, now) {
		if r.Key == decktest.Console.String() {
			t.Error("the console has no maintenance row")
		}
	}
	if c := byKey(decktest.Chiba.String()); !strings.HasPrefix(c[11], "drain-failed") || c[10] != "0/1" {
		t.Errorf("chiba row %v", c)
	}

	ds := DaemonRows(s, now)
	for _, r := range ds {
		switch r.Key {
		case "ice-breaker-0":
			if r.Cells[4] != "crashloop×14" || r.Tones[4] != common.ToneDanger {
				t.Errorf("ice-breaker-0 %v", r.Cells)
			}
		case "sensor-grid-0":
			if r.Cells[4] != "backoff 8s" {
				t.Errorf("sensor-grid %v", r.Cells)
			}
		}
	}

	want := map[string]string{"ledger": "under", "oracle": "over", "ingest": "ok"}
	for _, r := range ChainRows(s) {
		if w, ok := want[r.Key]; ok && r.Cells[3] != w {
			t.Errorf("%s status %s, want %s", r.Key, r.Cells[3], w)
		}
	}

	for _, r := range MaintRows(s, now) {
		switch r.Key {
		case decktest.Straylight.String():
			if r.Cells[1] != "entering" || r.Cells[2] != "2/5" || r.Cells[3] != "1/3" || r.Cells[4] != "4m12s" {
				t.Errorf("straylight %v", r.Cells)
			}
		case decktest.Chiba.String():
			if !strings.Contains(r.Cells[7], "no eligible target") {
				t.Errorf("chiba %v", r.Cells)
			}
		}
	}
	if ms := MigrationRows(s, now); len(ms) != 2 || ms[1].Cells[3] != "transfer" || ms[1].Cells[4] != "46%" {
		t.Errorf("migrations %v", ms)
	}
}

func TestAuditRows(t *testing.T) {
	s := decktest.Snapshot()
	recs := decktest.Audit()
	all := AuditRows(s, recs, false, 0)
	if len(all) != len(recs) || all[0].Cells[0] != strconv.Itoa(len(recs)) {
		t.Fatalf("not newest first: %v", all[0].Cells)
	}
	ice := AuditRows(s, recs, true, 0)
	for _, r := range ice {
		if !strings.HasPrefix(r.Cells[4], "ICE ") || r.Tones[4] != common.ToneWarn {
			t.Errorf("non-ICE row with f: %v", r.Cells)
		}
	}
	if len(ice) != 3 {
		t.Errorf("%d ICE rows", len(ice))
	}
	if got := AuditRows(s, recs, false, 2); len(got) != 2 || got[1].Cells[0] != strconv.Itoa(len(recs)-1) {
		t.Errorf("limit 2: %v", got)
	}
	rejected := 0
	for _, r := range all {
		if r.Cells[3] != "mallory" && r.Cells[3] != decktest.OperatorKey("mallory").ID.Short() {
			continue
		}
		rejected++
		if r.Cells[2] != "rejected" || r.Tones[2] != common.ToneDanger {
			t.Errorf("rejected row %v", r.Cells)
		}
	}
	if rejected != 1 {
		t.Errorf("%d rows of mallory's rejected force-drain", rejected)
	}
}

// TestAuditRowsRefusedFromSender: a record of the node's reject ring (an
// event it refused at ingestion) names the node that sent it in the
// OPERATOR cell and on the detail page, not the operator the event names.
func TestAuditRowsRefusedFromSender(t *testing.T) {
	s := decktest.Snapshot()
	rec := api.AuditRecord{Seq: 1<<63 | 1, EventID: "ev-x", IssuedAt: decktest.T0, At: decktest.T0, Outcome: api.Rejected,
		Reason: "command: bad signature (names operator 0x4242424242424242)", From: decktest.Gibson,
		Action: api.Action{Verb: api.VerbCordon, Node: decktest.Chiba}}
	rows := AuditRows(s, []api.AuditRecord{rec}, false, 0)
	if len(rows) != 1 || rows[0].Cells[3] != "from gibson" || rows[0].Tones[3] != common.ToneWarn {
		t.Fatalf("row %v", rows)
	}
	lines := AuditDetail(common.NewTheme(colorprofile.NoTTY), s, rec)
	detail := strings.Join(lines, "\n")
	if !strings.Contains(detail, "gibson "+decktest.Gibson.String()+" sent it") {
		t.Fatalf("detail:\n%s", detail)
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "operator") {
			t.Fatalf("the refused event is attributed to an operator: %q", l)
		}
	}
	ledger := decktest.Audit()[0]
	if got := AuditRows(s, []api.AuditRecord{ledger}, false, 0)[0].Cells[3]; got != "alice" {
		t.Fatalf("ledger record's operator cell %q", got)
	}
}

func TestContainsFold(t *testing.T) {
	tests := []struct {
		hay, needle string
		want        bool
	}{
		{"Replay LAG behind", "lag", true},
		{"abc", "", true},
		{"", "a", false},
		{"short", "longer needle", false},
		{"ÉCOLE école", "cole", true},
		{"xyz", "xz", false},
	}
	for _, tc := range tests {
		if got := ContainsFold(tc.hay, tc.needle); got != tc.want {
			t.Errorf("ContainsFold(%q,%q) = %v", tc.hay, tc.needle, got)
		}
	}
}

func testCtx(logCap int) *common.Context {
	return &common.Context{Theme: common.NewTheme(colorprofile.NoTTY), Keys: common.DefaultKeyMap(),
		Store: store.New(logCap), Snap: decktest.Snapshot(), Now: decktest.T0}
}

// TestLogsIndexMatchesBruteForce pushes records through a small ring in
// batches (with eviction) and checks the incremental index equals a full
// rescan under several filters.
func TestLogsIndexMatchesBruteForce(t *testing.T) {
	filters := []func(l *Logs){
		func(l *Logs) {},
		func(l *Logs) { l.SetFilter("PANIC") },
		func(l *Logs) { l.SetScope(decktest.Straylight, "") },
		func(l *Logs) { l.SetScope(0, "ingest-2") },
	}
	for fi, set := range filters {
		c := testCtx(50)
		l := NewLogs(c)
		set(l)
		recs := decktest.Logs(333)
		for i := 0; i < len(recs); i += 37 {
			for _, r := range recs[i:min(i+37, len(recs))] {
				c.Store.Logs.Push(r)
			}
			l.Sync()
			want := 0
			for j := 0; j < c.Store.Logs.Len(); j++ {
				if l.Matches(c.Store.Logs.Index(j)) {
					want++
				}
			}
			if l.Shown() != want {
				t.Fatalf("filter %d after %d records: shown %d, want %d", fi, i, l.Shown(), want)
			}
			if out := l.View(80, 10); strings.Count(out, "\n") != 9 {
				t.Fatalf("view has %d lines", strings.Count(out, "\n")+1)
			}
		}
	}
}

func TestLogTail(t *testing.T) {
	c := testCtx(1000)
	for _, r := range decktest.Logs(500) {
		c.Store.Logs.Push(r)
	}
	tail := LogTail(c.Store.Logs, 0, "ice-breaker-0", 3, 1000)
	if len(tail) != 3 || !tail[0].At.Before(tail[2].At) {
		t.Fatalf("tail %v", tail)
	}
	for _, r := range tail {
		if r.Daemon != "ice-breaker-0" {
			t.Fatalf("wrong daemon %s", r.Daemon)
		}
	}
	if got := LogTail(c.Store.Logs, 0, "ice-breaker-0", 10, 5); len(got) > 1 {
		t.Fatalf("scan bound ignored: %d", len(got))
	}
}

func TestMapLayout(t *testing.T) {
	s := decktest.Snapshot()
	order := ByRTT(s)
	if order[0] != s.Self || order[len(order)-1] != decktest.Freeside {
		t.Fatalf("order %v", order)
	}
	for _, size := range [][2]int{{120, 40}, {60, 20}, {8, 3}, {3, 2}} {
		l := Layout(s, order, size[0], size[1])
		seen := map[[2]int]bool{}
		for id, p := range l.pos {
			if p[0] < 0 || p[0] >= size[0] || p[1] < 0 || p[1] >= size[1] {
				t.Errorf("%s outside %v: %v", id, size, p)
			}
			if seen[p] && size[0] >= 60 {
				t.Errorf("%s overlaps at %v", id, p)
			}
			seen[p] = true
		}
	}
	big := decktest.Scaled(5000)
	if l := Layout(big, ByRTT(big), 100, 40); len(l.grid) != 4000 {
		t.Fatal("grid size")
	}
	g, _ := Glyph(s.Node(decktest.Wintermute))
	if g != GlyphDatafort {
		t.Errorf("datafort glyph %s", g)
	}
	if g, _ := Glyph(s.Node(decktest.Freeside)); g != GlyphUnreachable {
		t.Errorf("unreachable glyph %s", g)
	}
	if g, _ := Glyph(s.Node(decktest.Straylight)); g != GlyphDegraded {
		t.Errorf("suspect glyph %s", g)
	}
}

func TestTimelineEntries(t *testing.T) {
	s := decktest.Snapshot()
	nodes := make([]snapshot.NodeSnapshot, len(s.Nodes))
	for i := range s.Nodes {
		nodes[i] = s.Nodes[i].NodeSnapshot
	}
	at := decktest.T0.Add(-2 * time.Minute)
	es := TimelineEntries(s, nodes, decktest.Failures(), decktest.Audit(), at)
	for i, e := range es {
		if e.Lane != 0 && e.At.After(at) {
			t.Errorf("entry after the replay point: %+v", e)
		}
		if i > 0 && e.At.After(es[i-1].At) {
			t.Errorf("not newest first at %d", i)
		}
	}
	var _ = api.LevelInfo
}

// TestGroupsPageKeys: PgDn/PgUp move the GROUPS cursor by the groups that
// fit in a page of the tree pane (as the tables move by a page of rows),
// stop at the ends, and reset the member axis.
func TestGroupsPageKeys(t *testing.T) {
	c := testCtx(0)
	c.Snap = decktest.Quiet()
	c.Snap.Groups = nil
	for i := 0; i < 20; i++ {
		name := string(rune('a' + i))
		c.Snap.Groups = append(c.Snap.Groups, snapshot.Group{Name: name, Kind: snapshot.GroupReplica, Desired: 2,
			Members: []string{name + "-0", name + "-1"}})
	}
	g := NewGroups(c)
	// 80×20: the tree pane is 11 lines (the detail pane takes 8), a page 10
	// lines, and a group 3 lines (header and two members): 3 groups a page.
	_ = g.View(80, 20)
	if g.treeH != 11 {
		t.Fatalf("tree pane %d lines, the test assumes 11", g.treeH)
	}
	pgdn, pgup := tea.KeyPressMsg{Code: tea.KeyPgDown}, tea.KeyPressMsg{Code: tea.KeyPgUp}
	right := tea.KeyPressMsg{Code: tea.KeyRight}
	steps := []struct {
		key  tea.KeyPressMsg
		want string
	}{
		{right, "a-1"}, {pgdn, "d-0"}, {pgdn, "g-0"}, {right, "g-1"}, {pgup, "d-0"}, {pgup, "a-0"}, {pgup, "a-0"},
	}
	for i, st := range steps {
		g.HandleKey(st.key)
		if got := g.Selection().Daemon; got != st.want {
			t.Fatalf("step %d (%s): on %s, want %s", i, st.key, got, st.want)
		}
	}
	for i := 0; i < 10; i++ {
		g.HandleKey(pgdn)
	}
	if got := g.Selection().Daemon; got != "t-0" {
		t.Fatalf("PgDn past the end: on %s, want the last group t-0", got)
	}
}
