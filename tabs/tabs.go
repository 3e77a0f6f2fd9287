// Package tabs holds the deck's screens: one file per tab (NET.MAP, NODES,
// DAEMONS, GROUPS, CHAINS, MIGRATIONS, MAINTENANCE, BEHAVIOR, LOGS, AUDIT,
// FAILURES, MESHDB, DEMO, BLOBS, DATAFORTS) and per drill-down page (node,
// daemon, audit event, failure, blob). Each screen turns snapshot and store data into rows with pure
// functions (unit tested without a terminal) and draws them through the
// shared widgets; actions are requested from the root with common messages,
// never executed here.
package tabs

import (
	"strconv"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/widgets"
)

// Tab is one screen (a tab or a drill-down page).
type Tab interface {
	// Name is the tab-strip label or the page breadcrumb.
	Name() string
	// Sync is called after the snapshot or a store changed.
	Sync()
	// HandleKey handles a key the root did not consume.
	HandleKey(msg tea.KeyPressMsg) tea.Cmd
	// View renders exactly h lines of exactly w cells.
	View(w, h int) string
	// Bindings are the screen's own keys (footer chips and help).
	Bindings() []key.Binding
	// Selection is what the cursor points at.
	Selection() common.Selection
}

// Filterable screens take the shared `/` filter.
type Filterable interface {
	SetFilter(q string)
	Filter() string
}

// Capturing screens take every key while Capturing (a text editor with
// focus, MESHDB's): the root keeps only ctrl+c and tab switching, and
// hands them pastes (Paste).
type Capturing interface {
	Capturing() bool
	Paste(s string)
}

// Escaper screens may take Esc before the root goes back with it (MESHDB
// cancels a running query); true: taken.
type Escaper interface {
	Esc() bool
}

// Refresher screens fetch what the snapshot does not carry (the blob
// page asks the holders): the root calls Refresh when the screen opens and
// on every idle tick while it is shown, and runs the command it returns.
type Refresher interface {
	Refresh() tea.Cmd
}

// Receiver screens consume root messages (e.g. BEHAVIOR's history replies).
type Receiver interface {
	Receive(msg tea.Msg) tea.Cmd
}

// NodeName is the display name of a node: its label, or its short id.
func NodeName(s *snapshot.ClusterSnapshot, id api.NodeID) string {
	if id == 0 {
		return "—"
	}
	if s != nil {
		if n := s.Node(id); n != nil && n.Label != "" {
			return n.Label
		}
	}
	return id.Short()
}

// OperatorName is the registered name of an operator id, or its short id.
func OperatorName(s *snapshot.ClusterSnapshot, id api.NodeID) string {
	if s != nil {
		for _, op := range s.Operators {
			if op.ID == id {
				return op.Name
			}
		}
	}
	return id.Short()
}

// HealthTone maps node health to a tone.
func HealthTone(h snapshot.Health) common.Tone {
	switch h {
	case snapshot.Suspect:
		return common.ToneWarn
	case snapshot.Unreachable:
		return common.ToneDanger
	}
	return common.ToneOK
}

// MaintLabel is the short maintenance state used in tables.
func MaintLabel(m snapshot.MaintState) string {
	switch m {
	case snapshot.MaintActive:
		return "active"
	case snapshot.MaintEntering:
		return "entering"
	case snapshot.MaintMaintenance:
		return "maint"
	case snapshot.MaintExiting:
		return "exiting"
	case snapshot.MaintRecovery:
		return "recovery"
	case snapshot.MaintDrainFailed:
		return "drain-failed"
	}
	return "unknown"
}

// MaintTone maps a maintenance state to a tone.
func MaintTone(m snapshot.MaintState) common.Tone {
	switch m {
	case snapshot.MaintActive:
		return common.ToneNormal
	case snapshot.MaintDrainFailed:
		return common.ToneDanger
	}
	return common.ToneWarn
}

// headerLine renders a tab's one-line summary: left text and right text.
func headerLine(th *common.Theme, left, right string, w int) string {
	rw := widgets.Width(right)
	if rw >= w {
		return th.Paint(common.ToneDim, widgets.Fit(right, w))
	}
	left = widgets.Fit(left, w-rw-1)
	return th.Paint(common.ToneTitle, left) + " " + th.Paint(common.ToneDim, right)
}

// filterNote is the right side of a header: the active filter and counts.
func filterNote(t *widgets.Table) string {
	var b strings.Builder
	if f := t.Filter(); f != "" {
		b.WriteString("/" + f + " · ")
	}
	b.WriteString(strconv.Itoa(t.Len()))
	if t.Len() != t.Total() {
		b.WriteString("/" + strconv.Itoa(t.Total()))
	}
	return b.String()
}

// tableTab is the common shape of the list tabs: a one-line header and a
// virtualized table, with the shared cursor and filter keys.
type tableTab struct {
	c     *common.Context
	table *widgets.Table
}

// nodeTab is a table tab whose rows are keyed by node id: the cursor, Enter
// (node page), `l` and the node action keys behave the same on each.
type nodeTab struct{ tableTab }

func (t *nodeTab) selected() api.NodeID {
	if r, ok := t.table.Selected(); ok {
		if id, err := parseKeyID(r.Key); err == nil {
			return id
		}
	}
	return 0
}

func (t *nodeTab) Selection() common.Selection {
	id := t.selected()
	return common.Selection{Node: id, Label: NodeName(t.c.Snap, id)}
}

