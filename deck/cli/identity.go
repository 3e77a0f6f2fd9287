package cli

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
)

// identityStores are the stores --identity searches: the user's, then the
// operators/ dir beside the cluster file when one is configured (a demo's
// alice and bob live there).
func (e *env) identityStores(cmd *cobra.Command) []*config.OperatorStore {
	flag, _ := cmd.Flags().GetString("cluster")
	path, _, err := config.ResolveClusterPath(flag, os.Getenv(config.ClusterEnv), e.settings)
	if err != nil {
		path = ""
	}
	return e.operatorStores(path)
}

func identityCmd(stdio IO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "identity",
		Short: "Manage operator identities (ed25519 keys)",
		Long: `Operator identities sign every admin and ICE command. Keys live in
$XDG_CONFIG_HOME/deck/operators/NAME.key (mode 0600) with NAME.pub beside them;
--identity NAME also finds keys in an operators/ directory beside the cluster
file (where deck demo keeps alice and bob). ls and show search both.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "generate NAME",
			Short: "Create a new operator key (exit 4 if NAME exists)",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				e, err := loadEnv(stdio)
				if err != nil {
					return err
				}
				store := e.dirs.Operators()
				k, err := store.Generate(args[0])
				if err != nil {
					return err
				}
				return printIdentity(cmd, stdio, args[0], k.ID, identity.PublicKeyString(k.Public), store.KeyPath(args[0]))
			},
		},
		&cobra.Command{
			Use:   "ls",
			Short: "List operator identities",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				e, err := loadEnv(stdio)
				if err != nil {
					return err
				}
				out, err := outputFormat(cmd)
				if err != nil {
					return err
				}
				type row struct {
					Name string `json:"name"`
					jsonID
					PublicKey string `json:"public_key"`
					Path      string `json:"path"`
				}
				rows := []row{}
				seen := map[string]bool{}
				for _, store := range e.identityStores(cmd) {
					names, err := store.List()
					if err != nil {
						return err
					}
					for _, n := range names {
						if seen[n] {
							continue // the first store wins, as for --identity
						}
						seen[n] = true
						id, err := store.Show(n)
						if err != nil {
							return err
						}
						rows = append(rows, row{Name: n, jsonID: idJSON(id.ID), PublicKey: id.PublicKey, Path: store.KeyPath(n)})
					}
				}
				if out == OutputJSON {
					return writeJSON(stdio.Out, rows)
				}
				if len(rows) == 0 {
					fmt.Fprintln(stdio.Out, "no identities (create one with `deck identity generate NAME`)")
					return nil
				}
				tw := tabwriter.NewWriter(stdio.Out, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tOPERATOR ID\tKEY FILE")
				for _, r := range rows {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, r.Hex, r.Path)
				}
				return tw.Flush()
			},
		},
		&cobra.Command{
			Use:   "show NAME",
			Short: "Print an operator's id and public key",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				e, err := loadEnv(stdio)
				if err != nil {
					return err
				}
				var lastErr error
				for _, store := range e.identityStores(cmd) {
					id, err := store.Show(args[0])
					if err == nil {
						return printIdentity(cmd, stdio, args[0], id.ID, id.PublicKey, store.KeyPath(args[0]))
					}
					lastErr = err
				}
				return lastErr
			},
		},
		rotateCmd(stdio),
		exportCmd(stdio),
	)
	return cmd
}

func printIdentity(cmd *cobra.Command, stdio IO, name string, id identity.NodeID, pub, path string) error {
	out, err := outputFormat(cmd)
	if err != nil {
		return err
	}
	pubPath := strings.TrimSuffix(path, ".key") + ".pub"
	if out == OutputJSON {
		return writeJSON(stdio.Out, struct {
			Name string `json:"name"`
			jsonID
			PublicKey string `json:"public_key"`
			Path      string `json:"path"`
			PubPath   string `json:"public_key_path"`
		}{name, idJSON(id), pub, path, pubPath})
	}
	fmt.Fprintf(stdio.Out, "name         %s\noperator id  %s (%d)\npublic key   %s\nkey file     %s (secret, mode 0600)\npublic file  %s (for deck node init --operator)\n",
		name, id, uint64(id), pub, path, pubPath)
	return nil
}

func rotateCmd(stdio IO) *cobra.Command {
	var so signOnlyFlags
	cmd := &cobra.Command{
		Use:   "rotate NAME",
		Short: "Replace NAME's key; the rotation is signed by the old and new key and committed to the ledger",
		Long: `rotate writes a new key for NAME, keeps the old one as NAME.key.old-<unix>, and
commits a rotate-operator event, signed by both keys, to the cluster's admin chain.
When the cluster's admin threshold is above 1, the rotation also needs other
operators' signatures, as every admin event does:
  deck identity rotate NAME --sign-only --out r.adm   # old and new key sign, writes the payload
  deck admin sign r.adm --identity bob                 # another operator prints a signature line
  deck admin commit r.adm --sig 'deck-sig:…'           # anyone commits, within 60 s`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			if err := so.check(&actionFlags{}); err != nil {
				return err
			}
			e, err := loadEnv(stdio)
			if err != nil {
				return err
			}
			store := e.dirs.Operators()
			old, err := store.Load(args[0])
			if err != nil {
				return err
			}
			// Join with the old key as the signer first: a cluster we cannot
			// reach must not leave the operator with a key it does not know.
			cmd.Flags().Set("identity", args[0])
			s, err := e.join(cmd, true)
			if err != nil {
				return err
			}
			defer s.Close()
			// Refuse a one-signature rotation the cluster would refuse
			// before the key on disk changes.
			threshold := s.client.AdminThreshold()
			if !so.signOnly && threshold > 1 {
				return belowThreshold("admin", s.client.Cluster(), threshold)
			}
			_, fresh, err := store.Rotate(args[0])
			if err != nil {
				return err
			}
			const keptNote = "(the new key is on disk; the old one is kept beside it)"
			if so.signOnly {
				a := api.Action{Verb: api.VerbRotateOperator, OperatorID: old.ID, OperatorKey: fresh.Public}
				sim, err := s.client.PrepareAdmin(cmd.Context(), a)
				if err != nil {
					return fmt.Errorf("%w %s", err, keptNote)
				}
				oldSig, err := sim.Sign()
				if err != nil {
					return fmt.Errorf("%w %s", err, keptNote)
				}
				newSig := api.Signature{Operator: fresh.ID, Sig: fresh.Sign(sim.SigningPayload())}
				if err := writeProposal(so.out, "admin", sim.SigningPayload(), []api.Signature{oldSig, newSig}); err != nil {
					return fmt.Errorf("%w %s", err, keptNote)
				}
				fmt.Fprintf(stdio.Err, "new key for %s: %s (%s); the cluster knows it once the rotation commits\n",
					args[0], fresh.ID, store.KeyPath(args[0]))
				return printProposalWritten(stdio, out, "admin", so.out, threshold, sim)
			}
			rcpt, err := s.client.RotateOperator(cmd.Context(), identity.KeySigner{K: fresh})
			if err != nil {
				return fmt.Errorf("%w %s", err, keptNote)
			}
			if err := printIdentity(cmd, stdio, args[0], fresh.ID, identity.PublicKeyString(fresh.Public), store.KeyPath(args[0])); err != nil {
				return err
			}
			fmt.Fprintf(stdio.Err, "rotation committed as event %s\n", rcpt.EventID)
			return nil
		},
	}
	so.register(cmd)
	return cmd
}
