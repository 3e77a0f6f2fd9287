package tabs

import (
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/widgets"
)

// Membership on screen: the nodes that hold the cluster PSK but no
// certificate the mesh accepts (ClusterSnapshot.PendingNodes) are listed
// under the NODES table as PENDING ADMISSION; `+` admits one (admit-node,
// by the key it presented) and `V` revokes any node (revoke-node). Both are
// registry events: the root runs them through the one action flow.

// Row keys of the pending section: member rows are keyed by the bare id.
const (
	pendingKeyPrefix  = "pending:"
	pendingHeadingKey = "pending"
)

// The pending section's own columns: they start at NODES' RTT column
// (after NODE, ID, HEALTH, SUBNET); each is capped (cells) so one long value does
// not push the others off a wide screen.
const (
	pendingSpanColumn     = 4
	PendingAddrMaxCells   = 22
	PendingReasonMaxCells = 64
	PendingSeenByMaxCells = 24
)

// PendingKey is the NODES row key of pending node id.
func PendingKey(id api.NodeID) string { return pendingKeyPrefix + id.String() }

// parsePendingKey reads a key written by PendingKey.
func parsePendingKey(k string) (api.NodeID, bool) {
	rest, ok := strings.CutPrefix(k, pendingKeyPrefix)
	if !ok {
		return 0, false
	}
	id, err := parseKeyID(rest)
	return id, err == nil && id != 0
}

// Pending is the cluster view's entry for pending node id, or nil.
func Pending(s *snapshot.ClusterSnapshot, id api.NodeID) *snapshot.PendingNode {
	if s == nil {
		return nil
	}
	if i, ok := slices.BinarySearchFunc(s.PendingNodes, id, func(p snapshot.PendingNode, id api.NodeID) int {
		return cmpID(p.ID, id)
	}); ok {
		return &s.PendingNodes[i]
	}
	return nil
}

// Revocation is the ledger's revocation of id, if any.
func Revocation(s *snapshot.ClusterSnapshot, id api.NodeID) (snapshot.Revoked, bool) {
	if s == nil {
		return snapshot.Revoked{}, false
	}
	if i, ok := slices.BinarySearchFunc(s.Revoked, id, func(r snapshot.Revoked, id api.NodeID) int {
		return cmpID(r.Node, id)
	}); ok {
		return s.Revoked[i], true
	}
	return snapshot.Revoked{}, false
}

// Admission is the ledger's admission of id for key, if one stands at now
// (an admission of another key, or one that lapsed, does not count).
func Admission(s *snapshot.ClusterSnapshot, id api.NodeID, key []byte, now time.Time) (snapshot.Admitted, bool) {
	if s == nil {
		return snapshot.Admitted{}, false
	}
	i, ok := slices.BinarySearchFunc(s.Admitted, id, func(a snapshot.Admitted, id api.NodeID) int { return cmpID(a.Node, id) })
	if !ok {
		return snapshot.Admitted{}, false
	}
	a := s.Admitted[i]
	if !ed25519.PublicKey(a.Key).Equal(ed25519.PublicKey(key)) || !a.NotAfter.After(now) {
		return snapshot.Admitted{}, false
	}
	return a, true
}

