package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/deck-mesh/deck/demo/faultconn"
	"github.com/deck-mesh/deck/demo/workloads"
	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/meshos"
	"github.com/deck-mesh/deck/node/nodetest"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/node/transport"
)

// testMesh is n real nodes on loopback sharing one cluster, plus the
// operator key registered in its genesis. Each node's UDP socket is
// wrapped in the demo's fault wrapper so tests can cut its links.
type testMesh struct {
	cluster *config.Cluster
	op      *identity.Key
	nodes   []*node.Node
	faults  map[identity.NodeID]*faultconn.Conn
}

// block cuts (or heals) the link between x and y at both ends.
func (m *testMesh) block(x, y *node.Node, cut bool) {
	m.faults[x.ID()].Block(y.ID(), cut)
	m.faults[y.ID()].Block(x.ID(), cut)
}

func startMesh(t *testing.T, n int) *testMesh {
	t.Helper()
	return startMeshWith(t, n, meshos.Timers{})
}

// startMeshWith starts n nodes with MeshOS timers tm (zero: defaults).
func startMeshWith(t *testing.T, n int, tm meshos.Timers) *testMesh {
	t.Helper()
	op, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := config.NewCluster("test", nil, []config.Operator{config.NewOperator("alice", op.Public)}, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	m := &testMesh{cluster: cl, op: op, faults: map[identity.NodeID]*faultconn.Conn{}}
	ctx := context.Background()
	for i := 0; i < n; i++ {
		opts := node.Options{
			Cluster: cl, DataDir: t.TempDir(), Label: "n" + string(rune('1'+i)),
			Capabilities: workloads.NodeCapabilities(i, n), Spec: workloads.Spec(),
			Factories: workloads.Factories(), Version: "test", MeshOS: tm,
			CertifyWith: identity.KeySigner{K: op},
		}
		if i > 0 {
			opts.Bootstrap = []string{m.nodes[0].Addr()}
		}
		udp, err := transport.ListenUDP("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		fc := faultconn.New(udp)
		opts.Conn = fc
		nd, err := node.Start(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nd.Close() })
		m.nodes = append(m.nodes, nd)
		m.faults[nd.ID()] = fc
	}
	return m
}

func healthyCount(cs *snapshot.ClusterSnapshot) int {
	c := 0
	for _, nv := range cs.Nodes {
		if nv.Health == snapshot.Healthy && !nv.Stale {
			c++
		}
	}
	return c
}

func TestThreeNodesConvergeAndCordon(t *testing.T) {
	m := startMesh(t, 3)
	for _, nd := range m.nodes {
		nd := nd
		nodetest.Eventually(t, "3 healthy nodes", func() bool { return healthyCount(nd.Cluster()) == 3 })
	}
	// An uncarved mesh is one subnet, the root, rolled up from the view.
	nodetest.Eventually(t, "the root subnet's rollup counts the three nodes", func() bool {
		subs := m.nodes[0].Cluster().Subnets
		return len(subs) == 1 && subs[0].Path == "" && subs[0].Local && subs[0].Detailed && subs[0].Nodes[snapshot.Healthy] == 3
	})
	cl, err := m.nodes[0].NewClient(identity.KeySigner{K: m.op}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, why := cl.Operator(); !ok {
		t.Fatalf("operator not registered: %s", why)
	}
	target := m.nodes[2].ID()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cl.Admin().Cordon(ctx, target); err != nil {
		t.Fatalf("cordon: %v", err)
	}
	for _, nd := range m.nodes {
		nd := nd
		nodetest.Eventually(t, "cordon visible on every node", func() bool {
			nv := nd.Cluster().Node(target)
			return nv != nil && nv.Cordoned
		})
	}
	recs, err := cl.Audit().Recent(10).Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Action.Verb != api.VerbCordon || recs[0].Outcome != api.Accepted {
		t.Fatalf("audit = %+v", recs)
	}
}
