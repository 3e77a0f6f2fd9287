package tabs

import (
	"fmt"
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

// Behavior timeline constants.
const (
	// BehaviorSpan is the width of the time axis.
	BehaviorSpan = 30 * time.Minute
	// ReplayStep is how far `[` and `]` move in time.
	ReplayStep = time.Minute
	// replayNodesMax bounds one History request.
	replayNodesMax = 4096
	behaviorLanes  = 3
)

// Behavior is the BEHAVIOR tab: pending actions, failures and admin events
// on one time axis, with read-only replay of past pending state through
// Client.History, which reads each node's own snapshot chain through
// MeshDB (a latest-before-T read on the node holding it), so a deck scrolls
// back through history from before it joined.
type Behavior struct {
	tableTab
	replayAt   time.Time // zero: live
	replay     []snapshot.NodeSnapshot
	replayErr  error
	loading    bool
	entries    []Entry
	last       *snapshot.ClusterSnapshot
	lastNow    time.Time
	fg, ag     uint64
	reqPending time.Time
}

// Entry is one timeline event.
type Entry struct {
	At   time.Time
	Lane int // 0 pending, 1 failure, 2 admin
	Who  string
	What string
	Tone common.Tone
}

var laneNames = [behaviorLanes]string{"PENDING", "FAILURE", "ADMIN"}

// NewBehavior makes the BEHAVIOR tab.
func NewBehavior(c *common.Context) *Behavior {
	b := &Behavior{tableTab: tableTab{c: c, table: widgets.NewTable(
		widgets.Column{Title: "WHEN", Width: 8},
		widgets.Column{Title: "AGE", Width: 6, Align: widgets.AlignRight},
		widgets.Column{Title: "KIND", Width: 7},
		widgets.Column{Title: "WHO", Width: 10},
		widgets.Column{Title: "WHAT", Width: 20, Flex: true},
	)}, fg: ^uint64(0)}
	b.table.StickTop = true
	return b
}

func (t *Behavior) Name() string { return "BEHAVIOR" }

// TimelineEntries merges pending actions (from nodes), failures and admin
// events at or before 'at', newest first (pure; unit tested).
func TimelineEntries(s *snapshot.ClusterSnapshot, nodes []snapshot.NodeSnapshot, fails []api.FailureRecord, audit []api.AuditRecord, at time.Time) []Entry {
	var out []Entry
	for i := range nodes {
		for _, p := range nodes[i].Pending {
			what := p.Kind + " " + p.Target
			tone := common.ToneAccent
			if p.Blocked != "" {
				what += " · blocked: " + p.Blocked
				tone = common.ToneWarn
			}
			out = append(out, Entry{At: p.Since, Lane: 0, Who: NodeName(s, nodes[i].ID), What: what, Tone: tone})
		}
	}
	for _, f := range fails {
		if !f.At.After(at) {
			out = append(out, Entry{At: f.At, Lane: 1, Who: NodeName(s, f.Node), What: f.Source + ": " + f.Reason, Tone: common.ToneDanger})
		}
	}
	for _, r := range audit {
		when := AuditWhen(&r)
		if when.After(at) {
			continue
		}
		what, tone := string(r.Action.Verb)+" "+AuditTarget(s, r.Action), common.ToneNormal
		if r.ICE {
			what, tone = "ICE "+what, common.ToneWarn
		}
		if r.Outcome == api.Rejected {
			what += " · REJECTED " + r.Reason
			tone = common.ToneDanger
		}
		out = append(out, Entry{At: when, Lane: 2, Who: OperatorName(s, r.Operator), What: what, Tone: tone})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.After(out[j].At) })
	return out
}

// at is the timeline's "now": the replay point or the clock.
func (t *Behavior) at() time.Time {
	if !t.replayAt.IsZero() {
		return t.replayAt
	}
	return t.c.Now
}

func (t *Behavior) Sync() {
	st := t.c.Store
	if t.c.Snap == t.last && sameSecond(t.c.Now, t.lastNow) && st.FailuresGen == t.fg && st.AuditGen == t.ag {
		return
	}
	t.last, t.lastNow, t.fg, t.ag = t.c.Snap, t.c.Now, st.FailuresGen, st.AuditGen
	t.rebuild()
}

func (t *Behavior) rebuild() {
	nodes := t.replay
	if t.replayAt.IsZero() {
		nodes = make([]snapshot.NodeSnapshot, len(t.c.Snap.Nodes))
		for i := range t.c.Snap.Nodes {
			nodes[i] = t.c.Snap.Nodes[i].NodeSnapshot
		}
	}
	t.entries = TimelineEntries(t.c.Snap, nodes, ringSlice(t.c.Store.Failures), ringSlice(t.c.Store.Audit), t.at())
	at := t.at()
	rows := make([]widgets.Row, len(t.entries))
	for i, e := range t.entries {
		rows[i] = widgets.Row{
			Key:   fmt.Sprintf("%d/%d/%s", e.At.UnixNano(), e.Lane, e.What),
			Cells: []string{widgets.Clock(e.At), widgets.Since(at, e.At), laneNames[e.Lane], e.Who, e.What},
			Tones: []common.Tone{common.ToneDim, common.ToneDim, e.Tone, common.ToneAccent, e.Tone},
		}
	}
	t.table.SetRows(rows)
}

