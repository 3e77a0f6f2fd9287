package tabs

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/widgets"
)

// RootSubnetLabel is how the root subnet (path "") is written.
const RootSubnetLabel = "(root)"

// subnetIndent is the PATH column's indent per tree level (cells).
const subnetIndent = 2

// SubnetLabel is a subnet path as the deck writes it.
func SubnetLabel(path string) string {
	if path == "" {
		return RootSubnetLabel
	}
	return widgets.Printable(path)
}

// subnetTone marks the console's own subnet in node tables.
func subnetTone(s *snapshot.ClusterSnapshot, path string) common.Tone {
	if s != nil && path == s.LocalSubnet {
		return common.ToneAccent
	}
	return common.ToneDim
}

// SubnetLess orders subnet paths as a tree: segment by segment, so a
// subnet's descendants follow it directly ("eu", "eu/ams", "eu-west").
func SubnetLess(a, b string) bool {
	for {
		ha, ra, _ := strings.Cut(a, "/")
		hb, rb, _ := strings.Cut(b, "/")
		if ha != hb {
			return ha < hb
		}
		if ra == "" || rb == "" {
			return ra == "" && rb != ""
		}
		a, b = ra, rb
	}
}

// SubnetTree returns the view's subnets in tree order, each with its depth
// under the nearest ancestor the view knows.
func SubnetTree(s *snapshot.ClusterSnapshot) (views []*snapshot.SubnetView, depth []int) {
	views = make([]*snapshot.SubnetView, len(s.Subnets))
	for i := range s.Subnets {
		views[i] = &s.Subnets[i]
	}
	slices.SortStableFunc(views, func(a, b *snapshot.SubnetView) int {
		switch {
		case SubnetLess(a.Path, b.Path):
			return -1
		case SubnetLess(b.Path, a.Path):
			return 1
		}
		return 0
	})
	level := make(map[string]int, len(views))
	depth = make([]int, len(views))
	for i, v := range views {
		for p := snapshot.Parent(v.Path); ; p = snapshot.Parent(p) {
			if d, ok := level[p]; ok && p != v.Path {
				depth[i] = d + 1
				break
			}
			if p == "" {
				break
			}
		}
		level[v.Path] = depth[i]
	}
	return views, depth
}

// Rollup writes counts by health, worst last (nodes: healthy/suspect/
// unreachable; daemons: healthy/degraded/unhealthy), as "7/1/1", with the
// tone of the worst present.
func Rollup(n [3]int) (string, common.Tone) {
	tone := common.ToneOK
	switch {
	case n[2] > 0:
		tone = common.ToneDanger
	case n[1] > 0:
		tone = common.ToneWarn
	case n[0] == 0:
		tone = common.ToneDim
	}
	return fmt.Sprintf("%d/%d/%d", n[0], n[1], n[2]), tone
}

// subnetView finds the view's subnet at path.
func subnetView(s *snapshot.ClusterSnapshot, path string) *snapshot.SubnetView {
	for i := range s.Subnets {
		if s.Subnets[i].Path == path {
			return &s.Subnets[i]
		}
	}
	return nil
}

// aggregatorOf finds the registry's entry for subnet path.
func aggregatorOf(s *snapshot.ClusterSnapshot, path string) *snapshot.Aggregator {
	for i := range s.Aggregators {
		if s.Aggregators[i].Subnet == path {
			return &s.Aggregators[i]
		}
	}
	return nil
}

// StaleMarker follows what the view holds as stale (a summary past the
// staleness bound).
const StaleMarker = "⚠stale"

// viewLabel is the VIEW cell: what the console holds of a subnet.
func viewLabel(v *snapshot.SubnetView) (string, common.Tone) {
	switch {
	case v.Local:
		return "LOCAL", common.ToneAccent
	case v.Detailed:
		return "detail", common.ToneTitle
	}
	return "summary", common.ToneDim
}

// Subnets is the SUBNETS tab: the subnet tree as the view holds it.
type Subnets struct{ subnetTab }

// subnetKeyPrefix prefixes a SUBNETS row's key (the path follows).
const subnetKeyPrefix = "subnet:"

