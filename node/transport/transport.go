// Package transport is Deck's mesh node core: one socket (a Conn: UDP, or
// in tests and simulations the in-process network memnet), end-to-end
// Noise sessions (package session) with every peer, relaying by header for
// peers that are not direct neighbours, a distance-vector routing table with
// RTT as the metric, fragmentation, and membership: heartbeats, RTT, a
// failure detector and discovery of the mesh from a bootstrap address.
//
// *Transport implements messaging.Messenger. Relays never hold the keys of the
// sessions they carry: they parse the header, decrement the TTL and pass
// the packet on.
package transport

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/session"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/node/wire"
)

// Config configures a Transport. Zero timer fields take the defaults in
// limits.go and package session.
type Config struct {
	Key        *identity.Key // node's ed25519 identity
	PSK        [32]byte      // cluster PSK
	ListenAddr string        // e.g. "127.0.0.1:0"; unused when Conn is set
	Bootstrap  []string      // addresses to join through
	Logf       func(format string, args ...any)
	// Conn is the socket to run on (a fault-injecting wrapper, an
	// in-process network); nil listens on UDP at ListenAddr. The
	// Transport closes it on Close, and in New when New fails.
	Conn Conn
	// Trust decides which peers are members (see trust.go); nil admits
	// every peer that completes a handshake as a node (tests, and the
	// transport's own benchmarks).
	Trust Trust
	// Certificate is this node's own certificate, presented in every
	// handshake; nil presents none (the node is pending wherever a Trust
	// asks for one).
	Certificate *identity.Certificate
	// Scope, when set, is the node's subnet policy (subnets.go): which
	// peers learned from routes it keeps sessions (and so heartbeats) with,
	// and which data packets may cross a subnet boundary when it relays or
	// delivers them. Nil: one subnet, every peer in scope (today's mesh).
	Scope Scope

	// Timer and limit overrides; zero means the default in limits.go (or
	// package session for the rekey timers). Tests shrink them so the
	// failure detector and rekeys run in seconds.
	HeartbeatInterval            time.Duration
	SuspectAfterMissedHeartbeats int
	UnreachableAfter             time.Duration
	HandshakeTimeout             time.Duration
	HandshakeRetryInitial        time.Duration
	RekeyAfterTime               time.Duration
	RekeyAfterMessages           uint64
	RejectAfterTime              time.Duration
	PreviousKeyOverlap           time.Duration
	ReassemblyTimeout            time.Duration
	MaxReassemblyMessagesPerPeer int
	MaxReassemblyBytesPerPeer    int
	HandshakesPerSecondPerSource float64
	HandshakeBurstPerSource      int
}

func (c *Config) fill() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.HeartbeatInterval, HeartbeatInterval)
	if c.SuspectAfterMissedHeartbeats <= 0 {
		c.SuspectAfterMissedHeartbeats = SuspectAfterMissedHeartbeats
	}
	def(&c.UnreachableAfter, UnreachableAfter)
	def(&c.HandshakeTimeout, HandshakeTimeout)
	def(&c.HandshakeRetryInitial, HandshakeRetryInitial)
	def(&c.RekeyAfterTime, session.RekeyAfterTime)
	if c.RekeyAfterMessages == 0 {
		c.RekeyAfterMessages = session.RekeyAfterMessages
	}
	// Keys stay usable for half a rekey period past the rekey point, so a
	// rekey that needs retries never leaves a gap.
	def(&c.RejectAfterTime, c.RekeyAfterTime+c.RekeyAfterTime/2)
	def(&c.PreviousKeyOverlap, session.PreviousKeyOverlap)
	def(&c.ReassemblyTimeout, ReassemblyTimeout)
	if c.MaxReassemblyMessagesPerPeer <= 0 {
		c.MaxReassemblyMessagesPerPeer = MaxReassemblyMessagesPerPeer
	}
	if c.MaxReassemblyBytesPerPeer <= 0 {
		c.MaxReassemblyBytesPerPeer = MaxReassemblyBytesPerPeer
	}
	if c.HandshakesPerSecondPerSource <= 0 {
		c.HandshakesPerSecondPerSource = HandshakesPerSecondPerSource
	}
	if c.HandshakeBurstPerSource <= 0 {
		c.HandshakeBurstPerSource = HandshakeBurstPerSource
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
}

