package deck

import (
	"bytes"
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"

	"github.com/deck-mesh/deck/deck/decktest"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/tabs"
	"github.com/deck-mesh/deck/widgets"
)

// nodesRow is the NODES line of frame f whose first cell is label.
func nodesRow(f, label string) string { return e2eRow(f, label) }

// TestAdmitPendingNodeFlow: on NODES' pending row for hosaka, `+` opens the
// confirmation with the real projection's blast radius; YES commits an
// admit-node event for hosaka's id and the key it presented, AUDIT records
// it, and the row then reads "admitted" (the ledger admits its key; it joins
// when the mesh reassesses it).
func TestAdmitPendingNodeFlow(t *testing.T) {
	c := quiet(t)
	m := newTestModel(t, c, 80, 24, nil)
	press(t, m, "G") // hosaka: the last pending row
	if sel := m.screen().Selection(); sel.Node != decktest.Hosaka {
		t.Fatalf("G selected %+v, want hosaka's pending row", sel)
	}
	press(t, m, "+")
	if _, ok := m.modals[len(m.modals)-1].(*widgets.Confirm); !ok || len(m.modals) != 1 {
		t.Fatalf("+ opened %T (toasts %q), want the confirm modal", m.modals, allToasts(m))
	}
	f := frame(t, m)
	short := decktest.Hosaka.Short()
	for _, want := range []string{"CONFIRM admit-node " + short, "This action affects 1 node", "admits " + decktest.Hosaka.String(),
		"admits key " + identity.PublicKeyString(decktest.NodeKey("hosaka").Public)} {
		if !strings.Contains(f, want) {
			t.Fatalf("confirm modal lacks %q:\n%s", want, f)
		}
	}
	if len(c.Committed()) != 0 {
		t.Fatal("committed before YES")
	}
	press(t, m, "type:YES", "enter")
	got := c.Committed()
	if len(got) != 1 || got[0].Verb != api.VerbAdmitNode || got[0].Node != decktest.Hosaka ||
		!bytes.Equal(got[0].OperatorKey, decktest.NodeKey("hosaka").Public) {
		t.Fatalf("committed %+v, want admit-node of hosaka with its key (toasts %q)", got, allToasts(m))
	}
	if toast := currentToast(m); !strings.Contains(toast, "committed admit-node "+short) {
		t.Fatalf("toast %q", toast)
	}
	if s := c.Snapshot(); len(s.Admitted) != 1 || s.Admitted[0].Node != decktest.Hosaka {
		t.Fatalf("the fold's admissions %+v", s.Admitted)
	}
	m.Update(snapMsg{c.Snapshot()}) // the watch's delivery (its re-arming command is not run here)
	if row := nodesRow(frame(t, m), short); !strings.Contains(row, "admitted") {
		t.Fatalf("hosaka's row after the admission: %q", row)
	}
	press(t, m, "0")
	if f := frame(t, m); !strings.Contains(f, "admit-node") || !strings.Contains(f, "node "+short) {
		t.Fatalf("AUDIT does not list the admission:\n%s", f)
	}
}

// TestAdmitAtThresholdTwoCollectsSignatures: admit-node is a registry
// event at the admin threshold: with two, YES opens the signature
// collector, and only the co-signature commits it.
func TestAdmitAtThresholdTwoCollectsSignatures(t *testing.T) {
	c := quietWith(t, 2, 0)
	m := newTestModel(t, c, 100, 40, nil)
	press(t, m, "G", "+", "type:YES", "enter")
	sc, ok := m.modals[len(m.modals)-1].(*widgets.SigCollector)
	if !ok {
		t.Fatalf("admin threshold 2 did not open the signature collector: %T (toasts %q)", m.modals, allToasts(m))
	}
	if len(c.Committed()) != 0 {
		t.Fatal("committed on one signature")
	}
	run(t, m, tea.PasteMsg{Content: widgets.FormatSignature(decktest.SignAs("carol", sc.Payload))})
	press(t, m, "enter", "enter")
	if got := c.Committed(); len(got) != 1 || got[0].Verb != api.VerbAdmitNode || got[0].Node != decktest.Hosaka {
		t.Fatalf("committed %+v (toasts %q, collector err %q)", got, allToasts(m), sc.In.Err)
	}
}

