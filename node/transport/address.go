package transport

import (
	"net/netip"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/wire"
)

// Addresses. A peer's address is where its authenticated packets come from
// directly (WireGuard's roaming): the first such packet from a new source
// moves the peer there, and every route through it follows. Nothing
// unauthenticated moves a peer, and neither does a packet that arrives
// from the live address of another peer: a relay that forwards without
// decrementing the TTL must not pass itself off as the peer's direct link.
//
// An address leaves this node in two ways: in route announcements (where
// a direct neighbour can be reached) and, through the node, in its
// snapshot (PublicAddr). Neither ever carries a wildcard address, nor a
// loopback or link-local one to a peer that does not share that scope: a
// loopback address names a different host at every receiver.

// shareableWith reports whether addr means the same place to a peer this
// node reaches at with as it does here: a loopback address only to a peer
// on loopback, a link-local one only to a peer on a link-local address,
// never an unspecified or multicast address.
func shareableWith(addr, with netip.AddrPort) bool {
	a := addr.Addr()
	switch {
	case !addr.IsValid() || addr.Port() == 0 || a.IsUnspecified() || a.IsMulticast():
		return false
	case a.IsLoopback():
		return with.Addr().IsLoopback()
	case a.IsLinkLocalUnicast():
		return with.Addr().IsLinkLocalUnicast()
	}
	return true
}

// publicAddr reports whether addr can be told to any peer (a snapshot
// goes to the whole cluster).
func publicAddr(addr netip.AddrPort) bool {
	return shareableWith(addr, netip.AddrPort{})
}

// notePathLocked records where an authenticated packet from p came from;
// direct says it arrived over the direct link (TTL untouched). A direct
// packet from a new source moves the peer there, unless that source is
// the live address of another peer (roamLocked).
func (t *Transport) notePathLocked(p *peer, from netip.AddrPort, direct bool, now time.Time) {
	p.via = from
	p.lastRoute = now
	if !direct {
		return
	}
	if p.addr != from || !p.addrVerified {
		if !t.roamLocked(p, from, now) {
			return // a relay's address: the packet counts as relayed
		}
	}
	p.directAt = now
}

// roamLocked makes from p's verified address. It refuses (and counts) an
// address that belongs to another peer whose direct link is live: packets
// of two nodes cannot both come directly from one socket, so the second
// came through the first, whatever its TTL says.
func (t *Transport) roamLocked(p *peer, from netip.AddrPort, now time.Time) bool {
	if owner := t.addrOwner[from]; owner != p.id && owner.Valid() {
		if o := t.peers[owner]; o != nil && o.addr == from && t.isDirectLocked(o, now) {
			t.stats.roamsRefused.Add(1)
			return false
		}
	}
	old, wasVerified := p.addr, p.addrVerified
	if wasVerified && t.addrOwner[old] == p.id {
		delete(t.addrOwner, old)
	}
	p.addr, p.addrVerified = from, true
	t.addrOwner[from] = p.id
	if wasVerified && old != from {
		t.cfg.Logf("transport: %s moved from %s to %s", p.id, old, from)
		// Routes through p (its own included) take the new address at the
		// next tick, not the next heartbeat round: traffic to p goes there
		// at once (pathLocked), relayed traffic a tick later. The tick
		// bounds how often a peer flipping its source can make us
		// recompute.
		t.neighboursMoved = true
	}
	return true
}

// releaseAddrLocked forgets p's claim on its address (p is forgotten).
func (t *Transport) releaseAddrLocked(p *peer) {
	if t.addrOwner[p.addr] == p.id {
		delete(t.addrOwner, p.addr)
	}
}

// announcedAddrLocked decides whether to take addr, announced by
// neighbour from as where p can be reached directly: only for a peer not
// verified at an address of its own, only an address that means the same
// here as at the announcer, and never one of this node's own.
func (t *Transport) announcedAddrLocked(from identity.NodeID, p *peer, addr netip.AddrPort) bool {
	if !addr.IsValid() || p.addrVerified || addr == p.addr || t.isOwnAddr(addr) {
		return false
	}
	nb := t.peers[from]
	if nb == nil || !shareableWith(addr, nb.addr) {
		return false
	}
	if addr == t.learned || t.addrOwner[addr].Valid() {
		return false // ours, or where another peer is
	}
	return true
}

// Observed addresses (wire.ControlObserved): each node tells its direct
// neighbours where their packets come from, on first contact, when it
// changes, and every ObservedAddrRefresh. A node that listens on a
// wildcard address learns from them the address its peers reach it at.

// observedOutLocked queues, for a direct neighbour p, the address p is
// seen at when p has not been told it lately.
func (t *Transport) observedOutLocked(p *peer, now time.Time, out []outbound) []outbound {
	if !p.addrVerified || !publicAddr(p.addr) || p.current == nil {
		return out
	}
	if p.toldAddr == p.addr && now.Sub(p.toldAt) < ObservedAddrRefresh {
		return out
	}
	p.toldAddr, p.toldAt = p.addr, now
	return append(out, outbound{p.current, p.addr, wire.AppendObserved(nil, p.addr)})
}

// onObserved records a direct neighbour's report of where this node's
// packets come from. Only a member's report over the direct link counts
// (a relayed one describes the relay's path), and only an address that
// could be told to anyone.
func (t *Transport) onObserved(from identity.NodeID, msg []byte, direct bool, now time.Time) {
	addr, err := wire.ParseObserved(msg)
	if err != nil {
		t.stats.drops.Add(1)
		return
	}
	if !direct || !publicAddr(addr) {
		return
	}
	t.mu.Lock()
	if p := t.peers[from]; p != nil {
		p.seesUsAt, p.seesUsAtTime = addr, now
	}
	t.mu.Unlock()
}

// PublicAddr is the address peers reach this node at, as far as it knows:
// its bound address when that is specific and public (not a wildcard,
// loopback or link-local address); for a wildcard socket, the address
// most of its live direct neighbours report seeing it at (a tie keeps the
// one it had, else the lowest); invalid when it knows none. One neighbour
// cannot move it against the others: a lie shows only where a node has a
// single neighbour, and the address is informational (peers reach a node
// wherever its packets come from).
func (t *Transport) PublicAddr() netip.AddrPort {
	if !t.local.Addr().IsUnspecified() {
		if publicAddr(t.local) {
			return t.local
		}
		return netip.AddrPort{}
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	votes := make(map[netip.AddrPort]int)
	for _, p := range t.peers {
		if p.seesUsAt.IsValid() && now.Sub(p.seesUsAtTime) < ObservedAddrMaxAge && t.isDirectLocked(p, now) {
			votes[p.seesUsAt]++
		}
	}
	var best netip.AddrPort
	n := 0
	for a, c := range votes {
		if c > n || (c == n && a.Compare(best) < 0) {
			best, n = a, c
		}
	}
	if n > 0 && votes[t.learned] == n {
		best = t.learned // a tie keeps what we had
	}
	if n == 0 {
		best = netip.AddrPort{}
	}
	if best != t.learned && best.IsValid() {
		t.cfg.Logf("transport: peers reach this node at %s", best)
	}
	t.learned = best
	return best
}