func (c *Config) suspectAfter() time.Duration {
	return time.Duration(c.SuspectAfterMissedHeartbeats) * c.HeartbeatInterval
}

type counters struct {
	packetsIn, packetsOut, bytesIn, bytesOut  atomic.Uint64
	drops, replays, authFailures, rateLimited atomic.Uint64
	forwarded                                 atomic.Uint64
	pendingDrops                              atomic.Uint64 // packets from peers not admitted
	mac1Failures, cookieReplies, evictions    atomic.Uint64 // handshake.go, cookie.go
	roamsRefused                              atomic.Uint64 // address.go
	heartbeatsOut, heartbeatsIn, bulkWaits    atomic.Uint64
}

// Transport is one mesh node's network core.
type Transport struct {
	cfg    Config
	self   identity.NodeID
	static *session.Static
	conn   Conn
	local  netip.AddrPort

	ctx       context.Context
	cancel    context.CancelFunc
	startOnce sync.Once
	closeOnce sync.Once
	wg        sync.WaitGroup

	handlersMu sync.RWMutex
	handlers   map[messaging.Channel]messaging.Handler

	// mu guards the peer table, handshakes in flight, bootstrap state and
	// the routing table's writers.
	mu           sync.Mutex
	peers        map[identity.NodeID]*peer
	initiators   map[uint32]*initiation
	responders   map[uint32]*responding
	bootstraps   []*bootstrap
	pending      map[identity.NodeID]*pendingPeer // completed a handshake, not admitted
	reassessedAt time.Time
	routes       *routeTable
	ownSeq       uint64
	nextMsgID    uint32
	annScratch   []wire.Route
	// addrOwner maps each verified peer address to its peer (address.go);
	// neighboursMoved asks the next tick to give the routing table a
	// roamed neighbour's new address; learned is the address most direct
	// neighbours see this node at (PublicAddr).
	addrOwner       map[netip.AddrPort]identity.NodeID
	neighboursMoved bool
	// routesDirty: an announcement changed the candidates since the last
	// recompute at routesAt (recomputeRoutesLocked coalesces them).
	routesDirty bool
	routesAt    time.Time
	learned     netip.AddrPort
	ownIPs      map[netip.Addr]bool // ownAddrs; read-only after New

	keysMu sync.RWMutex
	keys   map[uint32]*session.Keypair // local index -> session, for the data path

	linksMu sync.Mutex // serialises writers of links
	links   atomic.Pointer[map[netip.AddrPort]*link]

	selfRole    atomic.Uint32 // identity.Role of the certificate presented
	selfPending atomic.Pointer[pendingNotice]
	macs        *handshakeMACs // mac1 and cookie keys (cookie.go)
	cookies     cookieSecret   // the responder's rotating cookie secret
	slots       responderSlots // responders' age order and shares (handshake.go)

	hsLimit *limiter
	stats   counters

	// tickNanos is the relay's coarse clock (monoNanos), advanced by every
	// tick and read once per batch by the read loop: the forward budget
	// refills from it without a clock read per packet.
	tickNanos atomic.Int64
	// Owned by the read loop (relay.go).
	dup   dedup
	relay relayState
}

// peer is everything known about one other node.
type peer struct {
	id   identity.NodeID
	addr netip.AddrPort // best known direct address
	// addrVerified: an authenticated packet arrived directly from addr.
	addrVerified bool
	directAt     time.Time      // last authenticated direct packet
	via          netip.AddrPort // where the last authenticated packet came from
	// seesUsAt is where the peer says our packets come from (and when it
	// said so); toldAddr is what we last told it of its own (address.go).
	seesUsAt, toldAddr   netip.AddrPort
	seesUsAtTime, toldAt time.Time
	// annAt is when this node last sent the peer its routing table.
	annAt time.Time

	current, previous *session.Keypair
	previousUntil     time.Time
	changed           chan struct{} // closed and replaced on session changes
	failures          uint64        // abandoned handshakes, for waiting Sends

	init        *initiation
	nextAttempt time.Time
	backoff     time.Duration
	discovered  time.Time

	det       detector
	rtt       rttEstimator
	hbSeq     uint64
	echo      int64 // last heartbeat timestamp received from the peer
	echoAt    time.Time
	reasm     reassembler
	lastRoute time.Time // when we last had a route or session; for forgetting

	// What the peer was admitted with (nil rec: known only from routes).
	rec  *identity.NodeRecord
	cert *identity.Certificate
	adm  Admission
}