// TestRevokeNodeFlow: `V` revokes a member (straylight) and a pending node
// (hosaka) through the confirmation; the member's row then reads "revoked".
// The revoke's blast radius is the real projection: what straylight ran and
// held moves elsewhere.
func TestRevokeNodeFlow(t *testing.T) {
	t.Run("member", func(t *testing.T) {
		c := quiet(t)
		m := newTestModel(t, c, 80, 24, nil)
		press(t, m, "j", "j", "j", "j", "j", "V") // straylight
		if _, ok := m.modals[len(m.modals)-1].(*widgets.Confirm); !ok {
			t.Fatalf("V opened %T (toasts %q), want the confirm modal", m.modals, allToasts(m))
		}
		f := frame(t, m)
		for _, want := range []string{"CONFIRM revoke-node straylight", "revokes straylight for good", "daemons:"} {
			if !strings.Contains(f, want) {
				t.Fatalf("confirm modal lacks %q:\n%s", want, f)
			}
		}
		press(t, m, "type:YES", "enter")
		if got := c.Committed(); len(got) != 1 || got[0].Verb != api.VerbRevokeNode || got[0].Node != decktest.Straylight {
			t.Fatalf("committed %+v (toasts %q)", got, allToasts(m))
		}
		m.Update(snapMsg{c.Snapshot()})
		if row := nodesRow(frame(t, m), "straylight"); !strings.Contains(row, "revoked") {
			t.Fatalf("straylight's row after the revocation: %q", row)
		}
		// Revoked for good: V again says so and opens nothing.
		press(t, m, "V")
		if toasts := allToasts(m); len(m.modals) != 0 || !strings.Contains(toasts, "straylight is already revoked (by alice") {
			t.Fatalf("V on a revoked node: modals %T, toasts %q", m.modals, toasts)
		}
	})
	t.Run("pending", func(t *testing.T) {
		c := quiet(t)
		m := newTestModel(t, c, 80, 24, nil)
		press(t, m, "G", "V", "type:YES", "enter")
		if got := c.Committed(); len(got) != 1 || got[0].Verb != api.VerbRevokeNode || got[0].Node != decktest.Hosaka {
			t.Fatalf("committed %+v (toasts %q)", got, allToasts(m))
		}
	})
}

// TestRevokeAnotherConsole: a console's row takes V (revoking its node id
// cuts that console off) although the node verbs refuse consoles; this
// console's own row does not (it would cut this deck off).
func TestRevokeAnotherConsole(t *testing.T) {
	c := quiet(t)
	const otherConsole api.NodeID = 0x0c0c0c0c0c0c0c0c
	s := *c.Snapshot()
	s.Nodes = append([]snapshot.NodeView(nil), s.Nodes...)
	other := s.Nodes[0] // the fixture's first node is this console
	other.ID, other.Label = otherConsole, "bob-laptop"
	s.Nodes = append(s.Nodes, other)
	c.SetSnapshot(&s)
	m := newTestModel(t, c, 80, 24, nil)
	for tabs.NodeName(m.c.Snap, m.screen().Selection().Node) != "bob-laptop" {
		press(t, m, "j")
	}
	press(t, m, "c") // a node verb: refused on a console
	if len(m.modals) != 0 || !strings.Contains(currentToast(m), "is a console") {
		t.Fatalf("cordon on a console: modals %T, toast %q", m.modals, currentToast(m))
	}
	press(t, m, "V", "type:YES", "enter")
	if got := c.Committed(); len(got) != 1 || got[0].Verb != api.VerbRevokeNode || got[0].Node != otherConsole {
		t.Fatalf("committed %+v (toasts %q)", got, allToasts(m))
	}
	press(t, m, "j") // deck (this console)
	if m.screen().Selection().Node != decktest.Console {
		t.Fatalf("cursor on %+v, want this console", m.screen().Selection())
	}
	press(t, m, "V")
	if toasts := allToasts(m); len(m.modals) != 0 || !strings.Contains(toasts, "deck is this console's own node") {
		t.Fatalf("V on this console: modals %T, toasts %q", m.modals, toasts)
	}
	if len(c.Committed()) != 1 {
		t.Fatalf("committed %+v", c.Committed())
	}
}

