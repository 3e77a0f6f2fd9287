package deck

import (
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/tabs"
	"github.com/deck-mesh/deck/widgets"
)

// update routes one message (Update, in attach.go, drops messages of an
// earlier attachment first). It never blocks: anything that may wait (the
// Client's calls, file writes) runs in a returned command.
func (m *Model) update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg.(type) {
	case tickMsg, tea.KeyPressMsg:
		// The clock advances on the idle tick and on keys only, so one
		// second of frames shows one time and time-derived rows are rebuilt
		// at most about once a second, not on every stream batch.
		m.c.Now = m.c.Clock()
	}
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.c.Width, m.c.Height = msg.Width, msg.Height
		return m, nil
	case tea.ColorProfileMsg:
		m.c.Theme = common.NewTheme(msg.Profile)
		return m, nil
	case tickMsg:
		m.toasts.Expire(m.c.Now)
		m.screen().Sync()
		return m, tea.Batch(tick(), m.refresh())
	case snapWatchMsg:
		m.snapCh = msg.ch
		return m, waitSnapshot(m.c.Ctx, msg.ch)
	case snapMsg:
		if msg.s != nil {
			m.setSnapshot(msg.s)
		}
		return m, waitSnapshot(m.c.Ctx, m.snapCh)
	case logSubMsg:
		if msg.err != nil {
			return m, m.toast("logs unavailable: "+msg.err.Error(), true)
		}
		m.logStream = msg.s
		return m, m.pumpLogs()
	case failSubMsg:
		if msg.err != nil {
			return m, m.toast("failures unavailable: "+msg.err.Error(), true)
		}
		m.failStream = msg.s
		return m, m.pumpFailures()
	case auditSubMsg:
		if msg.err != nil {
			return m, m.toast("audit unavailable: "+msg.err.Error(), true)
		}
		m.auditStream = msg.s
		return m, m.pumpAudit()
	case logBatchMsg:
		m.foldLogs(msg.recs)
		if m.onLogs() {
			m.logs.Sync()
		}
		return m, m.pumpLogs()
	case failBatchMsg:
		m.foldFailures(msg.recs)
		m.screen().Sync()
		return m, m.pumpFailures()
	case auditBatchMsg:
		m.foldAudit(msg.recs)
		m.screen().Sync()
		return m, m.pumpAudit()
	case streamEndMsg:
		if m.c.Ctx.Err() != nil {
			return m, nil
		}
		return m, m.toast(msg.what+" stream ended", true)
	case common.ToastMsg:
		m.toasts.Push(msg.Text, msg.Error, m.c.Now)
		return m, nil
	case common.OpenPageMsg:
		m.openPage(msg)
		return m, tea.Batch(m.refresh(), m.followFocus())
	case tabs.BlobStatMsg:
		// To whichever open page asked (the operator may have moved on).
		for _, st := range m.pages {
			for _, p := range st {
				if r, ok := p.(tabs.Receiver); ok {
					r.Receive(msg)
				}
			}
		}
		return m, nil
	case subnetFocusMsg:
		m.focused(msg)
		return m, nil
	case common.ActionMsg:
		return m, m.startAction(msg)
	case common.ExportMsg:
		return m, m.startExport(msg)
	case common.FaultMsg:
		return m, m.startFault(msg)
	case tabs.LimitPromptMsg:
		return m, m.limitPrompt(msg)
	case common.ReplayMsg, common.QueryMsg, common.QueryRowsMsg, common.QueryDoneMsg:
		for _, t := range m.tabs {
			if r, ok := t.tab.(tabs.Receiver); ok {
				if cmd := r.Receive(msg); cmd != nil {
					return m, cmd
				}
			}
		}
		return m, nil
	case previewMsg, preparedMsg, simulatedMsg, committedMsg, blobCommittedMsg, exportedMsg, injectedMsg:
		return m, m.flowResult(msg)
	case tea.PasteMsg:
		switch {
		case len(m.modals) > 0:
			m.modals[len(m.modals)-1].HandlePaste(msg.Content)
		case m.filtering:
			m.filterIn.Paste(msg.Content)
			m.filterOn.SetFilter(m.filterIn.String())
		case m.capturing() != nil:
			m.capturing().Paste(msg.Content)
		}
		return m, nil
	case tea.KeyPressMsg:
		cmd := m.handleKey(msg)
		if follow := m.followFocus(); follow != nil {
			cmd = tea.Batch(cmd, follow)
		}
		return m, cmd
	}
	return m, nil
}

// refresh runs the shown screen's Refresh, if it has one.
func (m *Model) refresh() tea.Cmd {
	if r, ok := m.screen().(tabs.Refresher); ok {
		return r.Refresh()
	}
	return nil
}

func (m *Model) toast(text string, isErr bool) tea.Cmd {
	m.toasts.Push(text, isErr, m.c.Now)
	return nil
}

func (m *Model) setSnapshot(s *snapshot.ClusterSnapshot) {
	m.c.Snap = s
	m.screen().Sync()
}

