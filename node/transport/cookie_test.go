package transport

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/session"
	"github.com/deck-mesh/deck/node/wire"
)

// sealedHandshake encodes a handshake packet as a sender holding psk
// would: header, body and macs (mac2 keyed by cookie when it is set).
func sealedHandshake(psk [32]byte, h wire.Header, hb wire.Handshake, cookie *[wire.CookieBytes]byte) []byte {
	pkt := make([]byte, wire.HeaderSize, wire.MaxPacketBytes)
	h.Encode(pkt)
	pkt = wire.AppendHandshake(pkt, &hb)
	newHandshakeMACs(psk).seal(pkt, cookie)
	return pkt
}

// rawInitiator is a raw UDP socket that holds the PSK (or not) and sends
// real Noise message 1s, as an attacker or a bare client would: it can
// compute mac1 and answer cookie replies, since its address is real.
type rawInitiator struct {
	c      *net.UDPConn
	psk    [32]byte
	index  uint32
	header wire.Header
	noise  []byte
}

func newRawInitiator(t testing.TB, psk [32]byte, s *session.Static, index uint32, to *Transport) *rawInitiator {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_, msg1, err := s.Initiate(index, 0)
	if err != nil {
		t.Fatal(err)
	}
	return &rawInitiator{
		c: c, psk: psk, index: index, noise: msg1,
		header: wire.Header{Version: wire.Version, Type: wire.TypeHandshakeInit, Src: s.Key.ID, Dst: to.Self(), Counter: uint64(index), TTL: wire.DefaultTTL},
	}
}

func (r *rawInitiator) addr() netip.AddrPort {
	return r.c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// message1 is the initiator's message 1, with mac2 under cookie when set.
func (r *rawInitiator) message1(cookie *[wire.CookieBytes]byte) []byte {
	return sealedHandshake(r.psk, r.header, wire.Handshake{SenderIndex: r.index, Noise: r.noise}, cookie)
}

// read returns the next datagram the socket receives, with its header.
func (r *rawInitiator) read(t testing.TB) (wire.Header, []byte) {
	t.Helper()
	r.c.SetReadDeadline(time.Now().Add(waitLong))
	buf := make([]byte, wire.MaxPacketBytes+1)
	n, err := r.c.Read(buf)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	var h wire.Header
	if err := h.Parse(buf[:n]); err != nil {
		t.Fatalf("unparseable answer: %v", err)
	}
	return h, buf[:n]
}

// cookieFrom opens a cookie reply to a message 1 of ours whose mac1 is
// given.
func (r *rawInitiator) cookieFrom(t testing.TB, pkt, mac1 []byte) [wire.CookieBytes]byte {
	t.Helper()
	var cr wire.CookieReply
	if err := wire.ParseCookieReply(pkt[wire.HeaderSize:], &cr); err != nil {
		t.Fatal(err)
	}
	if cr.ReceiverIndex != r.index {
		t.Fatalf("cookie reply for index %d, ours is %d", cr.ReceiverIndex, r.index)
	}
	cookie, err := newHandshakeMACs(r.psk).openCookie(&cr, mac1)
	if err != nil {
		t.Fatal(err)
	}
	return cookie
}

func mac1Of(pkt []byte) []byte {
	m, _ := wire.HandshakeMACs(pkt)
	return m
}

func mustStatic(t testing.TB, psk [32]byte) *session.Static {
	t.Helper()
	s, err := session.NewStatic(mustKey(t), psk)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func respondersOf(tr *Transport) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.responders)
}

// loadResponder puts b under load the way a flood would: n real message 1s
// from n sources, each holding a slot (b's HandshakeTimeout must outlast
// the test so the slots do not expire).
func loadResponder(t *testing.T, b *Transport, n int) {
	t.Helper()
	s := mustStatic(t, testPSK)
	for i := range n {
		r := newRawInitiator(t, testPSK, s, uint32(1000+i), b)
		inject(t, r.c, b, r.message1(nil))
	}
	eventually(t, "the responder under load", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.underLoadLocked(time.Now())
	})
}

