package tabs

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/widgets"
)

// demoFaultLines is the height of the active-faults pane.
const demoFaultLines = 5

// Demo is the DEMO panel, present only when the deck runs on the demo
// harness (Faults != nil): it injects real impairments through
// api.FaultInjector. Marked nodes (space) are the target set; without marks
// the cursor's node is.
type Demo struct {
	nodeTab
	last   *snapshot.ClusterSnapshot
	marked map[api.NodeID]bool
}

// NewDemo makes the DEMO panel.
func NewDemo(c *common.Context) *Demo {
	return &Demo{nodeTab: nodeTab{tableTab{c: c, table: widgets.NewTable(
		widgets.Column{Title: "MARK", Width: 4},
		widgets.Column{Title: "NODE", Width: 12},
		widgets.Column{Title: "HEALTH", Width: 11},
		widgets.Column{Title: "RTT", Width: 6, Align: widgets.AlignRight},
		widgets.Column{Title: "DAEMONS", Width: 20, Flex: true},
	)}}, marked: map[api.NodeID]bool{}}
}

func (t *Demo) Name() string { return "DEMO" }

func (t *Demo) rows() []widgets.Row {
	s := t.c.Snap
	rows := make([]widgets.Row, 0, len(s.Nodes))
	for _, n := range SortedNodes(s) {
		if n.Observer {
			// Consoles are not demo members: faults are injected into the
			// harness's nodes, never into the deck's own node.
			continue
		}
		mark := "[ ]"
		if t.marked[n.ID] {
			mark = "[x]"
		}
		ds := make([]string, len(n.Daemons))
		for j, d := range n.Daemons {
			ds[j] = d.ID
		}
		rtt := widgets.RTT(n.RTT)
		if n.Health == snapshot.Unreachable {
			rtt = "—"
			if len(ds) > 0 {
				ds = append([]string{"(last report)"}, ds...)
			}
		}
		rows = append(rows, widgets.Row{
			Key:   n.ID.String(),
			Cells: []string{mark, NodeName(s, n.ID), n.Health.String(), rtt, strings.Join(ds, " ")},
			Tones: []common.Tone{common.ToneAccent, common.ToneNormal, HealthTone(n.Health), common.ToneNormal, common.ToneDim},
		})
	}
	return rows
}

func (t *Demo) Sync() {
	if t.c.Snap == t.last {
		return
	}
	t.last = t.c.Snap
	t.table.SetRows(t.rows())
}

// targets are the marked nodes, or the cursor's node.
func (t *Demo) targets() []api.NodeID {
	var out []api.NodeID
	for i := range t.c.Snap.Nodes {
		if id := t.c.Snap.Nodes[i].ID; t.marked[id] && !t.c.Snap.Nodes[i].Observer {
			out = append(out, id)
		}
	}
	if len(out) == 0 {
		if id := t.selected(); id != 0 {
			out = []api.NodeID{id}
		}
	}
	return out
}

func (t *Demo) Selection() common.Selection {
	id := t.selected()
	return common.Selection{Node: id, Label: NodeName(t.c.Snap, id)}
}

