package transport

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/session"
	"github.com/deck-mesh/deck/node/wire"
)

func (t *Transport) readLoop() {
	defer t.wg.Done()
	rb := newReadBatch(ReadBatchPackets)
	for {
		n, err := t.conn.ReadBatch(rb.bufs, rb.sizes, rb.from)
		if err != nil {
			if t.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			t.cfg.Logf("transport: read: %v", err)
			continue
		}
		t.handleBatch(rb, n)
	}
}

// handleBatch handles the first n datagrams of rb, then hands the relayed
// ones to their next hops (relay.go): nothing staged waits for the next
// read. It is the read loop's whole work per batch; the relay benchmark
// runs it as it is.
func (t *Transport) handleBatch(rb *readBatch, n int) {
	n = min(n, len(rb.bufs))
	r := &t.relay
	r.now = t.tickNanos.Load()
	r.console = t.isConsole()
	var bytes uint64
	for i := range n {
		size := rb.sizes[i]
		bytes += uint64(max(size, 0))
		if uint(size) > wire.MaxPacketBytes {
			r.drops++ // truncated: larger than any packet we send
			continue
		}
		if t.handlePacket(rb.from[i], rb.pkts[i], size, &rb.ann) {
			p := r.buffer() // the read buffer went to a link
			rb.pkts[i], rb.bufs[i] = p, p.buf[:]
		}
	}
	t.stats.packetsIn.Add(uint64(n))
	t.stats.bytesIn.Add(bytes)
	t.flushRelay()
}

// handlePacket processes one datagram, p.buf[:n]. Everything in it is
// untrusted until the session AEAD (data) or the Noise handshake says
// otherwise. It reports whether it kept p (staged for relaying); else p is
// the caller's again when it returns.
func (t *Transport) handlePacket(from netip.AddrPort, p *outPacket, n int, ann *wire.Announcement) (kept bool) {
	pkt := p.buf[:n]
	var h wire.Header
	if err := h.Parse(pkt); err != nil {
		t.stats.drops.Add(1)
		return false
	}
	if h.Src == t.self || !h.Src.Valid() {
		t.stats.drops.Add(1) // our own packet came back, or no sender
		return false
	}
	if h.Dst != t.self && h.Dst != 0 {
		return t.forward(from, &h, p, n)
	}
	if h.Dst == 0 && (h.Type != wire.TypeHandshakeInit || h.TTL != wire.DefaultTTL) {
		t.stats.drops.Add(1) // only a direct bootstrap handshake may be unaddressed
		return false
	}
	switch h.Type {
	case wire.TypeHandshakeInit:
		t.handleInit(from, &h, pkt)
	case wire.TypeHandshakeResp:
		t.handleResp(from, &h, pkt)
	case wire.TypeHandshakeFinal:
		t.handleFinal(from, &h, pkt)
	case wire.TypeData:
		t.handleData(from, &h, pkt, ann)
	case wire.TypeCookieReply:
		t.handleCookieReply(&h, pkt)
	}
	return false
}

// forward relays a packet for another node by its header alone: TTL,
// duplicate filter, per-previous-hop rate limit, route lookup, staged for
// the next hop until the batch ends. The payload is never decrypted;
// relays hold no keys for it. It reports whether it kept p.
func (t *Transport) forward(from netip.AddrPort, h *wire.Header, p *outPacket, n int) bool {
	r := &t.relay
	if h.TTL <= 1 || r.console || t.dup.seen(h) || !r.budget.allow(from, r.now) {
		r.drops++
		return false
	}
	rt, ok := t.routes.lookup(h.Dst)
	next := rt.NextAddr
	if !ok {
		next, ok = t.fallbackPath(h.Dst)
	}
	if !ok || next == from || !next.IsValid() {
		r.drops++
		return false
	}
	if t.cfg.Scope != nil && h.Type == wire.TypeData && !t.cfg.Scope.Allow(messaging.Channel(h.Channel), h.Src, h.Dst) {
		r.drops++ // the channel's visibility rule keeps it on this side (Scope counts it)
		return false
	}
	// p is the read loop's buffer and goes to the link as it is: the TTL
	// is decremented in place.
	wire.SetTTL(p.buf[:n], h.TTL-1)
	p.n = int32(n)
	t.stage(next, p)
	return true
}

