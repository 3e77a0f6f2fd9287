package widgets

import (
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"

	"github.com/deck-mesh/deck/deck/common"
)

// sectionRows is a table of two members and a section with its own
// columns: a heading and two span rows.
func sectionRows() []Row {
	return []Row{
		{Key: "a", Cells: []string{"alpha", "1"}},
		{Key: "b", Cells: []string{"beta", "2"}},
		{Key: "h", Heading: true, Span: 1, Cells: []string{"A HEADING FAR WIDER THAN NAME", "ADDR      ", "WHY"}},
		{Key: "p1", Span: 1, Cells: []string{"p1", "10.0.0.1  ", "a reason much wider than X"}},
		{Key: "p2", Span: 1, Cells: []string{"p2", "10.0.0.222", "why"}},
	}
}

// TestTableCursorPassesOverHeadings: no key, page or data refresh leaves
// the cursor on a heading, and Selected never returns one.
func TestTableCursorPassesOverHeadings(t *testing.T) {
	tb := NewTable(Column{Title: "NAME", Width: 6, Flex: true}, Column{Title: "X", Width: 2})
	tb.SetRows(sectionRows())
	km := common.DefaultKeyMap()
	steps := []struct {
		key  string
		want string
	}{
		{"G", "p2"}, {"k", "p1"}, {"k", "b"}, {"j", "p1"}, {"g", "a"}, {"j", "b"}, {"j", "p1"},
	}
	for _, st := range steps {
		tb.HandleKey(press(st.key), km)
		if got := tb.SelectedKey(); got != st.want {
			t.Fatalf("after %s: cursor on %q, want %q", st.key, got, st.want)
		}
	}
	tb.SetCursor(2) // the heading's index: the cursor settles on the row below
	if got := tb.SelectedKey(); got != "p1" {
		t.Fatalf("SetCursor on the heading: %q", got)
	}
	tb.SetCursor(0)
	tb.Move(2) // from a past b onto the heading: on to p1
	if got := tb.SelectedKey(); got != "p1" {
		t.Fatalf("Move(2) from a: %q", got)
	}
	// A section with nothing under it: the cursor goes back up.
	rows := sectionRows()[:3]
	tb.SetRows(rows)
	tb.HandleKey(press("G"), km)
	if got := tb.SelectedKey(); got != "b" {
		t.Fatalf("G with a heading last: %q", got)
	}
	tb.SetRows([]Row{{Key: "h", Heading: true, Cells: []string{"ONLY A HEADING"}}})
	if _, ok := tb.Selected(); ok {
		t.Fatal("a heading was selected")
	}
}

// TestTableFilterKeepsSectionHeadings: the filter keeps a heading while a
// row of its section passes, and drops it otherwise; its own text is not
// searched.
func TestTableFilterKeepsSectionHeadings(t *testing.T) {
	tb := NewTable(Column{Title: "NAME", Width: 6, Flex: true}, Column{Title: "X", Width: 2})
	tb.SetRows(sectionRows())
	keys := func() []string {
		var out []string
		for _, r := range tb.Shown() {
			out = append(out, r.Key)
		}
		return out
	}
	for _, tc := range []struct {
		q    string
		want string
	}{
		{"10.0.0.222", "h p2"}, {"10.0.0", "h p1 p2"}, {"beta", "b"}, {"heading", ""}, {"", "a b h p1 p2"},
	} {
		tb.SetFilter(tc.q)
		if got := strings.Join(keys(), " "); got != tc.want {
			t.Errorf("filter %q shows %q, want %q", tc.q, got, tc.want)
		}
	}
	tb.SetFilter("10.0.0.222")
	if got := tb.SelectedKey(); got != "p2" {
		t.Fatalf("filtered cursor on %q", got)
	}
	// Headings are not rows of data: the counts leave them out.
	if tb.Len() != 1 || tb.Total() != 4 {
		t.Fatalf("counts %d/%d, want 1/4", tb.Len(), tb.Total())
	}
}

// TestTableSpanRowsDoNotWidenColumns: a section's heading and span cells
// are drawn past the columns they span without widening them; the span
// cells start where column Span starts and line up with each other.
func TestTableSpanRowsDoNotWidenColumns(t *testing.T) {
	tb := NewTable(Column{Title: "NAME", Width: 6, Flex: true}, Column{Title: "X", Width: 2})
	tb.SetRows(sectionRows())
	out := strings.Split(tb.View(plain, 60, 6), "\n")
	for i, l := range out {
		if ansi.StringWidth(l) != 60 {
			t.Fatalf("line %d is %d wide: %q", i, ansi.StringWidth(l), l)
		}
	}
	// NAME keeps its Width (6, "alpha" fits) and X its title's (2): the
	// heading and the reasons did not count.
	xAt := strings.Index(out[0], "X")
	if xAt != 2+6+1 {
		t.Fatalf("X at %d: %q", xAt, out[0])
	}
	from := func(l string, cell int) string { return string([]rune(l)[cell:]) } // one cell per rune here
	// The heading's text runs across the columns before Span (NAME), cut
	// there; its own columns start at X.
	if !strings.HasPrefix(out[3], "  A HEA…") || !strings.HasPrefix(from(out[3], xAt), "ADDR       WHY") {
		t.Fatalf("heading row %q", out[3])
	}
	for _, l := range out[4:6] {
		if got := from(l, xAt); !strings.HasPrefix(got, "10.0.0.") || got[11] == ' ' {
			t.Fatalf("span row %q: its cells do not start at X and line up", l)
		}
	}
	if !strings.Contains(out[4], "10.0.0.1   a reason much wider than X") {
		t.Fatalf("span row %q", out[4])
	}
	// Narrow: the span is cut at the edge, never wraps or overflows.
	for _, l := range strings.Split(tb.View(plain, 20, 6), "\n") {
		if ansi.StringWidth(l) != 20 {
			t.Fatalf("narrow line %q", l)
		}
	}
}

func TestPrintable(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text · ünïcode", "plain text · ünïcode"},
		{"a\x1b[2Jb", "a\uFFFD[2Jb"},
		{"osc\x1b]52;c;aGk=\x07", "osc\uFFFD]52;c;aGk=\uFFFD"},
		{"c1\u009b31m", "c1\uFFFD31m"},
		{"del\x7f", "del\uFFFD"},
	} {
		if got := Printable(tc.in); got != tc.want {
			t.Errorf("Printable(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
