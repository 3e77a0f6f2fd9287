package deck

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/deck-mesh/deck/deck/decktest"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/tabs"
	"github.com/deck-mesh/deck/widgets"
)

func currentToast(m *Model) string {
	t, _, ok := m.toasts.Current()
	if !ok {
		return ""
	}
	return t.Text
}

func allToasts(m *Model) string {
	var b strings.Builder
	at := m.c.Now
	for {
		t, _, ok := m.toasts.Current()
		if !ok {
			return b.String()
		}
		b.WriteString(t.Text + "\n")
		at = at.Add(time.Hour)
		m.toasts.Expire(at)
	}
}

func TestDrainFlow(t *testing.T) {
	tests := []struct {
		name       string
		typed      []string
		wantCommit bool
		wantToast  string
	}{
		{"YES commits", []string{"type:YES", "enter"}, true, "committed drain straylight for 5m00s"},
		{"lower-case refuses", []string{"type:yes", "enter"}, false, `refused: typed "yes"`},
		{"trailing space refuses", []string{"type:YES ", "enter"}, false, "refused"},
		{"empty enter refuses", []string{"enter"}, false, "nothing committed"},
		{"esc cancels", []string{"type:YE", "esc"}, false, "cancelled"},
		{"YESS refuses", []string{"type:YESS", "enter"}, false, "refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := quiet(t)
			m := newTestModel(t, c, 80, 24, nil)
			press(t, m, "j", "j", "j", "j", "j", "d", "type:5m", "enter") // straylight (NODES sorts by label)
			if _, ok := m.modals[len(m.modals)-1].(*widgets.Confirm); !ok {
				t.Fatalf("after the duration the confirm modal should be up, have %T", m.modals)
			}
			if !strings.Contains(frame(t, m), "This action affects") {
				t.Fatal("confirm modal does not show the blast radius")
			}
			press(t, m, tc.typed...)
			got := c.Committed()
			if tc.wantCommit {
				want := api.Action{Verb: api.VerbDrain, Node: decktest.Straylight, Duration: 5 * time.Minute}
				if len(got) != 1 || got[0].Verb != want.Verb || got[0].Node != want.Node || got[0].Duration != want.Duration {
					t.Fatalf("committed %+v, want %+v", got, want)
				}
			} else if len(got) != 0 {
				t.Fatalf("committed %+v, want nothing", got)
			}
			if len(m.modals) != 0 {
				t.Fatalf("modals left open: %d", len(m.modals))
			}
			if toast := currentToast(m); !strings.Contains(toast, tc.wantToast) {
				t.Fatalf("toast %q, want it to mention %q", toast, tc.wantToast)
			}
		})
	}
}

func TestDurationPromptValidation(t *testing.T) {
	tests := []struct {
		input   string
		wantErr string
	}{
		{"5x", "not a duration"},
		{"5", "not a duration"},
		{"0s", "shorter than the minimum"},
		{"48h", "longer than the maximum"},
		{"-5m", "shorter than the minimum"},
		{"", "enter a duration"},
	}
	for _, tc := range tests {
		t.Run(tc.input, func(t *testing.T) {
			c := quiet(t)
			m := newTestModel(t, c, 80, 24, nil)
			press(t, m, "d", "type:"+tc.input, "enter")
			p, ok := m.modals[len(m.modals)-1].(*widgets.Prompt)
			if !ok {
				t.Fatalf("prompt closed on bad input %q", tc.input)
			}
			if !strings.Contains(p.In.Err, tc.wantErr) {
				t.Fatalf("error %q, want %q", p.In.Err, tc.wantErr)
			}
			if p.In.String() != tc.input {
				t.Fatalf("typed text lost: %q", p.In.String())
			}
			if !strings.Contains(frame(t, m), "✗") {
				t.Fatal("error not shown inline")
			}
			// Fixing the input moves on to the confirm step.
			press(t, m, "ctrl+u", "type:30s", "enter")
			if _, ok := m.modals[len(m.modals)-1].(*widgets.Confirm); !ok {
				t.Fatal("valid duration did not lead to the confirm modal")
			}
			if len(c.Committed()) != 0 {
				t.Fatal("something was committed before YES")
			}
		})
	}
}

