package widgets

import (
	"fmt"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/api"
)

// ConfirmWord is what the operator must type, exactly, to commit.
const ConfirmWord = "YES"

// MaxWarningsShown caps the warning lines; the rest collapse to "… +N more".
const (
	MaxWarningsShown = 3
	maxMovesShown    = 4
)

// Confirm shows an action's blast radius and commits only on a typed YES.
// Any other text (or Esc) refuses: OnRefuse runs and nothing is committed.
type Confirm struct {
	Title     string
	Radius    api.BlastRadius
	Name      func(api.NodeID) string // node id → display name
	Note      string                  // e.g. "ICE · 2 signatures required"
	In        Input
	OnConfirm func() tea.Cmd
	OnRefuse  func(typed string) tea.Cmd
}

func (c *Confirm) HandleKey(msg tea.KeyPressMsg) (tea.Cmd, bool) {
	switch msg.String() {
	case "esc":
		if c.OnRefuse != nil {
			return c.OnRefuse(""), true
		}
		return nil, true
	case "enter":
		typed := c.In.String()
		if typed == ConfirmWord {
			if c.OnConfirm != nil {
				return c.OnConfirm(), true
			}
			return nil, true
		}
		if c.OnRefuse != nil {
			return c.OnRefuse(typed), true
		}
		return nil, true
	}
	c.In.HandleKey(msg)
	return nil, false
}

func (c *Confirm) HandlePaste(s string) { c.In.Paste(s) }

func (c *Confirm) Hints() string {
	return "type YES + enter to commit · anything else refuses · esc cancel"
}

func (c *Confirm) name(id api.NodeID) string {
	if id == 0 {
		return "(nowhere)"
	}
	if c.Name != nil {
		return c.Name(id)
	}
	return id.Short()
}

// View renders the blast radius (BlastLines) and the YES input.
func (c *Confirm) View(th *common.Theme, _ time.Time, w int) (string, []string) {
	lines := BlastLines(th, c.Radius, c.name, w)
	if c.Note != "" {
		lines = append(lines, th.Paint(common.ToneWarn, Truncate(c.Note, w)))
	}
	lines = append(lines, "")
	lines = append(lines, c.In.View(th, "Type YES to confirm:", w)...)
	return c.Title, lines
}

// BlastLines renders a blast radius as dense lines: counts, replica moves,
// daemon migrations, hot nodes, drain time, stability, warnings (capped).
func BlastLines(th *common.Theme, br api.BlastRadius, name func(api.NodeID) string, w int) []string {
	var lines []string
	add := func(tone common.Tone, s string) { lines = append(lines, th.Paint(tone, Truncate(s, w))) }
	add(common.ToneTitle, fmt.Sprintf("This action affects %d nodes, %d replicas, %d daemons.",
		len(br.Nodes), len(br.Replicas), len(br.Daemons)))
	if len(br.Replicas) > 0 {
		var parts []string
		for i, mv := range br.Replicas {
			if i == maxMovesShown {
				parts = append(parts, fmt.Sprintf("… +%d more", len(br.Replicas)-maxMovesShown))
				break
			}
			parts = append(parts, fmt.Sprintf("%s %s→%s", mv.Chain, name(mv.From), name(mv.To)))
		}
		add(common.ToneNormal, "replicas: "+strings.Join(parts, ", "))
	}
	if len(br.Migrated) > 0 || len(br.Restarted) > 0 {
		var parts []string
		for i, mv := range br.Migrated {
			if i == maxMovesShown {
				parts = append(parts, fmt.Sprintf("… +%d more", len(br.Migrated)-maxMovesShown))
				break
			}
			parts = append(parts, fmt.Sprintf("%s %s→%s", mv.Daemon, name(mv.From), name(mv.To)))
		}
		if len(br.Restarted) > 0 {
			parts = append(parts, fmt.Sprintf("%d restart", len(br.Restarted)))
		}
		add(common.ToneNormal, "daemons: "+strings.Join(parts, ", "))
	}
	if len(br.Leaders) > 0 {
		var parts []string
		for _, mv := range br.Leaders {
			parts = append(parts, fmt.Sprintf("%s %s→%s", mv.Chain, name(mv.From), name(mv.To)))
		}
		add(common.ToneNormal, "leaders: "+strings.Join(parts, ", "))
	}
	if len(br.HotNodes) > 0 {
		var parts []string
		for _, h := range br.HotNodes {
			parts = append(parts, fmt.Sprintf("%s %s", name(h.Node), Pct(h.Projected)))
		}
		add(common.ToneWarn, "hot nodes: "+strings.Join(parts, ", "))
	}
	add(common.ToneNormal, fmt.Sprintf("drain time ~%s · placement stability %s → %s",
		Age(br.DrainTime), Pct(br.StabilityBefore), Pct(br.StabilityAfter)))
	for i, wn := range br.Warnings {
		if i == MaxWarningsShown {
			add(common.ToneWarn, fmt.Sprintf("… +%d more", len(br.Warnings)-MaxWarningsShown))
			break
		}
		add(common.ToneWarn, "⚠ "+wn)
	}
	return lines
}
