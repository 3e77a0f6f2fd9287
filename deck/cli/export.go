package cli

import (
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
)

// exportCmd writes an operator key in OpenSSH form, so the operator can
// load it into ssh-agent and sign over `ssh -A` into a `deck serve` console:
// an ssh-ed25519 key is the same ed25519 key, so the registry recognises it.
func exportCmd(stdio IO) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "export NAME --ssh --out FILE",
		Short: "Write NAME's key as an OpenSSH private key (for ssh-add and `ssh -A`)",
		Example: `  deck identity export alice --ssh --out ~/.ssh/deck_alice
  ssh-add ~/.ssh/deck_alice
  ssh -A -p 2222 deck@127.0.0.1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ok, _ := cmd.Flags().GetBool("ssh"); !ok {
				return usageErr("--ssh is required (the only export format)")
			}
			if out == "" {
				return usageErr("--out FILE is required")
			}
			e, err := loadEnv(stdio)
			if err != nil {
				return err
			}
			var key *identity.Key
			var lastErr error
			for _, store := range e.identityStores(cmd) {
				if key, lastErr = store.Load(args[0]); lastErr == nil {
					break
				}
			}
			if key == nil {
				return lastErr
			}
			block, err := ssh.MarshalPrivateKey(key.Private, "deck operator "+args[0])
			if err != nil {
				return fmt.Errorf("export: %w", err)
			}
			// Exclusive write: an existing file (maybe another key) is kept.
			if err := identity.WriteFileAtomic(out, pem.EncodeToMemory(block), identity.KeyFileMode, true); err != nil {
				if errors.Is(err, identity.ErrExists) {
					return fmt.Errorf("%w: %v", api.ErrExists, err)
				}
				return err
			}
			pub, err := ssh.NewPublicKey(key.Public)
			if err != nil {
				return fmt.Errorf("export: %w", err)
			}
			line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " deck-operator-" + args[0]
			if err := identity.WriteFileAtomic(out+".pub", []byte(line+"\n"), 0o644, false); err != nil {
				return err
			}
			fmt.Fprintf(stdio.Out, "wrote %s (mode 0600) and %s.pub\n%s\n", out, out, line)
			return nil
		},
	}
	cmd.Flags().Bool("ssh", false, "OpenSSH private key format")
	cmd.Flags().StringVar(&out, "out", "", "file to write (refuses to overwrite)")
	return cmd
}
