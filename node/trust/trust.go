// Package trust decides who is a member of the mesh. The cluster PSK is the
// outer gate (it lets a holder complete a Noise handshake); membership is a
// certificate an operator issued (nebula's CA model with the operator
// registry as the authority, identity.Certificate) or an admission in the
// admin ledger (admit-node), and neither counts once the ledger revokes the
// node. A Registry holds what the node's fold of the ledger says about
// issuers, admissions and revocations, and answers for every layer that
// meets a node: the transport at each handshake (transport.Trust), gossip
// for every snapshot's signer, the ledger for every receipt's attester.
package trust

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/transport"
)

// Why a node is not a member. Each is distinct, so a pending peer's reason
// (NODES, deck node pending) and the tests name the rule that refused it.
var (
	ErrNoCertificate   = errors.New("no certificate and no admission in the ledger")
	ErrUntrustedIssuer = errors.New("certificate issuer is not an operator of this cluster")
	ErrRevoked         = errors.New("node revoked by the admin ledger")
	ErrWrongRole       = errors.New("certificate role not allowed here")
)

// Registry is the membership authority of one cluster as one node folds it.
// Safe for concurrent use; reads take a read lock and, for a certificate
// already seen, no signature check.
type Registry struct {
	cluster string

	mu       sync.RWMutex
	issuers  map[identity.NodeID]command.IssuerKey
	admitted map[identity.NodeID]command.NodeAdmission
	revoked  map[identity.NodeID]command.NodeRevocation
	gen      atomic.Uint64 // bumps whenever Update changes the answer

	// verified caches certificates whose signature already checked, by
	// fingerprint; the signature is the expensive part and never changes.
	verifiedMu sync.Mutex
	verified   map[[32]byte]struct{}

	// members remembers who proved membership here (a handshake, a
	// snapshot's certificate, a ledger admission), so a route or a
	// snapshot naming a node this node never saw proven can be ignored.
	membersMu sync.Mutex
	members   map[identity.NodeID]transport.Admission
}

// New is a registry for cluster, starting from st (the genesis state, or
// the node's latest fold).
func New(cluster string, st *command.AdminState) *Registry {
	r := &Registry{cluster: cluster, verified: map[[32]byte]struct{}{}, members: map[identity.NodeID]transport.Admission{}}
	r.Update(st)
	return r
}

// Update takes the issuers, admissions and revocations of a newer fold.
// It reports whether anything changed (the caller then asks the transport
// to reassess its peers).
func (r *Registry) Update(st *command.AdminState) bool {
	issuers := st.IssuerKeys()
	admitted := map[identity.NodeID]command.NodeAdmission{}
	for _, a := range st.Admissions() {
		admitted[a.Node] = a
	}
	revoked := map[identity.NodeID]command.NodeRevocation{}
	for _, rv := range st.Revocations() {
		revoked[rv.Node] = rv
	}
	r.mu.Lock()
	changed := !sameIssuers(r.issuers, issuers) || !sameAdmissions(r.admitted, admitted) || len(r.revoked) != len(revoked)
	r.issuers, r.admitted, r.revoked = issuers, admitted, revoked
	r.mu.Unlock()
	if changed {
		r.gen.Add(1)
		r.membersMu.Lock()
		clear(r.members) // proven again under the new rules
		r.membersMu.Unlock()
	}
	return changed
}

// Generation changes whenever Update changed the rules.
func (r *Registry) Generation() uint64 { return r.gen.Load() }

// Admit implements transport.Trust: the peer behind a completed handshake,
// with its verified node record and the certificate it presented.
func (r *Registry) Admit(rec *identity.NodeRecord, cert *identity.Certificate, now time.Time) (transport.Admission, error) {
	return r.Check(rec.ID, rec.SigningKey, cert, now)
}

// Check decides whether node id, whose signatures verify under key, is a
// member at now, given the certificate it presents (nil: none; a ledger
// admission may stand in). The order of the rules is the point: a
// revocation beats every certificate; a certificate must be for this
// cluster, this node and this key, inside its validity window, signed by a
// current operator (or an operator's key retired by rotation, for
// certificates it issued before it was retired).
func (r *Registry) Check(id identity.NodeID, key ed25519.PublicKey, cert *identity.Certificate, now time.Time) (transport.Admission, error) {
	adm, err := r.check(id, key, cert, now)
	if err == nil {
		r.remember(id, adm)
	}
	return adm, err
}

// CheckBytes is Check for a certificate still in its encoding (a receipt's
// attester, a gossip envelope): nil or empty bytes mean none.
func (r *Registry) CheckBytes(id identity.NodeID, key ed25519.PublicKey, certBytes []byte, now time.Time) (transport.Admission, error) {
	var cert *identity.Certificate
	if len(certBytes) > 0 {
		c, err := identity.UnmarshalCertificate(certBytes)
		if err != nil {
			return transport.Admission{}, err
		}
		cert = c
	}
	return r.Check(id, key, cert, now)
}

