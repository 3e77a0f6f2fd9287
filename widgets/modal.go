package widgets

import (
	"strconv"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/deck-mesh/deck/deck/common"
)

// Modal is a dialog on top of the body. The root routes keys and pastes to
// the top modal; a modal closes itself by returning close=true, and reports
// what happened through the callbacks it was built with (so the flow that
// opened it decides what comes next).
type Modal interface {
	// HandleKey matches msg against the deck's keymap k.
	HandleKey(msg tea.KeyPressMsg, k *common.KeyMap) (cmd tea.Cmd, close bool)
	HandlePaste(text string)
	// View renders the dialog's inner lines for an inner width.
	View(th *common.Theme, now time.Time, w int) (title string, lines []string)
	// Hints are the footer chips while the modal is up, generated from the
	// same bindings HandleKey matches.
	Hints(k *common.KeyMap) string
}

// ModalWidth is the dialog's outer width for a terminal of width w.
func ModalWidth(w int) int {
	mw := w - 8
	if mw > 96 {
		mw = 96
	}
	if mw < 20 {
		mw = min(w, 20)
	}
	return mw
}

// Box frames lines in a border with a title, w cells wide overall.
func Box(th *common.Theme, title string, lines []string, w, maxH int) []string {
	inner := w - 4
	if inner < 1 {
		inner = 1
	}
	if maxH > 2 && len(lines) > maxH-2 {
		hidden := len(lines) - (maxH - 3)
		lines = append(lines[:maxH-3:maxH-3], th.Paint(common.ToneDim, "… +"+strconv.Itoa(hidden)+" more lines"))
	}
	bs := th.Border
	top := "┌─ " + title + " "
	top = Truncate(top, w-1)
	top += strings.Repeat("─", max(0, w-1-Width(top))) + "┐"
	out := make([]string, 0, len(lines)+2)
	out = append(out, th.Paint(common.ToneAccent, top))
	_ = bs
	side := th.Paint(common.ToneAccent, "│")
	for _, l := range lines {
		out = append(out, side+" "+FitANSI(l, inner)+" "+side)
	}
	out = append(out, th.Paint(common.ToneAccent, "└"+strings.Repeat("─", max(0, w-2))+"┘"))
	return out
}

// Overlay splices box lines centred over base lines (each exactly w cells).
func Overlay(base []string, box []string, w int) []string {
	if len(box) == 0 {
		return base
	}
	bw := ansi.StringWidth(box[0])
	top := max(0, (len(base)-len(box))/2)
	left := max(0, (w-bw)/2)
	out := make([]string, len(base))
	copy(out, base)
	for i, l := range box {
		y := top + i
		if y >= len(out) {
			break
		}
		row := out[y]
		right := ansi.TruncateLeft(row, left+bw, "")
		out[y] = FitANSI(ansi.Truncate(row, left, ""), left) + l + right
		out[y] = FitANSI(out[y], w)
	}
	return out
}

// Input is a one-line text editor: printable keys, backspace, ctrl+u,
// bracketed paste. Input from the keyboard is never trusted: length is
// capped and control characters are dropped.
type Input struct {
	Value []rune
	Err   string
	Max   int
}

// InputMaxRunes caps any line typed or pasted into a modal.
const InputMaxRunes = 4096

// HandleKey edits the value (k.Erase, k.Clear, printable text); it
// reports whether the key was consumed.
func (in *Input) HandleKey(msg tea.KeyPressMsg, k *common.KeyMap) bool {
	switch {
	case key.Matches(msg, k.Erase):
		if len(in.Value) > 0 {
			in.Value = in.Value[:len(in.Value)-1]
		}
		in.Err = ""
		return true
	case key.Matches(msg, k.Clear):
		in.Value = in.Value[:0]
		in.Err = ""
		return true
	}
	if msg.Text != "" && msg.Mod&^tea.ModShift == 0 {
		in.insert(msg.Text)
		return true
	}
	return false
}

// Paste inserts pasted text (newlines become nothing: one line only).
func (in *Input) Paste(s string) { in.insert(s) }

func (in *Input) insert(s string) {
	limit := in.Max
	if limit <= 0 {
		limit = InputMaxRunes
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			continue
		}
		if len(in.Value) >= limit {
			in.Err = "input too long"
			return
		}
		in.Value = append(in.Value, r)
	}
	in.Err = ""
}

// String is the typed text.
func (in *Input) String() string { return string(in.Value) }

// View renders "label [value█]" and the error line if any, in w cells.
func (in *Input) View(th *common.Theme, label string, w int) []string {
	v := string(in.Value)
	room := w - Width(label) - 3
	if room < 1 {
		room = 1
	}
	if vw := Width(v); vw > room {
		v = ansi.TruncateLeft(v, vw-room+1, Ellipsis)
	}
	lines := []string{label + " " + th.Paint(common.ToneAccent, v+"█")}
	if in.Err != "" {
		lines = append(lines, th.Paint(common.ToneDanger, "✗ "+in.Err))
	}
	return lines
}
