package transport

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/node/wire"
)

func healthyOf(tr *Transport, id identity.NodeID) bool { return healthOf(tr, id) == snapshot.Healthy }

// peerAddr is what tr believes of id's direct address (internal state:
// the announcement's address is believed before any packet verifies it).
func peerAddr(tr *Transport, id identity.NodeID) (addr netip.AddrPort, verified, known bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	p := tr.peers[id]
	if p == nil {
		return netip.AddrPort{}, false, false
	}
	return p.addr, p.addrVerified, true
}

// sendControlAs makes from send a raw control message to its direct
// neighbour to, sealed in their session: what a misbehaving member can
// put on the wire.
func sendControlAs(t *testing.T, from, to *Transport, msg []byte) {
	t.Helper()
	from.mu.Lock()
	p := from.peers[to.Self()]
	if p == nil || p.current == nil || !p.addr.IsValid() {
		from.mu.Unlock()
		t.Fatalf("%s has no session with %s", from.Self(), to.Self())
	}
	kp, addr := p.current, p.addr
	from.mu.Unlock()
	if !from.sealAndSend(kp, addr, messaging.ChanControl, msg) {
		t.Fatal("control message dropped on send")
	}
}

// TestAttackRelayKeepingTTLCannotPoseAsDirectLink: A reaches C only
// through B (their link is cut), and B forwards without decrementing the
// TTL, so C's packets reach A looking direct, from B's address. A must not
// move C to B's address: that would make B "C's direct link", outranking
// every route (a live direct link wins) and handing B all of A's traffic
// for C for good. A counts the packets as relayed.
func TestAttackRelayKeepingTTLCannotPoseAsDirectLink(t *testing.T) {
	n := newMemnet(t)
	cb := onMemnet(t, n, testConfig(t, nil))
	bTap := tapped(t, &cb)
	restoreTTL := func(_ netip.AddrPort, pkt []byte) {
		var h wire.Header
		if h.Parse(pkt) == nil && h.Src != cb.Key.ID {
			wire.SetTTL(pkt, wire.DefaultTTL) // forwarded: pretend it never was
		}
	}
	bTap.onWrite.Store(&restoreTTL)
	b := startNode(t, cb)
	ca := onMemnet(t, n, testConfig(t, nil, b.LocalAddr()))
	cc := onMemnet(t, n, testConfig(t, nil, b.LocalAddr()))
	n.Partition(ca.Conn.LocalAddr(), cc.Conn.LocalAddr(), true)
	a, c := startNode(t, ca), startNode(t, cc)

	inA := newInbox(a, messaging.ChanGossip)
	sendUntil(t, c, a.Self(), messaging.ChanGossip, []byte("c to a through b"), inA)
	eventually(t, "C healthy at A", func() bool { return healthyOf(a, c.Self()) })

	if pi, _ := peerInfo(a, c.Self()); pi.Direct && pi.Addr == b.LocalAddr() {
		t.Fatalf("A believes C is its direct neighbour at relay B's address %s", pi.Addr)
	}
	if addr, verified, _ := peerAddr(a, c.Self()); verified && addr.String() == b.LocalAddr() {
		t.Fatalf("A moved C to relay B's address %s", addr)
	}
	if a.Stats().RoamsRefused == 0 {
		t.Fatal("A counted no refused move: the relay's trick was not exercised")
	}
}

// spoofedConn makes every datagram from node src look as if it came from
// address as: what a receiver sees when src forges its UDP source address.
type spoofedConn struct {
	Conn
	src identity.NodeID
	as  netip.AddrPort
	on  atomic.Bool
}

func (c *spoofedConn) ReadBatch(bufs [][]byte, sizes []int, from []netip.AddrPort) (int, error) {
	n, err := c.Conn.ReadBatch(bufs, sizes, from)
	for i := 0; i < n && c.on.Load(); i++ {
		var h wire.Header
		if h.Parse(bufs[i][:sizes[i]]) == nil && h.Src == c.src {
			from[i] = c.as
		}
	}
	return n, err
}