func (r *Registry) check(id identity.NodeID, key ed25519.PublicKey, cert *identity.Certificate, now time.Time) (transport.Admission, error) {
	if len(key) != ed25519.PublicKeySize || identity.IDFromPublicKey(key) != id {
		return transport.Admission{}, fmt.Errorf("%w: node id is not derived from its key", identity.ErrCertificateSubject)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if rv, ok := r.revoked[id]; ok {
		return transport.Admission{}, fmt.Errorf("%w (%s)", ErrRevoked, rv.RevokedAt.Format(time.RFC3339))
	}
	var certErr error
	if cert != nil {
		adm, err := r.checkCertLocked(id, key, cert, now)
		if err == nil {
			return adm, nil
		}
		certErr = err
	}
	if a, ok := r.admitted[id]; ok && a.Key.Equal(key) && now.Before(a.NotAfter) {
		return transport.Admission{Role: identity.RoleNode, Expires: a.NotAfter}, nil
	}
	if certErr != nil {
		return transport.Admission{}, certErr
	}
	return transport.Admission{}, ErrNoCertificate
}

func (r *Registry) checkCertLocked(id identity.NodeID, key ed25519.PublicKey, c *identity.Certificate, now time.Time) (transport.Admission, error) {
	if err := c.CheckSubject(r.cluster, id, key, now); err != nil {
		return transport.Admission{}, err
	}
	issuer, ok := r.issuers[c.IssuerID()]
	if !ok || !issuer.Key.Equal(c.Issuer) {
		return transport.Admission{}, fmt.Errorf("%w (issuer %s)", ErrUntrustedIssuer, c.IssuerID())
	}
	if !issuer.Retired.IsZero() && c.NotBeforeMs >= issuer.Retired.UnixMilli() {
		return transport.Admission{}, fmt.Errorf("%w: issued by %s after it was rotated away", ErrUntrustedIssuer, c.IssuerID())
	}
	if c.Role != identity.RoleNode && c.Role != identity.RoleConsole {
		return transport.Admission{}, ErrWrongRole
	}
	if err := r.verifySignature(c); err != nil {
		return transport.Admission{}, err
	}
	return transport.Admission{Role: c.Role, Expires: time.UnixMilli(c.NotAfterMs), Subnet: c.Subnet}, nil
}

// verifySignature checks c's signature once per distinct certificate.
func (r *Registry) verifySignature(c *identity.Certificate) error {
	fp := c.Fingerprint()
	r.verifiedMu.Lock()
	_, ok := r.verified[fp]
	r.verifiedMu.Unlock()
	if ok {
		return nil
	}
	if err := c.VerifySignature(); err != nil {
		return err
	}
	r.verifiedMu.Lock()
	if len(r.verified) >= MaxVerifiedCertificates {
		clear(r.verified) // a full cache starts over rather than grow
	}
	r.verified[fp] = struct{}{}
	r.verifiedMu.Unlock()
	return nil
}

func (r *Registry) remember(id identity.NodeID, adm transport.Admission) {
	r.membersMu.Lock()
	defer r.membersMu.Unlock()
	if _, ok := r.members[id]; !ok && len(r.members) >= MaxKnownMembers {
		return // full: the node is still admitted, just not remembered
	}
	r.members[id] = adm
}

// Known reports whether id proved membership to this node (at a
// handshake, by a snapshot's certificate, or by a ledger admission) under
// the current rules and has not expired since.
func (r *Registry) Known(id identity.NodeID, now time.Time) (transport.Admission, bool) {
	r.membersMu.Lock()
	adm, ok := r.members[id]
	r.membersMu.Unlock()
	if ok && now.Before(adm.Expires) {
		return adm, true
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if _, gone := r.revoked[id]; gone {
		return transport.Admission{}, false
	}
	if a, ok := r.admitted[id]; ok && now.Before(a.NotAfter) {
		return transport.Admission{Role: identity.RoleNode, Expires: a.NotAfter}, true
	}
	return transport.Admission{}, false
}

// Subnets is every proven member's subnet (as its certificate carries it;
// "" for the root) that has not expired at now: the node's directory for
// its subnet rules.
func (r *Registry) Subnets(now time.Time) map[identity.NodeID]string {
	r.membersMu.Lock()
	defer r.membersMu.Unlock()
	out := make(map[identity.NodeID]string, len(r.members))
	for id, adm := range r.members {
		if now.Before(adm.Expires) {
			out[id] = adm.Subnet
		}
	}
	return out
}

// Issuer says whether key may issue certificates now (a current operator's
// key): a console certifying itself checks this before presenting.
func (r *Registry) Issuer(key ed25519.PublicKey) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	k, ok := r.issuers[identity.IDFromPublicKey(key)]
	return ok && k.Retired.IsZero() && k.Key.Equal(key)
}

func sameIssuers(a, b map[identity.NodeID]command.IssuerKey) bool {
	if len(a) != len(b) {
		return false
	}
	for id, k := range a {
		o, ok := b[id]
		if !ok || !o.Key.Equal(k.Key) || !o.Retired.Equal(k.Retired) {
			return false
		}
	}
	return true
}

func sameAdmissions(a, b map[identity.NodeID]command.NodeAdmission) bool {
	if len(a) != len(b) {
		return false
	}
	for id, x := range a {
		y, ok := b[id]
		if !ok || !x.Key.Equal(y.Key) || !x.NotAfter.Equal(y.NotAfter) {
			return false
		}
	}
	return true
}
