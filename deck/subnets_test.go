package deck

import (
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"

	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/deck/decktest"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/tabs"
)

// TestSubnetFocusFollowsThePage: Enter on a subnet asks the client to focus
// it (from the root, not the tab), the page lists its members once the
// view holds them, and Esc clears the focus.
func TestSubnetFocusFollowsThePage(t *testing.T) {
	c := decktest.New(fixtureLogs)
	m := newTestModel(t, c, 160, 48, nil)
	press(t, m, "#", "j", "j", "j", "enter")
	if got := c.FocusCalls(); len(got) != 1 || got[0] != "eu/fra" {
		t.Fatalf("focus calls %q", got)
	}
	if out := frame(t, m); !strings.Contains(out, "fetching the members of eu/fra") {
		t.Fatalf("no fetching note before the view holds the members:\n%s", out)
	}
	press(t, m, "snapshot")
	out := frame(t, m)
	for _, want := range []string{"SUBNETS › SUBNET eu/fra", "fra-01", "fra-07", "5/1/1"} {
		if !strings.Contains(out, want) {
			t.Errorf("focus page lacks %q:\n%s", want, out)
		}
	}
	press(t, m, "esc")
	if got := c.FocusCalls(); len(got) != 2 || got[1] != "" || c.Focus() != "" {
		t.Fatalf("esc did not clear the focus: calls %q, focus %q", got, c.Focus())
	}
	if _, ok := m.screen().(*tabs.Subnets); !ok {
		t.Fatalf("esc left %s", m.screen().Name())
	}
}

// TestSubnetFocusOfTheLocalSubnetAsksNothing: the console's own subnet is
// always held in full: its page needs no focus, and leaving it clears none.
func TestSubnetFocusOfTheLocalSubnetAsksNothing(t *testing.T) {
	c := decktest.New(fixtureLogs)
	m := newTestModel(t, c, 160, 48, nil)
	press(t, m, "#", "j", "j", "enter")
	if out := frame(t, m); !strings.Contains(out, "SUBNET eu/ams") || !strings.Contains(out, "wintermute") {
		t.Fatalf("local subnet page:\n%s", out)
	}
	press(t, m, "esc")
	if got := c.FocusCalls(); len(got) != 0 {
		t.Fatalf("focus calls %q", got)
	}
}

// TestSubnetFocusRefused: a subnet the node does not know is a toast and a
// page that says why it has no members.
func TestSubnetFocusRefused(t *testing.T) {
	c := decktest.New(fixtureLogs)
	m := newTestModel(t, c, 160, 48, nil)
	run(t, m, common.OpenPageMsg{Kind: common.PageSubnet, Subnet: "nowhere"})
	out := frame(t, m)
	if !strings.Contains(out, "focus nowhere") || !strings.Contains(out, "not in the view") {
		t.Fatalf("refused focus:\n%s", out)
	}
	if _, _, ok := m.toasts.Current(); !ok {
		t.Fatal("no toast")
	}
}

// plainClient is a client without subnets (api.Client only).
type plainClient struct{ api.Client }

// TestSubnetPageWithoutSubnetClient: a client that cannot focus subnets
// gets the summary and a reason, never a call.
func TestSubnetPageWithoutSubnetClient(t *testing.T) {
	m := New(plainClient{decktest.New(fixtureLogs)}, Options{Version: "0.4.0", Now: func() time.Time { return decktest.T0 }, Profile: colorprofile.NoTTY})
	t.Cleanup(m.Close)
	m.Update(tea.WindowSizeMsg{Width: 160, Height: 48})
	press(t, m, "#", "j", "j", "j", "enter")
	if out := frame(t, m); !strings.Contains(out, "members unavailable: "+errNoSubnets.Error()) {
		t.Fatalf("page:\n%s", out)
	}
}

// TestNetMapClusterEnterFocuses: on NET.MAP's list, a summary-only subnet
// is a row of its own, and Enter on it drills into the subnet.
func TestNetMapClusterEnterFocuses(t *testing.T) {
	c := decktest.New(fixtureLogs)
	m := newTestModel(t, c, 80, 24, nil)
	press(t, m, "1", "G", "enter")
	if got := c.FocusCalls(); len(got) != 1 || got[0] != "us/sfo/edge" {
		t.Fatalf("focus calls %q", got)
	}
}

// TestNodesFilterMatchesSubnet: `/` on NODES keeps the nodes of a subnet by
// its path, at 80 columns too (where the SUBNET column is hidden).
func TestNodesFilterMatchesSubnet(t *testing.T) {
	c := decktest.New(fixtureLogs)
	m := newTestModel(t, c, 80, 24, nil)
	press(t, m, "#", "j", "j", "j", "enter", "snapshot", "2", "/", "type:eu/fra", "enter")
	out := frame(t, m)
	if !strings.Contains(out, "fra-03") || strings.Contains(out, "gibson") || !strings.Contains(out, "/eu/fra · 7/19") {
		t.Fatalf("filter on eu/fra:\n%s", out)
	}
}

// TestSubnetFocusFollowsTheScreen: with focus pages open in two tabs, the
// view's focus follows the one on screen; leaving one keeps the other's
// subnet focused, leaving both clears the focus.
func TestSubnetFocusFollowsTheScreen(t *testing.T) {
	c := decktest.New(fixtureLogs)
	m := newTestModel(t, c, 160, 48, nil)
	press(t, m, "#", "j", "j", "j", "enter") // eu/fra on SUBNETS
	press(t, m, "%", "j", "j", "j", "j", "enter")
	if c.Focus() != "us/sfo" {
		t.Fatalf("focus %q after opening us/sfo on AGGREGATORS", c.Focus())
	}
	press(t, m, "2")
	if c.Focus() != "us/sfo" {
		t.Fatalf("focus %q on NODES: a plain tab keeps it", c.Focus())
	}
	press(t, m, "#")
	if c.Focus() != "eu/fra" {
		t.Fatalf("focus %q back on SUBNETS' eu/fra page", c.Focus())
	}
	press(t, m, "esc")
	if c.Focus() != "us/sfo" {
		t.Fatalf("focus %q with AGGREGATORS' us/sfo page still open", c.Focus())
	}
	press(t, m, "%", "esc")
	if got := c.FocusCalls(); c.Focus() != "" || got[len(got)-1] != "" {
		t.Fatalf("focus %q after leaving both pages (calls %q)", c.Focus(), got)
	}
}
