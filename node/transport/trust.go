package transport

import (
	"cmp"
	"net/netip"
	"slices"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/session"
	"github.com/deck-mesh/deck/node/wire"
)

// Membership beyond the PSK. The PSK is the outer gate: it lets a holder
// complete a handshake. Whether the peer behind that handshake is a member is
// the Trust's decision, made from the certificate it presents (nil when it
// presents none) and the operator registry the Trust holds. A peer the Trust
// refuses is *pending*: its session exists so it can be told why and be
// admitted later, but nothing it sends reaches a service, it is never a
// route or relay target, and it sits in a small table of its own
// (MaxPendingPeers, least recently seen evicted), not the peer table, so
// minted identities cannot crowd real nodes out.

// Admission is what the Trust grants a peer.
type Admission struct {
	Role    identity.Role
	Expires time.Time // the certificate's NotAfter: admission lapses then
	// Subnet is the peer's subnet as its certificate carries it ("" the
	// root, and for a node admitted on the ledger without a certificate).
	Subnet string
}

// Trust decides membership. Implementations must be safe for concurrent use
// and cheap (Admit runs once per handshake and per peer on Reassess; Known
// once per route in an announcement), and must not call back into the
// Transport.
type Trust interface {
	// Admit returns the admission of the peer with record rec presenting
	// cert (nil: none), or an error saying why it is not a member.
	Admit(rec *identity.NodeRecord, cert *identity.Certificate, now time.Time) (Admission, error)
	// Known reports whether id proved membership to this node (at a
	// handshake or through a certificate seen elsewhere, e.g. its signed
	// snapshot): routes to any other node are not believed.
	Known(id identity.NodeID, now time.Time) (Admission, bool)
}

// PendingPeer is a peer that completed a handshake without being admitted.
type PendingPeer struct {
	Record    identity.NodeRecord
	Addr      string // where its packets come from; "" for an address that means nothing to other hosts (loopback)
	FirstSeen time.Time
	LastSeen  time.Time
	Reason    string // why the Trust refused it
}

// pendingPeer is the transport's entry for a pending peer.
type pendingPeer struct {
	rec        *identity.NodeRecord
	cert       *identity.Certificate
	kp         *session.Keypair // its latest session, nil after a demotion
	addr       netip.AddrPort
	firstSeen  time.Time
	lastSeen   time.Time
	reason     string
	notifiedAt time.Time
}

// everyone is the admission without a Trust (transport tests, benchmarks).
var everyone = Admission{Role: identity.RoleNode, Expires: time.Unix(1<<40, 0)}

// admit asks the Trust about the peer behind kp.
func (t *Transport) admit(kp *session.Keypair, now time.Time) (Admission, error) {
	if t.cfg.Trust == nil {
		return everyone, nil
	}
	return t.cfg.Trust.Admit(kp.PeerRecord, kp.PeerCert, now)
}

// knownMember reports whether routes to id may be believed.
func (t *Transport) knownMember(id identity.NodeID, now time.Time) bool {
	if t.cfg.Trust == nil {
		return true
	}
	_, ok := t.cfg.Trust.Known(id, now)
	return ok
}

// setAdmittedLocked records on p what it was admitted with.
func (p *peer) setAdmitted(kp *session.Keypair, adm Admission) {
	p.rec, p.cert, p.adm = kp.PeerRecord, kp.PeerCert, adm
}

// addPendingLocked files the peer behind kp as pending, keeping its session
// so its packets authenticate (and are dropped) and it can be told why.
func (t *Transport) addPendingLocked(kp *session.Keypair, from netip.AddrPort, reason error, now time.Time) *pendingPeer {
	id := kp.Peer
	pp := t.pending[id]
	if pp == nil {
		if len(t.pending) >= MaxPendingPeers {
			t.evictPendingLocked()
		}
		pp = &pendingPeer{firstSeen: now}
		t.pending[id] = pp
		t.cfg.Logf("transport: %s (%s) is pending admission: %v", id, from, reason)
	} else if pp.kp != nil && pp.kp != kp {
		t.dropKeyLocked(pp.kp)
	}
	pp.rec, pp.cert, pp.kp, pp.addr, pp.lastSeen, pp.reason = kp.PeerRecord, kp.PeerCert, kp, from, now, reason.Error()
	t.keysMu.Lock()
	t.keys[kp.LocalIndex] = kp
	t.keysMu.Unlock()
	return pp
}

// evictPendingLocked drops the least recently seen pending peer.
func (t *Transport) evictPendingLocked() {
	var oldest identity.NodeID
	var at time.Time
	for id, pp := range t.pending {
		if !oldest.Valid() || pp.lastSeen.Before(at) {
			oldest, at = id, pp.lastSeen
		}
	}
	t.dropPendingLocked(oldest)
}

func (t *Transport) dropPendingLocked(id identity.NodeID) {
	if pp := t.pending[id]; pp != nil {
		if pp.kp != nil {
			t.dropKeyLocked(pp.kp)
		}
		delete(t.pending, id)
	}
}

// pendingPacketLocked handles an authenticated packet from a pending peer:
// it is noted and dropped, and the peer is told (at most every
// PendingNoticeInterval) that it is pending here and why.
func (t *Transport) pendingPacketLocked(pp *pendingPeer, kp *session.Keypair, from netip.AddrPort, now time.Time) (notice *outbound) {
	pp.lastSeen, pp.addr = now, from
	if pp.kp != kp && pp.kp != nil && kp != nil {
		// An older session of the same peer still works; keep the latest.
		pp.kp = kp
	}
	t.stats.pendingDrops.Add(1)
	if now.Sub(pp.notifiedAt) < PendingNoticeInterval || pp.kp == nil {
		return nil
	}
	pp.notifiedAt = now
	return &outbound{kp: pp.kp, addr: from, msg: wire.AppendPending(nil, pp.reason)}
}

