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
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Print a cluster summary: nodes, daemons, chains, freeze",
		Long: `status joins the cluster with a short-lived console node, waits until it has
heard from every node, and prints the cluster as that node sees it: nodes
(health, RTT, saturation, maintenance, cordon), each node's avoid list and
pending actions, daemons, migrations (in flight and just finished), chains,
an active freeze and ICE lockouts. Exits 6 if no node answers.`,
		Args: cobra.NoArgs,
		RunE: joined(stdio, func(cmd *cobra.Command, _ []string, s *session, out string) error {
			cs := s.client.Snapshot()
			if out == OutputJSON {
				return writeJSON(stdio.Out, statusJSON(cs, time.Now()))
			}
			printStatus(stdio.Out, cs, time.Now())
			return nil
		}),
	}
	addListenFlag(cmd.Flags())
	return cmd
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
	Label        string       `json:"label"`
	Addr         string       `json:"addr"`
	Health       string       `json:"health"`
	Stale        bool         `json:"stale"`
	RTTMs        int64        `json:"rtt_ms"`
	Cordoned     bool         `json:"cordoned"`
	Maintenance  string       `json:"maintenance"`
	Reason       string       `json:"maintenance_reason,omitempty"`
	Saturation   float64      `json:"saturation"`
	Daemons      int          `json:"daemons"`
	Replicas     int          `json:"replicas"`
	Chains       []string     `json:"replica_chains"`
	Capabilities []string     `json:"capabilities"`
	Observer     bool         `json:"observer"`
	UptimeMs     int64        `json:"uptime_ms"`
	Avoid        []avoidDoc   `json:"avoid"`
	Pending      []pendingDoc `json:"pending"`
}

// avoidDoc is one entry of a node's avoid list: a peer it keeps new
// placements away from until the entry expires (or an operator clears it).
type avoidDoc struct {
	Peer        jsonID `json:"peer"`
	PeerLabel   string `json:"peer_label"`
	Reason      string `json:"reason"`
	Until       string `json:"until"`
	RemainingMs int64  `json:"remaining_ms"`
}

// pendingDoc is an action MeshOS decided on and has not finished; blocked
// says why it is held ("" when it is simply in progress).
type pendingDoc struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Target  string `json:"target"`
	Since   string `json:"since"`
	Blocked string `json:"blocked"`
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
	Retries  int     `json:"retries"`
	Error    string  `json:"error"`
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
	nm := namesOf(cs)
	for _, nv := range shownNodes(cs) {
		up := int64(0)
		if !nv.StartedAt.IsZero() {
			up = millis(now.Sub(nv.StartedAt))
		}
		nd := nodeDoc{jsonID: idJSON(nv.ID), Label: nv.Label, Addr: nv.Addr, Health: nv.Health.String(),
			Stale: nv.Stale, RTTMs: millis(nv.RTT), Cordoned: nv.Cordoned, Maintenance: nv.Maintenance.State.String(),
			Reason: nv.Maintenance.Reason, Saturation: nv.Resources.Saturation, Daemons: len(nv.Daemons),
			Replicas: len(nv.Replicas), Chains: replicaChains(nv.Replicas), Capabilities: append([]string{}, nv.Capabilities...), Observer: nv.Observer, UptimeMs: up,
			Avoid: []avoidDoc{}, Pending: []pendingDoc{}}
		for _, e := range nv.Avoid {
			nd.Avoid = append(nd.Avoid, avoidDoc{Peer: idJSON(e.Peer), PeerLabel: nm.nodes[e.Peer], Reason: e.Reason,
				Until: isoTime(e.Until), RemainingMs: max(0, millis(e.Until.Sub(now)))})
		}
		for _, p := range nv.Pending {
			nd.Pending = append(nd.Pending, pendingDoc{ID: p.ID, Kind: p.Kind, Target: p.Target, Since: isoTime(p.Since), Blocked: p.Blocked})
		}
		d.Nodes = append(d.Nodes, nd)
		if nv.Stale {
			continue
		}
		for _, dm := range nv.Daemons {
			d.Daemons = append(d.Daemons, daemonDoc{ID: dm.ID, Group: dm.Lineage.Group, Kind: dm.Kind, Lineage: dm.Lineage.Label(),
				Node: idJSON(nv.ID), Lifecycle: dm.Lifecycle.String(), Health: dm.Health.String(), Restart: dm.Restart.String(),
				Restarts: dm.Restarts, Saturation: dm.Saturation})
		}
	}
	for _, m := range migrationsOf(shownNodes(cs)) {
		d.Migrations = append(d.Migrations, migDoc{ID: m.ID, Daemon: m.Daemon, Source: idJSON(m.Source), Target: idJSON(m.Target),
			Phase: m.Phase.String(), Progress: m.Progress, Retries: m.Retries, Error: m.Error})
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
	printNodeLists(w, nodes, nm, now)
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

// printNodeLists prints, when there is any, each mesh node's avoid list,
// its pending actions and the migrations it reports.
func printNodeLists(w io.Writer, nodes []snapshot.NodeView, nm names, now time.Time) {
	var avoid, pending, migs [][]string
	for _, nv := range nodes {
		if nv.Observer {
			continue
		}
		for _, e := range nv.Avoid {
			avoid = append(avoid, []string{nv.Label, nm.node(e.Peer), e.Reason, max(0, e.Until.Sub(now)).Round(time.Second).String()})
		}
		for _, p := range nv.Pending {
			held := "in progress"
			if p.Blocked != "" {
				held = "held: " + nm.target(p.Blocked)
			}
			pending = append(pending, []string{nv.Label, p.Kind, p.Target, max(0, now.Sub(p.Since)).Round(time.Second).String(), held})
		}
	}
	for _, m := range migrationsOf(nodes) {
		note := m.ID
		if m.Error != "" {
			note = m.Error
		}
		migs = append(migs, []string{m.Daemon, nm.node(m.Source), nm.node(m.Target), m.Phase.String(),
			fmt.Sprintf("%.0f%%", m.Progress*100), note})
	}
	section := func(header string, rows [][]string) {
		if len(rows) == 0 {
			return
		}
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, header)
		for _, r := range rows {
			fmt.Fprintln(tw, strings.Join(r, "\t"))
		}
		tw.Flush()
	}
	section("NODE\tAVOIDS\tREASON\tLEFT", avoid)
	section("NODE\tPENDING\tTARGET\tFOR\tSTATE", pending)
	section("MIGRATION\tFROM\tTO\tPHASE\tPROGRESS\tID / ERROR", migs)
}

// migrationsOf lists the migrations the fresh nodes report, each once: both
// ends report a migration, and the source's record (it drives the
// migration and keeps the error of a rollback) wins.
func migrationsOf(nodes []snapshot.NodeView) []snapshot.Migration {
	var out []snapshot.Migration
	at := map[string]int{}
	for _, nv := range nodes {
		if nv.Stale {
			continue
		}
		for _, m := range nv.Migrations {
			i, seen := at[m.ID]
			switch {
			case !seen:
				at[m.ID] = len(out)
				out = append(out, m)
			case nv.ID == m.Source:
				out[i] = m
			}
		}
	}
	return out
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
