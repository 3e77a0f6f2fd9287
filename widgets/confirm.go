package widgets

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/api"
)

// ConfirmWord is what the operator must type, exactly, to commit.
const ConfirmWord = "YES"

// MaxWarningsShown caps the warning lines; the rest collapse to "… +N more".
const (
	MaxWarningsShown = 3
	maxMovesShown    = 8
)

// Confirm shows an action's blast radius and commits only on a typed YES.
// Any other text (or Esc) refuses: OnRefuse runs and nothing is committed.
type Confirm struct {
	Title  string
	Radius api.BlastRadius
	Name   func(api.NodeID) string // node id → display name
	Note   string                  // e.g. "ICE · 2 signatures required"
	// Changed lists what moves differently from the preview the operator
	// confirmed before (the node refused that commit); empty on a first ask.
	Changed   []string
	In        Input
	OnConfirm func() tea.Cmd
	OnRefuse  func(typed string) tea.Cmd
}

func (c *Confirm) HandleKey(msg tea.KeyPressMsg, k *common.KeyMap) (tea.Cmd, bool) {
	switch {
	case key.Matches(msg, k.Cancel):
		if c.OnRefuse != nil {
			return c.OnRefuse(""), true
		}
		return nil, true
	case key.Matches(msg, k.Submit):
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
	c.In.HandleKey(msg, k)
	return nil, false
}

func (c *Confirm) HandlePaste(s string) { c.In.Paste(s) }

func (c *Confirm) Hints(k *common.KeyMap) string {
	return common.Hints("type "+ConfirmWord+" + "+k.Submit.Help().Key+" to commit", "anything else refuses", common.Hint(k.Cancel))
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
	for _, ch := range c.Changed {
		lines = append(lines, th.Paint(common.ToneWarn, Truncate("  · "+ch, w)))
	}
	lines = append(lines, "")
	lines = append(lines, c.In.View(th, "Type YES to confirm:", w)...)
	return c.Title, lines
}

// plural is "1 node" / "2 nodes".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// flow lays items out after label, wrapping onto indented continuation
// lines at w cells instead of truncating them (a truncated move list hides
// exactly what the operator is confirming).
func flow(label string, items []string, comma string, w int) []string {
	indent := spaces(min(Width(label), w/3))
	var out []string
	line := label
	lw := Width(line)
	for i, it := range items {
		sep := ""
		if i < len(items)-1 {
			sep = comma
		}
		piece := it + sep
		pw := Width(piece)
		if lw > Width(indent) && lw+1+pw > w && line != label {
			out = append(out, line)
			line, lw = indent+piece, Width(indent)+pw
			continue
		}
		if line != label {
			line += " "
			lw++
		}
		line += piece
		lw += pw
	}
	out = append(out, line)
	for i := range out {
		out[i] = Truncate(out[i], w)
	}
	return out
}

// BlastLines renders a blast radius as dense lines: counts, replica moves,
// daemon migrations, hot nodes, drain time, stability, warnings (capped).
// Move lists wrap; each is capped at maxMovesShown items plus "+N more".
func BlastLines(th *common.Theme, br api.BlastRadius, name func(api.NodeID) string, w int) []string {
	var lines []string
	add := func(tone common.Tone, s string) { lines = append(lines, th.Paint(tone, Truncate(s, w))) }
	addFlow := func(tone common.Tone, label string, items []string) {
		comma := ","
		if strings.HasPrefix(label, "⚠") {
			comma = "" // a sentence wrapped by words
		}
		for _, l := range flow(label, items, comma, w) {
			lines = append(lines, th.Paint(tone, l))
		}
	}
	capped := func(n int, item func(i int) string) []string {
		var parts []string
		for i := 0; i < n; i++ {
			if i == maxMovesShown {
				parts = append(parts, fmt.Sprintf("… +%d more", n-maxMovesShown))
				break
			}
			parts = append(parts, item(i))
		}
		return parts
	}
	if br.Action.Verb.IsBlob() {
		return append(lines, blobBlastLines(th, br, name, w)...)
	}
	add(common.ToneTitle, fmt.Sprintf("This action affects %s, %s, %s.",
		plural(len(br.Nodes), "node", "nodes"), plural(len(br.Replicas), "replica", "replicas"), plural(len(br.Daemons), "daemon", "daemons")))
	if len(br.Replicas) > 0 {
		addFlow(common.ToneNormal, "replicas: ", capped(len(br.Replicas), func(i int) string {
			mv := br.Replicas[i]
			return fmt.Sprintf("%s %s→%s", mv.Chain, name(mv.From), name(mv.To))
		}))
	}
	if len(br.Migrated) > 0 || len(br.Restarted) > 0 {
		parts := capped(len(br.Migrated), func(i int) string {
			mv := br.Migrated[i]
			return fmt.Sprintf("%s %s→%s", mv.Daemon, name(mv.From), name(mv.To))
		})
		if len(br.Restarted) > 0 {
			parts = append(parts, fmt.Sprintf("%d restart", len(br.Restarted)))
		}
		addFlow(common.ToneNormal, "daemons: ", parts)
	}
	if len(br.Leaders) > 0 {
		addFlow(common.ToneNormal, "leaders: ", capped(len(br.Leaders), func(i int) string {
			mv := br.Leaders[i]
			return fmt.Sprintf("%s %s→%s", mv.Chain, name(mv.From), name(mv.To))
		}))
	}
	if br.BlobReplicas > 0 || br.BlobBytes > 0 {
		add(common.ToneNormal, fmt.Sprintf("blobs: %s, %s move off datafort nodes", plural(br.BlobReplicas, "blob replica", "blob replicas"), Bytes(br.BlobBytes)))
	}
	if len(br.HotNodes) > 0 {
		var parts []string
		for _, h := range br.HotNodes {
			parts = append(parts, fmt.Sprintf("%s %s", name(h.Node), Pct(h.Projected)))
		}
		addFlow(common.ToneWarn, "hot nodes: ", parts)
	}
	stab := fmt.Sprintf("placement stability %s → %s", Pct(br.StabilityBefore), Pct(br.StabilityAfter))
	if br.DrainTime > 0 {
		stab = fmt.Sprintf("drain time ~%s · ", Age(br.DrainTime)) + stab
	}
	add(common.ToneNormal, stab)
	for i, wn := range br.Warnings {
		if i == MaxWarningsShown {
			add(common.ToneWarn, fmt.Sprintf("… +%d more", len(br.Warnings)-MaxWarningsShown))
			break
		}
		addFlow(common.ToneWarn, "⚠ ", strings.Fields(wn))
	}
	return lines
}

// blobBlastLines renders a blob verb's radius: the copies it adds and
// sheds, what the new ones fetch, and its warnings.
func blobBlastLines(th *common.Theme, br api.BlastRadius, name func(api.NodeID) string, w int) []string {
	var lines []string
	var added, shed []string
	for _, mv := range br.BlobMoves {
		if mv.From == 0 {
			added = append(added, name(mv.To))
		} else {
			shed = append(shed, name(mv.From))
		}
	}
	lines = append(lines, th.Paint(common.ToneTitle, Truncate(fmt.Sprintf("This action affects %s, %s added, %s dropped.",
		plural(len(br.Nodes), "node", "nodes"), plural(len(added), "blob copy", "blob copies"), plural(len(shed), "copy", "copies")), w)))
	if len(added) > 0 {
		for _, l := range flow("new copies: ", added, ",", w) {
			lines = append(lines, th.Paint(common.ToneNormal, l))
		}
		lines = append(lines, th.Paint(common.ToneNormal, Truncate("they fetch "+Bytes(br.BlobCopyBytes)+" from the holders", w)))
	}
	if len(shed) > 0 {
		for _, l := range flow("dropped: ", shed, ",", w) {
			lines = append(lines, th.Paint(common.ToneNormal, l))
		}
	}
	if len(br.BlobMoves) == 0 {
		lines = append(lines, th.Paint(common.ToneNormal, Truncate("no copy moves: the intent is signed and sent to the holders", w)))
	}
	for i, wn := range br.Warnings {
		if i == MaxWarningsShown {
			lines = append(lines, th.Paint(common.ToneWarn, Truncate(fmt.Sprintf("… +%d more", len(br.Warnings)-MaxWarningsShown), w)))
			break
		}
		for _, l := range flow("⚠ ", strings.Fields(wn), "", w) {
			lines = append(lines, th.Paint(common.ToneWarn, l))
		}
	}
	return lines
}
