// Package testmesh starts real nodes on the in-process network (memnet)
// for tests: one cluster, one operator (alice) who certifies the nodes
// she is asked to, the demo's workload catalogue. The nodes are the real
// thing — Noise sessions, Badger in temp dirs, signatures, placement — and
// only the wire is in memory, so a test reads what a mesh does without
// paying for UDP sockets and without depending on the host's network.
// Tests that need a real socket or real faults use UDP and demo/faultconn.
package testmesh

import (
	"context"
	"testing"
	"time"

	"github.com/deck-mesh/deck/demo/workloads"
	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/transport/memnet"
)

// LinkLatency is the default one-way latency of every memnet link.
const LinkLatency = time.Millisecond

// Mesh is a cluster of real nodes on one in-process network.
type Mesh struct {
	TB      testing.TB
	Net     *memnet.Network
	Cluster *config.Cluster
	// Operator is alice, the cluster's one genesis operator.
	Operator *identity.Key
	Nodes    []*node.Node
}

// New is an empty mesh of cluster name; everything it starts is closed
// when the test ends.
func New(tb testing.TB, name string) *Mesh {
	tb.Helper()
	op, err := identity.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	cl, err := config.NewCluster(name, nil, []config.Operator{config.NewOperator("alice", op.Public)}, 1, 1)
	if err != nil {
		tb.Fatal(err)
	}
	n := memnet.New(memnet.Link{Latency: LinkLatency})
	tb.Cleanup(n.Close)
	return &Mesh{TB: tb, Net: n, Cluster: cl, Operator: op}
}

// Member says how to start one node.
type Member struct {
	Label string
	// Uncertified starts the node without a certificate: it holds the PSK
	// and stays pending until an operator admits it.
	Uncertified bool
	// Console starts an observer (a console's node), certified as one.
	Console bool
	// Subnet is the node's subnet path (certified with it). A node of a
	// subnet joins through the first node started in it, or the first
	// gateway when it is the subnet's first.
	Subnet string
	// Gateway gives the node the gateway capability; a gateway also joins
	// through the first gateway started, linking the subnets.
	Gateway bool
	// Edit, when set, adjusts the options last (a clock, a certificate,
	// timers).
	Edit func(*node.Options)
}

// Start runs a node that joins through the first one started.
func (m *Mesh) Start(mb Member) *node.Node {
	m.TB.Helper()
	conn, err := m.Net.Listen()
	if err != nil {
		m.TB.Fatal(err)
	}
	opts := node.Options{
		Cluster: m.Cluster, DataDir: m.TB.TempDir(), Label: mb.Label, Conn: conn, Observer: mb.Console,
		Capabilities: []string{"gpu", "edge", "datafort"}, Spec: workloads.Spec(), Factories: workloads.Factories(),
		Version: "test", Bootstrap: []string{},
	}
	opts.Subnet = mb.Subnet
	if mb.Gateway {
		opts.Capabilities = append(opts.Capabilities, node.CapabilityGateway)
	}
	switch {
	case mb.Subnet != "" || mb.Gateway:
		opts.Bootstrap = m.subnetBootstrap(mb)
	case len(m.Nodes) > 0:
		opts.Bootstrap = []string{m.Nodes[0].Addr()}
	}
	if !mb.Uncertified {
		opts.CertifyWith = identity.KeySigner{K: m.Operator}
	}
	if mb.Edit != nil {
		mb.Edit(&opts)
	}
	nd, err := node.Start(context.Background(), opts)
	if err != nil {
		m.TB.Fatal(err)
	}
	m.TB.Cleanup(func() { nd.Close() })
	m.Nodes = append(m.Nodes, nd)
	return nd
}

// Client is an api.Client on nd signing as the operator.
func (m *Mesh) Client(nd *node.Node) *node.Client {
	m.TB.Helper()
	c, err := nd.NewClient(identity.KeySigner{K: m.Operator}, "alice")
	if err != nil {
		m.TB.Fatal(err)
	}
	return c
}

// subnetBootstrap is where a node of a carved mesh joins: the first node
// of its subnet, and for a gateway (or a subnet's first node) the first
// gateway.
func (m *Mesh) subnetBootstrap(mb Member) []string {
	out := []string{}
	for _, nd := range m.Nodes {
		if nd.Subnet() == mb.Subnet {
			out = append(out, nd.Addr())
			break
		}
	}
	if mb.Gateway || len(out) == 0 {
		for _, nd := range m.Nodes {
			if nd.IsGateway() {
				if len(out) == 0 || out[0] != nd.Addr() {
					out = append(out, nd.Addr())
				}
				break
			}
		}
	}
	return out
}
