// Package widgets holds the deck's reusable view pieces: the virtualized
// table, modals (confirm, input, picker, signature collector), the footer
// with its toast queue, the status line, tab strip, help overlay, bars,
// sparklines and the empty state. Widgets render from values they are given
// and the shared theme; they never talk to the network.
package widgets

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"
)

// Ellipsis marks truncated text.
const Ellipsis = "…"

// Width is the display width of plain (escape-free) text. ASCII is the
// common case and is measured without decoding graphemes.
func Width(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return ansi.StringWidth(s)
		}
	}
	return len(s)
}

// Fit pads or truncates plain text to exactly w cells.
func Fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	sw := Width(s)
	if sw == w {
		return s
	}
	if sw < w {
		return s + spaces(w-sw)
	}
	return truncate(s, w)
}

// FitRight right-aligns plain text in w cells (numbers).
func FitRight(s string, w int) string {
	if w <= 0 {
		return ""
	}
	sw := Width(s)
	if sw > w {
		return truncate(s, w)
	}
	return spaces(w-sw) + s
}

// Truncate shortens plain text to at most w cells with an ellipsis.
func Truncate(s string, w int) string {
	if Width(s) <= w {
		return s
	}
	return truncate(s, w)
}

func truncate(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if w == 1 {
		return Ellipsis
	}
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return s[:w-1] + Ellipsis
	}
	out := ansi.Truncate(s, w-1, "") + Ellipsis
	if d := w - ansi.StringWidth(out); d > 0 {
		out += spaces(d)
	}
	return out
}

// Printable is s with every control character (C0, DEL, C1: the bytes
// that start terminal escape sequences) replaced by U+FFFD, for text that
// came from the mesh and is drawn on an operator's terminal. Clean text is
// returned as is.
func Printable(s string) string {
	clean := true
	for _, r := range s {
		if isControl(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if isControl(r) {
			r = '\uFFFD'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

// FitANSI pads or cuts a styled line to exactly w cells.
func FitANSI(s string, w int) string {
	sw := ansi.StringWidth(s)
	switch {
	case sw == w:
		return s
	case sw < w:
		return s + spaces(w-sw)
	}
	return ansi.Truncate(s, w, "")
}

const spaceRun = "                                                                                                                                                                                                        "

func spaces(n int) string {
	if n <= 0 {
		return ""
	}
	if n <= len(spaceRun) {
		return spaceRun[:n]
	}
	return strings.Repeat(" ", n)
}

// Spaces returns n blanks.
func Spaces(n int) string { return spaces(n) }

// Age formats a non-negative duration compactly: 45s, 12m05s, 3h12m, 2d04h.
func Age(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, (s%3600)/60)
	}
	return fmt.Sprintf("%dd%02dh", s/86400, (s%86400)/3600)
}

// Since is Age(now - t), or "—" for a zero time.
func Since(now, t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return Age(now.Sub(t))
}

// Countdown is the time left until t ("expired" once passed).
func Countdown(now, t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	if !t.After(now) {
		return "expired"
	}
	return Age(t.Sub(now).Round(time.Second))
}

// RTT formats a round-trip time; zero is unknown.
func RTT(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d/time.Microsecond)
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

// Pct formats a 0..1 fraction as a whole percentage.
func Pct(f float64) string {
	if f < 0 {
		f = 0
	}
	return fmt.Sprintf("%d%%", int(f*100+0.5))
}

// Clock formats a wall-clock time as HH:MM:SS in UTC (logs, audit).
func Clock(t time.Time) string {
	if t.IsZero() {
		return "--:--:--"
	}
	return t.UTC().Format("15:04:05")
}

// WrapPlain hard-wraps plain text at w cells per line (no word logic: ids and
// base64 payloads have no spaces to break at).
func WrapPlain(s string, w int) []string {
	if w <= 0 {
		return nil
	}
	var out []string
	for len(s) > 0 {
		if Width(s) <= w {
			out = append(out, s)
			break
		}
		cut := ansi.Truncate(s, w, "")
		if cut == "" {
			break
		}
		out = append(out, cut)
		s = s[len(cut):]
	}
	return out
}

// ShortDuration formats a duration the way an operator types one: "24h",
// "30m", "1h30m", "5s" (no zero-valued trailing units).
func ShortDuration(d time.Duration) string {
	s := d.String()
	for _, z := range []string{"0s", "0m"} {
		if strings.HasSuffix(s, z) && len(s) > len(z) && (s[len(s)-len(z)-1] < '0' || s[len(s)-len(z)-1] > '9') {
			s = strings.TrimSuffix(s, z)
		}
	}
	return s
}

// Bytes is n in binary units: "512 B", "1.5 KiB", "2.6 GiB".
func Bytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + " " + string("KMGTPE"[exp]) + "iB"
}

// Rate is a bytes-per-second figure in binary units ("16.4 MiB/s"); zero
// is "0".
func Rate(bytesPerSec float64) string {
	if bytesPerSec < 0.5 {
		return "0"
	}
	return Bytes(uint64(bytesPerSec+0.5)) + "/s"
}

// ShortBytes is n in binary units, compact for table cells: "0", "512B",
// "1.5K", "22.4G".
func ShortBytes(n uint64) string {
	if n == 0 {
		return "0"
	}
	b := Bytes(n)
	if n < 1024 {
		return strings.TrimSuffix(b, " B") + "B"
	}
	return strings.TrimSuffix(strings.Replace(b, " ", "", 1), "iB")
}
