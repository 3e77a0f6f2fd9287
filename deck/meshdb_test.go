package deck

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/deck-mesh/deck/deck/decktest"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/tabs"
	"github.com/deck-mesh/deck/widgets"
)

func meshdbTab(m *Model) *tabs.MeshDB { return m.screen().(*tabs.MeshDB) }

// TestMeshDBEditorTakesTheKeys: while the editor has focus, q, digits,
// ? and l are text, not deck keys; tab still switches tabs; esc leaves
// the editor, and then q quits.
func TestMeshDBEditorTakesTheKeys(t *testing.T) {
	m := newTestModel(t, quiet(t), 80, 24, nil)
	press(t, m, "=", "type:q2?l:/")
	if m.quitting || m.screen().Name() != "MESHDB" || m.help {
		t.Fatalf("keys escaped the editor: quitting %v, screen %s, help %v", m.quitting, m.screen().Name(), m.help)
	}
	if !strings.Contains(frame(t, m), "› q2?l:/") {
		t.Fatalf("the editor does not show what was typed:\n%s", frame(t, m))
	}
	press(t, m, "tab")
	if m.screen().Name() == "MESHDB" {
		t.Fatal("tab did not switch away from MESHDB")
	}
	press(t, m, "shift+tab", "esc", "q")
	if !m.quitting {
		t.Fatal("q out of the editor did not quit")
	}
}

// TestMeshDBHistoryAndExamples: ctrl+x puts the examples in turn, enter
// runs, ↑ walks back through what ran and ↓ returns to the draft.
func TestMeshDBHistoryAndExamples(t *testing.T) {
	m := newTestModel(t, quiet(t), 80, 24, nil)
	press(t, m, "=", "ctrl+x")
	tab := meshdbTab(m)
	if got := editorText(t, m); got != tabs.MeshDBExamples[0] {
		t.Fatalf("ctrl+x put %q", got)
	}
	press(t, m, "enter", "i", "ctrl+u", "type:chains()", "enter", "i", "ctrl+u", "type:draft")
	press(t, m, "up")
	if got := editorText(t, m); got != "chains()" {
		t.Fatalf("↑ once: %q", got)
	}
	press(t, m, "up")
	if got := editorText(t, m); got != tabs.MeshDBExamples[0] {
		t.Fatalf("↑ twice: %q", got)
	}
	press(t, m, "down", "down")
	if got := editorText(t, m); got != "draft" {
		t.Fatalf("↓ back to the draft: %q", got)
	}
	_ = tab
}

// editorText is the editor line of the frame.
func editorText(t *testing.T, m *Model) string {
	t.Helper()
	for _, l := range strings.Split(frame(t, m), "\n") {
		if s, ok := strings.CutPrefix(l, "› "); ok {
			return strings.TrimRight(strings.TrimSuffix(strings.TrimRight(s, " "), "█"), " ")
		}
	}
	t.Fatal("no editor line")
	return ""
}

// TestMeshDBExportsTheRows: e writes the result, a header line and a
// tab-separated line per row.
func TestMeshDBExportsTheRows(t *testing.T) {
	m := newTestModel(t, quiet(t), 80, 24, nil)
	press(t, m, "=", "type:between(logs, -1h, now) | count by node | sort node", "enter", "esc", "e")
	p := m.modals[0].(*widgets.Prompt)
	path := p.In.String()
	press(t, m, "enter")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if lines[0] != "node\tcount" || len(lines) < 2 {
		t.Fatalf("export:\n%s", data)
	}
}

// hangingClient answers every query with a run that only ends when
// cancelled, and counts the cancellations.
type hangingClient struct {
	*decktest.Client
	cancelled atomic.Int32
}

func (h *hangingClient) Query(ctx context.Context, q string, o api.QueryOptions) (*api.QueryRun, error) {
	var run *api.QueryRun
	run = api.NewQueryRun(api.QueryPlan{Key: "00000000feedface"}, []api.QueryColumn{{Name: "n", Kind: api.KindInt}}, 1, func() {
		if h.cancelled.CompareAndSwap(0, 1) {
			go run.Finish(api.QueryStatus{}, context.Canceled)
		}
	})
	return run, nil
}

// TestMeshDBEscCancelsARunningQuery: esc, over the results or back in the
// editor, cancels the query in flight (its fragments on every holder
// with it) and the tab says it ended.
func TestMeshDBEscCancelsARunningQuery(t *testing.T) {
	for _, keys := range [][]string{{"esc"}, {"i", "esc"}} {
		c := &hangingClient{Client: quiet(t)}
		m := newTestModel(t, c.Client, 80, 24, nil)
		m.c.Client = c
		press(t, m, "=", "type:latest(logs)")
		// enter runs the query; its pump would wait for rows, so only the
		// start is run here, and the pump's wait is left to the cancel.
		_, cmd := m.Update(keyMsg("enter"))
		msg := cmd()
		_, pumpCmd := m.Update(msg)
		if !meshdbTab(m).Running() || pumpCmd == nil {
			t.Fatal("the query is not running")
		}
		press(t, m, keys...)
		if c.cancelled.Load() != 1 {
			t.Fatalf("esc cancelled the query %d times, want 1", c.cancelled.Load())
		}
		run(t, m, pumpCmd())
		if meshdbTab(m).Running() {
			t.Fatal("the tab still shows the query running")
		}
	}
}