func TestFrozenCommitShowsReason(t *testing.T) {
	c := decktest.New(fixtureLogs) // frozen
	m := newTestModel(t, c, 80, 24, nil)
	press(t, m, "c", "type:YES", "enter")
	if got := c.Committed(); len(got) != 0 {
		t.Fatalf("committed %+v while frozen", got)
	}
	if toast := currentToast(m); !strings.Contains(toast, "cluster is frozen") {
		t.Fatalf("toast %q does not name the reason", toast)
	}
}

func TestReadOnlyDisablesActions(t *testing.T) {
	c := quiet(t)
	c.SetReadOnly("no operator key")
	m := newTestModel(t, c, 80, 24, nil)
	for _, k := range []string{"c", "d", "F", "X"} {
		press(t, m, k)
		if len(m.modals) != 0 {
			t.Fatalf("%s opened a modal on a read-only client", k)
		}
	}
	toasts := allToasts(m)
	if !strings.Contains(toasts, "read-only (no operator key): cordon is disabled") {
		t.Fatalf("toasts %q", toasts)
	}
	if !strings.Contains(frame(t, m), "READ-ONLY: no operator key") {
		t.Fatal("status line does not say READ-ONLY")
	}
}

func TestFilter(t *testing.T) {
	m := newTestModel(t, quiet(t), 80, 24, nil)
	press(t, m, "/", "type:chi")
	nodes := m.tabs[1].tab.(*tabs.Nodes)
	if got := nodes.Filter(); got != "chi" {
		t.Fatalf("filter %q", got)
	}
	// While the filter line is active, q types instead of quitting.
	press(t, m, "type:q")
	if m.quitting {
		t.Fatal("q quit while typing a filter")
	}
	press(t, m, "backspace", "enter")
	out := frame(t, m)
	if !strings.Contains(out, "chiba") || strings.Contains(out, "wintermute") {
		t.Fatalf("filter not applied:\n%s", out)
	}
	if sel := m.screen().Selection(); sel.Node != decktest.Chiba {
		t.Fatalf("selection %v, want chiba", sel.Node)
	}
	// Esc during a new edit restores the previous filter.
	press(t, m, "/", "type:zzz", "esc")
	if got := nodes.Filter(); got != "chi" {
		t.Fatalf("esc did not restore the filter: %q", got)
	}
}

func TestScrollAndTabCursors(t *testing.T) {
	m := newTestModel(t, quiet(t), 80, 24, nil)
	sel := func() string { return m.screen().Selection().Label }
	press(t, m, "j", "j")
	if sel() != "gibson" {
		t.Fatalf("after j j: %s", sel())
	}
	// The bottom of NODES is the pending section (by id: molly, hosaka);
	// the cursor passes over its heading both ways.
	press(t, m, "G")
	if sel() != decktest.Hosaka.Short() {
		t.Fatalf("after G: %s", sel())
	}
	press(t, m, "k", "k")
	if sel() != "deck" {
		t.Fatalf("after G k k: %s, want the console row above the PENDING heading", sel())
	}
	press(t, m, "j")
	if sel() != decktest.Molly.Short() {
		t.Fatalf("after j from the console row: %s, want the first pending row", sel())
	}
	// A page (9 rows before the first frame) down from freeside lands on
	// the PENDING heading: the cursor goes on past it to molly.
	press(t, m, "g", "down", "pgdown")
	if sel() != decktest.Molly.Short() {
		t.Fatalf("after pgdown: %s", sel())
	}
	press(t, m, "pgup", "pgup", "k")
	if sel() != "chiba" {
		t.Fatalf("after pgup pgup k: %s", sel())
	}
	press(t, m, "j", "j", "j", "j", "j") // straylight on NODES
	press(t, m, "3", "j", "j", "j", "j", "j")
	if got := m.screen().Selection().Daemon; got != "ingest-2" {
		t.Fatalf("DAEMONS cursor on %s", got)
	}
	press(t, m, "2")
	if sel() != "straylight" {
		t.Fatalf("NODES lost its cursor: %s", sel())
	}
	press(t, m, "tab")
	if got := m.screen().Selection().Daemon; got != "ingest-2" {
		t.Fatalf("DAEMONS lost its cursor: %s", got)
	}
	press(t, m, "shift+tab", "shift+tab")
	if m.active != 0 {
		t.Fatalf("shift+tab twice from DAEMONS: tab %d", m.active)
	}
}

