package tabs

import (
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"

	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/deck/decktest"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/widgets"
)

func TestPendingRows(t *testing.T) {
	s := decktest.Snapshot()
	rows := PendingRows(s, decktest.T0)
	if len(rows) != 3 {
		t.Fatalf("%d rows, want a heading and molly, hosaka", len(rows))
	}
	head, molly, hosaka := rows[0], rows[1], rows[2]
	if !head.Heading || head.Cells[0] != "PENDING ADMISSION · 2" || head.Span != pendingSpanColumn || head.Tones[0] != common.ToneWarn {
		t.Fatalf("heading %+v", head)
	}
	if molly.Key != PendingKey(decktest.Molly) || hosaka.Key != PendingKey(decktest.Hosaka) {
		t.Fatalf("keys %q %q: rows follow the view's id order", molly.Key, hosaka.Key)
	}
	trim := func(c []string) []string {
		out := make([]string, len(c))
		for i := range c {
			out[i] = strings.TrimSpace(c[i])
		}
		return out
	}
	want := map[string][]string{
		"molly": {decktest.Molly.Short(), decktest.Molly.Short(), "revoked", "—", "203.0.113.9:41641", "1h00m",
			"node revoked by the admin ledger (2026-03-14T08:26:53Z)", "sprawl"},
		"hosaka": {decktest.Hosaka.Short(), decktest.Hosaka.Short(), "pending", "—", "10.7.0.77:7946", "6m41s",
			"no certificate and no admission in the ledger", "deck,gibson,wintermute"},
	}
	for name, r := range map[string]widgets.Row{"molly": molly, "hosaka": hosaka} {
		if got := strings.Join(trim(r.Cells), "|"); got != strings.Join(want[name], "|") {
			t.Errorf("%s row %q\nwant       %q", name, got, strings.Join(want[name], "|"))
		}
		if r.Span != pendingSpanColumn || r.Heading {
			t.Errorf("%s row span %d heading %v", name, r.Span, r.Heading)
		}
	}
	if molly.Tones[2] != common.ToneDanger || hosaka.Tones[2] != common.ToneWarn {
		t.Errorf("state tones %v %v: revoked is danger, pending amber", molly.Tones[2], hosaka.Tones[2])
	}
	// The section's own columns line up: every padded cell is as wide in
	// every row, the heading included.
	for i := pendingSpanColumn; i < len(head.Cells)-1; i++ {
		w := widgets.Width(head.Cells[i])
		for _, r := range rows[1:] {
			if widgets.Width(r.Cells[i]) != w {
				t.Errorf("column %d: %q is %d cells, heading %q is %d", i, r.Cells[i], widgets.Width(r.Cells[i]), head.Cells[i], w)
			}
		}
	}
	none := *s
	none.PendingNodes = nil
	if got := PendingRows(&none, decktest.T0); got != nil {
		t.Fatalf("no pending nodes: %d rows", len(got))
	}
}

// TestPendingStateFollowsTheLedger: a pending node the ledger admitted (for
// the key it presents, not lapsed) reads "admitted"; an admission of
// another key or one that lapsed does not count.
func TestPendingStateFollowsTheLedger(t *testing.T) {
	s := *decktest.Snapshot()
	p := Pending(&s, decktest.Hosaka)
	if p == nil {
		t.Fatal("hosaka is not pending in the fixture")
	}
	now := decktest.T0
	for _, tc := range []struct {
		name string
		adm  snapshot.Admitted
		want string
		tone common.Tone
	}{
		{"not admitted", snapshot.Admitted{}, "pending", common.ToneWarn},
		{"admitted", snapshot.Admitted{Node: p.ID, Key: p.Key, NotAfter: now.Add(time.Hour)}, "admitted", common.ToneOK},
		{"another key", snapshot.Admitted{Node: p.ID, Key: decktest.NodeKey("impostor").Public, NotAfter: now.Add(time.Hour)}, "pending", common.ToneWarn},
		{"lapsed", snapshot.Admitted{Node: p.ID, Key: p.Key, NotAfter: now}, "pending", common.ToneWarn},
	} {
		s.Admitted = nil
		if tc.adm.Node != 0 {
			s.Admitted = []snapshot.Admitted{tc.adm}
		}
		if got, tone := PendingState(&s, p, now); got != tc.want || tone != tc.tone {
			t.Errorf("%s: %s/%v, want %s/%v", tc.name, got, tone, tc.want, tc.tone)
		}
	}
}

