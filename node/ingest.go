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
	att, err := attesterOf(n.key, encodeCert(n.cert.Load()), n.genesis.Cluster)
	if err != nil {
		return nil, err
	}
	check := n.opts.AttesterCheck
	if check == nil {
		check = n.attesterCheck
	}
	skew := n.opts.ClockSkewAllowance
	if skew == 0 {
		skew = n.opts.Cluster.ClockSkewAllowance()
	}
	return chainfold.NewIngest(chainfold.IngestConfig{
		Cluster: n.genesis.Cluster, Now: n.now, Skew: skew,
		Held:          n.ledgerHas,
		Registry:      n.registryAt,
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

// attesterCheck judges the attester of a receipt on a late admin event
// with the node's membership registry (node/trust): its certificate (or
// its ledger admission, when it presents none) valid at the receipt's time
// at, never revoked, and of role node (a console's receipt attests nothing).
func (n *Node) attesterCheck(id identity.NodeID, key ed25519.PublicKey, certBytes []byte, at time.Time) error {
	adm, err := n.trust.CheckBytes(id, key, certBytes, at)
	if err != nil {
		return err
	}
	if adm.Role != identity.RoleNode {
		return fmt.Errorf("attester %s is a %s, not a node", id, adm.Role)
	}
	return nil
}
