package demo

import (
	"slices"
	"sync"
	"time"

	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Detector bounds.
const (
	// maxLatencySamples bounds the convergence samples the detector keeps.
	maxLatencySamples = 4096
	// maxDetections bounds the detections kept (the oldest finished ones
	// go first).
	maxDetections = 256
	// detectorPoll is how often the detector reads the console's view.
	detectorPoll = 100 * time.Millisecond
)

// Detection is how long the console took to notice one injected fault.
type Detection struct {
	Kind       api.FaultKind
	Node       identity.NodeID
	InjectedAt time.Time
	// DetectedAt is when the console first saw the node other than
	// Healthy (zero: not, or not yet); SeenAs is the health it saw then.
	DetectedAt time.Time
	SeenAs     string
	// UnreachableAt is when the console first saw it Unreachable (zero:
	// not, or not yet): a kill goes Suspect after a few missed heartbeats,
	// then Unreachable after transport.UnreachableAfter of silence.
	UnreachableAt time.Time
}

// detector measures, from the console's own view, how fast changes
// propagate (a node's new snapshot generation: built there, seen here) and
// how fast injected faults are detected. It polls every detectorPoll, so
// its times are late by up to that much.
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
	if len(dt.pending) >= maxDetections {
		dt.pending = dt.pending[1:]
	}
	dt.pending = append(dt.pending, &Detection{Kind: f.Kind, Node: id, InjectedAt: time.Now()})
}

// watch follows the console's snapshots until it closes.
func (dt *detector) watch(console *node.Node) {
	go func() {
		t := time.NewTicker(detectorPoll)
		defer t.Stop()
		for {
			select {
			case <-console.Done():
				return
			case now := <-t.C:
				dt.observe(console.Cluster(), now)
			}
		}
	}()
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
		h := snapshot.Healthy
		if nv != nil {
			h = nv.Health
		}
		if h != snapshot.Healthy && p.DetectedAt.IsZero() {
			p.DetectedAt, p.SeenAs = now, h.String()
		}
		if h == snapshot.Unreachable && p.UnreachableAt.IsZero() {
			p.UnreachableAt = now
		}
		// Finished once Unreachable, or once Healthy again after being
		// detected (the fault was undone before the node went Unreachable).
		if !p.UnreachableAt.IsZero() || (!p.DetectedAt.IsZero() && h == snapshot.Healthy) {
			if len(dt.done) >= maxDetections {
				dt.done = dt.done[1:]
			}
			dt.done = append(dt.done, *p)
			continue
		}
		keep = append(keep, p)
	}
	clear(dt.pending[len(keep):])
	dt.pending = keep
}

// results returns the latency samples (sorted) and every detection,
// in order of injection.
func (dt *detector) results() ([]time.Duration, []Detection) {
	dt.mu.Lock()
	defer dt.mu.Unlock()
	s := slices.Clone(dt.samples)
	slices.Sort(s)
	out := slices.Clone(dt.done)
	for _, p := range dt.pending {
		out = append(out, *p)
	}
	slices.SortStableFunc(out, func(a, b Detection) int { return a.InjectedAt.Compare(b.InjectedAt) })
	return s, out
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p * float64(len(sorted)-1))
	return sorted[i]
}
