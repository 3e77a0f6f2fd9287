package demo

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

// maxLatencySamples bounds the convergence samples the detector keeps.
const maxLatencySamples = 4096

// Detection is how long the console took to notice one injected fault.
type Detection struct {
	Kind       api.FaultKind
	Node       identity.NodeID
	InjectedAt time.Time
	DetectedAt time.Time // zero: not (yet) detected
	SeenAs     string    // the health the console saw
}

// detector measures, from the console's own view, how fast changes
// propagate (a node's new snapshot generation: built there, seen here) and
// how fast injected faults are detected.
type detector struct {
	mu      sync.Mutex
	gens    map[identity.NodeID]uint64
	samples []time.Duration
	pending []*Detection
	done    []Detection
}

func newDetector() *detector { return &detector{gens: map[identity.NodeID]uint64{}} }

func (dt *detector) injected(f api.Fault, id identity.NodeID) {
	dt.mu.Lock()
	defer dt.mu.Unlock()
	dt.pending = append(dt.pending, &Detection{Kind: f.Kind, Node: id, InjectedAt: time.Now()})
}

// watch follows the console's snapshots until it closes.
func (dt *detector) watch(console *node.Node) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer cancel()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-console.Done():
				return
			case <-t.C:
				dt.observe(console.Cluster(), time.Now())
			}
		}
	}()
	_ = ctx
}

func (dt *detector) observe(cs *snapshot.ClusterSnapshot, now time.Time) {
	dt.mu.Lock()
	defer dt.mu.Unlock()
	for _, nv := range cs.Nodes {
		if nv.Observer || nv.BuiltAt.IsZero() {
			continue
		}
		if prev, ok := dt.gens[nv.ID]; ok && nv.Generation > prev && len(dt.samples) < maxLatencySamples {
			// Both ends run in this process, so BuiltAt and now share a clock.
			if lat := nv.ReceivedAt.Sub(nv.BuiltAt); lat >= 0 {
				dt.samples = append(dt.samples, lat)
			}
		}
		dt.gens[nv.ID] = nv.Generation
	}
	keep := dt.pending[:0]
	for _, p := range dt.pending {
		nv := cs.Node(p.Node)
		if nv != nil && nv.Health != snapshot.Healthy {
			p.DetectedAt, p.SeenAs = now, nv.Health.String()
			dt.done = append(dt.done, *p)
			continue
		}
		keep = append(keep, p)
	}
	dt.pending = keep
}

// results returns the latency samples (sorted) and every detection,
// undetected ones last with a zero DetectedAt.
func (dt *detector) results() ([]time.Duration, []Detection) {
	dt.mu.Lock()
	defer dt.mu.Unlock()
	s := slices.Clone(dt.samples)
	slices.Sort(s)
	out := slices.Clone(dt.done)
	for _, p := range dt.pending {
		out = append(out, *p)
	}
	return s, out
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p * float64(len(sorted)-1))
	return sorted[i]
}
