package node_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/nodetest"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/node/testmesh"
)

// carved is a test mesh split into subnets: per subnet, a gateway first,
// then plain members.
type carved struct {
	*testmesh.Mesh
	subnets []string
	members map[string][]*node.Node
}

// newCarved starts len(subnets)×perSubnet nodes; edit adjusts each node's
// options (nil: none).
func newCarved(t *testing.T, subnets []string, perSubnet int, edit func(*node.Options)) *carved {
	t.Helper()
	c := &carved{Mesh: testmesh.New(t, "carved"), subnets: subnets, members: map[string][]*node.Node{}}
	c.Cluster.Subnets.Visibility = map[string]string{snapshot.ChannelLogs: "local"}
	for _, s := range subnets {
		for i := range perSubnet {
			nd := c.Start(testmesh.Member{Label: fmt.Sprintf("%s-%d", s, i), Subnet: s, Gateway: i == 0, Edit: edit})
			c.members[s] = append(c.members[s], nd)
		}
	}
	return c
}

// viewState dumps what one node sees, for Eventually's failure message.
func viewState(nd *node.Node) func() string {
	return func() string {
		cs := nd.Cluster()
		var b strings.Builder
		fmt.Fprintf(&b, "%s (%q): ", nd.ID(), nd.Subnet())
		for _, nv := range cs.Nodes {
			fmt.Fprintf(&b, "%s/%q/%s/stale=%v ", nv.ID, nv.Subnet, nv.Health, nv.Stale)
		}
		for _, s := range cs.Subnets {
			fmt.Fprintf(&b, "| %q gen %d nodes %v agg %s", s.Path, s.Generation, s.Nodes, s.Aggregator)
		}
		return b.String()
	}
}

// ownSubnetOnly reports whether nd's view holds exactly the members of its
// subnet, each healthy and fresh.
func (c *carved) ownSubnetOnly(nd *node.Node) bool {
	cs := nd.Cluster()
	want := c.members[nd.Subnet()]
	if len(cs.Nodes) != len(want) {
		return false
	}
	for _, m := range want {
		if !member(cs, m.ID()) {
			return false
		}
	}
	return true
}

// summaryOf is the subnet view of path in nd's cluster view.
func summaryOf(nd *node.Node, path string) (snapshot.SubnetView, bool) {
	for _, v := range nd.Cluster().Subnets {
		if v.Path == path {
			return v, true
		}
	}
	return snapshot.SubnetView{}, false
}

// TestSubnetsScopeViewsAndSpreadSummaries: in a small carved mesh each
// node's view holds its own subnet only, every node holds every subnet's
// summary, and a plain member keeps no session of its own making with
// another subnet.
func TestSubnetsScopeViewsAndSpreadSummaries(t *testing.T) {
	c := newCarved(t, []string{"eu", "us"}, 3, nil)
	for _, s := range c.subnets {
		for _, nd := range c.members[s] {
			nodetest.Eventually(t, nd.ID().String()+" to see its own subnet only", func() bool { return c.ownSubnetOnly(nd) }, viewState(nd))
			for _, other := range c.subnets {
				nodetest.Eventually(t, nd.ID().String()+" to hold "+other+"'s summary", func() bool {
					v, ok := summaryOf(nd, other)
					return ok && v.Generation > 0 && v.Nodes[snapshot.Healthy] == len(c.members[other])
				}, viewState(nd))
			}
		}
	}
	plain := c.members["eu"][2]
	for _, p := range plain.Stats().Peers {
		if p.Session && p.Subnet != "eu" && p.Role == identity.RoleNode {
			t.Errorf("plain member %s holds a session with %s of %q", plain.ID(), p.ID, p.Subnet)
		}
	}
}