// initiation is a handshake we started.
type initiation struct {
	peerID  identity.NodeID // 0 for a bootstrap address
	boot    *bootstrap
	addr    netip.AddrPort // direct target; invalid: routed to peerID
	hs      *session.Initiator
	index   uint32
	started time.Time // first attempt
	sentAt  time.Time // this attempt
	retry   time.Duration
	next    time.Time
	kp      *session.Keypair // after message 3: waiting for confirmation
	final   []byte           // message 3 as sent, resent while kp waits
	resent  bool             // this attempt's message 1 went out more than once
	finalTo netip.AddrPort
	busy    bool            // message 2 being processed
	cookie  initiatorCookie // a responder's cookie, when it is under load (cookie.go)
}

type bootstrap struct {
	addr        netip.AddrPort
	init        *initiation
	peerID      identity.NodeID
	nextAttempt time.Time
	backoff     time.Duration
}

// New binds the socket (or takes cfg.Conn) and prepares the node; Start
// runs it. On an error the socket is closed.
func New(cfg Config) (*Transport, error) {
	t, err := newTransport(cfg)
	if err != nil && cfg.Conn != nil {
		cfg.Conn.Close()
	}
	return t, err
}

func newTransport(cfg Config) (*Transport, error) {
	if cfg.Key == nil || !cfg.Key.ID.Valid() {
		return nil, errors.New("transport: config needs a valid Key")
	}
	if len(cfg.Bootstrap) > MaxBootstrapAddrs {
		return nil, fmt.Errorf("transport: %d bootstrap addresses, max %d", len(cfg.Bootstrap), MaxBootstrapAddrs)
	}
	cfg.fill()
	static, err := session.NewStatic(cfg.Key, cfg.PSK)
	if err != nil {
		return nil, err
	}
	boots := make([]netip.AddrPort, 0, len(cfg.Bootstrap))
	for _, s := range cfg.Bootstrap {
		ua, err := net.ResolveUDPAddr("udp", s)
		if err != nil {
			return nil, fmt.Errorf("transport: bootstrap address %q: %w", s, err)
		}
		ap := ua.AddrPort()
		boots = append(boots, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	}
	conn := cfg.Conn
	if conn == nil {
		udp, err := ListenUDP(cfg.ListenAddr)
		if err != nil {
			return nil, err
		}
		conn = udp
	}
	local := conn.LocalAddr()
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{
		cfg:        cfg,
		self:       cfg.Key.ID,
		static:     static,
		conn:       conn,
		local:      local,
		ctx:        ctx,
		cancel:     cancel,
		handlers:   make(map[messaging.Channel]messaging.Handler),
		peers:      make(map[identity.NodeID]*peer),
		initiators: make(map[uint32]*initiation),
		responders: make(map[uint32]*responding),
		pending:    make(map[identity.NodeID]*pendingPeer),
		addrOwner:  make(map[netip.AddrPort]identity.NodeID),
		ownIPs:     ownAddrs(local),
		routes:     newRouteTable(cfg.Key.ID, MaxPeers),
		ownSeq:     uint64(time.Now().UnixMilli()), // survives restarts: always fresher
		keys:       make(map[uint32]*session.Keypair),
		macs:       newHandshakeMACs(cfg.PSK),
		hsLimit:    newLimiter(cfg.HandshakesPerSecondPerSource, float64(cfg.HandshakeBurstPerSource), MaxRateLimiterEntries),
		relay:      newRelayState(),
	}
	// Half a round less than the rounds, so a token arriving at the same
	// phase each round is checked every OriginReverifyAnnouncements rounds.
	t.routes.reverifyAfter = OriginReverifyAnnouncements*cfg.HeartbeatInterval - cfg.HeartbeatInterval/2
	t.tickNanos.Store(t.monoNanos(time.Now()))
	if err := t.SetCertificate(cfg.Certificate); err != nil {
		return nil, fmt.Errorf("transport: certificate: %w", err)
	}
	noLinks := make(map[netip.AddrPort]*link)
	t.links.Store(&noLinks)
	for _, ap := range boots {
		if t.isOwnAddr(ap) {
			continue // joining through ourselves: nothing to do
		}
		t.bootstraps = append(t.bootstraps, &bootstrap{addr: ap})
	}
	return t, nil
}

// ownAddrs is the set of IPs a socket bound at local receives on beyond
// local itself: for a wildcard socket, every interface
// address of this host (best effort; loopback is checked apart), so a node whose cluster file names
// it as a bootstrap does not try to join through itself.
func ownAddrs(local netip.AddrPort) map[netip.Addr]bool {
	own := map[netip.Addr]bool{}
	if !local.Addr().IsUnspecified() {
		return own
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
				own[ip.Unmap()] = true
			}
		}
	}
	return own
}

