package cli

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/deck-mesh/deck/demo/workloads"
	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
)

func nodeCmd(stdio IO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Create a cluster, run a headless node, admit or revoke nodes",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(nodeInitCmd(stdio), nodeRunCmd(stdio), nodePendingCmd(stdio), nodeAdmitCmd(stdio), nodeRevokeCmd(stdio))
	return cmd
}

func nodeInitCmd(stdio IO) *cobra.Command {
	var name, out string
	var bootstrap, operators []string
	var adminThreshold, iceThreshold int
	var demoWorkload, force bool
	cmd := &cobra.Command{
		Use:   "init --cluster NAME --out FILE",
		Short: "Write a new cluster file (name, random PSK, bootstrap, genesis operators)",
		Example: `  deck identity generate alice
  deck node init --cluster lab --out lab.toml --bootstrap 127.0.0.1:7946 \
      --operator ~/.config/deck/operators/alice.pub --demo-workload`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return usageErr("--cluster NAME is required")
			}
			if out == "" {
				return usageErr("--out FILE is required")
			}
			if len(operators) == 0 {
				return usageErr("at least one --operator NAME.pub is required: the genesis operators sign every admin and ICE command (create one with `deck identity generate NAME`)")
			}
			var ops []config.Operator
			for _, p := range operators {
				b, err := os.ReadFile(p)
				if err != nil {
					return fmt.Errorf("%w: --operator %s: %v", api.ErrInvalid, p, err)
				}
				pub, err := identity.ParsePublicKey(string(b))
				if err != nil {
					return fmt.Errorf("%w: --operator %s: %v", api.ErrInvalid, p, err)
				}
				opName := strings.TrimSuffix(filepath.Base(p), ".pub")
				ops = append(ops, config.NewOperator(opName, pub))
			}
			c, err := config.NewCluster(name, bootstrap, ops, adminThreshold, iceThreshold)
			if err != nil {
				return err
			}
			if demoWorkload {
				c.Workload = config.WorkloadFromSpec(workloads.Spec())
			}
			if err := config.WriteCluster(out, c, force); err != nil {
				return err
			}
			fmt.Fprintf(stdio.Out, "wrote cluster %q to %s (mode 0600; the PSK in it admits nodes: keep it secret)\n", name, out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "cluster", "", "cluster name ([a-z0-9-_.], 1-64 chars)")
	f.StringVar(&out, "out", "", "cluster file to write")
	f.StringSliceVar(&bootstrap, "bootstrap", nil, "bootstrap node address host:port (repeatable)")
	f.StringArrayVar(&operators, "operator", nil, "genesis operator public key file NAME.pub (repeatable)")
	f.IntVar(&adminThreshold, "admin-threshold", 1, "operator signatures an admin or registry event needs")
	f.IntVar(&iceThreshold, "ice-threshold", 1, "operator signatures an ICE commit needs (production: 2)")
	f.BoolVar(&demoWorkload, "demo-workload", false, "include the demo workload catalogue (inference, trainer, forge, sensors …)")
	f.BoolVar(&force, "force", false, "overwrite an existing file")
	return cmd
}

func nodeRunCmd(stdio IO) *cobra.Command {
	var listen, dataDir, label, certifyWith string
	var join, caps []string
	var clockSkew time.Duration
	var blobBudget uint64
	var certFile string
	var svc serviceFlags
	cmd := &cobra.Command{
		Use:   "run --cluster FILE --listen ADDR [--join ADDR] --data DIR",
		Short: "Run a headless mesh node until SIGINT or SIGTERM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
			if dataDir == "" {
				return usageErr("--data DIR is required")
			}
			if clockSkew != 0 {
				if err := config.ValidateClockSkewAllowance(clockSkew); err != nil {
					return usageErr("--clock-skew: %v", err)
				}
			}
			spec, err := c.Spec()
			if err != nil {
				return err
			}
			keyPath := filepath.Join(dataDir, "node.key")
			key, err := identity.LoadKey(keyPath)
			if err != nil {
				if _, statErr := os.Stat(keyPath); !errors.Is(statErr, os.ErrNotExist) {
					return fmt.Errorf("node key %s: %w", keyPath, err)
				}
				if key, err = identity.Generate(); err != nil {
					return err
				}
				if err := identity.SaveKey(keyPath, key); err != nil {
					return err
				}
			}
			if label == "" {
				label = key.ID.Short()
			}
			boot := join
			if len(boot) == 0 {
				boot = nil // the cluster file's bootstrap list
			}
			certifier, certifierName, err := e.certifier(clusterPath, c, certifyWith, nil, "")
			if err != nil {
				return err
			}
			cert, certNote, err := nodeCertificate(certFile, dataDir, c.Name, key, certifier, certifierName)
			if err != nil {
				return err
			}
			metricsLn, err := svc.bindMetrics()
			if err != nil {
				return err
			}
			if metricsLn != nil {
				defer metricsLn.Close()
			}
			log = log.With("node", key.ID.String())
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			nd, err := node.Start(ctx, node.Options{
				Cluster: c, Key: key, DataDir: dataDir, ListenAddr: listen, Bootstrap: boot,
				Label: label, Capabilities: caps, Spec: spec, Factories: workloads.Factories(), Version: Version,
				Certificate: cert, ClockSkewAllowance: clockSkew, Logf: nodeLogf(log),
				BlobBudget: blobBudget,
			})
			if err != nil {
				return err
			}
			log.Info("node listening", "label", label, "addr", nd.Addr(), "cluster", c.Name, "version", Version)
			log.Info("membership", "state", certNote, "certified", cert != nil)
			msrv, err := serveMetrics(metricsLn, nd, log)
			if err != nil {
				nd.Close()
				return err
			}
			<-ctx.Done()
			return stopService(log, nil, metricsCloser(msrv), nd.Close)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:7946", "UDP address to listen on")
	f.StringSliceVar(&join, "join", nil, "address of a node to join through (default: the cluster file's bootstrap)")
	f.StringVar(&dataDir, "data", "", "data directory (node key and Badger chains)")
	f.StringVar(&label, "label", "", "human-readable node label (default: short id)")
	f.StringSliceVar(&caps, "capabilities", nil, "capabilities offered to placement, e.g. gpu,edge,datafort")
	addCertifyFlags(f, &certFile, &certifyWith)
	f.DurationVar(&clockSkew, "clock-skew", 0, "how far apart the mesh's clocks may be, e.g. 10s (default: the cluster file's [mesh] clock_skew_allowance_ms, else 10s)")
	f.Uint64Var(&blobBudget, "blob-budget", 0, "`bytes` of blob chunks a datafort node holds (default 8 GiB); past 90% it overflows its coldest blobs onto peers")
	svc.add(f)
	return cmd
}

// addCertifyFlags are --certificate and --certify-with, shared by node run
// and serve.
func addCertifyFlags(f *pflag.FlagSet, file, with *string) {
	f.StringVar(file, "certificate", "", "this node's certificate `file`, issued by an operator (default: DATA/node.cert)")
	f.StringVar(with, "certify-with", certifyAuto, "operator key that certifies this node when it holds no valid certificate: NAME, "+
		"auto (a registered operator key found on this machine) or none (start pending until `deck node admit`)")
}
