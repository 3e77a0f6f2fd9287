package tabs

import (
	"cmp"
	"fmt"
	"math"
	"sort"
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

// Map glyphs (FEATURES.md legend).
const (
	GlyphNode        = "◆"
	GlyphDatafort    = "■"
	GlyphUnreachable = "◇"
	GlyphDegraded    = "▲"
	// GlyphSubnet is a subnet the view knows by its summary only, drawn as
	// one labelled cluster with its node count.
	GlyphSubnet = "⬢"
	glyphEdge   = '·'
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
	mapNudgeTries = 48
	// MapNearestLinks is how many of each node's lowest-RTT links are drawn;
	// the selected node's links are all drawn, highlighted. A full mesh of
	// 10 nodes has 45 links: drawn all at once they are a cloud of dots.
	MapNearestLinks = 2
	// mapRTTRelayout is the RTT ratio from which a node is moved: smaller
	// changes (jitter) keep the cached layout so the map does not dance.
	mapRTTRelayout = 2.0
	// mapRelayoutAfter is how old a layout must be before an RTT change
	// alone moves nodes: a loaded host's RTT spikes would otherwise redraw
	// the map every second.
	mapRelayoutAfter = 30 * time.Second
	glyphSelEdge     = '•'
)

// NetMap is the NET.MAP tab: nodes placed by RTT from self, clustered by
// subnet (each subnet's nodes on one arc of the ring), and the subnets
// known only by summary as one glyph each on the rim.
type NetMap struct {
	nodeTab
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

// mapLayout is the cached drawing: node positions, labels and the nearest
// links. It is rebuilt only when the node set, the link set, the size, a
// node's reachability or an RTT (by more than mapRTTRelayout) changes.
type mapLayout struct {
	snap  *snapshot.ClusterSnapshot
	w, h  int
	grid  []mapCell
	pos   map[api.NodeID][2]int
	rtt   map[api.NodeID]time.Duration // RTT each node was placed with
	down  map[api.NodeID]bool          // unreachable when placed
	order []api.NodeID
	links string // the link set placed with
	// clusters are the summary-only subnets drawn as one glyph each (grid
	// index len(order)+i+1), clusterKey what they were placed with.
	clusters   []mapCluster
	clusterKey string
	// hi marks the cells of the selected node's links (hiFor).
	checked *snapshot.ClusterSnapshot // last snapshot stillValid accepted
	at      time.Time                 // when laid out
	hi      []bool
	hiFor   api.NodeID
	hiSnap  *snapshot.ClusterSnapshot
	// drawn is the last render and what it was drawn with: a frame that
	// changes none of them reuses it (a thousand glyphs cost a few hundred
	// tone runs to paint).
	drawn      []string
	drawnKey   mapDrawKey
	drawnValid bool
}

// mapDrawKey is what a render of a layout depends on besides its grid.
type mapDrawKey struct {
	th     *common.Theme
	sel    int
	hiFor  api.NodeID
	hiSnap *snapshot.ClusterSnapshot
}

// NewNetMap makes the NET.MAP tab.
func NewNetMap(c *common.Context) *NetMap {
	return &NetMap{nodeTab: nodeTab{tableTab{c: c, table: widgets.NewTable(
		widgets.Column{Title: "NODE", Width: 14, Flex: true},
		widgets.Column{Title: "HEALTH", Width: 11},
		widgets.Column{Title: "SUBNET", Width: 8},
		widgets.Column{Title: "RTT", Width: 6, Align: widgets.AlignRight},
		widgets.Column{Title: "LINKS", Width: 5, Align: widgets.AlignRight},
		widgets.Column{Title: "AVOID", Width: 5, Align: widgets.AlignRight},
		widgets.Column{Title: "CAPS", Width: 16},
	)}}, failG: ^uint64(0)}
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

// mapCluster is a subnet the view holds only the summary of.
type mapCluster struct {
	path  string
	nodes [3]int
}

// label is the cluster's map label: its path and node count.
func (c mapCluster) label() string {
	return fmt.Sprintf("%s (%d)", SubnetLabel(c.path), c.nodes[0]+c.nodes[1]+c.nodes[2])
}

// MapClusters are the subnets the view holds by summary only, in tree
// order: each is one glyph on the map and one row of its list.
func MapClusters(s *snapshot.ClusterSnapshot) []mapCluster {
	views, _ := SubnetTree(s)
	var out []mapCluster
	for _, v := range views {
		if !v.Detailed {
			out = append(out, mapCluster{path: v.Path, nodes: v.Nodes})
		}
	}
	return out
}

// mapCellsPerNode is the canvas a node drawn on its own needs to stay
// legible (glyph, label, room around): past w×h/mapCellsPerNode nodes the
// map folds whole subnets into one glyph.
const mapCellsPerNode = 64

// MapPlan decides what the map draws: the nodes of order drawn one by one,
// and the subnets drawn as one glyph each, in tree order. Summary-only
// subnets are always one glyph; when the held nodes outnumber what a w×h
// canvas shows legibly, held subnets other than the console's own fold
// too, the largest first, until the rest fit (the list keeps every node,
// and a folded node's cursor lights its subnet's glyph).
func MapPlan(s *snapshot.ClusterSnapshot, order []api.NodeID, w, h int) (drawn []api.NodeID, clusters []mapCluster) {
	subnet := make(map[api.NodeID]string, len(s.Nodes))
	for i := range s.Nodes {
		subnet[s.Nodes[i].ID] = s.Nodes[i].Subnet
	}
	self := subnet[s.Self]
	budget := max(w*h/mapCellsPerNode, 1)
	folded := map[string]bool{}
	if len(order) > budget {
		count := map[string]int{}
		for _, id := range order {
			count[subnet[id]]++
		}
		var held []string
		for p := range count {
			if p != s.LocalSubnet && p != self {
				held = append(held, p)
			}
		}
		sort.Slice(held, func(i, j int) bool {
			if count[held[i]] != count[held[j]] {
				return count[held[i]] > count[held[j]]
			}
			return held[i] < held[j]
		})
		left := len(order)
		for _, p := range held {
			if left <= budget {
				break
			}
			folded[p] = true
			left -= count[p]
		}
	}
	drawn = order
	if len(folded) > 0 {
		drawn = make([]api.NodeID, 0, len(order))
		for _, id := range order {
			if !folded[subnet[id]] {
				drawn = append(drawn, id)
			}
		}
	}
	views, _ := SubnetTree(s)
	for _, v := range views {
		if !v.Detailed || folded[v.Path] {
			clusters = append(clusters, mapCluster{path: v.Path, nodes: v.Nodes})
		}
	}
	return drawn, clusters
}

// clusterKey is what a layout's clusters depend on: the subnets, what the
// view holds of each, and their node counts.
func clusterKey(s *snapshot.ClusterSnapshot) string {
	var b strings.Builder
	for i := range s.Subnets {
		v := &s.Subnets[i]
		fmt.Fprintf(&b, "%s|%t|%v;", v.Path, v.Detailed, v.Nodes)
	}
	return b.String()
}

// MapRows are the list-fallback rows in RTT order, then the summary-only
// subnets (pure; unit tested).
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
		name := g + " " + NodeLabel(s, n)
		if id == s.Self && !n.Observer {
			name += " (self)"
		}
		rtt := widgets.RTT(n.RTT)
		switch {
		case id == s.Self:
			rtt = "·"
		case n.Health == snapshot.Unreachable:
			rtt = "—"
		}
		rows = append(rows, widgets.Row{
			Key:   id.String(),
			Cells: []string{name, n.Health.String(), SubnetLabel(n.Subnet), rtt, strconv.Itoa(links[id]), strconv.Itoa(len(n.Avoid)), strings.Join(n.Capabilities, ",")},
			Tones: []common.Tone{tone, HealthTone(n.Health), subnetTone(s, n.Subnet), common.ToneNormal, common.ToneDim, common.ToneDim, common.ToneDim},
		})
	}
	for _, c := range MapClusters(s) {
		health, tone := Rollup(c.nodes)
		rows = append(rows, widgets.Row{
			Key:   subnetKeyPrefix + c.path,
			Cells: []string{GlyphSubnet + " " + c.label(), health, SubnetLabel(c.path), "—", "—", "—", "summary"},
			Tones: []common.Tone{tone, tone, common.ToneDim, common.ToneDim, common.ToneDim, common.ToneDim, common.ToneDim},
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

// mapRadius maps an RTT to a radius fraction, log-scaled against the
// largest RTT at layout time; unreachable nodes go to the rim.
func mapRadius(n *snapshot.NodeView, maxRTT time.Duration) float64 {
	if n.Health == snapshot.Unreachable || n.RTT <= 0 || maxRTT <= 0 {
		return 1.0
	}
	return 0.3 + 0.6*math.Log1p(float64(n.RTT)/1e6)/math.Log1p(float64(maxRTT)/1e6)
}

// linkSet is a canonical string of the snapshot's links (their pairs).
func linkSet(s *snapshot.ClusterSnapshot) string {
	var b strings.Builder
	for _, e := range s.Edges {
		a, c := e.A, e.B
		if c < a {
			a, c = c, a
		}
		b.WriteString(a.String())
		b.WriteString(c.String())
	}
	return b.String()
}

// stillValid reports whether prev can be reused for s at w×h.
func (l *mapLayout) stillValid(s *snapshot.ClusterSnapshot, order []api.NodeID, w, h int, now time.Time) bool {
	if l == nil || l.w != w || l.h != h {
		return false
	}
	if l.checked == s {
		// Checked once per snapshot, not per frame.
		return true
	}
	drawn, clusters := MapPlan(s, order, w, h)
	if len(drawn) != len(l.order) || len(clusters) != len(l.clusters) {
		return false
	}
	for i := range clusters {
		if clusters[i].path != l.clusters[i].path {
			return false
		}
	}
	nodes := make(map[api.NodeID]*snapshot.NodeView, len(s.Nodes))
	for i := range s.Nodes {
		nodes[s.Nodes[i].ID] = &s.Nodes[i]
	}
	for _, id := range drawn {
		n := nodes[id]
		if _, ok := l.pos[id]; !ok || n == nil {
			return false
		}
		if l.down[id] != (n.Health == snapshot.Unreachable) {
			return false
		}
		if now.Sub(l.at) < mapRelayoutAfter {
			continue
		}
		if old := l.rtt[id]; old > 0 && n.RTT > 0 {
			r := float64(n.RTT) / float64(old)
			if r > mapRTTRelayout || r < 1/mapRTTRelayout {
				return false
			}
		} else if (old > 0) != (n.RTT > 0) {
			return false
		}
	}
	if l.links != linkSet(s) || l.clusterKey != clusterKey(s) {
		return false
	}
	l.checked = s
	return true
}

// NearestLinks picks, for every hosting node, its MapNearestLinks
// lowest-RTT links (consoles' links are left out: their RTT is already the
// radius), deduplicated.
func NearestLinks(s *snapshot.ClusterSnapshot) []snapshot.Edge {
	per := map[api.NodeID][]int{}
	for i, e := range s.Edges {
		if IsConsole(s, e.A) || IsConsole(s, e.B) {
			continue
		}
		per[e.A] = append(per[e.A], i)
		per[e.B] = append(per[e.B], i)
	}
	keep := map[int]bool{}
	for _, idx := range per {
		sort.SliceStable(idx, func(a, b int) bool {
			ea, eb := s.Edges[idx[a]], s.Edges[idx[b]]
			if ea.RTT != eb.RTT {
				return ea.RTT < eb.RTT
			}
			return idx[a] < idx[b]
		})
		for k := 0; k < len(idx) && k < MapNearestLinks; k++ {
			keep[idx[k]] = true
		}
	}
	out := make([]snapshot.Edge, 0, len(keep))
	for i, e := range s.Edges {
		if keep[i] {
			out = append(out, e)
		}
	}
	return out
}

// Layout places nodes on a w×h grid: self at the centre, radius growing
// with log RTT (fixed scale), angle by id; unreachable nodes on the rim.
// A node's glyph and label are kept clear of every other node's. Only each
// node's nearest links are drawn (dim dots); the selected node's links are
// an overlay (see highlight). Exposed for tests.
func Layout(s *snapshot.ClusterSnapshot, order []api.NodeID, w, h int) *mapLayout {
	drawn, clusters := MapPlan(s, order, w, h)
	l := &mapLayout{snap: s, w: w, h: h, grid: make([]mapCell, w*h), pos: make(map[api.NodeID][2]int, len(drawn)),
		rtt: make(map[api.NodeID]time.Duration, len(drawn)), down: make(map[api.NodeID]bool, len(drawn)),
		order: append([]api.NodeID(nil), drawn...), links: linkSet(s), checked: s,
		clusters: clusters, clusterKey: clusterKey(s)}
	for i := range l.grid {
		l.grid[i].r = ' '
	}
	if w < 8 || h < 3 {
		return l
	}
	angles, clusterAngles := ringAngles(s, l.order, l.clusters)
	// Clusters first: each stands for a whole subnet, so it gets its spot
	// on the rim before the nodes crowd it.
	l.placeClusters(clusterAngles)
	l.placeNodes(angles)
	l.drawNearestLinks()
	l.drawGlyphs()
	return l
}

// ringAngles spreads every node but self and every summary-only cluster
// evenly around the ring, clustered by subnet: the subnets in tree order,
// each on its own arc (a free slot between arcs), its nodes in id-hash
// order within it: stable while the node set is.
func ringAngles(s *snapshot.ClusterSnapshot, order []api.NodeID, clusters []mapCluster) (map[api.NodeID]float64, []float64) {
	type entry struct {
		subnet  string
		hash    uint64
		id      api.NodeID
		cluster int // index into clusters + 1; 0 for a node
	}
	subnet := make(map[api.NodeID]string, len(s.Nodes))
	for i := range s.Nodes {
		subnet[s.Nodes[i].ID] = s.Nodes[i].Subnet
	}
	ring := make([]entry, 0, len(order)+len(clusters))
	for _, id := range order {
		if id != s.Self {
			ring = append(ring, entry{subnet: subnet[id], hash: uint64(id) * 0x9E3779B97F4A7C15, id: id})
		}
	}
	for i, c := range clusters {
		ring = append(ring, entry{subnet: c.path, cluster: i + 1})
	}
	sort.Slice(ring, func(i, j int) bool {
		a, b := ring[i], ring[j]
		if a.subnet != b.subnet {
			return SubnetLess(a.subnet, b.subnet)
		}
		return a.hash < b.hash
	})
	// One slot per entry, and one free slot after each subnet's arc when
	// there is more than one subnet.
	slots := make([]int, len(ring))
	n := 0
	for i := range ring {
		if i > 0 && ring[i].subnet != ring[i-1].subnet {
			n++
		}
		slots[i] = n
		n++
	}
	if len(ring) > 0 && ring[0].subnet != ring[len(ring)-1].subnet {
		n++
	}
	angle := make(map[api.NodeID]float64, len(order))
	clusterAngle := make([]float64, len(clusters))
	for i, e := range ring {
		a := -math.Pi/2 + 2*math.Pi*float64(slots[i])/float64(max(n, 1))
		if e.cluster > 0 {
			clusterAngle[e.cluster-1] = a
		} else {
			angle[e.id] = a
		}
	}
	return angle, clusterAngle
}

// mapClusterRadius is where summary-only subnets sit: on the rim, as far
// as the view's knowledge of them.
const mapClusterRadius = 0.95

// placeClusters gives each summary-only subnet a free cell on the rim at
// its angle (nudged like a node's) and draws its glyph and label.
func (l *mapLayout) placeClusters(angle []float64) {
	w, h := l.w, l.h
	cx, cy := float64(w)/2, float64(h)/2
	rx, ry := float64(w)/2-8, float64(h)/2-1
	for ci, c := range l.clusters {
		label := c.label()
		span := 2 + len([]rune(label))
		a := angle[ci]
		var x, y int
		for try := 0; try < mapNudgeTries; try++ {
			rr := mapClusterRadius
			if try >= mapNudgeTries/2 {
				rr -= 0.08 * float64(1+try%2)
			}
			x = min(max(int(cx+rr*rx*math.Cos(a)+0.5), 0), w-1, max(w-span, 0))
			y = min(max(int(cy+rr*ry*math.Sin(a)+0.5), 0), h-1)
			if l.free(x, y, span) {
				break
			}
			a += 0.27
		}
		idx := len(l.order) + ci
		l.claim(idx, x, y, label)
		_, tone := Rollup(c.nodes)
		cell := &l.grid[y*w+x]
		cell.r, cell.tone, cell.node = []rune(GlyphSubnet)[0], tone, idx+1
		for k, r := range []rune(label) {
			xx := x + 2 + k
			if xx >= w {
				break
			}
			if c := &l.grid[y*w+xx]; c.node == 0 || c.node == idx+1 {
				c.r, c.tone, c.node = r, common.ToneDim, idx+1
			} else {
				break
			}
		}
	}
}

// placeNodes gives each node a cell: self at the centre, the others at a
// radius growing with log RTT, nudged along and across the ring until the
// glyph and its label are clear of every node placed before.
func (l *mapLayout) placeNodes(angle map[api.NodeID]float64) {
	s, w, h := l.snap, l.w, l.h
	cx, cy := float64(w)/2, float64(h)/2
	rx, ry := float64(w)/2-8, float64(h)/2-1
	var maxRTT time.Duration
	for i := range s.Nodes {
		if n := &s.Nodes[i]; n.Health != snapshot.Unreachable && n.RTT > maxRTT {
			maxRTT = n.RTT
		}
	}
	for oi, id := range l.order {
		n := s.Node(id)
		if n == nil {
			continue
		}
		label := NodeLabel(s, n)
		span := 2 + len([]rune(label))
		var x, y int
		if id == s.Self {
			x, y = int(cx), int(cy)
		} else {
			r := mapRadius(n, maxRTT)
			a := angle[id]
			for try := 0; try < mapNudgeTries; try++ {
				rr := r
				if try >= mapNudgeTries/2 {
					// Crowded ring: try a little further in or out.
					rr = r + 0.08*float64(1-2*(try%2))
				}
				x = int(cx + rr*rx*math.Cos(a) + 0.5)
				y = int(cy + rr*ry*math.Sin(a) + 0.5)
				// Keep the label on the map: a node on the right rim
				// moves in by what its label would lose.
				x = min(max(x, 0), w-1, max(w-span, 0))
				y = min(max(y, 0), h-1)
				if l.free(x, y, span) {
					break
				}
				a += 0.27
			}
		}
		l.pos[id] = [2]int{x, y}
		l.rtt[id] = n.RTT
		l.down[id] = n.Health == snapshot.Unreachable
		l.claim(oi, x, y, label)
	}
}

// free reports whether the cells of a glyph at (x, y) and a label of span
// cells, with one blank either side, are unclaimed.
func (l *mapLayout) free(x, y, span int) bool {
	for k := -1; k <= span; k++ {
		xx := x + k
		if xx < 0 || xx >= l.w {
			continue
		}
		if l.grid[y*l.w+xx].node != 0 {
			return false
		}
	}
	return true
}

// claim marks the glyph's and label's cells as taken by node index oi
// (stored as oi+1: zero means free).
func (l *mapLayout) claim(oi, x, y int, label string) {
	l.grid[y*l.w+x].node = oi + 1
	// k from -1: the blank between glyph and label stays blank.
	for k := -1; k < len([]rune(label)); k++ {
		if xx := x + 2 + k; xx < l.w {
			if c := &l.grid[y*l.w+xx]; c.node == 0 {
				c.node = oi + 1
			}
		}
	}
}

// drawNearestLinks draws the nearest links as dotted lines between placed
// endpoints, never over a claimed cell.
func (l *mapLayout) drawNearestLinks() {
	for _, e := range NearestLinks(l.snap) {
		l.line(e.A, e.B, func(i, k int) {
			if c := &l.grid[i]; c.node == 0 && c.r == ' ' && k%2 == 0 {
				c.r, c.tone = glyphEdge, common.ToneDim
			}
		})
	}
}

// drawGlyphs writes each placed node's glyph and label.
func (l *mapLayout) drawGlyphs() {
	s, w := l.snap, l.w
	for oi, id := range l.order {
		p, ok := l.pos[id]
		if !ok {
			continue
		}
		n := s.Node(id)
		g, tone := Glyph(n)
		cell := &l.grid[p[1]*w+p[0]]
		cell.r, cell.tone, cell.node = []rune(g)[0], tone, oi+1
		labelTone := common.ToneNormal
		if n.Observer {
			labelTone = common.ToneAccent
		}
		for k, r := range []rune(NodeLabel(s, n)) {
			x := p[0] + 2 + k
			if x >= w {
				break
			}
			c := &l.grid[p[1]*w+x]
			if c.node != 0 && c.node != oi+1 {
				break
			}
			c.r, c.tone, c.node = r, labelTone, oi+1
		}
	}
}

// line walks the cells strictly between a's and b's glyphs, calling f with
// the cell index and the step number.
func (l *mapLayout) line(a, b api.NodeID, f func(i, k int)) {
	pa, okA := l.pos[a]
	pb, okB := l.pos[b]
	if !okA || !okB {
		return
	}
	dx, dy := pb[0]-pa[0], pb[1]-pa[1]
	steps := max(abs(dx), abs(dy))
	for k := 1; k < steps; k++ {
		x := pa[0] + (dx*k+cmp.Compare(dx, 0)*steps/2)/steps
		y := pa[1] + (dy*k+cmp.Compare(dy, 0)*steps/2)/steps
		if x < 0 || x >= l.w || y < 0 || y >= l.h {
			continue
		}
		f(y*l.w+x, k)
	}
}

// highlight marks the cells of node id's links (all of them, from the
// current snapshot) for render; cached per selected node.
func (l *mapLayout) highlight(s *snapshot.ClusterSnapshot, id api.NodeID) {
	if l.hi != nil && l.hiFor == id && l.hiSnap == s {
		return
	}
	l.hiSnap, l.hiFor = s, id
	if len(l.hi) != len(l.grid) {
		l.hi = make([]bool, len(l.grid))
	} else {
		clear(l.hi)
	}
	if id == 0 {
		return
	}
	for _, e := range s.Edges {
		if e.A != id && e.B != id {
			continue
		}
		l.line(e.A, e.B, func(i, k int) {
			if l.grid[i].node == 0 && k%2 == 0 {
				l.hi[i] = true
			}
		})
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// render paints the grid, highlighting the cells of node sel (1-based
// index into the layout's order) and the selected node's links.
func (l *mapLayout) render(th *common.Theme, sel int) []string {
	key := mapDrawKey{th: th, sel: sel, hiFor: l.hiFor, hiSnap: l.hiSnap}
	if l.drawnValid && l.drawnKey == key {
		return l.drawn
	}
	out := make([]string, l.h)
	defer func() { l.drawn, l.drawnKey, l.drawnValid = out, key, true }()
	var b, run strings.Builder
	cell := func(i int) (rune, common.Tone) {
		c := l.grid[i]
		switch {
		case sel != 0 && c.node == sel && c.r != ' ':
			return c.r, common.ToneSelected
		case l.hi != nil && l.hi[i] && (c.r == ' ' || c.r == glyphEdge):
			return glyphSelEdge, common.ToneAccent
		}
		return c.r, c.tone
	}
	for y := 0; y < l.h; y++ {
		b.Reset()
		for x := 0; x < l.w; {
			_, tone := cell(y*l.w + x)
			run.Reset()
			for x < l.w {
				r, ct := cell(y*l.w + x)
				if ct != tone {
					break
				}
				run.WriteRune(r)
				x++
			}
			th.PaintTo(&b, tone, run.String())
		}
		out[y] = b.String()
	}
	return out
}

func (t *NetMap) summary() string {
	s := t.c.Snap
	out := fmt.Sprintf("%s · %d nodes · %d links", s.Cluster, HostingNodes(s), len(s.Edges))
	if len(s.Subnets) > 1 {
		out += fmt.Sprintf(" · %d subnets", len(s.Subnets))
	}
	return out
}

// linksLine summarises a node's links: how many, and the nearest by RTT.
func linksLine(s *snapshot.ClusterSnapshot, id api.NodeID) string {
	type link struct {
		peer api.NodeID
		rtt  time.Duration
	}
	var ls []link
	for _, e := range s.Edges {
		switch id {
		case e.A:
			ls = append(ls, link{e.B, e.RTT})
		case e.B:
			ls = append(ls, link{e.A, e.RTT})
		}
	}
	if len(ls) == 0 {
		return "no links"
	}
	sort.SliceStable(ls, func(i, j int) bool { return ls[i].rtt < ls[j].rtt })
	parts := make([]string, 0, 3)
	for i := 0; i < len(ls) && i < 3; i++ {
		parts = append(parts, NodeName(s, ls[i].peer)+" "+widgets.RTT(ls[i].rtt))
	}
	return fmt.Sprintf("%d links · nearest %s", len(ls), strings.Join(parts, ", "))
}

func (t *NetMap) View(w, h int) string {
	if w < MapMinCols {
		return t.render(t.summary()+" · list view (map needs ≥100 cols)", w, h, "no nodes")
	}
	th := t.c.Theme
	sideW := min(max(w/4, mapSideMinCells), mapSideMaxCells)
	mapW := w - sideW - 1
	mapH := h
	if !t.layout.stillValid(t.c.Snap, t.order, mapW, mapH, t.c.Now) {
		t.layout = Layout(t.c.Snap, t.order, mapW, mapH)
		t.layout.at = t.c.Now
	}
	selID := t.selected()
	sel := 0
	p, ok := t.selectedSubnet()
	if n := t.c.Snap.Node(selID); n != nil {
		// A node of a folded subnet lights its subnet's glyph.
		p, ok = n.Subnet, true
	}
	if ok {
		for i, c := range t.layout.clusters {
			if c.path == p {
				sel = len(t.layout.order) + i + 1
			}
		}
	}
	for i, id := range t.layout.order {
		if id == selID {
			sel = i + 1
			break
		}
	}
	if IsConsole(t.c.Snap, selID) {
		// A console's links are its RTTs to everyone: the radii already
		// show them, and drawn they would bury the map.
		t.layout.highlight(t.c.Snap, 0)
	} else {
		t.layout.highlight(t.c.Snap, selID)
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
		rtt := widgets.RTT(n.RTT)
		if n.ID == s.Self {
			rtt = "here"
		}
		lines = append(lines, th.Paint(tone, g)+" "+th.Paint(common.ToneSelected, NodeLabel(s, n))+" "+
			th.Paint(HealthTone(n.Health), n.Health.String())+" "+rtt)
		if n.Observer {
			lines = append(lines, th.Paint(common.ToneDim, widgets.Truncate("observer: joins the mesh, hosts nothing", w)))
		} else {
			lines = append(lines, th.Paint(common.ToneDim, widgets.Truncate(fmt.Sprintf("sat %s · %d daemons · %d chains · %s",
				widgets.Pct(n.Resources.Saturation), len(n.Daemons), len(n.Replicas), MaintLabel(n.Maintenance.State)), w)))
		}
		lines = append(lines, th.Paint(common.ToneAccent, widgets.Truncate(linksLine(s, n.ID), w)))
	} else if p, ok := t.selectedSubnet(); ok {
		if v := subnetView(s, p); v != nil {
			health, tone := Rollup(v.Nodes)
			lines = append(lines, th.Paint(tone, GlyphSubnet)+" "+th.Paint(common.ToneSelected, SubnetLabel(p))+" "+
				th.Paint(tone, health)+th.Paint(common.ToneDim, " healthy/suspect/unreachable"),
				th.Paint(common.ToneDim, widgets.Truncate(fmt.Sprintf("summary only · sat %s · g%d", widgets.Pct(v.Saturation), v.Generation), w)),
				th.Paint(common.ToneAccent, widgets.Truncate("enter: focus the subnet (its members join the map)", w)))
		}
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
		th.Paint(common.ToneOK, GlyphSubnet) + th.Paint(common.ToneDim, " subnet as one glyph (its nodes)"),
		th.Paint(common.ToneDim, "· nearest links  ") + th.Paint(common.ToneAccent, string(glyphSelEdge)) + th.Paint(common.ToneDim, " selected's links"),
		th.Paint(common.ToneDim, "distance from centre ∝ log RTT"),
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

// selectedSubnet is the summary-only subnet under the cursor, if the
// cursor is on one.
func (t *NetMap) selectedSubnet() (string, bool) {
	return strings.CutPrefix(t.table.SelectedKey(), subnetKeyPrefix)
}

// HandleKey: Enter on a summary-only subnet focuses it; the rest is a
// node tab's.
func (t *NetMap) HandleKey(msg tea.KeyPressMsg) tea.Cmd {
	if p, ok := t.selectedSubnet(); ok && key.Matches(msg, t.c.Keys.Enter) {
		return openSubnet(p)
	}
	return t.nodeTab.HandleKey(msg)
}

func (t *NetMap) Bindings() []key.Binding {
	k := t.c.Keys
	return append(append([]key.Binding{k.Up, k.Down}, nodeBindings(k)...), k.Filter)
}
