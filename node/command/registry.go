package command

import (
	"crypto/ed25519"
	"maps"
	"time"

	"github.com/deck-mesh/deck/node/identity"
)

// Registry is the operator set and the thresholds in force at one place in
// the ledger's (issued_at, id) order: what the signatures of an event at
// that place are checked against. It changes only by accepted registry
// events (add, remove, rotate an operator), so a node keeps one per change
// (see chainfold.State) and checks an arriving event against the one in
// force at the event's own position: bob's event signed before bob's
// removal verifies there, one signed after it does not. It is immutable.
type Registry struct {
	operators      map[identity.NodeID]OperatorEntry
	adminThreshold int
	iceThreshold   int
}

// Registry is a copy of the state's registry.
func (st *AdminState) Registry() *Registry {
	return &Registry{operators: maps.Clone(st.operators), adminThreshold: st.adminThreshold, iceThreshold: st.iceThreshold}
}

// Operator returns a registered operator.
func (r *Registry) Operator(id identity.NodeID) (OperatorEntry, bool) {
	op, ok := r.operators[id]
	if ok {
		op.PublicKey = append(ed25519.PublicKey(nil), op.PublicKey...)
	}
	return op, ok
}

// Len is the number of registered operators.
func (r *Registry) Len() int { return len(r.operators) }

// Thresholds are the admin and ICE signature thresholds.
func (r *Registry) Thresholds() (admin, ice int) { return r.adminThreshold, r.iceThreshold }

// VerifySignatures checks ev's signatures exactly as the fold does
// (AdminState.Verify's first rule): the proposer registered and signed, a
// rotation signed by both keys, the kind's threshold of distinct operators.
func (r *Registry) VerifySignatures(ev *Event) error {
	return verifySignatures(r.operators, r.adminThreshold, r.iceThreshold, ev)
}

// CheckOneSignaturePerOperator refuses an event carrying two signatures
// that claim one operator. The fold tolerates them (an operator counts
// once, whichever of its signatures verifies), but an operator's ed25519
// signature over one payload is always the same bytes, so a second one is
// junk; refused at ingestion, it cannot make a node check thirty-two
// signatures that all claim the proposer.
func CheckOneSignaturePerOperator(ev *Event) error {
	for i := 1; i < len(ev.sigs); i++ {
		if ev.sigs[i].Operator == ev.sigs[i-1].Operator {
			return reject(ErrMalformed, "two signatures claim operator %s", ev.sigs[i].Operator)
		}
	}
	return nil
}

// CommitWindow is how long after issue an event of kind k may be committed:
// ICECommitWindow for ICE, AdminCommitWindow for admin and registry events.
func CommitWindow(k Kind) time.Duration {
	if k == KindICE {
		return ICECommitWindow
	}
	return AdminCommitWindow
}

// CheckFresh is the receiving node's clock rule for an event that comes
// without a receipt: by the receiver's clock now, the event may be issued at
// most skew in the future and no longer ago than its commit window plus
// skew. Both sides use the receiver's clock, never the signer's claim
// alone: an issued_at is whatever its signer chose.
func CheckFresh(ev *Event, now time.Time, skew time.Duration) error {
	issued := ev.IssuedAt()
	if ahead := issued.Sub(now); ahead > skew {
		return reject(ErrClockSkew, "issued %v ahead of this node's clock (allowance %v)", ahead.Round(time.Millisecond), skew)
	}
	window := CommitWindow(ev.Kind())
	if late := now.Sub(issued.Add(window + skew)); late > 0 {
		return reject(ErrExpired, "issued %s: its %v commit window (+%v skew allowance) closed %v ago by this node's clock",
			issued.Format(time.RFC3339), window, skew, late.Round(time.Millisecond))
	}
	return nil
}

// InReceiptWindow reports whether a node receiving ev at at received it
// fresh by that node's clock, within skew: at in [issued_at − skew,
// issued_at + commit window + skew]. A receipt dated outside it attests
// nothing.
func InReceiptWindow(ev *Event, at time.Time, skew time.Duration) bool {
	issued := ev.IssuedAt()
	return !at.Before(issued.Add(-skew)) && !at.After(issued.Add(CommitWindow(ev.Kind())+skew))
}
