package transport

import (
	"container/list"
	"net/netip"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/session"
	"github.com/deck-mesh/deck/node/wire"
)

// sendHandshake frames and enqueues one handshake packet with its macs:
// mac1 always, mac2 when cookie is set (message 1 to a responder under
// load). It returns mac1, which a cookie reply to the packet must match.
func (t *Transport) sendHandshake(typ wire.Type, dst identity.NodeID, to netip.AddrPort, sender, receiver uint32, noiseMsg []byte, cookie *[wire.CookieBytes]byte) ([wire.MACBytes]byte, bool) {
	p := getPacket()
	h := wire.Header{
		Version: wire.Version, Type: typ, Src: t.self, Dst: dst,
		Counter: randomU64(), // distinguishes retries for relays' duplicate filter
		TTL:     wire.DefaultTTL,
	}
	h.Encode(p.buf[:])
	b := wire.AppendHandshake(p.buf[:wire.HeaderSize], &wire.Handshake{SenderIndex: sender, ReceiverIndex: receiver, Noise: noiseMsg})
	if len(b) > wire.MaxPacketBytes {
		putPacket(p)
		return [wire.MACBytes]byte{}, false
	}
	mac1 := t.macs.seal(b, cookie)
	p.n = int32(len(b))
	return mac1, t.enqueue(to, p)
}

// sendInitLocked sends in's message 1 to to, with mac2 when in holds a
// fresh cookie, and remembers what a cookie reply to it must match.
func (t *Transport) sendInitLocked(in *initiation, to netip.AddrPort, now time.Time) {
	mac1, ok := t.sendHandshake(wire.TypeHandshakeInit, in.peerID, to, in.index, 0, in.cookie.noise, in.cookie.fresh(now))
	if !ok {
		return
	}
	in.sentAt = now
	in.cookie.to, in.cookie.lastMAC1, in.cookie.awaiting = to, mac1, true
}

// startInitiationLocked sends message 1 of a new attempt for in (a fresh
// ephemeral and index every time, as wireguard does).
func (t *Transport) startInitiationLocked(in *initiation, now time.Time) {
	if in.index != 0 {
		delete(t.initiators, in.index)
	}
	if in.kp != nil {
		t.dropKeyLocked(in.kp)
		in.kp, in.final = nil, nil
	}
	in.index = t.newIndexLocked()
	hs, msg1, err := t.static.Initiate(in.index, in.peerID)
	if err != nil {
		t.cfg.Logf("transport: initiate: %v", err)
		return
	}
	in.hs, in.sentAt, in.busy, in.resent = hs, now, false, false
	in.cookie.noise, in.cookie.awaiting, in.cookie.resent = msg1, false, false
	t.initiators[in.index] = in
	if to, ok := t.initTargetLocked(in, now); ok {
		t.sendInitLocked(in, to, now)
	} // else no way there yet; the retry may find one
}

// initTargetLocked is where in's message 1 goes: its bootstrap address,
// else the path to its peer.
func (t *Transport) initTargetLocked(in *initiation, now time.Time) (netip.AddrPort, bool) {
	if in.addr.IsValid() {
		return in.addr, true
	}
	p := t.peers[in.peerID]
	if p == nil {
		return netip.AddrPort{}, false
	}
	return t.pathLocked(p, now)
}

// retransmitInitLocked sends in's message 1 again, unchanged: the same
// ephemeral and index, so a message 2 answering any copy of it completes
// the attempt. A fresh message 1 per retry (what startInitiationLocked
// builds) strands every answer still in flight to the previous one: on a
// path slower than the retry timer (a busy relay, a loaded host) no answer
// ever matched, and each retry cost an X25519 key generation here and a
// full responder's work there. A copy of message 1 is what a replay is, which
// the responder already answers without harm (handleInit).
func (t *Transport) retransmitInitLocked(in *initiation, now time.Time) {
	to, ok := t.initTargetLocked(in, now)
	if !ok {
		return
	}
	in.cookie.resent = false
	in.resent = true
	t.sendInitLocked(in, to, now)
}

