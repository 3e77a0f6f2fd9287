package transport

import (
	"net/netip"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/session"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/node/wire"
)

// handleControl processes the transport's own channel. from is the
// authenticated sender; direct says the packet came over the direct link.
func (t *Transport) handleControl(from identity.NodeID, msg []byte, ann *wire.Announcement, direct bool) {
	kind, err := wire.ControlKindOf(msg)
	if err != nil {
		t.stats.drops.Add(1)
		return
	}
	now := time.Now()
	switch kind {
	case wire.ControlHeartbeat:
		// A neighbour's heartbeat may carry its route announcement right
		// behind it (see heartbeatsLocked).
		var bundled []byte
		if len(msg) > wire.HeartbeatSize {
			msg, bundled = msg[:wire.HeartbeatSize], msg[wire.HeartbeatSize:]
		}
		var hb wire.Heartbeat
		if err := wire.ParseHeartbeat(msg, &hb); err != nil {
			t.stats.drops.Add(1)
			return
		}
		t.stats.heartbeatsIn.Add(1)
		t.mu.Lock()
		if p := t.peers[from]; p != nil {
			t.onHeartbeatLocked(p, &hb, now)
		}
		t.mu.Unlock()
		if bundled != nil {
			if k, err := wire.ControlKindOf(bundled); err != nil || k != wire.ControlAnnouncement {
				t.stats.drops.Add(1)
				return
			}
			t.handleControl(from, bundled, ann, direct)
		}
	case wire.ControlAnnouncement:
		if err := wire.ParseAnnouncement(msg, ann); err != nil {
			t.stats.drops.Add(1)
			t.cfg.Logf("transport: announcement from %s: %v", from, err)
			return
		}
		if !direct {
			return // distance vector is between neighbours only
		}
		t.onAnnouncement(from, ann.Routes, now)
	case wire.ControlPending:
		t.onPendingNotice(from, msg)
	case wire.ControlObserved:
		t.onObserved(from, msg, direct, now)
	case wire.ControlConfirm:
		if err := wire.ParseConfirm(msg); err != nil {
			t.stats.drops.Add(1)
		}
		// Receiving it already confirmed the session (handleData).
	}
}

// onHeartbeatLocked is the membership step for one valid heartbeat:
// failure detector, RTT sample from the echoed timestamp, echo state.
func (t *Transport) onHeartbeatLocked(p *peer, hb *wire.Heartbeat, now time.Time) {
	if p.det.heard(now) {
		t.cfg.Logf("transport: %s is healthy", p.id)
	}
	if hb.EchoNanos > 0 {
		rtt := time.Duration(t.monoNanos(now) - hb.EchoNanos - hb.EchoHeldNs)
		// A sample is only believable if it fits inside our own clock.
		if rtt > 0 && rtt < t.cfg.UnreachableAfter {
			p.rtt.sample(rtt)
		}
	}
	p.echo, p.echoAt = hb.SentNanos, now
}

// monoNanos is our heartbeat clock: monotonic, in our own domain only (the
// peer echoes it back, never interprets it). Never 0, which means "none".
func (t *Transport) monoNanos(now time.Time) int64 {
	return now.Sub(monoEpoch).Nanoseconds() + 1
}

// monoEpoch anchors heartbeat timestamps; time.Time's monotonic reading
// makes differences from it immune to wall-clock steps.
var monoEpoch = time.Now()

// onAnnouncement checks the origin tokens a neighbour's announcement brings
// that prove something new (ed25519, outside the peer lock, within the
// neighbour's budget), records the valid ones, then merges the routes.
func (t *Transport) onAnnouncement(from identity.NodeID, routes []wire.Route, now time.Time) {
	t.mu.Lock()
	// Routes to non-members (and anything a console announces) are
	// dropped before any token is verified for them.
	routes = t.believableRoutesLocked(from, routes, now)
	t.learnOwnOriginLocked(from, routes, now)
	todo := t.routes.tokensToVerify(from, routes, now, nil)
	t.mu.Unlock()
	proven := todo[:0]
	for _, i := range todo {
		if verifyOrigin(routes[i].Dest, &routes[i].Origin) == nil {
			proven = append(proven, i)
		}
	}
	if bad := len(todo) - len(proven); bad > 0 {
		t.stats.authFailures.Add(uint64(bad))
		t.cfg.Logf("transport: announcement from %s: %d invalid origin tokens", from, bad)
	}
	t.mu.Lock()
	for _, i := range proven {
		t.routes.learnOrigin(routes[i].Dest, &routes[i].Origin, now)
	}
	t.onAnnouncementLocked(from, routes, now)
	t.mu.Unlock()
}