func TestLogsJumpAndBack(t *testing.T) {
	m := newTestModel(t, quiet(t), 80, 24, nil)
	press(t, m, "3")
	for m.screen().Selection().Daemon != "ice-breaker-0" {
		press(t, m, "j")
	}
	press(t, m, "l")
	if !m.onLogs() {
		t.Fatalf("l did not jump to LOGS (tab %d)", m.active)
	}
	if _, d := m.logs.Scope(); d != "ice-breaker-0" {
		t.Fatalf("LOGS scope %q", d)
	}
	out := frame(t, m)
	if !strings.Contains(out, "daemon:ice-breaker-0") || strings.Contains(out, "batch 8841") {
		t.Fatalf("LOGS not filtered to the daemon:\n%s", out)
	}
	want := 0
	for _, r := range decktest.Logs(fixtureLogs) {
		if r.Daemon == "ice-breaker-0" {
			want++
		}
	}
	if want == 0 || m.logs.Shown() != want {
		t.Fatalf("shown %d, want the fixture's ice-breaker-0 records", m.logs.Shown())
	}
	press(t, m, "esc")
	if m.active != 2 || m.screen().Selection().Daemon != "ice-breaker-0" {
		t.Fatalf("esc returned to tab %d / %q", m.active, m.screen().Selection().Daemon)
	}
	// From a page: node page → l → esc comes back to the page.
	press(t, m, "2", "enter", "l", "esc")
	if _, ok := m.screen().(*tabs.NodePage); !ok {
		t.Fatalf("esc from LOGS did not return to the node page: %T", m.screen())
	}
	press(t, m, "esc")
	if _, ok := m.screen().(*tabs.Nodes); !ok {
		t.Fatalf("esc did not pop the page: %T", m.screen())
	}
}

func TestICEWithTwoSignatures(t *testing.T) {
	c := decktest.New(fixtureLogs) // ICE threshold 2, lockout on chiba
	m := newTestModel(t, c, 80, 24, nil)
	press(t, m, "5", "j", "j", "E") // ledger → holder picker
	if _, ok := m.modals[0].(*widgets.Picker); !ok {
		t.Fatalf("E did not open the holder picker: %T", m.modals)
	}
	press(t, m, "j", "enter", "type:YES", "enter") // straylight, confirm
	sc, ok := m.modals[len(m.modals)-1].(*widgets.SigCollector)
	if !ok {
		t.Fatalf("threshold 2 did not open the signature collector: %T", m.modals)
	}
	payload := sc.Payload
	paste := func(s string) { run(t, m, tea.PasteMsg{Content: s}) }

	// Not enough signatures yet: Enter on an empty line refuses.
	press(t, m, "enter")
	if !strings.Contains(sc.In.Err, "need 1 more") {
		t.Fatalf("err %q", sc.In.Err)
	}
	cases := []struct{ text, wantErr string }{
		{"garbage", "deck-sig"},
		{widgets.FormatSignature(decktest.SignAs("alice", payload)), "already signed"},
		{widgets.FormatSignature(decktest.SignAs("mallory", payload)), "not a registered operator"},
		{widgets.FormatSignature(decktest.SignAs("bob", []byte("another payload"))), "bad signature"},
	}
	for _, tc := range cases {
		paste(tc.text)
		press(t, m, "enter")
		if !strings.Contains(sc.In.Err, tc.wantErr) {
			t.Fatalf("pasting %q: err %q, want %q", tc.text, sc.In.Err, tc.wantErr)
		}
		press(t, m, "ctrl+u")
	}
	if len(c.ICECommitted()) != 0 {
		t.Fatal("committed before the threshold")
	}
	paste(widgets.FormatSignature(decktest.SignAs("bob", payload)))
	press(t, m, "enter")
	if !sc.Ready() || !strings.Contains(frame(t, m), "signatures 2/2") {
		t.Fatal("bob's signature did not count")
	}
	press(t, m, "enter")
	got := c.ICECommitted()
	if len(got) != 1 || got[0].Action.Verb != api.VerbForceEvictReplica || got[0].Action.Peer != decktest.Straylight || len(got[0].Sigs) != 2 {
		t.Fatalf("ICE commit %+v", got)
	}
	if toast := currentToast(m); !strings.Contains(toast, "committed force-evict-replica") {
		t.Fatalf("toast %q", toast)
	}
}

