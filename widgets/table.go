package widgets

import (
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/deck-mesh/deck/deck/common"
)

// Align of a column's cells.
type Align uint8

const (
	AlignLeft Align = iota
	AlignRight
)

// Column describes one table column.
type Column struct {
	Title string
	Width int // cells: the column's width when the table is tight
	// Flex marks the column that grows first when there is room (one per
	// table). Every column grows only up to its widest cell, so on a wide
	// terminal the table stays dense and the remaining slack is left after
	// the last column instead of pushing the other columns apart.
	Flex  bool
	Align Align
	// HideBelow drops the column when the table is narrower than this, so
	// every tab stays usable at 80 columns.
	HideBelow int
}

// Row is one table row: plain cell text plus tones. Key identifies the row
// across data refreshes so the cursor stays on the same thing.
type Row struct {
	Key   string
	Cells []string
	Tones []common.Tone // per cell; nil: every cell uses Tone
	Tone  common.Tone
	// Span, above zero, makes the cells from index Span on the free text of
	// a section with columns of its own (NODES' pending nodes: address, seen
	// by, waiting, reason): drawn one after another from column Span to the
	// end of the line, each as wide as its text (the row builder pads them
	// so they line up within the section), and never measured, so they do
	// not widen the table's columns.
	Span int
	// Heading marks a section heading: the cursor passes over it, the filter
	// keeps it while a row of its section (the rows up to the next heading)
	// passes, it is not measured, and Cells[0] runs across every column
	// before Span (the whole line when Span is 0).
	Heading bool
	// search is the lower-cased haystack for `/`, built on first use.
	search string
}

// CursorMarker prefixes the selected row; it keeps the cursor visible on
// colourless terminals and in golden files.
const (
	CursorMarker = "▸ "
	markerWidth  = 2
)

// Table is a virtualized table: it holds every row but renders only the
// visible window, so a frame costs the same for 10 rows or 100,000.
type Table struct {
	Cols   []Column
	rows   []Row
	view   []int // indices of rows passing the filter
	filter string
	cursor int // index into view
	offset int // first visible index into view
	height int // rows visible at the last render, for paging
	// content is the widest cell of each column over all rows (titles
	// included), measured once per SetRows so layout stays O(columns).
	content []int
	// headings and viewHeadings count the heading rows in rows and view.
	headings, viewHeadings int
	// segs is View's reusable per-row segment buffer.
	segs []segment
	// StickTop keeps the cursor on the first row when it is there and new
	// rows arrive above it (newest-first feeds such as FAILURES and AUDIT);
	// elsewhere the cursor stays on the row with the same Key.
	StickTop bool
}

// contentCapCells bounds how wide a column grows to fit its content;
// smallGrowCells is the shortfall a fixed column may claim before the flex
// column is served.
const (
	contentCapCells = 120
	smallGrowCells  = 8
)

// NewTable makes an empty table.
func NewTable(cols ...Column) *Table { return &Table{Cols: cols, height: 10} }

// SetRows replaces the data, keeping the cursor on the row with the same Key.
func (t *Table) SetRows(rows []Row) {
	prev := t.SelectedKey()
	atTop := t.StickTop && t.cursor == 0
	t.rows = rows
	t.measure()
	t.refilter()
	if atTop {
		prev = ""
		t.cursor, t.offset = 0, 0
	}
	if prev != "" {
		for vi, ri := range t.view {
			if t.rows[ri].Key == prev {
				t.cursor = vi
				break
			}
		}
	}
	t.clamp()
}

// measure records the widest cell of every column.
func (t *Table) measure() {
	if cap(t.content) < len(t.Cols) {
		t.content = make([]int, len(t.Cols))
	}
	t.content = t.content[:len(t.Cols)]
	for i, c := range t.Cols {
		t.content[i] = Width(c.Title)
	}
	t.headings = 0
	for ri := range t.rows {
		r := &t.rows[ri]
		if r.Heading {
			t.headings++
			continue
		}
		cells := r.Cells
		if r.Span > 0 && r.Span < len(cells) {
			cells = cells[:r.Span]
		}
		for i := 0; i < len(cells) && i < len(t.content); i++ {
			if t.content[i] >= contentCapCells {
				continue
			}
			if cw := Width(cells[i]); cw > t.content[i] {
				t.content[i] = min(cw, contentCapCells)
			}
		}
	}
}

// Rows is the unfiltered data.
func (t *Table) Rows() []Row { return t.rows }

// Shown is the rows passing the filter (headings included), in display order. Exports use it so
// a file holds what the screen lists (`/` applied), as LOGS' export does.
func (t *Table) Shown() []Row {
	out := make([]Row, len(t.view))
	for i, ri := range t.view {
		out[i] = t.rows[ri]
	}
	return out
}