// isOwnAddr reports whether packets to ap reach this node's own socket.
func (t *Transport) isOwnAddr(ap netip.AddrPort) bool {
	if ap == t.local {
		return true
	}
	wild := t.local.Addr().IsUnspecified()
	return ap.Port() == t.local.Port() && wild && (t.ownIPs[ap.Addr()] || ap.Addr().IsLoopback())
}

// Start runs the read and timer loops until ctx is done or Close is called.
// It returns at once; the loops run in the background.
func (t *Transport) Start(ctx context.Context) {
	t.startOnce.Do(func() {
		t.wg.Add(2)
		go t.readLoop()
		go t.tickLoop()
		go func() {
			select {
			case <-ctx.Done():
				t.Close()
			case <-t.ctx.Done():
			}
		}()
	})
}

// Close closes the socket and stops every loop.
func (t *Transport) Close() error {
	var err error
	t.closeOnce.Do(func() {
		t.cancel()
		err = t.conn.Close()
		t.wg.Wait()
	})
	return err
}

// LocalAddr is the socket's address.
func (t *Transport) LocalAddr() string { return t.local.String() }

// Self is this node's id.
func (t *Transport) Self() identity.NodeID { return t.self }

// Handle registers h for ch. messaging.ChanControl is the transport's own.
func (t *Transport) Handle(ch messaging.Channel, h messaging.Handler) {
	t.handlersMu.Lock()
	if h == nil {
		delete(t.handlers, ch)
	} else {
		t.handlers[ch] = h
	}
	t.handlersMu.Unlock()
}

// Stats returns the counters.
func (t *Transport) Stats() messaging.Stats {
	s := &t.stats
	return messaging.Stats{
		PacketsIn: s.packetsIn.Load(), PacketsOut: s.packetsOut.Load(),
		BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load(),
		Drops: s.drops.Load(), ReplaysRejected: s.replays.Load(),
		AuthFailures: s.authFailures.Load(), HandshakesRateLimited: s.rateLimited.Load(),
		Forwarded: s.forwarded.Load(), PendingDrops: s.pendingDrops.Load(),
		HandshakeMAC1Failures: s.mac1Failures.Load(), CookieRepliesSent: s.cookieReplies.Load(),
		RespondersEvicted: s.evictions.Load(), RoamsRefused: s.roamsRefused.Load(),
		HeartbeatsOut: s.heartbeatsOut.Load(), HeartbeatsIn: s.heartbeatsIn.Load(),
		BulkWaits: s.bulkWaits.Load(),
	}
}

