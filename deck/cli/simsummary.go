package cli

import (
	"context"
	"time"

	"github.com/deck-mesh/deck/demo/sim"
)

// simFlags are `deck demo --sim`'s own flags.
type simFlags struct {
	nodes, subnets int
	latency        time.Duration
	loss           float64
}

// runSim runs the simulation scenario and prints its report; progress
// lines go to stderr as each step finishes (a 1,000-node run takes
// minutes).
func runSim(ctx context.Context, stdio IO, f simFlags, window time.Duration, out string) error {
	opts := sim.Options{Nodes: f.nodes, Subnets: f.subnets, Latency: f.latency, Loss: f.loss, Version: Version}
	if err := opts.Validate(); err != nil {
		return err
	}
	rep, err := sim.Run(ctx, opts, window, stdio.Err)
	if err != nil {
		return err
	}
	if out == OutputJSON {
		return writeJSON(stdio.Out, simJSON(rep))
	}
	rep.Print(stdio.Out)
	return nil
}

// simDoc is the report as --output json prints it; durations in ms, rates
// per node per second, as the demo's summary does.
type simDoc struct {
	Nodes         int     `json:"nodes"`
	Subnets       int     `json:"subnets"`
	LinkLatencyMs float64 `json:"link_latency_ms"`
	LinkLoss      float64 `json:"link_loss"`
	Scoped        bool    `json:"scoped"`
	StartedMs     int64   `json:"started_ms"`
	FormedMs      int64   `json:"formed_ms"`
	Formed        bool    `json:"formed"`
	Unformed      string  `json:"unformed,omitempty"`
	RanMs         int64   `json:"ran_ms"`
	PerNode       struct {
		WindowMs      int64   `json:"window_ms"`
		PacketsOut    float64 `json:"packets_out_per_s"`
		PacketsIn     float64 `json:"packets_in_per_s"`
		BytesOut      float64 `json:"bytes_out_per_s"`
		BytesIn       float64 `json:"bytes_in_per_s"`
		MaxPacketsOut float64 `json:"busiest_packets_out_per_s"`
		CPUCores      float64 `json:"cpu_cores"`
		HeapBytes     uint64  `json:"heap_bytes"`
		ResidentBytes uint64  `json:"resident_bytes"`
	} `json:"per_node"`
	Goroutines int `json:"goroutines"`
	Drops      struct {
		Transport             uint64 `json:"transport"`
		HandshakesRateLimited uint64 `json:"handshakes_rate_limited"`
		NetworkQueue          uint64 `json:"network_queue"`
		CookieReplies         uint64 `json:"cookie_replies"`
		RespondersEvicted     uint64 `json:"responders_evicted"`
		InboxDrops            uint64 `json:"inbox"`
		SeedInboxDrops        uint64 `json:"inbox_at_seeds"`
	} `json:"window_drops"`
	HeartbeatsOut float64 `json:"heartbeats_out_per_node_per_s"`
	NetDelivered  float64 `json:"network_delivered_fraction"`
	Convergence   struct {
		Node        string    `json:"node"`
		Subnet      string    `json:"subnet"`
		CommittedMs int64     `json:"committed_ms"`
		OwnSeen     bool      `json:"own_snapshot_seen"`
		InSubnet    spreadDoc `json:"in_subnet"`
		ConsoleMs   *int64    `json:"console_ms"`
	} `json:"convergence"`
	Kill      detectDoc `json:"kill"`
	MassKill  detectDoc `json:"kill_5_percent"`
	Partition struct {
		Subnet   string `json:"subnet"`
		Nodes    int    `json:"nodes"`
		CutMs    *int64 `json:"cut_seen_ms"`
		HealedMs *int64 `json:"healed_seen_ms"`
	} `json:"partition"`
}

type spreadDoc struct {
	Observers int   `json:"observers"`
	Reached   int   `json:"reached"`
	P50Ms     int64 `json:"p50_ms"`
	P99Ms     int64 `json:"p99_ms"`
	MaxMs     int64 `json:"max_ms"`
}

type detectDoc struct {
	Node        string    `json:"node"`
	Subnet      string    `json:"subnet"`
	Suspect     spreadDoc `json:"suspect"`
	Unreachable spreadDoc `json:"unreachable"`
	// NotHealthyBefore: observers left out, not seeing the victim Healthy
	// when it was killed.
	NotHealthyBefore int `json:"not_healthy_before"`
}

func spreadJSON(s sim.Spread) spreadDoc {
	return spreadDoc{Observers: s.Observers, Reached: s.Reached, P50Ms: millis(s.P50), P99Ms: millis(s.P99), MaxMs: millis(s.Max)}
}

func detectJSON(d sim.Detection) detectDoc {
	return detectDoc{Node: d.Node, Subnet: d.Subnet, Suspect: spreadJSON(d.Suspect), Unreachable: spreadJSON(d.Unreachable),
		NotHealthyBefore: d.NotHealthyBefore}
}

// seenMs is d in ms when seen, nil (null) when not.
func seenMs(seen bool, d time.Duration) *int64 {
	if !seen {
		return nil
	}
	ms := millis(d)
	return &ms
}

func simJSON(r sim.Report) simDoc {
	d := simDoc{Nodes: r.Nodes, Subnets: r.Subnets, LinkLatencyMs: float64(r.Latency.Microseconds()) / 1000, LinkLoss: r.Loss,
		Scoped: r.Scoped, StartedMs: millis(r.StartedIn), FormedMs: millis(r.FormedIn), RanMs: millis(r.Ran),
		Goroutines: r.Traffic.Goroutines, Kill: detectJSON(r.Kill), MassKill: detectJSON(r.MassKill)}
	d.Formed, d.Unformed = r.Formed, r.Unformed
	t := r.Traffic
	d.Drops.Transport, d.Drops.HandshakesRateLimited, d.Drops.NetworkQueue = t.TransportDrops, t.HandshakesRateLimited, t.NetQueueDrops
	d.Drops.CookieReplies, d.Drops.RespondersEvicted = t.CookieReplies, t.RespondersEvicted
	d.Drops.InboxDrops, d.Drops.SeedInboxDrops = t.InboxDrops, t.SeedInboxDrops
	d.HeartbeatsOut, d.NetDelivered = t.HeartbeatsOutPerNode, t.NetDelivered
	d.PerNode.WindowMs = millis(t.Window)
	d.PerNode.PacketsOut, d.PerNode.PacketsIn = t.PacketsOutPerNode, t.PacketsInPerNode
	d.PerNode.BytesOut, d.PerNode.BytesIn = t.BytesOutPerNode, t.BytesInPerNode
	d.PerNode.MaxPacketsOut, d.PerNode.CPUCores = t.MaxPacketsOut, t.CPUPerNode
	d.PerNode.HeapBytes, d.PerNode.ResidentBytes = t.HeapPerNode, t.ResidentPerNode
	c := r.Convergence
	d.Convergence.Node, d.Convergence.Subnet, d.Convergence.CommittedMs = c.Node, c.Subnet, millis(c.Committed)
	d.Convergence.InSubnet, d.Convergence.OwnSeen = spreadJSON(c.InSubnet), c.OwnSeen
	d.Convergence.ConsoleMs = seenMs(c.ConsoleSeen, c.Console)
	p := r.Partition
	d.Partition.Subnet, d.Partition.Nodes = p.Subnet, p.Nodes
	d.Partition.CutMs, d.Partition.HealedMs = seenMs(p.CutSeen, p.Cut), seenMs(p.HealedSeen, p.Healed)
	return d
}
