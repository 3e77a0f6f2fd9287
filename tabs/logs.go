package tabs

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/deck/store"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/widgets"
)

// Logs is the LOGS tab. It keeps an index of the ring positions that match
// the current filter, extended incrementally as records arrive (O(batch))
// and rebuilt only when the filter changes, so a frame renders just the
// visible lines whatever the buffer holds.
type Logs struct {
	c        *common.Context
	minLevel api.LogLevel
	node     api.NodeID
	daemon   string
	match    string // lower-cased
	rawMatch string
	paused   bool
	follow   bool

	idx  []uint64 // matching ring positions, ascending; idx[head:] live
	head int
	base uint64 // ordinal of idx[head]
	seen uint64 // ring positions below this are indexed
	// anchor is the ordinal of the top visible line when not following.
	anchor uint64
	height int

	names   map[api.NodeID]string
	namesOf *snapshot.ClusterSnapshot
	// subnets is each node's subnet path, for `/` (built with names).
	subnets map[api.NodeID]string
}

// NewLogs makes the LOGS tab, following.
func NewLogs(c *common.Context) *Logs { return &Logs{c: c, follow: true} }

func (t *Logs) Name() string { return "LOGS" }

// SetScope filters to a node and/or daemon (the `l` jump) and follows.
func (t *Logs) SetScope(node api.NodeID, daemon string) {
	t.node, t.daemon = node, daemon
	t.follow = true
	t.reindex()
}

// Scope is the current node/daemon filter.
func (t *Logs) Scope() (api.NodeID, string) { return t.node, t.daemon }

// SetFilter is the `/` text match.
func (t *Logs) SetFilter(q string) {
	if q == t.rawMatch {
		return
	}
	t.rawMatch, t.match = q, strings.ToLower(q)
	t.reindex()
}

func (t *Logs) Filter() string { return t.rawMatch }

// Matches reports whether r passes the tab's filter.
func (t *Logs) Matches(r *api.LogRecord) bool {
	if r.Level < t.minLevel || (t.node != 0 && r.Node != t.node) || (t.daemon != "" && r.Daemon != t.daemon) {
		return false
	}
	return t.match == "" || ContainsFold(r.Text, t.match) || ContainsFold(r.Daemon, t.match) ||
		ContainsFold(t.subnets[r.Node], t.match)
}