// Len is the number of rows passing the filter; Total is all rows.
// Headings are not rows of data and count in neither.
func (t *Table) Len() int   { return len(t.view) - t.viewHeadings }
func (t *Table) Total() int { return len(t.rows) - t.headings }

// Filter is the current `/` query.
func (t *Table) Filter() string { return t.filter }

// SetFilter applies a case-insensitive substring filter over every cell.
func (t *Table) SetFilter(q string) {
	if q == t.filter {
		return
	}
	prev := t.SelectedKey()
	t.filter = q
	t.refilter()
	t.cursor = 0
	for vi, ri := range t.view {
		if t.rows[ri].Key == prev {
			t.cursor = vi
			break
		}
	}
	t.clamp()
}

func (t *Table) refilter() {
	t.view = t.view[:0]
	t.viewHeadings = 0
	if t.filter == "" {
		for i := range t.rows {
			t.view = append(t.view, i)
		}
		t.viewHeadings = t.headings
		return
	}
	q := strings.ToLower(t.filter)
	heading := -1 // the heading of the current section, until a row shows it
	for i := range t.rows {
		r := &t.rows[i]
		if r.Heading {
			heading = i
			continue
		}
		if r.search == "" {
			r.search = strings.ToLower(strings.Join(r.Cells, "\x00"))
		}
		if strings.Contains(r.search, q) {
			if heading >= 0 {
				t.view = append(t.view, heading)
				t.viewHeadings++
				heading = -1
			}
			t.view = append(t.view, i)
		}
	}
}

// Cursor is the selected index among filtered rows.
func (t *Table) Cursor() int { return t.cursor }

// SetCursor moves the cursor (clamped).
func (t *Table) SetCursor(i int) { t.cursor = i; t.clamp() }

// Selected returns the selected row (never a heading).
func (t *Table) Selected() (*Row, bool) {
	if t.cursor < 0 || t.cursor >= len(t.view) || t.rows[t.view[t.cursor]].Heading {
		return nil, false
	}
	return &t.rows[t.view[t.cursor]], true
}

// SelectedKey is the selected row's Key or "".
func (t *Table) SelectedKey() string {
	if r, ok := t.Selected(); ok {
		return r.Key
	}
	return ""
}

// Move moves the cursor by delta rows (past a heading in its way).
func (t *Table) Move(delta int) {
	t.cursor += delta
	t.bound()
	t.settle(delta)
}

func (t *Table) clamp() {
	t.bound()
	t.settle(1)
}

func (t *Table) bound() {
	if t.cursor >= len(t.view) {
		t.cursor = len(t.view) - 1
	}
	if t.cursor < 0 {
		t.cursor = 0
	}
}

// settle moves the cursor off a heading: on in the direction of dir (down
// when 0), else back the other way.
func (t *Table) settle(dir int) {
	step := 1
	if dir < 0 {
		step = -1
	}
	for _, d := range [2]int{step, -step} {
		for i := t.cursor; i >= 0 && i < len(t.view); i += d {
			if !t.rows[t.view[i]].Heading {
				t.cursor = i
				return
			}
		}
	}
}

// HandleKey applies the shared cursor bindings; it reports whether the key
// was one of them.
func (t *Table) HandleKey(msg tea.KeyPressMsg, k *common.KeyMap) bool {
	page := t.height - 1
	if page < 1 {
		page = 1
	}
	switch {
	case key.Matches(msg, k.Up):
		t.Move(-1)
	case key.Matches(msg, k.Down):
		t.Move(1)
	case key.Matches(msg, k.Top):
		t.cursor = 0
		t.settle(1)
	case key.Matches(msg, k.Bottom):
		t.cursor = len(t.view) - 1
		t.bound()
		t.settle(-1)
	case key.Matches(msg, k.PageUp):
		t.Move(-page)
	case key.Matches(msg, k.PageDown):
		t.Move(page)
	default:
		return false
	}
	return true
}

// layout returns the width of every column at total width w (0: hidden).
// Columns start at their Width; slack goes to columns a few cells short of
// their widest cell, then to the flex column, then to the others, each only
// up to its widest cell. What is left stays after the last column.
func (t *Table) layout(w int, dst []int) []int {
	dst = dst[:0]
	used := markerWidth
	flex := -1
	for i, c := range t.Cols {
		if c.HideBelow > 0 && w < c.HideBelow {
			dst = append(dst, 0)
			continue
		}
		if c.Flex && flex < 0 {
			flex = i
		}
		dst = append(dst, c.Width)
		used += c.Width + 1
	}
	used-- // no gap after the last column
	slack := w - used
	grow := func(i int) {
		if slack <= 0 || dst[i] == 0 || i >= len(t.content) {
			return
		}
		if need := t.content[i] - dst[i]; need > 0 {
			add := min(need, slack)
			dst[i] += add
			slack -= add
		}
	}
	// Small shortfalls first (a KIND of "inference" in 7 cells, a long
	// verb), then the flex column, then whatever else still wants room.
	for i := range dst {
		if i != flex && i < len(t.content) && t.content[i]-dst[i] <= smallGrowCells {
			grow(i)
		}
	}
	if flex >= 0 {
		grow(flex)
	}
	for i := range dst {
		if i != flex {
			grow(i)
		}
	}
	return dst
}

