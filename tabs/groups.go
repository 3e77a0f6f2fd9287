package tabs

import (
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/widgets"
)

// Groups is the GROUPS tab: the lineage tree of replica, standby and fork
// groups with a detail pane. It has two cursor axes: ↑/↓ choose the group,
// ←/→ the member within it.
type Groups struct {
	c      *common.Context
	filter string
	group  int
	member int
	// treeH is the tree pane's height at the last View: PgUp/PgDn move the
	// group cursor by about that many lines, as the tables move by a page.
	treeH int
}

// NewGroups makes the GROUPS tab.
func NewGroups(c *common.Context) *Groups { return &Groups{c: c} }

func (t *Groups) Name() string { return "GROUPS" }
func (t *Groups) Sync()        { t.clamp() }

func (t *Groups) SetFilter(q string) { t.filter = q; t.group, t.member = 0, 0 }
func (t *Groups) Filter() string     { return t.filter }

func (t *Groups) groups() []*snapshot.Group {
	var out []*snapshot.Group
	q := strings.ToLower(t.filter)
	for i := range t.c.Snap.Groups {
		g := &t.c.Snap.Groups[i]
		if q == "" || ContainsFold(g.Name, q) || ContainsFold(strings.Join(g.Members, " "), q) {
			out = append(out, g)
		}
	}
	return out
}

func (t *Groups) clamp() {
	gs := t.groups()
	t.group = min(max(t.group, 0), max(len(gs)-1, 0))
	if len(gs) == 0 {
		t.member = 0
		return
	}
	t.member = min(max(t.member, 0), max(len(gs[t.group].Members)-1, 0))
}

func (t *Groups) selectedDaemon() string {
	gs := t.groups()
	if t.group < len(gs) && t.member < len(gs[t.group].Members) {
		return gs[t.group].Members[t.member]
	}
	return ""
}

func (t *Groups) Selection() common.Selection {
	id := t.selectedDaemon()
	return common.Selection{Daemon: id, Node: nodeOfDaemon(t.c.Snap, id), Label: id}
}

func (t *Groups) HandleKey(msg tea.KeyPressMsg) tea.Cmd {
	k := t.c.Keys
	switch {
	case key.Matches(msg, k.Up):
		t.group--
		t.member = 0
	case key.Matches(msg, k.Down):
		t.group++
		t.member = 0
	case key.Matches(msg, k.Left):
		t.member--
	case key.Matches(msg, k.Right):
		t.member++
	case key.Matches(msg, k.Top):
		t.group, t.member = 0, 0
	case key.Matches(msg, k.Bottom):
		t.group, t.member = 1<<30, 0
	case key.Matches(msg, k.PageUp):
		t.group -= t.pageGroups(-1)
		t.member = 0
	case key.Matches(msg, k.PageDown):
		t.group += t.pageGroups(1)
		t.member = 0
	default:
		cmd, _ := daemonActions(k, msg, t.selectedDaemon())
		return cmd
	}
	t.clamp()
	return nil
}

// pageGroups is how many groups PgUp (dir -1) or PgDn (dir 1) moves over:
// the groups whose tree lines (header plus members) fit in one page of the
// tree pane (its height less one, like widgets.Table), at least one.
func (t *Groups) pageGroups(dir int) int {
	gs := t.groups()
	page := max(t.treeH-1, 1)
	n, lines := 0, 0
	for i := t.group + dir; i >= 0 && i < len(gs); i += dir {
		lines += 1 + len(gs[i].Members)
		if lines > page && n > 0 {
			break
		}
		n++
	}
	return max(n, 1)
}