// learnOwnOriginLocked takes a neighbour's token for its own route without
// checking the signature: it came over the neighbour's authenticated
// session, and a node is the authority on its own sequence number. The
// token is kept (and passed on, where every other node checks it) only
// when its key is the neighbour's. In a full mesh every destination is a
// neighbour announcing itself, so no signature is checked at all; only
// destinations further away cost one check per round.
func (t *Transport) learnOwnOriginLocked(from identity.NodeID, routes []wire.Route, now time.Time) {
	for i := range routes {
		r := &routes[i]
		if r.Dest != from || r.Origin.Seq == 0 || r.Origin.Seq <= t.routes.provenSeq(from) {
			continue
		}
		if identity.IDFromPublicKey(r.Origin.PublicKey[:]) != from {
			continue
		}
		t.routes.learnOrigin(from, &r.Origin, now)
	}
}

// onAnnouncementLocked merges a neighbour's routing table and learns the
// addresses of nodes it can reach directly.
func (t *Transport) onAnnouncementLocked(from identity.NodeID, routes []wire.Route, now time.Time) {
	for i := range routes {
		r := &routes[i]
		if r.Dest == t.self {
			continue
		}
		p := t.getPeerLocked(r.Dest, now)
		if p == nil {
			continue
		}
		if r.MetricMicros != wire.MetricInfinity {
			p.lastRoute = now
		}
		if t.announcedAddrLocked(from, p, r.Addr) {
			p.addr = r.Addr
		}
	}
	if t.routes.apply(from, routes, now) {
		t.routesDirty = true
		t.recomputeRoutesLocked(now, false)
	}
}

// recomputeRoutesLocked rebuilds the best routes: at once when force (a
// link went up or down, a member was admitted or demoted), else only when
// an announcement changed the candidates and the last rebuild is at least
// routeRecomputeInterval old; the tick picks up what waits. Every
// neighbour announces once a heartbeat, and a rebuild walks every
// neighbour's candidates for every destination: rebuilding on each
// announcement cost O(neighbours² × destinations) a heartbeat per node,
// 18% of the CPU of a 128-node simulation, to learn news at most
// routeRecomputeInterval sooner.
func (t *Transport) recomputeRoutesLocked(now time.Time, force bool) {
	if !force && (!t.routesDirty || now.Sub(t.routesAt) < t.routeRecomputeInterval()) {
		return
	}
	t.routesDirty = false
	t.routesAt = now
	t.routes.recompute(now, t.routeExpiry())
}

// routeRecomputeInterval is the least time between two rebuilds of the
// routing table for announcements alone: a quarter heartbeat, the slow
// tick's period.
func (t *Transport) routeRecomputeInterval() time.Duration {
	return t.cfg.HeartbeatInterval / 4
}

// believableRoutesLocked keeps the routes of an announcement this node may
// act on: none from a console (consoles never relay), and only those to
// nodes that proved membership here, so a member cannot fill the tables
// with minted identities. It filters routes in place.
func (t *Transport) believableRoutesLocked(from identity.NodeID, routes []wire.Route, now time.Time) []wire.Route {
	if p := t.peers[from]; p != nil && p.adm.Role == identity.RoleConsole {
		return routes[:0]
	}
	if t.cfg.Trust == nil {
		return routes
	}
	kept := routes[:0]
	for _, r := range routes {
		if r.Dest == from || r.Dest == t.self || t.knownMember(r.Dest, now) {
			kept = append(kept, r)
		}
	}
	return kept
}

