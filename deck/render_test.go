package deck

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"

	"github.com/deck-mesh/deck/deck/decktest"
	"github.com/deck-mesh/deck/node/snapshot"
)

// TestStatusLineLiveStaleWaiting: the status line says LIVE with the
// snapshot's age up to StaleAfter, STALE past it, and WAITING before the
// first snapshot; a snapshot arriving turns WAITING into LIVE.
func TestStatusLineLiveStaleWaiting(t *testing.T) {
	tests := []struct {
		name string
		age  time.Duration // of the snapshot at T0; < 0: no snapshot yet
		want string
		not  []string
	}{
		{"fresh", time.Second, "● LIVE 1s", []string{"STALE", "WAITING"}},
		{"at the threshold", StaleAfter, "● LIVE 5s", []string{"STALE"}},
		{"past the threshold", StaleAfter + time.Second, "○ STALE 6s", []string{"LIVE"}},
		{"long stale", 3*time.Minute + 7*time.Second, "○ STALE 3m07s", []string{"LIVE"}},
		{"no snapshot yet", -1, "○ WAITING", []string{"LIVE", "STALE"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := quiet(t)
			var snap = decktest.Quiet()
			if tc.age < 0 {
				snap = nil
			} else {
				snap.BuiltAt = decktest.T0.Add(-tc.age)
			}
			c.SetSnapshot(snap)
			m := newTestModel(t, c, 80, 24, nil)
			status := strings.SplitN(frame(t, m), "\n", 2)[0]
			if !strings.HasPrefix(status, tc.want) {
				t.Fatalf("status line %q, want it to start with %q", status, tc.want)
			}
			for _, n := range tc.not {
				if strings.Contains(status, n) {
					t.Fatalf("status line %q says %s", status, n)
				}
			}
			if tc.age >= 0 {
				return
			}
			// Waiting: the cluster name is still shown, and the first
			// snapshot turns the line LIVE.
			if !strings.Contains(status, decktest.ClusterName) {
				t.Fatalf("waiting status line %q does not name the cluster", status)
			}
			s := decktest.Quiet()
			m.Update(snapMsg{s}) // its command re-arms the watch: not run here
			if status := strings.SplitN(frame(t, m), "\n", 2)[0]; !strings.HasPrefix(status, "● LIVE 1s") {
				t.Fatalf("after the first snapshot: %q", status)
			}
		})
	}
}

// TestStatusLineLocalMaintenance: on a hosting node's own console the
// status line leads with that node's maintenance state; an observer
// console shows only the cluster's count.
func TestStatusLineLocalMaintenance(t *testing.T) {
	tests := []struct {
		name  string
		self  func(s *snapshot.ClusterSnapshot) // nil: the fixture's observer console
		state snapshot.MaintState
		want  string
	}{
		{"observer", nil, snapshot.MaintActive, "│ maint 4 · 1 drain-failed │"},
		{"hosting, active", hostSelf, snapshot.MaintActive, "│ here active · maint 4 · 1 drain-failed │"},
		{"hosting, entering", hostSelf, snapshot.MaintEntering, "│ here entering-maintenance · maint 5 · 1 drain-failed │"},
		{"hosting, drain failed", hostSelf, snapshot.MaintDrainFailed, "│ here drain-failed · maint 5 · 2 drain-failed │"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := quiet(t)
			snap := decktest.Quiet()
			if tc.self != nil {
				tc.self(snap)
				snap.Node(snap.Self).Maintenance.State = tc.state
			}
			c.SetSnapshot(snap)
			m := newTestModel(t, c, 160, 48, nil)
			status := strings.SplitN(frame(t, m), "\n", 2)[0]
			if !strings.Contains(status, tc.want) {
				t.Fatalf("status line %q, want %q in it", status, tc.want)
			}
		})
	}
}

// hostSelf makes the deck's own node the first hosting node.
func hostSelf(s *snapshot.ClusterSnapshot) {
	for i := range s.Nodes {
		if !s.Nodes[i].Observer {
			s.Self = s.Nodes[i].ID
			return
		}
	}
}

var sgrRE = regexp.MustCompile(`\x1b\[([0-9;:]*)m`)

// sgrUse classifies the SGR parameters of s: colour kinds (truecolor, 256,
// basic) and attributes, and which lines carry reverse video.
type sgrUse struct {
	truecolor, c256 []string // "38;2;r;g;b", "48;5;n" …
	basic           []int    // 30–37, 39, 40–47, 49, 90–97, 100–107
	attrs           map[int]bool
}

