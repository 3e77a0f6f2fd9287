package deck

import (
	"strings"
	"testing"

	"github.com/deck-mesh/deck/demo/workloads"
	"github.com/deck-mesh/deck/node"
)

// TestEndToEndAdmitPendingNodeThroughTheDeck: a fourth node holding the
// cluster file but no certificate joins the real mesh of the end-to-end
// test; the deck lists it under PENDING ADMISSION, the operator selects it
// and admits it with `+` and a typed YES, and it becomes a member row of
// NODES with the section gone. Revoked with `V`, it leaves the members and
// is listed pending again, as revoked.
func TestEndToEndAdmitPendingNodeThroughTheDeck(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real 3-node mesh")
	}
	e := startE2E(t, 1, newE2EOperator(t, "alice"))
	e.waitFor("3 healthy nodes in NODES", func(f string) bool {
		return strings.Contains(f, "3 nodes · 3 healthy") && e2eRow(f, "n3") != ""
	})

	// No CertifyWith and no node.cert in its data dir: it starts pending.
	newcomer, err := node.Start(e.ctx, node.Options{
		Cluster: e.cluster, DataDir: t.TempDir(), Label: "n4",
		Capabilities: workloads.NodeCapabilities(3, 4), Spec: workloads.Spec(),
		Factories: workloads.Factories(), Version: "e2e",
		Bootstrap: []string{e.nodes[0].Addr()},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { newcomer.Close() })
	short := newcomer.ID().Short()

	e.waitFor("the newcomer pending in NODES", func(f string) bool {
		return strings.Contains(f, "PENDING ADMISSION · 1") && strings.Contains(e2eRow(f, short), "pending") &&
			strings.Contains(e2eRow(f, short), "no certificate")
	})
	if e2eRow(e.last, "n4") != "" || !strings.Contains(e.last, "3 nodes ·") {
		t.Fatalf("the pending node is listed as a member:\n%s", e.last)
	}

	// G: the pending row is the last one.
	e.type_("G")
	e.waitFor("cursor on the pending row", func(f string) bool { return strings.HasPrefix(strings.TrimSpace(e2eRow(f, short)), "▸") })
	e.type_("\r")
	e.waitFor("the pending node's page", func(f string) bool {
		return strings.Contains(f, "PENDING "+short) && strings.Contains(f, newcomer.ID().String()) && strings.Contains(f, "✓ derives to the id")
	})
	e.type_("+")
	e.waitFor("the admit confirm with its blast radius", func(f string) bool {
		return strings.Contains(f, "CONFIRM admit-node "+short) && strings.Contains(f, "This action affects") && strings.Contains(f, "Type YES")
	})
	// Done when the toast says so, or (a busy machine: the toast came and
	// went between two looks) when the node already shows as a member.
	e.confirmYES("the admission committed", func(f string) bool {
		return strings.Contains(f, "committed admit-node "+short) || strings.Contains(f, "NODE n4")
	})

	// The page follows the node: once the mesh reassesses it and its
	// snapshot arrives, it is the member n4.
	e.waitFor("the page turned into the member n4's", func(f string) bool { return strings.Contains(f, "NODE n4") && strings.Contains(f, "FACTS") })
	e.type_("\x1b") // esc: back to NODES
	e.waitFor("n4 a member row of NODES, the pending section gone", func(f string) bool {
		return strings.Contains(f, "4 nodes ·") && e2eRow(f, "n4") != "" && !strings.Contains(f, "PENDING ADMISSION")
	})

	// V revokes it for good: it leaves the members and, still knocking, is
	// listed pending again as revoked.
	e.type_("gjjj")
	e.waitFor("cursor on n4", func(f string) bool { return strings.HasPrefix(strings.TrimSpace(e2eRow(f, "n4")), "▸") })
	e.type_("V")
	e.waitFor("the revoke confirm", func(f string) bool {
		return strings.Contains(f, "CONFIRM revoke-node n4") && strings.Contains(f, "revokes n4 for good") && strings.Contains(f, "Type YES")
	})
	e.confirmYES("the revocation committed", func(f string) bool {
		return strings.Contains(f, "committed revoke-node n4") || strings.Contains(e2eRow(f, short), "revoked")
	})
	e.waitFor("n4 revoked: gone from the members, pending as revoked", func(f string) bool {
		return e2eRow(f, "n4") == "" && strings.Contains(f, "3 nodes ·") && strings.Contains(e2eRow(f, short), "revoked")
	})
}
