package demo

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Summary is what `deck demo --headless` reports: the cluster as the
// console's node sees it, plus the demo's own measurements.
type Summary struct {
	Cluster        string
	Nodes          []NodeSummary
	Daemons        int
	DaemonsRunning int
	Chains         []ChainSummary
	ConvergedAfter time.Duration // from start until Converged (0: never)
	// Unsettled is what keeps the demo from being converged at the time of
	// the summary (Demo.Unsettled), nil when it is.
	Unsettled      []string
	LatencySamples int
	LatencyP50     time.Duration
	LatencyP99     time.Duration
	Detections     []Detection
	Counters       snapshot.Counters // summed over every node
	ResidentBytes  uint64
	Ran            time.Duration
}

// NodeSummary is one node's line.
type NodeSummary struct {
	ID       identity.NodeID
	Label    string
	Health   string
	Stale    bool
	Daemons  int
	Replicas int
	Maint    string
	Cordoned bool
}

// ChainSummary is one chain's desired vs held.
type ChainSummary struct {
	Name    string
	Desired int
	Held    int
	Leader  identity.NodeID
}

// Summarize builds the summary from the observer's current view.
func (d *Demo) Summarize(ran, convergedAfter time.Duration) Summary {
	d.mu.Lock()
	obs := d.console
	if obs == nil && len(d.members) > 0 {
		obs = d.members[0].node
	}
	d.mu.Unlock()
	s := Summary{Cluster: d.cluster.Name, ConvergedAfter: convergedAfter, Ran: ran, Unsettled: d.Unsettled()}
	if obs != nil {
		cs := obs.Cluster()
		for _, nv := range cs.Nodes {
			if nv.Observer {
				continue
			}
			s.Nodes = append(s.Nodes, NodeSummary{ID: nv.ID, Label: nv.Label, Health: nv.Health.String(), Stale: nv.Stale,
				Daemons: len(nv.Daemons), Replicas: len(nv.Replicas), Maint: nv.Maintenance.State.String(), Cordoned: nv.Cordoned})
			// Each node's own counters as its last snapshot carried them:
			// the same for in-process nodes and node processes.
			c := nv.Counters
			s.Counters.PacketsIn += c.PacketsIn
			s.Counters.PacketsOut += c.PacketsOut
			s.Counters.Drops += c.Drops
			s.Counters.ReplaysRejected += c.ReplaysRejected
			s.Counters.AuthFailures += c.AuthFailures
			s.Counters.Forwarded += c.Forwarded
			s.Counters.LogsDropped += c.LogsDropped
			if nv.Stale || nv.Health != snapshot.Healthy {
				continue
			}
			for _, dm := range nv.Daemons {
				s.Daemons++
				if dm.Lifecycle == snapshot.LifecycleRunning {
					s.DaemonsRunning++
				}
			}
		}
		for _, c := range cs.Chains {
			s.Chains = append(s.Chains, ChainSummary{Name: c.Name, Desired: c.Desired, Held: c.Held(), Leader: c.Leader})
		}
	}
	samples, det := d.detector.results()
	s.LatencySamples = len(samples)
	s.LatencyP50 = percentile(samples, 0.50)
	s.LatencyP99 = percentile(samples, 0.99)
	s.Detections = det
	s.ResidentBytes = ResidentBytes()
	d.mu.Lock()
	for _, m := range d.members {
		if m.proc != nil {
			s.ResidentBytes += residentOf(fmt.Sprintf("/proc/%d/status", m.proc.pid()))
		}
	}
	d.mu.Unlock()
	return s
}

// ResidentBytes reads this process's resident set size (Linux), 0 elsewhere.
func ResidentBytes() uint64 { return residentOf("/proc/self/status") }

// residentOf reads VmRSS from a /proc status file, 0 when unreadable.
func residentOf(statusPath string) uint64 {
	b, err := os.ReadFile(statusPath)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseUint(f[0], 10, 64)
				if err == nil {
					return kb << 10
				}
			}
		}
	}
	return 0
}