// fallbackPath serves destinations that have no route yet but that we can
// reach: a direct neighbour before its first announcement, or a peer whose
// handshake reached us through a relay (reverse path).
func (t *Transport) fallbackPath(dst identity.NodeID) (netip.AddrPort, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[dst]
	if p == nil {
		return netip.AddrPort{}, false
	}
	return t.pathLocked(p, time.Now())
}

// handleData authenticates, decrypts and delivers a data packet.
func (t *Transport) handleData(from netip.AddrPort, h *wire.Header, pkt []byte, ann *wire.Announcement) {
	t.keysMu.RLock()
	kp := t.keys[h.Index]
	t.keysMu.RUnlock()
	if kp == nil {
		t.stats.drops.Add(1) // unknown or retired session
		return
	}
	if kp.Peer != h.Src {
		t.stats.authFailures.Add(1) // index of one peer's session, claimed by another
		return
	}
	// Decrypt in place: the plaintext exactly overlaps the ciphertext.
	plain, err := kp.Open(pkt[wire.HeaderSize:wire.HeaderSize], h, pkt)
	if err != nil {
		if errors.Is(err, session.ErrReplay) {
			t.stats.replays.Add(1)
		} else {
			t.stats.authFailures.Add(1)
		}
		return
	}
	now := time.Now()
	direct := h.TTL == wire.DefaultTTL
	t.mu.Lock()
	if pp := t.pending[kp.Peer]; pp != nil && t.peers[kp.Peer] == nil {
		// Authenticated, but not a member: nothing reaches a service.
		notice := t.pendingPacketLocked(pp, kp, from, now)
		t.mu.Unlock()
		t.sendNotice(notice)
		return
	}
	p := t.getPeerLocked(kp.Peer, now)
	if p == nil {
		t.mu.Unlock()
		t.stats.drops.Add(1)
		return
	}
	t.notePathLocked(p, from, direct, now)
	if p.current != kp && p.previous != kp {
		// The first packet on a session we initiated confirms it: the
		// responder accepted message 3, PSK included.
		t.confirmLocked(p, kp, now)
	}
	msg := plain
	if h.Flags&wire.FlagFragment != 0 {
		var f wire.Fragment
		data, err := wire.ParseFragment(plain, &f)
		if err != nil {
			t.mu.Unlock()
			t.stats.drops.Add(1)
			return
		}
		msg, err = p.reasm.add(now, t.reasmLimits(), &f, data, messaging.Channel(h.Channel).Bulk())
		if err != nil {
			t.mu.Unlock()
			t.stats.drops.Add(1)
			t.cfg.Logf("transport: reassembly from %s: %v", kp.Peer, err)
			return
		}
	}
	t.mu.Unlock()
	if msg == nil {
		return // more fragments to come
	}
	t.dispatch(kp.Peer, messaging.Channel(h.Channel), msg, ann, direct)
}

func (t *Transport) reasmLimits() reassemblyLimits {
	return reassemblyLimits{
		maxMessages:     t.cfg.MaxReassemblyMessagesPerPeer,
		maxBytes:        t.cfg.MaxReassemblyBytesPerPeer,
		timeout:         t.cfg.ReassemblyTimeout,
		maxBulkMessages: max(1, t.cfg.MaxReassemblyMessagesPerPeer/2),
		maxBulkBytes:    t.cfg.MaxReassemblyBytesPerPeer / 2,
	}
}

func (t *Transport) dispatch(from identity.NodeID, ch messaging.Channel, msg []byte, ann *wire.Announcement, direct bool) {
	if ch == messaging.ChanControl {
		t.handleControl(from, msg, ann, direct)
		return
	}
	if t.cfg.Scope != nil && !t.cfg.Scope.Allow(ch, from, t.self) {
		// A direct (or unenforcing) path across the boundary: the rule
		// holds at the destination too.
		t.stats.drops.Add(1)
		return
	}
	t.handlersMu.RLock()
	h := t.handlers[ch]
	t.handlersMu.RUnlock()
	if h == nil {
		t.stats.drops.Add(1)
		return
	}
	h(from, msg)
}
