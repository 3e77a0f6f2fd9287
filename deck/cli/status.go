package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/deck-mesh/deck/node/snapshot"
)

func statusCmd(stdio IO) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Print a cluster summary: nodes, daemons, chains, freeze",
		Long: `status joins the cluster with a short-lived console node, waits until it has
heard from every node, and prints the cluster as that node sees it: nodes
(health, RTT, saturation, maintenance, cordon), daemons, chains, an active
freeze and ICE lockouts. Exits 6 if no node answers.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			e, err := loadEnv(stdio)
			if err != nil {
				return err
			}
			s, err := e.join(cmd, false)
			if err != nil {
				return err
			}
			defer s.Close()
			cs := s.client.Snapshot()
			if out == OutputJSON {
				return writeJSON(stdio.Out, statusJSON(cs, time.Now()))
			}
			printStatus(stdio.Out, cs, time.Now())
			return nil
		},
	}
}

type statusDoc struct {
	Cluster        string        `json:"cluster"`
	GeneratedAt    string        `json:"generated_at"`
	Nodes          []nodeDoc     `json:"nodes"`
	Daemons        []daemonDoc   `json:"daemons"`
	Chains         []chainDoc    `json:"chains"`
	Migrations     []migDoc      `json:"migrations"`
	Freeze         *freezeDoc    `json:"freeze"`
	Lockouts       []lockoutDoc  `json:"lockouts"`
	Operators      []operatorDoc `json:"operators"`
	AdminEvents    uint64        `json:"admin_events"`
	ICEThreshold   int           `json:"ice_threshold"`
	AdminThreshold int           `json:"admin_threshold"`
}

type nodeDoc struct {
	jsonID
	Label        string   `json:"label"`
	Addr         string   `json:"addr"`
	Health       string   `json:"health"`
	Stale        bool     `json:"stale"`
	RTTMs        int64    `json:"rtt_ms"`
	Cordoned     bool     `json:"cordoned"`
	Maintenance  string   `json:"maintenance"`
	Reason       string   `json:"maintenance_reason,omitempty"`
	Saturation   float64  `json:"saturation"`
	Daemons      int      `json:"daemons"`
	Replicas     int      `json:"replicas"`
	Chains       []string `json:"replica_chains"`
	Capabilities []string `json:"capabilities"`
	Observer     bool     `json:"observer"`
	UptimeMs     int64    `json:"uptime_ms"`
}

type daemonDoc struct {
	ID         string  `json:"id"`
	Group      string  `json:"group"`
	Kind       string  `json:"kind"`
	Lineage    string  `json:"lineage"`
	Node       jsonID  `json:"node"`
	Lifecycle  string  `json:"lifecycle"`
	Health     string  `json:"health"`
	Restart    string  `json:"restart"`
	Restarts   int     `json:"restarts"`
	Saturation float64 `json:"saturation"`
}

type chainDoc struct {
	Name    string   `json:"name"`
	Desired int      `json:"desired"`
	Held    int      `json:"held"`
	Status  string   `json:"status"`
	Leader  jsonID   `json:"leader"`
	Holders []jsonID `json:"holders"`
}

type migDoc struct {
	ID       string  `json:"id"`
	Daemon   string  `json:"daemon"`
	Source   jsonID  `json:"source"`
	Target   jsonID  `json:"target"`
	Phase    string  `json:"phase"`
	Progress float64 `json:"progress"`
}

type freezeDoc struct {
	Reason      string `json:"reason"`
	Operator    jsonID `json:"operator"`
	Until       string `json:"until"`
	RemainingMs int64  `json:"remaining_ms"`
}

type lockoutDoc struct {
	Verb        string `json:"verb"`
	Target      string `json:"target"`
	RemainingMs int64  `json:"remaining_ms"`
}

type operatorDoc struct {
	jsonID
	Name string `json:"name"`
}

// shownNodes are the nodes status reports: every mesh node, and the other
// consoles that are still attached. This console's own ephemeral node and
// consoles that have left (their snapshots linger in gossip until they
// expire) would only bury the cluster under ghosts.
func shownNodes(cs *snapshot.ClusterSnapshot) []snapshot.NodeView {
	out := make([]snapshot.NodeView, 0, len(cs.Nodes))
	for _, nv := range cs.Nodes {
		if nv.ID == cs.Self || (nv.Observer && (nv.Stale || nv.Health == snapshot.Unreachable)) {
			continue
		}
		out = append(out, nv)
	}
	return out
}

func statusJSON(cs *snapshot.ClusterSnapshot, now time.Time) statusDoc {
	d := statusDoc{Cluster: cs.Cluster, GeneratedAt: isoTime(now), Nodes: []nodeDoc{}, Daemons: []daemonDoc{},
		Chains: []chainDoc{}, Migrations: []migDoc{}, Lockouts: []lockoutDoc{}, Operators: []operatorDoc{},
		AdminEvents: cs.AdminHead.Count, ICEThreshold: cs.ICEThreshold, AdminThreshold: cs.AdminThreshold}
	for _, nv := range shownNodes(cs) {
		up := int64(0)
		if !nv.StartedAt.IsZero() {
			up = millis(now.Sub(nv.StartedAt))
		}
		d.Nodes = append(d.Nodes, nodeDoc{jsonID: idJSON(nv.ID), Label: nv.Label, Addr: nv.Addr, Health: nv.Health.String(),
			Stale: nv.Stale, RTTMs: millis(nv.RTT), Cordoned: nv.Cordoned, Maintenance: nv.Maintenance.State.String(),
			Reason: nv.Maintenance.Reason, Saturation: nv.Resources.Saturation, Daemons: len(nv.Daemons),
			Replicas: len(nv.Replicas), Chains: replicaChains(nv.Replicas), Capabilities: append([]string{}, nv.Capabilities...), Observer: nv.Observer, UptimeMs: up})
		if nv.Stale {
			continue
		}
		for _, dm := range nv.Daemons {
			d.Daemons = append(d.Daemons, daemonDoc{ID: dm.ID, Group: dm.Lineage.Group, Kind: dm.Kind, Lineage: dm.Lineage.Label(),
				Node: idJSON(nv.ID), Lifecycle: dm.Lifecycle.String(), Health: dm.Health.String(), Restart: dm.Restart.String(),
				Restarts: dm.Restarts, Saturation: dm.Saturation})
		}
		for _, m := range nv.Migrations {
			d.Migrations = append(d.Migrations, migDoc{ID: m.ID, Daemon: m.Daemon, Source: idJSON(m.Source), Target: idJSON(m.Target),
				Phase: m.Phase.String(), Progress: m.Progress})
		}
	}
	for _, c := range cs.Chains {
		cd := chainDoc{Name: c.Name, Desired: c.Desired, Held: c.Held(), Status: c.Status(), Leader: idJSON(c.Leader), Holders: []jsonID{}}
		for _, h := range c.Holders {
			cd.Holders = append(cd.Holders, idJSON(h))
		}
		d.Chains = append(d.Chains, cd)
	}
	if cs.Freeze.Active {
		d.Freeze = &freezeDoc{Reason: cs.Freeze.Reason, Operator: idJSON(cs.Freeze.Operator), Until: isoTime(cs.Freeze.Until),
			RemainingMs: max(0, millis(cs.Freeze.Until.Sub(now)))}
	}
	for _, l := range cs.Lockouts {
		d.Lockouts = append(d.Lockouts, lockoutDoc{Verb: l.Verb, Target: l.Target, RemainingMs: max(0, millis(l.Until.Sub(now)))})
	}
	for _, o := range cs.Operators {
		d.Operators = append(d.Operators, operatorDoc{jsonID: idJSON(o.ID), Name: o.Name})
	}
	return d
}

func printStatus(w io.Writer, cs *snapshot.ClusterSnapshot, now time.Time) {
	nm := namesOf(cs)
	nodes := shownNodes(cs)
	var mesh, consoles, healthy, suspect, unreachable int
	var daemons, running, crashed int
	for _, nv := range nodes {
		if nv.Observer {
			consoles++
			continue
		}
		mesh++
		switch {
		case nv.Health == snapshot.Healthy && !nv.Stale:
			healthy++
		case nv.Health == snapshot.Unreachable:
			unreachable++
		default:
			suspect++
		}
		if nv.Stale {
			continue
		}
		for _, dm := range nv.Daemons {
			daemons++
			switch dm.Lifecycle {
			case snapshot.LifecycleRunning:
				running++
			case snapshot.LifecycleCrashed:
				crashed++
			}
		}
	}
	health := fmt.Sprintf("%d healthy", healthy)
	if suspect > 0 {
		health += fmt.Sprintf(", %d suspect", suspect)
	}
	if unreachable > 0 {
		health += fmt.Sprintf(", %d unreachable", unreachable)
	}
	fmt.Fprintf(w, "cluster %s · %s (%s)", cs.Cluster, plural(mesh, "node"), health)
	if consoles > 0 {
		fmt.Fprintf(w, " · %s attached", plural(consoles, "other console"))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%s (%d running", plural(daemons, "daemon"), running)
	if crashed > 0 {
		fmt.Fprintf(w, ", %d crashed", crashed)
	}
	fmt.Fprintf(w, ") · %s · %s, thresholds admin %d, ICE %d\n",
		plural(int(cs.AdminHead.Count), "admin event"), plural(len(cs.Operators), "operator"), cs.AdminThreshold, cs.ICEThreshold)
	if cs.Freeze.Active {
		fmt.Fprintf(w, "FROZEN by %s: %s (%s left)\n", nm.operator(cs.Freeze.Operator), cs.Freeze.Reason,
			max(0, cs.Freeze.Until.Sub(now)).Round(time.Second))
	}
	for _, l := range cs.Lockouts {
		fmt.Fprintf(w, "LOCKOUT: ICE %s on %s (%s left)\n", l.Verb, nm.target(l.Target), max(0, l.Until.Sub(now)).Round(time.Second))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tID\tHEALTH\tRTT\tSAT\tDAEMONS\tREPLICAS\tMAINT\tFLAGS")
	for _, nv := range nodes {
		if nv.Observer {
			continue
		}
		var flags []string
		if nv.Cordoned {
			flags = append(flags, "cordoned")
		}
		if nv.Stale {
			flags = append(flags, "stale")
		}
		rtt := "-"
		if nv.RTT > 0 {
			rtt = fmtRTT(nv.RTT)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.0f%%\t%d\t%d\t%s\t%s\n", nv.Label, nv.ID, nv.Health, rtt,
			nv.Resources.Saturation*100, len(nv.Daemons), len(nv.Replicas), nv.Maintenance.State, orDash(strings.Join(flags, ",")))
	}
	tw.Flush()
	if len(cs.Chains) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CHAIN\tHELD\tDESIRED\tSTATUS\tLEADER\tHOLDERS")
		for _, c := range cs.Chains {
			leader := "-"
			if c.Leader != 0 {
				leader = nm.node(c.Leader)
			}
			holders := make([]string, 0, len(c.Holders))
			for _, h := range c.Holders {
				holders = append(holders, nm.node(h))
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", c.Name, c.Held(), c.Desired, c.Status(), leader, orDash(strings.Join(holders, ",")))
		}
		tw.Flush()
	}
}

func replicaChains(rs []snapshot.Replica) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.Chain)
	}
	return out
}

// fmtRTT renders a round-trip time with two significant digits at most.
func fmtRTT(d time.Duration) string {
	switch {
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(10 * time.Microsecond).String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// plural renders "1 node", "3 nodes".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
