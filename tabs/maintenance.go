package tabs

import (
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/widgets"
)

// Maintenance is the MAINTENANCE tab: each node's maintenance state
// machine, drain progress, deadline countdown and DrainFailed reason.
type Maintenance struct {
	nodeTab
	last    *snapshot.ClusterSnapshot
	lastNow time.Time
	summary string
}

// maintDetailLines is the height of the state-machine pane.
const maintDetailLines = 4

// NewMaintenance makes the MAINTENANCE tab.
func NewMaintenance(c *common.Context) *Maintenance {
	return &Maintenance{nodeTab: nodeTab{tableTab{c: c, table: widgets.NewTable(
		widgets.Column{Title: "NODE", Width: 11},
		widgets.Column{Title: "STATE", Width: 12},
		widgets.Column{Title: "DMN LEFT", Width: 8, Align: widgets.AlignRight},
		widgets.Column{Title: "REPL LEFT", Width: 9, Align: widgets.AlignRight},
		widgets.Column{Title: "DEADLINE", Width: 8, Align: widgets.AlignRight},
		widgets.Column{Title: "SINCE", Width: 6, Align: widgets.AlignRight},
		widgets.Column{Title: "CORD", Width: 4, HideBelow: 90},
		widgets.Column{Title: "REASON", Width: 8, Flex: true},
	)}}}
}

func (t *Maintenance) Name() string { return "MAINTENANCE" }

// MaintRows turns a snapshot into MAINTENANCE rows (pure; unit tested).
// Drain progress reads "left/total". Consoles have no maintenance state and
// are left out.
func MaintRows(s *snapshot.ClusterSnapshot, now time.Time) []widgets.Row {
	rows := make([]widgets.Row, 0, len(s.Nodes))
	for _, n := range SortedNodes(s) {
		if n.Observer {
			continue
		}
		m := n.Maintenance
		drainD, drainR, deadline := "—", "—", "—"
		if m.DaemonsTotal > 0 || m.State != snapshot.MaintActive {
			drainD = fmt.Sprintf("%d/%d", m.DaemonsLeft, m.DaemonsTotal)
			drainR = fmt.Sprintf("%d/%d", m.ReplicasLeft, m.ReplicasTotal)
		}
		dTone := common.ToneDim
		if m.State == snapshot.MaintEntering {
			deadline = widgets.Countdown(now, m.Deadline)
			dTone = common.ToneWarn
			if !m.Deadline.After(now) {
				dTone = common.ToneDanger
			}
		}
		since := "—"
		if m.State != snapshot.MaintActive {
			since = widgets.Since(now, m.Since)
		}
		cord := ""
		if n.Cordoned {
			cord = "yes"
		}
		rows = append(rows, widgets.Row{
			Key:   n.ID.String(),
			Cells: []string{NodeName(s, n.ID), MaintLabel(m.State), drainD, drainR, deadline, since, cord, m.Reason},
			Tones: []common.Tone{common.ToneNormal, MaintTone(m.State), common.ToneNormal, common.ToneNormal, dTone,
				common.ToneDim, common.ToneWarn, common.ToneDanger},
		})
	}
	return rows
}

// maintStates is the state machine in display order.
var maintStates = []snapshot.MaintState{snapshot.MaintActive, snapshot.MaintEntering, snapshot.MaintMaintenance,
	snapshot.MaintExiting, snapshot.MaintRecovery}

// StateMachine renders the maintenance state machine with the current state
// bracketed: "active ▶ [ENTERING] ▶ maint ▶ exiting ▶ recovery".
func StateMachine(th *common.Theme, cur snapshot.MaintState) string {
	var b strings.Builder
	for i, st := range maintStates {
		if i > 0 {
			b.WriteString(th.Paint(common.ToneDim, " ▶ "))
		}
		label := MaintLabel(st)
		if st == cur {
			b.WriteString(th.Paint(MaintTone(st), "["+strings.ToUpper(label)+"]"))
		} else {
			b.WriteString(th.Paint(common.ToneDim, label))
		}
	}
	fail := "drain-failed"
	if cur == snapshot.MaintDrainFailed {
		fail = th.Paint(common.ToneDanger, "[DRAIN-FAILED]")
	} else {
		fail = th.Paint(common.ToneDim, fail)
	}
	b.WriteString(th.Paint(common.ToneDim, "  ╳ ") + fail)
	return b.String()
}

func (t *Maintenance) Sync() {
	if t.c.Snap == t.last && sameSecond(t.c.Now, t.lastNow) {
		return
	}
	t.last, t.lastNow = t.c.Snap, t.c.Now
	t.table.SetRows(MaintRows(t.c.Snap, t.c.Now))
	counts := map[snapshot.MaintState]int{}
	for i := range t.c.Snap.Nodes {
		if !t.c.Snap.Nodes[i].Observer {
			counts[t.c.Snap.Nodes[i].Maintenance.State]++
		}
	}
	t.summary = fmt.Sprintf("%d active · %d entering · %d maint · %d exiting · %d recovery · %d drain-failed",
		counts[snapshot.MaintActive], counts[snapshot.MaintEntering], counts[snapshot.MaintMaintenance],
		counts[snapshot.MaintExiting], counts[snapshot.MaintRecovery], counts[snapshot.MaintDrainFailed])
}

func (t *Maintenance) View(w, h int) string {
	if h <= maintDetailLines+2 {
		return t.render(t.summary, w, h, "no nodes")
	}
	top := t.render(t.summary, w, h-maintDetailLines, "no nodes")
	th := t.c.Theme
	lines := make([]string, 0, maintDetailLines)
	id := t.selected()
	if n := t.c.Snap.Node(id); n != nil {
		m := n.Maintenance
		lines = append(lines, widgets.Rule(th, 2)+th.Paint(common.ToneTitle, " "+NodeName(t.c.Snap, id)+" ")+widgets.Rule(th, w))
		lines = append(lines, StateMachine(th, m.State))
		prog := fmt.Sprintf("drain: daemons %d/%d left · replicas %d/%d left", m.DaemonsLeft, m.DaemonsTotal, m.ReplicasLeft, m.ReplicasTotal)
		if m.DaemonsTotal+m.ReplicasTotal > 0 {
			done := float64(m.DaemonsTotal+m.ReplicasTotal-m.DaemonsLeft-m.ReplicasLeft) / float64(m.DaemonsTotal+m.ReplicasTotal)
			prog = widgets.Bar(th, done, 10) + " " + prog
		}
		if m.State == snapshot.MaintEntering {
			prog += " · deadline in " + widgets.Countdown(t.c.Now, m.Deadline)
		}
		if m.State == snapshot.MaintActive && m.DaemonsTotal+m.ReplicasTotal == 0 {
			prog = th.Paint(common.ToneDim, "not draining · m enters maintenance, d drains")
		}
		lines = append(lines, prog)
		if m.Reason != "" {
			lines = append(lines, th.Paint(common.ToneDanger, "reason: "+m.Reason))
		}
	}
	return top + "\n" + widgets.Lines(lines, w, maintDetailLines)
}

func (t *Maintenance) Bindings() []key.Binding {
	k := t.c.Keys
	return []key.Binding{k.Enter, k.MaintEnter, k.MaintExit, k.Drain, k.Cordon, k.Uncordon, k.Logs, k.Filter}
}
