package widgets

import (
	"strconv"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/api"
)

// PickOption is one choice of a picker.
type PickOption struct {
	Label string
	Node  api.NodeID
	Value string
}

// Picker chooses one option (or several when Multi: space toggles).
type Picker struct {
	Title   string
	Prompt  string
	Options []PickOption
	Multi   bool
	cursor  int
	marked  map[int]bool
	// OnPick receives the chosen options (never empty).
	OnPick   func([]PickOption) tea.Cmd
	OnCancel func() tea.Cmd
	// visible is the window height used for scrolling.
	visible int
}

// PickerVisibleRows is how many options a picker shows at once.
const PickerVisibleRows = 8

func (p *Picker) HandleKey(msg tea.KeyPressMsg, k *common.KeyMap) (tea.Cmd, bool) {
	switch {
	case key.Matches(msg, k.Cancel):
		if p.OnCancel != nil {
			return p.OnCancel(), true
		}
		return nil, true
	case key.Matches(msg, k.Up):
		if p.cursor > 0 {
			p.cursor--
		}
	case key.Matches(msg, k.Down):
		if p.cursor < len(p.Options)-1 {
			p.cursor++
		}
	case key.Matches(msg, k.Top):
		p.cursor = 0
	case key.Matches(msg, k.Bottom):
		p.cursor = max(0, len(p.Options)-1)
	case key.Matches(msg, k.Mark):
		if p.Multi && len(p.Options) > 0 {
			if p.marked == nil {
				p.marked = map[int]bool{}
			}
			p.marked[p.cursor] = !p.marked[p.cursor]
		}
	case key.Matches(msg, k.Submit):
		if len(p.Options) == 0 {
			return nil, true
		}
		var out []PickOption
		for i, o := range p.Options {
			if p.marked[i] {
				out = append(out, o)
			}
		}
		if len(out) == 0 {
			out = []PickOption{p.Options[p.cursor]}
		}
		if p.OnPick != nil {
			return p.OnPick(out), true
		}
		return nil, true
	}
	return nil, false
}

func (p *Picker) HandlePaste(string) {}

func (p *Picker) Hints(k *common.KeyMap) string {
	mark := ""
	if p.Multi {
		mark = common.Hint(k.Mark)
	}
	return common.Hints(moveHint(k), mark, common.Hint(common.As(k.Submit, "pick")), common.Hint(k.Cancel))
}

// moveHint is "↑/↓ move" from the Up and Down bindings' arrow glyphs (their
// help keys are "↑/k" and "↓/j").
func moveHint(k *common.KeyMap) string {
	up, _, _ := strings.Cut(k.Up.Help().Key, "/")
	down, _, _ := strings.Cut(k.Down.Help().Key, "/")
	return up + "/" + down + " move"
}

func (p *Picker) View(th *common.Theme, _ time.Time, w int) (string, []string) {
	var lines []string
	if p.Prompt != "" {
		lines = append(lines, th.Paint(common.ToneDim, Truncate(p.Prompt, w)))
	}
	if len(p.Options) == 0 {
		return p.Title, append(lines, th.Paint(common.ToneWarn, "nothing to pick"))
	}
	start := 0
	if p.cursor >= PickerVisibleRows {
		start = p.cursor - PickerVisibleRows + 1
	}
	for i := start; i < len(p.Options) && i < start+PickerVisibleRows; i++ {
		mark := "  "
		if p.Multi {
			mark = "[ ]"
			if p.marked[i] {
				mark = "[x]"
			}
		}
		text := Fit(mark+" "+p.Options[i].Label, w-2)
		if i == p.cursor {
			lines = append(lines, th.Paint(common.ToneSelected, CursorMarker+text))
		} else {
			lines = append(lines, "  "+text)
		}
	}
	if len(p.Options) > PickerVisibleRows {
		lines = append(lines, th.Paint(common.ToneDim, strconv.Itoa(p.cursor+1)+"/"+strconv.Itoa(len(p.Options))))
	}
	return p.Title, lines
}