// TestAttackHandshakeWithoutPSKAllocatesNothing: message 1s whose mac1 was
// not made with the cluster PSK get no slot, no reply and no rate-limiter
// bucket. Before issue 12 a message 1 from anyone was answered with
// message 2 and held a slot until HandshakeTimeout.
func TestAttackHandshakeWithoutPSKAllocatesNothing(t *testing.T) {
	b := startNode(t, testConfig(t, nil))
	wrongPSK := [32]byte{0xba, 0xd}
	evil := newRawInitiator(t, wrongPSK, mustStatic(t, wrongPSK), 5, b)
	// More than a source's burst: were they charged to the rate limiter,
	// the genuine message below would be refused.
	bad := 3 * HandshakeBurstPerSource
	for range bad {
		inject(t, evil.c, b, evil.message1(nil))
	}
	// The same socket then sends a message 1 with a good mac1 (the same
	// Noise message): datagrams from one socket arrive in order, so the
	// first answer tells whether any bad one was answered.
	good := &rawInitiator{c: evil.c, psk: testPSK, index: 6, noise: evil.noise, header: evil.header}
	inject(t, evil.c, b, good.message1(nil))
	h, pkt := evil.read(t)
	var hb wire.Handshake
	if h.Type != wire.TypeHandshakeResp || wire.ParseHandshake(pkt[wire.HeaderSize:], &hb) != nil || hb.ReceiverIndex != good.index {
		t.Fatalf("first answer is %v (receiver %d), want message 2 to the good message 1", h.String(), hb.ReceiverIndex)
	}
	st := b.Stats()
	if st.HandshakeMAC1Failures != uint64(bad) || st.HandshakesRateLimited != 0 {
		t.Fatalf("mac1 failures %d (want %d), rate limited %d (want 0)", st.HandshakeMAC1Failures, bad, st.HandshakesRateLimited)
	}
	if n := respondersOf(b); n != 1 {
		t.Fatalf("%d responder slots, want 1 (the good message)", n)
	}
}

func TestCookieReplyRoundTrip(t *testing.T) {
	cb := testConfig(t, nil)
	cb.HandshakeTimeout = time.Minute // the slots that load it must not expire
	b := startNode(t, cb)
	loadResponder(t, b, ResponderLoadThreshold)

	// A bare initiator sees the whole exchange: message 1 without mac2
	// gets a cookie and no slot, the same message with mac2 gets message 2.
	r := newRawInitiator(t, testPSK, mustStatic(t, testPSK), 7, b)
	slots := respondersOf(b)
	first := r.message1(nil)
	inject(t, r.c, b, first)
	h, pkt := r.read(t)
	if h.Type != wire.TypeCookieReply || h.Src != b.Self() || h.Dst != r.header.Src {
		t.Fatalf("answer under load is %v, want a cookie reply from B to us", h.String())
	}
	if len(pkt) != wire.HeaderSize+wire.CookieReplyBytes || len(pkt) >= len(first) {
		t.Fatalf("cookie reply of %d bytes answering %d", len(pkt), len(first))
	}
	cookie := r.cookieFrom(t, pkt, mac1Of(first))
	if n := respondersOf(b); n != slots {
		t.Fatalf("a message 1 without mac2 took a slot under load (%d -> %d)", slots, n)
	}
	inject(t, r.c, b, r.message1(&cookie))
	if h, _ := r.read(t); h.Type != wire.TypeHandshakeResp {
		t.Fatalf("answer with mac2 is %v, want message 2", h.String())
	}
	if b.Stats().CookieRepliesSent == 0 {
		t.Fatal("cookie reply not counted")
	}

	// A real node joins the loaded responder: its initiator takes the
	// cookie and resends message 1 with mac2.
	before := b.Stats().CookieRepliesSent
	a := startNode(t, testConfig(t, nil, b.LocalAddr()))
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := a.WaitForPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if b.Stats().CookieRepliesSent == before {
		t.Fatal("the node joined without a cookie round trip: B was not under load")
	}
}

