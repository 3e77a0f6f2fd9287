package transport

import (
	"net/netip"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/session"
	"github.com/deck-mesh/deck/node/wire"
)

// sendHandshake frames and enqueues one handshake packet.
func (t *Transport) sendHandshake(typ wire.Type, dst identity.NodeID, to netip.AddrPort, sender, receiver uint32, noiseMsg []byte) bool {
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
		return false
	}
	p.n = len(b)
	return t.enqueue(to, p)
}

// startInitiationLocked sends message 1 of a new attempt for in (a fresh
// ephemeral and index every time, as wireguard does).
func (t *Transport) startInitiationLocked(in *initiation, now time.Time) {
	if in.index != 0 {
		delete(t.initiators, in.index)
	}
	if in.kp != nil {
		t.dropKeyLocked(in.kp)
		in.kp = nil
	}
	in.index = t.newIndexLocked()
	hs, msg1, err := t.static.Initiate(in.index, in.peerID)
	if err != nil {
		t.cfg.Logf("transport: initiate: %v", err)
		return
	}
	in.hs, in.sentAt, in.busy = hs, now, false
	t.initiators[in.index] = in
	to := in.addr
	if !to.IsValid() {
		p := t.peers[in.peerID]
		if p == nil {
			return
		}
		var ok bool
		if to, ok = t.pathLocked(p, now); !ok {
			return // no way there yet; the retry may find one
		}
	}
	t.sendHandshake(wire.TypeHandshakeInit, in.peerID, to, in.index, 0, msg1)
}

// initiateLocked starts a handshake with p unless one is in flight.
func (t *Transport) initiateLocked(p *peer, now time.Time) {
	if p.init != nil {
		return
	}
	in := &initiation{peerID: p.id, started: now, retry: t.cfg.HandshakeRetryInitial}
	in.next = now.Add(in.retry)
	p.init = in
	t.startInitiationLocked(in, now)
}

func (t *Transport) initiateBootstrapLocked(b *bootstrap, now time.Time) {
	in := &initiation{boot: b, addr: b.addr, started: now, retry: t.cfg.HandshakeRetryInitial}
	in.next = now.Add(in.retry)
	b.init = in
	t.startInitiationLocked(in, now)
}

// handleInit answers message 1. Nothing is known about the initiator yet
// (XX reveals it in message 3), so this is rate-limited per source and the
// state it creates is bounded and expires; a replayed message 1 gets an
// answer nobody can complete and never touches a live session.
func (t *Transport) handleInit(from netip.AddrPort, h *wire.Header, pkt []byte) {
	now := time.Now()
	if !t.hsLimit.allow(from, now) {
		t.stats.rateLimited.Add(1)
		return
	}
	var hb wire.Handshake
	if err := wire.ParseHandshake(pkt[wire.HeaderSize:], &hb); err != nil || hb.ReceiverIndex != 0 {
		t.stats.drops.Add(1)
		return
	}
	t.mu.Lock()
	if len(t.responders) >= MaxPendingResponders {
		t.expireRespondersLocked(now)
		if len(t.responders) >= MaxPendingResponders {
			t.mu.Unlock()
			t.stats.rateLimited.Add(1)
			return
		}
	}
	idx := t.newIndexLocked()
	t.responders[idx] = &responding{expires: now.Add(t.cfg.HandshakeTimeout), src: h.Src}
	t.mu.Unlock()

	r, msg2, err := t.static.Respond(hb.Noise, idx, hb.SenderIndex)
	t.mu.Lock()
	if err != nil {
		delete(t.responders, idx)
		t.mu.Unlock()
		t.stats.authFailures.Add(1)
		return
	}
	if rs := t.responders[idx]; rs != nil {
		rs.r = r
	}
	t.mu.Unlock()
	// Reply the way message 1 came: the initiator may not be routable yet.
	t.sendHandshake(wire.TypeHandshakeResp, h.Src, from, idx, hb.SenderIndex, msg2)
}

func (t *Transport) expireRespondersLocked(now time.Time) {
	for i, rs := range t.responders {
		if now.After(rs.expires) {
			delete(t.responders, i)
		}
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
		t.sendHandshake(wire.TypeHandshakeFinal, kp.Peer, from, kp.LocalIndex, kp.RemoteIndex, msg3)
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
	p.rtt.sample(now.Sub(sentAt))
	t.sendHandshake(wire.TypeHandshakeFinal, kp.Peer, from, kp.LocalIndex, kp.RemoteIndex, msg3)
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
	now := time.Now()
	t.mu.Lock()
	rs := t.responders[hb.ReceiverIndex]
	// One shot: a replayed message 3 finds nothing.
	delete(t.responders, hb.ReceiverIndex)
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