// NewSubnets makes the SUBNETS tab.
func NewSubnets(c *common.Context) *Subnets {
	return &Subnets{subnetTab{rows: SubnetRows, summarize: SubnetsSummary,
		empty: "no subnets in the view (a mesh without --subnet is one root subnet)", tableTab: tableTab{c: c, table: widgets.NewTable(
			widgets.Column{Title: "PATH", Width: 14, Flex: true},
			widgets.Column{Title: "PARENT", Width: 8, HideBelow: 100},
			widgets.Column{Title: "VIEW", Width: 7},
			widgets.Column{Title: "HEALTH", Width: 8, Align: widgets.AlignRight},
			widgets.Column{Title: "DAEMONS", Width: 8, Align: widgets.AlignRight},
			widgets.Column{Title: "SAT", Width: 4, Align: widgets.AlignRight},
			widgets.Column{Title: "CHAINS", Width: 6, Align: widgets.AlignRight, HideBelow: 120},
			widgets.Column{Title: "GW", Width: 2, Align: widgets.AlignRight, HideBelow: 120},
			widgets.Column{Title: "AGG", Width: 16},
			widgets.Column{Title: "AGE", Width: 6, Align: widgets.AlignRight, HideBelow: 100},
		)}}}
}

func (t *Subnets) Name() string { return "SUBNETS" }

// SubnetRows turns the view's subnets into SUBNETS rows (pure; unit
// tested): tree order, PATH indented under its nearest known ancestor,
// HEALTH and DAEMONS as rollups toned by their worst, AGG the summary's
// builder and generation with the stale marker.
func SubnetRows(s *snapshot.ClusterSnapshot, now time.Time) []widgets.Row {
	views, depth := SubnetTree(s)
	rows := make([]widgets.Row, 0, len(views))
	for i, v := range views {
		health, hTone := Rollup(v.Nodes)
		daemons, dTone := Rollup(v.Daemons)
		view, vTone := viewLabel(v)
		chains, cTone := fmt.Sprintf("%d/%d", v.ChainsHeld, v.ChainsDesired), common.ToneNormal
		if v.ChainsHeld < v.ChainsDesired {
			cTone = common.ToneWarn
		}
		agg, aTone := "—", common.ToneDim
		if v.Aggregator != 0 || v.Generation != 0 {
			agg = NodeName(s, v.Aggregator) + " g" + strconv.FormatUint(v.Generation, 10)
		}
		if v.Stale {
			agg, aTone = agg+" "+StaleMarker, common.ToneWarn
		}
		parent := "—"
		if v.Path != "" {
			parent = SubnetLabel(snapshot.Parent(v.Path))
		}
		age := "—"
		if !v.BuiltAt.IsZero() {
			age = widgets.Since(now, v.BuiltAt)
		}
		hosting := v.Nodes[0] + v.Nodes[1] + v.Nodes[2]
		sat, satTone := widgets.Pct(v.Saturation), widgets.LoadTone(v.Saturation)
		if hosting == 0 {
			sat, satTone = "—", common.ToneDim
		}
		pathTone := common.ToneNormal
		if v.Local {
			pathTone = common.ToneAccent
		}
		rows = append(rows, widgets.Row{
			Key: subnetKeyPrefix + v.Path,
			Cells: []string{strings.Repeat(" ", subnetIndent*depth[i]) + SubnetLabel(v.Path), parent, view, health, daemons,
				sat, chains, strconv.Itoa(len(v.Gateways)), agg, age},
			Tones: []common.Tone{pathTone, common.ToneDim, vTone, hTone, dTone, satTone, cTone, common.ToneDim, aTone, common.ToneDim},
		})
	}
	return rows
}

// SubnetsSummary is the SUBNETS header: how many subnets, the local one,
// and the nodes they count by health.
func SubnetsSummary(s *snapshot.ClusterSnapshot) string {
	var n [3]int
	stale := 0
	for i := range s.Subnets {
		v := &s.Subnets[i]
		for h := range n {
			n[h] += v.Nodes[h]
		}
		if v.Stale {
			stale++
		}
	}
	out := fmt.Sprintf("%d subnets · local %s · %d nodes · %d healthy · %d suspect · %d unreachable",
		len(s.Subnets), SubnetLabel(s.LocalSubnet), n[0]+n[1]+n[2], n[0], n[1], n[2])
	if stale > 0 {
		out += fmt.Sprintf(" · %d stale", stale)
	}
	return out
}