// TestCookieSecretRotation: a cookie makes valid mac2s only under the
// secret that made it, at most CookieSecretRotation; the next cookie asked
// for comes from a new secret.
func TestCookieSecretRotation(t *testing.T) {
	var c cookieSecret
	src := netip.MustParseAddrPort("192.0.2.1:4000")
	r := &rawInitiator{psk: testPSK, index: 1, noise: make([]byte, 32),
		header: wire.Header{Version: wire.Version, Type: wire.TypeHandshakeInit, Src: 9, TTL: wire.DefaultTTL}}
	t0 := time.Unix(1_000_000, 0)
	cookie := c.cookie(src, t0)
	pkt := r.message1(&cookie)
	if !c.checkMAC2(pkt, src, t0.Add(CookieSecretRotation-time.Second)) {
		t.Fatal("mac2 refused within the secret's lifetime")
	}
	if c.checkMAC2(pkt, netip.MustParseAddrPort("192.0.2.1:4001"), t0) {
		t.Fatal("mac2 accepted from another port")
	}
	if c.checkMAC2(r.message1(nil), src, t0) {
		t.Fatal("a zero mac2 accepted")
	}
	rotated := t0.Add(CookieSecretRotation)
	if c.checkMAC2(pkt, src, rotated) {
		t.Fatal("mac2 accepted once the secret is CookieSecretRotation old")
	}
	fresh := c.cookie(src, rotated)
	if fresh == cookie {
		t.Fatal("the secret did not rotate")
	}
	if c.checkMAC2(pkt, src, rotated) || !c.checkMAC2(r.message1(&fresh), src, rotated) {
		t.Fatal("after rotation the old cookie must fail and the new one pass")
	}
	// The initiator stops using a cookie as old as a secret's lifetime.
	ic := initiatorCookie{value: fresh, at: rotated}
	if ic.fresh(rotated.Add(CookieSecretRotation-time.Second)) == nil || ic.fresh(rotated.Add(CookieSecretRotation)) != nil {
		t.Fatal("initiator cookie lifetime is not CookieSecretRotation")
	}
}

