package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/snapshot"
)

// TestAggregatorCommands: on a mesh carved into subnets a and b (real
// nodes on UDP), `deck aggregator ls` lists both groups and `deck
// aggregator query b` returns b's signed summary, as JSON; an unknown
// subnet exits 3, a malformed path 2.
func TestAggregatorCommands(t *testing.T) {
	m := startMesh(t, meshOpts{name: "carved", nodes: 4, operators: []string{"alice"},
		subnets: []string{"a", "a", "b", "b"}, visibility: map[string]string{snapshot.ChannelLogs: "local"}})
	waitFor(t, "every node to hold both subnets' summaries", 60*time.Second, func() bool {
		for _, nd := range m.nodes {
			held := 0
			for _, v := range nd.Cluster().Subnets {
				if v.Generation > 0 && v.Nodes[snapshot.Healthy] == 2 {
					held++
				}
			}
			if held != 2 {
				return false
			}
		}
		return true
	})

	ls := decodeJSON[[]aggregatorJSON](t, m.must(t, 0, "aggregator", "ls", "-o", "json", "--subnet", "a"))
	if len(ls) != 2 || ls[0].Subnet != "a" || ls[1].Subnet != "b" {
		t.Fatalf("aggregator ls: %+v", ls)
	}
	for _, a := range ls {
		if a.Generation == 0 || len(a.Members) != 2 || a.Desired != 2 || a.Leader.Hex == "" || a.UpdatedAt == "" {
			t.Fatalf("aggregator ls entry %+v", a)
		}
	}
	q := decodeJSON[subnetSummaryJSON](t, m.must(t, 0, "aggregator", "query", "b", "-o", "json", "--subnet", "a"))
	if q.Subnet != "b" || q.Generation == 0 || q.Nodes.Healthy != 2 || len(q.Gateways) != 1 || q.BuiltAt == "" {
		t.Fatalf("aggregator query b: %+v", q)
	}
	// A console in the root (no roster names it) asks through a neighbour.
	root := decodeJSON[subnetSummaryJSON](t, m.must(t, 0, "aggregator", "query", "a", "-o", "json"))
	if root.Subnet != "a" || root.Generation == 0 || root.Nodes.Healthy != 2 {
		t.Fatalf("aggregator query a from the root: %+v", root)
	}
	pretty := m.must(t, 0, "aggregator", "ls", "--subnet", "b")
	if !strings.Contains(pretty.out, "SUBNET") || !strings.Contains(pretty.out, "(2/2)") {
		t.Fatalf("aggregator ls (pretty):\n%s", pretty.out)
	}
	m.must(t, 3, "aggregator", "query", "nowhere", "--subnet", "a")
	m.must(t, 2, "aggregator", "query", "Not A Path")
	m.must(t, 2, "aggregator", "ls", "--subnet", "a//b")
}
