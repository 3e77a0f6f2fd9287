package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/deck-mesh/deck/demo"
)

type summaryDoc struct {
	Cluster          string         `json:"cluster"`
	RanMs            int64          `json:"ran_ms"`
	ConvergedAfterMs int64          `json:"converged_after_ms"`
	Nodes            []summaryNode  `json:"nodes"`
	Daemons          int            `json:"daemons"`
	DaemonsRunning   int            `json:"daemons_running"`
	Chains           []summaryChain `json:"chains"`
	Convergence      struct {
		Samples int     `json:"samples"`
		P50Ms   float64 `json:"p50_ms"`
		P99Ms   float64 `json:"p99_ms"`
	} `json:"convergence_latency"`
	Detections []detectionDoc `json:"fault_detections"`
	Counters   struct {
		PacketsIn       uint64 `json:"packets_in"`
		PacketsOut      uint64 `json:"packets_out"`
		Drops           uint64 `json:"drops"`
		ReplaysRejected uint64 `json:"replays_rejected"`
		AuthFailures    uint64 `json:"auth_failures"`
		Forwarded       uint64 `json:"forwarded"`
		LogsDropped     uint64 `json:"logs_dropped"`
	} `json:"counters"`
	ResidentBytes uint64 `json:"resident_bytes"`
}

type summaryNode struct {
	jsonID
	Label       string `json:"label"`
	Health      string `json:"health"`
	Stale       bool   `json:"stale"`
	Daemons     int    `json:"daemons"`
	Replicas    int    `json:"replicas"`
	Maintenance string `json:"maintenance"`
	Cordoned    bool   `json:"cordoned"`
}

type summaryChain struct {
	Name    string `json:"name"`
	Desired int    `json:"desired"`
	Held    int    `json:"held"`
	Leader  jsonID `json:"leader"`
}

type detectionDoc struct {
	Kind       string `json:"kind"`
	Node       jsonID `json:"node"`
	InjectedAt string `json:"injected_at"`
	DetectedMs *int64 `json:"detected_after_ms"`
	SeenAs     string `json:"seen_as,omitempty"`
}

func summaryJSON(s demo.Summary) summaryDoc {
	d := summaryDoc{Cluster: s.Cluster, RanMs: millis(s.Ran), ConvergedAfterMs: millis(s.ConvergedAfter),
		Nodes: []summaryNode{}, Daemons: s.Daemons, DaemonsRunning: s.DaemonsRunning, Chains: []summaryChain{},
		Detections: []detectionDoc{}, ResidentBytes: s.ResidentBytes}
	for _, n := range s.Nodes {
		d.Nodes = append(d.Nodes, summaryNode{jsonID: idJSON(n.ID), Label: n.Label, Health: n.Health, Stale: n.Stale,
			Daemons: n.Daemons, Replicas: n.Replicas, Maintenance: n.Maint, Cordoned: n.Cordoned})
	}
	for _, c := range s.Chains {
		d.Chains = append(d.Chains, summaryChain{Name: c.Name, Desired: c.Desired, Held: c.Held, Leader: idJSON(c.Leader)})
	}
	d.Convergence.Samples = s.LatencySamples
	d.Convergence.P50Ms = float64(s.LatencyP50.Microseconds()) / 1000
	d.Convergence.P99Ms = float64(s.LatencyP99.Microseconds()) / 1000
	for _, det := range s.Detections {
		dd := detectionDoc{Kind: string(det.Kind), Node: idJSON(det.Node), InjectedAt: isoTime(det.InjectedAt), SeenAs: det.SeenAs}
		if !det.DetectedAt.IsZero() {
			ms := millis(det.DetectedAt.Sub(det.InjectedAt))
			dd.DetectedMs = &ms
		}
		d.Detections = append(d.Detections, dd)
	}
	c := s.Counters
	d.Counters.PacketsIn, d.Counters.PacketsOut, d.Counters.Drops = c.PacketsIn, c.PacketsOut, c.Drops
	d.Counters.ReplaysRejected, d.Counters.AuthFailures, d.Counters.Forwarded, d.Counters.LogsDropped = c.ReplaysRejected, c.AuthFailures, c.Forwarded, c.LogsDropped
	return d
}

func printSummary(stdio IO, s demo.Summary) {
	w := stdio.Out
	conv := "not converged"
	if s.ConvergedAfter > 0 {
		conv = fmt.Sprintf("converged after %v", s.ConvergedAfter.Round(10e6))
	}
	fmt.Fprintf(w, "cluster %s · ran %v · %s · daemons %d (%d running) · RSS %.0f MiB\n", s.Cluster, s.Ran.Round(10e6), conv,
		s.Daemons, s.DaemonsRunning, float64(s.ResidentBytes)/(1<<20))
	fmt.Fprintf(w, "convergence latency p50 %v p99 %v over %d changes\n", s.LatencyP50, s.LatencyP99, s.LatencySamples)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tHEALTH\tDAEMONS\tREPLICAS\tMAINT")
	for _, n := range s.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", n.Label, n.Health, n.Daemons, n.Replicas, n.Maint)
	}
	tw.Flush()
	for _, c := range s.Chains {
		fmt.Fprintf(w, "chain %-14s held %d/%d\n", c.Name, c.Held, c.Desired)
	}
	for _, det := range s.Detections {
		if det.DetectedAt.IsZero() {
			fmt.Fprintf(w, "fault %s %s: not detected\n", det.Kind, det.Node.Short())
		} else {
			fmt.Fprintf(w, "fault %s %s: seen %s after %v\n", det.Kind, det.Node.Short(), det.SeenAs, det.DetectedAt.Sub(det.InjectedAt).Round(1e6))
		}
	}
}
