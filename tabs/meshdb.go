package tabs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textarea"
	tea "charm.land/bubbletea/v2"

	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/widgets"
)

// MESHDB limits.
const (
	// MeshDBMaxRows bounds the rows the tab keeps of one result; past it the
	// query is cancelled and the header says so (the CLI reads the rest).
	MeshDBMaxRows = 50_000
	// MeshDBHistory bounds the queries ↑/↓ walk back through.
	MeshDBHistory = 100
	// meshdbMaxQueryBytes bounds the editor (node/query/lang.MaxQueryBytes).
	meshdbMaxQueryBytes = 4096
	// pumpMaxRows is how many rows one message folds: a fast stream is
	// absorbed in few Updates, yet keys interleave.
	pumpMaxRows = 8192
)

// MeshDBExamples are the queries ctrl+x cycles through.
var MeshDBExamples = []string{
	`between(logs, -5m, now) where level >= warn | count by daemon`,
	`latest(snapshots) where node = "node-3"`,
	`lineage(forge-1)`,
	`join(between(logs, -1h, now) where level >= warn, scan(failures), on daemon) | count by daemon`,
	`between(logs, -1h, now) | window 5m | count by node | sort window`,
	`chains()`,
	`latest(admin, 20)`,
}

// MeshDB is the MESHDB tab: a query editor with history and examples, the
// plan of the last query with the holders it chose, and its rows streaming
// into the shared table. It talks to the Client only (Query); Esc cancels
// a running query, which cancels its fragments on every holder.
type MeshDB struct {
	tableTab
	editor  textarea.Model
	focused bool // the editor has the keys

	history []string
	histPos int    // index into history while browsing; len(history): the draft
	draft   string // what was typed before browsing history
	example int

	id       uint64 // the current query's id (a count)
	run      *api.QueryRun
	running  bool
	started  time.Time
	query    string
	plan     api.QueryPlan
	cols     []api.QueryColumn
	rows     []widgets.Row
	values   []api.QueryRow
	status   api.QueryStatus
	err      error
	caret    []string // a query error's line and caret
	cut      bool     // MeshDBMaxRows reached: the query was cancelled
	showPlan bool
}

// NewMeshDB makes the MESHDB tab, its editor focused.
func NewMeshDB(c *common.Context) *MeshDB {
	ta := textarea.New()
	ta.ShowLineNumbers = false
	ta.Prompt = ""
	ta.CharLimit = meshdbMaxQueryBytes
	ta.SetWidth(1 << 12) // the tab draws it: no soft wrap
	ta.SetHeight(8)
	km := textarea.DefaultKeyMap()
	// Enter runs the query; a new line is alt+enter or ctrl+j.
	km.InsertNewline = c.Keys.QueryNewline
	// The textarea's paste and copy reach the system clipboard of the
	// process: on `deck serve --ssh` that is the server's. Pastes arrive
	// from the terminal instead (Paste).
	km.Paste, km.CopySelection = key.NewBinding(key.WithDisabled()), key.NewBinding(key.WithDisabled())
	ta.KeyMap = km
	ta.Focus()
	t := &MeshDB{tableTab: tableTab{c: c, table: widgets.NewTable()}, editor: ta, focused: true}
	return t
}

func (t *MeshDB) Name() string { return "MESHDB" }

// Capturing reports whether the editor takes every key (the root keeps
// only ctrl+c and tab switching).
func (t *MeshDB) Capturing() bool { return t.focused }

// Paste inserts pasted text into the editor.
func (t *MeshDB) Paste(s string) {
	if t.focused {
		t.editor.InsertString(s)
	}
}

// Running reports whether a query is in flight.
func (t *MeshDB) Running() bool { return t.running }

// Sync has nothing to do: a result does not change with the view (node
// labels are read at render).
func (t *MeshDB) Sync() {}