// TestAttackSpoofedSourceCannotTakeAnotherPeersAddress: member M sends its
// own, authenticated packets with X's address forged as their source.
// Believed, A would move M onto X's address and send M's traffic (its
// heartbeats, every answer to what M asks) to X: a reflector M aims at
// will. Only an address no live peer holds can be roamed to.
func TestAttackSpoofedSourceCannotTakeAnotherPeersAddress(t *testing.T) {
	n := newMemnet(t)
	x := startNode(t, onMemnet(t, n, testConfig(t, nil)))
	mKey := mustKey(t)
	ca := onMemnet(t, n, testConfig(t, nil, x.LocalAddr()))
	xAddr := netip.MustParseAddrPort(x.LocalAddr())
	spoof := &spoofedConn{Conn: ca.Conn, src: mKey.ID, as: xAddr}
	ca.Conn = spoof
	a := startNode(t, ca)
	m := startNode(t, onMemnet(t, n, testConfig(t, mKey, x.LocalAddr())))
	eventually(t, "A direct with X and M", func() bool {
		px, _ := peerInfo(a, x.Self())
		pm, _ := peerInfo(a, m.Self())
		return px.Direct && pm.Direct
	})
	spoof.on.Store(true)
	eventually(t, "A to judge M's forged packets", func() bool {
		addr, _, _ := peerAddr(a, m.Self())
		return addr == xAddr || a.Stats().RoamsRefused > 0
	})
	if addr, _, _ := peerAddr(a, m.Self()); addr == xAddr {
		t.Fatalf("A moved M onto X's address %s", addr)
	}
	if pi, _ := peerInfo(a, x.Self()); !pi.Direct || pi.Addr != x.LocalAddr() {
		t.Fatalf("X lost its direct link at A: %+v", pi)
	}
}

// TestAttackAnnouncedLoopbackAddressIsNotBelieved: a neighbour on another
// host announces a node at a loopback address. Believed, it would point
// this node's handshakes and heartbeats at a service on its own host.
func TestAttackAnnouncedLoopbackAddressIsNotBelieved(t *testing.T) {
	n := newMemnet(t)
	a := startNode(t, onMemnet(t, n, testConfig(t, nil)))
	m := startNode(t, onMemnet(t, n, testConfig(t, nil, a.LocalAddr())))
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := a.WaitForPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	ghost := mustKey(t).ID
	loop := netip.MustParseAddrPort("127.0.0.1:53")
	ann, err := wire.AppendAnnouncement(nil, &wire.Announcement{Routes: []wire.Route{
		{Dest: ghost, Seq: 1, MetricMicros: 10, Hops: 1, Addr: loop},
	}})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "A takes M's announcement of the ghost", func() bool {
		sendControlAs(t, m, a, ann)
		_, _, known := peerAddr(a, ghost)
		return known
	})
	if addr, _, _ := peerAddr(a, ghost); addr.IsValid() {
		t.Fatalf("A believes the ghost is at %s, announced by a neighbour at %s", addr, m.LocalAddr())
	}
}

func TestShareableWith(t *testing.T) {
	ap := netip.MustParseAddrPort
	for _, tt := range []struct {
		addr, with string
		want       bool
	}{
		{"10.0.0.2:7946", "10.0.0.3:7946", true},
		{"[fd00::2]:7946", "10.0.0.3:7946", true},
		{"127.0.0.1:7946", "127.0.0.1:7000", true},
		{"127.0.0.1:7946", "10.0.0.3:7946", false},
		{"[::1]:7946", "[fd00::3]:7946", false},
		{"[::1]:7946", "[::1]:7000", true},
		{"[fe80::1]:7946", "10.0.0.3:7946", false},
		{"[fe80::1]:7946", "[fe80::2]:7946", true},
		{"0.0.0.0:7946", "127.0.0.1:1", false},
		{"[::]:7946", "[::1]:1", false},
		{"224.0.0.1:7946", "10.0.0.3:1", false},
		{"10.0.0.2:0", "10.0.0.3:1", false},
	} {
		if got := shareableWith(ap(tt.addr), ap(tt.with)); got != tt.want {
			t.Errorf("shareableWith(%s, %s) = %v, want %v", tt.addr, tt.with, got, tt.want)
		}
	}
}

