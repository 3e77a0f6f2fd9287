package deck

import (
	"strings"
	"testing"

	"github.com/deck-mesh/deck/deck/decktest"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/tabs"
	"github.com/deck-mesh/deck/widgets"
)

// blobRow is the BLOBS cursor keys onto the fixture's blob name (the tab
// lists blobs as an ancestry forest).
func blobRow(t *testing.T, m *Model, name string) []string {
	t.Helper()
	keys := []string{"!"}
	for _, e := range tabs.BlobRows(m.c.Snap, m.c.Now) {
		if strings.HasSuffix(e.Cells[0], name) {
			return keys
		}
		keys = append(keys, "j")
	}
	t.Fatalf("no BLOBS row for %s", name)
	return nil
}

// viewBlob is the client's published view of the blob (the deck takes it
// from its snapshot watch, which the harness does not run).
func viewBlob(c *decktest.Client, name string) *snapshot.BlobView {
	return tabs.FindBlob(c.Snapshot(), decktest.BlobHash(name))
}

// A blob verb goes through the one action flow: preview (the blob's
// placement before and after), typed YES, then the signed intent; anything
// else refuses and signs nothing.
func TestBlobPinFlow(t *testing.T) {
	tests := []struct {
		name      string
		typed     []string
		wantPin   bool
		wantToast string
	}{
		{"YES signs", []string{"type:YES", "enter"}, true, "signed pin-blob blob " + decktest.BlobRollouts1},
		{"lower-case refuses", []string{"type:yes", "enter"}, false, `refused: typed "yes"`},
		{"esc cancels", []string{"type:YE", "esc"}, false, "cancelled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := quiet(t)
			m := newTestModel(t, c, 80, 24, nil)
			press(t, m, blobRow(t, m, decktest.BlobRollouts1)...)
			press(t, m, "p")
			cf, ok := m.modals[len(m.modals)-1].(*widgets.Confirm)
			if !ok {
				t.Fatalf("no confirm modal: %T", m.modals)
			}
			if cf.Radius.Action.Verb != api.VerbPinBlob || cf.Radius.Action.Blob != decktest.BlobHash(decktest.BlobRollouts1) {
				t.Fatalf("preview of %+v", cf.Radius.Action)
			}
			if f := frame(t, m); !strings.Contains(f, "no copy moves") {
				t.Fatalf("a pin moves nothing, the modal should say so:\n%s", f)
			}
			press(t, m, tc.typed...)
			if got := viewBlob(c, decktest.BlobRollouts1); got == nil || got.Pinned != tc.wantPin {
				t.Fatalf("view after the flow: %+v, want pinned %v", got, tc.wantPin)
			}
			if n := len(c.BlobIntents()); (n == 1) != tc.wantPin {
				t.Fatalf("%d intents signed", n)
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

// Dropping a replica of the hot rollouts previews the copy placement sheds
// and commits the lower count; re-replicating the under-replicated ones
// names the new holder.
func TestBlobReplicaFlows(t *testing.T) {
	c := quiet(t)
	m := newTestModel(t, c, 160, 48, nil)
	press(t, m, blobRow(t, m, decktest.BlobRollouts0)...)
	press(t, m, "D")
	cf := m.modals[len(m.modals)-1].(*widgets.Confirm)
	if cf.Radius.Action.Replicas != 1 || len(cf.Radius.BlobMoves) != 1 || cf.Radius.BlobMoves[0].To != 0 {
		t.Fatalf("drop preview: action %+v, moves %+v", cf.Radius.Action, cf.Radius.BlobMoves)
	}
	press(t, m, "type:YES", "enter")
	if got := viewBlob(c, decktest.BlobRollouts0); got == nil || got.Replicas != 1 {
		t.Fatalf("after dropping a replica: %+v", got)
	}

	press(t, m, "g")
	press(t, m, blobRow(t, m, decktest.BlobRollouts1)[1:]...)
	press(t, m, "r")
	cf = m.modals[len(m.modals)-1].(*widgets.Confirm)
	if cf.Radius.Action.Replicas != 3 || len(cf.Radius.BlobMoves) != 1 || cf.Radius.BlobMoves[0].To != decktest.Gibson {
		t.Fatalf("re-replicate preview: action %+v, moves %+v", cf.Radius.Action, cf.Radius.BlobMoves)
	}
	if f := frame(t, m); !strings.Contains(f, "new copies: gibson") || !strings.Contains(f, "176.0 MiB") {
		t.Fatalf("the modal does not name the new copy and what it fetches:\n%s", f)
	}
	press(t, m, "type:YES", "enter")
	if got := viewBlob(c, decktest.BlobRollouts1); got == nil || got.Replicas != 3 {
		t.Fatalf("after re-replicating: %+v", got)
	}
	if toast := allToasts(m); !strings.Contains(toast, "wants 3 replicas") {
		t.Fatalf("toast %q", toast)
	}
}

// When the view changes between the preview and the YES (the new holder is
// cordoned), the intent is not signed: the new preview is shown with what
// changed, and the second YES signs against it.
func TestBlobStalePreviewAsksAgain(t *testing.T) {
	c := quiet(t)
	m := newTestModel(t, c, 120, 40, nil)
	press(t, m, blobRow(t, m, decktest.BlobRollouts1)...)
	press(t, m, "r")
	first := m.modals[len(m.modals)-1].(*widgets.Confirm)
	next := *c.Snapshot()
	next.Nodes = append(next.Nodes[:0:0], next.Nodes...)
	for i := range next.Nodes {
		if next.Nodes[i].ID == decktest.Gibson {
			next.Nodes[i].Cordoned = true
		}
	}
	c.SetSnapshot(&next)
	press(t, m, "type:YES", "enter")
	if n := len(c.BlobIntents()); n != 0 {
		t.Fatalf("%d intents signed against a stale preview", n)
	}
	again, ok := m.modals[len(m.modals)-1].(*widgets.Confirm)
	if !ok || again == first || len(again.Changed) == 0 {
		t.Fatalf("the new preview is not up with its changes: %T", m.modals)
	}
	if f := frame(t, m); !strings.Contains(f, "changed since you confirmed") || !strings.Contains(f, "gibson") {
		t.Fatalf("the frame does not say what changed:\n%s", f)
	}
	press(t, m, "type:YES", "enter")
	if n := len(c.BlobIntents()); n != 1 {
		t.Fatalf("%d intents signed after confirming the new preview", n)
	}
}

func TestBlobVerbsReadOnly(t *testing.T) {
	c := quiet(t)
	c.SetReadOnly("no operator key")
	m := newTestModel(t, c, 80, 24, nil)
	press(t, m, "!", "p")
	if len(m.modals) != 0 || len(c.BlobIntents()) != 0 {
		t.Fatal("a read-only console opened a blob flow")
	}
	if toast := currentToast(m); !strings.Contains(toast, "read-only") {
		t.Fatalf("toast %q", toast)
	}
}

// The shifted tab keys reach BLOBS and DATAFORTS with or without the DEMO
// tab before them.
func TestBlobTabKeys(t *testing.T) {
	for _, demo := range []bool{false, true} {
		var f api.FaultInjector
		if demo {
			f = &decktest.Faults{}
		}
		m := newTestModel(t, decktest.New(fixtureLogs), 80, 24, f)
		for k, want := range map[string]string{"!": "BLOBS", "@": "DATAFORTS"} {
			press(t, m, k)
			if got := m.screen().Name(); got != want {
				t.Errorf("demo %v: %s opens %s, want %s", demo, k, got, want)
			}
		}
		press(t, m, "`")
		if got := m.screen().Name(); (got == "DEMO") != demo {
			t.Errorf("demo %v: ` opens %s", demo, got)
		}
	}
}
