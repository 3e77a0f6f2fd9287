package node_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/deck-mesh/deck/demo/workloads"
	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/nodetest"
	"github.com/deck-mesh/deck/node/snapshot"
)

// TestConsoleBehindGatewayIsServedThroughRelay: a console on another
// network segment reaches only the gateway node G (its links to N1 and N2
// are cut both ways). Everything a console needs comes through G's relay:
// the nodes' snapshots, N1's log records and failures over their
// subscription leases, the admin ledger by anti-entropy, and its own
// commits, which land on every node.
func TestConsoleBehindGatewayIsServedThroughRelay(t *testing.T) {
	m := newMemberMesh(t)
	g := start(m, "g", true, false)
	n1 := start(m, "n1", true, false)
	n2 := start(m, "n2", true, false)
	conn, err := m.Net.Listen()
	if err != nil {
		t.Fatal(err)
	}
	for _, nd := range []*node.Node{n1, n2} {
		m.Net.Partition(conn.LocalAddr(), netip.MustParseAddrPort(nd.Addr()), true)
	}
	far, err := node.Start(context.Background(), node.Options{
		Cluster: m.Cluster, Observer: true, Label: "far", Conn: conn, Bootstrap: []string{g.Addr()},
		Spec: workloads.Spec(), Version: "test", CertifyWith: identity.KeySigner{K: m.Operator},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { far.Close() })

	for _, nd := range []*node.Node{g, n1, n2} {
		nodetest.Eventually(t, "the far console sees "+nd.ID().String()+" healthy", func() bool {
			return member(far.Cluster(), nd.ID())
		})
	}
	if pv := peerOf(far.Cluster(), far.ID(), n1.ID()); pv == nil || pv.Direct {
		t.Fatalf("the far console's own view of N1 is %+v, want relayed", pv)
	}

	cl, err := far.NewClient(identity.KeySigner{K: m.Operator}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	logs, err := cl.SubscribeLogs(ctx, api.LogFilter{Node: n1.ID()})
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	failures, err := cl.SubscribeFailures(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer failures.Close()
	waitFor(t, ctx, "a log record from N1", logs.C(), func(r api.LogRecord) bool { return r.Node == n1.ID() })

	// A commit from behind the gateway lands on every node.
	if _, err := cl.Admin().Cordon(ctx, n2.ID()); err != nil {
		t.Fatalf("cordon from the far console: %v", err)
	}
	for _, nd := range []*node.Node{g, n1, n2} {
		nodetest.Eventually(t, "the cordon on "+nd.ID().String(), func() bool {
			nv := nd.Cluster().Node(n2.ID())
			return nv != nil && nv.Cordoned
		})
	}
	recs, err := cl.Audit().Recent(5).Collect(ctx)
	if err != nil || len(recs) == 0 || recs[0].Action.Verb != api.VerbCordon {
		t.Fatalf("the far console's audit: %+v, %v", recs, err)
	}

	// A drain N1 cannot finish in time fails on N1; the failure reaches
	// the far console through the relay.
	nodetest.Eventually(t, "daemons placed on N1", func() bool {
		nv := far.Cluster().Node(n1.ID())
		return nv != nil && len(nv.Daemons) > 0
	})
	if _, err := cl.Admin().EnterMaintenance(ctx, n1.ID(), time.Millisecond); err != nil {
		t.Fatalf("drain from the far console: %v", err)
	}
	waitFor(t, ctx, "N1's drain failure", failures.C(), func(f api.FailureRecord) bool {
		return f.Node == n1.ID() && f.Source == "maintenance"
	})
}

// peerOf is how node self (in its own snapshot) sees peer.
func peerOf(cs *snapshot.ClusterSnapshot, self, peer identity.NodeID) *snapshot.PeerView {
	nv := cs.Node(self)
	if nv == nil {
		return nil
	}
	for i := range nv.Peers {
		if nv.Peers[i].Peer == peer {
			return &nv.Peers[i]
		}
	}
	return nil
}

// waitFor reads ch until a value matches or ctx ends.
func waitFor[T any](t *testing.T, ctx context.Context, what string, ch <-chan T, match func(T) bool) {
	t.Helper()
	for {
		select {
		case v := <-ch:
			if match(v) {
				return
			}
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
	}
}
