package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/flynn/noise"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/session"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/node/wire"
)

// pair starts A and B, A joined through B, and waits for their session.
func pair(t *testing.T) (a, b *Transport) {
	a, b, _ = tappedPair(t)
	return a, b
}

// tappedPair is pair with B's socket tapped.
func tappedPair(t *testing.T) (a, b *Transport, bTap *tapConn) {
	t.Helper()
	cb := testConfig(t, nil)
	bTap = tapped(t, &cb)
	b = startNode(t, cb)
	a = startNode(t, testConfig(t, nil, b.LocalAddr()))
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := a.WaitForPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitForPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	return a, b, bTap
}

// capture records datagrams arriving at a tapped socket that match keep.
type capture struct {
	mu   sync.Mutex
	pkts [][]byte
}

func tapIn(tc *tapConn, keep func(h *wire.Header) bool) *capture {
	c := &capture{}
	f := func(_ netip.AddrPort, pkt []byte) {
		var h wire.Header
		if h.Parse(pkt) == nil && keep(&h) {
			c.mu.Lock()
			c.pkts = append(c.pkts, bytes.Clone(pkt))
			c.mu.Unlock()
		}
	}
	tc.onRead.Store(&f)
	return c
}

func (c *capture) first() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pkts) == 0 {
		return nil
	}
	return c.pkts[0]
}

// attacker is a raw UDP socket on loopback.
func attacker(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func inject(t *testing.T, c *net.UDPConn, to *Transport, pkt []byte) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort(pkt, to.local); err != nil {
		t.Fatal(err)
	}
}

func currentFingerprint(tr *Transport, id identity.NodeID) [32]byte {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if p := tr.peers[id]; p != nil && p.current != nil {
		return p.current.Fingerprint()
	}
	return [32]byte{}
}

func TestReplayedDataPacketIsRejected(t *testing.T) {
	a, b, bTap := tappedPair(t)
	cap := tapIn(bTap, func(h *wire.Header) bool {
		return h.Type == wire.TypeData && h.Channel == uint16(messaging.ChanGossip)
	})
	in := newInbox(b, messaging.ChanGossip)
	msg := []byte("deliver me once")
	sendUntil(t, a, b.Self(), messaging.ChanGossip, msg, in)
	pkt := cap.first()
	if pkt == nil {
		t.Fatal("no data packet captured")
	}
	before := b.Stats().ReplaysRejected
	evil := attacker(t)
	for range 3 {
		inject(t, evil, b, pkt)
	}
	eventually(t, "replays rejected", func() bool { return b.Stats().ReplaysRejected >= before+3 })
	// A later genuine message is the barrier: the replays were processed
	// before it, so the count below is final.
	sendUntil(t, a, b.Self(), messaging.ChanGossip, []byte("barrier"), in)
	if n := in.count(msg); n != 1 {
		t.Fatalf("message delivered %d times", n)
	}
}

func TestReplayedHandshakeCannotReplaceSession(t *testing.T) {
	cb := testConfig(t, nil)
	bTap := tapped(t, &cb)
	b := startNode(t, cb)
	inits, finals := &capture{}, &capture{}
	f := func(_ netip.AddrPort, pkt []byte) {
		var h wire.Header
		if h.Parse(pkt) != nil {
			return
		}
		c := inits
		if h.Type == wire.TypeHandshakeFinal {
			c = finals
		} else if h.Type != wire.TypeHandshakeInit {
			return
		}
		c.mu.Lock()
		c.pkts = append(c.pkts, bytes.Clone(pkt))
		c.mu.Unlock()
	}
	bTap.onRead.Store(&f)
	a := startNode(t, testConfig(t, nil, b.LocalAddr()))
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := b.WaitForPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	in := newInbox(b, messaging.ChanGossip)
	sendUntil(t, a, b.Self(), messaging.ChanGossip, []byte("before"), in)
	live := currentFingerprint(b, a.Self())
	msg1, msg3 := inits.first(), finals.first()
	if msg1 == nil || msg3 == nil {
		t.Fatal("handshake messages not captured")
	}

	evil := attacker(t)
	inject(t, evil, b, msg1)
	// B answers a replayed message 1 (it cannot tell), but nobody can finish
	// that handshake: reading the answer proves it was processed.
	evil.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2048)
	n, err := evil.Read(buf)
	if err != nil {
		t.Fatalf("no answer to replayed message 1: %v", err)
	}
	var h wire.Header
	if h.Parse(buf[:n]) != nil || h.Type != wire.TypeHandshakeResp {
		t.Fatalf("unexpected answer %v", h.String())
	}
	// Replay message 3 as well: its responder state is gone (one shot).
	inject(t, evil, b, msg3)
	sendUntil(t, a, b.Self(), messaging.ChanGossip, []byte("after"), in)
	if got := currentFingerprint(b, a.Self()); got != live {
		t.Fatal("a replayed handshake replaced the live session")
	}
}

