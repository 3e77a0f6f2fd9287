// Package common is the context every Deck component shares: the theme (every
// lipgloss style in one place), the keymap (every binding defined once, so the
// help overlay and footer chips are generated from it), and the Context struct
// (size, clock, client, current snapshot, stores) handed to each tab and widget
// instead of globals. One Context per program keeps SSH consoles independent.
package common

import (
	"image/color"
	"strings"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/colorprofile"
)

// Tone is the semantic colour of a piece of text. Components speak in tones,
// never in colours, so the palette and its degradations live only here.
type Tone uint8

const (
	ToneNormal Tone = iota
	ToneDim
	ToneOK
	ToneWarn
	ToneDanger
	ToneAccent
	ToneTitle
	ToneSelected
	ToneChipKey
	ToneChip
	ToneTabActive
	ToneTabInactive
	ToneBanner
	ToneToast
	ToneToastErr
	ToneHeader
	toneCount
)

// Palette colours: the matrix green on black with amber, red and cyan, each
// with a hand-picked 256 and 16 colour fallback (lipgloss.Complete) so the
// degraded screens keep the same meaning rather than the nearest RGB.
type paletteColor struct{ ansi, ansi256, rgb color.Color }

var (
	colGreen = paletteColor{lipgloss.Color("10"), lipgloss.Color("154"), lipgloss.Color("#9AFF00")}
	colDim   = paletteColor{lipgloss.Color("2"), lipgloss.Color("64"), lipgloss.Color("#4E8000")}
	colAmber = paletteColor{lipgloss.Color("11"), lipgloss.Color("214"), lipgloss.Color("#FFB000")}
	colRed   = paletteColor{lipgloss.Color("9"), lipgloss.Color("196"), lipgloss.Color("#FF3B30")}
	colCyan  = paletteColor{lipgloss.Color("14"), lipgloss.Color("45"), lipgloss.Color("#00E5FF")}
	colBlack = paletteColor{lipgloss.Color("0"), lipgloss.Color("16"), lipgloss.Color("#000000")}
)

// Theme holds every style of the deck for one colour profile.
type Theme struct {
	Profile colorprofile.Profile
	styles  [toneCount]lipgloss.Style
	// seq caches each tone's SGR open/close sequences so hot paths (table
	// rows, log lines) paint with two string appends instead of a
	// lipgloss.Render call per cell.
	seq [toneCount][2]string
	// Border is the modal frame style.
	Border lipgloss.Style
}

// NewTheme builds the theme for a colour profile. NoTTY (goldens, pipes) is
// completely plain; ASCII (NO_COLOR) keeps bold/reverse/faint so the cursor
// and titles stay visible without colour.
func NewTheme(p colorprofile.Profile) *Theme {
	t := &Theme{Profile: p}
	s := lipgloss.NewStyle
	switch {
	case p <= colorprofile.NoTTY:
		for i := range t.styles {
			t.styles[i] = s()
		}
		t.Border = s().Border(lipgloss.NormalBorder())
	case p == colorprofile.ASCII:
		for i := range t.styles {
			t.styles[i] = s()
		}
		t.styles[ToneDim] = s().Faint(true)
		t.styles[ToneDanger] = s().Bold(true)
		t.styles[ToneWarn] = s().Bold(true)
		t.styles[ToneTitle] = s().Bold(true)
		t.styles[ToneSelected] = s().Reverse(true)
		t.styles[ToneChipKey] = s().Reverse(true)
		t.styles[ToneTabActive] = s().Reverse(true).Bold(true)
		t.styles[ToneTabInactive] = s().Faint(true)
		t.styles[ToneBanner] = s().Reverse(true).Bold(true)
		t.styles[ToneToastErr] = s().Bold(true)
		t.styles[ToneHeader] = s().Bold(true).Underline(true)
		t.Border = s().Border(lipgloss.NormalBorder())
	default:
		c := lipgloss.Complete(p)
		pick := func(pc paletteColor) color.Color { return c(pc.ansi, pc.ansi256, pc.rgb) }
		green, dim, amber, red, cyan, black := pick(colGreen), pick(colDim), pick(colAmber), pick(colRed), pick(colCyan), pick(colBlack)
		t.styles[ToneNormal] = s().Foreground(green)
		t.styles[ToneDim] = s().Foreground(dim)
		t.styles[ToneOK] = s().Foreground(green)
		t.styles[ToneWarn] = s().Foreground(amber)
		t.styles[ToneDanger] = s().Foreground(red).Bold(true)
		t.styles[ToneAccent] = s().Foreground(cyan)
		t.styles[ToneTitle] = s().Foreground(green).Bold(true)
		t.styles[ToneSelected] = s().Foreground(black).Background(green)
		t.styles[ToneChipKey] = s().Foreground(black).Background(cyan)
		t.styles[ToneChip] = s().Foreground(dim)
		t.styles[ToneTabActive] = s().Foreground(black).Background(green).Bold(true)
		t.styles[ToneTabInactive] = s().Foreground(dim)
		t.styles[ToneBanner] = s().Foreground(black).Background(amber).Bold(true)
		t.styles[ToneToast] = s().Foreground(black).Background(cyan)
		t.styles[ToneToastErr] = s().Foreground(black).Background(red).Bold(true)
		t.styles[ToneHeader] = s().Foreground(cyan).Bold(true)
		t.Border = s().Border(lipgloss.RoundedBorder()).BorderForeground(cyan)
	}
	for i := range t.styles {
		out := t.styles[i].Render("\x01")
		if at := strings.IndexByte(out, '\x01'); at >= 0 {
			t.seq[i] = [2]string{out[:at], out[at+1:]}
		}
	}
	return t
}

// Style returns the lipgloss style of a tone.
func (t *Theme) Style(tone Tone) lipgloss.Style { return t.styles[tone] }

// Paint wraps s in the tone's escape sequences. s must not contain newlines.
func (t *Theme) Paint(tone Tone, s string) string {
	q := t.seq[tone]
	if q[0] == "" {
		return s
	}
	return q[0] + s + q[1]
}

// PaintTo appends s painted in tone to b (allocation-free for the caller's
// builder once it has grown).
func (t *Theme) PaintTo(b *strings.Builder, tone Tone, s string) {
	q := t.seq[tone]
	b.WriteString(q[0])
	b.WriteString(s)
	b.WriteString(q[1])
}

// Plain reports whether the theme emits no escape sequences at all.
func (t *Theme) Plain() bool { return t.Profile <= colorprofile.NoTTY }
