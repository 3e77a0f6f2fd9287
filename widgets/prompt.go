package widgets

import (
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/deck-mesh/deck/deck/common"
)

// Prompt asks for one value. Validate runs on Enter: an error is shown
// inline and the prompt stays open with the text intact (nothing lost);
// success calls OnSubmit and closes.
type Prompt struct {
	Title    string
	Label    string
	Help     []string
	In       Input
	Validate func(string) error
	OnSubmit func(string) tea.Cmd
	OnCancel func() tea.Cmd
}

// NewPrompt makes a prompt prefilled with value.
func NewPrompt(title, label, value string) *Prompt {
	p := &Prompt{Title: title, Label: label}
	p.In.insert(value)
	return p
}

func (p *Prompt) HandleKey(msg tea.KeyPressMsg, k *common.KeyMap) (tea.Cmd, bool) {
	switch {
	case key.Matches(msg, k.Cancel):
		if p.OnCancel != nil {
			return p.OnCancel(), true
		}
		return nil, true
	case key.Matches(msg, k.Submit):
		v := strings.TrimSpace(p.In.String())
		if p.Validate != nil {
			if err := p.Validate(v); err != nil {
				p.In.Err = err.Error()
				return nil, false
			}
		}
		if p.OnSubmit != nil {
			return p.OnSubmit(v), true
		}
		return nil, true
	}
	p.In.HandleKey(msg, k)
	return nil, false
}

func (p *Prompt) HandlePaste(s string) { p.In.Paste(s) }

func (p *Prompt) View(th *common.Theme, _ time.Time, w int) (string, []string) {
	var lines []string
	for _, h := range p.Help {
		lines = append(lines, th.Paint(common.ToneDim, Truncate(h, w)))
	}
	if len(lines) > 0 {
		lines = append(lines, "")
	}
	lines = append(lines, p.In.View(th, p.Label, w)...)
	return p.Title, lines
}

func (p *Prompt) Hints(k *common.KeyMap) string {
	return common.Hints(common.Hint(k.Submit), common.Hint(k.Cancel), common.Hint(k.Clear))
}

// ParseDuration parses an operator duration ("30s", "5m", "1h30m", "2d")
// within [min, max]. Units are required so "5" is not silently seconds.
func ParseDuration(s string, lo, hi time.Duration) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("enter a duration like 30s, 5m or 1h")
	}
	var d time.Duration
	var err error
	if strings.HasSuffix(s, "d") && !strings.ContainsAny(s[:len(s)-1], "hmsuµn") {
		var days int
		if _, e := fmt.Sscanf(s, "%dd", &days); e != nil || days < 0 || fmt.Sprintf("%dd", days) != s {
			return 0, fmt.Errorf("%q is not a duration (try 30s, 5m, 1h)", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration (try 30s, 5m, 1h)", s)
		}
	}
	if d < lo {
		return 0, fmt.Errorf("%s is shorter than the minimum %s", d, lo)
	}
	if hi > 0 && d > hi {
		return 0, fmt.Errorf("%s is longer than the maximum %s", d, hi)
	}
	return d, nil
}