func TestICEExpiredAndLockout(t *testing.T) {
	c := decktest.New(fixtureLogs)
	m := newTestModel(t, c, 80, 24, nil)
	// Lockout: force-evict of chiba from ledger is cooling down.
	press(t, m, "5", "j", "j", "E", "j", "j") // chiba is not a holder: picker has 2
	press(t, m, "esc")
	snap := decktest.Snapshot()
	snap.Chains[2].Holders = append(snap.Chains[2].Holders, decktest.Chiba)
	c.SetSnapshot(snap)
	m.Update(snapMsg{snap}) // its command re-arms the pump: not run here
	press(t, m, "E", "j", "j", "enter")
	if toast := currentToast(m); !strings.Contains(toast, "locked out") {
		t.Fatalf("toast %q, want a lockout", toast)
	}
	if len(m.modals) != 0 {
		t.Fatal("a locked-out action opened a modal")
	}
	// Expiry: the collector refuses to commit after ExpiresAt.
	press(t, m, "E", "j", "enter", "type:YES", "enter")
	sc := m.modals[len(m.modals)-1].(*widgets.SigCollector)
	run(t, m, tea.PasteMsg{Content: widgets.FormatSignature(decktest.SignAs("bob", sc.Payload))})
	press(t, m, "enter")
	m.c.Clock = func() time.Time { return decktest.T0.Add(2 * time.Minute) }
	press(t, m, "enter")
	if !strings.Contains(sc.In.Err, "expired") || len(c.ICECommitted()) != 0 {
		t.Fatalf("expired proposal: err %q, commits %d", sc.In.Err, len(c.ICECommitted()))
	}
}

func TestFreezeFlowThresholdOne(t *testing.T) {
	c := quietWith(t, 0, 1)
	m := newTestModel(t, c, 80, 24, nil)
	press(t, m, "F", "enter") // empty reason refused inline
	if p := m.modals[0].(*widgets.Prompt); p.In.Err == "" {
		t.Fatal("empty freeze reason accepted")
	}
	press(t, m, "type:drill", "enter", "type:2s", "enter") // below the 5 s minimum
	if p := m.modals[len(m.modals)-1].(*widgets.Prompt); !strings.Contains(p.In.Err, "minimum") {
		t.Fatalf("freeze TTL bound not enforced: %q", p.In.Err)
	}
	press(t, m, "ctrl+u", "type:10m", "enter", "type:YES", "enter")
	got := c.ICECommitted()
	if len(got) != 1 || got[0].Action.Reason != "drill" || got[0].Action.Duration != 10*time.Minute {
		t.Fatalf("freeze commit %+v", got)
	}
}

func TestExportLogs(t *testing.T) {
	m := newTestModel(t, quiet(t), 80, 24, nil)
	press(t, m, "9", "e")
	p := m.modals[0].(*widgets.Prompt)
	path := p.In.String()
	press(t, m, "enter")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n != fixtureLogs {
		t.Fatalf("exported %d lines, want %d", n, fixtureLogs)
	}
	if toast := currentToast(m); !strings.Contains(toast, path) {
		t.Fatalf("toast %q does not name the path", toast)
	}
	// A path in a missing directory is refused inline, nothing lost.
	press(t, m, "e", "ctrl+u", "type:/nonexistent/dir/x.txt", "enter")
	if p := m.modals[0].(*widgets.Prompt); !strings.Contains(p.In.Err, "does not exist") {
		t.Fatalf("err %q", p.In.Err)
	}
}

