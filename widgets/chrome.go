package widgets

import (
	"strconv"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	"github.com/deck-mesh/deck/deck/common"
)

// Segment is one field of the status line. Lower Priority survives longer
// when the terminal is narrow.
type Segment struct {
	Text     string
	Tone     common.Tone
	Priority int
}

// StatusLine joins segments with separators into exactly w cells, dropping
// the highest-priority-number segments first until the line fits.
func StatusLine(th *common.Theme, segs []Segment, w int) string {
	keep := make([]bool, len(segs))
	for i := range keep {
		keep[i] = true
	}
	width := func() int {
		n, c := 0, 0
		for i, s := range segs {
			if keep[i] {
				n += Width(s.Text)
				c++
			}
		}
		if c > 1 {
			n += 3 * (c - 1)
		}
		return n
	}
	for width() > w {
		worst := -1
		for i, s := range segs {
			if keep[i] && (worst < 0 || s.Priority > segs[worst].Priority) {
				worst = i
			}
		}
		if worst < 0 || segs[worst].Priority == 0 {
			break
		}
		keep[worst] = false
	}
	var b strings.Builder
	n := 0
	first := true
	for i, s := range segs {
		if !keep[i] {
			continue
		}
		if !first {
			th.PaintTo(&b, common.ToneDim, " │ ")
			n += 3
		}
		first = false
		t := s.Text
		if n+Width(t) > w {
			t = Truncate(t, w-n)
		}
		th.PaintTo(&b, s.Tone, t)
		n += Width(t)
		if n >= w {
			break
		}
	}
	if n < w {
		b.WriteString(spaces(w - n))
	}
	return b.String()
}

// TabStrip renders "key NAME" labels, scrolled so the active one is visible,
// with ‹ › marking hidden tabs on either side.
func TabStrip(th *common.Theme, names, keys []string, active, w int) string {
	labels := make([]string, len(names))
	for i := range names {
		labels[i] = " " + keys[i] + " " + names[i] + " "
	}
	// Choose the first visible tab so that active fits, scrolling right.
	start := 0
	for {
		n := 2
		for i := start; i <= active && i < len(labels); i++ {
			n += Width(labels[i]) + 1
		}
		if active < len(labels)-1 {
			n++ // room for the › that says more tabs follow
		}
		if n <= w || start >= active {
			break
		}
		start++
	}
	var b strings.Builder
	n := 0
	if start > 0 {
		th.PaintTo(&b, common.ToneDim, "‹ ")
	} else {
		b.WriteString("  ")
	}
	n += 2
	last := start
	for i := start; i < len(labels); i++ {
		lw := Width(labels[i])
		if n+lw+2 > w && i != active {
			break
		}
		tone := common.ToneTabInactive
		if i == active {
			tone = common.ToneTabActive
		}
		th.PaintTo(&b, tone, labels[i])
		b.WriteByte(' ')
		n += lw + 1
		last = i
	}
	if last < len(labels)-1 && n+1 <= w {
		th.PaintTo(&b, common.ToneDim, "›")
		n++
	}
	if n < w {
		b.WriteString(spaces(w - n))
	}
	return FitANSI(b.String(), w)
}

// Rule is a horizontal rule of w cells.
func Rule(th *common.Theme, w int) string {
	return th.Paint(common.ToneDim, strings.Repeat("─", max(w, 0)))
}

// ToastDuration is how long each toast stays on the footer.
const (
	ToastDuration = 3 * time.Second
	ToastQueueMax = 16
)

// Toast is one footer notice.
type Toast struct {
	Text  string
	Error bool
	until time.Time
}

// Toasts is a FIFO of footer notices: each is shown for ToastDuration, then
// the next; a burst queues rather than overwriting (NET's deck lost them).
type Toasts struct {
	q       []Toast
	dropped int
}

// Push queues a toast; the head starts its timer when first shown.
func (t *Toasts) Push(text string, isErr bool, now time.Time) {
	if len(t.q) >= ToastQueueMax {
		// Keep the newest: drop the oldest queued (not the one showing).
		copy(t.q[1:], t.q[2:])
		t.q = t.q[:len(t.q)-1]
		t.dropped++
	}
	t.q = append(t.q, Toast{Text: text, Error: isErr})
	if len(t.q) == 1 {
		t.q[0].until = now.Add(ToastDuration)
	}
}