// View renders the header and the visible rows in exactly h lines of w cells.
func (t *Table) View(th *common.Theme, w, h int) string {
	if h < 1 || w < 1 {
		return ""
	}
	var widthBuf [16]int
	widths := t.layout(w, widthBuf[:0])
	var b strings.Builder
	b.Grow((w + 16) * h * 2)

	// Header.
	var hb strings.Builder
	hb.WriteString(spaces(markerWidth))
	first := true
	for i, c := range t.Cols {
		if widths[i] == 0 {
			continue
		}
		if !first {
			hb.WriteByte(' ')
		}
		first = false
		if c.Align == AlignRight {
			hb.WriteString(FitRight(c.Title, widths[i]))
		} else {
			hb.WriteString(Fit(c.Title, widths[i]))
		}
	}
	th.PaintTo(&b, common.ToneHeader, Fit(hb.String(), w))

	body := h - 1
	t.height = body
	if t.cursor < t.offset {
		t.offset = t.cursor
	}
	if body > 0 && t.cursor >= t.offset+body {
		t.offset = t.cursor - body + 1
	}
	if max := len(t.view) - body; t.offset > max {
		t.offset = max
	}
	if t.offset < 0 {
		t.offset = 0
	}
	var line strings.Builder
	for i := 0; i < body; i++ {
		b.WriteByte('\n')
		vi := t.offset + i
		if vi >= len(t.view) {
			b.WriteString(spaces(w))
			continue
		}
		r := &t.rows[t.view[vi]]
		selected := vi == t.cursor
		if selected {
			line.Reset()
			line.WriteString(CursorMarker)
			t.cells(&line, nil, r, widths, w-markerWidth)
			th.PaintTo(&b, common.ToneSelected, Fit(line.String(), w))
			continue
		}
		b.WriteString(spaces(markerWidth))
		n := t.cells(&b, th, r, widths, w-markerWidth)
		if pad := w - markerWidth - n; pad > 0 {
			b.WriteString(spaces(pad))
		}
	}
	return b.String()
}

// segment is one drawn piece of a row: a column's cell, a heading across
// columns, or a span cell at its own width.
type segment struct {
	text  string
	width int
	right bool
	tone  common.Tone
}

// segments lays r out on the column widths: one segment per visible
// column; a heading's Cells[0] across the columns before Span; the span
// cells each at their own width.
func (t *Table) segments(r *Row, widths []int, budget int) []segment {
	segs := t.segs[:0]
	tone := func(i int) common.Tone {
		if i < len(r.Tones) {
			return r.Tones[i]
		}
		return r.Tone
	}
	cell := func(i int) string {
		if i < len(r.Cells) {
			return r.Cells[i]
		}
		return ""
	}
	span := len(t.Cols)
	if r.Span > 0 && r.Span < span {
		span = r.Span
	}
	if r.Heading {
		if r.Span <= 0 {
			t.segs = append(segs, segment{text: cell(0), width: budget, tone: tone(0)})
			return t.segs
		}
		w := -1
		for i := 0; i < span; i++ {
			if widths[i] > 0 {
				w += widths[i] + 1
			}
		}
		segs = append(segs, segment{text: cell(0), width: max(w, 0), tone: tone(0)})
	} else {
		for i := 0; i < span; i++ {
			if widths[i] > 0 {
				segs = append(segs, segment{text: cell(i), width: widths[i], right: t.Cols[i].Align == AlignRight, tone: tone(i)})
			}
		}
	}
	if r.Span > 0 {
		for i := r.Span; i < len(r.Cells); i++ {
			segs = append(segs, segment{text: r.Cells[i], width: Width(r.Cells[i]), tone: tone(i)})
		}
	}
	t.segs = segs
	return segs
}

// cells writes r's cells; th nil writes them unpainted. It returns the
// number of cells written.
func (t *Table) cells(b *strings.Builder, th *common.Theme, r *Row, widths []int, budget int) int {
	n := 0
	for si, sg := range t.segments(r, widths, budget) {
		gap := 1
		if si == 0 {
			gap = 0
		}
		if n+gap >= budget {
			break
		}
		cw := sg.width
		if n+gap+cw > budget {
			cw = budget - n - gap
		}
		if gap > 0 {
			b.WriteByte(' ')
			n++
		}
		var cell string
		if sg.right {
			cell = FitRight(sg.text, cw)
		} else {
			cell = Fit(sg.text, cw)
		}
		n += cw
		if th == nil {
			b.WriteString(cell)
			continue
		}
		th.PaintTo(b, sg.tone, cell)
	}
	return n
}