// subnetTab is a table tab whose rows are keyed by subnet (subnetKeyPrefix
// and the path), built by rows with the header summarize writes: rebuilt on
// a new snapshot and on the 1 Hz tick (their ages move; a row per subnet
// is few). Enter opens the subnet's focus page; the cluster-wide ICE keys
// apply.
type subnetTab struct {
	tableTab
	rows      func(s *snapshot.ClusterSnapshot, now time.Time) []widgets.Row
	summarize func(s *snapshot.ClusterSnapshot) string
	empty     string
	last      *snapshot.ClusterSnapshot
	lastNow   time.Time
	summary   string
}

func (t *subnetTab) Sync() {
	s := t.c.Snap
	if s == t.last && sameSecond(t.c.Now, t.lastNow) {
		return
	}
	t.last, t.lastNow = s, t.c.Now
	t.table.SetRows(t.rows(s, t.c.Now))
	t.summary = t.summarize(s)
}

func (t *subnetTab) View(w, h int) string { return t.render(t.summary, w, h, t.empty) }

// selectedPath is the subnet under the cursor.
func (t *subnetTab) selectedPath() (string, bool) {
	return strings.CutPrefix(t.table.SelectedKey(), subnetKeyPrefix)
}

func (t *subnetTab) Selection() common.Selection {
	p, _ := t.selectedPath()
	return common.Selection{Label: SubnetLabel(p)}
}

func (t *subnetTab) HandleKey(msg tea.KeyPressMsg) tea.Cmd {
	if t.table.HandleKey(msg, t.c.Keys) {
		return nil
	}
	if p, ok := t.selectedPath(); ok && key.Matches(msg, t.c.Keys.Enter) {
		return openSubnet(p)
	}
	cmd, _ := clusterActions(t.c.Keys, msg)
	return cmd
}

func (t *subnetTab) Bindings() []key.Binding {
	k := t.c.Keys
	return []key.Binding{common.As(k.Enter, "focus subnet"), k.Filter, k.Freeze, k.Thaw, k.FlushAvoid}
}

func openSubnet(path string) tea.Cmd {
	return common.Emit(common.OpenPageMsg{Kind: common.PageSubnet, Subnet: path})
}

// SubnetPage is the focus page of one subnet: the health rollup from its
// summary, and its members in the NODES table once the view holds them
// (the root drills the view into the subnet while the page is open).
type SubnetPage struct {
	nodeTab
	path string
	last *snapshot.ClusterSnapshot
	// FocusErr is why the drill failed, if it did (the root sets it).
	FocusErr error
}

// NewSubnetPage makes the focus page of the subnet at path.
func NewSubnetPage(c *common.Context, path string) *SubnetPage {
	return &SubnetPage{nodeTab: nodeTab{tableTab{c: c, table: widgets.NewTable(nodeColumns()...)}}, path: path}
}

// Path is the page's subnet.
func (p *SubnetPage) Path() string { return p.path }

func (p *SubnetPage) Name() string { return "SUBNET " + SubnetLabel(p.path) }

// SubnetMembers are the view's nodes in subnet path, in NODES order.
func SubnetMembers(s *snapshot.ClusterSnapshot, path string) []*snapshot.NodeView {
	var out []*snapshot.NodeView
	for _, n := range SortedNodes(s) {
		if n.Subnet == path {
			out = append(out, n)
		}
	}
	return out
}

func (p *SubnetPage) Sync() {
	s := p.c.Snap
	if s == p.last {
		return
	}
	p.last = s
	p.table.SetRows(NodeRowsOf(s, SubnetMembers(s, p.path)))
}

func (p *SubnetPage) HandleKey(msg tea.KeyPressMsg) tea.Cmd {
	if p.table.HandleKey(msg, p.c.Keys) {
		return nil
	}
	if cmd, ok := membershipActions(p.c, msg, p.selected()); ok {
		return cmd
	}
	return p.nodeTab.HandleKey(msg)
}

func (p *SubnetPage) Bindings() []key.Binding {
	return append([]key.Binding{p.c.Keys.Back}, memberBindings(p.c.Keys)...)
}