// announceInterval is the least time between two announcements to one
// neighbour: AnnounceEveryHeartbeats rounds, less half a round so a beat
// that runs a little early still sends.
func (t *Transport) announceInterval() time.Duration {
	return AnnounceEveryHeartbeats*t.cfg.HeartbeatInterval - t.cfg.HeartbeatInterval/2
}

func (t *Transport) routeExpiry() time.Duration {
	return RouteExpiryAnnouncements * t.cfg.HeartbeatInterval
}

func (t *Transport) tickLoop() {
	defer t.wg.Done()
	// While the mesh forms (the node's first formingWindow, or a handshake
	// in flight or due) the timers run at a tenth of a heartbeat:
	// retransmits start at HandshakeRetryInitial, and a coarser tick made
	// a 9-node demo converge ~100 ms later. Otherwise a quarter heartbeat
	// is resolution enough (the failure detector calls a peer Unreachable
	// at most that late) and an idle node wakes 4 times a second for it
	// instead of 10.
	fast := max(t.cfg.HeartbeatInterval/10, 5*time.Millisecond)
	slow := max(t.cfg.HeartbeatInterval/4, fast)
	start := time.Now()
	tm := time.NewTimer(fast)
	defer tm.Stop()
	var lastBeat time.Time
	for {
		select {
		case <-t.ctx.Done():
			return
		case now := <-tm.C:
			beat := now.Sub(lastBeat) >= t.cfg.HeartbeatInterval
			if beat {
				lastBeat = now
			}
			t.tick(now, beat)
			step := slow
			if now.Sub(start) < formingWindow || t.handshaking(now) {
				step = fast
			}
			tm.Reset(step)
		}
	}
}

// handshaking reports whether a handshake this node started is in flight,
// or one is due soon: a peer discovered within formingWindow has no session
// yet (the tick starts those handshakes, so a mesh forming on a slow tick
// would take a quarter heartbeat longer per discovery round).
func (t *Transport) handshaking(now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.initiators) > 0 {
		return true
	}
	for _, p := range t.peers {
		if p.current == nil && now.Sub(p.discovered) < formingWindow {
			return true
		}
	}
	return false
}

// formingWindow is how long the timers stay fast after the node starts, and
// after it discovers a peer it has no session with: past
// ProactiveConnectDelay, when both sides initiate, and past a demo's
// convergence.
const formingWindow = 5 * ProactiveConnectDelay

type outbound struct {
	kp   *session.Keypair
	addr netip.AddrPort
	msg  []byte
}

// tick runs the timers: handshake retries, the failure detector, rekeys,
// expiry, and (on a heartbeat round) heartbeats and announcements. Packets
// are built under the lock and sent after it.
func (t *Transport) tick(now time.Time, beat bool) {
	var out []outbound
	t.tickNanos.Store(t.monoNanos(now))
	t.mu.Lock()
	t.tickHandshakesLocked(now)
	t.expireRespondersLocked(now)
	t.expirePendingLocked(now)
	if now.Sub(t.reassessedAt) >= ReassessInterval && t.cfg.Trust != nil {
		t.reassessedAt = now
		t.reassessLocked(now)
	}
	routesChanged := false
	for _, p := range t.peers {
		before := p.det.state
		if p.det.tick(now, t.cfg.suspectAfter(), t.cfg.UnreachableAfter) {
			t.cfg.Logf("transport: %s is %v", p.id, p.det.state)
			if before == snapshot.Healthy {
				routesChanged = true
			}
		}
		if p.reasm.expire(now, t.cfg.ReassemblyTimeout) > 0 {
			t.stats.drops.Add(1)
		}
		if p.previous != nil && now.After(p.previousUntil) {
			t.dropKeyLocked(p.previous)
			p.previous = nil
		}
		t.maybeConnectLocked(p, now)
		if p.det.state == snapshot.Unreachable && now.Sub(p.lastRoute) > PeerForgetAfter && p.init == nil {
			t.forgetLocked(p)
			routesChanged = true
		}
	}
	if beat || routesChanged || t.neighboursMoved {
		t.neighboursMoved = false
		t.updateNeighboursLocked(now)
	} else {
		t.recomputeRoutesLocked(now, false) // announcements that waited
	}
	if beat {
		// A fresh sequence number each round, signed: our origin token
		// is the only proof of it a neighbour will believe (origin.go).
		t.ownSeq++
		t.routes.selfOrigin = signOrigin(t.cfg.Key, t.ownSeq)
		out = t.heartbeatsLocked(now, out)
	}
	t.mu.Unlock()
	for _, o := range out {
		if len(o.msg) > wire.MaxPlaintextBytes {
			t.sendMessage(o.kp, o.addr, messaging.ChanControl, o.msg)
		} else {
			t.sealAndSend(o.kp, o.addr, messaging.ChanControl, o.msg)
		}
	}
}