// Pending lists the peers that completed a handshake without being
// admitted, by id.
func (t *Transport) Pending() []PendingPeer {
	t.mu.Lock()
	out := make([]PendingPeer, 0, len(t.pending))
	for _, pp := range t.pending {
		var addr string
		if publicAddr(pp.addr) {
			addr = pp.addr.String() // it goes to every node in our snapshot
		}
		out = append(out, PendingPeer{Record: *pp.rec, Addr: addr, FirstSeen: pp.firstSeen, LastSeen: pp.lastSeen, Reason: pp.reason})
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b PendingPeer) int { return cmp.Compare(a.Record.ID, b.Record.ID) })
	return out
}

// SetCertificate makes cert the certificate this node presents from its
// next handshake on (a renewal, or one issued after start); sessions up now
// keep the admission they had until they rekey.
func (t *Transport) SetCertificate(cert *identity.Certificate) error {
	if err := t.static.SetCertificate(cert); err != nil {
		return err
	}
	t.selfRole.Store(uint32(roleOf(cert)))
	return nil
}

// roleOf is the role a certificate gives this node; none is a node's
// (the mesh decides whether to believe it).
func roleOf(c *identity.Certificate) identity.Role {
	if c == nil {
		return identity.RoleNode
	}
	return c.Role
}

// isConsole: consoles never relay and never announce routes, so no node
// routes through them.
func (t *Transport) isConsole() bool {
	return identity.Role(t.selfRole.Load()) == identity.RoleConsole
}

// Reassess asks the Trust again about every peer: members it now refuses
// (revoked, expired, issuer removed) are cut off at once — sessions closed,
// routes withdrawn, filed as pending with the reason — and pending peers it
// now admits (an operator admitted them) are promoted with a fresh
// handshake. The node calls it when its registry changes; the timer loop
// calls it every ReassessInterval so expiries take effect.
func (t *Transport) Reassess() {
	if t.cfg.Trust == nil {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.reassessLocked(now)
}

func (t *Transport) reassessLocked(now time.Time) {
	changed := false
	for _, p := range t.peers {
		if p.rec == nil {
			// Known only from routes: keep it only while its membership is.
			if !t.knownMember(p.id, now) {
				t.forgetLocked(p)
				p.signal()
				changed = true
			}
			continue
		}
		adm, err := t.cfg.Trust.Admit(p.rec, p.cert, now)
		if err != nil {
			t.demoteLocked(p, err, now)
			changed = true
			continue
		}
		p.adm = adm
	}
	for id, pp := range t.pending {
		adm, err := t.cfg.Trust.Admit(pp.rec, pp.cert, now)
		if err != nil {
			pp.reason = err.Error()
			continue
		}
		t.cfg.Logf("transport: %s is admitted (%s)", id, adm.Role)
		p := t.getPeerLocked(id, now)
		if p == nil {
			continue
		}
		addr := pp.addr
		t.dropPendingLocked(id)
		if !p.addr.IsValid() {
			p.addr = addr
		}
		// A fresh handshake, judged again at its end, makes the session:
		// the pending one was never confirmed as a member's.
		t.initiateLocked(p, now)
	}
	if changed {
		t.recomputeRoutesLocked(now, true)
	}
}

// demoteLocked cuts a member off: its sessions and routes go, and it is
// filed as pending with the reason (so NODES shows why it left).
func (t *Transport) demoteLocked(p *peer, reason error, now time.Time) {
	t.cfg.Logf("transport: %s is no longer a member: %v", p.id, reason)
	rec, cert, addr := p.rec, p.cert, p.addr
	if p.init != nil {
		delete(t.initiators, p.init.index)
		if p.init.kp != nil {
			t.dropKeyLocked(p.init.kp)
		}
	}
	t.forgetLocked(p)
	p.signal()
	if len(t.pending) >= MaxPendingPeers {
		t.evictPendingLocked()
	}
	t.pending[p.id] = &pendingPeer{rec: rec, cert: cert, addr: addr, firstSeen: now, lastSeen: now, reason: reason.Error()}
}

// expirePendingLocked forgets pending peers not heard from for
// PendingPeerExpiry.
func (t *Transport) expirePendingLocked(now time.Time) {
	for id, pp := range t.pending {
		if now.Sub(pp.lastSeen) > PendingPeerExpiry {
			t.dropPendingLocked(id)
		}
	}
}

// onPendingNotice logs a member's notice that this node is pending there.
func (t *Transport) onPendingNotice(from identity.NodeID, msg []byte) {
	reason, err := wire.ParsePending(msg)
	if err != nil {
		t.stats.drops.Add(1)
		return
	}
	t.cfg.Logf("transport: %s does not admit this node yet: %s (an operator admits it with `deck node admit %s`)", from, reason, t.self)
	t.selfPending.Store(&pendingNotice{from: from, reason: reason, at: time.Now()})
}

type pendingNotice struct {
	from   identity.NodeID
	reason string
	at     time.Time
}

// PendingHere says whether a member told this node, within the last
// PendingNoticeInterval×3, that it is not admitted, and why.
func (t *Transport) PendingHere() (from identity.NodeID, reason string, ok bool) {
	n := t.selfPending.Load()
	if n == nil || time.Since(n.at) > 3*PendingNoticeInterval {
		return 0, "", false
	}
	return n.from, n.reason, true
}

// sendNotice sends a pending notice built under the lock.
func (t *Transport) sendNotice(o *outbound) {
	if o != nil {
		t.sealAndSend(o.kp, o.addr, messaging.ChanControl, o.msg)
	}
}
