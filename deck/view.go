package deck

import (
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/tabs"
	"github.com/deck-mesh/deck/widgets"
)

// statusCounts are the status line's cluster figures, computed once per
// snapshot rather than per frame.
type statusCounts struct {
	healthy, suspect, unreachable int
	daemons                       tabs.DaemonCounts
	pending                       int
	// inMaint counts hosting nodes whose maintenance state is not active;
	// drainFailed those of them that failed to drain.
	inMaint, drainFailed int
	selfStarted          time.Time
	// selfHosts is true when this deck's own node hosts work (deck serve,
	// a node's console), not an observer; selfMaint is then its state.
	selfHosts bool
	selfMaint snapshot.MaintState
}

// countStatus counts peers (hosting nodes other than this one: consoles are
// not peers an operator manages), daemons (each once, see CountDaemons) and
// maintenance across the cluster.
func countStatus(s *snapshot.ClusterSnapshot) statusCounts {
	var c statusCounts
	c.daemons = tabs.CountDaemons(s)
	for i := range s.Nodes {
		n := &s.Nodes[i]
		if n.ID == s.Self {
			c.selfStarted = n.StartedAt
			c.selfHosts, c.selfMaint = !n.Observer, n.Maintenance.State
		}
		if n.Observer {
			continue
		}
		if n.ID != s.Self {
			switch n.Health {
			case snapshot.Healthy:
				c.healthy++
			case snapshot.Suspect:
				c.suspect++
			default:
				c.unreachable++
			}
		}
		c.pending += len(n.Pending)
		if n.Maintenance.State != snapshot.MaintActive {
			c.inMaint++
			if n.Maintenance.State == snapshot.MaintDrainFailed {
				c.drainFailed++
			}
		}
	}
	return c
}

func (m *Model) statusLine(w int) string {
	if m.countsOf != m.c.Snap {
		m.countsOf, m.counts = m.c.Snap, countStatus(m.c.Snap)
	}
	c := m.counts
	s := m.c.Snap
	age := m.c.Now.Sub(s.BuiltAt)
	live := widgets.Segment{Text: "● LIVE " + widgets.Age(age), Tone: common.ToneOK}
	if s.BuiltAt.IsZero() {
		live = widgets.Segment{Text: "○ WAITING", Tone: common.ToneWarn}
	} else if age > StaleAfter {
		live = widgets.Segment{Text: "○ STALE " + widgets.Age(age), Tone: common.ToneDanger}
	}
	op := widgets.Segment{Text: "op " + m.c.Operator.Name + " " + m.c.Operator.ID.Short(), Tone: common.ToneAccent, Priority: 3}
	if m.c.ReadOnly {
		op = widgets.Segment{Text: "READ-ONLY: " + m.c.ReadOnlyReason, Tone: common.ToneWarn, Priority: 1}
	}
	peerTone := common.ToneNormal
	if c.unreachable > 0 {
		peerTone = common.ToneWarn
	}
	dTone := common.ToneNormal
	if c.daemons.Crashed > 0 {
		dTone = common.ToneDanger
	} else if c.daemons.Backoff > 0 || c.daemons.Unseen > 0 {
		dTone = common.ToneWarn
	}
	daemons := fmt.Sprintf("daemons %d/%d/%d", c.daemons.Running, c.daemons.Backoff, c.daemons.Crashed)
	if c.daemons.Unseen > 0 {
		daemons += fmt.Sprintf(" +%d unseen", c.daemons.Unseen)
	}
	maint, maintTone := "maint none", common.ToneDim
	switch {
	case c.drainFailed > 0:
		maint, maintTone = fmt.Sprintf("maint %d · %d drain-failed", c.inMaint, c.drainFailed), common.ToneDanger
	case c.inMaint > 0:
		maint, maintTone = fmt.Sprintf("maint %d", c.inMaint), common.ToneWarn
	}
	if c.selfHosts {
		// The local node's own state first: an operator on a node's
		// console must see at once that this node is draining.
		maint = "here " + c.selfMaint.String() + " · " + maint
		if c.selfMaint == snapshot.MaintDrainFailed {
			maintTone = common.ToneDanger
		} else if c.selfMaint != snapshot.MaintActive && maintTone != common.ToneDanger {
			maintTone = common.ToneWarn
		}
	}
	pend := fmt.Sprintf("pend %d", c.pending)
	if m.inflight > 0 {
		pend += fmt.Sprintf(" · %d committing", m.inflight)
	}
	dropTone := common.ToneDim
	if m.c.Store.Dropped() > 0 {
		dropTone = common.ToneWarn
	}
	segs := []widgets.Segment{
		live,
		{Text: s.Cluster, Tone: common.ToneTitle, Priority: 2},
		op,
		{Text: fmt.Sprintf("peers %d/%d/%d", c.healthy, c.suspect, c.unreachable), Tone: peerTone, Priority: 1},
		{Text: daemons, Tone: dTone, Priority: 1},
		{Text: pend, Tone: common.ToneNormal, Priority: 4},
		{Text: maint, Tone: maintTone, Priority: 5},
		{Text: fmt.Sprintf("drop %d", m.c.Store.Dropped()), Tone: dropTone, Priority: 4},
		{Text: "up " + widgets.Since(m.c.Now, c.selfStarted), Tone: common.ToneDim, Priority: 6},
		{Text: "v" + strings.TrimPrefix(m.opts.Version, "v"), Tone: common.ToneDim, Priority: 7},
	}
	if m.opts.Version == "" {
		segs = segs[:len(segs)-1]
	}
	segs = m.attachSegment(segs)
	return widgets.StatusLine(m.c.Theme, segs, w)
}

