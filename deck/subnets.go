package deck

import (
	"context"
	"errors"

	tea "charm.land/bubbletea/v2"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/tabs"
)

// Subnet focus (issue 16): the view holds full detail for the console's own
// subnet and for one it drills into. The SUBNETS and AGGREGATORS tabs ask
// for a subnet's focus page; the root opens it and asks the client to
// focus the subnet (api.SubnetClient.FocusSubnet, in a command: tabs never
// touch the network), and clears the focus when the page is left.

// errNoSubnets: the client is not on a mesh carved into subnets.
var errNoSubnets = errors.New("this console's client cannot focus subnets")

// subnetFocusMsg is the end of a FocusSubnet call.
type subnetFocusMsg struct {
	path string
	err  error
}

// openSubnet makes the focus page of path and the command drilling the
// view into it: none for the console's own subnet (always held in full)
// or a client without subnets (the page then says why it has no members).
func (m *Model) openSubnet(path string) (*tabs.SubnetPage, tea.Cmd) {
	p := tabs.NewSubnetPage(m.c, path)
	sc, ok := m.c.Client.(api.SubnetClient)
	if !ok {
		p.FocusErr = errNoSubnets
		return p, nil
	}
	if path == m.c.Snap.LocalSubnet {
		return p, nil
	}
	return p, focusSubnet(m.c.Ctx, sc, path)
}

// leftPage clears the focus when a subnet's focus page is left.
func (m *Model) leftPage(p tabs.Tab) tea.Cmd {
	sp, ok := p.(*tabs.SubnetPage)
	if !ok || sp.Path() == m.c.Snap.LocalSubnet {
		return nil
	}
	sc, ok := m.c.Client.(api.SubnetClient)
	if !ok {
		return nil
	}
	return focusSubnet(m.c.Ctx, sc, "")
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