// TestAttackForgedCookieReplyRefused: an initiator takes only a cookie
// reply sealed under the PSK with the mac1 of the message 1 it answers;
// forged replies (another key, another message's mac1) neither plant a
// cookie nor make it resend. The fake responder is a raw socket the node
// bootstraps to, so every packet it sends is the test's.
func TestAttackForgedCookieReplyRefused(t *testing.T) {
	fake := attacker(t)
	cfg := testConfig(t, nil, fake.LocalAddr().String())
	cfg.HandshakeRetryInitial = time.Minute // no timer retry during the test
	cfg.HandshakeTimeout = 2 * time.Minute
	a := startNode(t, cfg)
	toA := netip.MustParseAddrPort(a.LocalAddr())
	readInit := func() (wire.Header, wire.Handshake, []byte) {
		t.Helper()
		fake.SetReadDeadline(time.Now().Add(waitLong))
		buf := make([]byte, wire.MaxPacketBytes+1)
		for {
			n, err := fake.Read(buf)
			if err != nil {
				t.Fatalf("no message 1 from the node: %v", err)
			}
			var h wire.Header
			var hb wire.Handshake
			if h.Parse(buf[:n]) == nil && h.Type == wire.TypeHandshakeInit && wire.ParseHandshake(buf[wire.HeaderSize:n], &hb) == nil {
				pkt := append([]byte(nil), buf[:n]...)
				wire.ParseHandshake(pkt[wire.HeaderSize:], &hb)
				return h, hb, pkt
			}
		}
	}
	h1, hb1, first := readInit()
	if hb1.MAC2 != ([wire.MACBytes]byte{}) {
		t.Fatal("first message 1 carries a mac2 without a cookie")
	}
	reply := func(macs *handshakeMACs, mac1 []byte, cookie [wire.CookieBytes]byte) {
		cr := wire.CookieReply{ReceiverIndex: hb1.SenderIndex}
		macs.sealCookie(&cr, &cookie, mac1)
		h := wire.Header{Version: wire.Version, Type: wire.TypeCookieReply, Src: 42, Dst: h1.Src, Counter: randomU64(), TTL: wire.DefaultTTL}
		pkt := make([]byte, wire.HeaderSize)
		h.Encode(pkt)
		if _, err := fake.WriteToUDPAddrPort(wire.AppendCookieReply(pkt, &cr), toA); err != nil {
			t.Fatal(err)
		}
	}
	before := a.Stats().AuthFailures
	otherMAC1 := make([]byte, wire.MACBytes)
	reply(newHandshakeMACs([32]byte{0xba, 0xd}), mac1Of(first), [wire.CookieBytes]byte{1}) // not the PSK
	reply(newHandshakeMACs(testPSK), otherMAC1, [wire.CookieBytes]byte{2})                 // not this message's reply
	eventually(t, "both forged replies refused", func() bool { return a.Stats().AuthFailures >= before+2 })
	genuine := [wire.CookieBytes]byte{3}
	reply(newHandshakeMACs(testPSK), mac1Of(first), genuine)
	_, hb2, resent := readInit()
	if hb2.SenderIndex != hb1.SenderIndex || string(hb2.Noise) != string(hb1.Noise) {
		t.Fatal("the node sent a new attempt, not message 1 again with the cookie")
	}
	if !newHandshakeMACs(testPSK).checkMAC1(resent) {
		t.Fatal("resent message 1 has a bad mac1")
	}
	ad, _, to2, _ := wire.HandshakeMACed(resent)
	if want := keyedMAC(genuine[:], ad, to2); hb2.MAC2 != want {
		t.Fatal("mac2 not keyed with the genuine cookie: a forged reply planted its cookie")
	}
}

// TestAttackReplayedMAC2FromAnotherAddressRefused: a mac2 proves the
// address its cookie was made for; the same message 1, mac2 and all, sent
// from another address gets a cookie reply and no slot.
func TestAttackReplayedMAC2FromAnotherAddressRefused(t *testing.T) {
	cb := testConfig(t, nil)
	cb.HandshakeTimeout = time.Minute
	b := startNode(t, cb)
	loadResponder(t, b, ResponderLoadThreshold)
	s := mustStatic(t, testPSK)
	owner := newRawInitiator(t, testPSK, s, 11, b)
	first := owner.message1(nil)
	inject(t, owner.c, b, first)
	_, pkt := owner.read(t)
	cookie := owner.cookieFrom(t, pkt, mac1Of(first))
	proven := owner.message1(&cookie)

	thief := newRawInitiator(t, testPSK, s, 12, b)
	slots := respondersOf(b)
	inject(t, thief.c, b, proven)
	if h, _ := thief.read(t); h.Type != wire.TypeCookieReply {
		t.Fatalf("a mac2 replayed from another address got %v, want a cookie reply", h.String())
	}
	if n := respondersOf(b); n != slots {
		t.Fatalf("the replayed mac2 took a slot (%d -> %d)", slots, n)
	}
	inject(t, owner.c, b, proven)
	if h, _ := owner.read(t); h.Type != wire.TypeHandshakeResp {
		t.Fatalf("the cookie's owner got %v, want message 2", h.String())
	}
}

// slotFor adds a bare responder slot as handleInit would, without Noise.
func slotFor(tr *Transport, from netip.AddrPort, now time.Time) uint32 {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	idx := tr.newIndexLocked()
	tr.addResponderLocked(&responding{index: idx, from: from, expires: now.Add(time.Minute)}, now)
	return idx
}