func (t *Transport) tickHandshakesLocked(now time.Time) {
	for _, in := range t.initiators {
		if now.Sub(in.started) >= t.cfg.HandshakeTimeout {
			t.cfg.Logf("transport: handshake with %s (%s) abandoned", in.peerID, in.addr)
			t.abandonLocked(in, now)
			continue
		}
		if now.After(in.next) && !in.busy {
			in.retry = min(2*in.retry, HandshakeRetryMax)
			in.next = now.Add(jittered(in.retry))
			switch {
			case in.hs != nil && in.kp == nil:
				t.retransmitInitLocked(in, now)
			case in.kp != nil && in.final != nil:
				t.retransmitFinalLocked(in)
			default:
				t.startInitiationLocked(in, now)
			}
		}
	}
	// An attempt whose message 2 failed was removed from initiators but is
	// still owned by its peer or bootstrap: restart it on its timer.
	restart := func(in *initiation) {
		if in == nil || in.index != 0 {
			return
		}
		if now.Sub(in.started) >= t.cfg.HandshakeTimeout {
			t.abandonLocked(in, now)
		} else if now.After(in.next) {
			in.retry = min(2*in.retry, HandshakeRetryMax)
			in.next = now.Add(jittered(in.retry))
			t.startInitiationLocked(in, now)
		}
	}
	for _, p := range t.peers {
		restart(p.init)
	}
	for _, b := range t.bootstraps {
		restart(b.init)
		if b.init != nil || now.Before(b.nextAttempt) {
			continue
		}
		if p := t.peers[b.peerID]; p != nil && p.current != nil && p.det.state != snapshot.Unreachable {
			continue // joined through it and it is alive
		}
		t.initiateBootstrapLocked(b, now)
	}
}

// maybeConnectLocked keeps a session with every known peer: it starts
// handshakes to peers learned from announcements, rekeys sessions that are
// old or used enough, and retries unreachable peers with backoff.
func (t *Transport) maybeConnectLocked(p *peer, now time.Time) {
	if p.init != nil || now.Before(p.nextAttempt) {
		return
	}
	if _, ok := t.pathLocked(p, now); !ok {
		return
	}
	kp := p.current
	if (kp == nil || p.det.state == snapshot.Unreachable) && t.cfg.Scope != nil && !t.cfg.Scope.Wanted(p.id) {
		// Outside this node's subnet: no session of its own making (a
		// peer's own handshake is still answered, and Send makes one on
		// demand), so heartbeats stay inside the subnet and its gateways.
		return
	}
	switch {
	case kp == nil:
		// The lower id initiates; the higher one waits a little first so two
		// nodes discovering each other rarely handshake twice. A console
		// does not wait: it is short-lived and only it knows it wants the
		// session (a node learns of a console behind a relay late, from
		// announcements, and the crossing rule settles a double handshake).
		if t.self > p.id && now.Sub(p.discovered) < ProactiveConnectDelay && !t.isConsole() {
			return
		}
	case kp.NeedsRekey(now, t.cfg.RekeyAfterTime, t.cfg.RekeyAfterMessages):
		// Time-based rekeys are the initiator's job (wireguard's rule),
		// with the other side as a fallback once keys near rejection.
		if !kp.Initiator && now.Sub(kp.Created) < t.cfg.RekeyAfterTime+(t.cfg.RejectAfterTime-t.cfg.RekeyAfterTime)/2 &&
			kp.Sent() < t.cfg.RekeyAfterMessages {
			return
		}
	case p.det.state == snapshot.Unreachable && now.Sub(p.det.since) >= t.cfg.HeartbeatInterval:
		// The peer may have restarted with fresh keys: try a new session.
		p.nextAttempt = now.Add(max(p.backoff, t.cfg.HeartbeatInterval))
		p.backoff = min(max(2*p.backoff, t.cfg.HeartbeatInterval), ReconnectBackoffMax)
	default:
		return
	}
	t.initiateLocked(p, now)
}