// TestAnnouncementSharesLoopbackOnlyOnLoopback: the address of a
// neighbour on loopback goes to a neighbour on loopback (same host), not
// to one on another host.
func TestAnnouncementSharesLoopbackOnlyOnLoopback(t *testing.T) {
	ap := netip.MustParseAddrPort
	self, local, remote, onLoop := identity.NodeID(1), identity.NodeID(2), identity.NodeID(3), identity.NodeID(4)
	rt := newRouteTable(self, MaxPeers)
	now := time.Now()
	rt.setNeighbour(local, ap("127.0.0.1:7001"), 100, true, now)
	rt.setNeighbour(remote, ap("10.0.0.3:7946"), 100, true, now)
	rt.setNeighbour(onLoop, ap("127.0.0.1:7002"), 100, true, now)
	rt.recompute(now, time.Minute)
	addrOf := func(routes []wire.Route, d identity.NodeID) netip.AddrPort {
		for _, r := range routes {
			if r.Dest == d {
				return r.Addr
			}
		}
		t.Fatalf("no route to %s announced", d)
		return netip.AddrPort{}
	}
	toRemote := rt.announcement(remote, nil)
	if a := addrOf(toRemote, local); a.IsValid() {
		t.Errorf("loopback address %s announced to a neighbour on another host", a)
	}
	toLoop := rt.announcement(onLoop, nil)
	if a := addrOf(toLoop, local); a != ap("127.0.0.1:7001") {
		t.Errorf("to a loopback neighbour: %v, want the loopback address", a)
	}
	if a := addrOf(toLoop, remote); a != ap("10.0.0.3:7946") {
		t.Errorf("to a loopback neighbour, the remote one: %v", a)
	}
}

// swapConn is a socket that moves: it reads from every address it ever
// had and sends from the current one, as a host whose address changes
// (DHCP, a laptop changing networks) does with a socket on a wildcard
// address.
type swapConn struct {
	in     chan swapPacket
	mu     sync.Mutex
	cur    Conn
	all    []Conn
	closed bool
}

type swapPacket struct {
	b    []byte
	from netip.AddrPort
}

func newSwapConn(first Conn) *swapConn {
	s := &swapConn{in: make(chan swapPacket, 256)}
	s.add(first)
	return s
}

func (s *swapConn) add(c Conn) {
	s.mu.Lock()
	s.cur, s.all = c, append(s.all, c)
	s.mu.Unlock()
	go func() {
		bufs := [][]byte{make([]byte, wire.MaxPacketBytes+1)}
		sizes, from := make([]int, 1), make([]netip.AddrPort, 1)
		for {
			if _, err := c.ReadBatch(bufs, sizes, from); err != nil {
				return
			}
			select {
			case s.in <- swapPacket{append([]byte(nil), bufs[0][:sizes[0]]...), from[0]}:
			default:
			}
		}
	}()
}

// moveTo sends from next from now on and closes the old socket, so
// nothing sent to the old address arrives any more.
func (s *swapConn) moveTo(next Conn) {
	s.mu.Lock()
	old := s.cur
	s.mu.Unlock()
	s.add(next)
	old.Close()
}

func (s *swapConn) ReadBatch(bufs [][]byte, sizes []int, from []netip.AddrPort) (int, error) {
	p, ok := <-s.in
	if !ok {
		return 0, net.ErrClosed
	}
	sizes[0], from[0] = copy(bufs[0], p.b), p.from
	return 1, nil
}

func (s *swapConn) WriteTo(pkt []byte, addr netip.AddrPort) error {
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	return c.WriteTo(pkt, addr)
}

func (s *swapConn) LocalAddr() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.LocalAddr()
}

func (s *swapConn) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	for _, c := range s.all {
		c.Close()
	}
	close(s.in)
	return nil
}

