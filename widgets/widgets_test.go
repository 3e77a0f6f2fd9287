package widgets

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"

	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/api"
)

var plain = common.NewTheme(colorprofile.NoTTY)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"30s", 30 * time.Second, ""},
		{" 5m ", 5 * time.Minute, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"1d", 24 * time.Hour, ""},
		{"5", 0, "not a duration"},
		{"5x", 0, "not a duration"},
		{"d", 0, "not a duration"},
		{"1.5d", 0, "not a duration"},
		{"", 0, "enter a duration"},
		{"1s", 0, "shorter"},
		{"3d", 0, "longer"},
		{"-1m", 0, "shorter"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseDuration(tc.in, 5*time.Second, 48*time.Hour)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %v %v, want %v", got, err, tc.want)
			}
		})
	}
}

func TestFit(t *testing.T) {
	tests := []struct {
		in    string
		w     int
		fit   string
		right string
	}{
		{"abc", 5, "abc  ", "  abc"},
		{"abcdef", 4, "abc…", "abc…"},
		{"abcd", 4, "abcd", "abcd"},
		{"日本語", 4, "日… ", "日… "},
		{"x", 0, "", ""},
		{"abc", 1, "…", "…"},
	}
	for _, tc := range tests {
		if got := Fit(tc.in, tc.w); got != tc.fit || ansi.StringWidth(got) != tc.w {
			t.Errorf("Fit(%q,%d) = %q", tc.in, tc.w, got)
		}
		if got := FitRight(tc.in, tc.w); got != tc.right {
			t.Errorf("FitRight(%q,%d) = %q", tc.in, tc.w, got)
		}
	}
}

func press(s string) tea.KeyPressMsg {
	switch s {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "backspace":
		return tea.KeyPressMsg{Code: tea.KeyBackspace}
	}
	return tea.KeyPressMsg{Code: []rune(s)[0], Text: s}
}

func rows(n int) []Row {
	out := make([]Row, n)
	for i := range out {
		out[i] = Row{Key: fmt.Sprint(i), Cells: []string{fmt.Sprintf("row-%06d", i), "x"}}
	}
	return out
}

func TestTableCursorFilterAndWindow(t *testing.T) {
	tb := NewTable(Column{Title: "NAME", Width: 10, Flex: true}, Column{Title: "X", Width: 1})
	tb.SetRows(rows(100_000))
	km := common.DefaultKeyMap()
	tb.HandleKey(press("G"), km)
	if tb.SelectedKey() != "99999" {
		t.Fatalf("G selected %s", tb.SelectedKey())
	}
	out := tb.View(plain, 40, 10)
	lines := strings.Split(out, "\n")
	if len(lines) != 10 || !strings.Contains(lines[9], "row-099999") || !strings.HasPrefix(lines[9], CursorMarker) {
		t.Fatalf("window wrong:\n%s", out)
	}
	for _, l := range lines {
		if ansi.StringWidth(l) != 40 {
			t.Fatalf("line width %d: %q", ansi.StringWidth(l), l)
		}
	}
	tb.SetCursor(5)
	tb.SetFilter("row-00000")
	if tb.Len() != 10 || tb.SelectedKey() != "5" {
		t.Fatalf("filter kept %d rows, cursor on %s", tb.Len(), tb.SelectedKey())
	}
	// New data keeps the cursor on the same key.
	tb.SetFilter("")
	r := rows(100_000)
	r = append(r[:2], r[3:]...)
	tb.SetRows(r)
	if tb.SelectedKey() != "5" {
		t.Fatalf("refresh moved the cursor to %s", tb.SelectedKey())
	}
	tb.SetRows(nil)
	if _, ok := tb.Selected(); ok {
		t.Fatal("selection on an empty table")
	}
	tb.HandleKey(press("j"), km) // must not panic
}

