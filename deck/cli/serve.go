package cli

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/deck-mesh/deck/deck/serve"
	"github.com/deck-mesh/deck/node/identity"
)

func serveCmd(stdio IO) *cobra.Command {
	var sshAddr, authKeys, hostKey, dataDir string
	var host hostFlags
	var svc serviceFlags
	cmd := &cobra.Command{
		Use:   "serve --ssh ADDR [--authorized-keys FILE] [--host-key FILE] [node flags]",
		Short: "Run a node and serve deck consoles over SSH (public keys only)",
		Long: `serve runs a mesh node (like ` + "`deck node run`" + `) and serves a deck console on it
to every SSH session: ssh -t -p PORT HOST.

Registered operators' ssh-ed25519 keys get in, and so do keys listed in
--authorized-keys; nobody else. A console signs admin and ICE actions only
through the operator's forwarded agent (ssh -A) holding the key it logged in
with: the private key never leaves the operator's machine. Any other console
is read-only.`,
		Example: `  deck serve --cluster lab.toml --ssh 127.0.0.1:2222 --listen 127.0.0.1:7950 --data ./serve-node
  ssh -A -t -p 2222 127.0.0.1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if sshAddr == "" {
				return usageErr("--ssh ADDR is required")
			}
			log, err := svc.logger(stdio.Err)
			if err != nil {
				return err
			}
			e, err := loadEnv(stdio)
			if err != nil {
				return err
			}
			c, clusterPath, err := e.clusterFile(cmd)
			if err != nil {
				return err
			}
			listen, err := e.listenAddr(cmd)
			if err != nil {
				return err
			}
			if err := host.check(); err != nil {
				return err
			}
			if dataDir == "" {
				if dataDir, err = e.dirs.NodeDataDir(c.Name); err != nil {
					return err
				}
			}
			if hostKey == "" {
				hostKey = filepath.Join(dataDir, serve.HostKeyFile)
			}
			signer, created, err := serve.LoadOrCreateHostKey(hostKey)
			if err != nil {
				return err
			}
			// Bind the SSH port before starting the node: a taken port fails
			// fast, with nothing to undo.
			ln, err := net.Listen("tcp", sshAddr)
			if err != nil {
				return fmt.Errorf("--ssh %s: %w", sshAddr, err)
			}
			defer ln.Close()
			metricsLn, err := svc.bindMetrics()
			if err != nil {
				return err
			}
			if metricsLn != nil {
				defer metricsLn.Close()
			}

			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			nd, log, err := host.start(ctx, e, c, clusterPath, listen, dataDir, log)
			if err != nil {
				return err
			}
			defer nd.Close()
			srv, err := serve.New(serve.Config{
				Node: nd, HostKey: signer, AuthorizedKeysPath: authKeys, Version: Version, Logf: nodeLogf(log),
			})
			if err != nil {
				return err
			}
			log.Info("ssh consoles", "addr", ln.Addr().String(), "new_host_key", created,
				"host_key", signer.PublicKey().Type()+" "+serve.Fingerprint(signer.PublicKey()), "host_key_file", hostKey)
			msrv, err := serveMetrics(metricsLn, nd, log)
			if err != nil {
				return err
			}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()
			select {
			case <-ctx.Done():
				err = nil
			case err = <-served:
			}
			return stopService(log, err, srv.Close, metricsCloser(msrv), nd.Close)
		},
	}
	f := cmd.Flags()
	f.StringVar(&sshAddr, "ssh", "", "TCP address to serve SSH consoles on, e.g. 127.0.0.1:2222")
	f.StringVar(&authKeys, "authorized-keys", "", "OpenSSH authorized_keys file of extra keys allowed in (read-only unless operators)")
	f.StringVar(&hostKey, "host-key", "", "SSH host key file, created on first run (default DATA/"+serve.HostKeyFile+")")
	f.String("listen", "", "UDP `address` the node listens on (default $"+listenEnv+", then config.toml's listen, then an ephemeral port on the wildcard address of the bootstrap's family)")
	f.StringVar(&dataDir, "data", "", "data directory (node key, host key, Badger chains; default under $XDG_DATA_HOME/deck)")
	host.add(f)
	svc.add(f)
	return cmd
}

// loadOrCreateNodeKey loads the node key, generating it on first run.
func loadOrCreateNodeKey(path string) (*identity.Key, error) {
	key, err := identity.LoadKey(path)
	if err == nil {
		return key, nil
	}
	if _, statErr := os.Stat(path); !errors.Is(statErr, os.ErrNotExist) {
		return nil, fmt.Errorf("node key %s: %w", path, err)
	}
	if key, err = identity.Generate(); err != nil {
		return nil, err
	}
	if err := identity.SaveKey(path, key); err != nil {
		return nil, err
	}
	return key, nil
}

// stderrLog timestamps server events on stderr, one line per call.
func stderrLog(stdio IO) func(string, ...any) {
	var mu sync.Mutex
	return func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stdio.Err, "%s %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
	}
}