func TestToastsQueue(t *testing.T) {
	m := newTestModel(t, quiet(t), 80, 24, nil)
	for i := 0; i < 3; i++ {
		run(t, m, commonToast(fmt.Sprintf("toast %d", i)))
	}
	if got := currentToast(m); got != "toast 0" {
		t.Fatalf("current %q", got)
	}
	if !strings.Contains(frame(t, m), "(+2)") {
		t.Fatal("queued count not shown")
	}
	m.c.Clock = func() time.Time { return decktest.T0.Add(widgets.ToastDuration) }
	m.Update(tickMsg{}) // its command re-arms the 1 Hz tick: not run here
	if got := currentToast(m); got != "toast 1" {
		t.Fatalf("after 3 s current %q", got)
	}
}

func TestDemoFaults(t *testing.T) {
	f := &decktest.Faults{}
	m := newTestModel(t, quiet(t), 80, 24, f)
	press(t, m, "`", "space", "space", "P")
	press(t, m, "w", "type:5x", "enter", "ctrl+u", "type:250ms", "enter")
	press(t, m, "g", "z", "j", "enter", "H")
	got := f.Injected()
	if len(got) != 4 {
		t.Fatalf("injected %+v", got)
	}
	if got[0].Kind != api.FaultPartition || len(got[0].Nodes) != 2 {
		t.Fatalf("partition %+v", got[0])
	}
	if got[1].Kind != api.FaultSlow || got[1].Delay != 250*time.Millisecond {
		t.Fatalf("slow %+v", got[1])
	}
	if got[2].Kind != api.FaultCrashLoop || got[2].Daemon != "ice-breaker-0" {
		t.Fatalf("crashloop %+v", got[2])
	}
	if got[3].Kind != api.FaultHeal {
		t.Fatalf("heal %+v", got[3])
	}
}

func TestQuit(t *testing.T) {
	tests := []struct {
		name string
		keys []string
		quit bool
	}{
		{"q quits", []string{"q"}, true},
		{"ctrl+c quits", []string{"ctrl+c"}, true},
		{"q in a modal types", []string{"d", "q"}, false},
		{"ctrl+c in a modal quits", []string{"d", "ctrl+c"}, true},
		{"q closes help", []string{"?", "q"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestModel(t, quiet(t), 80, 24, nil)
			press(t, m, tc.keys...)
			if m.quitting != tc.quit {
				t.Fatalf("quitting %v", m.quitting)
			}
		})
	}
}

func TestTinyTerminalDoesNotPanic(t *testing.T) {
	for _, sz := range [][2]int{{0, 0}, {1, 1}, {20, 5}, {40, 10}, {79, 23}} {
		m := newTestModel(t, quiet(t), sz[0], sz[1], &decktest.Faults{})
		for _, k := range []string{"1", "4", "7", "8", "9", "?", "esc", "=", "d"} {
			press(t, m, k)
			_ = m.View()
		}
	}
}

