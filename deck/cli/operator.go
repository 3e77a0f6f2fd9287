package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

// The operator registry is cluster state (who may sign), kept on the admin
// chain; `deck identity` manages the local key files.

func operatorCmd(stdio IO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "The cluster's operator registry: ls, add, remove (signed registry events)",
		Long: `The operator registry says whose signatures the cluster accepts. It starts
from the genesis in the cluster file (deck node init --operator); adding or
removing an operator is a signed registry event on the admin chain that
needs the cluster's admin threshold of operator signatures. With a threshold
above 1, sign with --sign-only --out FILE and co-sign with deck admin sign /
deck admin commit. Local key files are managed with deck identity.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(operatorLsCmd(stdio), operatorAddCmd(stdio), operatorRemoveCmd(stdio))
	addListenFlag(cmd.PersistentFlags())
	return cmd
}

func operatorLsCmd(stdio IO) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List the cluster's registered operators",
		Args:  cobra.NoArgs,
		RunE: joined(stdio, func(cmd *cobra.Command, _ []string, s *session, out string) error {
			cs := s.client.Snapshot()
			if out == OutputJSON {
				rows := make([]operatorRow, 0, len(cs.Operators))
				for _, o := range cs.Operators {
					rows = append(rows, operatorRow{Name: o.Name, jsonID: idJSON(o.ID),
						PublicKey: identity.PublicKeyString(o.PublicKey), AddedAt: isoTime(o.AddedAt)})
				}
				return writeJSON(stdio.Out, rows)
			}
			tw := tabwriter.NewWriter(stdio.Out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tOPERATOR ID\tADDED (UTC)")
			for _, o := range cs.Operators {
				added := "genesis"
				if !o.AddedAt.IsZero() {
					added = o.AddedAt.UTC().Format("2006-01-02 15:04:05")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", orDash(o.Name), o.ID, added)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(stdio.Out, "cluster %s: %s; thresholds admin %d, ICE %d\n", cs.Cluster, plural(len(cs.Operators), "operator"),
				cs.AdminThreshold, cs.ICEThreshold)
			return nil
		}),
	}
}

type operatorRow struct {
	Name string `json:"name"`
	jsonID
	PublicKey string `json:"public_key"`
	AddedAt   string `json:"added_at"` // "" for genesis operators
}

func operatorAddCmd(stdio IO) *cobra.Command {
	var f actionFlags
	var so signOnlyFlags
	cmd := &cobra.Command{
		Use:   "add NAME FILE.pub",
		Short: "Register an operator's public key (a signed registry event)",
		Long: `add commits a registry event that registers the public key in FILE.pub
(written by deck identity generate, "ed25519:…") under NAME. Every node
verifies it against the admin threshold. An operator already registered
(same key, or same name) exits 4.`,
		Example: `  deck operator add carol carol.pub --preview
  deck operator add carol carol.pub --yes
  deck operator add carol carol.pub --sign-only --out add-carol.adm   # admin threshold 2 or more`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			name, file := args[0], args[1]
			if err := config.ValidateOperatorName(name); err != nil {
				return err
			}
			if err := f.check(api.VerbAddOperator); err != nil {
				return err
			}
			if err := so.check(&f); err != nil {
				return err
			}
			b, err := os.ReadFile(file)
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%w: public key file %s", api.ErrNotFound, file)
			}
			if err != nil {
				return err
			}
			pub, err := identity.ParsePublicKey(string(b))
			if err != nil {
				return fmt.Errorf("%w: %s: %v", api.ErrInvalid, file, err)
			}
			s, err := joinToSign(cmd, stdio, f.preview)
			if err != nil {
				return err
			}
			defer s.Close()
			id := identity.IDFromPublicKey(pub)
			cs := s.client.Snapshot()
			for _, o := range cs.Operators {
				switch {
				case o.ID == id:
					return fmt.Errorf("%w: the key in %s is already registered in cluster %s as operator %q (%s)", api.ErrExists, file, cs.Cluster, o.Name, o.ID)
				case o.Name == name:
					return fmt.Errorf("%w: cluster %s already has an operator named %q (%s); remove it first or pick another name", api.ErrExists, cs.Cluster, name, o.ID)
				}
			}
			a := api.Action{Verb: api.VerbAddOperator, OperatorID: id, OperatorName: name, OperatorKey: pub}
			return runAdminAction(cmd, stdio, out, s, a, f, so, func(ctx context.Context) (api.Receipt, error) {
				return s.client.AddOperator(ctx, name, pub)
			})
		},
	}
	f.register(cmd, api.VerbAddOperator)
	so.register(cmd)
	return cmd
}

func operatorRemoveCmd(stdio IO) *cobra.Command {
	var f actionFlags
	var so signOnlyFlags
	cmd := &cobra.Command{
		Use:   "remove NAME|ID",
		Short: "Unregister an operator (a signed registry event)",
		Long: `remove commits a registry event that unregisters an operator, named by its
registered name or its id (0x… or decimal). The cluster refuses a removal
that would leave fewer operators than a threshold needs (exit 2); an
operator not in the registry exits 3.`,
		Example: `  deck operator remove carol --preview
  deck operator remove carol --yes
  deck operator remove carol --sign-only --out rm-carol.adm   # admin threshold 2 or more`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			if err := f.check(api.VerbRemoveOperator); err != nil {
				return err
			}
			if err := so.check(&f); err != nil {
				return err
			}
			s, err := joinToSign(cmd, stdio, f.preview)
			if err != nil {
				return err
			}
			defer s.Close()
			id, err := registeredOperator(s.client.Snapshot(), args[0])
			if err != nil {
				return err
			}
			a := api.Action{Verb: api.VerbRemoveOperator, OperatorID: id}
			return runAdminAction(cmd, stdio, out, s, a, f, so, func(ctx context.Context) (api.Receipt, error) {
				return s.client.RemoveOperator(ctx, id)
			})
		},
	}
	f.register(cmd, api.VerbRemoveOperator)
	so.register(cmd)
	return cmd
}

// joinToSign joins the cluster, with an operator that can sign unless the
// command only previews.
func joinToSign(cmd *cobra.Command, stdio IO, preview bool) (*session, error) {
	e, err := loadEnv(stdio)
	if err != nil {
		return nil, err
	}
	s, err := e.join(cmd, !preview)
	if err != nil {
		return nil, err
	}
	if !preview {
		if err := s.mustSign(); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// registeredOperator resolves a registered operator by name or id; anything
// else is api.ErrNotFound.
func registeredOperator(cs *snapshot.ClusterSnapshot, ref string) (identity.NodeID, error) {
	ref = strings.TrimSpace(ref)
	for _, o := range cs.Operators {
		if o.Name == ref {
			return o.ID, nil
		}
	}
	if id, err := identity.ParseNodeID(ref); err == nil {
		for _, o := range cs.Operators {
			if o.ID == id {
				return id, nil
			}
		}
	}
	return 0, fmt.Errorf("%w: no operator %q in cluster %s (deck operator ls lists them)", api.ErrNotFound, ref, cs.Cluster)
}