// Peers lists every known peer, direct and relayed, sorted by id.
func (t *Transport) Peers() []messaging.PeerInfo {
	now := time.Now()
	t.mu.Lock()
	out := make([]messaging.PeerInfo, 0, len(t.peers))
	for _, p := range t.peers {
		pi := messaging.PeerInfo{
			ID:          p.id,
			Health:      p.det.state,
			HealthSince: p.det.since,
			RTT:         p.rtt.srtt,
			RTTVar:      p.rtt.rttvar,
			Flaps:       p.det.flaps,
			LastHeard:   p.det.lastHeard,
			Role:        p.adm.Role,
			Subnet:      p.adm.Subnet,
			Session:     p.current != nil && !p.current.Expired(now, t.cfg.RejectAfterTime),
		}
		if t.isDirectLocked(p, now) {
			pi.Direct = true
			pi.Addr = p.addr.String()
		} else if r, ok := t.routes.lookup(p.id); ok {
			pi.NextHop = r.NextHop
		}
		out = append(out, pi)
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b messaging.PeerInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Routes returns the routing table (for the TUI's mesh edges and tests).
func (t *Transport) Routes() []Route { return t.routes.routes() }

// WaitForPeers blocks until at least n peers are Healthy with a session.
func (t *Transport) WaitForPeers(ctx context.Context, n int) error {
	tk := time.NewTicker(20 * time.Millisecond)
	defer tk.Stop()
	for {
		if t.healthyPeers() >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("transport: waiting for %d peers (have %d): %w", n, t.healthyPeers(), ctx.Err())
		case <-t.ctx.Done():
			return messaging.ErrClosed
		case <-tk.C:
		}
	}
}

func (t *Transport) healthyPeers() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, p := range t.peers {
		if p.det.state == snapshot.Healthy && p.current != nil {
			n++
		}
	}
	return n
}

// newIndexLocked picks a fresh random session index.
func (t *Transport) newIndexLocked() uint32 {
	var b [4]byte
	for {
		rand.Read(b[:])
		i := binary.BigEndian.Uint32(b[:])
		if i == 0 {
			continue
		}
		t.keysMu.RLock()
		_, used := t.keys[i]
		t.keysMu.RUnlock()
		if used || t.initiators[i] != nil || t.responders[i] != nil {
			continue
		}
		return i
	}
}

func randomU64() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:])
}

// getPeerLocked returns (creating if room) the peer entry for id.
func (t *Transport) getPeerLocked(id identity.NodeID, now time.Time) *peer {
	if p := t.peers[id]; p != nil {
		return p
	}
	if id == t.self || !id.Valid() || len(t.peers) >= MaxPeers {
		return nil
	}
	p := &peer{id: id, det: newDetector(now), changed: make(chan struct{}), discovered: now, lastRoute: now}
	t.peers[id] = p
	return p
}

func (p *peer) signal() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// isDirectLocked: the peer answered us directly, recently.
func (t *Transport) isDirectLocked(p *peer, now time.Time) bool {
	return p.addrVerified && !p.directAt.IsZero() && now.Sub(p.directAt) < t.cfg.suspectAfter()
}

// pathLocked is where packets for p go next: the routing table's next hop,
// else the peer's own address, else wherever it last spoke to us from. A
// direct route takes the peer's verified address, which is ahead of the
// table's for a tick after the peer moves (roamLocked).
func (t *Transport) pathLocked(p *peer, now time.Time) (netip.AddrPort, bool) {
	if r, ok := t.routes.lookup(p.id); ok && r.NextAddr.IsValid() {
		if r.NextHop == p.id && p.addrVerified {
			return p.addr, true
		}
		return r.NextAddr, true
	}
	if p.addr.IsValid() {
		return p.addr, true
	}
	if p.via.IsValid() {
		return p.via, true
	}
	return netip.AddrPort{}, false
}

// installLocked makes kp the peer's session (rotation). When two handshakes
// cross (both sides initiated within a handshake timeout), both ends keep
// the one the lower node id initiated, so they agree on which keys to send
// with; the other stays usable to receive.
func (t *Transport) installLocked(p *peer, kp *session.Keypair, now time.Time) {
	t.keysMu.Lock()
	t.keys[kp.LocalIndex] = kp
	t.keysMu.Unlock()
	lowerInitiated := func(k *session.Keypair) bool {
		return k.Initiator == (t.self < p.id)
	}
	cur := p.current
	if cur != nil && now.Sub(cur.Created) < t.cfg.HandshakeTimeout && lowerInitiated(cur) && !lowerInitiated(kp) {
		t.setPreviousLocked(p, kp, now)
	} else {
		if cur != nil {
			t.setPreviousLocked(p, cur, now)
		}
		p.current = kp
	}
	p.lastRoute = now
	p.signal()
}

func (t *Transport) setPreviousLocked(p *peer, kp *session.Keypair, now time.Time) {
	if p.previous != nil && p.previous != kp {
		t.dropKeyLocked(p.previous)
	}
	p.previous = kp
	p.previousUntil = now.Add(t.cfg.PreviousKeyOverlap)
}

func (t *Transport) dropKeyLocked(kp *session.Keypair) {
	t.keysMu.Lock()
	if t.keys[kp.LocalIndex] == kp {
		delete(t.keys, kp.LocalIndex)
	}
	t.keysMu.Unlock()
}