// GroupHeader is a group's tree line: kind, name, membership and chain.
func GroupHeader(s *snapshot.ClusterSnapshot, g *snapshot.Group) string {
	placed := 0
	for _, m := range g.Members {
		if FindDaemon(s, m) != nil {
			placed++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s · %d/%d", strings.ToUpper(g.Kind.String()), g.Name, placed, g.Desired)
	switch g.Kind {
	case snapshot.GroupStandby:
		fmt.Fprintf(&b, " · term %d", g.Term)
	case snapshot.GroupFork:
		fmt.Fprintf(&b, " · forked from %s@%d", g.Parent, g.ForkAt)
	}
	if g.Chain != "" {
		b.WriteString(" · chain " + g.Chain)
	}
	return b.String()
}

// GroupTree renders the lineage tree; sel marks the selected member.
func GroupTree(th *common.Theme, s *snapshot.ClusterSnapshot, now time.Time, gs []*snapshot.Group, selG, selM int, w int) (lines []string, selLine int) {
	for gi, g := range gs {
		tone := common.ToneTitle
		if gi == selG {
			tone = common.ToneAccent
			selLine = len(lines)
		}
		lines = append(lines, th.Paint(tone, widgets.Truncate(GroupHeader(s, g), w)))
		for mi, m := range g.Members {
			branch := "├ "
			if mi == len(g.Members)-1 {
				branch = "└ "
			}
			d := FindDaemon(s, m)
			var text string
			stTone := common.ToneWarn
			if d == nil {
				text = widgets.Fit(m, 12) + " not placed"
			} else {
				var st string
				st, stTone = DaemonState(d, now)
				text = widgets.Fit(m, 12) + " " + widgets.Fit(LineageLabel(d.Lineage), 14) + " " + widgets.Fit(NodeName(s, d.Node), 11) + " " + widgets.Fit(st, 12)
				if d.Lineage.Kind == snapshot.GroupStandby {
					text += fmt.Sprintf(" synced %d", d.Lineage.Synced)
				}
			}
			if gi == selG && mi == selM {
				lines = append(lines, "  "+th.Paint(common.ToneSelected, widgets.CursorMarker+widgets.Truncate(text, w-4)))
			} else {
				lines = append(lines, "  "+th.Paint(common.ToneDim, branch)+th.Paint(stTone, widgets.Truncate(text, w-4)))
			}
		}
	}
	return lines, selLine
}

func (t *Groups) View(w, h int) string {
	th := t.c.Theme
	gs := t.groups()
	head := headerLine(th, fmt.Sprintf("%d groups · ↑/↓ group · ←/→ member", len(gs)), t.filterNote(), w)
	if h <= 1 {
		return head
	}
	if len(gs) == 0 {
		return head + "\n" + widgets.Empty(th, "no replica, standby or fork groups", w, h-1)
	}
	treeW, detW := w, w
	treeH, detH := h-1, 0
	wide := w >= 120
	if wide {
		treeW = w * 3 / 5
		detW = w - treeW - 1
	} else {
		detH = min(8, (h-1)/2)
		treeH = h - 1 - detH
	}
	t.treeH = treeH
	tree, sel := GroupTree(th, t.c.Snap, t.c.Now, gs, t.group, t.member, treeW)
	off := 0
	if sel+t.member+2 > treeH {
		off = sel + t.member + 2 - treeH
	}
	if off > len(tree) {
		off = len(tree)
	}
	tree = tree[off:]
	var detail []string
	if id := t.selectedDaemon(); id != "" {
		if d := FindDaemon(t.c.Snap, id); d != nil {
			detail = t.detail(d, detW)
		} else {
			detail = []string{th.Paint(common.ToneWarn, id+" is not placed")}
		}
	}
	if wide {
		out := make([]string, h-1)
		for i := range out {
			l, r := "", ""
			if i < len(tree) {
				l = tree[i]
			}
			if i < len(detail) {
				r = detail[i]
			}
			out[i] = widgets.FitANSI(l, treeW) + th.Paint(common.ToneDim, "│") + widgets.FitANSI(r, detW)
		}
		return head + "\n" + strings.Join(out, "\n")
	}
	return head + "\n" + widgets.Lines(tree, w, treeH) + "\n" + widgets.Lines(append([]string{widgets.Rule(th, w)}, detail...), w, detH)
}

func (t *Groups) detail(d *snapshot.Daemon, w int) []string {
	th := t.c.Theme
	st, tone := DaemonState(d, t.c.Now)
	lines := []string{
		th.Paint(common.ToneTitle, d.ID) + " " + th.Paint(common.ToneAccent, LineageLabel(d.Lineage)) + " on " + NodeName(t.c.Snap, d.Node) +
			" · " + th.Paint(tone, st) + " · " + th.Paint(DaemonHealthTone(d.Health), d.Health.String()) + " · sat " + widgets.Pct(d.Saturation),
	}
	for _, r := range LogTail(t.c.Store.Logs, d.Node, d.ID, 6, LogTailScanRecords) {
		var b strings.Builder
		FormatLogLine(&b, th, r, NodeName(t.c.Snap, r.Node), w)
		lines = append(lines, b.String())
	}
	if len(lines) == 1 {
		lines = append(lines, th.Paint(common.ToneDim, "no recent log records"))
	}
	return lines
}

func (t *Groups) filterNote() string {
	if t.filter != "" {
		return "/" + t.filter
	}
	return ""
}

func (t *Groups) Bindings() []key.Binding {
	k := t.c.Keys
	return []key.Binding{k.Up, k.Left, k.Enter, k.Logs, k.Restart, k.ForceRestart, k.Filter}
}
