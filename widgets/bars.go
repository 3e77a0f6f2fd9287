package widgets

import (
	"strings"

	"github.com/deck-mesh/deck/deck/common"
)

// Thresholds at which a gauge turns amber and red.
const (
	WarnFraction   = 0.75
	DangerFraction = 0.9
)

// LoadTone is the tone of a 0..1 load gauge.
func LoadTone(f float64) common.Tone {
	switch {
	case f >= DangerFraction:
		return common.ToneDanger
	case f >= WarnFraction:
		return common.ToneWarn
	}
	return common.ToneOK
}

// Bar draws a w-cell horizontal gauge of a 0..1 fraction.
func Bar(th *common.Theme, f float64, w int) string {
	if w <= 0 {
		return ""
	}
	if f < 0 {
		f = 0
	}
	if f > 1 {
		f = 1
	}
	full := int(f*float64(w) + 0.5)
	return th.Paint(LoadTone(f), strings.Repeat("█", full)) + th.Paint(common.ToneDim, strings.Repeat("░", w-full))
}

var sparkRunes = []rune("▁▂▃▄▅▆▇█")

// Sparkline draws the last w samples (0..1) as block heights.
func Sparkline(vals []float64, w int) string {
	if w <= 0 {
		return ""
	}
	if len(vals) > w {
		vals = vals[len(vals)-w:]
	}
	var b strings.Builder
	for _, v := range vals {
		if v < 0 {
			v = 0
		}
		if v > 1 {
			v = 1
		}
		b.WriteRune(sparkRunes[int(v*float64(len(sparkRunes)-1)+0.5)])
	}
	return b.String()
}

// Empty renders a centred empty-state message in w×h.
func Empty(th *common.Theme, msg string, w, h int) string {
	if h <= 0 {
		return ""
	}
	lines := make([]string, h)
	for i := range lines {
		lines[i] = spaces(w)
	}
	msg = Truncate(msg, w)
	pad := (w - Width(msg)) / 2
	lines[h/2] = spaces(pad) + th.Paint(common.ToneDim, msg) + spaces(w-pad-Width(msg))
	return strings.Join(lines, "\n")
}

// Lines pads or cuts a block of styled lines to exactly h lines of w cells.
func Lines(lines []string, w, h int) string {
	var b strings.Builder
	for i := 0; i < h; i++ {
		if i > 0 {
			b.WriteByte('\n')
		}
		if i < len(lines) {
			b.WriteString(FitANSI(lines[i], w))
		} else {
			b.WriteString(spaces(w))
		}
	}
	return b.String()
}