// retransmitFinalLocked sends in's message 3 again while its session waits
// for the responder's first packet: restarting the handshake there threw
// away a session the responder may already hold, whenever confirmation
// took longer than the retry timer. The responder takes message 3 once
// (handleFinal); a copy of it finds nothing.
func (t *Transport) retransmitFinalLocked(in *initiation) {
	t.sendHandshake(wire.TypeHandshakeFinal, in.kp.Peer, in.finalTo, in.kp.LocalIndex, in.kp.RemoteIndex, in.final, nil)
}

// jittered spreads d over [3/4 d, 5/4 d) so that nodes which started
// together (a rack powering up, a simulation) do not retry in lockstep.
func jittered(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d*3/4 + time.Duration(randomU64()%uint64(d/2+1))
}

// initiateLocked starts a handshake with p unless one is in flight.
func (t *Transport) initiateLocked(p *peer, now time.Time) {
	if p.init != nil {
		return
	}
	in := &initiation{peerID: p.id, started: now, retry: t.cfg.HandshakeRetryInitial}
	in.next = now.Add(jittered(in.retry))
	p.init = in
	t.startInitiationLocked(in, now)
}

func (t *Transport) initiateBootstrapLocked(b *bootstrap, now time.Time) {
	in := &initiation{boot: b, addr: b.addr, started: now, retry: t.cfg.HandshakeRetryInitial}
	in.next = now.Add(jittered(in.retry))
	b.init = in
	t.startInitiationLocked(in, now)
}

// handleInit answers message 1. Nothing is known about the initiator yet
// (XX reveals it in message 3), so the order of checks is the defence, each
// cheaper than what it protects:
//  1. mac1 (one BLAKE2s): a sender without the PSK gets nothing, not even
//     a rate-limiter bucket.
//  2. under load, mac2: a source that has not proved it receives at its
//     address gets a cookie reply (smaller than its message) and no state.
//  3. the per-source rate limit, charged to a proven source under load.
//  4. a responder slot, within the source's fair share, evicting the
//     oldest when the table is full (addResponderLocked).
//
// Only then is the DH work done. A replayed message 1 gets an answer
// nobody can complete and never touches a live session.
func (t *Transport) handleInit(from netip.AddrPort, h *wire.Header, pkt []byte) {
	var hb wire.Handshake
	if err := wire.ParseHandshake(pkt[wire.HeaderSize:], &hb); err != nil || hb.ReceiverIndex != 0 {
		t.stats.drops.Add(1)
		return
	}
	if !t.macs.checkMAC1(pkt) {
		t.stats.mac1Failures.Add(1)
		return
	}
	now := time.Now()
	t.mu.Lock()
	load := t.underLoadLocked(now)
	t.mu.Unlock()
	if load && !t.cookies.checkMAC2(pkt, from, now) {
		t.sendCookieReply(from, h, &hb, now)
		return
	}
	if !t.hsLimit.allow(from, now) {
		t.stats.rateLimited.Add(1)
		return
	}
	t.mu.Lock()
	idx := t.newIndexLocked()
	t.addResponderLocked(&responding{index: idx, from: from, src: h.Src, expires: now.Add(t.cfg.HandshakeTimeout)}, now)
	t.mu.Unlock()

	r, msg2, err := t.static.Respond(hb.Noise, idx, hb.SenderIndex)
	t.mu.Lock()
	if err != nil {
		t.removeResponderLocked(idx)
		t.mu.Unlock()
		t.stats.authFailures.Add(1)
		return
	}
	if rs := t.responders[idx]; rs != nil {
		rs.r = r
	}
	t.mu.Unlock()
	// Reply the way message 1 came: the initiator may not be routable yet.
	t.sendHandshake(wire.TypeHandshakeResp, h.Src, from, idx, hb.SenderIndex, msg2, nil)
}