func (m *Model) handleKey(msg tea.KeyPressMsg) tea.Cmd {
	k := m.c.Keys
	if key.Matches(msg, k.ForceQuit) {
		return m.quit()
	}
	if n := len(m.modals); n > 0 {
		cmd, closed := m.modals[n-1].HandleKey(msg, k)
		if closed {
			// The callback may have pushed a follow-up modal; remove this one
			// wherever it now sits.
			top := m.modals[n-1]
			for i := len(m.modals) - 1; i >= 0; i-- {
				if m.modals[i] == top {
					m.modals = append(m.modals[:i], m.modals[i+1:]...)
					break
				}
			}
		}
		return cmd
	}
	if m.help {
		// j/k scroll a help longer than the screen; any other key closes it.
		switch {
		case key.Matches(msg, k.Down):
			m.helpScroll++
		case key.Matches(msg, k.Up):
			m.helpScroll = max(0, m.helpScroll-1)
		default:
			m.help, m.helpScroll = false, 0
		}
		return nil
	}
	if m.filtering {
		return m.handleFilterKey(msg)
	}
	if c := m.capturing(); c != nil {
		// A text editor has the keys: only tab switching stays the root's.
		switch {
		case key.Matches(msg, k.NextTab):
			m.switchTab((m.active + 1) % len(m.tabs))
			return nil
		case key.Matches(msg, k.PrevTab):
			m.switchTab((m.active + len(m.tabs) - 1) % len(m.tabs))
			return nil
		}
		return m.screen().HandleKey(msg)
	}
	switch {
	case key.Matches(msg, k.Quit):
		return m.quit()
	case key.Matches(msg, k.Help):
		m.help = true
		return nil
	case key.Matches(msg, k.NextTab):
		m.switchTab((m.active + 1) % len(m.tabs))
		return nil
	case key.Matches(msg, k.PrevTab):
		m.switchTab((m.active + len(m.tabs) - 1) % len(m.tabs))
		return nil
	case key.Matches(msg, k.Back):
		return m.back()
	case key.Matches(msg, k.Filter):
		if f, ok := m.screen().(tabs.Filterable); ok {
			m.filtering, m.filterOn, m.filterPrev = true, f, f.Filter()
			m.filterIn = widgets.Input{Max: 256}
			m.filterIn.Paste(m.filterPrev)
		}
		return nil
	case key.Matches(msg, k.Logs) && !m.onLogs():
		return m.jumpToLogs()
	case key.Matches(msg, k.Attach):
		return m.openAttach()
	}
	for i, t := range m.tabs {
		if key.Matches(msg, t.key) {
			m.switchTab(i)
			return nil
		}
	}
	return m.screen().HandleKey(msg)
}

func (m *Model) quit() tea.Cmd {
	m.quitting = true
	m.Close()
	return tea.Quit
}

// capturing is the screen taking every key, if it is.
func (m *Model) capturing() tabs.Capturing {
	if c, ok := m.screen().(tabs.Capturing); ok && c.Capturing() {
		return c
	}
	return nil
}

// back pops a page, or returns from LOGS to where `l` came from; a screen
// may take Esc first (MESHDB cancels its query).
func (m *Model) back() tea.Cmd {
	if e, ok := m.screen().(tabs.Escaper); ok && e.Esc() {
		return nil
	}
	if st := m.pages[m.active]; len(st) > 0 {
		m.pages[m.active] = st[:len(st)-1]
		m.screen().Sync()
		return nil
	}
	if m.onLogs() && m.ret != nil {
		ret := m.ret
		m.ret = nil
		m.switchTab(ret.tab)
	}
	return nil
}

func (m *Model) jumpToLogs() tea.Cmd {
	sel := m.screen().Selection()
	if sel.Node == 0 && sel.Daemon == "" {
		return m.toast("nothing selected to show logs for", false)
	}
	m.ret = &location{tab: m.active}
	if sel.Daemon != "" {
		// Daemon ids are stable across migrations: filter by daemon only.
		m.logs.SetScope(0, sel.Daemon)
	} else {
		m.logs.SetScope(sel.Node, "")
	}
	m.switchTab(m.tabIndex(m.logs))
	return nil
}

func (m *Model) handleFilterKey(msg tea.KeyPressMsg) tea.Cmd {
	k := m.c.Keys
	switch {
	case key.Matches(msg, k.Cancel):
		m.filterOn.SetFilter(m.filterPrev)
		m.filtering = false
	case key.Matches(msg, k.Submit):
		m.filtering = false
	default:
		m.filterIn.HandleKey(msg, k)
		m.filterOn.SetFilter(m.filterIn.String())
	}
	return nil
}

func (m *Model) openPage(msg common.OpenPageMsg) {
	var p tabs.Tab
	switch msg.Kind {
	case common.PageNode:
		p = tabs.NewNodePage(m.c, msg.Node)
	case common.PageDaemon:
		p = tabs.NewDaemonPage(m.c, msg.Daemon)
	case common.PageAudit:
		if msg.Audit == nil {
			return
		}
		p = tabs.NewAuditPage(m.c, *msg.Audit)
	case common.PageFailure:
		if msg.Fail == nil {
			return
		}
		p = tabs.NewFailurePage(m.c, *msg.Fail)
	case common.PageBlob:
		p = tabs.NewBlobPage(m.c, msg.Blob)
	case common.PageSubnet:
		p = m.openSubnet(msg.Subnet)
	default:
		return
	}
	m.pages[m.active] = append(m.pages[m.active], p)
	p.Sync()
}
