package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
)

// Certificates on the command line. A console (deck, status, admin, …) is
// certified by its operator's own key for ConsoleCertificateLifetime; a
// node run or served here loads its certificate from its data dir, or has
// one issued by an operator key found on this machine, or starts pending
// until an operator admits it (deck node admit).

// certifyAuto and certifyNone are the special values of --certify-with.
const (
	certifyAuto = "auto"
	certifyNone = "none"
)

// localOperator finds an operator key on this machine that the cluster's
// genesis registers: the console's (or node's) certifier when no identity
// was named. Genesis order decides between several.
func (e *env) localOperator(clusterPath string, c *config.Cluster) (*identity.Key, string) {
	keys, err := c.OperatorKeys()
	if err != nil {
		return nil, ""
	}
	for _, op := range keys {
		for _, s := range e.operatorStores(clusterPath) {
			k, err := s.Load(op.Name)
			if err == nil && k.Public.Equal(op.Public) {
				return k, op.Name
			}
		}
	}
	return nil, ""
}

// certifier resolves --certify-with: an operator name, "auto" (the
// session's operator identity, else a registered operator key found
// locally) or "none". It returns nil for none found.
func (e *env) certifier(clusterPath string, c *config.Cluster, flagValue string, identityKey *identity.Key, identityName string) (*identity.Key, string, error) {
	switch flagValue {
	case certifyNone:
		return nil, "", nil
	case "", certifyAuto:
		if identityKey != nil {
			return identityKey, identityName, nil
		}
		k, name := e.localOperator(clusterPath, c)
		return k, name, nil
	}
	if err := config.ValidateOperatorName(flagValue); err != nil {
		return nil, "", fmt.Errorf("%w: --certify-with: %v", api.ErrInvalid, err)
	}
	var lastErr error
	for _, s := range e.operatorStores(clusterPath) {
		k, err := s.Load(flagValue)
		if err == nil {
			return k, flagValue, nil
		}
		lastErr = err
	}
	return nil, "", fmt.Errorf("%w: --certify-with %s: %v", api.ErrPermission, flagValue, lastErr)
}

// nodeCertificate is the certificate of a node with key in dataDir: the
// one in file (default: node.cert in dataDir) if it is this node's, for
// this cluster, and valid for a while yet; else one issued now with
// certifier (and saved there); else nil (the node starts pending). A file
// named explicitly must exist. The second result says what happened, for
// the node's start-up line.
func nodeCertificate(file, dataDir string, cluster string, key *identity.Key, certifier *identity.Key, certifierName string) (*identity.Certificate, string, error) {
	path := file
	if path == "" {
		path = filepath.Join(dataDir, identity.CertificateFileName)
	}
	now := time.Now()
	c, err := identity.LoadCertificate(path)
	switch {
	case err != nil && file != "":
		return nil, "", fmt.Errorf("%w: --certificate: %w", api.ErrInvalid, err)
	case err == nil:
		if serr := c.CheckSubject(cluster, key.ID, key.Public, now.Add(identity.NodeCertificateRenewBefore)); serr == nil && c.VerifySignature() == nil {
			return c, fmt.Sprintf("certificate %s (issued by %s, valid until %s)", path, c.IssuerID(), time.UnixMilli(c.NotAfterMs).UTC().Format(time.RFC3339)), nil
		} else if certifier == nil {
			return nil, "", fmt.Errorf("%w: %s: %v (renew it: start with --certify-with OPERATOR, or an operator admits this node with `deck node admit %s`)",
				api.ErrPermission, path, cmpErr(serr, c.VerifySignature()), key.ID)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, "", err
	}
	if certifier == nil {
		return nil, fmt.Sprintf("no certificate: pending admission until an operator runs `deck node admit %s`", key.ID), nil
	}
	c, err = identity.NewNodeCertificate(identity.KeySigner{K: certifier}, cluster, key.Public, identity.RoleNode, now, identity.NodeCertificateLifetime)
	if err != nil {
		return nil, "", err
	}
	if err := identity.SaveCertificate(path, c); err != nil {
		return nil, "", err
	}
	return c, fmt.Sprintf("certified by operator %s until %s (%s)", certifierName, time.UnixMilli(c.NotAfterMs).UTC().Format(time.RFC3339), path), nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
