package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
)

func identityCmd(stdio IO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "identity",
		Short: "Manage operator identities (ed25519 keys)",
		Long: `Operator identities sign every admin and ICE command. Keys live in
$XDG_CONFIG_HOME/deck/operators/NAME.key (mode 0600) with NAME.pub beside them.`,
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
				store := e.dirs.Operators()
				names, err := store.List()
				if err != nil {
					return err
				}
				type row struct {
					Name string `json:"name"`
					jsonID
					PublicKey string `json:"public_key"`
				}
				rows := []row{}
				for _, n := range names {
					id, err := store.Show(n)
					if err != nil {
						return err
					}
					rows = append(rows, row{Name: n, jsonID: idJSON(id.ID), PublicKey: id.PublicKey})
				}
				if out == OutputJSON {
					return writeJSON(stdio.Out, rows)
				}
				if len(rows) == 0 {
					fmt.Fprintln(stdio.Out, "no identities (create one with `deck identity generate NAME`)")
				}
				for _, r := range rows {
					fmt.Fprintf(stdio.Out, "%-16s %s  %s\n", r.Name, r.Hex, r.PublicKey)
				}
				return nil
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
				store := e.dirs.Operators()
				id, err := store.Show(args[0])
				if err != nil {
					return err
				}
				return printIdentity(cmd, stdio, args[0], id.ID, id.PublicKey, store.KeyPath(args[0]))
			},
		},
		rotateCmd(stdio),
	)
	return cmd
}

func printIdentity(cmd *cobra.Command, stdio IO, name string, id identity.NodeID, pub, path string) error {
	out, err := outputFormat(cmd)
	if err != nil {
		return err
	}
	if out == OutputJSON {
		return writeJSON(stdio.Out, struct {
			Name string `json:"name"`
			jsonID
			PublicKey string `json:"public_key"`
			Path      string `json:"path"`
		}{name, idJSON(id), pub, path})
	}
	fmt.Fprintf(stdio.Out, "name        %s\noperator id %s (%d)\npublic key  %s\nkey file    %s\n", name, id, uint64(id), pub, path)
	return nil
}

func rotateCmd(stdio IO) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate NAME",
		Short: "Replace NAME's key; the rotation is signed by the old and new key and committed to the ledger",
		Long: `rotate writes a new key for NAME, keeps the old one as NAME.key.old-<unix>, and
commits a rotate-operator event, signed by both keys, to the cluster's admin chain.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := loadEnv(stdio)
			if err != nil {
				return err
			}
			store := e.dirs.Operators()
			if _, err := store.Load(args[0]); err != nil {
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
			_, fresh, err := store.Rotate(args[0])
			if err != nil {
				return err
			}
			rcpt, err := s.client.RotateOperator(cmd.Context(), identity.KeySigner{K: fresh})
			if err != nil {
				return fmt.Errorf("%w (the new key is on disk; the old one is kept beside it)", err)
			}
			if err := printIdentity(cmd, stdio, args[0], fresh.ID, identity.PublicKeyString(fresh.Public), store.KeyPath(args[0])); err != nil {
				return err
			}
			fmt.Fprintf(stdio.Err, "rotation committed as event %s\n", rcpt.EventID)
			return nil
		},
	}
}

var _ = api.ErrInvalid