func (t *MeshDB) Selection() common.Selection {
	r, ok := t.table.Selected()
	if !ok || len(t.cols) == 0 {
		return common.Selection{}
	}
	i, err := strconv.Atoi(r.Key)
	if err != nil || i >= len(t.values) {
		return common.Selection{}
	}
	var sel common.Selection
	for j, c := range t.cols {
		v := t.values[i][j]
		switch {
		case v.Kind == api.KindNode && sel.Node == 0 && (c.Name == "node" || strings.HasSuffix(c.Name, ".node")):
			sel.Node, sel.Label = v.Node(), NodeName(t.c.Snap, v.Node())
		case c.Name == "daemon" && v.Kind == api.KindString && v.S != "":
			sel.Daemon = v.S
		}
	}
	return sel
}

// HandleKey edits, runs, cancels, or moves over the results.
func (t *MeshDB) HandleKey(msg tea.KeyPressMsg) tea.Cmd {
	k := t.c.Keys
	if t.focused {
		switch {
		case key.Matches(msg, k.QueryRun):
			return t.start(t.editor.Value())
		case key.Matches(msg, k.QueryCancel):
			if t.running {
				t.cancel()
				return nil
			}
			t.focused = false
			return nil
		case key.Matches(msg, k.QueryExample):
			t.editor.SetValue(MeshDBExamples[t.example%len(MeshDBExamples)])
			t.example++
			return nil
		case key.Matches(msg, k.QueryHistoryPrev) && t.editor.Line() == 0:
			t.browse(-1)
			return nil
		case key.Matches(msg, k.QueryHistoryNext) && t.editor.Line() == t.editor.LineCount()-1:
			t.browse(+1)
			return nil
		}
		var cmd tea.Cmd
		t.editor, cmd = t.editor.Update(msg)
		_ = cmd // the tab draws its own cursor: no blink
		return nil
	}
	if t.table.HandleKey(msg, k) {
		return nil
	}
	switch {
	case key.Matches(msg, k.QueryEdit), key.Matches(msg, k.Enter):
		t.focused = true
	case key.Matches(msg, k.QueryPlan):
		t.showPlan = !t.showPlan
	case key.Matches(msg, k.Export):
		if len(t.values) == 0 {
			return common.Toast("no rows to export", false)
		}
		return common.Emit(common.ExportMsg{What: "meshdb", Lines: t.exportLines})
	}
	return nil
}

// Esc cancels a running query when the results have the keys (the root
// asks before it goes back).
func (t *MeshDB) Esc() bool {
	if t.running {
		t.cancel()
		return true
	}
	return false
}

func (t *MeshDB) cancel() {
	if t.run != nil {
		t.run.Cancel()
	}
}

// browse walks the history: -1 earlier, +1 later (past the newest: the
// draft typed before browsing).
func (t *MeshDB) browse(dir int) {
	if len(t.history) == 0 {
		return
	}
	if t.histPos == len(t.history) && dir < 0 {
		t.draft = t.editor.Value()
	}
	t.histPos = min(max(t.histPos+dir, 0), len(t.history))
	if t.histPos == len(t.history) {
		t.editor.SetValue(t.draft)
	} else {
		t.editor.SetValue(t.history[t.histPos])
	}
}

// start runs q: the previous query (if still running) is cancelled, the
// result cleared, the query kept in the history.
func (t *MeshDB) start(q string) tea.Cmd {
	q = strings.TrimSpace(q)
	if q == "" {
		return nil
	}
	t.cancel()
	if n := len(t.history); n == 0 || t.history[n-1] != q {
		t.history = append(t.history, q)
		if len(t.history) > MeshDBHistory {
			t.history = t.history[len(t.history)-MeshDBHistory:]
		}
	}
	t.histPos, t.draft = len(t.history), ""
	// The results take the keys as they stream in (i edits again; esc
	// cancels the query).
	t.focused = false
	t.id++
	t.run, t.running, t.started, t.query = nil, true, t.c.Now, q
	t.plan, t.cols, t.rows, t.values = api.QueryPlan{}, nil, nil, nil
	t.status, t.err, t.caret, t.cut, t.showPlan = api.QueryStatus{}, nil, nil, false, false
	t.table = widgets.NewTable()
	id, client, ctx := t.id, t.c.Client, t.c.Ctx
	return func() tea.Msg {
		run, err := client.Query(ctx, q, api.QueryOptions{})
		return common.QueryMsg{ID: id, Run: run, Err: err}
	}
}

