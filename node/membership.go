package node

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/gossip"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/node/transport"
)

// Membership: the node's own certificate, the registry every layer asks
// (transport at handshakes, gossip per snapshot signer), and keeping both
// current as the admin ledger changes.

// ownCertificate is the certificate the node presents: Options.Certificate
// (checked to be this node's, for this cluster), else one issued now with
// Options.CertifyWith, else none (pending).
func (n *Node) ownCertificate(now time.Time) (*identity.Certificate, error) {
	if c := n.opts.Certificate; c != nil {
		if err := c.CheckSubject(n.genesis.Cluster, n.key.ID, n.key.Public, now); err != nil {
			return nil, fmt.Errorf("node: %w: own certificate: %w", api.ErrInvalid, err)
		}
		if err := c.VerifySignature(); err != nil {
			return nil, fmt.Errorf("node: %w: own certificate: %w", api.ErrInvalid, err)
		}
		if c.Subnet != n.subnet {
			return nil, fmt.Errorf("node: %w: own certificate is for subnet %q, this node is to run in %q (deck node certify --subnet)", api.ErrInvalid, c.Subnet, n.subnet)
		}
		return c, nil
	}
	if n.opts.CertifyWith == nil {
		if n.subnet != "" {
			// A ledger admission makes a member of the root only.
			return nil, fmt.Errorf("node: %w: subnet %q needs a certificate that carries it (deck node certify --subnet)", api.ErrInvalid, n.subnet)
		}
		return nil, nil
	}
	return n.issueOwn(now)
}

// issueOwn issues this node's certificate with Options.CertifyWith.
func (n *Node) issueOwn(now time.Time) (*identity.Certificate, error) {
	role, lifetime := identity.RoleNode, identity.NodeCertificateLifetime
	if n.opts.Observer {
		role, lifetime = identity.RoleConsole, identity.ConsoleCertificateLifetime
	}
	c, err := identity.NewSubnetCertificate(n.opts.CertifyWith, n.genesis.Cluster, n.subnet, n.key.Public, role, now, lifetime)
	if err != nil {
		return nil, fmt.Errorf("node: issue own certificate: %w", err)
	}
	return c, nil
}

// Certificate is the certificate this node presents (nil: none, pending).
func (n *Node) Certificate() *identity.Certificate { return n.cert.Load() }

// members is gossip's membership check for a snapshot's signer.
func (n *Node) members(id identity.NodeID, key ed25519.PublicKey, cert []byte, now time.Time) (gossip.Membership, error) {
	adm, err := n.trust.CheckBytes(id, key, cert, now)
	return gossip.Membership{Role: adm.Role, Subnet: adm.Subnet}, err
}

// summarySigner is the subnet store's membership check for a summary's
// signer.
func (n *Node) summarySigner(id identity.NodeID, key ed25519.PublicKey, cert []byte, now time.Time) (identity.Role, string, error) {
	adm, err := n.trust.CheckBytes(id, key, cert, now)
	return adm.Role, adm.Subnet, err
}

// syncTrust hands a changed admin fold to the registry and, when the
// answer changed (an admission, a revocation, an operator removed or
// rotated), has the transport and gossip judge every peer again at once.
// It also renews a self-issued certificate past two thirds of its life.
// Loop goroutine only.
func (n *Node) syncTrust(now time.Time) {
	st := n.AdminState()
	if g := st.Generation(); g != n.trustGen {
		n.trustGen = g
		if n.trust.Update(st) {
			n.tr.Reassess()
			n.gs.Reassess()
		}
	}
	c := n.cert.Load()
	if n.opts.CertifyWith == nil || c == nil {
		return
	}
	life := time.Duration(c.NotAfterMs-c.NotBeforeMs) * time.Millisecond
	if now.Before(time.UnixMilli(c.NotAfterMs).Add(-life / 3)) {
		return
	}
	fresh, err := n.issueOwn(now)
	if err != nil {
		n.opts.Logf("node: renew certificate: %v", err)
		return
	}
	n.setCertificate(fresh)
}

// setCertificate makes c the certificate presented from now on.
func (n *Node) setCertificate(c *identity.Certificate) {
	n.cert.Store(c)
	if err := n.tr.SetCertificate(c); err != nil {
		n.opts.Logf("node: certificate: %v", err)
	}
	if err := n.gs.SetCertificate(encodeCert(c)); err != nil {
		n.opts.Logf("node: certificate: %v", err)
	}
}

// encodeCert is c's encoding, nil for none (or one that cannot encode,
// which ownCertificate never returns).
func encodeCert(c *identity.Certificate) []byte {
	if c == nil {
		return nil
	}
	b, err := c.Marshal()
	if err != nil {
		return nil
	}
	return b
}

// pendingPeerViews is what the node reports of its pending peers: the most
// recently seen first, at most maxPendingReported.
func pendingPeerViews(ps []transport.PendingPeer) []snapshot.PendingPeer {
	out := make([]snapshot.PendingPeer, 0, len(ps))
	for _, p := range ps {
		out = append(out, snapshot.PendingPeer{
			ID: p.Record.ID, Key: append([]byte(nil), p.Record.SigningKey...), Addr: p.Addr, Reason: p.Reason,
			FirstSeen: p.FirstSeen, LastSeen: p.LastSeen,
		})
	}
	// Most recent first: the bound keeps the live ones.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].LastSeen.After(out[j-1].LastSeen); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	if len(out) > maxPendingReported {
		out = out[:maxPendingReported]
	}
	return out
}

// maxPendingReported bounds the pending peers a node publishes (the
// snapshot codec's own bound).
const maxPendingReported = 16

// PendingHere reports whether a member told this node that it is not
// admitted there, and why (a node or console started without a
// certificate the mesh accepts).
func (n *Node) PendingHere() (from identity.NodeID, reason string, ok bool) {
	return n.tr.PendingHere()
}
