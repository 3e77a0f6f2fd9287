package cli

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

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
func nodeCertificate(file, dataDir string, cluster, subnet string, key *identity.Key, certifier *identity.Key, certifierName string) (*identity.Certificate, string, error) {
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
		serr := c.CheckSubject(cluster, key.ID, key.Public, now.Add(identity.NodeCertificateRenewBefore))
		if serr == nil && subnet != "" && c.Subnet != subnet {
			serr = fmt.Errorf("it carries subnet %q, this node is to run in %q (deck node certify --subnet)", c.Subnet, subnet)
		}
		if serr == nil && c.VerifySignature() == nil {
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
	c, err = identity.NewSubnetCertificate(identity.KeySigner{K: certifier}, cluster, subnet, key.Public, identity.RoleNode, now, identity.NodeCertificateLifetime)
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

// nodeCertifyCmd issues a node's certificate on the operator's machine,
// for a node whose data dir is prepared here and copied to its host (as
// nebula-cert sign does): the operator key never leaves this machine.
func nodeCertifyCmd(stdio IO) *cobra.Command {
	var dataDir, subnet string
	cmd := &cobra.Command{
		Use:   "certify --data DIR --identity NAME",
		Short: "Certify a node for its host: create DIR/node.key if missing and write DIR/node.cert",
		Long: `certify issues a node certificate (role node, valid a year) with your operator key,
for the node whose data dir is DIR: it creates the node's key there when DIR has
none, then writes its certificate next to it. Copy DIR to the node's host (it
holds the node's private key: scp, or any channel you trust) and start the node
on it with ` + "`deck node run --data DIR`" + `. Your operator key stays here.
--subnet puts the node in a subnet (default: the cluster file's [subnets.nodes]
entry for it, else the root); the certificate carries it, so the node cannot
claim another.`,
		Example: `  deck node certify --cluster lab.toml --data ./host1 --identity alice
  deck node certify --cluster lab.toml --data ./host2 --identity alice --subnet eu/ams/rack-3
  scp -rp ./host1 host1:/var/lib/deck`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			if dataDir == "" {
				return usageErr("--data DIR is required")
			}
			if err := identity.ValidateSubnet(subnet); err != nil {
				return usageErr("--subnet: %v", err)
			}
			e, err := loadEnv(stdio)
			if err != nil {
				return err
			}
			c, clusterPath, err := e.clusterFile(cmd)
			if err != nil {
				return err
			}
			opKey, opName, err := e.operator(cmd, clusterPath, true)
			if err != nil {
				return err
			}
			key, err := loadOrCreateNodeKey(filepath.Join(dataDir, "node.key"))
			if err != nil {
				return err
			}
			cert, err := identity.NewSubnetCertificate(identity.KeySigner{K: opKey}, c.Name, cmp.Or(subnet, c.SubnetOf(key.ID)),
				key.Public, identity.RoleNode, time.Now(), identity.NodeCertificateLifetime)
			if err != nil {
				return err
			}
			path := filepath.Join(dataDir, identity.CertificateFileName)
			if err := identity.SaveCertificate(path, cert); err != nil {
				return err
			}
			until := time.UnixMilli(cert.NotAfterMs).UTC()
			if out == OutputJSON {
				return writeJSON(stdio.Out, struct {
					jsonID
					Certificate string `json:"certificate"`
					Operator    string `json:"operator"`
					NotAfter    string `json:"not_after"`
					Subnet      string `json:"subnet"`
				}{idJSON(key.ID), path, opName, isoTime(until), cert.Subnet})
			}
			in := ""
			if cert.Subnet != "" {
				in = " in subnet " + cert.Subnet
			}
			fmt.Fprintf(stdio.Out, "node %s certified by operator %s for cluster %s%s until %s (%s)\n",
				key.ID, opName, c.Name, in, until.Format(time.RFC3339), path)
			fmt.Fprintf(stdio.Out, "copy %s to the node's host (it holds the node's private key) and run `deck node run --data DIR` there\n", dataDir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data", "", "the node's data `dir` (its node.key is created when missing)")
	cmd.Flags().StringVar(&subnet, "subnet", "", "the node's subnet `path`, e.g. eu/ams/rack-3 (default: the cluster file's [subnets.nodes] entry, else the root)")
	return cmd
}
