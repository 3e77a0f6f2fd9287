package transport

import (
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/wire"
)

// Route origin tokens: why a neighbour cannot make a route look fresher
// than its destination made it.
//
// Distance vector ranks routes by the destination's sequence number first
// (a fresher route wins whatever its metric; a route lagging the freshest
// by more than RouteSeqSlack is stale). Before issue 12 that number was a
// neighbour's say-so, so one announcement of (victim, huge seq, metric 0)
// made every honest route to the victim stale at once, the direct link
// included, and the whole mesh sent the victim's traffic to the announcer.
//
// Now every node signs its own sequence number once per announcement round
// (wire.OriginToken: ed25519 over RouteOriginPrefix || id || seq, the id
// derived from the key that signs), and announcements carry, per
// destination, the freshest token the announcer holds. The receiver:
//   - verifies a token only when it proves a sequence number above the
//     freshest one already proven for that destination, so each token is
//     checked once per node, not once per neighbour per round;
//   - believes a route's sequence number only up to the freshest proven one
//     (min(announced, proven)), so an unproven or forged claim is clamped
//     to a number the destination really issued and cannot outrank the
//     honest routes; a claim at the proven number competes on metric alone;
//   - spends at most OriginVerificationsPerSecondPerNeighbour checks on any
//     one neighbour (burst OriginVerificationBurst), outside the peer lock,
//     and keeps at most maxDest proofs, dropping those that stopped
//     advancing (the destination is gone).
//
// Liveness follows: a candidate's sequence number now advances only when
// the destination's proven one does, so routes to a node that stopped
// signing expire everywhere after RouteExpiryAnnouncements rounds, however
// a neighbour keeps announcing it.
//
// A token proves a number, not a path or a metric: see routeTable for what
// a member can still do with metrics.

// originProof is the freshest verified token of one destination.
type originProof struct {
	tok      wire.OriginToken
	advanced time.Time // when tok.Seq last went up
}

// signOrigin is k's token for sequence number seq.
func signOrigin(k *identity.Key, seq uint64) wire.OriginToken {
	var buf [len(wire.RouteOriginPrefix) + 16]byte
	tok := wire.OriginToken{Seq: seq}
	copy(tok.PublicKey[:], k.Public)
	copy(tok.Signature[:], k.Sign(wire.AppendOriginSigned(buf[:0], k.ID, seq)))
	return tok
}

// verifyOrigin checks tok is dest's own: dest derives from the token's key
// and the signature over (dest, seq) is by that key.
func verifyOrigin(dest identity.NodeID, tok *wire.OriginToken) error {
	var buf [len(wire.RouteOriginPrefix) + 16]byte
	msg := wire.AppendOriginSigned(buf[:0], dest, tok.Seq)
	return identity.Verify(dest, tok.PublicKey[:], msg, tok.Signature[:])
}

// provenSeq is the freshest sequence number of dest proven by its own
// token, 0 when none is.
func (rt *routeTable) provenSeq(dest identity.NodeID) uint64 {
	if p := rt.origins[dest]; p != nil {
		return p.tok.Seq
	}
	return 0
}

// tokensToVerify appends to out the indexes of routes whose origin token
// would prove something new, as many as neighbour from's verification
// budget allows. A neighbour that is not up gets none checked: apply
// ignores its routes too.
func (rt *routeTable) tokensToVerify(from identity.NodeID, routes []wire.Route, now time.Time, out []int) []int {
	n := rt.nbrs[from]
	if n == nil || !n.up {
		return out
	}
	for i := range routes {
		r := &routes[i]
		if r.Origin.Seq == 0 || r.Dest == rt.self {
			continue
		}
		if p := rt.origins[r.Dest]; p != nil && r.Origin.Seq <= p.tok.Seq {
			continue // proves nothing new
		} else if p != nil && now.Sub(p.advanced) < rt.reverifyAfter {
			continue // proven recently enough to keep its routes fresh
		} else if p == nil && len(rt.origins) >= rt.maxDest {
			continue // no room to keep what it would prove
		}
		if !n.takeVerification(now) {
			break
		}
		out = append(out, i)
	}
	return out
}

// learnOrigin records a verified token of dest.
func (rt *routeTable) learnOrigin(dest identity.NodeID, tok *wire.OriginToken, now time.Time) {
	p := rt.origins[dest]
	if p == nil {
		if len(rt.origins) >= rt.maxDest || dest == rt.self {
			return
		}
		p = &originProof{}
		rt.origins[dest] = p
	}
	if tok.Seq > p.tok.Seq {
		p.tok, p.advanced = *tok, now
	}
}

// expireOrigins forgets proofs that stopped advancing: their destination
// stopped signing, and every route to it has expired.
func (rt *routeTable) expireOrigins(now time.Time, maxAge time.Duration) {
	for d, p := range rt.origins {
		if now.Sub(p.advanced) > maxAge {
			delete(rt.origins, d)
		}
	}
}

// takeVerification spends one signature check of the neighbour's budget.
func (n *neighbour) takeVerification(now time.Time) bool {
	if n.verifyAt.IsZero() {
		n.verifyBudget = OriginVerificationBurst
	} else if dt := now.Sub(n.verifyAt).Seconds(); dt > 0 {
		n.verifyBudget = min(OriginVerificationBurst, n.verifyBudget+dt*OriginVerificationsPerSecondPerNeighbour)
	}
	n.verifyAt = now
	if n.verifyBudget < 1 {
		return false
	}
	n.verifyBudget--
	return true
}