// ContainsFold reports whether hay contains needle, ignoring ASCII case;
// needle must already be lower-case. It allocates nothing (NET's deck
// lower-cased every record on every frame).
func ContainsFold(hay, needle string) bool {
	n := len(needle)
	if n == 0 {
		return true
	}
	for i := 0; i+n <= len(hay); i++ {
		j := 0
		for ; j < n; j++ {
			c := hay[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != needle[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}

func (t *Logs) reindex() {
	t.learnNodes()
	ring := t.c.Store.Logs
	t.idx = t.idx[:0]
	t.head = 0
	t.base = 0
	t.seen = ring.First()
	t.anchor = 0
	t.index()
}

// index extends the index with records not yet seen and trims evicted ones.
func (t *Logs) index() {
	ring := t.c.Store.Logs
	if first := ring.First(); t.seen < first {
		t.seen = first
	}
	for p := t.seen; p < ring.Total(); p++ {
		if r, ok := ring.At(p); ok && t.Matches(r) {
			t.idx = append(t.idx, p)
		}
	}
	t.seen = ring.Total()
	first := ring.First()
	for t.head < len(t.idx) && t.idx[t.head] < first {
		t.head++
		t.base++
	}
	// Compact once the dead prefix dominates, keeping appends amortised O(1).
	if t.head > 4096 && t.head > len(t.idx)/2 {
		n := copy(t.idx, t.idx[t.head:])
		t.idx = t.idx[:n]
		t.head = 0
	}
}

// Shown is how many held records match.
func (t *Logs) Shown() int { return len(t.idx) - t.head }

// learnNodes rebuilds the node names and subnets from a new snapshot.
// Records indexed before keep their verdict: a node that moves subnets is
// matched by its new path from the next record (or filter change) on.
func (t *Logs) learnNodes() {
	if t.namesOf == t.c.Snap {
		return
	}
	t.namesOf = t.c.Snap
	t.names = make(map[api.NodeID]string, len(t.c.Snap.Nodes))
	t.subnets = make(map[api.NodeID]string, len(t.c.Snap.Nodes))
	for i := range t.c.Snap.Nodes {
		n := &t.c.Snap.Nodes[i]
		if n.Label != "" {
			t.names[n.ID] = n.Label
		}
		if n.Subnet != "" {
			t.subnets[n.ID] = n.Subnet
		}
	}
}

func (t *Logs) Sync() {
	t.learnNodes()
	if !t.paused {
		t.index()
	}
}

func (t *Logs) nodeName(id api.NodeID) string {
	if n, ok := t.names[id]; ok {
		return n
	}
	if id == 0 {
		return "—"
	}
	return id.Short()
}

func (t *Logs) Selection() common.Selection {
	return common.Selection{Node: t.node, Daemon: t.daemon}
}

func (t *Logs) HandleKey(msg tea.KeyPressMsg) tea.Cmd {
	k := t.c.Keys
	page := max(1, t.height-1)
	switch {
	case key.Matches(msg, k.Level):
		t.minLevel = (t.minLevel + 1) % (api.LevelError + 1)
		t.reindex()
	case key.Matches(msg, k.Pause):
		t.paused = !t.paused
		if !t.paused {
			t.index()
		}
	case key.Matches(msg, k.Follow):
		t.follow = !t.follow
		t.anchor = t.top()
	case key.Matches(msg, k.ClearFilters):
		t.node, t.daemon, t.match, t.rawMatch, t.minLevel = 0, "", "", "", api.LevelTrace
		t.follow = true
		t.reindex()
	case key.Matches(msg, k.Up):
		t.scroll(-1)
	case key.Matches(msg, k.Down):
		t.scroll(1)
	case key.Matches(msg, k.PageUp):
		t.scroll(-page)
	case key.Matches(msg, k.PageDown):
		t.scroll(page)
	case key.Matches(msg, k.Top):
		t.follow = false
		t.anchor = t.base
	case key.Matches(msg, k.Bottom):
		t.follow = true
	case key.Matches(msg, k.Export):
		return common.Emit(common.ExportMsg{What: "logs", Lines: t.exportLines})
	}
	return nil
}

// top is the ordinal of the first visible line.
func (t *Logs) top() uint64 {
	shown := uint64(t.Shown())
	body := uint64(max(t.height, 1))
	if t.follow {
		if shown <= body {
			return t.base
		}
		return t.base + shown - body
	}
	a := t.anchor
	if a < t.base {
		a = t.base
	}
	if shown > body && a > t.base+shown-body {
		a = t.base + shown - body
	}
	if shown <= body {
		a = t.base
	}
	return a
}

func (t *Logs) scroll(delta int) {
	cur := t.top()
	t.follow = false
	n := int64(cur) + int64(delta)
	if n < int64(t.base) {
		n = int64(t.base)
	}
	t.anchor = uint64(n)
	// Scrolling back down to the end resumes following.
	shown := uint64(t.Shown())
	body := uint64(max(t.height, 1))
	if shown <= body || t.anchor >= t.base+shown-body {
		t.follow = delta > 0
		if !t.follow {
			t.anchor = t.top()
		}
	}
}

// levelTone maps a log level to a tone.
func levelTone(l api.LogLevel) common.Tone {
	switch l {
	case api.LevelError:
		return common.ToneDanger
	case api.LevelWarn:
		return common.ToneWarn
	case api.LevelInfo:
		return common.ToneNormal
	}
	return common.ToneDim
}

// Log line column widths.
const (
	logTimeCells   = 8
	logLevelCells  = 5
	logNodeCells   = 10
	logDaemonCells = 11
)

// FormatLogLine renders one record into b in exactly w cells.
func FormatLogLine(b *strings.Builder, th *common.Theme, r *api.LogRecord, node string, w int) {
	n := 0
	put := func(tone common.Tone, s string, cw int) {
		if n >= w {
			return
		}
		if n+cw > w {
			cw = w - n
		}
		th.PaintTo(b, tone, widgets.Fit(s, cw))
		n += cw
		if n < w {
			b.WriteByte(' ')
			n++
		}
	}
	put(common.ToneDim, widgets.Clock(r.At), logTimeCells)
	put(levelTone(r.Level), r.Level.String(), logLevelCells)
	put(common.ToneAccent, node, logNodeCells)
	d := r.Daemon
	if d == "" {
		d = "·"
	}
	put(common.ToneDim, d, logDaemonCells)
	if n < w {
		put(levelTone(r.Level), r.Text, w-n)
	}
	for ; n < w; n++ {
		b.WriteByte(' ')
	}
}

func (t *Logs) chips(w int) string {
	th := t.c.Theme
	st := t.c.Store
	var parts []string
	parts = append(parts, "≥"+t.minLevel.String())
	if t.node != 0 {
		parts = append(parts, "node:"+t.nodeName(t.node))
	}
	if t.daemon != "" {
		parts = append(parts, "daemon:"+t.daemon)
	}
	if t.rawMatch != "" {
		parts = append(parts, "/"+t.rawMatch)
	}
	mode := "FOLLOW"
	switch {
	case t.paused:
		mode = fmt.Sprintf("PAUSED +%d new", st.Logs.Total()-t.seen)
	case !t.follow:
		mode = "SCROLL"
	}
	parts = append(parts, mode)
	right := fmt.Sprintf("%d/%d · %d dropped", t.Shown(), st.Logs.Len(), st.LogsDropped)
	if st.LogsLagged > 0 {
		right += fmt.Sprintf(" · lagged %d", st.LogsLagged)
	}
	return headerLine(th, strings.Join(parts, "  "), right, w)
}

func (t *Logs) View(w, h int) string {
	if h <= 0 {
		return ""
	}
	var b strings.Builder
	b.Grow((w + 64) * h)
	b.WriteString(t.chips(w))
	t.height = h - 1
	if t.Shown() == 0 {
		if h > 1 {
			msg := "no log records yet"
			if t.c.Store.Logs.Len() > 0 {
				msg = "no records match the filter (x clears)"
			}
			b.WriteByte('\n')
			b.WriteString(widgets.Empty(t.c.Theme, msg, w, h-1))
		}
		return b.String()
	}
	top := t.top()
	ring := t.c.Store.Logs
	for i := 0; i < h-1; i++ {
		b.WriteByte('\n')
		o := top + uint64(i)
		j := t.head + int(o-t.base)
		if j >= len(t.idx) {
			b.WriteString(widgets.Spaces(w))
			continue
		}
		r, ok := ring.At(t.idx[j])
		if !ok {
			b.WriteString(widgets.Spaces(w))
			continue
		}
		FormatLogLine(&b, t.c.Theme, r, t.nodeName(r.Node), w)
	}
	return b.String()
}

func (t *Logs) exportLines() []string {
	ring := t.c.Store.Logs
	out := make([]string, 0, t.Shown())
	for _, p := range t.idx[t.head:] {
		if r, ok := ring.At(p); ok {
			out = append(out, fmt.Sprintf("%s %-5s %s %s %s", r.At.UTC().Format("2006-01-02T15:04:05.000Z"), r.Level, r.Node, r.Daemon, r.Text))
		}
	}
	return out
}

func (t *Logs) Bindings() []key.Binding {
	k := t.c.Keys
	return []key.Binding{k.Level, k.Pause, k.Follow, k.Filter, k.ClearFilters, k.Export, k.PageUp, k.PageDown, k.Back}
}

// LogTail returns up to n of the newest records of daemon (or node when
// daemon is empty), oldest first. It scans at most scanMax records back so
// a page's frame cost stays bounded whatever the ring holds.
func LogTail(ring *store.Ring[api.LogRecord], node api.NodeID, daemon string, n, scanMax int) []*api.LogRecord {
	var out []*api.LogRecord
	for i, scanned := ring.Len()-1, 0; i >= 0 && scanned < scanMax && len(out) < n; i, scanned = i-1, scanned+1 {
		r := ring.Index(i)
		if (daemon != "" && r.Daemon == daemon) || (daemon == "" && r.Node == node) {
			out = append(out, r)
		}
	}
	for l, r := 0, len(out)-1; l < r; l, r = l+1, r-1 {
		out[l], out[r] = out[r], out[l]
	}
	return out
}