// pump waits for the next rows of run (up to pumpMaxRows at once) or its
// end.
func pump(ctx context.Context, id uint64, run *api.QueryRun) tea.Cmd {
	return func() tea.Msg {
		var rows []api.QueryRow
		select {
		case b, ok := <-run.Rows():
			if !ok {
				st, err := run.Wait()
				return common.QueryDoneMsg{ID: id, Status: st, Err: err}
			}
			rows = b
		case <-ctx.Done():
			return nil
		}
		for len(rows) < pumpMaxRows {
			select {
			case b, ok := <-run.Rows():
				if !ok {
					return common.QueryRowsMsg{ID: id, Rows: rows}
				}
				rows = append(rows, b...)
				continue
			default:
			}
			break
		}
		return common.QueryRowsMsg{ID: id, Rows: rows}
	}
}

// Receive takes the query's messages.
func (t *MeshDB) Receive(msg tea.Msg) tea.Cmd {
	switch m := msg.(type) {
	case common.QueryMsg:
		if m.ID != t.id {
			if m.Run != nil {
				m.Run.Cancel()
			}
			return nil
		}
		if m.Err != nil {
			t.fail(m.Err)
			return nil
		}
		t.run, t.plan, t.cols = m.Run, m.Run.Plan, m.Run.Columns
		t.table = widgets.NewTable(resultColumns(t.cols)...)
		return pump(t.c.Ctx, t.id, t.run)
	case common.QueryRowsMsg:
		if m.ID != t.id {
			return nil
		}
		t.add(m.Rows)
		if len(t.values) >= MeshDBMaxRows {
			t.cut = true
			t.cancel()
		}
		return pump(t.c.Ctx, t.id, t.run)
	case common.QueryDoneMsg:
		if m.ID != t.id {
			return nil
		}
		t.running, t.status = false, m.Status
		if m.Err != nil && !t.cut {
			t.fail(m.Err)
		}
		return nil
	}
	return nil
}

func (t *MeshDB) fail(err error) {
	t.running, t.err = false, err
	var qe *api.QueryError
	if errors.As(err, &qe) {
		t.caret = strings.Split(qe.Caret(), "\n")
	}
}

// add appends rows to the table.
func (t *MeshDB) add(rows []api.QueryRow) {
	for _, r := range rows {
		if len(t.values) >= MeshDBMaxRows {
			break
		}
		i := len(t.values)
		t.values = append(t.values, r)
		t.rows = append(t.rows, t.row(i, r))
	}
	t.table.SetRows(t.rows)
}

// resultColumns are table columns for a result's columns.
func resultColumns(cols []api.QueryColumn) []widgets.Column {
	out := make([]widgets.Column, len(cols))
	flex := -1
	for i, c := range cols {
		w, align := max(len(c.Name), 6), widgets.AlignLeft
		switch c.Kind {
		case api.KindInt, api.KindFloat, api.KindDuration, api.KindBytes:
			align = widgets.AlignRight
		case api.KindTime:
			w = 12
		case api.KindNode:
			w = 10
		case api.KindString:
			w, flex = max(w, 10), i
		}
		out[i] = widgets.Column{Title: strings.ToUpper(c.Name), Width: w, Align: align}
	}
	if flex >= 0 {
		out[flex].Flex = true
	}
	return out
}

// row is one result row as table cells.
func (t *MeshDB) row(i int, r api.QueryRow) widgets.Row {
	cells := make([]string, len(r))
	tones := make([]common.Tone, len(r))
	for j, v := range r {
		cells[j], tones[j] = t.cell(v)
	}
	return widgets.Row{Key: strconv.Itoa(i), Cells: cells, Tones: tones}
}

