package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/deck-mesh/deck/deck"
	"github.com/deck-mesh/deck/deck/serve"
	"github.com/deck-mesh/deck/demo"
	"github.com/deck-mesh/deck/demo/sim"
	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
)

var errNoTTY = api.ErrInvalid

// convergeTimeout bounds how long `deck demo` waits for the mesh before it
// opens the deck anyway (the deck shows the mesh converging).
const convergeTimeout = 15 * time.Second

func demoCmd(stdio IO) *cobra.Command {
	var o demo.Options
	var headless bool
	var runFor time.Duration
	var sshAddr string
	var sf simFlags
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Spawn a local N-node mesh and open the deck on it",
		Long: `demo starts N real nodes on 127.0.0.1 (own UDP socket, own Badger dir, own
keys), running believable workloads, writes a cluster file with two demo
operators (alice, bob) and opens the deck attached through its own embedded
node. q or Ctrl-C stops everything; the state dir is removed unless
--state-dir was given.

--sim N --headless instead runs the large-mesh simulation: N real nodes
in one process on the in-process network (in-memory Badger, --subnets
subnets, links of --link-latency and --link-loss) and a console; it
measures per-node traffic, CPU and memory over --for (default 10s), how
fast a change reaches its subnet and the console, how fast a kill is
detected, then kills 5% of the nodes, partitions a subnet and heals it,
and prints the report.`,
		Example: `  deck demo
  deck demo --nodes 5 --topology ring --ice-threshold 2
  deck demo --headless --for 30s --output json
  deck demo --sim 1000 --subnets 32 --headless --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			if runFor < 0 {
				return usageErr("--for must not be negative")
			}
			if cmd.Flags().Changed("sim") {
				switch {
				case !headless:
					return usageErr("--sim runs without the TUI: add --headless")
				case o.Procs || sshAddr != "" || cmd.Flags().Changed("nodes"):
					return usageErr("--sim does not combine with --procs, --ssh or --nodes")
				}
				ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				return runSim(ctx, stdio, sf, runFor, out)
			}
			if cmd.Flags().Changed("subnets") || cmd.Flags().Changed("link-latency") || cmd.Flags().Changed("link-loss") {
				return usageErr("--subnets, --link-latency and --link-loss need --sim")
			}
			if !headless && !stdio.IsTTY {
				return fmt.Errorf("%w: the deck needs a terminal; use --headless", errNoTTY)
			}
			o.Version = Version
			if err := o.Validate(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			started := time.Now()
			d, err := demo.Start(ctx, o)
			if err != nil {
				return err
			}
			defer d.Close()
			console, err := d.Console(ctx)
			if err != nil {
				return err
			}
			attach := fmt.Sprintf("export DECK_CLUSTER=%s DECK_IDENTITY=alice", d.ClusterPath())
			fmt.Fprintf(stdio.Err, "deck demo: %d nodes up; in another terminal:\n  %s\n", o.Nodes, attach)
			if sshAddr != "" {
				stopSSH, err := serveDemoConsoles(d, console, sshAddr, headless, stdio)
				if err != nil {
					return err
				}
				defer stopSSH()
			}
			var convergedAfter time.Duration
			wctx, cancel := context.WithTimeout(ctx, convergeTimeout)
			if err := d.WaitConverged(wctx); err == nil {
				convergedAfter = time.Since(started)
			}
			cancel()
			if headless {
				if runFor > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(runFor):
					}
				}
				sum := d.Summarize(time.Since(started), convergedAfter)
				if out == OutputJSON {
					return writeJSON(stdio.Out, summaryJSON(sum))
				}
				printSummary(stdio, sum)
				return nil
			}
			alice := d.Operator("alice")
			cl, err := console.NewClient(identity.KeySigner{K: alice}, "alice")
			if err != nil {
				return err
			}
			return deck.Run(ctx, cl, deck.Options{Version: Version, Faults: d, AttachHint: attach})
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Nodes, "nodes", demo.DefaultNodes, "number of nodes")
	f.StringVar(&o.Topology, "topology", demo.TopologyMesh, "links between nodes: ring|mesh|random")
	f.Int64Var(&o.Seed, "seed", 1, "seed for the random topology")
	f.StringVar(&o.StateDir, "state-dir", "", "keep cluster file, keys and data here (default: a temp dir removed on exit)")
	f.IntVar(&o.ICEThreshold, "ice-threshold", 1, "ICE signatures needed (1 or 2: alice and bob)")
	f.BoolVar(&o.Procs, "procs", false, "run each node in its own child process (a kill is a real SIGKILL)")
	f.BoolVar(&headless, "headless", false, "run without the TUI and print a summary")
	f.DurationVar(&runFor, "for", 0, "with --headless: run this long before the summary (with --sim: the traffic window)")
	f.StringVar(&sshAddr, "ssh", "", "also serve SSH consoles of the demo on this TCP address (see deck serve)")
	f.IntVar(&sf.nodes, "sim", sim.DefaultNodes, "run the large-mesh simulation of this many nodes in one process (with --headless)")
	f.IntVar(&sf.subnets, "subnets", sim.DefaultSubnets, "with --sim: subnets the nodes are split into")
	f.DurationVar(&sf.latency, "link-latency", sim.DefaultLinkLatency, "with --sim: one-way latency of every link")
	f.Float64Var(&sf.loss, "link-loss", 0, "with --sim: packet loss fraction of every link, 0..1")
	cmd.AddCommand(demoFaultCmd(stdio))
	return cmd
}

func demoFaultCmd(stdio IO) *cobra.Command {
	var nodes, peers []string
	var delay time.Duration
	var loss float64
	var daemon string
	cmd := &cobra.Command{
		Use:   "fault KIND",
		Short: "Inject a fault into a running demo: kill|restart|pause|resume|partition|heal|slow|crashloop|corrupt-chunk|fill-disk",
		Example: `  deck demo fault kill --node node-3
  deck demo fault partition --node node-1,node-2
  deck demo fault slow --node node-4 --delay 300ms --loss 0.05
  deck demo fault crashloop --daemon sensor-array-0
  deck demo fault corrupt-chunk --node node-4
  deck demo fault fill-disk --node node-6
  deck demo fault heal`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			flag, _ := cmd.Flags().GetString("cluster")
			path := flag
			if path == "" {
				path = os.Getenv(config.ClusterEnv)
			}
			if path == "" {
				return usageErr("no running demo named: set %s (deck demo prints it) or pass --cluster", config.ClusterEnv)
			}
			req := demo.FaultRequest{Kind: api.FaultKind(strings.ToLower(args[0])), Nodes: nodes, Peers: peers,
				DelayMs: delay.Milliseconds(), Loss: loss, Daemon: daemon}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			resp, err := demo.SendFault(ctx, filepath.Join(filepath.Dir(path), demo.ControlSocket), req)
			var re *demo.RemoteError
			if errors.As(err, &re) {
				return &exitError{code: re.ExitCode(), err: re}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(stdio.Out, "ok · active faults: %s\n", orNone(strings.Join(resp.Active, "; ")))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&nodes, "node", nil, "node(s): node-N, N or id")
	f.StringSliceVar(&peers, "peer", nil, "partition/slow: only the links to these nodes (default all)")
	f.DurationVar(&delay, "delay", 0, "slow: added one-way latency")
	f.Float64Var(&loss, "loss", 0, "slow: packet loss fraction 0..1")
	f.StringVar(&daemon, "daemon", "", "crashloop: daemon id")
	return cmd
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// serveDemoConsoles serves SSH consoles (as deck serve does) on the demo's
// own console node, so an operator can ssh -A into the running demo. The
// host key lives in the state dir; session events go to ssh.log there
// (stderr under the TUI would tear the screen), or to stderr when headless.
func serveDemoConsoles(d *demo.Demo, console *node.Node, addr string, headless bool, stdio IO) (stop func(), err error) {
	hostKey := filepath.Join(d.StateDir(), serve.HostKeyFile)
	signer, _, err := serve.LoadOrCreateHostKey(hostKey)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--ssh %s: %w", addr, err)
	}
	logf := stderrLog(stdio)
	var logFile *os.File
	if !headless {
		logFile, err = os.OpenFile(filepath.Join(d.StateDir(), "ssh.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			ln.Close()
			return nil, err
		}
		logf = stderrLog(IO{Err: logFile})
	}
	srv, err := serve.New(serve.Config{Node: console, HostKey: signer, Version: Version, Logf: logf})
	if err != nil {
		ln.Close()
		if logFile != nil {
			logFile.Close()
		}
		return nil, err
	}
	go srv.Serve(ln) // ends when srv closes the listener
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	fmt.Fprintf(stdio.Err, "ssh consoles on %s, host key %s %s; with a demo operator key in your agent\n"+
		"(deck identity export alice --ssh --out FILE; ssh-add FILE):\n  ssh -A -p %s deck@%s\n",
		ln.Addr(), signer.PublicKey().Type(), serve.Fingerprint(signer.PublicKey()), port, host)
	return func() {
		srv.Close()
		if logFile != nil {
			logFile.Close()
		}
	}, nil
}
