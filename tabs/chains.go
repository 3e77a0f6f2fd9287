package tabs

import (
	"fmt"
	"strconv"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/widgets"
)

// Chains is the CHAINS tab: replicated chains, desired vs held.
type Chains struct {
	tableTab
	last    *snapshot.ClusterSnapshot
	summary string
}

// NewChains makes the CHAINS tab.
func NewChains(c *common.Context) *Chains {
	return &Chains{tableTab: tableTab{c: c, table: widgets.NewTable(
		widgets.Column{Title: "CHAIN", Width: 14},
		widgets.Column{Title: "HELD", Width: 4, Align: widgets.AlignRight},
		widgets.Column{Title: "DESIRED", Width: 7, Align: widgets.AlignRight},
		widgets.Column{Title: "STATUS", Width: 6},
		widgets.Column{Title: "LEADER", Width: 11},
		widgets.Column{Title: "HEAD", Width: 7, Align: widgets.AlignRight, HideBelow: 100},
		widgets.Column{Title: "HOLDERS", Width: 16, Flex: true},
	)}}
}

func (t *Chains) Name() string { return "CHAINS" }

// ChainStatusTone maps ok/under/over to a tone.
func ChainStatusTone(status string) common.Tone {
	switch status {
	case "under":
		return common.ToneDanger
	case "over":
		return common.ToneWarn
	}
	return common.ToneOK
}

// ChainRows turns a snapshot into CHAINS rows (pure; unit tested).
func ChainRows(s *snapshot.ClusterSnapshot) []widgets.Row {
	rows := make([]widgets.Row, 0, len(s.Chains))
	for _, ch := range s.Chains {
		holders := make([]string, len(ch.Holders))
		for i, h := range ch.Holders {
			holders[i] = NodeName(s, h)
		}
		st := ch.Status()
		rows = append(rows, widgets.Row{
			Key:   ch.Name,
			Cells: []string{ch.Name, strconv.Itoa(ch.Held()), strconv.Itoa(ch.Desired), st, NodeName(s, ch.Leader), fmt.Sprint(ch.HeadSeq), strings.Join(holders, " ")},
			Tones: []common.Tone{common.ToneNormal, common.ToneNormal, common.ToneDim, ChainStatusTone(st), common.ToneAccent, common.ToneDim, common.ToneNormal},
		})
	}
	return rows
}

func (t *Chains) Sync() {
	s := t.c.Snap
	if s == t.last {
		return
	}
	t.last = s
	t.table.SetRows(ChainRows(s))
	var ok, under, over int
	for _, ch := range s.Chains {
		switch ch.Status() {
		case "under":
			under++
		case "over":
			over++
		default:
			ok++
		}
	}
	t.summary = fmt.Sprintf("%d chains · %d ok · %d under · %d over", len(s.Chains), ok, under, over)
}

func (t *Chains) chain() *snapshot.Chain {
	name := t.table.SelectedKey()
	for i := range t.c.Snap.Chains {
		if t.c.Snap.Chains[i].Name == name {
			return &t.c.Snap.Chains[i]
		}
	}
	return nil
}

func (t *Chains) Selection() common.Selection {
	sel := common.Selection{Chain: t.table.SelectedKey(), Label: t.table.SelectedKey()}
	if ch := t.chain(); ch != nil {
		sel.Node = ch.Leader
	}
	return sel
}

func (t *Chains) HandleKey(msg tea.KeyPressMsg) tea.Cmd {
	if t.table.HandleKey(msg, t.c.Keys) {
		return nil
	}
	ch := t.chain()
	if ch == nil {
		return nil
	}
	k := t.c.Keys
	switch {
	case key.Matches(msg, k.ForceEvict):
		return act(common.ActionMsg{Action: api.Action{Verb: api.VerbForceEvictReplica, Chain: ch.Name}, PickHolder: true})
	case key.Matches(msg, k.ForceCutover):
		return act(common.ActionMsg{Action: api.Action{Verb: api.VerbForceCutover, Chain: ch.Name}, PickNode: true})
	case key.Matches(msg, k.Enter):
		if ch.Leader != 0 {
			return openNode(ch.Leader)
		}
	}
	return nil
}

func (t *Chains) View(w, h int) string { return t.render(t.summary, w, h, "no chains") }

func (t *Chains) Bindings() []key.Binding {
	k := t.c.Keys
	return []key.Binding{k.Enter, k.ForceEvict, k.ForceCutover, k.Logs, k.Filter}
}
