package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/command/chainfold"
	"github.com/deck-mesh/deck/node/identity"
)

// registryFoldWait bounds how long an arriving event waits for the fold to
// catch up with the ledger's head before its signatures are checked against
// the registry there; past it the event is refused now and anti-entropy
// offers it again later.
const registryFoldWait = 2 * time.Second

// newIngest is the gate of this node's admin ledger (chainfold.Ingest):
// signatures against the registry at the event's position, freshness by
// this node's clock, receipts for late events, this node's own receipts
// when it holds a certificate of role node.
func (n *Node) newIngest() (*chainfold.Ingest, error) {
	att, err := attesterOf(n.key, n.opts.Certificate, n.genesis.Cluster)
	if err != nil {
		return nil, err
	}
	check := n.opts.AttesterCheck
	if check == nil {
		check = n.interimAttesterCheck
	}
	skew := n.opts.ClockSkewAllowance
	if skew == 0 {
		skew = n.opts.Cluster.ClockSkewAllowance()
	}
	return chainfold.NewIngest(chainfold.IngestConfig{
		Cluster: n.genesis.Cluster, Now: n.now, Skew: skew,
		Held:     n.ledgerHas,
		Registry: n.registryAt,
		// AttesterCheck: the interim check below until node/trust wires
		// the certificate registry (Options.AttesterCheck).
		AttesterCheck: check,
		Attest:        att,
	})
}

func (n *Node) ledgerHas(id [32]byte) (bool, error) { return n.ledger.Has(id) }

// now is the node's clock (Options.Clock).
func (n *Node) now() time.Time {
	if n.opts.Clock != nil {
		return n.opts.Clock()
	}
	return time.Now()
}

// registryAt is the registry in force at pos as of every event this node
// has stored: it waits (bounded) for the fold to reach the ledger's head,
// so a registry event stored a moment ago counts.
func (n *Node) registryAt(pos chain.Position) (*command.Registry, error) {
	ctx, cancel := context.WithTimeout(n.ctx, registryFoldWait)
	defer cancel()
	if err := n.fold.WaitLocalSeq(ctx, n.ledger.Head().LastSeq); err != nil {
		return nil, fmt.Errorf("node: registry not folded up to the ledger's head yet: %w", err)
	}
	var reg *command.Registry
	var err error
	n.fold.View(func(s *chainfold.State, _ chain.Position) { reg, err = s.RegistryAt(pos) })
	return reg, err
}

// attesterOf is what the node attests with: nil without a certificate or
// with a console's (a console's receipt attests nothing). A certificate
// that is not this node's is a configuration error.
func attesterOf(k *identity.Key, certBytes []byte, cluster string) (*chainfold.Attester, error) {
	if len(certBytes) == 0 {
		return nil, nil
	}
	c, err := identity.UnmarshalCertificate(certBytes)
	if err != nil {
		return nil, fmt.Errorf("node: %w: certificate: %w", api.ErrInvalid, err)
	}
	if c.Node != k.ID || !bytes.Equal(c.SigningKey, k.Public) || c.Cluster != cluster {
		return nil, fmt.Errorf("node: %w: certificate is for node %s of cluster %q, this is %s of %q", api.ErrInvalid, c.Node, c.Cluster, k.ID, cluster)
	}
	if c.Role != identity.RoleNode {
		return nil, nil
	}
	return &chainfold.Attester{Key: k, Cert: bytes.Clone(certBytes)}, nil
}

// interimAttesterCheck is a TEMPORARY AttesterCheck until node/trust's
// certificate registry replaces it (Options.AttesterCheck): a receipt's
// attester counts if its certificate is for this cluster, its id and key,
// role node, valid at the receipt's time, and signed by an operator
// registered in this node's fold now. It knows no revocations and takes no
// ledger admission for a missing certificate.
func (n *Node) interimAttesterCheck(id identity.NodeID, key ed25519.PublicKey, certBytes []byte, at time.Time) error {
	if len(certBytes) == 0 {
		return fmt.Errorf("no certificate")
	}
	c, err := identity.UnmarshalCertificate(certBytes)
	if err != nil {
		return err
	}
	if err := c.VerifySignature(); err != nil {
		return err
	}
	if c.Role != identity.RoleNode {
		return fmt.Errorf("certificate role %s, want node", c.Role)
	}
	if c.Cluster != n.genesis.Cluster || c.Node != id || !bytes.Equal(c.SigningKey, key) {
		return identity.ErrCertificateSubject
	}
	if ms := at.UnixMilli(); ms < c.NotBeforeMs || ms >= c.NotAfterMs {
		return fmt.Errorf("%w at %s", identity.ErrCertificateExpired, at.UTC().Format(time.RFC3339))
	}
	issuer := c.IssuerID()
	var op command.OperatorEntry
	var ok bool
	n.fold.View(func(s *chainfold.State, _ chain.Position) { op, ok = s.Admin.Operator(issuer) })
	if !ok || !bytes.Equal(op.PublicKey, c.Issuer) {
		return fmt.Errorf("certificate issued by %s, not a registered operator", issuer)
	}
	return nil
}

// CertifyNode issues node key k a certificate of role for cluster, signed
// by issuer (an operator key), valid from now for
// identity.NodeCertificateLifetime, and returns its bytes for
// Options.Certificate. It is the interim way to certify the nodes of a test
// mesh, the demo and `deck node run --certificate` until node/trust's
// admission replaces it: it does not bind the node's Noise static (zero).
func CertifyNode(issuer identity.Signer, cluster string, k *identity.Key, role identity.Role, now time.Time) ([]byte, error) {
	c, err := identity.NewNodeCertificate(issuer, cluster, k, [32]byte{}, role, now, identity.NodeCertificateLifetime)
	if err != nil {
		return nil, err
	}
	return c.Marshal()
}