// rawInitiate runs the initiator side of a handshake from a raw socket
// with static s, claiming src in the header; it returns once message 3 is
// sent (or the responder refused message 2's check on our side).
func rawInitiate(t *testing.T, s *session.Static, src identity.NodeID, to *Transport) {
	t.Helper()
	c := attacker(t)
	i, msg1, err := s.Initiate(77, 0)
	if err != nil {
		t.Fatal(err)
	}
	send := func(typ wire.Type, recv uint32, nm []byte) {
		h := wire.Header{Version: wire.Version, Type: typ, Src: src, Dst: to.Self(), Counter: 1, TTL: wire.DefaultTTL}
		inject(t, c, to, sealedHandshake(testPSK, h, wire.Handshake{SenderIndex: 77, ReceiverIndex: recv, Noise: nm}, nil))
	}
	send(wire.TypeHandshakeInit, 0, msg1)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no message 2: %v", err)
	}
	var hb wire.Handshake
	if err := wire.ParseHandshake(buf[wire.HeaderSize:n], &hb); err != nil {
		t.Fatal(err)
	}
	msg3, _, err := i.Finish(hb.Noise, hb.SenderIndex, time.Now())
	if err != nil {
		t.Fatalf("attacker could not even finish its side: %v", err)
	}
	send(wire.TypeHandshakeFinal, hb.SenderIndex, msg3)
}

func newDHKey(t *testing.T) (noise.DHKey, [32]byte) {
	t.Helper()
	dh, err := noise.DH25519.GenerateKeypair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var pub [32]byte
	copy(pub[:], dh.Public)
	return dh, pub
}

// resign signs rec as it stands with k.
func resign(k *identity.Key, rec *identity.NodeRecord) *identity.NodeRecord {
	signed := append([]byte(identity.NodeRecordPrefix), rec.Marshal()[:identity.NodeRecordSize-64]...)
	out := *rec
	out.Signature = k.Sign(signed)
	return &out
}

// attackLiveVictim runs one identity attack against B while the victim A
// holds a live session with B, and checks B refused it and kept A's session.
func attackLiveVictim(t *testing.T, forge func(victim *Transport) (*session.Static, identity.NodeID)) {
	a, b := pair(t)
	in := newInbox(b, messaging.ChanGossip)
	sendUntil(t, a, b.Self(), messaging.ChanGossip, []byte("before"), in)
	live := currentFingerprint(b, a.Self())
	before := b.Stats().AuthFailures

	s, src := forge(a)
	rawInitiate(t, s, src, b)
	eventually(t, "B counts an auth failure", func() bool { return b.Stats().AuthFailures > before })

	sendUntil(t, a, b.Self(), messaging.ChanGossip, []byte("after"), in)
	if currentFingerprint(b, a.Self()) != live {
		t.Fatal("the attack replaced the victim's session")
	}
	for _, p := range b.Peers() {
		if p.ID != a.Self() && p.Health == snapshot.Healthy {
			t.Fatalf("B accepted a peer %s from the attack", p.ID)
		}
	}
}

