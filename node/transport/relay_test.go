package transport

import (
	"bytes"
	"net/netip"
	"sync"
	"testing"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/mesh"
	"github.com/deck-mesh/deck/node/wire"
)

// line builds A–B–C on an in-process network: A and C join through B and
// their own link is partitioned, so the only path between them is the
// relay B. B's socket is tapped.
func line(t *testing.T) (a, b, c *Transport, bTap *tapConn) {
	t.Helper()
	n := newMemnet(t)
	cb := onMemnet(t, n, testConfig(t, nil))
	bTap = tapped(t, &cb)
	b = startNode(t, cb)
	ca := onMemnet(t, n, testConfig(t, nil, b.LocalAddr()))
	cc := onMemnet(t, n, testConfig(t, nil, b.LocalAddr()))
	n.Partition(ca.Conn.LocalAddr(), cc.Conn.LocalAddr(), true)
	return startNode(t, ca), b, startNode(t, cc), bTap
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
	a, b, c, bTap := line(t)
	var mu sync.Mutex
	var forwarded [][]byte
	// What B sends that it did not originate is what it relays.
	tap := func(_ netip.AddrPort, pkt []byte) {
		var h wire.Header
		if h.Parse(pkt) != nil || h.Src == b.Self() {
			return
		}
		mu.Lock()
		forwarded = append(forwarded, bytes.Clone(pkt))
		mu.Unlock()
	}
	bTap.onWrite.Store(&tap)
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