// banner is the freeze / lockout line, or "" when neither is active.
func (m *Model) banner(w int) string {
	s := m.c.Snap
	now := m.c.Now
	var parts []string
	if s.Freeze.Active && s.Freeze.Until.After(now) {
		parts = append(parts, fmt.Sprintf("❄ FROZEN by %s: %s · thaws in %s", tabs.OperatorName(s, s.Freeze.Operator), s.Freeze.Reason, widgets.Countdown(now, s.Freeze.Until)))
	}
	n := 0
	var first string
	for _, l := range s.Lockouts {
		if l.Until.After(now) {
			if n == 0 {
				first = fmt.Sprintf("⏳ LOCKOUT %s %s %s", l.Verb, tabs.NameIDs(s, l.Target), widgets.Countdown(now, l.Until))
			}
			n++
		}
	}
	if n > 0 {
		if n > 1 {
			first += fmt.Sprintf(" (+%d)", n-1)
		}
		parts = append(parts, first)
	}
	if len(parts) == 0 {
		return ""
	}
	text := widgets.Fit(" "+strings.Join(parts, "  │  "), w)
	return m.c.Theme.Paint(common.ToneBanner, text)
}

func (m *Model) tabStrip(w int) string {
	names := make([]string, len(m.tabs))
	keys := make([]string, len(m.tabs))
	for i, t := range m.tabs {
		names[i], keys[i] = t.tab.Name(), t.key.Help().Key
	}
	return widgets.TabStrip(m.c.Theme, names, keys, m.active, w)
}

// ruleLine is the rule under the tabs, carrying the page breadcrumb.
func (m *Model) ruleLine(w int) string {
	th := m.c.Theme
	st := m.pages[m.active]
	if len(st) == 0 && !(m.onLogs() && m.ret != nil) {
		return widgets.Rule(th, w)
	}
	crumbs := []string{m.tabs[m.active].tab.Name()}
	for _, p := range st {
		crumbs = append(crumbs, p.Name())
	}
	text := " " + strings.Join(crumbs, " › ") + " "
	if len(st) == 0 {
		text = " LOGS · esc back to " + m.tabs[m.ret.tab].tab.Name() + " "
	}
	text = widgets.Truncate(text, max(0, w-4))
	return widgets.Rule(th, 2) + th.Paint(common.ToneTitle, text) + widgets.Rule(th, w-2-widgets.Width(text))
}