func TestSeenByLabel(t *testing.T) {
	s := decktest.Snapshot()
	ids := []api.NodeID{decktest.Gibson, decktest.Wintermute, decktest.Neuromancer, decktest.Straylight}
	for _, tc := range []struct {
		by   []api.NodeID
		max  int
		want string
	}{
		{nil, 24, ""},
		{ids[:1], 24, "gibson"},
		{ids[:2], 24, "gibson,wintermute"},
		{ids, 24, "gibson,wintermute,+2"},
		{ids, 12, "gibson,+3"},
		{ids[:1], 4, "gib…"},
		{[]api.NodeID{0x1234560000000000}, 24, "123456"}, // not in the view: its short id
	} {
		if got := SeenByLabel(s, tc.by, tc.max); got != tc.want || widgets.Width(got) > tc.max {
			t.Errorf("%d reporters in %d cells: %q, want %q", len(tc.by), tc.max, got, tc.want)
		}
	}
}

// TestNodeRowsMarkRevokedMembers: a member the ledger revoked reads
// "revoked" (danger) while the view still lists it.
func TestNodeRowsMarkRevokedMembers(t *testing.T) {
	s := *decktest.Snapshot()
	s.Revoked = append(append([]snapshot.Revoked(nil), s.Revoked...), snapshot.Revoked{Node: decktest.Chiba})
	for _, r := range NodeRows(&s) {
		revoked := r.Key == decktest.Chiba.String()
		if (r.Cells[2] == "revoked") != revoked || (revoked && r.Tones[2] != common.ToneDanger) {
			t.Errorf("row %v tone %v", r.Cells[:3], r.Tones[2])
		}
	}
}

// emitted runs cmd and returns its message.
func emitted(t *testing.T, cmd tea.Cmd) tea.Msg {
	t.Helper()
	if cmd == nil {
		t.Fatal("no command")
	}
	return cmd()
}

func TestAdmitAndRevokeActions(t *testing.T) {
	s := *decktest.Snapshot()
	// A pending node whose reported key does not derive to its id (a
	// member's report cannot make the console admit the wrong key).
	forged := snapshot.PendingNode{PendingPeer: snapshot.PendingPeer{ID: 0x0100000000000001, Key: decktest.NodeKey("other").Public}}
	s.PendingNodes = append([]snapshot.PendingNode{forged}, s.PendingNodes...)
	now := decktest.T0
	tests := []struct {
		name  string
		cmd   tea.Cmd
		want  *api.Action // nil: a toast
		toast string
	}{
		{"admit pending", AdmitAction(&s, decktest.Hosaka, now),
			&api.Action{Verb: api.VerbAdmitNode, Node: decktest.Hosaka, OperatorKey: decktest.NodeKey("hosaka").Public}, ""},
		{"admit member", AdmitAction(&s, decktest.Gibson, now), nil, "gibson is already a member"},
		{"admit console", AdmitAction(&s, decktest.Console, now), nil, "deck is already a member (console)"},
		{"admit revoked", AdmitAction(&s, decktest.Molly, now), nil, "revoked by carol 1h00m ago: a revoked id is never admitted again"},
		{"admit forged key", AdmitAction(&s, forged.ID, now), nil, "no key that derives to its id"},
		{"admit unknown", AdmitAction(&s, 0x0200000000000002, now), nil, "not pending admission"},
		{"admit nothing", AdmitAction(&s, 0, now), nil, "select a node under PENDING ADMISSION"},
		{"revoke member", RevokeAction(&s, decktest.Straylight, now), &api.Action{Verb: api.VerbRevokeNode, Node: decktest.Straylight}, ""},
		{"revoke pending", RevokeAction(&s, decktest.Hosaka, now), &api.Action{Verb: api.VerbRevokeNode, Node: decktest.Hosaka}, ""},
		{"revoke revoked", RevokeAction(&s, decktest.Molly, now), nil, "already revoked (by carol 1h00m ago)"},
		{"revoke this console", RevokeAction(&s, decktest.Console, now), nil, "this console's own node"},
		{"revoke nothing", RevokeAction(&s, 0, now), nil, "select a node to revoke"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			switch msg := emitted(t, tc.cmd).(type) {
			case common.ActionMsg:
				a := msg.Action
				if tc.want == nil || a.Verb != tc.want.Verb || a.Node != tc.want.Node || string(a.OperatorKey) != string(tc.want.OperatorKey) {
					t.Fatalf("action %+v, want %+v", a, tc.want)
				}
			case common.ToastMsg:
				if tc.want != nil || !strings.Contains(msg.Text, tc.toast) {
					t.Fatalf("toast %q, want %q / action %+v", msg.Text, tc.toast, tc.want)
				}
			default:
				t.Fatalf("message %T", msg)
			}
		})
	}
	// The admit action's key is a copy: the snapshot is shared and immutable.
	a := emitted(t, AdmitAction(&s, decktest.Hosaka, now)).(common.ActionMsg).Action
	a.OperatorKey[0] ^= 0xff
	if !KeyDerivesToID(Pending(&s, decktest.Hosaka).Key, decktest.Hosaka) {
		t.Fatal("the action shares the snapshot's key bytes")
	}
}