// TestAdmitRefusals: `+` on a member says it is one, on molly (revoked,
// still pending) that a revoked id never comes back; neither opens a flow.
// A node verb on a pending row says the node is not a member yet.
func TestAdmitRefusals(t *testing.T) {
	c := quiet(t)
	m := newTestModel(t, c, 80, 24, nil)
	press(t, m, "j", "j", "+") // gibson
	if len(m.modals) != 0 || !strings.Contains(currentToast(m), "gibson is already a member") {
		t.Fatalf("+ on a member: modals %T, toast %q", m.modals, currentToast(m))
	}
	press(t, m, "G", "k") // molly
	if m.screen().Selection().Node != decktest.Molly {
		t.Fatalf("cursor on %+v, want molly", m.screen().Selection())
	}
	press(t, m, "+")
	if len(m.modals) != 0 || !strings.Contains(allToasts(m), "never admitted again") {
		t.Fatalf("+ on a revoked node: modals %T, toasts %q", m.modals, allToasts(m))
	}
	press(t, m, "c")
	if len(m.modals) != 0 || !strings.Contains(currentToast(m), "pending admission, not a member") {
		t.Fatalf("cordon on a pending node: modals %T, toast %q", m.modals, currentToast(m))
	}
	if len(c.Committed()) != 0 {
		t.Fatalf("committed %+v", c.Committed())
	}
}

// TestMembershipKeysReadOnly: a read-only console refuses admit and revoke
// exactly as it refuses every admin key.
func TestMembershipKeysReadOnly(t *testing.T) {
	c := quiet(t)
	c.SetReadOnly("no operator key")
	m := newTestModel(t, c, 80, 24, nil)
	press(t, m, "G", "+", "V", "g", "V", "+")
	if len(m.modals) != 0 {
		t.Fatalf("a read-only console opened %T", m.modals)
	}
	toasts := allToasts(m)
	for _, want := range []string{"read-only (no operator key): admit-node is disabled", "read-only (no operator key): revoke-node is disabled"} {
		if strings.Count(toasts, want) != 2 {
			t.Fatalf("toasts %q, want %q twice", toasts, want)
		}
	}
}

// TestPendingPage: Enter on a pending row opens its page (full id, key,
// reporters, reason); `+` there admits it, and the page follows the node
// once it is a member.
func TestPendingPage(t *testing.T) {
	c := quiet(t)
	m := newTestModel(t, c, 120, 40, nil)
	press(t, m, "G", "enter")
	f := frame(t, m)
	for _, want := range []string{"PENDING " + decktest.Hosaka.Short(), decktest.Hosaka.String(), "✓ derives to the id",
		"deck 0dec0d · gibson 1a2b3c · wintermute 2b3c4d", "no certificate and no admission in the ledger", "no admission, no revocation"} {
		if !strings.Contains(f, want) {
			t.Fatalf("pending page lacks %q:\n%s", want, f)
		}
	}
	press(t, m, "+", "type:YES", "enter")
	if got := c.Committed(); len(got) != 1 || got[0].Verb != api.VerbAdmitNode || got[0].Node != decktest.Hosaka {
		t.Fatalf("committed %+v (toasts %q)", got, allToasts(m))
	}
	m.Update(snapMsg{c.Snapshot()})
	if f := frame(t, m); !strings.Contains(f, "admitted by alice") {
		t.Fatalf("the page does not show the admission:\n%s", f)
	}
	// The node joins: its snapshot arrives and it leaves the pending list.
	s := *c.Snapshot()
	joined := s.Nodes[1]
	joined.ID, joined.Label = decktest.Hosaka, "hosaka"
	s.Nodes = append(append([]snapshot.NodeView(nil), s.Nodes...), joined)
	s.PendingNodes = s.PendingNodes[:1] // molly stays
	c.SetSnapshot(&s)
	m.Update(snapMsg{c.Snapshot()})
	if f := frame(t, m); !strings.Contains(f, "NODE hosaka") || !strings.Contains(f, "FACTS") {
		t.Fatalf("the page did not turn into the member's:\n%s", f)
	}
}