// SubnetDetail is the focus page's head (pure): the summary's rollups,
// what the view holds of the subnet, and its aggregator group.
func SubnetDetail(th *common.Theme, s *snapshot.ClusterSnapshot, path string, now time.Time, w int) []string {
	v := subnetView(s, path)
	if v == nil {
		return []string{th.Paint(common.ToneWarn, widgets.Truncate("subnet "+SubnetLabel(path)+" is not in the view", w))}
	}
	health, hTone := Rollup(v.Nodes)
	daemons, dTone := Rollup(v.Daemons)
	view, vTone := viewLabel(v)
	built := "never"
	if !v.BuiltAt.IsZero() {
		built = widgets.Since(now, v.BuiltAt) + " ago"
	}
	summary := fmt.Sprintf("g%d by %s · built %s", v.Generation, NodeName(s, v.Aggregator), built)
	sTone := common.ToneDim
	if v.Stale {
		summary, sTone = summary+" "+StaleMarker, common.ToneWarn
	}
	hosting := v.Nodes[0] + v.Nodes[1] + v.Nodes[2]
	gws := make([]string, len(v.Gateways))
	for i, id := range v.Gateways {
		gws[i] = NodeName(s, id)
	}
	children := make([]string, len(v.Children))
	for i, c := range v.Children {
		children[i] = SubnetLabel(c)
	}
	agg := "no aggregator group in the registry"
	aTone := common.ToneWarn
	if a := aggregatorOf(s, path); a != nil {
		agg, aTone = fmt.Sprintf("aggregators %d/%d · leader %s", len(a.Members), a.Desired, NodeName(s, a.Leader)), common.ToneNormal
		if len(a.Members) < a.Desired {
			aTone = common.ToneWarn
		}
	}
	line := func(parts ...string) string { return widgets.FitANSI(strings.Join(parts, " "), w) }
	return []string{
		line(th.Paint(vTone, view), th.Paint(common.ToneDim, "· parent "+SubnetLabel(snapshot.Parent(path))+" ·"), th.Paint(sTone, summary)),
		line(th.Paint(common.ToneDim, widgets.Fit("nodes", 8)), th.Paint(hTone, health),
			th.Paint(common.ToneDim, fmt.Sprintf("(%d healthy · %d suspect · %d unreachable)", v.Nodes[0], v.Nodes[1], v.Nodes[2]))),
		line(th.Paint(common.ToneDim, widgets.Fit("daemons", 8)), th.Paint(dTone, daemons),
			th.Paint(common.ToneDim, "(healthy/degraded/unhealthy) · sat"), th.Paint(widgets.LoadTone(v.Saturation), widgets.Pct(v.Saturation)),
			th.Paint(common.ToneDim, fmt.Sprintf("· free %.1f of %d", v.Capacity, hosting))),
		line(th.Paint(common.ToneDim, widgets.Fit("chains", 8)), th.Paint(common.ToneNormal, fmt.Sprintf("%d/%d", v.ChainsHeld, v.ChainsDesired)),
			th.Paint(common.ToneDim, fmt.Sprintf("· blobs %d · children %s · gateways %s", v.Blobs, orDash(strings.Join(children, ",")), orDash(strings.Join(gws, ","))))),
		line(th.Paint(common.ToneDim, widgets.Fit("group", 8)), th.Paint(aTone, agg)),
	}
}

func (p *SubnetPage) View(w, h int) string {
	if h <= 0 {
		return ""
	}
	th := p.c.Theme
	s := p.c.Snap
	lines := SubnetDetail(th, s, p.path, p.c.Now, w)
	if len(lines) >= h {
		return widgets.Lines(lines[:h], w, h)
	}
	rest := h - len(lines)
	v := subnetView(s, p.path)
	var body string
	switch {
	case p.FocusErr != nil:
		body = widgets.Empty(th, "members unavailable: "+p.FocusErr.Error(), w, rest)
	case v != nil && !v.Detailed:
		body = widgets.Empty(th, "fetching the members of "+SubnetLabel(p.path)+"…", w, rest)
	default:
		body = p.render(fmt.Sprintf("members of %s", SubnetLabel(p.path)), w, rest, "no members in the view")
	}
	return widgets.Lines(lines, w, len(lines)) + "\n" + body
}