func (t *nodeTab) HandleKey(msg tea.KeyPressMsg) tea.Cmd {
	if t.table.HandleKey(msg, t.c.Keys) {
		return nil
	}
	id := t.selected()
	if key.Matches(msg, t.c.Keys.Enter) && id != 0 {
		return openNode(id)
	}
	cmd, _ := nodeActions(t.c.Keys, msg, id)
	return cmd
}

func (t *tableTab) SetFilter(q string) { t.table.SetFilter(q) }
func (t *tableTab) Filter() string     { return t.table.Filter() }

func (t *tableTab) render(summary string, w, h int, empty string) string {
	if h <= 0 {
		return ""
	}
	head := headerLine(t.c.Theme, summary, filterNote(t.table), w)
	if h == 1 {
		return head
	}
	if t.table.Total() == 0 {
		return head + "\n" + widgets.Empty(t.c.Theme, empty, w, h-1)
	}
	if t.table.Len() == 0 {
		return head + "\n" + widgets.Empty(t.c.Theme, "nothing matches /"+t.table.Filter(), w, h-1)
	}
	return head + "\n" + t.table.View(t.c.Theme, w, h-1)
}

// act returns a command asking the root to run an action flow.
func act(m common.ActionMsg) tea.Cmd { return common.Emit(m) }

// nodeActions maps the node admin/ICE keys to actions on node id. It is
// shared by NODES, MAINTENANCE, NET.MAP and the node page.
func nodeActions(k *common.KeyMap, msg tea.KeyPressMsg, id api.NodeID) (tea.Cmd, bool) {
	if id == 0 {
		// Nothing selected (an empty or filtered-out list): the node verbs
		// have no target, but the cluster-wide F/T/A still apply.
		return clusterActions(k, msg)
	}
	a := func(v api.Verb) api.Action { return api.Action{Verb: v, Node: id} }
	switch {
	case key.Matches(msg, k.Cordon):
		return act(common.ActionMsg{Action: a(api.VerbCordon)}), true
	case key.Matches(msg, k.Uncordon):
		return act(common.ActionMsg{Action: a(api.VerbUncordon)}), true
	case key.Matches(msg, k.Drain):
		return act(common.ActionMsg{Action: a(api.VerbDrain), NeedDuration: "drain for"}), true
	case key.Matches(msg, k.MaintEnter):
		return act(common.ActionMsg{Action: a(api.VerbEnterMaintenance), NeedDuration: "drain deadline"}), true
	case key.Matches(msg, k.MaintExit):
		return act(common.ActionMsg{Action: a(api.VerbExitMaintenance)}), true
	case key.Matches(msg, k.ClearAvoid):
		return act(common.ActionMsg{Action: a(api.VerbClearAvoidList)}), true
	case key.Matches(msg, k.Invalidate):
		return act(common.ActionMsg{Action: a(api.VerbInvalidatePlacement)}), true
	case key.Matches(msg, k.DropReplicas):
		return act(common.ActionMsg{Action: a(api.VerbDropReplicas)}), true
	case key.Matches(msg, k.RestartAll):
		return act(common.ActionMsg{Action: a(api.VerbRestartAllDaemons)}), true
	case key.Matches(msg, k.ForceDrain):
		return act(common.ActionMsg{Action: a(api.VerbForceDrain)}), true
	}
	return clusterActions(k, msg)
}

// clusterActions are the cluster-wide ICE verbs.
func clusterActions(k *common.KeyMap, msg tea.KeyPressMsg) (tea.Cmd, bool) {
	switch {
	case key.Matches(msg, k.Freeze):
		return act(common.ActionMsg{Action: api.Action{Verb: api.VerbFreezeCluster}, NeedReason: true, NeedDuration: "freeze for"}), true
	case key.Matches(msg, k.Thaw):
		return act(common.ActionMsg{Action: api.Action{Verb: api.VerbThawCluster}}), true
	case key.Matches(msg, k.FlushAvoid):
		return act(common.ActionMsg{Action: api.Action{Verb: api.VerbFlushAvoidLists}}), true
	}
	return nil, false
}

// nodeBindings are the node action keys, for chips and help.
func nodeBindings(k *common.KeyMap) []key.Binding {
	return append(nodeAdminBindings(k), nodeICEBindings(k)...)
}

func nodeAdminBindings(k *common.KeyMap) []key.Binding {
	return []key.Binding{k.Enter, k.Logs, k.Cordon, k.Uncordon, k.Drain, k.MaintEnter, k.MaintExit,
		k.ClearAvoid, k.Invalidate, k.DropReplicas, k.RestartAll}
}

func nodeICEBindings(k *common.KeyMap) []key.Binding {
	return []key.Binding{k.Freeze, k.Thaw, k.FlushAvoid, k.ForceDrain}
}

// memberBindings are nodeBindings with admit and revoke after the admin
// verbs (NODES and the node page).
func memberBindings(k *common.KeyMap) []key.Binding {
	return append(append(nodeAdminBindings(k), k.AdmitNode, k.RevokeNode), nodeICEBindings(k)...)
}

func openNode(id api.NodeID) tea.Cmd {
	return common.Emit(common.OpenPageMsg{Kind: common.PageNode, Node: id})
}

func openDaemon(id string) tea.Cmd {
	return common.Emit(common.OpenPageMsg{Kind: common.PageDaemon, Daemon: id})
}

// sameSecond reports whether a and b fall in the same wall-clock second:
// rows that show ages are rebuilt at most once a second.
func sameSecond(a, b time.Time) bool { return a.Unix() == b.Unix() }
