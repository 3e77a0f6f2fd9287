package deck

import (
	"context"
	"errors"

	tea "charm.land/bubbletea/v2"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/tabs"
)

// Subnet focus (issue 16): the view holds full detail for the console's own
// subnet and for one it drills into. SUBNETS, AGGREGATORS and NET.MAP ask
// for a subnet's focus page; the root opens it, and after every key and
// page it points the view's focus at the subnet the operator is looking
// at (api.SubnetClient.FocusSubnet, in a command: tabs never touch the
// network), clearing it once no focus page is open.

// errNoSubnets: the client is not on a mesh carved into subnets.
var errNoSubnets = errors.New("this console's client cannot focus subnets")

// subnetFocusMsg is the end of a FocusSubnet call.
type subnetFocusMsg struct {
	path string
	err  error
}

// openSubnet makes the focus page of path; a client without subnets gets
// the summary and the reason it has no members.
func (m *Model) openSubnet(path string) *tabs.SubnetPage {
	p := tabs.NewSubnetPage(m.c, path)
	if _, ok := m.c.Client.(api.SubnetClient); !ok {
		p.FocusErr = errNoSubnets
	}
	return p
}

// wantedFocus is the subnet the view should hold in full besides the
// console's own: the one on screen when the screen is its focus page,
// else the focus while a page of it is still open in some tab, else the
// first other subnet page open, else none ("").
func (m *Model) wantedFocus() string {
	local := m.c.Snap.LocalSubnet
	if sp, ok := m.screen().(*tabs.SubnetPage); ok && sp.Path() != local {
		return sp.Path()
	}
	var first string
	found := false
	for _, st := range m.pages {
		for _, p := range st {
			sp, ok := p.(*tabs.SubnetPage)
			if !ok || sp.Path() == local {
				continue
			}
			if sp.Path() == m.focus {
				return m.focus
			}
			if !found {
				first, found = sp.Path(), true
			}
		}
	}
	return first
}

// followFocus asks the client to move the focus where wantedFocus says,
// when that changed; nil otherwise or without a SubnetClient.
func (m *Model) followFocus() tea.Cmd {
	sc, ok := m.c.Client.(api.SubnetClient)
	if !ok {
		return nil
	}
	want := m.wantedFocus()
	if want == m.focus {
		return nil
	}
	m.focus = want
	return focusSubnet(m.c.Ctx, sc, want)
}

// focusSubnet calls FocusSubnet in a command ("" clears the focus).
func focusSubnet(ctx context.Context, sc api.SubnetClient, path string) tea.Cmd {
	return func() tea.Msg {
		return subnetFocusMsg{path: path, err: sc.FocusSubnet(ctx, path)}
	}
}

// focused takes a FocusSubnet result: a failure is toasted and shown on
// every open focus page of that subnet.
func (m *Model) focused(msg subnetFocusMsg) {
	if msg.err == nil || m.c.Ctx.Err() != nil {
		return
	}
	what := "focus " + tabs.SubnetLabel(msg.path)
	if msg.path == "" {
		what = "clear the subnet focus"
	}
	m.toasts.Push(what+": "+msg.err.Error(), true, m.c.Now)
	for _, st := range m.pages {
		for _, p := range st {
			if sp, ok := p.(*tabs.SubnetPage); ok && sp.Path() == msg.path {
				sp.FocusErr = msg.err
			}
		}
	}
}