// TestDrainStalePreviewAsksAgain: the cluster changes between the preview
// the operator confirmed and the commit, so the drain would move replicas
// and daemons elsewhere than shown. Nothing is committed; the new preview
// comes up with what changed, and a YES on it commits.
func TestDrainStalePreviewAsksAgain(t *testing.T) {
	c := quiet(t)
	m := newTestModel(t, c, 100, 40, nil)
	// neuromancer: healthy and active, so its drain moves daemons and
	// replicas (straylight is suspect and already draining: nothing moves).
	press(t, m, "j", "j", "j", "d", "type:5m", "enter")
	first, ok := m.modals[len(m.modals)-1].(*widgets.Confirm)
	if !ok {
		t.Fatalf("no confirm modal: %T", m.modals)
	}
	// Every node the drain moved something onto is cordoned meanwhile.
	to := map[api.NodeID]bool{}
	for _, r := range first.Radius.Replicas {
		to[r.To] = true
	}
	for _, d := range first.Radius.Migrated {
		to[d.To] = true
	}
	delete(to, 0)
	if len(to) == 0 {
		t.Fatal("the drain preview moves nothing onto another node")
	}
	next := *c.Snapshot()
	next.Nodes = append(next.Nodes[:0:0], next.Nodes...)
	for i := range next.Nodes {
		if to[next.Nodes[i].ID] {
			next.Nodes[i].Cordoned = true
		}
	}
	c.SetSnapshot(&next)

	press(t, m, "type:YES", "enter")
	if got := c.Committed(); len(got) != 0 {
		t.Fatalf("committed %+v against a stale preview", got)
	}
	again, ok := m.modals[len(m.modals)-1].(*widgets.Confirm)
	if !ok || again == first {
		t.Fatalf("the new preview is not up: %T", m.modals)
	}
	if len(again.Changed) == 0 {
		t.Fatalf("the new modal does not show the changed projection: changed %q", again.Changed)
	}
	for _, ch := range again.Changed {
		if strings.Contains(ch, "0x") {
			t.Errorf("change %q names a node by id, not by name", ch)
		}
	}
	if f := frame(t, m); !strings.Contains(f, "changed since you confirmed") || !strings.Contains(f, "no longer") {
		t.Fatalf("the frame does not say what changed:\n%s", f)
	}
	press(t, m, "type:YES", "enter")
	if got := c.Committed(); len(got) != 1 || got[0].Verb != api.VerbDrain || got[0].Node != decktest.Neuromancer {
		t.Fatalf("committed %+v after confirming the new preview", got)
	}
	if toast := currentToast(m); !strings.Contains(toast, "committed drain neuromancer") {
		t.Fatalf("toast %q", toast)
	}
}

// TestAdminThresholdTwoCollectsSignatures: at an admin threshold of 2 a
// confirmed cordon opens the signature collector like ICE does, and commits
// only with a second operator's signature.
func TestAdminThresholdTwoCollectsSignatures(t *testing.T) {
	c := quietWith(t, 2, 0)
	m := newTestModel(t, c, 100, 40, nil)
	press(t, m, "j", "j", "j", "j", "j", "c", "type:YES", "enter") // cordon straylight
	sc, ok := m.modals[len(m.modals)-1].(*widgets.SigCollector)
	if !ok {
		t.Fatalf("admin threshold 2 did not open the signature collector: %T", m.modals)
	}
	if !strings.Contains(frame(t, m), "SIGNATURES cordon straylight") {
		t.Fatalf("collector title:\n%s", frame(t, m))
	}
	press(t, m, "enter")
	if len(c.Committed()) != 0 || !strings.Contains(sc.In.Err, "need 1 more") {
		t.Fatalf("committed on one signature (err %q)", sc.In.Err)
	}
	run(t, m, tea.PasteMsg{Content: widgets.FormatSignature(decktest.SignAs("bob", sc.Payload))})
	press(t, m, "enter", "enter")
	if got := c.Committed(); len(got) != 1 || got[0].Verb != api.VerbCordon || got[0].Node != decktest.Straylight {
		t.Fatalf("committed %+v (toasts %q, collector err %q)", got, allToasts(m), sc.In.Err)
	}
	if toast := currentToast(m); !strings.Contains(toast, "committed cordon straylight") {
		t.Fatalf("toast %q", toast)
	}
}

// TestLedgerRefusalShowsToast: a commit the command plane accepts but the
// ledger refuses (decktest's FailCommit) ends the flow with a toast naming
// the failure; nothing is committed and no modal stays open.
func TestLedgerRefusalShowsToast(t *testing.T) {
	c := quiet(t)
	c.FailCommit = decktest.ErrFixture
	m := newTestModel(t, c, 80, 24, nil)
	press(t, m, "j", "j", "j", "j", "j", "c", "type:YES", "enter") // cordon straylight
	if got := c.Committed(); len(got) != 0 {
		t.Fatalf("committed %+v", got)
	}
	if len(m.modals) != 0 {
		t.Fatalf("modals left open: %T", m.modals)
	}
	if toast := currentToast(m); !strings.Contains(toast, "cordon straylight failed") || !strings.Contains(toast, "injected failure") {
		t.Fatalf("toast %q, want the refusal", toast)
	}
}
