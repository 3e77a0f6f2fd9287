package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

// TestSubnetsRoundTrip: the [subnets] table survives writing and reading,
// its rules default to global, and a cluster file without it has none.
func TestSubnetsRoundTrip(t *testing.T) {
	ops, _ := testOperators(t, "alice")
	c, err := NewCluster("carved", []string{"127.0.0.1:7400"}, ops, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := MarshalCluster(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(plain), "subnets") || c.HasSubnets() {
		t.Fatalf("a cluster without subnets writes a [subnets] table:\n%s", plain)
	}
	id := identity.NodeID(0x1f2e3d4c5b6a7988)
	c.Subnets = Subnets{Visibility: map[string]string{"logs": "local", "snapshots": "parent"},
		Nodes: map[string]string{id.String(): "eu/ams/rack-3"}}
	b, err := MarshalCluster(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseCluster(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	rules, err := got.SubnetRules()
	if err != nil {
		t.Fatal(err)
	}
	if rules[snapshot.ChannelLogs] != snapshot.VisLocal || rules[snapshot.ChannelSnapshots] != snapshot.VisParent ||
		rules[snapshot.ChannelBlobs] != snapshot.VisGlobal || rules[snapshot.ChannelLedger] != snapshot.VisGlobal {
		t.Fatalf("rules %v", rules)
	}
	if got.SubnetOf(id) != "eu/ams/rack-3" || got.SubnetOf(id+1) != "" || !got.HasSubnets() {
		t.Fatalf("nodes %v", got.Subnets.Nodes)
	}
}

// TestSubnetsFieldErrors: every bad [subnets] entry is an error naming it.
func TestSubnetsFieldErrors(t *testing.T) {
	ops, _ := testOperators(t, "alice")
	c, err := NewCluster("carved", nil, ops, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	base, err := MarshalCluster(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ table, field string }{
		{"[subnets.visibility]\nledger = \"local\"\n", "subnets.visibility.ledger"},
		{"[subnets.visibility]\nlogs = \"nearby\"\n", "subnets.visibility.logs"},
		{"[subnets.visibility]\ngossip = \"local\"\n", "subnets.visibility.gossip"},
		{"[subnets.nodes]\n\"0x1f2e3d4c5b6a7988\" = \"EU\"\n", `subnets.nodes.`},
		{"[subnets.nodes]\n\"node-7\" = \"eu\"\n", `subnets.nodes.`},
		{"[subnets]\ngateways = [\"x\"]\n", "subnets.gateways"},
	} {
		_, err := ParseCluster(append(append([]byte{}, base...), "\n"+tt.table...))
		var fe *FieldError
		if !errors.As(err, &fe) && !strings.Contains(errString(err), tt.field) {
			t.Errorf("%q: %v, want an error naming %s", tt.table, err, tt.field)
			continue
		}
		if !strings.Contains(err.Error(), tt.field) {
			t.Errorf("%q: %v, want it to name %s", tt.table, err, tt.field)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