func (m *Model) footer(w int) string {
	th := m.c.Theme
	if _, _, ok := m.toasts.Current(); ok {
		return widgets.Footer(th, nil, &m.toasts, w)
	}
	switch {
	case len(m.modals) > 0:
		return th.Paint(common.ToneChip, widgets.Fit(" "+m.modals[len(m.modals)-1].Hints(m.c.Keys), w))
	case m.filtering:
		line := m.filterIn.View(th, "/", w-30)[0]
		hint := common.Hints(common.Hint(common.As(m.c.Keys.Submit, "keep")), common.Hint(common.As(m.c.Keys.Cancel, "undo")))
		return widgets.FitANSI(line+th.Paint(common.ToneDim, "   "+hint), w)
	case m.help:
		return th.Paint(common.ToneChip, widgets.Fit(" j/k scroll · any other key closes help", w))
	}
	return widgets.ChipsPinned(th, m.screen().Bindings(), []key.Binding{m.c.Keys.Help, m.c.Keys.Quit}, w)
}

// helpGroups is the help overlay's content, generated from the live keymap.
func (m *Model) helpGroups() []widgets.HelpGroup {
	k := m.c.Keys
	tabKeys := make([]key.Binding, len(m.tabs))
	for i, t := range m.tabs {
		tabKeys[i] = common.As(t.key, t.tab.Name())
	}
	return []widgets.HelpGroup{
		{Title: m.screen().Name(), Bindings: m.screen().Bindings()},
		{Title: "GLOBAL", Bindings: k.Global()},
		{Title: "NAVIGATION", Bindings: k.Navigation()},
		{Title: "TABS", Bindings: tabKeys},
	}
}

// View renders the frame: status, banner, tabs, rule, body, footer.
func (m *Model) View() tea.View {
	v := tea.NewView(m.render())
	v.AltScreen = true
	v.WindowTitle = "deck · " + m.c.Snap.Cluster
	return v
}

func (m *Model) render() string {
	w, h := m.c.Width, m.c.Height
	if m.quitting {
		return ""
	}
	if w < MinWidth || h < MinHeight {
		return widgets.Lines([]string{widgets.Truncate(fmt.Sprintf("deck needs at least 80×24 (this is %d×%d)", w, h), w)}, w, h)
	}
	lines := make([]string, 0, h)
	lines = append(lines, m.statusLine(w))
	if b := m.banner(w); b != "" {
		lines = append(lines, b)
	}
	lines = append(lines, m.tabStrip(w), m.ruleLine(w))
	bodyH := h - len(lines) - 1
	body := m.screen().View(w, bodyH)
	bodyLines := strings.Split(body, "\n")
	if len(bodyLines) != bodyH {
		bodyLines = strings.Split(widgets.Lines(bodyLines, w, bodyH), "\n")
	}
	th := m.c.Theme
	switch {
	case m.help:
		mw := min(w-2, 110)
		help := widgets.Help(th, m.helpGroups(), mw-4)
		room := max(1, bodyH-2)
		if m.helpScroll > len(help)-room {
			m.helpScroll = max(0, len(help)-room)
		}
		title := "HELP · generated from the keymap"
		if len(help) > room {
			title += fmt.Sprintf(" · j/k scroll %d/%d", m.helpScroll+room, len(help))
		}
		box := widgets.Box(th, title, help[m.helpScroll:min(len(help), m.helpScroll+room)], mw, bodyH)
		bodyLines = widgets.Overlay(bodyLines, box, w)
	case len(m.modals) > 0:
		mw := widgets.ModalWidth(w)
		title, inner := m.modals[len(m.modals)-1].View(th, m.c.Now, mw-4)
		box := widgets.Box(th, title, inner, mw, bodyH)
		bodyLines = widgets.Overlay(bodyLines, box, w)
	}
	lines = append(lines, bodyLines...)
	lines = append(lines, m.footer(w))
	return strings.Join(lines, "\n")
}
