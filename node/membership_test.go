package node_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/deck-mesh/deck/demo/workloads"
	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/nodetest"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/node/testmesh"
	"github.com/deck-mesh/deck/node/transport"
)

// newMemberMesh is a test mesh of cluster "members" (node/testmesh).
func newMemberMesh(t *testing.T) *testmesh.Mesh { return testmesh.New(t, "members") }

// start runs a node: certified says whether alice certifies it, observer
// makes it a console.
func start(m *testmesh.Mesh, label string, certified, observer bool) *node.Node {
	return m.Start(testmesh.Member{Label: label, Uncertified: !certified, Console: observer})
}

func member(cs *snapshot.ClusterSnapshot, id identity.NodeID) bool {
	nv := cs.Node(id)
	return nv != nil && nv.Health == snapshot.Healthy && !nv.Stale
}

func pendingIn(cs *snapshot.ClusterSnapshot, id identity.NodeID) *snapshot.PendingNode {
	for i := range cs.PendingNodes {
		if cs.PendingNodes[i].ID == id {
			return &cs.PendingNodes[i]
		}
	}
	return nil
}

// TestAttackUncertifiedNodeIsNotAMember: a node holding the PSK but no
// certificate completes its handshakes and is told why it is pending, but
// its snapshot is never folded, it is never a holder, and every member
// lists it as PENDING with the reason.
func TestAttackUncertifiedNodeIsNotAMember(t *testing.T) {
	m := newMemberMesh(t)
	a := start(m, "a", true, false)
	b := start(m, "b", true, false)
	nodetest.Eventually(t, "a and b to be members of each other", func() bool {
		return member(a.Cluster(), b.ID()) && member(b.Cluster(), a.ID())
	})
	intruder := start(m, "intruder", false, false)
	nodetest.Eventually(t, "the intruder to be listed as pending on a and b", func() bool {
		pa, pb := pendingIn(a.Cluster(), intruder.ID()), pendingIn(b.Cluster(), intruder.ID())
		return pa != nil && pb != nil && strings.Contains(pa.Reason, "no certificate")
	})
	nodetest.Eventually(t, "the intruder to hear it is pending", func() bool {
		_, why, ok := intruder.PendingHere()
		return ok && strings.Contains(why, "no certificate")
	})
	for _, nd := range []*node.Node{a, b} {
		cs := nd.Cluster()
		if nv := cs.Node(intruder.ID()); nv != nil {
			t.Fatalf("%s folds the uncertified node into its view: %+v", nd.ID(), nv.NodeSnapshot.Label)
		}
		for _, c := range cs.Chains {
			for _, h := range c.Holders {
				if h == intruder.ID() {
					t.Fatalf("the uncertified node holds chain %s", c.Name)
				}
			}
		}
	}
}

// TestPendingNodeAdmittedThenRevoked: an operator admits a pending node
// through the ledger (admit-node); it becomes a member everywhere without a
// restart. Revoked (revoke-node), it is cut off, listed pending with the
// reason, and told so.
func TestPendingNodeAdmittedThenRevoked(t *testing.T) {
	m := newMemberMesh(t)
	a := start(m, "a", true, false)
	b := start(m, "b", true, false)
	console := start(m, "console", true, true)
	newcomer := start(m, "newcomer", false, false)
	nodetest.Eventually(t, "the console to see the newcomer pending", func() bool {
		return member(console.Cluster(), a.ID()) && member(console.Cluster(), b.ID()) && pendingIn(console.Cluster(), newcomer.ID()) != nil
	})
	cl := m.Client(console)
	p := pendingIn(console.Cluster(), newcomer.ID())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	br, err := cl.Preview(ctx, api.Action{Verb: api.VerbAdmitNode, Node: p.ID, OperatorKey: p.Key})
	if err != nil {
		t.Fatal(err)
	}
	if len(br.Nodes) != 1 || br.Nodes[0] != newcomer.ID() {
		t.Fatalf("admit blast radius names %v", br.Nodes)
	}
	if _, err := cl.Admin().Commit(ctx, br.Action); err != nil {
		t.Fatalf("admit: %v", err)
	}
	nodetest.Eventually(t, "the admitted node to be a healthy member on a, b and the console", func() bool {
		return member(a.Cluster(), newcomer.ID()) && member(b.Cluster(), newcomer.ID()) && member(console.Cluster(), newcomer.ID()) &&
			pendingIn(a.Cluster(), newcomer.ID()) == nil
	})
	if _, err := cl.Admin().Commit(ctx, api.Action{Verb: api.VerbRevokeNode, Node: newcomer.ID()}); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	nodetest.Eventually(t, "the revoked node to leave every view and show as pending, revoked", func() bool {
		for _, nd := range []*node.Node{a, b} {
			cs := nd.Cluster()
			if cs.Node(newcomer.ID()) != nil {
				return false
			}
			if p := pendingIn(cs, newcomer.ID()); p == nil || !strings.Contains(p.Reason, "revoked") {
				return false
			}
		}
		return true
	})
	nodetest.Eventually(t, "the revoked node to hear it is revoked", func() bool {
		_, why, ok := newcomer.PendingHere()
		return ok && strings.Contains(why, "revoked")
	})
}

