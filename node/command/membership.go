package command

import (
	"crypto/ed25519"
	"maps"
	"slices"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Membership in the admin ledger. A node is a member when it presents a
// certificate an operator issued (node/trust checks it against this
// registry), or when the ledger admits its key (admit-node: a pending node
// an operator let in; the admission stands in for a certificate on every
// node that folded it). revoke-node cuts a node off for good: its
// certificates and its admission stop counting everywhere the revocation has
// been folded, and a new key is the only way back.

// NodeAdmission is a node the ledger admitted.
type NodeAdmission struct {
	Node        identity.NodeID
	Key         ed25519.PublicKey
	AdmittedBy  identity.NodeID // the proposer
	AdmittedAt  time.Time       // issue time of the admit-node event
	NotAfter    time.Time       // the admission lapses then, as a certificate would
	EventNonce  Nonce
	Certificate bool // false: admitted by the ledger, not by a certificate
}

// NodeRevocation is a node the ledger revoked.
type NodeRevocation struct {
	Node      identity.NodeID
	RevokedBy identity.NodeID
	RevokedAt time.Time
}

// retiredKey is an operator key replaced by rotate-operator: certificates it
// issued before the rotation keep counting (the operator is the same person
// with a new key), while a removed operator's certificates stop.
type retiredKey struct {
	Key       ed25519.PublicKey
	RetiredMs int64
	Holder    identity.NodeID // the operator's current id (its latest key)
}

func (st *AdminState) checkMembership(a *api.Action) error {
	switch a.Verb {
	case api.VerbAdmitNode:
		if _, gone := st.revoked[a.Node]; gone {
			return reject(ErrRevoked, "node %s was revoked: it needs a new key", a.Node)
		}
		if _, ok := st.admitted[a.Node]; !ok && len(st.admitted) >= MaxAdmittedNodes {
			return reject(ErrStateFull, "%d admitted nodes", MaxAdmittedNodes)
		}
	case api.VerbRevokeNode:
		if _, gone := st.revoked[a.Node]; gone {
			return reject(ErrRevoked, "node %s is already revoked", a.Node)
		}
		if len(st.revoked) >= MaxRevokedNodes {
			return reject(ErrStateFull, "%d revoked nodes", MaxRevokedNodes)
		}
	}
	return nil
}

func (st *AdminState) applyMembership(ev *Event) {
	a := &ev.body.Action
	switch a.Verb {
	case api.VerbAdmitNode:
		st.admitted[a.Node] = NodeAdmission{
			Node: a.Node, Key: slices.Clone(ed25519.PublicKey(a.OperatorKey)), AdmittedBy: ev.body.Proposer,
			AdmittedAt: ev.IssuedAt(), NotAfter: ev.IssuedAt().Add(identity.NodeCertificateLifetime), EventNonce: ev.body.Nonce,
		}
	case api.VerbRevokeNode:
		delete(st.admitted, a.Node)
		st.revoked[a.Node] = NodeRevocation{Node: a.Node, RevokedBy: ev.body.Proposer, RevokedAt: ev.IssuedAt()}
	case api.VerbRotateOperator:
		if old, ok := st.operators[a.OperatorID]; ok {
			next := identity.IDFromPublicKey(a.OperatorKey)
			for id, k := range st.retired {
				if k.Holder == a.OperatorID {
					k.Holder = next
					st.retired[id] = k
				}
			}
			st.retired[a.OperatorID] = retiredKey{Key: old.PublicKey, RetiredMs: ev.body.IssuedAtMs, Holder: next}
			if len(st.retired) > MaxRetiredOperatorKeys {
				st.forgetOldestRetired()
			}
		}
	case api.VerbRemoveOperator:
		// A removed operator's earlier keys go with it.
		for id, k := range st.retired {
			if k.Holder == a.OperatorID {
				delete(st.retired, id)
			}
		}
	}
}

// forgetOldestRetired drops the earliest retired key (ties by id), so the
// set stays bounded the same way on every node.
func (st *AdminState) forgetOldestRetired() {
	var oldest identity.NodeID
	var oldestMs int64
	for id, k := range st.retired {
		if !oldest.Valid() || k.RetiredMs < oldestMs || (k.RetiredMs == oldestMs && id < oldest) {
			oldest, oldestMs = id, k.RetiredMs
		}
	}
	delete(st.retired, oldest)
}

// Admission is the ledger's admission of node id, if any.
func (st *AdminState) Admission(id identity.NodeID) (NodeAdmission, bool) {
	a, ok := st.admitted[id]
	a.Key = slices.Clone(a.Key)
	return a, ok
}

// Revocation is the ledger's revocation of node id, if any.
func (st *AdminState) Revocation(id identity.NodeID) (NodeRevocation, bool) {
	r, ok := st.revoked[id]
	return r, ok
}

// Admissions lists the ledger's admissions by node id.
func (st *AdminState) Admissions() []NodeAdmission {
	out := make([]NodeAdmission, 0, len(st.admitted))
	for _, id := range slices.Sorted(maps.Keys(st.admitted)) {
		a, _ := st.Admission(id)
		out = append(out, a)
	}
	return out
}

// Revocations lists the ledger's revocations by node id.
func (st *AdminState) Revocations() []NodeRevocation {
	out := make([]NodeRevocation, 0, len(st.revoked))
	for _, id := range slices.Sorted(maps.Keys(st.revoked)) {
		out = append(out, st.revoked[id])
	}
	return out
}

// IssuerKeys are the keys whose certificates count: every current
// operator's key, and the earlier keys of operators that rotated (with the
// time each was retired; zero for a current key).
func (st *AdminState) IssuerKeys() map[identity.NodeID]IssuerKey {
	out := make(map[identity.NodeID]IssuerKey, len(st.operators)+len(st.retired))
	for id, op := range st.operators {
		out[id] = IssuerKey{Operator: op.Name, Key: slices.Clone(op.PublicKey)}
	}
	for id, k := range st.retired {
		out[id] = IssuerKey{Key: slices.Clone(k.Key), Retired: time.UnixMilli(k.RetiredMs).UTC()}
	}
	return out
}

// IssuerKey is one key certificates may be issued under.
type IssuerKey struct {
	Operator string // display name; "" for a retired key
	Key      ed25519.PublicKey
	Retired  time.Time // zero: current
}

func (st *AdminState) cloneMembership(c *AdminState) {
	c.admitted = maps.Clone(st.admitted)
	c.revoked = maps.Clone(st.revoked)
	c.retired = maps.Clone(st.retired)
}

func (st *AdminState) membershipEqual(o *AdminState) bool {
	admEq := func(a, b NodeAdmission) bool {
		return a.Node == b.Node && a.Key.Equal(b.Key) && a.AdmittedBy == b.AdmittedBy &&
			a.AdmittedAt.Equal(b.AdmittedAt) && a.NotAfter.Equal(b.NotAfter) && a.EventNonce == b.EventNonce
	}
	retEq := func(a, b retiredKey) bool {
		return a.RetiredMs == b.RetiredMs && a.Key.Equal(b.Key) && a.Holder == b.Holder
	}
	return maps.EqualFunc(st.admitted, o.admitted, admEq) && maps.Equal(st.revoked, o.revoked) &&
		maps.EqualFunc(st.retired, o.retired, retEq)
}

// fillMembership copies admissions and revocations into the cluster view.
func (st *AdminState) fillMembership(cs *snapshot.ClusterSnapshot) {
	cs.Admitted = cs.Admitted[:0]
	for _, a := range st.Admissions() {
		cs.Admitted = append(cs.Admitted, snapshot.Admitted{Node: a.Node, Key: a.Key, By: a.AdmittedBy, At: a.AdmittedAt, NotAfter: a.NotAfter})
	}
	cs.Revoked = cs.Revoked[:0]
	for _, r := range st.Revocations() {
		cs.Revoked = append(cs.Revoked, snapshot.Revoked{Node: r.Node, By: r.RevokedBy, At: r.RevokedAt})
	}
}
