package tabs

import (
	"fmt"
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

// LogTailScanRecords bounds how far back a page looks for its log tail.
const LogTailScanRecords = 5000

func kvLine(th *common.Theme, k, v string, tone common.Tone) string {
	return th.Paint(common.ToneDim, widgets.Fit(k, 10)) + " " + th.Paint(tone, v)
}

func section(th *common.Theme, title string) string {
	return th.Paint(common.ToneHeader, title)
}

// columns lays out two blocks side by side when wide, stacked when narrow.
func columns(left, right []string, w int) []string {
	if w < 100 {
		return append(append(left, ""), right...)
	}
	lw := w/2 - 1
	n := max(len(left), len(right))
	out := make([]string, n)
	for i := range out {
		l, r := "", ""
		if i < len(left) {
			l = left[i]
		}
		if i < len(right) {
			r = right[i]
		}
		out[i] = widgets.FitANSI(l, lw) + "  " + r
	}
	return out
}

// NodePage is the drill-down of one node: a member's, or a pending node's
// (PendingDetail) until it is admitted and joins, when the same page turns
// into the member's.
type NodePage struct {
	c      *common.Context
	id     api.NodeID
	scroll int
}

// NewNodePage makes the page for node id.
func NewNodePage(c *common.Context, id api.NodeID) *NodePage { return &NodePage{c: c, id: id} }

// pending is the node's pending entry when it is not a member.
func (p *NodePage) pending() *snapshot.PendingNode {
	if p.c.Snap.Node(p.id) != nil {
		return nil
	}
	return Pending(p.c.Snap, p.id)
}

func (p *NodePage) Name() string {
	if p.pending() != nil {
		return "PENDING " + p.id.Short()
	}
	return "NODE " + NodeName(p.c.Snap, p.id)
}

func (p *NodePage) Sync() {}
func (p *NodePage) Selection() common.Selection {
	return common.Selection{Node: p.id, Label: NodeName(p.c.Snap, p.id)}
}

func (p *NodePage) HandleKey(msg tea.KeyPressMsg) tea.Cmd {
	if key.Matches(msg, p.c.Keys.Enter) {
		return nil
	}
	if p.pending() != nil {
		if cmd := pendingKeys(p.c, msg, p.id); cmd != nil {
			return cmd
		}
	} else {
		if cmd, ok := membershipActions(p.c, msg, p.id); ok {
			return cmd
		}
		if cmd, ok := nodeActions(p.c.Keys, msg, p.id); ok {
			return cmd
		}
	}
	p.scroll = scrollKey(msg, p.c.Keys, p.scroll)
	return nil
}

func (p *NodePage) Bindings() []key.Binding {
	k := p.c.Keys
	if p.pending() != nil {
		return append([]key.Binding{k.Back}, pendingBindings(k)[1:]...)
	}
	return append([]key.Binding{k.Back}, memberBindings(k)[1:]...)
}

// NodeDetail renders the node page's lines (pure).
func NodeDetail(th *common.Theme, s *snapshot.ClusterSnapshot, n *snapshot.NodeView, now time.Time, w int) []string {
	caps := strings.Join(n.Capabilities, ", ")
	if caps == "" {
		caps = "—"
	}
	cord := "no"
	if n.Cordoned {
		cord = "yes"
	}
	maint := MaintLabel(n.Maintenance.State)
	if n.Maintenance.State == snapshot.MaintEntering {
		maint += " · deadline in " + widgets.Countdown(now, n.Maintenance.Deadline)
	}
	if n.Maintenance.Reason != "" {
		maint += " · " + n.Maintenance.Reason
	}
	health := n.Health.String() + " for " + widgets.Since(now, n.HealthSince)
	healthTone := HealthTone(n.Health)
	if n.Stale {
		health += " · stale (last " + widgets.Since(now, n.ReceivedAt) + " ago)"
	}
	if r, ok := Revocation(s, n.ID); ok {
		health = fmt.Sprintf("revoked by %s %s ago · %s", OperatorName(s, r.By), widgets.Since(now, r.At), health)
		healthTone = common.ToneDanger
	}
	facts := []string{
		section(th, "FACTS"),
		kvLine(th, "id", n.ID.String(), common.ToneTitle),
		kvLine(th, "address", n.Addr, common.ToneNormal),
		kvLine(th, "version", n.Version+" · gen "+fmt.Sprint(n.Generation), common.ToneNormal),
		kvLine(th, "uptime", widgets.Since(now, n.StartedAt), common.ToneNormal),
		kvLine(th, "health", health, healthTone),
		kvLine(th, "rtt", widgets.RTT(n.RTT), common.ToneNormal),
		kvLine(th, "maint", maint, MaintTone(n.Maintenance.State)),
		kvLine(th, "cordoned", cord, common.ToneNormal),
		kvLine(th, "caps", caps, common.ToneAccent),
	}
	bar := func(label string, f float64) string {
		return th.Paint(common.ToneDim, widgets.Fit(label, 10)) + " " + widgets.Bar(th, f, 20) + " " + widgets.FitRight(widgets.Pct(f), 4)
	}
	res := []string{
		section(th, "RESOURCES"),
		bar("cpu", n.Resources.CPULoad),
		bar("memory", n.Resources.MemUsed),
		bar("disk", n.Resources.DiskUsed),
		bar("saturation", n.Resources.Saturation),
		th.Paint(common.ToneDim, widgets.Fit("trend", 10)) + " " + th.Paint(common.ToneAccent, widgets.Sparkline(n.Resources.Trend, 24)),
		"",
		section(th, "COUNTERS"),
		kvLine(th, "packets", fmt.Sprintf("in %d · out %d · drops %d", n.Counters.PacketsIn, n.Counters.PacketsOut, n.Counters.Drops), common.ToneNormal),
		kvLine(th, "security", fmt.Sprintf("replays %d · auth fail %d · hs limited %d", n.Counters.ReplaysRejected, n.Counters.AuthFailures, n.Counters.HandshakesRateLimited), common.ToneNormal),
	}
	lines := columns(facts, res, w)
	lines = append(lines, "", section(th, fmt.Sprintf("DAEMONS (%d)", len(n.Daemons))))
	for i := range n.Daemons {
		d := &n.Daemons[i]
		st, tone := DaemonState(d, now)
		lines = append(lines, "  "+widgets.Fit(d.ID, 12)+" "+th.Paint(common.ToneAccent, widgets.Fit(LineageLabel(d.Lineage), 14))+" "+
			th.Paint(tone, widgets.Fit(st, 12))+" "+widgets.FitRight(widgets.Pct(d.Saturation), 4))
	}
	lines = append(lines, "", section(th, fmt.Sprintf("CHAINS HELD (%d)", len(n.Replicas))))
	for _, r := range n.Replicas {
		lines = append(lines, "  "+widgets.Fit(r.Chain, 14)+" "+widgets.Fit(r.Role.String(), 8)+" seq "+fmt.Sprint(r.Seq))
	}
	if len(n.Avoid) > 0 {
		lines = append(lines, "", section(th, fmt.Sprintf("AVOID LIST (%d)", len(n.Avoid))))
		for _, a := range n.Avoid {
			lines = append(lines, "  "+widgets.Fit(NodeName(s, a.Peer), 12)+" "+widgets.Fit(a.Reason, 16)+" "+th.Paint(common.ToneDim, "for "+widgets.Countdown(now, a.Until)))
		}
	}
	if len(n.Pending) > 0 {
		lines = append(lines, "", section(th, fmt.Sprintf("PENDING (%d)", len(n.Pending))))
		for _, pa := range n.Pending {
			l := "  " + widgets.Fit(pa.Kind, 8) + " " + widgets.Fit(pa.Target, 24) + " " + th.Paint(common.ToneDim, widgets.Since(now, pa.Since))
			if pa.Blocked != "" {
				l += " " + th.Paint(common.ToneWarn, "blocked: "+pa.Blocked)
			}
			lines = append(lines, l)
		}
	}
	return lines
}

func (p *NodePage) View(w, h int) string {
	n := p.c.Snap.Node(p.id)
	if n == nil {
		if pn := Pending(p.c.Snap, p.id); pn != nil {
			return scrolled(PendingDetail(p.c.Theme, p.c.Keys, p.c.Snap, pn, p.c.Now, w), &p.scroll, w, h)
		}
		return widgets.Empty(p.c.Theme, "node "+p.id.String()+" is no longer in the snapshot (esc back)", w, h)
	}
	return scrolled(NodeDetail(p.c.Theme, p.c.Snap, n, p.c.Now, w), &p.scroll, w, h)
}

// DaemonPage is the drill-down of one daemon.
type DaemonPage struct {
	c      *common.Context
	id     string
	scroll int
}

// NewDaemonPage makes the page for daemon id.
func NewDaemonPage(c *common.Context, id string) *DaemonPage { return &DaemonPage{c: c, id: id} }

func (p *DaemonPage) Name() string { return "DAEMON " + p.id }
func (p *DaemonPage) Sync()        {}
func (p *DaemonPage) Selection() common.Selection {
	return common.Selection{Daemon: p.id, Node: nodeOfDaemon(p.c.Snap, p.id), Label: p.id}
}

func (p *DaemonPage) migration() *snapshot.Migration {
	for _, m := range AllMigrations(p.c.Snap) {
		if m.Daemon == p.id && m.Phase < snapshot.PhaseComplete {
			return m
		}
	}
	return nil
}

func (p *DaemonPage) HandleKey(msg tea.KeyPressMsg) tea.Cmd {
	k := p.c.Keys
	switch {
	case key.Matches(msg, k.Enter):
		if d := FindDaemon(p.c.Snap, p.id); d != nil {
			return openNode(d.Node)
		}
		return nil
	case key.Matches(msg, k.KillMigration):
		if m := p.migration(); m != nil {
			return act(common.ActionMsg{Action: api.Action{Verb: api.VerbKillMigration, Migration: m.ID}})
		}
		return common.Toast(p.id+" is not migrating", false)
	}
	if cmd, ok := daemonActions(k, msg, p.id); ok {
		return cmd
	}
	p.scroll = scrollKey(msg, k, p.scroll)
	return nil
}

func (p *DaemonPage) Bindings() []key.Binding {
	k := p.c.Keys
	return []key.Binding{k.Back, k.Enter, k.Logs, k.Restart, k.ForceRestart, k.KillMigration}
}

// PhasePipeline renders the migration phases with the current one marked.
func PhasePipeline(th *common.Theme, cur snapshot.MigrationPhase) string {
	var b strings.Builder
	for ph := snapshot.PhaseSnapshot; ph <= snapshot.PhaseComplete; ph++ {
		if ph > snapshot.PhaseSnapshot {
			b.WriteString(th.Paint(common.ToneDim, " → "))
		}
		switch {
		case ph == cur:
			b.WriteString(th.Paint(common.ToneAccent, "["+strings.ToUpper(ph.String())+"]"))
		case ph < cur:
			b.WriteString(th.Paint(common.ToneOK, ph.String()))
		default:
			b.WriteString(th.Paint(common.ToneDim, ph.String()))
		}
	}
	if cur > snapshot.PhaseComplete {
		b.WriteString(th.Paint(common.ToneDanger, "  ["+strings.ToUpper(cur.String())+"]"))
	}
	return b.String()
}

// DaemonDetail renders the daemon page's lines (pure except the log tail,
// which reads the bounded ring).
func DaemonDetail(c *common.Context, d *snapshot.Daemon, w int) []string {
	th, s, now := c.Theme, c.Snap, c.Now
	st, stTone := DaemonState(d, now)
	health := d.Health.String()
	if d.HealthReason != "" {
		health += " · " + d.HealthReason
	}
	facts := []string{
		section(th, "FACTS"),
		kvLine(th, "id", d.ID, common.ToneTitle),
		kvLine(th, "kind", d.Kind, common.ToneNormal),
		kvLine(th, "lineage", LineageLabel(d.Lineage)+groupNote(d.Lineage), common.ToneAccent),
		kvLine(th, "node", NodeName(s, d.Node)+" "+d.Node.Short(), common.ToneNormal),
		kvLine(th, "state", st, stTone),
		kvLine(th, "health", health, DaemonHealthTone(d.Health)),
		kvLine(th, "restarts", strconv.Itoa(d.Restarts)+" · "+d.Restart.String(), common.ToneNormal),
		kvLine(th, "age", widgets.Since(now, d.StartedAt), common.ToneNormal),
		th.Paint(common.ToneDim, widgets.Fit("saturation", 10)) + " " + widgets.Bar(th, d.Saturation, 16) + " " + widgets.Pct(d.Saturation),
	}
	var side []string
	side = append(side, section(th, "MIGRATION"))
	var mig *snapshot.Migration
	for _, m := range AllMigrations(s) {
		if m.Daemon == d.ID {
			mig = m
		}
	}
	if mig == nil {
		side = append(side, th.Paint(common.ToneDim, "not migrating"))
	} else {
		side = append(side,
			kvLine(th, "move", NodeName(s, mig.Source)+" → "+NodeName(s, mig.Target)+" ("+mig.ID+")", common.ToneNormal),
			PhasePipeline(th, mig.Phase),
			th.Paint(common.ToneDim, widgets.Fit("progress", 10))+" "+widgets.Bar(th, mig.Progress, 16)+" "+widgets.Pct(mig.Progress),
			kvLine(th, "retries", strconv.Itoa(mig.Retries)+" · elapsed "+widgets.Since(now, mig.StartedAt), common.ToneNormal))
		if mig.Error != "" {
			side = append(side, kvLine(th, "error", mig.Error, common.ToneDanger))
		}
	}
	side = append(side, "", section(th, "GROUP SIBLINGS"))
	// A solo daemon is a group of one: MeshOS names its group in the
	// lineage like any other's, so the kind says it, not an empty group.
	if d.Lineage.Kind == snapshot.GroupSolo {
		side = append(side, th.Paint(common.ToneDim, "solo daemon"))
	}
	for _, g := range s.Groups {
		if g.Name != d.Lineage.Group {
			continue
		}
		for _, m := range g.Members {
			if m == d.ID {
				continue
			}
			if sib := FindDaemon(s, m); sib != nil {
				sst, tone := DaemonState(sib, now)
				side = append(side, "  "+widgets.Fit(sib.ID, 12)+" "+widgets.Fit(LineageLabel(sib.Lineage), 14)+" "+
					widgets.Fit(NodeName(s, sib.Node), 11)+" "+th.Paint(tone, sst))
			} else {
				side = append(side, "  "+widgets.Fit(m, 12)+" "+th.Paint(common.ToneWarn, "not placed"))
			}
		}
	}
	lines := columns(facts, side, w)
	lines = append(lines, "", section(th, "LOG TAIL"))
	tail := LogTail(c.Store.Logs, d.Node, d.ID, 8, LogTailScanRecords)
	if len(tail) == 0 {
		lines = append(lines, th.Paint(common.ToneDim, "no recent log records for "+d.ID))
	}
	for _, r := range tail {
		var b strings.Builder
		FormatLogLine(&b, th, r, NodeName(s, r.Node), w)
		lines = append(lines, b.String())
	}
	return lines
}

func groupNote(l snapshot.Lineage) string {
	switch l.Kind {
	case snapshot.GroupStandby:
		return fmt.Sprintf(" · group %s · term %d · synced %d", l.Group, l.Term, l.Synced)
	case snapshot.GroupFork:
		if l.ForkSentinel != 0 {
			// The fork's link back to the parent at the fork point.
			return fmt.Sprintf(" · group %s · sentinel %016x", l.Group, l.ForkSentinel)
		}
		return " · group " + l.Group + " · no sentinel (parent has no chain)"
	case snapshot.GroupReplica:
		return " · group " + l.Group
	}
	return ""
}

func (p *DaemonPage) View(w, h int) string {
	d := FindDaemon(p.c.Snap, p.id)
	if d == nil {
		return widgets.Empty(p.c.Theme, "daemon "+p.id+" is no longer placed (esc back)", w, h)
	}
	return scrolled(DaemonDetail(p.c, d, w), &p.scroll, w, h)
}