// TestAttackMintedIdentitiesCannotFillPeerTable: a PSK holder mints
// hundreds of identities and completes a handshake with each. None enters
// the member's peer table or cluster view (they queue in the bounded
// pending table), and a genuine node that joins afterwards is admitted.
func TestAttackMintedIdentitiesCannotFillPeerTable(t *testing.T) {
	m := newMemberMesh(t)
	victim := start(m, "victim", true, false)
	psk, err := m.Cluster.PSKBytes()
	if err != nil {
		t.Fatal(err)
	}
	const minted = 4 * transport.MaxPendingPeers
	mintedIDs := map[identity.NodeID]bool{}
	for range minted {
		k, err := identity.Generate()
		if err != nil {
			t.Fatal(err)
		}
		conn, err := m.Net.Listen()
		if err != nil {
			t.Fatal(err)
		}
		tr, err := transport.New(transport.Config{Key: k, PSK: psk, Conn: conn, Bootstrap: []string{victim.Addr()}})
		if err != nil {
			t.Fatal(err)
		}
		tr.Start(context.Background())
		t.Cleanup(func() { tr.Close() })
		mintedIDs[k.ID] = true
	}
	// A node reports the most recently seen of its pending peers (16).
	nodetest.Eventually(t, "the victim to list minted identities as pending", func() bool {
		return len(victim.Cluster().PendingNodes) >= 8
	})
	genuine := start(m, "genuine", true, false)
	nodetest.Eventually(t, "a genuine node joining after the flood to be a healthy member", func() bool {
		return member(victim.Cluster(), genuine.ID()) && member(genuine.Cluster(), victim.ID())
	})
	cs := victim.Cluster()
	for _, nv := range cs.Nodes {
		if mintedIDs[nv.ID] {
			t.Fatalf("minted identity %s is in the victim's view", nv.ID)
		}
	}
	if len(cs.PendingNodes) > transport.MaxPendingPeers+16 {
		t.Fatalf("%d pending nodes: the pending table is not bounded", len(cs.PendingNodes))
	}
}

// TestConsoleCertificateNeverHolds: a node certified as a console that
// claims capabilities is still never placed on.
func TestConsoleCertificateNeverHolds(t *testing.T) {
	m := newMemberMesh(t)
	a := start(m, "a", true, false)
	// A console whose node claims to host (Observer false) but whose
	// certificate says console.
	conn, err := m.Net.Listen()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	c, err := identity.NewNodeCertificate(identity.KeySigner{K: m.Operator}, m.Cluster.Name, cert.Public, identity.RoleConsole, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sneaky, err := node.Start(context.Background(), node.Options{
		Cluster: m.Cluster, Key: cert, Certificate: c, DataDir: t.TempDir(), Label: "sneaky", Conn: conn,
		Capabilities: []string{"gpu", "edge", "datafort"}, Spec: workloads.Spec(), Factories: workloads.Factories(),
		Version: "test", Bootstrap: []string{a.Addr()},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sneaky.Close() })
	nodetest.Eventually(t, "a to see the console-certified node as an observer", func() bool {
		nv := a.Cluster().Node(sneaky.ID())
		return nv != nil && nv.Observer && nv.Health == snapshot.Healthy
	})
	// a places everything on itself: the console-certified node gets none.
	nodetest.Eventually(t, "a to run the workload", func() bool {
		return len(a.Cluster().Node(a.ID()).Daemons) > 0
	})
	if nv := a.Cluster().Node(sneaky.ID()); len(nv.Daemons) > 0 || len(nv.Replicas) > 0 {
		t.Fatalf("a console-certified node holds %d daemons and %d replicas", len(nv.Daemons), len(nv.Replicas))
	}
}
