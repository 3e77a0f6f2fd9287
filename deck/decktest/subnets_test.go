package decktest

import (
	"context"
	"errors"
	"testing"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
)

// TestFocusSubnetSwitchesMembers: focusing a remote subnet puts exactly its
// members into the view (and marks it Detailed), their health adding up to
// the summary shown before; clearing the focus takes them out again; an
// unknown path is ErrNotFound and changes nothing.
func TestFocusSubnetSwitchesMembers(t *testing.T) {
	ctx := context.Background()
	c := New(0)
	before := c.Snapshot()
	members := func(s *snapshot.ClusterSnapshot, path string) (n [3]int) {
		for i := range s.Nodes {
			if nd := &s.Nodes[i]; nd.Subnet == path && !nd.Observer {
				n[nd.Health]++
			}
		}
		return n
	}
	view := func(s *snapshot.ClusterSnapshot, path string) snapshot.SubnetView {
		for _, v := range s.Subnets {
			if v.Path == path {
				return v
			}
		}
		t.Fatalf("no subnet %s", path)
		return snapshot.SubnetView{}
	}
	if got := members(before, "eu/fra"); got != [3]int{} || view(before, "eu/fra").Detailed {
		t.Fatalf("eu/fra held before the focus: %v", got)
	}
	if v := view(before, LocalSubnet); !v.Local || !v.Detailed || v.Nodes != members(before, LocalSubnet) {
		t.Fatalf("local subnet %+v, members %v", v, members(before, LocalSubnet))
	}
	if err := c.FocusSubnet(ctx, "eu/fra"); err != nil {
		t.Fatal(err)
	}
	after := c.Snapshot()
	if got, want := members(after, "eu/fra"), view(before, "eu/fra").Nodes; got != want || !view(after, "eu/fra").Detailed {
		t.Fatalf("focused eu/fra members %v, summary said %v", got, want)
	}
	if len(after.Nodes) != len(before.Nodes)+7 {
		t.Fatalf("%d nodes after the focus, %d before", len(after.Nodes), len(before.Nodes))
	}
	for i := 1; i < len(after.Nodes); i++ {
		if after.Nodes[i-1].ID >= after.Nodes[i].ID {
			t.Fatal("nodes not sorted by id")
		}
	}
	if err := c.FocusSubnet(ctx, "nowhere"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("unknown subnet: %v", err)
	}
	if c.Focus() != "eu/fra" {
		t.Fatalf("a refused focus moved it to %q", c.Focus())
	}
	if err := c.FocusSubnet(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if got := c.Snapshot(); len(got.Nodes) != len(before.Nodes) || view(got, "eu/fra").Detailed {
		t.Fatal("clearing the focus left eu/fra in the view")
	}
	if got := c.FocusCalls(); len(got) != 2 || got[0] != "eu/fra" || got[1] != "" {
		t.Fatalf("focus calls %q", got)
	}
	sum, err := c.QuerySubnet(ctx, "us/sfo/edge")
	if err != nil || sum.Path != "us/sfo/edge" || sum.Nodes != [3]int{4, 0, 0} {
		t.Fatalf("query: %+v %v", sum, err)
	}
	if _, err := c.QuerySubnet(ctx, "nowhere"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("query unknown: %v", err)
	}
}

// TestLargeSpreadsOverSubnets: Large(n) puts n nodes in LargeSubnets
// subnets whose summaries count every one of them.
func TestLargeSpreadsOverSubnets(t *testing.T) {
	s := Large(1000)
	if len(s.Nodes) != 1000 || len(s.Subnets) != LargeSubnets || len(s.Aggregators) != LargeSubnets {
		t.Fatalf("%d nodes, %d subnets, %d aggregators", len(s.Nodes), len(s.Subnets), len(s.Aggregators))
	}
	total, gateways := 0, 0
	for _, v := range s.Subnets {
		total += v.Nodes[0] + v.Nodes[1] + v.Nodes[2]
		gateways += len(v.Gateways)
	}
	if total != 1000 || gateways != LargeSubnets {
		t.Fatalf("summaries count %d nodes, %d gateways", total, gateways)
	}
}
