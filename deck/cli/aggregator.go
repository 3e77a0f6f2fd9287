package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

// subnetEnv names the subnet a console joins in (default: the root).
const subnetEnv = "DECK_SUBNET"

// aggregatorQueryTimeout bounds `deck aggregator query`.
const aggregatorQueryTimeout = 15 * time.Second

// consoleSubnet is the subnet this console joins in: --subnet where the
// command has it, else $DECK_SUBNET, else the root.
func consoleSubnet(cmd *cobra.Command) (string, error) {
	s := os.Getenv(subnetEnv)
	if f := cmd.Flags().Lookup("subnet"); f != nil && f.Changed {
		s = f.Value.String()
	}
	if err := identity.ValidateSubnet(s); err != nil {
		return "", usageErr("--subnet: %v", err)
	}
	return s, nil
}

func aggregatorCmd(stdio IO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "aggregator",
		Short: "List subnets' aggregator groups and query their signed summaries",
		Long: `aggregator reads the subnets of a carved mesh. Each subnet's aggregator group
(three of its nodes, placed by the scheduler) folds its members' snapshots
into a summary signed by the member that leads it, with a generation that
grows with every summary and continues across a replacement. A console
outside a subnet sees it only through that summary.

The console joins in the subnet --subnet (or $DECK_SUBNET) names, the root
by default.`,
	}
	cmd.PersistentFlags().String("subnet", "", "the subnet `path` this console joins in (default $DECK_SUBNET, else the root)")
	cmd.AddCommand(aggregatorLsCmd(stdio), aggregatorQueryCmd(stdio))
	return cmd
}

type aggregatorJSON struct {
	Subnet     string   `json:"subnet"`
	Members    []jsonID `json:"members"`
	Desired    int      `json:"desired"`
	Leader     jsonID   `json:"leader"`
	Generation uint64   `json:"generation"`
	UpdatedAt  string   `json:"updated_at"`
	Stale      bool     `json:"stale"`
}

func aggregatorLsCmd(stdio IO) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List every subnet's aggregator group: members, leader, generation",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			s, err := joinCluster(stdio, cmd, false)
			if err != nil {
				return err
			}
			defer s.Close()
			cs := s.client.Snapshot()
			stale := map[string]bool{}
			for _, v := range cs.Subnets {
				stale[v.Path] = v.Stale
			}
			if out == OutputJSON {
				doc := make([]aggregatorJSON, 0, len(cs.Aggregators))
				for _, a := range cs.Aggregators {
					j := aggregatorJSON{Subnet: a.Subnet, Desired: a.Desired, Leader: idJSON(a.Leader), Generation: a.Generation,
						UpdatedAt: isoTime(a.UpdatedAt), Stale: stale[a.Subnet], Members: []jsonID{}}
					for _, m := range a.Members {
						j.Members = append(j.Members, idJSON(m))
					}
					doc = append(doc, j)
				}
				return writeJSON(stdio.Out, doc)
			}
			if len(cs.Aggregators) == 0 {
				fmt.Fprintln(stdio.Out, "no subnet summary has reached this console (a mesh without subnets has none)")
				return nil
			}
			tw := tabwriter.NewWriter(stdio.Out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SUBNET\tLEADER\tMEMBERS\tGEN\tUPDATED\t")
			for _, a := range cs.Aggregators {
				members := make([]string, 0, len(a.Members))
				for _, m := range a.Members {
					members = append(members, m.Short())
				}
				age := "stale"
				if !stale[a.Subnet] {
					age = fmt.Sprintf("%.1fs ago", time.Since(a.UpdatedAt).Seconds())
				}
				fmt.Fprintf(tw, "%s\t%s\t%s (%d/%d)\t%d\t%s\t\n", subnetName(a.Subnet), a.Leader.Short(), strings.Join(members, ","),
					len(a.Members), a.Desired, a.Generation, age)
			}
			return tw.Flush()
		},
	}
}

// subnetName shows the root as "/".
func subnetName(p string) string {
	if p == "" {
		return "/"
	}
	return printable(p)
}

