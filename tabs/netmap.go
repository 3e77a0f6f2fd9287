package tabs

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/widgets"
)

// Map glyphs (FEATURES.md legend).
const (
	GlyphNode        = "◆"
	GlyphDatafort    = "■"
	GlyphUnreachable = "◇"
	GlyphDegraded    = "▲"
	glyphEdge        = '·'
)

// Map layout limits.
const (
	// MapMinCols is the narrowest terminal that gets the drawn map; below
	// it the tab falls back to a list.
	MapMinCols      = 100
	mapSideMinCells = 36
	mapSideMaxCells = 52
	mapEvents       = 6
	// mapNudgeTries bounds the search for a free cell when glyphs collide.
	mapNudgeTries = 24
)

// NetMap is the NET.MAP tab: nodes placed by RTT from self.
type NetMap struct {
	tableTab
	last   *snapshot.ClusterSnapshot
	failG  uint64
	order  []api.NodeID // by RTT, self first
	events []mapEvent
	// layout is cached per snapshot and map size, not per frame.
	layout *mapLayout
}

type mapEvent struct {
	at   time.Time
	text string
	tone common.Tone
}

type mapCell struct {
	r    rune
	tone common.Tone
	node int // index into order+1 for label/glyph cells of a node; 0 none
}

type mapLayout struct {
	snap *snapshot.ClusterSnapshot
	w, h int
	grid []mapCell
	pos  map[api.NodeID][2]int
}

// NewNetMap makes the NET.MAP tab.
func NewNetMap(c *common.Context) *NetMap {
	return &NetMap{tableTab: tableTab{c: c, table: widgets.NewTable(
		widgets.Column{Title: "NODE", Width: 14, Flex: true},
		widgets.Column{Title: "HEALTH", Width: 11},
		widgets.Column{Title: "RTT", Width: 6, Align: widgets.AlignRight},
		widgets.Column{Title: "LINKS", Width: 5, Align: widgets.AlignRight},
		widgets.Column{Title: "AVOID", Width: 5, Align: widgets.AlignRight},
		widgets.Column{Title: "CAPS", Width: 16},
	)}, failG: ^uint64(0)}
}

func (t *NetMap) Name() string { return "NET.MAP" }

// Glyph is a node's map glyph: unreachable ◇, degraded/suspect ▲,
// datafort ■, otherwise ◆.
func Glyph(n *snapshot.NodeView) (string, common.Tone) {
	switch {
	case n.Health == snapshot.Unreachable:
		return GlyphUnreachable, common.ToneDanger
	case n.Health == snapshot.Suspect || n.Stale:
		return GlyphDegraded, common.ToneWarn
	}
	for _, c := range n.Capabilities {
		if c == "datafort" {
			return GlyphDatafort, common.ToneAccent
		}
	}
	return GlyphNode, common.ToneOK
}

// ByRTT orders node ids self first, then reachable by RTT, unreachable last.
func ByRTT(s *snapshot.ClusterSnapshot) []api.NodeID {
	nodes := make([]*snapshot.NodeView, len(s.Nodes))
	for i := range s.Nodes {
		nodes[i] = &s.Nodes[i]
	}
	rank := func(n *snapshot.NodeView) (int, int64) {
		switch {
		case n.ID == s.Self:
			return 0, 0
		case n.Health == snapshot.Unreachable || n.RTT <= 0:
			return 2, 0
		}
		return 1, int64(n.RTT)
	}
	sort.SliceStable(nodes, func(i, j int) bool {
		ri, ti := rank(nodes[i])
		rj, tj := rank(nodes[j])
		if ri != rj {
			return ri < rj
		}
		if ti != tj {
			return ti < tj
		}
		return nodes[i].ID < nodes[j].ID
	})
	out := make([]api.NodeID, len(nodes))
	for i, n := range nodes {
		out[i] = n.ID
	}
	return out
}

// MapRows are the list-fallback rows in RTT order (pure; unit tested).
func MapRows(s *snapshot.ClusterSnapshot, order []api.NodeID) []widgets.Row {
	links := map[api.NodeID]int{}
	for _, e := range s.Edges {
		links[e.A]++
		links[e.B]++
	}
	rows := make([]widgets.Row, 0, len(order))
	for _, id := range order {
		n := s.Node(id)
		if n == nil {
			continue
		}
		g, tone := Glyph(n)
		name := g + " " + NodeName(s, id)
		if id == s.Self {
			name += " (self)"
		}
		rtt := widgets.RTT(n.RTT)
		if id == s.Self {
			rtt = "·"
		}
		rows = append(rows, widgets.Row{
			Key:   id.String(),
			Cells: []string{name, n.Health.String(), rtt, itoa(links[id]), itoa(len(n.Avoid)), strings.Join(n.Capabilities, ",")},
			Tones: []common.Tone{tone, HealthTone(n.Health), common.ToneNormal, common.ToneDim, common.ToneDim, common.ToneDim},
		})
	}
	return rows
}