func (t *MeshDB) cell(v api.Value) (string, common.Tone) {
	switch v.Kind {
	case api.KindNull:
		return "—", common.ToneDim
	case api.KindNode:
		return NodeName(t.c.Snap, v.Node()), common.ToneAccent
	case api.KindTime:
		return v.Time().Format("01-02 15:04:05"), common.ToneDim
	case api.KindLevel:
		tone := common.ToneNormal
		switch api.LogLevel(v.I) {
		case api.LevelWarn:
			tone = common.ToneWarn
		case api.LevelError:
			tone = common.ToneDanger
		}
		return v.String(), tone
	case api.KindString:
		return widgets.Printable(v.S), common.ToneNormal
	case api.KindFloat:
		return strconv.FormatFloat(v.F, 'f', -1, 64), common.ToneNormal
	}
	return v.String(), common.ToneNormal
}

// exportLines are the result as tab-separated text with a header line.
func (t *MeshDB) exportLines() []string {
	out := make([]string, 0, len(t.values)+1)
	names := make([]string, len(t.cols))
	for i, c := range t.cols {
		names[i] = c.Name
	}
	out = append(out, strings.Join(names, "\t"))
	for _, r := range t.values {
		cells := make([]string, len(r))
		for i, v := range r {
			cells[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(v.String())
		}
		out = append(out, strings.Join(cells, "\t"))
	}
	return out
}

// editorLines is how many lines the editor gets at height h.
func editorLines(h int) int {
	switch {
	case h >= 40:
		return 5
	case h >= 16:
		return 3
	}
	return 1
}

func (t *MeshDB) View(w, h int) string {
	if h <= 0 {
		return ""
	}
	th := t.c.Theme
	var lines []string
	lines = append(lines, headerLine(th, "meshdb · "+t.state(), t.count(), w))
	lines = append(lines, t.editorView(w, editorLines(h))...)
	lines = append(lines, t.planLine(w))
	for _, l := range t.statusLines(w) {
		lines = append(lines, l)
	}
	if len(lines) >= h {
		return widgets.Lines(lines[:h], w, h)
	}
	body := h - len(lines)
	var rest string
	switch {
	case t.showPlan && t.plan.Text != "":
		rest = widgets.Lines(t.planText(w), w, body)
	case t.err != nil && t.table.Total() == 0:
		rest = widgets.Empty(th, "", w, body)
	case t.table.Total() == 0 && t.query == "":
		rest = widgets.Lines(t.helpLines(w), w, body)
	case t.table.Total() == 0:
		rest = widgets.Empty(th, map[bool]string{true: "waiting for the holders…", false: "no rows"}[t.running], w, body)
	case t.table.Len() == 0:
		rest = widgets.Empty(th, "nothing matches /"+t.table.Filter(), w, body)
	default:
		rest = t.table.View(th, w, body)
	}
	return strings.Join(lines, "\n") + "\n" + rest
}

func (t *MeshDB) state() string {
	switch {
	case t.running:
		return "running…"
	case t.err != nil:
		return "error"
	case t.query == "":
		return "type a query · ctrl+x for an example"
	case t.focused:
		return "editing"
	}
	return "results"
}

func (t *MeshDB) count() string {
	if len(t.cols) == 0 {
		return ""
	}
	return filterNote(t.table)
}

// editorView draws the editor: n lines, the cursor as a block, a gutter
// marking focus.
func (t *MeshDB) editorView(w, n int) []string {
	th := t.c.Theme
	text := strings.Split(t.editor.Value(), "\n")
	row, col := t.editor.Line(), t.editor.Column()
	first := max(0, min(row-n+1, len(text)-n))
	out := make([]string, 0, n)
	for i := first; i < first+n; i++ {
		gutter := "  "
		if i == first {
			gutter = "› "
		}
		gt := common.ToneDim
		if t.focused {
			gt = common.ToneAccent
		}
		line := th.Paint(gt, gutter)
		room := w - 2
		if i < len(text) {
			runes := []rune(widgets.Printable(text[i]))
			if i == row && t.focused {
				c := min(col, len(runes))
				start := max(0, c-room+1)
				before := string(runes[start:c])
				under, after := "█", ""
				if c < len(runes) {
					under, after = string(runes[c]), string(runes[c+1:])
				}
				line += widgets.FitANSI(before+th.Paint(common.ToneSelected, under)+after, room)
			} else {
				line += widgets.Fit(string(runes), room)
			}
		} else {
			line += widgets.Spaces(room)
		}
		out = append(out, line)
	}
	return out
}

// planLine is one line about the plan: its key, the fragments, where.
func (t *MeshDB) planLine(w int) string {
	th := t.c.Theme
	if t.plan.Key == "" {
		return th.Paint(common.ToneDim, widgets.Fit("plan —", w))
	}
	holders := map[api.NodeID]bool{}
	var names []string
	for _, f := range t.plan.Fragments {
		if f.Holder != 0 && !holders[f.Holder] {
			holders[f.Holder] = true
			names = append(names, NodeName(t.c.Snap, f.Holder))
		}
	}
	s := fmt.Sprintf("plan %s · %d fragment(s)", t.plan.Key[:8], len(t.plan.Fragments))
	if len(names) > 0 {
		s += " on " + strings.Join(names, ", ")
	}
	if len(t.plan.Fragments) == 0 {
		s += " · from the cluster view"
	}
	return th.Paint(common.ToneDim, widgets.Fit(s+" · p shows it", w))
}

// statusLines say how the query went: the error with its caret, or rows,
// records scanned, time, and what is missing.
func (t *MeshDB) statusLines(w int) []string {
	th := t.c.Theme
	switch {
	case t.err != nil:
		out := []string{th.Paint(common.ToneDanger, widgets.Fit("✗ "+t.err.Error(), w))}
		for _, c := range t.caret {
			out = append(out, th.Paint(common.ToneWarn, widgets.Fit("  "+widgets.Printable(c), w)))
		}
		return out
	case t.running:
		return []string{th.Paint(common.ToneAccent, widgets.Fit(fmt.Sprintf("… %d row(s) so far · esc cancels", len(t.values)), w))}
	case t.query == "":
		return nil
	}
	st := t.status
	s := fmt.Sprintf("✓ %d row(s) · %d record(s) scanned · %s", len(t.values), st.Scanned, elapsedText(st.Elapsed))
	tone := common.ToneOK
	if st.Cached {
		s += " · cached"
	}
	if t.cut {
		s += fmt.Sprintf(" · first %d rows kept (deck query has the rest)", MeshDBMaxRows)
		tone = common.ToneWarn
	}
	if st.Partial {
		var miss []string
		for _, m := range st.Missing {
			if m.Fragment < 0 {
				miss = append(miss, m.Reason)
				continue
			}
			who := m.Chain
			if m.Instance != 0 {
				who += "@" + NodeName(t.c.Snap, m.Instance)
			}
			miss = append(miss, who+": "+m.Reason)
		}
		s += " · PARTIAL, missing " + strings.Join(miss, "; ")
		tone = common.ToneWarn
	}
	return []string{th.Paint(tone, widgets.Fit(s, w))}
}

// elapsedText is a query's time, coarse: under a second it says so (a
// figure in milliseconds would flicker between runs of the same query).
func elapsedText(d time.Duration) string {
	if d < time.Second {
		return "in <1s"
	}
	return "in " + d.Round(100*time.Millisecond).String()
}

// planText is the plan's tree, node ids shown by label.
func (t *MeshDB) planText(w int) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimRight(t.plan.Text, "\n"), "\n") {
		out = append(out, widgets.Fit(widgets.Printable(l), w))
	}
	return out
}

// helpLines are shown before the first query: the examples.
func (t *MeshDB) helpLines(w int) []string {
	th := t.c.Theme
	out := []string{th.Paint(common.ToneDim, widgets.Fit("examples (ctrl+x puts the next one in the editor):", w))}
	for _, e := range MeshDBExamples {
		out = append(out, th.Paint(common.ToneDim, widgets.Fit("  "+e, w)))
	}
	return out
}

func (t *MeshDB) Bindings() []key.Binding {
	k := t.c.Keys
	if t.focused {
		return []key.Binding{k.QueryRun, k.QueryNewline, k.QueryHistoryPrev, k.QueryHistoryNext, k.QueryExample, k.QueryCancel}
	}
	bs := []key.Binding{k.QueryEdit, k.QueryPlan, k.Filter, k.Export, k.Logs}
	if t.running {
		bs = append(bs, k.QueryCancel)
	}
	return bs
}