type subnetSummaryJSON struct {
	Subnet        string   `json:"subnet"`
	Generation    uint64   `json:"generation"`
	Aggregator    jsonID   `json:"aggregator"`
	BuiltAt       string   `json:"built_at"`
	Nodes         countsJS `json:"nodes"`
	Daemons       countsJS `json:"daemons"`
	Capacity      float64  `json:"capacity"`
	Saturation    float64  `json:"saturation"`
	ChainsHeld    int      `json:"chains_held"`
	ChainsDesired int      `json:"chains_desired"`
	Blobs         int      `json:"blobs"`
	BlobBytes     uint64   `json:"blob_bytes"`
	Children      []string `json:"children"`
	Gateways      []jsonID `json:"gateways"`
}

type countsJS struct {
	Healthy   int `json:"healthy"`
	Degraded  int `json:"degraded"`
	Unhealthy int `json:"unhealthy"`
}

func aggregatorQueryCmd(stdio IO) *cobra.Command {
	return &cobra.Command{
		Use:   "query PATH",
		Short: "Ask a subnet's aggregator group for its newest signed summary",
		Long: `query asks the aggregator group of the subnet at PATH ("/" for the root) for its
newest summary, leader first, and prints it once its signature, its signer's
certificate (a node of that subnet, in its group) and its generation check out.
Exit 3 when no summary of PATH has reached this console, 7 when no member of
the group answered.`,
		Example: `  deck aggregator query eu/ams
  deck aggregator query eu/ams -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			path := args[0]
			if path == "/" {
				path = ""
			}
			if err := identity.ValidateSubnet(path); err != nil {
				return usageErr("%v", err)
			}
			s, err := joinCluster(stdio, cmd, false)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), aggregatorQueryTimeout)
			defer cancel()
			sum, err := s.client.QuerySubnet(ctx, path)
			if err != nil {
				return err
			}
			return printSubnetSummary(stdio, out, sum)
		},
	}
}

func printSubnetSummary(stdio IO, out string, sum snapshot.SubnetSummary) error {
	if out == OutputJSON {
		j := subnetSummaryJSON{Subnet: sum.Path, Generation: sum.Generation, Aggregator: idJSON(sum.Aggregator), BuiltAt: isoTime(sum.BuiltAt),
			Nodes:    countsJS{sum.Nodes[snapshot.Healthy], sum.Nodes[snapshot.Suspect], sum.Nodes[snapshot.Unreachable]},
			Daemons:  countsJS{sum.Daemons[snapshot.DaemonHealthy], sum.Daemons[snapshot.DaemonDegraded], sum.Daemons[snapshot.DaemonUnhealthy]},
			Capacity: sum.Capacity, Saturation: sum.Saturation, ChainsHeld: sum.ChainsHeld, ChainsDesired: sum.ChainsDesired,
			Blobs: sum.Blobs, BlobBytes: sum.BlobBytes, Children: append([]string{}, sum.Children...), Gateways: []jsonID{}}
		for _, g := range sum.Gateways {
			j.Gateways = append(j.Gateways, idJSON(g))
		}
		return writeJSON(stdio.Out, j)
	}
	tw := tabwriter.NewWriter(stdio.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "subnet\t%s\n", subnetName(sum.Path))
	fmt.Fprintf(tw, "generation\t%d (signed by %s, built %s)\n", sum.Generation, sum.Aggregator, isoTime(sum.BuiltAt))
	fmt.Fprintf(tw, "nodes\t%d healthy, %d suspect, %d unreachable\n", sum.Nodes[0], sum.Nodes[1], sum.Nodes[2])
	fmt.Fprintf(tw, "daemons\t%d healthy, %d degraded, %d unhealthy\n", sum.Daemons[0], sum.Daemons[1], sum.Daemons[2])
	fmt.Fprintf(tw, "capacity\t%.2f nodes free, saturation %.0f%%\n", sum.Capacity, 100*sum.Saturation)
	fmt.Fprintf(tw, "chains\t%d held of %d desired\n", sum.ChainsHeld, sum.ChainsDesired)
	fmt.Fprintf(tw, "blobs\t%d (%d bytes)\n", sum.Blobs, sum.BlobBytes)
	children := make([]string, 0, len(sum.Children))
	for _, c := range sum.Children {
		children = append(children, printable(c))
	}
	fmt.Fprintf(tw, "children\t%s\n", orNone(strings.Join(children, ", ")))
	gws := make([]string, 0, len(sum.Gateways))
	for _, g := range sum.Gateways {
		gws = append(gws, g.String())
	}
	fmt.Fprintf(tw, "gateways\t%s\n", orNone(strings.Join(gws, ", ")))
	return tw.Flush()
}