func TestConfirmCommitsOnlyOnYES(t *testing.T) {
	for _, typed := range []string{"YES", "yes", "YES!", "Y", "", "NO"} {
		var confirmed, refused bool
		c := &Confirm{OnConfirm: func() tea.Cmd { confirmed = true; return nil },
			OnRefuse: func(string) tea.Cmd { refused = true; return nil }}
		for _, r := range typed {
			c.HandleKey(press(string(r)), common.DefaultKeyMap())
		}
		_, closed := c.HandleKey(press("enter"), common.DefaultKeyMap())
		if !closed || confirmed != (typed == "YES") || refused == (typed == "YES") {
			t.Errorf("typed %q: confirmed %v refused %v", typed, confirmed, refused)
		}
	}
}

func TestBlastLinesCapWarnings(t *testing.T) {
	br := api.BlastRadius{Nodes: make([]api.NodeID, 2), Warnings: []string{"a", "b", "c", "d", "e"}}
	lines := BlastLines(plain, br, func(id api.NodeID) string { return id.Short() }, 80)
	text := strings.Join(lines, "\n")
	if !strings.Contains(text, "affects 2 nodes, 0 replicas, 0 daemons") || !strings.Contains(text, "… +2 more") || strings.Contains(text, "⚠ d") {
		t.Fatalf("blast lines:\n%s", text)
	}
}

func TestInputRejectsControlAndCaps(t *testing.T) {
	in := Input{Max: 5}
	in.Paste("a\x1b[2Jb\nc\x7f")
	if got := in.String(); got != "a[2Jb" {
		t.Fatalf("got %q", got)
	}
	in.Paste("overflow")
	if in.String() != "a[2Jb" || in.Err == "" {
		t.Fatalf("cap not enforced: %q %q", in.String(), in.Err)
	}
	in.HandleKey(press("backspace"), common.DefaultKeyMap())
	if in.String() != "a[2J" {
		t.Fatalf("backspace: %q", in.String())
	}
}

