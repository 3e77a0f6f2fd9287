package transport

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/mesh"
	"github.com/deck-mesh/deck/node/transport/memnet"
)

// TestMeshOverMemnet runs real Transports (Noise handshakes, routing,
// heartbeats) on the in-process network: every node joins through the
// first, discovers the rest and reaches each of them.
func TestMeshOverMemnet(t *testing.T) {
	const nodes = 8
	n := memnet.New(memnet.Link{Latency: 2 * time.Millisecond})
	t.Cleanup(n.Close)
	var trs []*Transport
	for i := range nodes {
		var boot []string
		if i > 0 {
			boot = []string{trs[0].LocalAddr()}
		}
		trs = append(trs, startNode(t, onMemnet(t, n, testConfig(t, nil, boot...))))
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	for _, tr := range trs {
		if err := tr.WaitForPeers(ctx, nodes-1); err != nil {
			t.Fatalf("%s: %v", tr.Self(), err)
		}
	}
	for i, from := range trs {
		to := trs[(i+3)%nodes]
		in := newInbox(to, mesh.ChanGossip)
		sendUntil(t, from, to.Self(), mesh.ChanGossip, fmt.Appendf(nil, "from %d", i), in)
		to.Handle(mesh.ChanGossip, nil)
	}
	if s := n.Stats(); s.Delivered == 0 || s.Partitioned != 0 {
		t.Fatalf("network stats %+v", s)
	}
}

// TestPartitionedLinkFailsOverToRelay cuts the direct link between two
// nodes of a triangle: traffic between them moves to the relay through the
// third, and back to the direct link when it heals.
func TestPartitionedLinkFailsOverToRelay(t *testing.T) {
	n := newMemnet(t)
	b := startNode(t, onMemnet(t, n, testConfig(t, nil)))
	a := startNode(t, onMemnet(t, n, testConfig(t, nil, b.LocalAddr())))
	c := startNode(t, onMemnet(t, n, testConfig(t, nil, b.LocalAddr())))
	eventually(t, "A and C direct neighbours", func() bool {
		p, _ := peerInfo(a, c.Self())
		return p.Direct && p.Health == mesh.Healthy
	})
	in := newInbox(c, mesh.ChanGossip)
	sendUntil(t, a, c.Self(), mesh.ChanGossip, []byte("direct"), in)

	n.Partition(addrOf(a), addrOf(c), true)
	eventually(t, "A routes to C through B", func() bool {
		r, ok := a.routes.lookup(c.Self())
		p, _ := peerInfo(a, c.Self())
		return ok && r.NextHop == b.Self() && !p.Direct
	})
	forwarded := b.Stats().Forwarded
	sendUntil(t, a, c.Self(), mesh.ChanGossip, []byte("relayed"), in)
	if b.Stats().Forwarded == forwarded {
		t.Fatal("B forwarded nothing: the message did not take the relay")
	}

	n.Partition(addrOf(a), addrOf(c), false)
	eventually(t, "A and C direct again", func() bool {
		p, _ := peerInfo(a, c.Self())
		r, ok := a.routes.lookup(c.Self())
		return p.Direct && ok && r.NextHop == c.Self()
	})
}
