package sim

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Scenario bounds.
const (
	// DefaultTrafficWindow is how long idle traffic is counted.
	DefaultTrafficWindow = 10 * time.Second
	// DetectDeadline bounds the wait for one detection, a partition's or a
	// heal's: five times transport.UnreachableAfter.
	DetectDeadline = 20 * time.Second
	// KillFraction is the share of nodes the mass kill takes (issue 16).
	KillFraction = 0.05
	// formPerNode is how much longer forming may take per node, on top of
	// formBase, before the run gives up.
	formBase    = 30 * time.Second
	formPerNode = 150 * time.Millisecond
)

// Report is everything one run measured.
type Report struct {
	Nodes, Subnets int
	Latency        time.Duration
	Loss           float64
	// StartedIn is how long starting every node took; FormedIn how long
	// after that until every subnet saw itself whole and the console saw
	// every node (WaitFormed).
	StartedIn, FormedIn time.Duration
	// Formed is false when the mesh did not form within its bound; the run
	// goes on (what such a mesh costs is the finding), and Unformed says
	// what was missing.
	Formed      bool
	Unformed    string
	Traffic     Traffic
	Convergence Convergence
	Kill        Detection // one node
	MassKill    Detection // KillFraction of the nodes at once
	Partition   Partition
	// Scoped reports whether the console's view held subnet summaries (the
	// subnet-scoped mesh) rather than every node in detail.
	Scoped bool
	Ran    time.Duration
}

// Run starts a simulation, runs the scenario and closes it. window is the
// idle traffic window (0: DefaultTrafficWindow). Each step is logged to
// progress (nil: none) as it finishes, since a large run takes minutes.
func Run(ctx context.Context, opts Options, window time.Duration, progress io.Writer) (Report, error) {
	if window <= 0 {
		window = DefaultTrafficWindow
	}
	say := func(format string, args ...any) {
		if progress != nil {
			fmt.Fprintf(progress, "sim: "+format+"\n", args...)
		}
	}
	rep := Report{Nodes: opts.Nodes, Subnets: opts.Subnets, Latency: opts.Latency, Loss: opts.Loss}
	begin := time.Now()
	s, err := Start(ctx, opts)
	if err != nil {
		return rep, err
	}
	defer s.Close()
	rep.StartedIn = s.Ready.Sub(s.Started)
	say("%d nodes started in %s", opts.Nodes, rep.StartedIn.Round(time.Millisecond))
	fctx, cancel := context.WithTimeout(ctx, formBase+time.Duration(opts.Nodes)*formPerNode)
	rep.FormedIn, err = s.WaitFormed(fctx)
	cancel()
	switch {
	case err == nil:
		rep.Formed = true
		say("formed in %s", rep.FormedIn.Round(time.Millisecond))
	case ctx.Err() != nil:
		return rep, ctx.Err()
	default:
		rep.FormedIn, rep.Unformed = time.Since(s.Ready), s.unformed()
		say("not formed after %s (%s); measuring anyway", rep.FormedIn.Round(time.Millisecond), rep.Unformed)
	}
	if rep.Traffic, err = s.MeasureTraffic(ctx, window); err != nil {
		return rep, err
	}
	say("traffic: %.1f pkts/s, %.0f B/s out per node; CPU %.2f%% of a core per node", rep.Traffic.PacketsOutPerNode,
		rep.Traffic.BytesOutPerNode, 100*rep.Traffic.CPUPerNode)
	if opts.afterTraffic != nil {
		opts.afterTraffic()
	}
	changed, victim := s.pick(1%opts.Subnets, 0), s.pick(2%opts.Subnets, 1)
	if rep.Convergence, err = s.MeasureConvergence(ctx, changed); err != nil {
		return rep, err
	}
	say("change: subnet p99 %s, console %s", rep.Convergence.InSubnet.P99, rep.Convergence.Console)
	if rep.Kill, err = s.MeasureKill(ctx, []*Member{victim}, DetectDeadline); err != nil {
		return rep, err
	}
	say("kill: suspect p99 %s, unreachable p99 %s", rep.Kill.Suspect.P99, rep.Kill.Unreachable.P99)
	if rep.MassKill, err = s.MeasureKill(ctx, s.massVictims(changed), DetectDeadline); err != nil {
		return rep, err
	}
	say("kill %d%%: unreachable p99 %s", int(KillFraction*100), rep.MassKill.Unreachable.P99)
	if rep.Partition, err = s.PartitionSubnet(ctx, opts.Subnets-1, DetectDeadline); err != nil {
		return rep, err
	}
	say("partition: cut seen %v in %s, heal seen %v in %s", rep.Partition.CutSeen, rep.Partition.Cut, rep.Partition.HealedSeen, rep.Partition.Healed)
	rep.Scoped = len(s.Console.Cluster().Subnets) > 0
	rep.Ran = time.Since(begin)
	return rep, nil
}

