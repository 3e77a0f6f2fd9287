package node_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/nodetest"
)

// partition cuts every link between the two sides (both directions).
func (m *testMesh) partition(a, b []*node.Node, cut bool) {
	for _, x := range a {
		for _, y := range b {
			m.block(x, y, cut)
		}
	}
}

// TestLedgerConvergesAfterPartitionOverRealTransport commits admin events on
// both sides of a partition; after the heal, anti-entropy over the real UDP
// transport gives every node the same ledger and the same folded state.
func TestLedgerConvergesAfterPartitionOverRealTransport(t *testing.T) {
	m := startMesh(t, 4)
	for _, nd := range m.nodes {
		nd := nd
		nodetest.Eventually(t, "4 healthy nodes", func() bool { return healthyCount(nd.Cluster()) == 4 })
	}
	left, right := m.nodes[:2], m.nodes[2:]
	m.partition(left, right, true)
	for _, nd := range left {
		nd := nd
		nodetest.Eventually(t, "partition seen", func() bool { return healthyCount(nd.Cluster()) == 2 })
	}
	signer := identity.KeySigner{K: m.op}
	cl, err := left[0].NewClient(signer, "alice")
	if err != nil {
		t.Fatal(err)
	}
	cr, err := right[0].NewClient(signer, "alice")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := cl.Admin().Cordon(ctx, right[1].ID()); err != nil {
		t.Fatalf("left cordon: %v", err)
	}
	if _, err := cr.Admin().Cordon(ctx, left[1].ID()); err != nil {
		t.Fatalf("right cordon: %v", err)
	}
	if _, err := cr.Admin().ClearAvoidList(ctx, right[0].ID()); err != nil {
		t.Fatalf("right clear-avoid: %v", err)
	}
	// Each side has only its own events.
	if got := left[1].Cluster().AdminHead.Count; got > 1 {
		t.Fatalf("left side saw %d events through a partition", got)
	}
	m.partition(left, right, false)
	for _, nd := range m.nodes {
		nd := nd
		nodetest.Eventually(t, "ledger converged", func() bool {
			cs := nd.Cluster()
			return cs.AdminHead.Count == 3
		})
	}
	// The local append order (and so AdminHead.Hash) differs per node;
	// compare the folded state instead.
	ref := m.nodes[0].AdminState()
	for _, nd := range m.nodes[1:] {
		if !nd.AdminState().Equal(ref) {
			t.Fatalf("node %s folded a different admin state", nd.ID())
		}
	}
	// Every node's own audit trail lists the same three accepted events,
	// and every node's own ledger verifies.
	actx, acancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer acancel()
	var refIDs []string
	for i, nd := range m.nodes {
		nd := nd
		nodetest.Eventually(t, "both cordons visible", func() bool {
			cs := nd.Cluster()
			a, b := cs.Node(right[1].ID()), cs.Node(left[1].ID())
			return a != nil && b != nil && a.Cordoned && b.Cordoned
		})
		c, err := nd.NewClient(signer, "alice")
		if err != nil {
			t.Fatal(err)
		}
		q := c.Audit()
		recs, err := q.Collect(actx)
		if err != nil || len(recs) != 3 {
			t.Fatalf("node %s audit: %d records, %v", nd.ID(), len(recs), err)
		}
		var ids []string
		for _, r := range recs {
			if r.Outcome != api.Accepted {
				t.Fatalf("node %s: event %s %s rejected: %s", nd.ID(), r.Action.Verb, r.Action.Target(), r.Reason)
			}
			if r.EventID == "" {
				t.Fatalf("node %s: audit record without an event id: %+v", nd.ID(), r)
			}
			ids = append(ids, r.EventID)
		}
		slices.Sort(ids)
		if i == 0 {
			refIDs = ids
		} else if !slices.Equal(ids, refIDs) {
			t.Fatalf("node %s audits events %v, node %s audits %v", nd.ID(), ids, m.nodes[0].ID(), refIDs)
		}
		if err := q.Verify(actx); err != nil {
			t.Fatalf("node %s verify: %v", nd.ID(), err)
		}
	}
}
