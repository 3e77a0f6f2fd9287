package tabs

import (
	"fmt"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/widgets"
)

// Nodes is the NODES tab: the node inventory.
type Nodes struct {
	tableTab
	last    *snapshot.ClusterSnapshot
	summary string
}

// NewNodes makes the NODES tab.
func NewNodes(c *common.Context) *Nodes {
	return &Nodes{tableTab: tableTab{c: c, table: widgets.NewTable(
		widgets.Column{Title: "NODE", Width: 11, Flex: true},
		widgets.Column{Title: "ID", Width: 6, HideBelow: 100},
		widgets.Column{Title: "HEALTH", Width: 11},
		widgets.Column{Title: "RTT", Width: 6, Align: widgets.AlignRight},
		widgets.Column{Title: "CPU", Width: 4, Align: widgets.AlignRight},
		widgets.Column{Title: "MEM%", Width: 4, Align: widgets.AlignRight},
		widgets.Column{Title: "DISK%", Width: 5, Align: widgets.AlignRight},
		widgets.Column{Title: "SAT", Width: 4, Align: widgets.AlignRight},
		widgets.Column{Title: "TREND", Width: 12, HideBelow: 120},
		widgets.Column{Title: "DAEMONS", Width: 7, Align: widgets.AlignRight},
		widgets.Column{Title: "MAINT", Width: 13},
		widgets.Column{Title: "CAPS", Width: 16, HideBelow: 140},
	)}}
}

func (t *Nodes) Name() string { return "NODES" }

// NodeRows turns a snapshot into NODES rows (pure; unit tested).
func NodeRows(s *snapshot.ClusterSnapshot) []widgets.Row {
	rows := make([]widgets.Row, 0, len(s.Nodes))
	for i := range s.Nodes {
		n := &s.Nodes[i]
		health := n.Health.String()
		if n.ID == s.Self {
			health = "self"
		} else if n.Stale && n.Health != snapshot.Unreachable {
			health += "·stale"
		}
		running := 0
		for _, d := range n.Daemons {
			if d.Lifecycle == snapshot.LifecycleRunning {
				running++
			}
		}
		maint := MaintLabel(n.Maintenance.State)
		maintTone := MaintTone(n.Maintenance.State)
		if n.Cordoned && n.Maintenance.State == snapshot.MaintActive {
			maint, maintTone = "cordoned", common.ToneWarn
		} else if n.Cordoned {
			maint += "⊘"
		}
		dTone := common.ToneNormal
		if running < len(n.Daemons) {
			dTone = common.ToneWarn
		}
		rtt := widgets.RTT(n.RTT)
		if n.ID == s.Self {
			rtt = "·"
		}
		unreach := n.Health == snapshot.Unreachable
		gauge := func(f float64) (string, common.Tone) {
			if unreach {
				return "—", common.ToneDim
			}
			return widgets.Pct(f), widgets.LoadTone(f)
		}
		cpu, cpuT := gauge(n.Resources.CPULoad)
		mem, memT := gauge(n.Resources.MemUsed)
		disk, diskT := gauge(n.Resources.DiskUsed)
		sat, satT := gauge(n.Resources.Saturation)
		caps := ""
		for i, c := range n.Capabilities {
			if i > 0 {
				caps += ","
			}
			caps += c
		}
		label := n.Label
		if label == "" {
			label = n.ID.Short()
		}
		rows = append(rows, widgets.Row{
			Key: n.ID.String(),
			Cells: []string{label, n.ID.Short(), health, rtt, cpu, mem, disk, sat,
				widgets.Sparkline(n.Resources.Trend, 12), fmt.Sprintf("%d/%d", running, len(n.Daemons)), maint, caps},
			Tones: []common.Tone{common.ToneNormal, common.ToneDim, HealthTone(n.Health), common.ToneNormal,
				cpuT, memT, diskT, satT, common.ToneAccent, dTone, maintTone, common.ToneDim},
		})
	}
	return rows
}

func (t *Nodes) Sync() {
	s := t.c.Snap
	if s == t.last {
		return
	}
	t.last = s
	t.table.SetRows(NodeRows(s))
	var h, sus, un, cord int
	for i := range s.Nodes {
		switch s.Nodes[i].Health {
		case snapshot.Healthy:
			h++
		case snapshot.Suspect:
			sus++
		default:
			un++
		}
		if s.Nodes[i].Cordoned {
			cord++
		}
	}
	t.summary = fmt.Sprintf("%d nodes · %d healthy · %d suspect · %d unreachable · %d cordoned", len(s.Nodes), h, sus, un, cord)
}

func (t *Nodes) selected() api.NodeID {
	if r, ok := t.table.Selected(); ok {
		id, err := parseKeyID(r.Key)
		if err == nil {
			return id
		}
	}
	return 0
}

func (t *Nodes) Selection() common.Selection {
	id := t.selected()
	return common.Selection{Node: id, Label: NodeName(t.c.Snap, id)}
}

func (t *Nodes) HandleKey(msg tea.KeyPressMsg) tea.Cmd {
	if t.table.HandleKey(msg, t.c.Keys) {
		return nil
	}
	id := t.selected()
	if key.Matches(msg, t.c.Keys.Enter) && id != 0 {
		return openNode(id)
	}
	if cmd, ok := nodeActions(t.c.Keys, msg, id); ok {
		return cmd
	}
	return nil
}

func (t *Nodes) View(w, h int) string {
	return t.render(t.summary, w, h, "no nodes in the snapshot yet")
}

func (t *Nodes) Bindings() []key.Binding { return nodeBindings(t.c.Keys) }

// parseKeyID reads a row key written by NodeID.String.
func parseKeyID(k string) (api.NodeID, error) {
	var v uint64
	_, err := fmt.Sscanf(k, "0x%x", &v)
	return api.NodeID(v), err
}