// sendCookieReply answers a message 1 that came without a valid mac2 while
// we are under load: the cookie of the address it came from, sealed to its
// mac1. Nothing is stored. The reply is smaller than the message, so a
// spoofed flood cannot use us as an amplifier.
func (t *Transport) sendCookieReply(to netip.AddrPort, h *wire.Header, hb *wire.Handshake, now time.Time) {
	cookie := t.cookies.cookie(to, now)
	cr := wire.CookieReply{ReceiverIndex: hb.SenderIndex}
	t.macs.sealCookie(&cr, &cookie, hb.MAC1[:])
	p := getPacket()
	rh := wire.Header{
		Version: wire.Version, Type: wire.TypeCookieReply, Src: t.self, Dst: h.Src,
		Counter: randomU64(), TTL: wire.DefaultTTL,
	}
	rh.Encode(p.buf[:])
	p.n = int32(len(wire.AppendCookieReply(p.buf[:wire.HeaderSize], &cr)))
	if t.enqueue(to, p) {
		t.stats.cookieReplies.Add(1)
	}
}

// handleCookieReply takes a responder's cookie for a message 1 of ours that
// is still waiting for message 2. A reply is taken once per message 1 sent
// and must open under the PSK with that message's mac1, so an off-path
// party cannot plant a cookie (at worst one makes our mac2 wrong, which
// costs a retry). The first cookie of an attempt resends its message 1 at
// once with mac2; after that the retry timer carries on as usual, so a
// responder that keeps refusing our mac2 cannot make us loop.
func (t *Transport) handleCookieReply(h *wire.Header, pkt []byte) {
	var cr wire.CookieReply
	if err := wire.ParseCookieReply(pkt[wire.HeaderSize:], &cr); err != nil {
		t.stats.drops.Add(1)
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	in := t.initiators[cr.ReceiverIndex]
	if in == nil || in.hs == nil || in.kp != nil || in.busy || !in.cookie.awaiting ||
		(in.peerID != 0 && h.Src != in.peerID) {
		t.stats.drops.Add(1) // not for a message 1 of ours that is waiting
		return
	}
	cookie, err := t.macs.openCookie(&cr, in.cookie.lastMAC1[:])
	if err != nil {
		t.stats.authFailures.Add(1)
		return
	}
	in.cookie.awaiting = false
	in.cookie.value, in.cookie.at = cookie, now
	if in.cookie.resent {
		return
	}
	in.cookie.resent = true
	t.sendInitLocked(in, in.cookie.to, now)
}

// responding is a handshake we answered, waiting for message 3.
type responding struct {
	r       *session.Responder // nil while message 2 is being made
	expires time.Time
	src     identity.NodeID // the node the header claims
	index   uint32          // our index, its key in Transport.responders
	from    netip.AddrPort  // where message 1 came from: its source for shares

	age, share *list.Element // in responderSlots.age and its source's list
}

// responderSlots orders the half-open handshakes of Transport.responders
// (guarded by Transport.mu): by age, for expiry and eviction of the
// oldest, and by source, for the fair shares.
type responderSlots struct {
	age       list.List // *responding, oldest first
	bySource  map[netip.AddrPort]*list.List
	loadUntil time.Time // under load until then (UnderLoadHold)
}

// underLoadLocked: enough half-open handshakes that message 1 must prove
// its source with a cookie (ResponderLoadThreshold, held UnderLoadHold).
func (t *Transport) underLoadLocked(now time.Time) bool {
	return len(t.responders) >= ResponderLoadThreshold || now.Before(t.slots.loadUntil)
}

// addResponderLocked gives rs a slot. Nothing is refused here (the rate
// limit and the cookie were the refusals); room is made instead:
//
//   - A source at its fair share (ResponderFairShareSlots divided among
//     the sources holding slots, at least ResponderMinShare) evicts its
//     own oldest. A source's newest message 1 is the one its initiator is
//     waiting for: each retry starts a fresh attempt and abandons the
//     last, so a genuine node loses only slots it has itself given up on,
//     while a flooding source, however fast, keeps its share and no more.
//   - A full table (more flooding sources than the shares can serve)
//     evicts the oldest slot, passing over the slots of sources that hold
//     only that one (evictionVictimLocked). A genuine handshake completes
//     within a round trip of its message 2; a flood's slots are never
//     completed and would sit until HandshakeTimeout. Evicting the oldest
//     therefore takes a slot that is almost surely dead, and gives every
//     new message 1 the longest possible time to complete: the time the
//     flood takes to make MaxPendingResponders more slots, which the
//     per-source rate limit bounds (1,024 slots at 400 sources × 10/s is
//     a quarter of a second, many round trips). A responder short of CPU
//     reads message 3 late, behind a queue of the flood's message 1s; a
//     genuine initiator has one handshake in flight, a flooding source at
//     its rate many, so a source's only slot goes last and a genuine
//     handshake survives even that. Refusing the newest instead (the rule
//     before issue 12) let a flood that refilled the table as fast as
//     slots expired starve everyone else; evicting at random would
//     sometimes kill a handshake a millisecond old.
func (t *Transport) addResponderLocked(rs *responding, now time.Time) {
	t.expireRespondersLocked(now)
	s := &t.slots
	if s.bySource == nil {
		s.bySource = make(map[netip.AddrPort]*list.List)
	}
	mine := s.bySource[rs.from]
	sources := len(s.bySource)
	if mine == nil {
		sources++
	}
	share := max(ResponderMinShare, ResponderFairShareSlots/sources)
	for mine != nil && mine.Len() >= share {
		t.evictLocked(mine.Front().Value.(*responding))
		mine = s.bySource[rs.from] // gone once emptied
	}
	for len(t.responders) >= MaxPendingResponders && s.age.Len() > 0 {
		t.evictLocked(t.evictionVictimLocked())
	}
	if mine == nil {
		mine = list.New()
		s.bySource[rs.from] = mine
	}
	rs.age = s.age.PushBack(rs)
	rs.share = mine.PushBack(rs)
	t.responders[rs.index] = rs
	if len(t.responders) >= ResponderLoadThreshold {
		s.loadUntil = now.Add(UnderLoadHold)
	}
}

// evictionVictimLocked is the slot a full table gives up: the oldest of a
// source holding more than one, among the ResponderEvictScan oldest (a
// bound on the work), else the oldest of all.
func (t *Transport) evictionVictimLocked() *responding {
	oldest := t.slots.age.Front()
	e := oldest
	for range ResponderEvictScan {
		if e == nil {
			break
		}
		rs := e.Value.(*responding)
		if t.slots.bySource[rs.from].Len() > 1 {
			return rs
		}
		e = e.Next()
	}
	return oldest.Value.(*responding)
}

func (t *Transport) evictLocked(rs *responding) {
	t.removeResponderLocked(rs.index)
	t.stats.evictions.Add(1)
}

// removeResponderLocked forgets the responder at index and returns it (nil
// when there was none).
func (t *Transport) removeResponderLocked(index uint32) *responding {
	rs := t.responders[index]
	if rs == nil {
		return nil
	}
	delete(t.responders, index)
	t.slots.age.Remove(rs.age)
	if mine := t.slots.bySource[rs.from]; mine != nil {
		mine.Remove(rs.share)
		if mine.Len() == 0 {
			delete(t.slots.bySource, rs.from)
		}
	}
	return rs
}

// expireRespondersLocked drops responders past HandshakeTimeout. Slots
// expire in the order they were made (one timeout for all), so only the
// expired ones are looked at.
func (t *Transport) expireRespondersLocked(now time.Time) {
	for e := t.slots.age.Front(); e != nil; e = t.slots.age.Front() {
		rs := e.Value.(*responding)
		if !now.After(rs.expires) {
			return
		}
		t.removeResponderLocked(rs.index)
	}
}

// handleResp reads message 2 of a handshake we started: the responder's
// record is verified (static first), then message 3 goes back.
func (t *Transport) handleResp(from netip.AddrPort, h *wire.Header, pkt []byte) {
	var hb wire.Handshake
	if err := wire.ParseHandshake(pkt[wire.HeaderSize:], &hb); err != nil {
		t.stats.drops.Add(1)
		return
	}
	if !t.macs.checkMAC1(pkt) {
		t.stats.mac1Failures.Add(1)
		return
	}
	now := time.Now()
	t.mu.Lock()
	in := t.initiators[hb.ReceiverIndex]
	if in == nil || in.kp != nil || in.busy || in.hs == nil {
		t.mu.Unlock()
		t.stats.drops.Add(1) // stale, duplicate or replayed message 2
		return
	}
	in.busy = true
	hs, sentAt := in.hs, in.sentAt
	t.mu.Unlock()

	msg3, kp, err := hs.Finish(hb.Noise, hb.SenderIndex, now)
	if err == nil && kp.Peer != h.Src {
		err = session.ErrUnexpectedPeer // header claims one node, record proves another
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.initiators[hb.ReceiverIndex] != in {
		return // abandoned or retried meanwhile
	}
	if err != nil {
		t.stats.authFailures.Add(1)
		t.cfg.Logf("transport: handshake response from %s: %v", from, err)
		// This attempt's Noise state is spent; the retry timer starts over.
		delete(t.initiators, in.index)
		in.index, in.hs = 0, nil
		return
	}
	adm, aerr := t.admit(kp, now)
	if aerr != nil {
		// Not a member here: the attempt ends, the session stays as the
		// pending peer's, and message 3 still goes out so the responder
		// can judge us (and tell us what it thinks).
		t.endInitiationLocked(in, now)
		t.addPendingLocked(kp, from, aerr, now)
		t.sendHandshake(wire.TypeHandshakeFinal, kp.Peer, from, kp.LocalIndex, kp.RemoteIndex, msg3, nil)
		return
	}
	p := t.getPeerLocked(kp.Peer, now)
	if p == nil {
		return
	}
	t.dropPendingLocked(kp.Peer)
	p.setAdmitted(kp, adm)
	if in.boot != nil {
		in.boot.peerID = kp.Peer
	}
	in.kp = kp
	t.keysMu.Lock()
	t.keys[kp.LocalIndex] = kp
	t.keysMu.Unlock()
	direct := h.TTL == wire.DefaultTTL
	if direct {
		t.notePathLocked(p, from, true, now)
	} else {
		p.via = from
	}
	if !in.resent {
		p.rtt.sample(now.Sub(sentAt)) // Karn: a resent message 1 times nothing
	}
	in.final, in.finalTo = msg3, from
	t.sendHandshake(wire.TypeHandshakeFinal, kp.Peer, from, kp.LocalIndex, kp.RemoteIndex, msg3, nil)
}

// confirmLocked promotes a session we initiated once the responder's first
// authenticated packet arrives on it.
func (t *Transport) confirmLocked(p *peer, kp *session.Keypair, now time.Time) {
	var in *initiation
	if p.init != nil && p.init.kp == kp {
		in = p.init
		p.init = nil
	}
	for _, b := range t.bootstraps {
		if b.init != nil && b.init.kp == kp {
			in = b.init
			b.init = nil
			b.backoff = 0
		}
	}
	if in == nil {
		return
	}
	delete(t.initiators, in.index)
	p.backoff = 0
	t.installLocked(p, kp, now)
	p.det.heard(now)
}

// handleFinal reads message 3 (where a wrong PSK fails), verifies the
// initiator and installs the session, rotating any previous one.
func (t *Transport) handleFinal(from netip.AddrPort, h *wire.Header, pkt []byte) {
	var hb wire.Handshake
	if err := wire.ParseHandshake(pkt[wire.HeaderSize:], &hb); err != nil {
		t.stats.drops.Add(1)
		return
	}
	if !t.macs.checkMAC1(pkt) {
		t.stats.mac1Failures.Add(1)
		return
	}
	now := time.Now()
	t.mu.Lock()
	// One shot: a replayed message 3 finds nothing.
	rs := t.removeResponderLocked(hb.ReceiverIndex)
	t.mu.Unlock()
	if rs == nil || rs.r == nil || now.After(rs.expires) {
		t.stats.drops.Add(1)
		return
	}
	if rs.src != h.Src || rs.r.RemoteIndex != hb.SenderIndex {
		t.stats.authFailures.Add(1)
		return
	}
	kp, err := rs.r.Finish(hb.Noise, now)
	if err == nil && kp.Peer != h.Src {
		err = session.ErrUnexpectedPeer
	}
	if err != nil {
		t.stats.authFailures.Add(1)
		t.cfg.Logf("transport: handshake final from %s: %v", from, err)
		return
	}
	adm, aerr := t.admit(kp, now)
	t.mu.Lock()
	if aerr != nil {
		pp := t.addPendingLocked(kp, from, aerr, now)
		notice := t.pendingPacketLocked(pp, kp, from, now)
		t.mu.Unlock()
		t.sendNotice(notice)
		return
	}
	p := t.getPeerLocked(kp.Peer, now)
	if p == nil {
		t.mu.Unlock()
		return
	}
	t.dropPendingLocked(kp.Peer)
	p.setAdmitted(kp, adm)
	t.notePathLocked(p, from, h.TTL == wire.DefaultTTL, now)
	t.installLocked(p, kp, now)
	p.det.heard(now)
	t.mu.Unlock()
	// Confirm on the new session at once, by the path message 3 came.
	msg := []byte{byte(wire.ControlConfirm)}
	t.sealAndSend(kp, from, messaging.ChanControl, msg)
}

// endInitiationLocked retires an attempt whose handshake completed with a
// peer that is not a member: no retry, and a bootstrap waits its backoff.
func (t *Transport) endInitiationLocked(in *initiation, now time.Time) {
	delete(t.initiators, in.index)
	in.index, in.hs = 0, nil
	if in.boot != nil {
		b := in.boot
		b.init = nil
		b.backoff = min(max(2*b.backoff, t.cfg.HeartbeatInterval), ReconnectBackoffMax)
		b.nextAttempt = now.Add(b.backoff)
		return
	}
	if p := t.peers[in.peerID]; p != nil && p.init == in {
		p.init = nil
		p.failures++
		p.backoff = min(max(2*p.backoff, t.cfg.HeartbeatInterval), ReconnectBackoffMax)
		p.nextAttempt = now.Add(p.backoff)
		p.signal()
	}
}

// abandonLocked gives up on an initiation after HandshakeTimeout.
func (t *Transport) abandonLocked(in *initiation, now time.Time) {
	delete(t.initiators, in.index)
	if in.kp != nil {
		t.dropKeyLocked(in.kp)
	}
	if in.boot != nil {
		b := in.boot
		b.init = nil
		b.backoff = min(max(2*b.backoff, t.cfg.HeartbeatInterval), ReconnectBackoffMax)
		b.nextAttempt = now.Add(b.backoff)
		return
	}
	if p := t.peers[in.peerID]; p != nil && p.init == in {
		p.init = nil
		p.failures++
		p.backoff = min(max(2*p.backoff, t.cfg.HeartbeatInterval), ReconnectBackoffMax)
		p.nextAttempt = now.Add(p.backoff)
		p.signal()
	}
}
