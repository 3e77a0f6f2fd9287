package tabs

import (
	"fmt"
	"strconv"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/widgets"
)

// Failures is the FAILURES tab: the failures chains of every node.
type Failures struct {
	tableTab
	gen  uint64
	last *snapshot.ClusterSnapshot
}

// NewFailures makes the FAILURES tab.
func NewFailures(c *common.Context) *Failures {
	f := &Failures{tableTab: tableTab{c: c, table: widgets.NewTable(
		widgets.Column{Title: "SEQ", Width: 4, Align: widgets.AlignRight},
		widgets.Column{Title: "WHEN", Width: 8},
		widgets.Column{Title: "NODE", Width: 10},
		widgets.Column{Title: "SOURCE", Width: 10},
		widgets.Column{Title: "REASON", Width: 20, Flex: true},
	)}, gen: ^uint64(0)}
	f.table.StickTop = true
	return f
}

func (t *Failures) Name() string { return "FAILURES" }

// FailureKey identifies a failure row (seq is per node).
func FailureKey(f api.FailureRecord) string {
	return f.Node.String() + "/" + strconv.FormatUint(f.Seq, 10)
}

// FailureRows turns failure records (oldest first) into rows, newest first.
func FailureRows(s *snapshot.ClusterSnapshot, recs []api.FailureRecord) []widgets.Row {
	rows := make([]widgets.Row, 0, len(recs))
	for i := len(recs) - 1; i >= 0; i-- {
		f := &recs[i]
		rows = append(rows, widgets.Row{
			Key:   FailureKey(*f),
			Cells: []string{strconv.FormatUint(f.Seq, 10), widgets.Clock(f.At), NodeName(s, f.Node), f.Source, f.Reason},
			Tones: []common.Tone{common.ToneDim, common.ToneDim, common.ToneNormal, common.ToneAccent, common.ToneWarn},
		})
	}
	return rows
}

func (t *Failures) Sync() {
	if t.c.Store.FailuresGen == t.gen && t.c.Snap == t.last {
		return
	}
	t.gen, t.last = t.c.Store.FailuresGen, t.c.Snap
	t.table.SetRows(FailureRows(t.c.Snap, ringSlice(t.c.Store.Failures)))
}

func (t *Failures) record() *api.FailureRecord {
	k := t.table.SelectedKey()
	r := t.c.Store.Failures
	for i := r.Len() - 1; i >= 0; i-- {
		if f := r.Index(i); FailureKey(*f) == k {
			cp := *f
			return &cp
		}
	}
	return nil
}

func (t *Failures) Selection() common.Selection {
	if f := t.record(); f != nil {
		return common.Selection{Node: f.Node, Label: NodeName(t.c.Snap, f.Node)}
	}
	return common.Selection{}
}

func (t *Failures) HandleKey(msg tea.KeyPressMsg) tea.Cmd {
	if t.table.HandleKey(msg, t.c.Keys) {
		return nil
	}
	switch {
	case key.Matches(msg, t.c.Keys.Export):
		rows := t.table.Shown() // what the screen lists, `/` filter applied
		return common.Emit(common.ExportMsg{What: "failures", Lines: func() []string { return rowLines(t.table.Cols, rows) }})
	case key.Matches(msg, t.c.Keys.Enter):
		if f := t.record(); f != nil {
			return common.Emit(common.OpenPageMsg{Kind: common.PageFailure, Fail: f})
		}
	}
	return nil
}

func (t *Failures) View(w, h int) string {
	st := t.c.Store
	return t.render(fmt.Sprintf("failures chains · %d held · %d dropped", st.Failures.Len(), st.FailuresDropped), w, h, "no failures recorded")
}

func (t *Failures) Bindings() []key.Binding {
	k := t.c.Keys
	return []key.Binding{k.Enter, k.Logs, k.Filter, k.Export}
}

// FailurePage is the drill-down of one failure record.
type FailurePage struct {
	c      *common.Context
	rec    api.FailureRecord
	scroll int
}

// NewFailurePage makes the page for f.
func NewFailurePage(c *common.Context, f api.FailureRecord) *FailurePage {
	return &FailurePage{c: c, rec: f}
}

func (p *FailurePage) Name() string {
	return fmt.Sprintf("FAILURE %s#%d", NodeName(p.c.Snap, p.rec.Node), p.rec.Seq)
}
func (p *FailurePage) Sync() {}
func (p *FailurePage) Selection() common.Selection {
	return common.Selection{Node: p.rec.Node, Label: NodeName(p.c.Snap, p.rec.Node)}
}
func (p *FailurePage) Bindings() []key.Binding {
	return []key.Binding{p.c.Keys.Back, p.c.Keys.Logs, p.c.Keys.Up, p.c.Keys.Down}
}
func (p *FailurePage) HandleKey(msg tea.KeyPressMsg) tea.Cmd {
	if key.Matches(msg, p.c.Keys.Enter) {
		return openNode(p.rec.Node)
	}
	p.scroll = scrollKey(msg, p.c.Keys, p.scroll)
	return nil
}

func (p *FailurePage) View(w, h int) string {
	th := p.c.Theme
	f := p.rec
	kv := func(k, v string, tone common.Tone) string {
		return th.Paint(common.ToneDim, widgets.Fit(k, 8)) + " " + th.Paint(tone, v)
	}
	lines := []string{
		kv("seq", strconv.FormatUint(f.Seq, 10), common.ToneTitle),
		kv("when", f.At.UTC().Format(time.RFC3339)+" ("+widgets.Since(p.c.Now, f.At)+" ago)", common.ToneNormal),
		kv("node", NodeName(p.c.Snap, f.Node)+" "+f.Node.String(), common.ToneNormal),
		kv("source", f.Source, common.ToneAccent),
		kv("reason", "", common.ToneNormal),
	}
	for _, l := range widgets.WrapPlain(f.Reason, max(10, w-4)) {
		lines = append(lines, "  "+th.Paint(common.ToneWarn, l))
	}
	return scrolled(lines, &p.scroll, w, h)
}