// TestPeerRoamsToNewAddress: B's address changes under a live session (no
// new handshake). A and C re-learn it from B's next authenticated packets:
// their sessions, routes and messages follow B to its new address.
func TestPeerRoamsToNewAddress(t *testing.T) {
	n := newMemnet(t)
	a := startNode(t, onMemnet(t, n, testConfig(t, nil)))
	c := startNode(t, onMemnet(t, n, testConfig(t, nil, a.LocalAddr())))
	first, err := n.Listen()
	if err != nil {
		t.Fatal(err)
	}
	moving := newSwapConn(first)
	cfg := testConfig(t, nil, a.LocalAddr())
	cfg.Conn = moving
	b := startNode(t, cfg)
	inB := newInbox(b, messaging.ChanGossip)
	eventually(t, "B direct with A and C", func() bool {
		pa, _ := peerInfo(a, b.Self())
		pc, _ := peerInfo(c, b.Self())
		return pa.Direct && pc.Direct
	})

	next, err := n.Listen()
	if err != nil {
		t.Fatal(err)
	}
	moving.moveTo(next)
	to := next.LocalAddr()
	for _, tr := range []*Transport{a, c} {
		eventually(t, "B re-learned at its new address", func() bool {
			addr, verified, _ := peerAddr(tr, b.Self())
			r, ok := tr.routes.lookup(b.Self())
			return verified && addr == to && ok && r.NextAddr == to
		})
		sendUntil(t, tr, b.Self(), messaging.ChanGossip, []byte("after the move from "+tr.Self().String()), inB)
	}
}

// TestRestartedPeerOnNewPortIsRelearned: B stops and comes back with the
// same key on another port; A and C reach it at the new one.
func TestRestartedPeerOnNewPortIsRelearned(t *testing.T) {
	a := startNode(t, testConfig(t, nil))
	c := startNode(t, testConfig(t, nil, a.LocalAddr()))
	key := mustKey(t)
	b := startNode(t, testConfig(t, key, a.LocalAddr()))
	eventually(t, "B healthy at A and C", func() bool {
		return healthyOf(a, b.Self()) && healthyOf(c, b.Self())
	})
	old := b.LocalAddr()
	b.Close()
	b2 := startNode(t, testConfig(t, key, a.LocalAddr()))
	if b2.LocalAddr() == old {
		t.Fatalf("restarted on the same address %s", old)
	}
	inB := newInbox(b2, messaging.ChanGossip)
	for _, tr := range []*Transport{a, c} {
		eventually(t, "B at its new port", func() bool {
			pi, _ := peerInfo(tr, b2.Self())
			return pi.Direct && pi.Addr == b2.LocalAddr()
		})
		sendUntil(t, tr, b2.Self(), messaging.ChanGossip, []byte("to the restarted B from "+tr.Self().String()), inB)
	}
}

// TestMeshOverIPv6 forms a mesh on ::1: C learns A's IPv6 address from
// B's announcement and reaches A directly.
func TestMeshOverIPv6(t *testing.T) {
	cfg := func(boot ...string) Config {
		c := testConfig(t, nil, boot...)
		c.ListenAddr = "[::1]:0"
		return c
	}
	probe, err := ListenUDP("[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	probe.Close()
	a := startNode(t, cfg())
	b := startNode(t, cfg(a.LocalAddr()))
	c := startNode(t, cfg(b.LocalAddr()))
	if !netip.MustParseAddrPort(a.LocalAddr()).Addr().Is6() {
		t.Fatalf("A bound %s", a.LocalAddr())
	}
	inA := newInbox(a, messaging.ChanGossip)
	eventually(t, "C direct with A over IPv6", func() bool {
		pi, _ := peerInfo(c, a.Self())
		return pi.Direct && pi.Addr == a.LocalAddr()
	})
	sendUntil(t, c, a.Self(), messaging.ChanGossip, []byte("over ::1"), inA)
}

// wildcardConn reports a wildcard local address, as a socket bound to
// 0.0.0.0 does: the node does not know its own address.
type wildcardConn struct{ Conn }

func (w wildcardConn) LocalAddr() netip.AddrPort {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), w.Conn.LocalAddr().Port())
}

