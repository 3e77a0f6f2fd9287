package tabs

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/widgets"
)

// Nodes is the NODES tab: the node inventory, and under it the nodes
// waiting for admission (PendingRows).
type Nodes struct {
	nodeTab
	last    *snapshot.ClusterSnapshot
	lastNow time.Time
	members []widgets.Row // NodeRows of last
	summary string
}

// NewNodes makes the NODES tab.
func NewNodes(c *common.Context) *Nodes {
	return &Nodes{nodeTab: nodeTab{tableTab{c: c, table: widgets.NewTable(nodeColumns()...)}}}
}

// nodeColumns are the NODES table's columns (the subnet page lists its
// members in the same table). SUBNET shows where the width allows; its
// cell is always there, so `/` matches subnet paths at any width.
func nodeColumns() []widgets.Column {
	return []widgets.Column{
		{Title: "NODE", Width: 11, Flex: true},
		{Title: "ID", Width: 6, HideBelow: 100},
		{Title: "HEALTH", Width: 11},
		{Title: "SUBNET", Width: 8, HideBelow: 100},
		{Title: "RTT", Width: 6, Align: widgets.AlignRight},
		{Title: "CPU", Width: 4, Align: widgets.AlignRight},
		{Title: "MEM%", Width: 4, Align: widgets.AlignRight},
		{Title: "DISK%", Width: 5, Align: widgets.AlignRight},
		{Title: "SAT", Width: 4, Align: widgets.AlignRight},
		{Title: "TREND", Width: 12, HideBelow: 120},
		{Title: "DAEMONS", Width: 7, Align: widgets.AlignRight},
		{Title: "MAINT", Width: 13},
		{Title: "CAPS", Width: 16, HideBelow: 140},
	}
}

func (t *Nodes) Name() string { return "NODES" }

// NodeRows turns a snapshot into NODES rows (pure; unit tested): hosting
// nodes by label, then consoles. A console (observer) row says so and shows
// no placement figures; an unreachable node's last-known figures are dimmed
// or withheld rather than shown as current; a node the ledger revoked says
// so while the view still lists it.
func NodeRows(s *snapshot.ClusterSnapshot) []widgets.Row { return NodeRowsOf(s, SortedNodes(s)) }