func classifySGR(t *testing.T, s string) sgrUse {
	t.Helper()
	u := sgrUse{attrs: map[int]bool{}}
	for _, m := range sgrRE.FindAllStringSubmatch(s, -1) {
		params := strings.FieldsFunc(m[1], func(r rune) bool { return r == ';' || r == ':' })
		for i := 0; i < len(params); i++ {
			p, err := strconv.Atoi(params[i])
			if err != nil {
				t.Fatalf("bad SGR %q", m[0])
			}
			switch {
			case p == 38 || p == 48 || p == 58:
				if i+1 < len(params) && params[i+1] == "5" && i+2 < len(params) {
					u.c256 = append(u.c256, strings.Join(params[i:i+3], ";"))
					i += 2
				} else if i+1 < len(params) && params[i+1] == "2" && i+4 < len(params) {
					u.truecolor = append(u.truecolor, strings.Join(params[i:i+5], ";"))
					i += 4
				} else {
					t.Fatalf("unparsed extended colour in %q", m[0])
				}
			case p >= 30 && p <= 49, p >= 90 && p <= 97, p >= 100 && p <= 107:
				u.basic = append(u.basic, p)
			default:
				u.attrs[p] = true
			}
		}
	}
	return u
}

func has[T comparable](xs []T, x T) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// TestColourDegradation renders NODES with each colour profile the deck
// can be told about (Bubble Tea sends tea.ColorProfileMsg at start-up; the
// deck rebuilds its theme with the palette's hand-picked fallbacks): 256
// colours use only 256-colour SGR codes, 16 colours only the basic ones,
// and NO_COLOR (ASCII) none at all while the cursor row stays marked.
func TestColourDegradation(t *testing.T) {
	render := func(p colorprofile.Profile) (string, string) {
		m := newTestModel(t, quiet(t), 80, 24, nil)
		m.Update(tea.ColorProfileMsg{Profile: p})
		if m.c.Theme.Profile != p {
			t.Fatalf("theme profile %v after ColorProfileMsg %v", m.c.Theme.Profile, p)
		}
		press(t, m, "j", "j", "j", "j", "j") // straylight
		out := frame(t, m)
		for _, l := range strings.Split(out, "\n") {
			if plain := ansi.Strip(l); strings.HasPrefix(plain, "▸ straylight") {
				return out, l
			}
		}
		t.Fatalf("%v: no cursor row on straylight:\n%s", p, ansi.Strip(out))
		return "", ""
	}

	t.Run("TrueColor", func(t *testing.T) {
		out, sel := render(colorprofile.TrueColor)
		u := classifySGR(t, out)
		if !has(u.truecolor, "38;2;154;255;0") {
			t.Fatalf("no matrix green (154,255,0) foreground: %v", u.truecolor)
		}
		if s := classifySGR(t, sel); !has(s.truecolor, "48;2;154;255;0") {
			t.Fatalf("cursor row is not green-backed: %q", sel)
		}
	})
	t.Run("ANSI256", func(t *testing.T) {
		out, sel := render(colorprofile.ANSI256)
		u := classifySGR(t, out)
		if len(u.truecolor) > 0 {
			t.Fatalf("truecolor codes in 256-colour output: %v", u.truecolor)
		}
		if len(u.basic) > 0 {
			t.Fatalf("basic colour codes in 256-colour output: %v", u.basic)
		}
		// The hand-picked fallbacks: green 154, amber 214 (straylight is suspect).
		if !has(u.c256, "38;5;154") || !has(u.c256, "38;5;214") {
			t.Fatalf("palette fallbacks missing: %v", u.c256)
		}
		if s := classifySGR(t, sel); !has(s.c256, "48;5;154") {
			t.Fatalf("cursor row is not green-backed: %q", sel)
		}
	})
	t.Run("ANSI16", func(t *testing.T) {
		out, sel := render(colorprofile.ANSI)
		u := classifySGR(t, out)
		if len(u.truecolor) > 0 || len(u.c256) > 0 {
			t.Fatalf("extended colour codes in 16-colour output: %v %v", u.truecolor, u.c256)
		}
		// Bright green (10 → 92) and bright yellow for amber (11 → 93).
		if !has(u.basic, 92) || !has(u.basic, 93) {
			t.Fatalf("palette fallbacks missing: %v", u.basic)
		}
		if s := classifySGR(t, sel); !has(s.basic, 102) {
			t.Fatalf("cursor row is not green-backed (102): %q", sel)
		}
	})
	t.Run("NoColor", func(t *testing.T) {
		out, sel := render(colorprofile.ASCII)
		u := classifySGR(t, out)
		if len(u.truecolor) > 0 || len(u.c256) > 0 || len(u.basic) > 0 {
			t.Fatalf("colour codes with NO_COLOR: %v %v %v", u.truecolor, u.c256, u.basic)
		}
		if s := classifySGR(t, sel); !s.attrs[7] {
			t.Fatalf("cursor row is not in reverse video: %q", sel)
		}
		if !u.attrs[1] {
			t.Fatal("no bold anywhere (titles, warnings)")
		}
	})
}