// TestWildcardNodeLearnsItsAddressFromMostNeighbours: a node on a wildcard
// address publishes where its neighbours see it; a neighbour reporting
// something else is outvoted.
func TestWildcardNodeLearnsItsAddressFromMostNeighbours(t *testing.T) {
	n := newMemnet(t)
	sock, err := n.Listen()
	if err != nil {
		t.Fatal(err)
	}
	cw := testConfig(t, nil)
	cw.Conn = wildcardConn{sock}
	w := startNode(t, cw)
	if w.PublicAddr().IsValid() {
		t.Fatalf("a wildcard node with no neighbours knows its address: %s", w.PublicAddr())
	}
	boot := sock.LocalAddr().String()
	x := startNode(t, onMemnet(t, n, testConfig(t, nil, boot)))
	y := startNode(t, onMemnet(t, n, testConfig(t, nil, boot)))
	liar := startNode(t, onMemnet(t, n, testConfig(t, nil, boot)))
	eventually(t, "W learns its address", func() bool { return w.PublicAddr() == sock.LocalAddr() })
	eventually(t, "W direct with its three neighbours", func() bool {
		for _, tr := range []*Transport{x, y, liar} {
			if pi, _ := peerInfo(w, tr.Self()); !pi.Direct {
				return false
			}
		}
		return true
	})
	lie := wire.AppendObserved(nil, netip.MustParseAddrPort("203.0.113.9:7946"))
	eventually(t, "W has the lie", func() bool {
		sendControlAs(t, liar, w, lie)
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.peers[liar.Self()].seesUsAt.Addr() == netip.MustParseAddr("203.0.113.9")
	})
	if got := w.PublicAddr(); got != sock.LocalAddr() {
		t.Fatalf("one neighbour's report moved W to %s", got)
	}
}

// TestAttackUnauthenticatedPacketsCannotMoveAPeer: from a new address, an
// attacker replays a captured packet of A's and sends one with A's header
// and session index but a forged body. Neither authenticates, so neither
// moves A in B's table (only an authenticated direct packet roams).
func TestAttackUnauthenticatedPacketsCannotMoveAPeer(t *testing.T) {
	a, b, bTap := tappedPair(t)
	cap := tapIn(bTap, func(h *wire.Header) bool {
		return h.Type == wire.TypeData && h.Src == a.Self() && h.Channel == uint16(messaging.ChanGossip)
	})
	in := newInbox(b, messaging.ChanGossip)
	sendUntil(t, a, b.Self(), messaging.ChanGossip, []byte("captured"), in)
	pkt := cap.first()
	if pkt == nil {
		t.Fatal("no data packet captured")
	}
	before, _, _ := peerAddr(b, a.Self())
	// A fresh counter passes the replay window; the body then fails the
	// AEAD (the header is its associated data).
	forged := append([]byte(nil), pkt...)
	var h wire.Header
	if err := h.Parse(forged); err != nil {
		t.Fatal(err)
	}
	h.Counter += 1 << 20
	h.Encode(forged)
	stats := b.Stats()
	evil := attacker(t)
	inject(t, evil, b, pkt)
	inject(t, evil, b, forged)
	eventually(t, "B to judge both", func() bool {
		s := b.Stats()
		return s.ReplaysRejected > stats.ReplaysRejected && s.AuthFailures > stats.AuthFailures
	})
	if addr, _, _ := peerAddr(b, a.Self()); addr != before {
		t.Fatalf("B moved A from %s to %s on unauthenticated packets", before, addr)
	}
}

// TestPendingPeerAddressesLeaveOnlyWhenPublic: a pending peer's address is
// reported (and so gossiped to every node) only when it means the same
// everywhere.
func TestPendingPeerAddressesLeaveOnlyWhenPublic(t *testing.T) {
	tr := startNode(t, testConfig(t, nil))
	want := map[identity.NodeID]string{}
	tr.mu.Lock()
	for addr, shown := range map[string]string{"127.0.0.1:9000": "", "[::1]:9000": "", "10.0.0.7:7946": "10.0.0.7:7946"} {
		rec := &identity.NodeRecord{ID: mustKey(t).ID}
		tr.pending[rec.ID] = &pendingPeer{rec: rec, addr: netip.MustParseAddrPort(addr)}
		want[rec.ID] = shown
	}
	tr.mu.Unlock()
	for _, p := range tr.Pending() {
		if p.Addr != want[p.Record.ID] {
			t.Errorf("pending %s reported at %q, want %q", p.Record.ID, p.Addr, want[p.Record.ID])
		}
	}
}