func (t *Transport) forgetLocked(p *peer) {
	for _, kp := range []*session.Keypair{p.current, p.previous} {
		if kp != nil {
			t.dropKeyLocked(kp)
		}
	}
	t.routes.removeNeighbour(p.id)
	t.releaseAddrLocked(p)
	delete(t.peers, p.id)
}

// updateNeighboursLocked tells the routing table which direct links are up
// and what they cost, and recomputes routes. A neighbour that turned
// Suspect is down, so traffic reroutes at once.
func (t *Transport) updateNeighboursLocked(now time.Time) {
	for _, p := range t.peers {
		up := t.isDirectLocked(p, now) && p.det.state == snapshot.Healthy && p.current != nil
		metric := uint32(DefaultLinkMetricMicros)
		if p.rtt.samples > 0 {
			metric = uint32(min(p.rtt.srtt.Microseconds(), 1<<30))
		}
		metric += HopPenaltyMicros
		if up {
			t.routes.setNeighbour(p.id, p.addr, metric, true, now)
		} else if t.routes.nbrs[p.id] != nil {
			t.routes.setNeighbour(p.id, p.addr, metric, false, now)
		}
	}
	t.recomputeRoutesLocked(now, true)
}

// heartbeatsLocked builds this round's heartbeats (to every peer with a
// session), announcements (to every direct neighbour) and, when due, the
// address each direct neighbour is seen at.
func (t *Transport) heartbeatsLocked(now time.Time, out []outbound) []outbound {
	for _, p := range t.peers {
		kp := p.current
		if kp == nil || kp.Expired(now, t.cfg.RejectAfterTime) {
			continue
		}
		p.hbSeq++
		hb := wire.Heartbeat{Seq: p.hbSeq, SentNanos: t.monoNanos(now)}
		if p.echo > 0 {
			hb.EchoNanos = p.echo
			hb.EchoHeldNs = now.Sub(p.echoAt).Nanoseconds()
		}
		msg := wire.AppendHeartbeat(make([]byte, 0, wire.HeartbeatSize), &hb)
		t.stats.heartbeatsOut.Add(1)
		direct := t.isDirectLocked(p, now)
		var ann []byte
		if direct && !t.isConsole() && now.Sub(p.annAt) >= t.announceInterval() {
			p.annAt = now
			t.annScratch = t.routes.announcement(p.id, t.annScratch)
			if b, err := wire.AppendAnnouncement(nil, &wire.Announcement{Routes: t.annScratch}); err == nil {
				ann = b
			}
			// One packet per neighbour per beat when both fit: half the
			// packets (and wake-ups on both ends) of an idle mesh. A big
			// announcement travels alone, so losing one of its fragments
			// never costs the heartbeat.
			if ann != nil && len(msg)+len(ann) <= wire.MaxPlaintextBytes {
				msg, ann = append(msg, ann...), nil
			}
		}
		// Probe the direct address even when the link is down: that is how
		// a direct link comes (back) up.
		if p.addr.IsValid() {
			out = append(out, outbound{kp, p.addr, msg})
		}
		if !direct {
			if addr, ok := t.pathLocked(p, now); ok && addr != p.addr {
				out = append(out, outbound{kp, addr, msg})
			}
		}
		if ann != nil {
			out = append(out, outbound{kp, p.addr, ann})
		}
		if direct {
			out = t.observedOutLocked(p, now, out)
		}
	}
	return out
}