func hasSlot(tr *Transport, idx uint32) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.responders[idx] != nil
}

func sourceAddr(i int) netip.AddrPort {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], 0x0a000000+uint32(i))
	return netip.AddrPortFrom(netip.AddrFrom4(a), 4000)
}

// TestResponderSlotsFairShare: a source at its share evicts its own
// oldest, not anyone else's; a full table evicts the oldest of all.
func TestResponderSlotsFairShare(t *testing.T) {
	tr, err := New(testConfig(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	now := time.Now()
	genuine := slotFor(tr, sourceAddr(0), now)
	// Of two sources, one may hold half the fair share and no more.
	var flood []uint32
	for range ResponderFairShareSlots {
		flood = append(flood, slotFor(tr, sourceAddr(1), now))
	}
	if n := respondersOf(tr); n != ResponderFairShareSlots/2+1 {
		t.Fatalf("%d slots, want the flood's share %d plus the genuine one", n, ResponderFairShareSlots/2)
	}
	if !hasSlot(tr, genuine) || hasSlot(tr, flood[0]) || !hasSlot(tr, flood[len(flood)-1]) {
		t.Fatal("the flooding source did not evict its own oldest")
	}
	// However many sources, each keeps ResponderMinShare (a relay's
	// handshakes in flight at once)...
	relay := sourceAddr(2)
	var relayed []uint32
	for range ResponderMinShare {
		relayed = append(relayed, slotFor(tr, relay, now))
	}
	for i := range ResponderFairShareSlots {
		slotFor(tr, sourceAddr(3+i), now)
	}
	relayed = append(relayed, slotFor(tr, relay, now))
	if hasSlot(tr, relayed[0]) || !hasSlot(tr, relayed[1]) || !hasSlot(tr, relayed[ResponderMinShare]) {
		t.Fatal("a relay's share among many sources is not ResponderMinShare")
	}
	// ...and once the table is full the oldest of all go first.
	for i := range MaxPendingResponders {
		slotFor(tr, sourceAddr(1000+i), now)
	}
	if n := respondersOf(tr); n != MaxPendingResponders {
		t.Fatalf("%d slots, want a full table of %d", n, MaxPendingResponders)
	}
	if hasSlot(tr, genuine) {
		t.Fatal("the oldest slot survived a full table")
	}
	newest := slotFor(tr, sourceAddr(0), now)
	if !hasSlot(tr, newest) || tr.Stats().RespondersEvicted == 0 {
		t.Fatal("a new message 1 was refused instead of evicting the oldest")
	}
	// Expiry and completion leave the order consistent.
	tr.mu.Lock()
	tr.removeResponderLocked(newest)
	tr.expireRespondersLocked(now.Add(2 * time.Minute))
	n, ages, sources := len(tr.responders), tr.slots.age.Len(), len(tr.slots.bySource)
	tr.mu.Unlock()
	if n != 0 || ages != 0 || sources != 0 {
		t.Fatalf("after expiry: %d slots, %d in age order, %d sources", n, ages, sources)
	}
}

// TestFullTableEvictsFloodBeforeLoneHandshake: when the table is full, a
// source's only slot (what a genuine initiator holds) goes after the
// slots of sources holding several, however old it is.
func TestFullTableEvictsFloodBeforeLoneHandshake(t *testing.T) {
	tr, err := New(testConfig(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	now := time.Now()
	genuine := slotFor(tr, sourceAddr(0), now)
	flooders := 2 * MaxPendingResponders / ResponderMinShare
	for range ResponderMinShare {
		for i := range flooders {
			slotFor(tr, sourceAddr(1+i), now)
		}
	}
	if n := respondersOf(tr); n != MaxPendingResponders || tr.Stats().RespondersEvicted == 0 {
		t.Fatalf("%d slots, %d evicted: the table never filled", n, tr.Stats().RespondersEvicted)
	}
	if !hasSlot(tr, genuine) {
		t.Fatal("a lone handshake was evicted while flooding sources held several slots each")
	}
}

// attackSources floods b from n raw sources holding the PSK, each sending
// one real message 1 every interval (the per-source limit) and answering
// cookie replies, until stop is closed.
func attackSources(t *testing.T, b *Transport, n int, interval time.Duration, stop chan struct{}) {
	t.Helper()
	s := mustStatic(t, testPSK)
	type source struct {
		r   *rawInitiator
		mu  sync.Mutex
		pkt []byte
	}
	srcs := make([]*source, n)
	var wg sync.WaitGroup
	for i := range srcs {
		r := newRawInitiator(t, testPSK, s, uint32(100000+i), b)
		src := &source{r: r, pkt: r.message1(nil)}
		srcs[i] = src
		wg.Add(1)
		go func() { // answer cookie replies, drop the rest
			defer wg.Done()
			buf := make([]byte, wire.MaxPacketBytes+1)
			macs := newHandshakeMACs(testPSK)
			for {
				m, err := r.c.Read(buf)
				if err != nil {
					return
				}
				var h wire.Header
				var cr wire.CookieReply
				if h.Parse(buf[:m]) != nil || h.Type != wire.TypeCookieReply || wire.ParseCookieReply(buf[wire.HeaderSize:m], &cr) != nil {
					continue
				}
				src.mu.Lock()
				if cookie, err := macs.openCookie(&cr, mac1Of(src.pkt)); err == nil {
					src.pkt = r.message1(&cookie)
				}
				src.mu.Unlock()
			}
		}()
	}
	const batches = 10
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(interval / batches)
		defer tk.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			for j := i % batches; j < n; j += batches {
				src := srcs[j]
				src.mu.Lock()
				src.r.c.WriteToUDPAddrPort(src.pkt, b.local)
				src.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		for _, src := range srcs {
			src.r.c.Close()
		}
		wg.Wait()
	})
}

// genuineTally counts genuine nodes' handshake attempts with the responder
// (distinct sender indices of the message 1s they send it directly) and
// which of them completed (the responder's first packet on the session,
// addressed to that index, arrived). Attempts through a relay are left
// out: while a mesh forms, a node may try a route that is not there yet,
// which fails for reasons the flood has nothing to do with (the relay's
// share is TestResponderSlotsFairShare's). A node has one attempt with the
// responder in flight at a time, so every attempt but a node's latest is
// settled: completed, or given up for a newer one.
type genuineTally struct {
	mu        sync.Mutex
	attempts  [][]uint32 // per node, in order
	completed map[uint32]bool
}

func (g *genuineTally) watch(tc *tapConn, self identity.NodeID, responder *Transport) {
	g.mu.Lock()
	node := len(g.attempts)
	g.attempts = append(g.attempts, nil)
	g.mu.Unlock()
	onWrite := func(to netip.AddrPort, pkt []byte) {
		var h wire.Header
		var hb wire.Handshake
		if to != responder.local || h.Parse(pkt) != nil || h.Type != wire.TypeHandshakeInit || h.Src != self ||
			(h.Dst != 0 && h.Dst != responder.Self()) || wire.ParseHandshake(pkt[wire.HeaderSize:], &hb) != nil {
			return // not our own message 1 to the responder (but one we relay)
		}
		g.mu.Lock()
		if a := g.attempts[node]; len(a) == 0 || a[len(a)-1] != hb.SenderIndex { // a cookie resend is the same attempt
			g.attempts[node] = append(a, hb.SenderIndex)
		}
		g.mu.Unlock()
	}
	onRead := func(_ netip.AddrPort, pkt []byte) {
		var h wire.Header
		if h.Parse(pkt) != nil || h.Type != wire.TypeData || h.Src != responder.Self() || h.Dst != self {
			return
		}
		g.mu.Lock()
		g.completed[h.Index] = true
		g.mu.Unlock()
	}
	tc.onWrite.Store(&onWrite)
	tc.onRead.Store(&onRead)
}

// settled counts the settled attempts and how many of them completed.
func (g *genuineTally) settled() (attempts, completed int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, a := range g.attempts {
		for i, idx := range a {
			done := g.completed[idx]
			if done {
				completed++
			}
			if done || i < len(a)-1 {
				attempts++
			}
		}
	}
	return attempts, completed
}

// TestAttackHandshakeFloodStarvesGenuinePeers: 400 sources that hold the
// PSK send real message 1s at the per-source limit and answer cookies,
// enough to keep every responder slot taken; genuine nodes handshaking
// with the responder meanwhile must still complete their attempts. Before
// issue 12 a full table refused every new message 1, so a genuine one was
// answered only when it happened to arrive just after a slot expired.
//
// The per-source limit is set to 2 message 1s per second for this test
// (the default is 10; the burst stays the default 20): 800 message 1s a
// second is what this shared 2-core machine can answer with
// Diffie-Hellman while running the 400 sources and the genuine nodes; at
// more the responder's socket queue grows and every handshake, genuine or
// not, waits behind it, which is a CPU bound the per-source limit sets,
// not slot starvation. 800 a second is still more than twice what the
// table can absorb (MaxPendingResponders per HandshakeTimeout), so the
// old rule starves. For the same reason the genuine nodes retry after a
// second rather than a quarter: an attempt is given up only when it is
// really lost, not because a loaded machine took 250 ms to answer.
func TestAttackHandshakeFloodStarvesGenuinePeers(t *testing.T) {
	if testing.Short() {
		t.Skip("floods a responder from 400 sockets")
	}
	const (
		genuineNodes   = 8
		wantAttempts   = 64
		minCompletions = 0.9
	)
	sources, perSource := 400, 2 // perSource: message 1s per second, the limit below
	if raceEnabled {
		// The detector slows the responder's Diffie-Hellman about five
		// times: a flood it cannot answer at all would measure the CPU.
		sources, perSource = 100, 1
	}
	cb := testConfig(t, nil)
	cb.HandshakesPerSecondPerSource = float64(perSource)
	b := startNode(t, cb)
	stop := make(chan struct{})
	defer close(stop)
	attackSources(t, b, sources, time.Second/time.Duration(perSource), stop)
	// The flood is in full swing: the table is taken (the old rule fills
	// all of it; fair shares leave each source one slot) and every source
	// has sent a few message 1s.
	eventually(t, "the flood holds the responder's slots", func() bool {
		return respondersOf(b) >= sources*3/4 && b.Stats().PacketsIn >= uint64(4*sources)
	})

	tally := genuineTally{completed: map[uint32]bool{}}
	for range genuineNodes {
		cfg := testConfig(t, nil, b.LocalAddr())
		cfg.RekeyAfterTime = time.Second // a fresh handshake every second
		cfg.HandshakeRetryInitial = time.Second
		tc := tapped(t, &cfg)
		tally.watch(tc, cfg.Key.ID, b)
		startNode(t, cfg)
	}
	eventually(t, "settled genuine handshake attempts", func() bool {
		a, _ := tally.settled()
		return a >= wantAttempts
	})
	attempts, completed := tally.settled()
	frac := float64(completed) / float64(attempts)
	st := b.Stats()
	t.Logf("genuine handshakes: %d of %d settled attempts completed (%.0f%%); responder: %d slots, rate limited %d, cookie replies %d, evicted %d, auth failures %d",
		completed, attempts, 100*frac, respondersOf(b), st.HandshakesRateLimited, st.CookieRepliesSent, st.RespondersEvicted, st.AuthFailures)
	if frac < minCompletions {
		t.Fatalf("only %d of %d genuine handshake attempts completed (%.0f%%, want ≥ %.0f%%): the flood starves genuine peers",
			completed, attempts, 100*frac, 100*minCompletions)
	}
}