func TestPendingDetail(t *testing.T) {
	th := common.NewTheme(colorprofile.NoTTY)
	k := common.DefaultKeyMap()
	s := decktest.Snapshot()
	text := strings.Join(PendingDetail(th, k, s, Pending(s, decktest.Hosaka), decktest.T0, 100), "\n")
	for _, want := range []string{decktest.Hosaka.String(), identity.PublicKeyString(decktest.NodeKey("hosaka").Public), "✓ derives to the id",
		"first seen 6m41s ago · 09:20:12", "last seen  2s ago · 09:26:51", "deck 0dec0d · gibson 1a2b3c · wintermute 2b3c4d",
		"no admission, no revocation", "+ admit node"} {
		if !strings.Contains(text, want) {
			t.Errorf("detail lacks %q:\n%s", want, text)
		}
	}
	text = strings.Join(PendingDetail(th, k, s, Pending(s, decktest.Molly), decktest.T0, 100), "\n")
	if !strings.Contains(text, "revoked by carol 1h00m ago") || !strings.Contains(text, "never admitted again") || strings.Contains(text, "+ admit node") {
		t.Errorf("molly's detail:\n%s", text)
	}
	bad := snapshot.PendingNode{PendingPeer: snapshot.PendingPeer{ID: 0x0100000000000001, Key: decktest.NodeKey("other").Public}}
	if text := strings.Join(PendingDetail(th, k, s, &bad, decktest.T0, 100), "\n"); !strings.Contains(text, "✗ does not derive to the id") {
		t.Errorf("a key that does not derive:\n%s", text)
	}
	bad.Key = nil
	if text := strings.Join(PendingDetail(th, k, s, &bad, decktest.T0, 100), "\n"); !strings.Contains(text, "✗ no ed25519 key reported") {
		t.Errorf("no key:\n%s", text)
	}
}

// TestAttackPendingTextCannotInjectTerminalEscapes: a pending node's
// address and reason reach the console from members' gossiped snapshots;
// escape sequences in them (a screen clear, an OSC 52 clipboard write) are
// drawn as U+FFFD, never written to the operator's terminal.
func TestAttackPendingTextCannotInjectTerminalEscapes(t *testing.T) {
	s := *decktest.Snapshot()
	evil := snapshot.PendingNode{PendingPeer: snapshot.PendingPeer{ID: decktest.Hosaka, Key: decktest.NodeKey("hosaka").Public,
		Addr: "10.0.0.1:1\x1b[2J", Reason: "ok\x1b]52;c;cm0gLXJmIC8K\x07\u009b31m"}, SeenBy: []api.NodeID{decktest.Gibson}}
	s.PendingNodes = []snapshot.PendingNode{evil}
	var drawn []string
	for _, r := range PendingRows(&s, decktest.T0) {
		drawn = append(drawn, r.Cells...)
	}
	th := common.NewTheme(colorprofile.NoTTY)
	drawn = append(drawn, PendingDetail(th, common.DefaultKeyMap(), &s, &s.PendingNodes[0], decktest.T0, 120)...)
	for _, text := range drawn {
		if strings.ContainsAny(text, "\x1b\x07\u009b") {
			t.Fatalf("control characters reach the terminal: %q", text)
		}
	}
	if !strings.Contains(strings.Join(drawn, "\n"), "ok\uFFFD]52;c;") {
		t.Fatalf("the reason is not shown (escaped): %q", drawn)
	}
}