// Expire advances the queue at now and reports whether anything changed.
func (t *Toasts) Expire(now time.Time) bool {
	changed := false
	for len(t.q) > 0 && !now.Before(t.q[0].until) {
		t.q = t.q[1:]
		changed = true
		if len(t.q) > 0 {
			t.q[0].until = now.Add(ToastDuration)
		}
	}
	return changed
}

// Current is the toast showing, if any, and how many wait behind it.
func (t *Toasts) Current() (Toast, int, bool) {
	if len(t.q) == 0 {
		return Toast{}, 0, false
	}
	return t.q[0], len(t.q) - 1, true
}

// Footer renders the key chips of the current screen, or the current toast.
func Footer(th *common.Theme, bindings []key.Binding, toasts *Toasts, w int) string {
	if toasts != nil {
		if cur, waiting, ok := toasts.Current(); ok {
			text := " " + cur.Text + " "
			if waiting > 0 {
				text += "(+" + strconv.Itoa(waiting) + ") "
			}
			tone := common.ToneToast
			if cur.Error {
				tone = common.ToneToastErr
			}
			text = Truncate(text, w)
			return th.Paint(tone, text) + spaces(w-Width(text))
		}
	}
	return Chips(th, bindings, w)
}

// ChipsPinned renders bindings as chips with pinned (help, quit) kept at the
// right edge whatever the width, so a narrow terminal drops screen chips,
// never the way to the full list.
func ChipsPinned(th *common.Theme, bindings, pinned []key.Binding, w int) string {
	var pb strings.Builder
	pw := 0
	for _, kb := range pinned {
		if !kb.Enabled() {
			continue
		}
		h := kb.Help()
		k, d := " "+h.Key+" ", " "+h.Desc+" "
		th.PaintTo(&pb, common.ToneChipKey, k)
		th.PaintTo(&pb, common.ToneChip, d)
		pw += Width(k) + Width(d)
	}
	if pw >= w {
		return Chips(th, pinned, w)
	}
	return Chips(th, bindings, w-pw) + pb.String()
}

// Chips renders bindings as "key desc" chips that fit in w cells.
func Chips(th *common.Theme, bindings []key.Binding, w int) string {
	var b strings.Builder
	n := 0
	for _, kb := range bindings {
		if !kb.Enabled() {
			continue
		}
		h := kb.Help()
		k, d := " "+h.Key+" ", " "+h.Desc+"  "
		cw := Width(k) + Width(d)
		if n+cw > w {
			break
		}
		th.PaintTo(&b, common.ToneChipKey, k)
		th.PaintTo(&b, common.ToneChip, d)
		n += cw
	}
	if n < w {
		b.WriteString(spaces(w - n))
	}
	return b.String()
}

// HelpGroup is one titled column of the help overlay.
type HelpGroup struct {
	Title    string
	Bindings []key.Binding
}

// Help renders the help overlay body from live bindings: the groups flow
// top to bottom through as many columns as fit in w, so the whole keymap
// usually fits one screen; what does not fit scrolls.
func Help(th *common.Theme, groups []HelpGroup, w int) []string {
	const keyW, descW = 10, 22
	colW := keyW + descW + 2
	cols := max(1, w/colW)
	var entries []string
	for gi, g := range groups {
		if gi > 0 {
			entries = append(entries, "")
		}
		entries = append(entries, th.Paint(common.ToneHeader, Fit(g.Title, colW-2)))
		seen := map[string]bool{}
		for _, kb := range g.Bindings {
			if !kb.Enabled() {
				continue
			}
			h := kb.Help()
			if seen[h.Key+h.Desc] {
				continue
			}
			seen[h.Key+h.Desc] = true
			entries = append(entries, th.Paint(common.ToneAccent, Fit(h.Key, keyW))+" "+Fit(h.Desc, descW))
		}
	}
	rows := (len(entries) + cols - 1) / cols
	out := make([]string, rows)
	for r := 0; r < rows; r++ {
		var b strings.Builder
		for c := 0; c < cols; c++ {
			i := c*rows + r
			cell := ""
			if i < len(entries) {
				cell = entries[i]
			}
			b.WriteString(FitANSI(cell, colW))
		}
		out[r] = b.String()
	}
	return out
}