func (t *NetMap) Sync() {
	s := t.c.Snap
	if s != t.last {
		t.last = s
		t.order = ByRTT(s)
		t.table.SetRows(MapRows(s, t.order))
		t.layout = nil
	}
	if t.c.Store.FailuresGen != t.failG || t.events == nil {
		t.failG = t.c.Store.FailuresGen
		t.events = meshEvents(s, t.c.Store.Failures.Len(), func(i int) api.FailureRecord { return *t.c.Store.Failures.Index(i) })
	}
}

// meshEvents lists the recent mesh events, newest first: nodes that are not
// healthy, then the latest failures.
func meshEvents(s *snapshot.ClusterSnapshot, nFail int, fail func(int) api.FailureRecord) []mapEvent {
	out := []mapEvent{}
	for i := range s.Nodes {
		n := &s.Nodes[i]
		if n.Health != snapshot.Healthy {
			out = append(out, mapEvent{at: n.HealthSince, text: NodeName(s, n.ID) + " " + n.Health.String(), tone: HealthTone(n.Health)})
		}
	}
	for i := nFail - 1; i >= 0 && i >= nFail-mapEvents; i-- {
		f := fail(i)
		out = append(out, mapEvent{at: f.At, text: NodeName(s, f.Node) + " " + f.Source + ": " + f.Reason, tone: common.ToneWarn})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at.After(out[j].at) })
	if len(out) > mapEvents {
		out = out[:mapEvents]
	}
	return out
}

