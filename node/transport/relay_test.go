package transport

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/mesh"
)

// line builds A–B–C: A and C join through B and block each other, so the
// only path between them is the relay B.
func line(t *testing.T) (a, b, c *Transport) {
	t.Helper()
	b = startNode(t, testConfig(t, nil))
	ka, kc := mustKey(t), mustKey(t)
	ta, err := New(testConfig(t, ka, b.LocalAddr()))
	if err != nil {
		t.Fatal(err)
	}
	tc, err := New(testConfig(t, kc, b.LocalAddr()))
	if err != nil {
		t.Fatal(err)
	}
	ta.Block(kc.ID, true)
	tc.Block(ka.ID, true)
	ta.Start(context.Background())
	tc.Start(context.Background())
	t.Cleanup(func() { ta.Close(); tc.Close() })
	return ta, b, tc
}

func keyFingerprints(tr *Transport) map[[32]byte]identity.NodeID {
	tr.keysMu.RLock()
	defer tr.keysMu.RUnlock()
	out := make(map[[32]byte]identity.NodeID)
	for _, kp := range tr.keys {
		out[kp.Fingerprint()] = kp.Peer
	}
	return out
}

func TestLineRelayCarriesOnlyCiphertext(t *testing.T) {
	a, b, c := line(t)
	var mu sync.Mutex
	var forwarded [][]byte
	tap := func(pkt []byte) {
		mu.Lock()
		forwarded = append(forwarded, bytes.Clone(pkt))
		mu.Unlock()
	}
	b.tapForward.Store(&tap)
	inC := newInbox(c, mesh.ChanGossip)

	eventually(t, "A has a route to C through B", func() bool {
		r, ok := a.routes.lookup(c.Self())
		return ok && r.NextHop == b.Self()
	})
	marker := []byte("PLAINTEXT-MARKER-a-to-c-7f3d")
	sendUntil(t, a, c.Self(), mesh.ChanGossip, marker, inC)
	if got := inC.msgs[0].from; got != a.Self() {
		t.Fatalf("C got the message from %s, want A %s", got, a.Self())
	}
	// A 4 KiB message crosses the relay fragmented.
	big := bytes.Repeat(marker, 4096/len(marker)+1)
	sendUntil(t, a, c.Self(), mesh.ChanGossip, big, inC)

	if pi, _ := peerInfo(a, c.Self()); pi.Direct || pi.NextHop != b.Self() {
		t.Fatalf("A sees C as %+v, want relayed via B", pi)
	}
	a.mu.Lock()
	acSession := a.peers[c.Self()].current.Fingerprint()
	a.mu.Unlock()
	c.mu.Lock()
	if c.peers[a.Self()].current.Fingerprint() != acSession {
		t.Fatal("A and C disagree on their session")
	}
	c.mu.Unlock()
	if peer, ok := keyFingerprints(b)[acSession]; ok {
		t.Fatalf("relay B holds the A<->C session keys (as its session with %s)", peer)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(forwarded) == 0 {
		t.Fatal("B forwarded nothing: the test did not exercise the relay")
	}
	for _, pkt := range forwarded {
		if bytes.Contains(pkt, marker) || bytes.Contains(pkt, marker[:12]) {
			t.Fatal("relay B saw the plaintext marker")
		}
	}
	if b.Stats().Forwarded == 0 {
		t.Fatal("B's Forwarded counter did not move")
	}
}