func TestAttackSignatureByAnotherKey(t *testing.T) {
	attackLiveVictim(t, func(victim *Transport) (*session.Static, identity.NodeID) {
		evil := mustKey(t)
		dh, pub := newDHKey(t)
		// Signed by the attacker, claiming the victim's key and id.
		rec := identity.NewNodeRecord(evil, pub, time.Now().UnixMilli())
		rec.ID, rec.SigningKey = victim.Self(), victim.cfg.Key.Public
		return session.NewStaticWith(evil, dh, rec, testPSK), victim.Self()
	})
}

func TestAttackNoiseStaticNotMatchingRecord(t *testing.T) {
	attackLiveVictim(t, func(victim *Transport) (*session.Static, identity.NodeID) {
		dh, _ := newDHKey(t)
		// The victim's genuine record, presented with the attacker's Noise key.
		return session.NewStaticWith(victim.cfg.Key, dh, victim.static.Record, testPSK), victim.Self()
	})
}

func TestAttackNodeIDOfLiveVictim(t *testing.T) {
	attackLiveVictim(t, func(victim *Transport) (*session.Static, identity.NodeID) {
		evil := mustKey(t)
		dh, pub := newDHKey(t)
		rec := identity.NewNodeRecord(evil, pub, time.Now().UnixMilli())
		rec.ID = victim.Self() // valid signature by evil, id not derived from it
		return session.NewStaticWith(evil, dh, resign(evil, rec), testPSK), victim.Self()
	})
}

// TestAttackWrongPSK: Noise's own PSK check at message 3 holds even for a
// sender that could make mac1 (as if the mac1 key leaked without the PSK);
// a sender without either is refused at mac1 (see
// TestAttackHandshakeWithoutPSKAllocatesNothing).
func TestAttackWrongPSK(t *testing.T) {
	attackLiveVictim(t, func(victim *Transport) (*session.Static, identity.NodeID) {
		evil := mustKey(t)
		s, err := session.NewStatic(evil, [32]byte{0xba, 0xd})
		if err != nil {
			t.Fatal(err)
		}
		return s, evil.ID
	})
}

// TestWrongPSKNodeCannotJoin: a real node with the wrong PSK never gets a
// session; its Send fails with ErrHandshake.
func TestWrongPSKNodeCannotJoin(t *testing.T) {
	b := startNode(t, testConfig(t, nil))
	cfg := testConfig(t, nil, b.LocalAddr())
	cfg.PSK = [32]byte{0xff}
	cfg.HandshakeTimeout = time.Second
	a := startNode(t, cfg)
	eventually(t, "B refuses the wrong PSK", func() bool { return b.Stats().HandshakeMAC1Failures > 0 })
	if len(b.Peers()) != 0 {
		t.Fatalf("B knows peers %v", b.Peers())
	}
	if n := a.healthyPeers(); n != 0 {
		t.Fatalf("A has %d healthy peers", n)
	}
}

func TestHandshakeFloodIsRateLimited(t *testing.T) {
	b := startNode(t, testConfig(t, nil))
	s, err := session.NewStatic(mustKey(t), testPSK)
	if err != nil {
		t.Fatal(err)
	}
	_, msg1, _ := s.Initiate(5, 0)
	h := wire.Header{Version: wire.Version, Type: wire.TypeHandshakeInit, Src: s.Key.ID, Counter: 1, TTL: wire.DefaultTTL}
	pkt := sealedHandshake(testPSK, h, wire.Handshake{SenderIndex: 5, Noise: msg1}, nil)
	evil := attacker(t)
	for range 3 * HandshakeBurstPerSource {
		inject(t, evil, b, pkt)
	}
	eventually(t, "handshakes rate limited", func() bool { return b.Stats().HandshakesRateLimited > 0 })
}