func cmpID(a, b api.NodeID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// PendingState is a pending node's state word and tone: revoked (the
// ledger keeps it out for good), admitted (the ledger admits the key it
// presents; it joins as soon as the mesh reassesses it) or pending.
func PendingState(s *snapshot.ClusterSnapshot, p *snapshot.PendingNode, now time.Time) (string, common.Tone) {
	if _, ok := Revocation(s, p.ID); ok {
		return "revoked", common.ToneDanger
	}
	if _, ok := Admission(s, p.ID, p.Key, now); ok {
		return "admitted", common.ToneOK
	}
	return "pending", common.ToneWarn
}

// KeyDerivesToID reports whether key is an ed25519 key whose node id is id:
// the admit-node event carries both, and the command plane refuses a pair
// that does not match.
func KeyDerivesToID(key []byte, id api.NodeID) bool {
	return len(key) == ed25519.PublicKeySize && identity.IDFromPublicKey(key) == id
}

// SeenByLabel names the members reporting a pending node, joined with
// commas, in at most max cells: the names that fit, then "+N" for the rest.
func SeenByLabel(s *snapshot.ClusterSnapshot, by []api.NodeID, max int) string {
	out := ""
	for i, id := range by {
		next := NodeName(s, id)
		if i > 0 {
			next = out + "," + next
		}
		suffix := ""
		if rest := len(by) - i - 1; rest > 0 {
			suffix = fmt.Sprintf(",+%d", rest)
		}
		if i > 0 && widgets.Width(next+suffix) > max {
			return widgets.Truncate(fmt.Sprintf("%s,+%d", out, len(by)-i), max)
		}
		out = next
	}
	return widgets.Truncate(out, max)
}

// PendingRows turns the snapshot's pending nodes into the NODES pending
// section (pure; unit tested): a PENDING ADMISSION heading naming the
// section's own columns, then one row per pending node — short id, its
// state, then its address, how long it has waited, why it is not a member
// and the members that see it, padded so they line up. The reason comes
// before the reporters so it still shows at 80 columns. None when no node
// waits.
func PendingRows(s *snapshot.ClusterSnapshot, now time.Time) []widgets.Row {
	if len(s.PendingNodes) == 0 {
		return nil
	}
	type fields struct{ addr, wait, reason, by string }
	fs := make([]fields, len(s.PendingNodes))
	aw, ww, rw := widgets.Width("ADDRESS"), widgets.Width("WAITING"), widgets.Width("REASON")
	for i := range s.PendingNodes {
		p := &s.PendingNodes[i]
		f := fields{
			addr:   widgets.Truncate(orDash(widgets.Printable(p.Addr)), PendingAddrMaxCells),
			wait:   widgets.Since(now, p.FirstSeen),
			reason: widgets.Truncate(orDash(widgets.Printable(p.Reason)), PendingReasonMaxCells),
			by:     SeenByLabel(s, p.SeenBy, PendingSeenByMaxCells),
		}
		aw, ww, rw = max(aw, widgets.Width(f.addr)), max(ww, widgets.Width(f.wait)), max(rw, widgets.Width(f.reason))
		fs[i] = f
	}
	headCells := append(make([]string, pendingSpanColumn),
		widgets.Fit("ADDRESS", aw), widgets.FitRight("WAITING", ww), widgets.Fit("REASON", rw), "SEEN BY")
	headCells[0] = fmt.Sprintf("PENDING ADMISSION · %d", len(s.PendingNodes))
	headTones := make([]common.Tone, len(headCells))
	for i := range headTones {
		headTones[i] = common.ToneHeader
	}
	headTones[0] = common.ToneWarn
	rows := make([]widgets.Row, 0, len(s.PendingNodes)+1)
	rows = append(rows, widgets.Row{Key: pendingHeadingKey, Heading: true, Span: pendingSpanColumn, Cells: headCells, Tones: headTones})
	for i := range s.PendingNodes {
		p, f := &s.PendingNodes[i], fs[i]
		state, tone := PendingState(s, p, now)
		rows = append(rows, widgets.Row{
			Key:  PendingKey(p.ID),
			Span: pendingSpanColumn,
			// Not a member: no subnet of its own in the view yet.
			Cells: []string{p.ID.Short(), p.ID.Short(), state, "—",
				widgets.Fit(f.addr, aw), widgets.FitRight(f.wait, ww), widgets.Fit(f.reason, rw), f.by},
			Tones: []common.Tone{tone, common.ToneDim, tone, common.ToneDim, common.ToneNormal, tone, tone, common.ToneDim},
		})
	}
	return rows
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// PendingDetail renders a pending node's page (pure): who it is (full id,
// the key it presented and whether that key derives to the id), where and
// since when the mesh sees it, why it is not a member, and what the ledger
// says of it.
func PendingDetail(th *common.Theme, k *common.KeyMap, s *snapshot.ClusterSnapshot, p *snapshot.PendingNode, now time.Time, w int) []string {
	word, tone := PendingState(s, p, now)
	state := word
	switch word {
	case "pending":
		state += " · not a member: nothing it sends reaches a service"
	case "admitted":
		state += " · the ledger admits its key: it joins when the mesh reassesses it"
	case "revoked":
		state += " · the ledger keeps it out for good"
	}
	keyText, keyCheck, keyTone := "—", "✗ no ed25519 key reported: it cannot be admitted", common.ToneDanger
	if len(p.Key) == ed25519.PublicKeySize {
		keyText = identity.PublicKeyString(p.Key)
		keyCheck = "✗ does not derive to the id: it cannot be admitted"
	}
	if KeyDerivesToID(p.Key, p.ID) {
		keyCheck, keyTone = "✓ derives to the id (the one the node logs while it waits)", common.ToneOK
	}
	var by []string
	for _, id := range p.SeenBy {
		by = append(by, NodeName(s, id)+" "+id.Short())
	}
	seen := func(t time.Time) string { return widgets.Since(now, t) + " ago · " + widgets.Clock(t) }
	lines := []string{
		section(th, "PENDING ADMISSION"),
		kvLine(th, "id", p.ID.String(), common.ToneTitle),
		kvLine(th, "state", state, tone),
		kvLine(th, "key", keyText, common.ToneNormal),
		kvLine(th, "", keyCheck, keyTone),
		kvLine(th, "address", orDash(widgets.Printable(p.Addr)), common.ToneNormal),
		kvLine(th, "first seen", seen(p.FirstSeen), common.ToneNormal),
		kvLine(th, "last seen", seen(p.LastSeen), common.ToneNormal),
		kvLine(th, "seen by", orDash(strings.Join(by, " · ")), common.ToneNormal),
		kvLine(th, "reason", orDash(widgets.Printable(p.Reason)), tone),
		kvLine(th, "ledger", LedgerStanding(s, p.ID, p.Key, now), common.ToneNormal),
		"",
	}
	if word == "revoked" {
		lines = append(lines, th.Paint(common.ToneDim, "a revoked id is never admitted again: the machine needs a new key"))
	} else {
		lines = append(lines,
			th.Paint(common.ToneDim, common.Hint(k.AdmitNode)+": a registry event at the admin threshold (blast radius, then YES)"),
			th.Paint(common.ToneDim, common.Hint(k.RevokeNode)+": keeps it out for good (only a new key is admitted again)"))
	}
	for i, l := range lines {
		lines[i] = widgets.FitANSI(l, w)
	}
	return lines
}

// LedgerStanding says what the admin ledger holds about node id presenting
// key: revoked, admitted (until when), an admission of another key, or
// nothing.
func LedgerStanding(s *snapshot.ClusterSnapshot, id api.NodeID, key []byte, now time.Time) string {
	if r, ok := Revocation(s, id); ok {
		return fmt.Sprintf("revoked by %s %s ago", OperatorName(s, r.By), widgets.Since(now, r.At))
	}
	if a, ok := Admission(s, id, key, now); ok {
		return fmt.Sprintf("admitted by %s %s ago · until %s", OperatorName(s, a.By), widgets.Since(now, a.At), a.NotAfter.UTC().Format(time.DateTime))
	}
	for _, a := range s.Admitted {
		if a.Node == id {
			return "an admission of another key, or one that lapsed: not this node"
		}
	}
	return "no admission, no revocation"
}

// membershipActions maps the admit and revoke keys on node id (a member, a
// pending node, or 0 when nothing is selected). A read-only console asks
// the root like every admin key does, so the refusal is the same one.
func membershipActions(c *common.Context, msg tea.KeyPressMsg, id api.NodeID) (tea.Cmd, bool) {
	k := c.Keys
	var verb api.Verb
	switch {
	case key.Matches(msg, k.AdmitNode):
		verb = api.VerbAdmitNode
	case key.Matches(msg, k.RevokeNode):
		verb = api.VerbRevokeNode
	default:
		return nil, false
	}
	if c.ReadOnly {
		return act(common.ActionMsg{Action: api.Action{Verb: verb, Node: id}}), true
	}
	if verb == api.VerbAdmitNode {
		return AdmitAction(c.Snap, id, c.Now), true
	}
	return RevokeAction(c.Snap, id, c.Now), true
}

// AdmitAction is what the admit key does on id (pure; unit tested): the
// admit-node flow with the key the pending node presented, or a toast
// saying why not (a member, a revoked id, a key that does not derive to
// the id, nothing pending selected).
func AdmitAction(s *snapshot.ClusterSnapshot, id api.NodeID, now time.Time) tea.Cmd {
	if id == 0 {
		return common.Toast("select a node under PENDING ADMISSION to admit it", false)
	}
	if n := s.Node(id); n != nil {
		what := "a member"
		if n.Observer {
			what = "a member (console)"
		}
		return common.Toast(fmt.Sprintf("%s is already %s: admit applies to pending nodes", NodeName(s, id), what), false)
	}
	if r, ok := Revocation(s, id); ok {
		return common.Toast(fmt.Sprintf("%s was revoked by %s %s ago: a revoked id is never admitted again (it needs a new key)",
			id.Short(), OperatorName(s, r.By), widgets.Since(now, r.At)), true)
	}
	p := Pending(s, id)
	if p == nil {
		return common.Toast(fmt.Sprintf("%s is not pending admission", id.Short()), true)
	}
	if !KeyDerivesToID(p.Key, p.ID) {
		return common.Toast(fmt.Sprintf("pending node %s reported no key that derives to its id: it cannot be admitted", id.Short()), true)
	}
	return act(common.ActionMsg{Action: api.Action{Verb: api.VerbAdmitNode, Node: id, OperatorKey: slices.Clone(p.Key)}})
}

// RevokeAction is what the revoke key does on id (pure; unit tested): the
// revoke-node flow for a member (consoles included) or a pending node, or
// a toast for an id revoked already and for this console's own node (that
// would cut this deck off; another console can do it).
func RevokeAction(s *snapshot.ClusterSnapshot, id api.NodeID, now time.Time) tea.Cmd {
	if id == 0 {
		return common.Toast("select a node to revoke", false)
	}
	name := NodeName(s, id)
	if r, ok := Revocation(s, id); ok {
		return common.Toast(fmt.Sprintf("%s is already revoked (by %s %s ago)", name, OperatorName(s, r.By), widgets.Since(now, r.At)), false)
	}
	if id == s.Self {
		return common.Toast(fmt.Sprintf("%s is this console's own node: revoking it would cut this deck off the mesh (revoke it from another console)", name), true)
	}
	return act(common.ActionMsg{Action: api.Action{Verb: api.VerbRevokeNode, Node: id}})
}

// pendingBindings are the keys that act on a pending node.
func pendingBindings(k *common.KeyMap) []key.Binding {
	return []key.Binding{k.Enter, k.AdmitNode, k.RevokeNode, k.Freeze, k.Thaw, k.FlushAvoid}
}

// pendingKeys handles a key on pending node id (NODES' pending rows and
// its page): admit, revoke and the cluster-wide verbs; a node verb says the
// node is not a member yet.
func pendingKeys(c *common.Context, msg tea.KeyPressMsg, id api.NodeID) tea.Cmd {
	if cmd, ok := membershipActions(c, msg, id); ok {
		return cmd
	}
	if cmd, ok := clusterActions(c.Keys, msg); ok {
		return cmd
	}
	if _, ok := nodeActions(c.Keys, msg, id); ok {
		return common.Toast(fmt.Sprintf("%s is pending admission, not a member: %s, %s", id.Short(),
			common.Hint(c.Keys.AdmitNode), common.Hint(c.Keys.RevokeNode)), false)
	}
	return nil
}