// NodeRowsOf is NodeRows for some of the snapshot's nodes, in their order
// (a subnet page's members).
func NodeRowsOf(s *snapshot.ClusterSnapshot, nodes []*snapshot.NodeView) []widgets.Row {
	rows := make([]widgets.Row, 0, len(nodes))
	for _, n := range nodes {
		health := n.Health.String()
		healthTone := HealthTone(n.Health)
		switch {
		case n.Observer && n.ID != s.Self && n.Health == snapshot.Unreachable:
			// A CLI's node that has exited: it lingers until the mesh forgets it.
			health, healthTone = "gone", common.ToneDim
		case n.Observer:
			health, healthTone = "console", common.ToneAccent
		case n.ID == s.Self:
			health = "self"
		case n.Stale && n.Health != snapshot.Unreachable:
			health += "·stale"
		}
		if _, revoked := Revocation(s, n.ID); revoked {
			health, healthTone = "revoked", common.ToneDanger
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
		daemons := fmt.Sprintf("%d/%d", running, len(n.Daemons))
		unreach := n.Health == snapshot.Unreachable
		rtt := widgets.RTT(n.RTT)
		switch {
		case n.ID == s.Self:
			rtt = "·"
		case unreach:
			// The last RTT measured is not a property of a node we cannot reach.
			rtt = "—"
		}
		if unreach {
			// What it last reported, not what it runs now.
			daemons += "?"
			dTone = common.ToneDim
		}
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
		trend := widgets.Sparkline(n.Resources.Trend, 12)
		if n.Observer {
			// A console hosts nothing: placement figures would only mislead.
			sat, satT, trend, daemons, dTone, maint, maintTone = "—", common.ToneDim, "", "—", common.ToneDim, "—", common.ToneDim
		}
		caps := strings.Join(n.Capabilities, ",")
		labelTone := common.ToneNormal
		if n.Observer {
			labelTone = common.ToneAccent
		}
		rows = append(rows, widgets.Row{
			Key: n.ID.String(),
			Cells: []string{NodeLabel(s, n), n.ID.Short(), health, SubnetLabel(n.Subnet), rtt, cpu, mem, disk, sat,
				trend, daemons, maint, caps},
			Tones: []common.Tone{labelTone, common.ToneDim, healthTone, subnetTone(s, n.Subnet), common.ToneNormal,
				cpuT, memT, diskT, satT, common.ToneAccent, dTone, maintTone, common.ToneDim},
		})
	}
	return rows
}

func (t *Nodes) Sync() {
	s := t.c.Snap
	switch {
	case s != t.last:
		t.members, t.summary = NodeRows(s), NodesSummary(s)
	case len(s.PendingNodes) == 0 || sameSecond(t.c.Now, t.lastNow):
		return
	}
	// Pending rows show how long each node has waited: they alone are
	// rebuilt each second while there are any.
	t.last, t.lastNow = s, t.c.Now
	t.table.SetRows(append(slices.Clip(t.members), PendingRows(s, t.c.Now)...))
}

// selectedPending is the pending node under the cursor, if it is on one.
func (t *Nodes) selectedPending() (api.NodeID, bool) {
	if r, ok := t.table.Selected(); ok {
		return parsePendingKey(r.Key)
	}
	return 0, false
}

func (t *Nodes) Selection() common.Selection {
	if id, ok := t.selectedPending(); ok {
		return common.Selection{Node: id, Label: id.Short()}
	}
	return t.nodeTab.Selection()
}

func (t *Nodes) HandleKey(msg tea.KeyPressMsg) tea.Cmd {
	if t.table.HandleKey(msg, t.c.Keys) {
		return nil
	}
	if id, ok := t.selectedPending(); ok {
		if key.Matches(msg, t.c.Keys.Enter) {
			return openNode(id)
		}
		return pendingKeys(t.c, msg, id)
	}
	if cmd, ok := membershipActions(t.c, msg, t.selected()); ok {
		return cmd
	}
	return t.nodeTab.HandleKey(msg)
}

// NodesSummary is the NODES header: counts of hosting nodes only (consoles
// host nothing and are named separately).
func NodesSummary(s *snapshot.ClusterSnapshot) string {
	var n, h, sus, un, cord, consoles int
	for i := range s.Nodes {
		nv := &s.Nodes[i]
		if nv.Observer {
			consoles++
			continue
		}
		n++
		switch nv.Health {
		case snapshot.Healthy:
			h++
		case snapshot.Suspect:
			sus++
		default:
			un++
		}
		if nv.Cordoned {
			cord++
		}
	}
	out := fmt.Sprintf("%d nodes · %d healthy · %d suspect · %d unreachable · %d cordoned", n, h, sus, un, cord)
	if consoles > 0 {
		out += fmt.Sprintf(" · +%d console", consoles)
		if consoles > 1 {
			out += "s"
		}
	}
	if p := len(s.PendingNodes); p > 0 {
		out += fmt.Sprintf(" · %d pending", p)
	}
	return out
}

func (t *Nodes) View(w, h int) string {
	return t.render(t.summary, w, h, "no nodes in the snapshot yet")
}

// Bindings are the node keys plus admit and revoke; on a pending row, the
// keys that apply to a node that is not a member yet.
func (t *Nodes) Bindings() []key.Binding {
	k := t.c.Keys
	if _, ok := t.selectedPending(); ok {
		return pendingBindings(k)
	}
	return memberBindings(k)
}

// parseKeyID reads a row key written by NodeID.String.
func parseKeyID(k string) (api.NodeID, error) {
	var v uint64
	_, err := fmt.Sscanf(k, "0x%x", &v)
	return api.NodeID(v), err
}