// pick is the nth live member of subnet k after its seed (the seed itself
// when the subnet has no other).
func (s *Sim) pick(k, nth int) *Member {
	in := s.InSubnet(k)
	if len(in) == 0 {
		return s.Live()[0]
	}
	return in[min(1+nth, len(in)-1)]
}

// massVictims is KillFraction of the nodes (at least one), spread over the
// subnets round robin, never node 0 (the mesh's first seed) nor spare.
func (s *Sim) massVictims(spare *Member) []*Member {
	want := max(1, int(float64(len(s.Members))*KillFraction))
	var out []*Member
	for i := len(s.Members) - 1; i > 0 && len(out) < want; i-- {
		m := s.Members[i]
		if m == spare || m.Killed() || m.Node == nil {
			continue
		}
		out = append(out, m)
	}
	return out
}

// Print writes the report as text.
func (r Report) Print(w io.Writer) {
	ms := func(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }
	sp := func(s Spread) string {
		return fmt.Sprintf("p50 %s  p99 %s  max %s  (%d/%d)", ms(s.P50), ms(s.P99), ms(s.Max), s.Reached, s.Observers)
	}
	mib := func(b uint64) string { return fmt.Sprintf("%.2f MiB", float64(b)/(1<<20)) }
	scoped := "no (every node in detail: pre-scoping)"
	if r.Scoped {
		scoped = "yes (the console holds subnet summaries)"
	}
	t := r.Traffic
	fmt.Fprintf(w, "simulation   %d nodes in %d subnets, links %s one way, %.1f%% loss\n", r.Nodes, r.Subnets, r.Latency, 100*r.Loss)
	fmt.Fprintf(w, "scoped       %s\n", scoped)
	if r.Formed {
		fmt.Fprintf(w, "start        %s, formed %s later\n", ms(r.StartedIn), ms(r.FormedIn))
	} else {
		fmt.Fprintf(w, "start        %s, NOT formed %s later: %s\n", ms(r.StartedIn), ms(r.FormedIn), r.Unformed)
	}
	fmt.Fprintf(w, "per node     %.1f pkts/s out, %.1f in; %.0f B/s out, %.0f in; busiest %.1f pkts/s out (over %s)\n",
		t.PacketsOutPerNode, t.PacketsInPerNode, t.BytesOutPerNode, t.BytesInPerNode, t.MaxPacketsOut, t.Window.Round(time.Millisecond))
	fmt.Fprintf(w, "cost         CPU %.2f%% of a core per node; heap %s, RSS %s per node; %d goroutines\n",
		100*t.CPUPerNode, mib(t.HeapPerNode), mib(t.ResidentPerNode), t.Goroutines)
	fmt.Fprintf(w, "heartbeats   %.1f/s out per node; the network delivered %.1f%% of what was sent\n", t.HeartbeatsOutPerNode, 100*t.NetDelivered)
	fmt.Fprintf(w, "inboxes      %d datagrams dropped on members' full inboxes, %d of them at the %d seeds (gateways)\n",
		t.InboxDrops, t.SeedInboxDrops, r.Subnets)
	fmt.Fprintf(w, "drops        transport %d, network queue %d; handshakes rate-limited %d, cookie replies %d, responders evicted %d (over the window, all nodes)\n",
		t.TransportDrops, t.NetQueueDrops, t.HandshakesRateLimited, t.CookieReplies, t.RespondersEvicted)
	c := r.Convergence
	console := "not seen"
	if c.ConsoleSeen {
		console = ms(c.Console)
	}
	if c.OwnSeen {
		fmt.Fprintf(w, "change       %s cordoned (own snapshot after %s): subnet %s; console %s\n", c.Node, ms(c.Committed), sp(c.InSubnet), console)
	} else {
		fmt.Fprintf(w, "change       %s cordoned: its own snapshot did not show it within %s\n", c.Node, DetectDeadline)
	}
	for _, k := range []struct {
		title string
		d     Detection
	}{{"kill", r.Kill}, {fmt.Sprintf("kill %d%%", int(KillFraction*100)), r.MassKill}} {
		fmt.Fprintf(w, "%-12s %s: suspect %s\n", k.title, k.d.Node, sp(k.d.Suspect))
		fmt.Fprintf(w, "             unreachable %s\n", sp(k.d.Unreachable))
		if k.d.NotHealthyBefore > 0 {
			fmt.Fprintf(w, "             (%d observers did not see the victim Healthy before the kill: left out)\n", k.d.NotHealthyBefore)
		}
	}
	p := r.Partition
	seen := func(ok bool, d time.Duration) string {
		if !ok {
			return "not seen within " + DetectDeadline.String()
		}
		return ms(d)
	}
	fmt.Fprintf(w, "partition    %s (%d nodes): console saw it cut after %s, healed after %s\n", p.Subnet, p.Nodes,
		seen(p.CutSeen, p.Cut), seen(p.HealedSeen, p.Healed))
	fmt.Fprintf(w, "ran          %s\n", r.Ran.Round(time.Second))
}
