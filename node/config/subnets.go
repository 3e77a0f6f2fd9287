package config

import (
	"fmt"
	"slices"
	"sort"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Subnets is the cluster file's [subnets] table (issue 16): how far each
// channel's traffic may travel from the subnet it starts in, and which
// subnet a node belongs to when its operator did not say otherwise.
//
//	[subnets.visibility]   # local | parent | global (the default)
//	logs = "local"
//	snapshots = "parent"
//	[subnets.nodes]        # node id → subnet path, the default for --subnet
//	"0x1f2e3d4c5b6a7988" = "eu/ams/rack-3"
//
// The ledger is always global: a rule for it other than "global" is an
// error. A node's subnet is what its certificate carries (deck node certify
// --subnet); this table is where the certifying side reads it from.
type Subnets struct {
	Visibility map[string]string `toml:"visibility,omitempty"`
	Nodes      map[string]string `toml:"nodes,omitempty"`
}

// MaxSubnetNodes bounds [subnets.nodes].
const MaxSubnetNodes = 4096

// ParseVisibility reads "local", "parent" or "global".
func ParseVisibility(s string) (snapshot.Visibility, error) {
	switch s {
	case "local":
		return snapshot.VisLocal, nil
	case "parent":
		return snapshot.VisParent, nil
	case "global":
		return snapshot.VisGlobal, nil
	}
	return 0, fmt.Errorf("visibility %q: want local, parent or global", s)
}

// SubnetRules is the visibility of every gateway channel
// (snapshot.GatewayChannels): the [subnets.visibility] setting, global
// where it says nothing.
func (c *Cluster) SubnetRules() (map[string]snapshot.Visibility, error) {
	out := make(map[string]snapshot.Visibility, len(snapshot.GatewayChannels))
	for _, ch := range snapshot.GatewayChannels {
		out[ch] = snapshot.VisGlobal
	}
	for ch, v := range c.Subnets.Visibility {
		if !slices.Contains(snapshot.GatewayChannels, ch) {
			return nil, fieldErr("subnets.visibility."+quoteKey(ch), "unknown channel (one of %v)", snapshot.GatewayChannels)
		}
		vis, err := ParseVisibility(v)
		if err != nil {
			return nil, fieldErr("subnets.visibility."+ch, "%v", err)
		}
		if ch == snapshot.ChannelLedger && vis != snapshot.VisGlobal {
			return nil, fieldErr("subnets.visibility.ledger", "the admin ledger is always global")
		}
		out[ch] = vis
	}
	return out, nil
}

// SubnetOf is the subnet [subnets.nodes] gives node id ("" when none).
func (c *Cluster) SubnetOf(id identity.NodeID) string {
	return c.Subnets.Nodes[id.String()]
}

// HasSubnets reports whether the cluster file has a [subnets] table.
func (c *Cluster) HasSubnets() bool {
	return len(c.Subnets.Visibility) > 0 || len(c.Subnets.Nodes) > 0
}

func (c *Cluster) validateSubnets(errs *fieldErrors) {
	if _, err := c.SubnetRules(); err != nil {
		if fe, ok := err.(*FieldError); ok {
			errs.add(fe)
		}
	}
	if len(c.Subnets.Nodes) > MaxSubnetNodes {
		errs.add(fieldErr("subnets.nodes", "%d entries, at most %d allowed", len(c.Subnets.Nodes), MaxSubnetNodes))
	}
	ids := make([]string, 0, len(c.Subnets.Nodes))
	for id := range c.Subnets.Nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		f := "subnets.nodes." + quoteKey(id)
		nid, err := identity.ParseNodeID(id)
		if err != nil {
			errs.add(fieldErr(f, "%v", err))
			continue
		}
		if nid.String() != id {
			errs.add(fieldErr(f, "write node ids as %s", nid))
			continue
		}
		if err := identity.ValidateSubnet(c.Subnets.Nodes[id]); err != nil {
			errs.add(fieldErr(f, "%v", err))
		}
	}
}

// readSubnets reads the [subnets] table.
func readSubnets(root *table) Subnets {
	var out Subnets
	st := root.sub("subnets")
	read := func(key string) map[string]string {
		t := st.sub(key)
		if len(t.m) == 0 {
			return nil
		}
		m := make(map[string]string, len(t.m))
		for k := range t.m {
			if len(m) >= MaxSubnetNodes+1 {
				break // Validate reports the count
			}
			m[k] = t.str(k)
		}
		t.unknown()
		return m
	}
	out.Visibility = read("visibility")
	out.Nodes = read("nodes")
	st.unknown()
	return out
}