// requestReplay asks Client.History for the newest snapshots before at.
func (t *Behavior) requestReplay(at time.Time) tea.Cmd {
	t.loading = true
	t.reqPending = at
	client, ctx := t.c.Client, t.c.Ctx
	n := min(len(t.c.Snap.Nodes)*2, replayNodesMax)
	return func() tea.Msg {
		nodes, err := client.History(ctx, 0, at, n)
		return common.ReplayMsg{At: at, Nodes: nodes, Err: err}
	}
}

// Receive takes History replies.
func (t *Behavior) Receive(msg tea.Msg) tea.Cmd {
	m, ok := msg.(common.ReplayMsg)
	if !ok || !m.At.Equal(t.reqPending) {
		return nil
	}
	t.loading = false
	if m.Err != nil {
		t.replayErr = m.Err
		return common.Toast("history: "+m.Err.Error(), true)
	}
	t.replayErr = nil
	t.replayAt = m.At
	// History is newest first: keep each node's newest snapshot.
	seen := map[api.NodeID]bool{}
	t.replay = t.replay[:0]
	for _, n := range m.Nodes {
		if !seen[n.ID] {
			seen[n.ID] = true
			t.replay = append(t.replay, n)
		}
	}
	t.rebuild()
	return nil
}

func (t *Behavior) Selection() common.Selection { return common.Selection{} }

func (t *Behavior) HandleKey(msg tea.KeyPressMsg) tea.Cmd {
	if t.table.HandleKey(msg, t.c.Keys) {
		return nil
	}
	k := t.c.Keys
	switch {
	case key.Matches(msg, k.ReplayBack):
		return t.requestReplay(t.at().Add(-ReplayStep))
	case key.Matches(msg, k.ReplayForward):
		if t.replayAt.IsZero() {
			return nil
		}
		next := t.replayAt.Add(ReplayStep)
		if !next.Before(t.c.Now) {
			t.replayAt, t.replay = time.Time{}, nil
			t.rebuild()
			return nil
		}
		return t.requestReplay(next)
	case key.Matches(msg, k.ReplayLive):
		t.replayAt, t.replay = time.Time{}, nil
		t.rebuild()
	}
	return nil
}

// Axis renders the three lanes over BehaviorSpan ending at 'at', w cells
// wide including the lane labels.
func Axis(th *common.Theme, entries []Entry, at time.Time, w int) []string {
	const labelW = 8
	aw := w - labelW
	if aw < 10 {
		return nil
	}
	lanes := [behaviorLanes][]rune{}
	tones := [behaviorLanes][]common.Tone{}
	for i := range lanes {
		lanes[i] = []rune(strings.Repeat("─", aw))
		tones[i] = make([]common.Tone, aw)
		for j := range tones[i] {
			tones[i][j] = common.ToneDim
		}
	}
	start := at.Add(-BehaviorSpan)
	for _, e := range entries {
		if e.At.Before(start) || e.At.After(at) {
			continue
		}
		x := int(float64(e.At.Sub(start)) / float64(BehaviorSpan) * float64(aw-1))
		lanes[e.Lane][x] = '●'
		if tones[e.Lane][x] == common.ToneDim || e.Tone == common.ToneDanger {
			tones[e.Lane][x] = e.Tone
		}
	}
	var out []string
	for i := range lanes {
		var b strings.Builder
		b.WriteString(th.Paint(common.ToneDim, widgets.Fit(laneNames[i], labelW)))
		for j, r := range lanes[i] {
			th.PaintTo(&b, tones[i][j], string(r))
		}
		out = append(out, b.String())
	}
	scale := widgets.Fit("-"+widgets.Age(BehaviorSpan), aw/2) + widgets.FitRight("-"+widgets.Age(BehaviorSpan/2), aw/2-aw/4) + widgets.FitRight("now", aw-aw/2-(aw/2-aw/4))
	out = append(out, widgets.Spaces(labelW)+th.Paint(common.ToneDim, scale))
	return out
}

func (t *Behavior) View(w, h int) string {
	th := t.c.Theme
	mode := "LIVE"
	if !t.replayAt.IsZero() {
		mode = "REPLAY @ " + widgets.Clock(t.replayAt) + " (read-only, L live)"
	}
	if t.loading {
		mode += " · loading history…"
	}
	head := headerLine(th, "timeline · "+mode, filterNote(t.table), w)
	if h <= 1 {
		return head
	}
	axis := Axis(th, t.entries, t.at(), w)
	if len(axis) == 0 || h < len(axis)+4 {
		axis = nil
	}
	body := h - 1 - len(axis)
	var rest string
	if t.table.Total() == 0 {
		rest = widgets.Empty(th, "no pending actions, failures or admin events", w, body)
	} else {
		rest = t.table.View(th, w, body)
	}
	parts := []string{head}
	if len(axis) > 0 {
		parts = append(parts, widgets.Lines(axis, w, len(axis)))
	}
	parts = append(parts, rest)
	return strings.Join(parts, "\n")
}

func (t *Behavior) Bindings() []key.Binding {
	k := t.c.Keys
	return []key.Binding{k.ReplayBack, k.ReplayForward, k.ReplayLive, k.Filter}
}