// Layout places nodes on a w×h grid: self at the centre, radius growing
// with log RTT, angle by id; unreachable nodes on the rim. Edges are drawn
// first as dots so glyphs and labels win. Exposed for tests.
func Layout(s *snapshot.ClusterSnapshot, order []api.NodeID, w, h int) *mapLayout {
	l := &mapLayout{snap: s, w: w, h: h, grid: make([]mapCell, w*h), pos: make(map[api.NodeID][2]int, len(order))}
	for i := range l.grid {
		l.grid[i].r = ' '
	}
	if w < 8 || h < 3 {
		return l
	}
	cx, cy := float64(w)/2, float64(h)/2
	rx, ry := float64(w)/2-8, float64(h)/2-1
	var maxRTT float64
	for i := range s.Nodes {
		if ms := float64(s.Nodes[i].RTT) / 1e6; ms > maxRTT {
			maxRTT = ms
		}
	}
	occupied := func(x, y int) bool { return l.grid[y*w+x].node != 0 }
	for oi, id := range order {
		n := s.Node(id)
		if n == nil {
			continue
		}
		var x, y int
		if id == s.Self {
			x, y = int(cx), int(cy)
		} else {
			r := 1.0
			if n.Health != snapshot.Unreachable && n.RTT > 0 && maxRTT > 0 {
				r = 0.3 + 0.6*math.Log1p(float64(n.RTT)/1e6)/math.Log1p(maxRTT)
			}
			// Angle by id: a multiplicative hash spreads neighbouring ids.
			a := 2 * math.Pi * float64((uint64(id)*0x9E3779B97F4A7C15)>>40) / float64(1<<24)
			for try := 0; try < mapNudgeTries; try++ {
				x = int(cx + r*rx*math.Cos(a) + 0.5)
				y = int(cy + r*ry*math.Sin(a) + 0.5)
				x = min(max(x, 0), w-1)
				y = min(max(y, 0), h-1)
				if !occupied(x, y) {
					break
				}
				a += 0.27
			}
		}
		l.pos[id] = [2]int{x, y}
		l.grid[y*w+x].node = oi + 1
	}
	// Edges as dotted lines between placed endpoints.
	for _, e := range s.Edges {
		pa, okA := l.pos[e.A]
		pb, okB := l.pos[e.B]
		if !okA || !okB {
			continue
		}
		dx, dy := pb[0]-pa[0], pb[1]-pa[1]
		steps := max(abs(dx), abs(dy))
		for k := 1; k < steps; k++ {
			x := pa[0] + dx*k/steps
			y := pa[1] + dy*k/steps
			c := &l.grid[y*w+x]
			if c.node == 0 && c.r == ' ' && k%2 == 0 {
				c.r, c.tone = glyphEdge, common.ToneDim
			}
		}
	}
	// Glyphs and labels.
	for oi, id := range order {
		p, ok := l.pos[id]
		if !ok {
			continue
		}
		n := s.Node(id)
		g, tone := Glyph(n)
		cell := &l.grid[p[1]*w+p[0]]
		cell.r, cell.tone, cell.node = []rune(g)[0], tone, oi+1
		label := NodeName(s, id)
		for k, r := range label {
			x := p[0] + 2 + k
			if x >= w {
				break
			}
			c := &l.grid[p[1]*w+x]
			if c.node != 0 && c.node != oi+1 {
				break
			}
			c.r, c.tone, c.node = r, common.ToneNormal, oi+1
		}
	}
	return l
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// render paints the grid, highlighting the cells of node sel (1-based).
func (l *mapLayout) render(th *common.Theme, sel int) []string {
	out := make([]string, l.h)
	var b strings.Builder
	for y := 0; y < l.h; y++ {
		b.Reset()
		row := l.grid[y*l.w : (y+1)*l.w]
		for x := 0; x < len(row); {
			tone := row[x].tone
			hi := sel != 0 && row[x].node == sel && row[x].r != ' '
			if hi {
				tone = common.ToneSelected
			}
			var run strings.Builder
			for x < len(row) {
				c := row[x]
				chi := sel != 0 && c.node == sel && c.r != ' '
				ct := c.tone
				if chi {
					ct = common.ToneSelected
				}
				if ct != tone {
					break
				}
				run.WriteRune(c.r)
				x++
			}
			th.PaintTo(&b, tone, run.String())
		}
		out[y] = b.String()
	}
	return out
}

func (t *NetMap) selected() api.NodeID {
	if r, ok := t.table.Selected(); ok {
		if id, err := parseKeyID(r.Key); err == nil {
			return id
		}
	}
	return 0
}

func (t *NetMap) Selection() common.Selection {
	id := t.selected()
	return common.Selection{Node: id, Label: NodeName(t.c.Snap, id)}
}

func (t *NetMap) HandleKey(msg tea.KeyPressMsg) tea.Cmd {
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

func (t *NetMap) summary() string {
	s := t.c.Snap
	return fmt.Sprintf("%s · %d nodes · %d links · self %s", s.Cluster, len(s.Nodes), len(s.Edges), NodeName(s, s.Self))
}

func (t *NetMap) View(w, h int) string {
	if w < MapMinCols {
		return t.render(t.summary()+" · list view (map needs ≥100 cols)", w, h, "no nodes")
	}
	th := t.c.Theme
	sideW := min(max(w/4, mapSideMinCells), mapSideMaxCells)
	mapW := w - sideW - 1
	mapH := h
	if t.layout == nil || t.layout.snap != t.c.Snap || t.layout.w != mapW || t.layout.h != mapH {
		t.layout = Layout(t.c.Snap, t.order, mapW, mapH)
	}
	sel := t.table.Cursor() + 1
	if t.table.Filter() != "" {
		// With a filter the cursor indexes filtered rows; find the node.
		sel = 0
		for i, id := range t.order {
			if id == t.selected() {
				sel = i + 1
			}
		}
	}
	canvas := t.layout.render(th, sel)
	side := t.side(sideW, h)
	out := make([]string, h)
	for i := range out {
		out[i] = canvas[i] + th.Paint(common.ToneDim, "│") + widgets.FitANSI(side[i], sideW)
	}
	return strings.Join(out, "\n")
}

// side is the map's side panel: selected node, events, legend.
func (t *NetMap) side(w, h int) []string {
	th := t.c.Theme
	s := t.c.Snap
	var lines []string
	lines = append(lines, th.Paint(common.ToneTitle, widgets.Truncate(t.summary(), w)))
	if n := s.Node(t.selected()); n != nil {
		g, tone := Glyph(n)
		lines = append(lines, th.Paint(tone, g)+" "+th.Paint(common.ToneSelected, NodeName(s, n.ID))+" "+
			th.Paint(HealthTone(n.Health), n.Health.String())+" "+widgets.RTT(n.RTT))
		lines = append(lines, th.Paint(common.ToneDim, widgets.Truncate(fmt.Sprintf("sat %s · %d daemons · %d chains · %s",
			widgets.Pct(n.Resources.Saturation), len(n.Daemons), len(n.Replicas), MaintLabel(n.Maintenance.State)), w)))
	}
	lines = append(lines, "", th.Paint(common.ToneHeader, "RECENT MESH EVENTS"))
	if len(t.events) == 0 {
		lines = append(lines, th.Paint(common.ToneDim, "quiet"))
	}
	for _, e := range t.events {
		age := widgets.FitRight(widgets.Since(t.c.Now, e.at), 6)
		lines = append(lines, th.Paint(common.ToneDim, age)+" "+th.Paint(e.tone, widgets.Truncate(e.text, w-7)))
	}
	legend := []string{
		th.Paint(common.ToneHeader, "LEGEND"),
		th.Paint(common.ToneOK, GlyphNode) + " node   " + th.Paint(common.ToneAccent, GlyphDatafort) + " datafort",
		th.Paint(common.ToneDanger, GlyphUnreachable) + " unreachable " + th.Paint(common.ToneWarn, GlyphDegraded) + " degraded",
		th.Paint(common.ToneDim, "· link   radius ∝ log RTT"),
	}
	// Pin the legend to the bottom when there is room.
	if pad := h - len(lines) - len(legend); pad > 0 {
		for i := 0; i < pad; i++ {
			lines = append(lines, "")
		}
	} else {
		lines = append(lines, "")
	}
	lines = append(lines, legend...)
	for len(lines) < h {
		lines = append(lines, "")
	}
	return lines[:h]
}

func (t *NetMap) Bindings() []key.Binding {
	k := t.c.Keys
	return []key.Binding{k.Up, k.Down, k.Enter, k.Logs, k.Filter}
}