func TestSignatureRoundTripAndCollector(t *testing.T) {
	sig := api.Signature{Operator: 0xabc, Sig: make([]byte, 64)}
	got, err := ParseSignature(FormatSignature(sig))
	if err != nil || got.Operator != sig.Operator {
		t.Fatalf("round trip: %v %v", got, err)
	}
	for _, bad := range []string{"", "deck-sig:", "deck-sig:zz:AA==", "nope:0000000000000abc:AA==", "deck-sig:0000000000000abc:AA=="} {
		if _, err := ParseSignature(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	sc := &SigCollector{Threshold: 2}
	if err := sc.Add(sig); err != nil {
		t.Fatal(err)
	}
	if err := sc.Add(sig); err == nil || sc.Ready() {
		t.Fatal("duplicate operator counted")
	}
}

func TestStatusLineDropsLowPriorityFirst(t *testing.T) {
	segs := []Segment{{Text: "LIVE"}, {Text: "cluster", Priority: 2}, {Text: "version", Priority: 9}, {Text: "peers", Priority: 1}}
	got := StatusLine(plain, segs, 24)
	if strings.Contains(got, "version") || !strings.Contains(got, "peers") || ansi.StringWidth(got) != 24 {
		t.Fatalf("%q", got)
	}
}

func TestToastQueue(t *testing.T) {
	var q Toasts
	t0 := time.Unix(0, 0)
	q.Push("a", false, t0)
	q.Push("b", true, t0.Add(time.Second))
	if cur, waiting, _ := q.Current(); cur.Text != "a" || waiting != 1 {
		t.Fatalf("%v %d", cur, waiting)
	}
	q.Expire(t0.Add(ToastDuration - time.Millisecond))
	if cur, _, _ := q.Current(); cur.Text != "a" {
		t.Fatal("expired early")
	}
	q.Expire(t0.Add(ToastDuration))
	if cur, _, _ := q.Current(); cur.Text != "b" || !cur.Error {
		t.Fatal("b not shown next")
	}
	for i := 0; i < 3*ToastQueueMax; i++ {
		q.Push("x", false, t0)
	}
	if _, waiting, _ := q.Current(); waiting != ToastQueueMax-1 {
		t.Fatalf("queue not bounded: %d", waiting)
	}
}

func BenchmarkTableView(b *testing.B) {
	th := common.NewTheme(colorprofile.TrueColor)
	tb := NewTable(Column{Title: "NAME", Width: 10, Flex: true}, Column{Title: "X", Width: 1})
	tb.SetRows(rows(100_000))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = tb.View(th, 160, 40)
	}
}

// TestSigCollectorMultiLinePaste: a paste of several deck-sig lines adds
// each line as it arrives (checked one by one), instead of merging them
// into one invalid line; a paste never commits; a rejected line stays in the
// input with its error; a paste without a line break still waits for Enter.
func TestSigCollectorMultiLinePaste(t *testing.T) {
	sig := func(op api.NodeID) api.Signature { return api.Signature{Operator: op, Sig: make([]byte, 64)} }
	line := func(op api.NodeID) string { return FormatSignature(sig(op)) }
	const own, bob, carol, dave, mallory = 0xa11ce, 0xb0b, 0xca201, 0xda5e, 0xbad
	newSC := func() (*SigCollector, *int) {
		commits := 0
		return &SigCollector{Threshold: 4, Sigs: []api.Signature{sig(own)},
			Check: func(s api.Signature) error {
				if s.Operator == mallory {
					return errors.New("operator is not registered")
				}
				return nil
			},
			OnCommit: func([]api.Signature) tea.Cmd { commits++; return nil },
		}, &commits
	}
	ops := func(sc *SigCollector) []api.NodeID {
		var out []api.NodeID
		for _, s := range sc.Sigs {
			out = append(out, s.Operator)
		}
		return out
	}

	t.Run("all lines added", func(t *testing.T) {
		sc, commits := newSC()
		sc.HandlePaste(line(bob) + "\r\n" + line(carol) + "\n\n" + line(dave) + "\n")
		if got := ops(sc); !reflect.DeepEqual(got, []api.NodeID{own, bob, carol, dave}) {
			t.Fatalf("signatures %v", got)
		}
		if sc.In.String() != "" || sc.In.Err != "" || !sc.Ready() || *commits != 0 {
			t.Fatalf("input %q err %q ready %v commits %d", sc.In.String(), sc.In.Err, sc.Ready(), *commits)
		}
	})
	t.Run("rejected line kept, the others added", func(t *testing.T) {
		sc, _ := newSC()
		sc.HandlePaste(line(bob) + "\ngarbage\n" + line(mallory) + "\n" + line(bob) + "\n" + line(carol))
		if got := ops(sc); !reflect.DeepEqual(got, []api.NodeID{own, bob, carol}) {
			t.Fatalf("signatures %v", got)
		}
		if sc.In.String() != "garbage" || !strings.Contains(sc.In.Err, "pasted line 2") || !strings.Contains(sc.In.Err, "+2 more lines rejected") {
			t.Fatalf("input %q err %q", sc.In.String(), sc.In.Err)
		}
	})
	t.Run("the first line continues the typed text", func(t *testing.T) {
		sc, _ := newSC()
		l := line(bob)
		sc.In.Paste(l[:10])
		sc.HandlePaste(l[10:] + "\n" + line(carol) + "\n")
		if got := ops(sc); !reflect.DeepEqual(got, []api.NodeID{own, bob, carol}) || sc.In.String() != "" {
			t.Fatalf("signatures %v input %q err %q", got, sc.In.String(), sc.In.Err)
		}
	})
	t.Run("one line without a break waits for enter", func(t *testing.T) {
		sc, _ := newSC()
		sc.HandlePaste(line(bob))
		if len(sc.Sigs) != 1 || sc.In.String() != line(bob) {
			t.Fatalf("signatures %v input %q", ops(sc), sc.In.String())
		}
		sc.HandleKey(press("enter"), common.DefaultKeyMap())
		if got := ops(sc); !reflect.DeepEqual(got, []api.NodeID{own, bob}) || sc.In.String() != "" {
			t.Fatalf("after enter: %v input %q err %q", got, sc.In.String(), sc.In.Err)
		}
	})
}

// TestModalHintsFromKeymap pins the footer text the modals generate from
// the keymap: the generated hints must read as the hand-written ones did.
func TestModalHintsFromKeymap(t *testing.T) {
	km := common.DefaultKeyMap()
	for _, tc := range []struct {
		name string
		m    Modal
		want string
	}{
		{"prompt", &Prompt{}, "enter submit · esc cancel · ctrl+u clear"},
		{"picker", &Picker{}, "↑/↓ move · enter pick · esc cancel"},
		{"multi picker", &Picker{Multi: true}, "↑/↓ move · space mark · enter pick · esc cancel"},
		{"confirm", &Confirm{}, "type YES + enter to commit · anything else refuses · esc cancel"},
		{"signatures", &SigCollector{}, "paste deck-sig:… + enter · enter on empty line commits · ctrl+e export proposal · esc abort"},
	} {
		if got := tc.m.Hints(km); got != tc.want {
			t.Errorf("%s hints = %q, want %q", tc.name, got, tc.want)
		}
	}
	// A rebound key shows in the hint and is the key the modal honours.
	km.Cancel.SetKeys("ctrl+g")
	km.Cancel.SetHelp("ctrl+g", "cancel")
	p := &Prompt{}
	if got := p.Hints(km); got != "enter submit · ctrl+g cancel · ctrl+u clear" {
		t.Errorf("rebound hints = %q", got)
	}
	if _, closed := p.HandleKey(press("esc"), km); closed {
		t.Error("esc closed a prompt whose cancel key is ctrl+g")
	}
	if _, closed := p.HandleKey(tea.KeyPressMsg{Code: 'g', Mod: tea.ModCtrl}, km); !closed {
		t.Error("ctrl+g did not cancel the prompt")
	}
}

// TestTabStripScrollsManyTabs: with the 18 tabs the deck is heading for,
// at 80 columns every tab, when active, is drawn whole within the width,
// ‹ and › say what is off either edge, and the strip is exactly w cells.
func TestTabStripScrollsManyTabs(t *testing.T) {
	th := common.NewTheme(colorprofile.NoTTY)
	names := []string{"NET.MAP", "NODES", "DAEMONS", "GROUPS", "CHAINS", "MIGRATIONS", "MAINTENANCE", "BEHAVIOR",
		"LOGS", "AUDIT", "FAILURES", "MESHDB", "DEMO", "BLOBS", "DATAFORTS", "SUBNETS", "GATEWAYS", "AGGREGATORS"}
	keys := []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "-", "=", "`", "!", "@", "#", "$", "%"}
	for _, w := range []int{80, 160} {
		for active := range names {
			got := TabStrip(th, names, keys, active, w)
			if Width(got) != w {
				t.Errorf("w %d active %s: %d cells", w, names[active], Width(got))
			}
			if !strings.Contains(got, " "+keys[active]+" "+names[active]+" ") {
				t.Errorf("w %d: active %s not drawn whole: %q", w, names[active], got)
			}
			if first := strings.Contains(got, " 1 NET.MAP "); !first && !strings.HasPrefix(got, "‹") {
				t.Errorf("w %d active %s: NET.MAP scrolled off without ‹: %q", w, names[active], got)
			}
			if last := strings.Contains(got, " % AGGREGATORS "); !last && !strings.Contains(got, "›") {
				t.Errorf("w %d active %s: the last tab off the edge without ›: %q", w, names[active], got)
			}
		}
	}
}
