package cli

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/deck-mesh/deck/demo/workloads"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
)

func nodeCmd(stdio IO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Create a cluster, run a headless node, certify, admit or revoke nodes",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(nodeInitCmd(stdio), nodeRunCmd(stdio), nodeCertifyCmd(stdio), nodePendingCmd(stdio), nodeAdmitCmd(stdio), nodeRevokeCmd(stdio))
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
	var listen, dataDir string
	var host hostFlags
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
			if err := host.check(); err != nil {
				return err
			}
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
	f.StringVar(&listen, "listen", "127.0.0.1:7946", "UDP address to listen on (0.0.0.0:7946 or [::]:7946: every address, for other hosts)")
	f.StringVar(&dataDir, "data", "", "data directory (node key and Badger chains)")
	host.add(f)
	svc.add(f)
	return cmd
}
