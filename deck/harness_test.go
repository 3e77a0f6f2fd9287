package deck

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"

	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/deck/decktest"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
)

var update = flag.Bool("update", false, "rewrite golden files")

// fixtureLogs is the log backlog the tests load.
const fixtureLogs = 60

// newTestModel builds a deck over the fixture at T0, plain profile, sized
// w×h, with the fixture's logs, failures and audit folded in as if they had
// arrived from the streams.
func newTestModel(t testing.TB, c *decktest.Client, w, h int, faults api.FaultInjector) *Model {
	t.Helper()
	m := New(c, Options{Version: "0.4.0", Now: func() time.Time { return decktest.T0 }, Profile: colorprofile.NoTTY,
		Faults: faults, ExportDir: t.TempDir()})
	t.Cleanup(m.Close)
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	m.foldLogs(decktest.Logs(fixtureLogs))
	m.foldFailures(decktest.Failures())
	recs, err := c.Audit().Collect(m.c.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	m.foldAudit(recs)
	m.screen().Sync()
	return m
}

// keyMsg builds a key press from its String() form.
func keyMsg(s string) tea.KeyPressMsg {
	special := map[string]tea.Key{
		"enter": {Code: tea.KeyEnter}, "esc": {Code: tea.KeyEscape}, "tab": {Code: tea.KeyTab},
		"shift+tab": {Code: tea.KeyTab, Mod: tea.ModShift}, "backspace": {Code: tea.KeyBackspace},
		"up": {Code: tea.KeyUp}, "down": {Code: tea.KeyDown}, "left": {Code: tea.KeyLeft}, "right": {Code: tea.KeyRight},
		"pgup": {Code: tea.KeyPgUp}, "pgdown": {Code: tea.KeyPgDown}, "space": {Code: tea.KeySpace, Text: " "},
		"ctrl+c": {Code: 'c', Mod: tea.ModCtrl}, "ctrl+e": {Code: 'e', Mod: tea.ModCtrl}, "ctrl+d": {Code: 'd', Mod: tea.ModCtrl},
		"ctrl+u": {Code: 'u', Mod: tea.ModCtrl},
	}
	if k, ok := special[s]; ok {
		return tea.KeyPressMsg(k)
	}
	r := []rune(s)
	return tea.KeyPressMsg{Code: r[0], Text: s}
}

// run feeds msg through Update and synchronously executes the commands it
// returns (flows talk to the in-memory fixture, so nothing blocks), feeding
// their messages back. Key and flow paths never return the blocking pump or
// tick commands; those are only armed by their own messages.
func run(t testing.TB, m *Model, msg tea.Msg) {
	t.Helper()
	queue := []tea.Msg{msg}
	for steps := 0; len(queue) > 0; steps++ {
		if steps > 1000 {
			t.Fatal("message loop did not settle")
		}
		next := queue[0]
		queue = queue[1:]
		_, cmd := m.Update(next)
		queue = append(queue, exec(cmd)...)
	}
}

func exec(cmd tea.Cmd) []tea.Msg {
	if cmd == nil {
		return nil
	}
	msg := cmd()
	if b, ok := msg.(tea.BatchMsg); ok {
		var out []tea.Msg
		for _, c := range b {
			out = append(out, exec(c)...)
		}
		return out
	}
	if msg == nil {
		return nil
	}
	return []tea.Msg{msg}
}

// press types keys: each argument is one key ("enter", "j") or, prefixed
// with "type:", a string typed rune by rune; "snapshot" delivers the
// client's current snapshot, as the watch would after a FocusSubnet.
func press(t testing.TB, m *Model, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if k == "snapshot" {
			// Its command re-arms the watch (it would block): not run.
			m.Update(snapMsg{m.c.Client.Snapshot()})
			continue
		}
		if text, ok := strings.CutPrefix(k, "type:"); ok {
			for _, r := range text {
				run(t, m, keyMsg(string(r)))
			}
			continue
		}
		run(t, m, keyMsg(k))
	}
}

// frame renders and checks the frame's geometry: exactly h lines, none
// wider than w.
func frame(t testing.TB, m *Model) string {
	t.Helper()
	out := m.View().Content
	lines := strings.Split(out, "\n")
	if len(lines) != m.c.Height {
		t.Errorf("frame has %d lines, want %d", len(lines), m.c.Height)
	}
	for i, l := range lines {
		if w := ansi.StringWidth(l); w > m.c.Width {
			t.Errorf("line %d is %d cells wide, terminal is %d: %q", i, w, m.c.Width, l)
		}
	}
	return out
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./deck -run %s -update)", err, t.Name())
	}
	if string(want) != got {
		t.Errorf("%s differs from golden:\n--- got ---\n%s\n--- want ---\n%s", name, got, want)
	}
}

// quiet returns a fixture client on the routine ledger (no freeze, so
// admin commits pass; no lockout).
func quiet(t testing.TB) *decktest.Client { return quietWith(t, 0, 0) }

// quietWith is quiet on a cluster born with the given admin and ICE
// thresholds (0: the fixture genesis's).
func quietWith(t testing.TB, adminThreshold, iceThreshold int) *decktest.Client {
	t.Helper()
	c := decktest.New(fixtureLogs)
	g := decktest.Genesis()
	if adminThreshold > 0 {
		g.AdminThreshold = adminThreshold
	}
	if iceThreshold > 0 {
		g.ICEThreshold = iceThreshold
	}
	if err := c.SetLedger(g, decktest.QuietLedger()); err != nil {
		t.Fatal(err)
	}
	return c
}

// quietLedger puts c on the routine ledger (a golden setup).
func quietLedger(t testing.TB, c *decktest.Client) {
	t.Helper()
	if err := c.SetLedger(decktest.Genesis(), decktest.QuietLedger()); err != nil {
		t.Fatal(err)
	}
}

var _ = snapshot.Healthy

func commonToast(s string) tea.Msg { return common.ToastMsg{Text: s} }