func (t *Demo) HandleKey(msg tea.KeyPressMsg) tea.Cmd {
	if t.table.HandleKey(msg, t.c.Keys) {
		return nil
	}
	k := t.c.Keys
	fault := func(kind api.FaultKind) tea.Cmd {
		nodes := t.targets()
		if len(nodes) == 0 {
			return common.Toast("no node selected", true)
		}
		return common.Emit(common.FaultMsg{Fault: api.Fault{Kind: kind, Nodes: nodes}})
	}
	switch {
	case key.Matches(msg, k.Mark):
		if id := t.selected(); id != 0 {
			t.marked[id] = !t.marked[id]
			t.table.SetRows(t.rows())
			t.table.Move(1)
		}
	case key.Matches(msg, k.FaultKill):
		return fault(api.FaultKill)
	case key.Matches(msg, k.FaultRestart):
		return fault(api.FaultRestart)
	case key.Matches(msg, k.FaultPause):
		return fault(api.FaultPause)
	case key.Matches(msg, k.FaultResume):
		return fault(api.FaultResume)
	case key.Matches(msg, k.FaultPartition):
		return fault(api.FaultPartition)
	case key.Matches(msg, k.FaultHeal):
		return common.Emit(common.FaultMsg{Fault: api.Fault{Kind: api.FaultHeal}})
	case key.Matches(msg, k.FaultSlow):
		nodes := t.targets()
		if len(nodes) == 0 {
			return common.Toast("no node selected", true)
		}
		return common.Emit(common.FaultMsg{Fault: api.Fault{Kind: api.FaultSlow, Nodes: nodes}, NeedDelay: true})
	case key.Matches(msg, k.FaultCrashLoop):
		if id := t.selected(); id != 0 {
			return common.Emit(common.FaultMsg{Fault: api.Fault{Kind: api.FaultCrashLoop, Nodes: []api.NodeID{id}}, PickDaemon: true})
		}
	case key.Matches(msg, k.FaultCorruptChunk), key.Matches(msg, k.FaultFillDisk):
		// A store fault acts on one node: the one under the cursor.
		kind := api.FaultCorruptChunk
		if key.Matches(msg, k.FaultFillDisk) {
			kind = api.FaultFillDisk
		}
		if id := t.selected(); id != 0 {
			return common.Emit(common.FaultMsg{Fault: api.Fault{Kind: kind, Nodes: []api.NodeID{id}}})
		}
	}
	return nil
}

// FaultLine describes an active fault.
func FaultLine(s *snapshot.ClusterSnapshot, f api.Fault) string {
	names := func(ids []api.NodeID) string {
		if len(ids) == 0 {
			return "all"
		}
		out := make([]string, len(ids))
		for i, id := range ids {
			out[i] = NodeName(s, id)
		}
		return strings.Join(out, ",")
	}
	line := string(f.Kind) + " " + names(f.Nodes)
	if f.Kind == api.FaultPartition || f.Kind == api.FaultSlow {
		line += " ⇹ " + names(f.Peers)
	}
	if f.Delay > 0 {
		line += " +" + f.Delay.String()
	}
	if f.Loss > 0 {
		line += fmt.Sprintf(" loss %s", widgets.Pct(f.Loss))
	}
	if f.Daemon != "" {
		line += " daemon " + f.Daemon
	}
	return line
}

func (t *Demo) View(w, h int) string {
	th := t.c.Theme
	if t.c.Faults == nil {
		return widgets.Empty(th, "fault injection is only available in `deck demo`", w, h)
	}
	if h <= demoFaultLines+2 {
		return t.render("demo fault injection", w, h, "no nodes")
	}
	top := t.render(fmt.Sprintf("demo fault injection · %d marked", len(t.marked)-countFalse(t.marked)), w, h-demoFaultLines, "no nodes")
	active := t.c.Faults.Active()
	lines := []string{widgets.Rule(th, 2) + th.Paint(common.ToneHeader, fmt.Sprintf(" ACTIVE FAULTS (%d) ", len(active))) + widgets.Rule(th, w)}
	if len(active) == 0 {
		lines = append(lines, th.Paint(common.ToneDim, "none: the mesh is unimpaired"))
	}
	for _, f := range active {
		lines = append(lines, th.Paint(common.ToneWarn, FaultLine(t.c.Snap, f)))
	}
	if hint := t.c.AttachHint; hint != "" && len(lines) < demoFaultLines-1 {
		// The export line must survive narrow terminals whole (it is
		// copied), so it gets a line of its own under its label.
		for len(lines) < demoFaultLines-2 {
			lines = append(lines, "")
		}
		lines = append(lines, th.Paint(common.ToneDim, "attach a 2nd terminal (deck status, deck admin …, deck):"),
			th.Paint(common.ToneAccent, hint))
	}
	return top + "\n" + widgets.Lines(lines, w, demoFaultLines)
}

func countFalse(m map[api.NodeID]bool) int {
	n := 0
	for _, v := range m {
		if !v {
			n++
		}
	}
	return n
}

func (t *Demo) Bindings() []key.Binding {
	k := t.c.Keys
	return []key.Binding{k.Mark, k.FaultKill, k.FaultRestart, k.FaultPause, k.FaultResume, k.FaultPartition, k.FaultHeal, k.FaultSlow,
		k.FaultCrashLoop, k.FaultCorruptChunk, k.FaultFillDisk}
}
