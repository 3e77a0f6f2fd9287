// Package workloads is the catalogue of believable demo daemons that run on
// the nodes of `deck demo`: LLM inference replicas, a trainer with warm
// standbys, a rollout forge forked from the trainer, a sensor array, a drone
// controller and a stage-control desk. Each implements meshos.Daemon with a
// small simulation behind it (counters that advance, loss that falls, a
// battery that drains), logs at every level with varied content, reports a
// saturation that moves smoothly with occasional load bursts and a health
// that degrades under load, crashes now and then, honours every Control
// event, and carries its state across a migration through Snapshot/Restore.
//
// The loops tick every Options.Tick (1.5 s by default) and do microseconds
// of work per tick, so a nine-node demo idles at a negligible CPU cost.
package workloads

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/meshos"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Daemon kinds (meshos.GroupSpec.DaemonKind and the Factories keys).
const (
	KindInference = "inference"
	KindTrainer   = "trainer"
	KindForge     = "forge"
	KindSensor    = "sensor"
	KindDrone     = "drone"
	KindStage     = "stage"
)

// Node capabilities the catalogue requires.
const (
	CapGPU      = "gpu"      // accelerators: inference and training
	CapDatafort = "datafort" // bulk storage: the forge writes rollouts there
	CapEdge     = "edge"     // field I/O: sensor bus and drone radio
)

// ForgeForkAtSeq is the trainer-chain seq the forge forks from. The forge
// members wait ("awaiting fork point") until the trainer chain reaches it,
// then start from the trainer's checkpoint as it stood at that seq. The
// active trainer appends about once a second, so the demo shows the wait
// for a few seconds and then the fork.
const ForgeForkAtSeq = 1

// Defaults for Options.
const (
	DefaultTick           = 1500 * time.Millisecond
	DefaultCrashesPerHour = 0.25
	// MinTick keeps a misconfigured harness from spinning a core.
	MinTick = time.Millisecond
)

// Options tune every daemon a factory builds.
type Options struct {
	// Tick is the simulation and logging period.
	Tick time.Duration
	// CrashesPerHour is the mean rate of spontaneous crashes per daemon
	// (a Poisson process); 0 disables them.
	CrashesPerHour float64
	// Seed makes runs reproducible; 0 draws a random seed per daemon.
	Seed uint64
	// Blobs is the datafort surface the daemons keep their blobs on (the
	// trainer's checkpoints, the forge's rollouts; see blobs.go): the
	// node's, signing as an operator. Nil, or returning nil while the node
	// is not up yet: no blob I/O.
	Blobs func() api.Blobs
}

// DefaultOptions are the options Factories uses.
func DefaultOptions() Options {
	return Options{Tick: DefaultTick, CrashesPerHour: DefaultCrashesPerHour}
}

func (o Options) validate() error {
	if o.Tick < MinTick {
		return fmt.Errorf("workloads: tick %s is below %s", o.Tick, MinTick)
	}
	if o.CrashesPerHour < 0 || math.IsNaN(o.CrashesPerHour) || math.IsInf(o.CrashesPerHour, 0) {
		return fmt.Errorf("workloads: crashes per hour %v must be a finite number ≥ 0", o.CrashesPerHour)
	}
	return nil
}

// Factories returns a factory per daemon kind with DefaultOptions.
func Factories() map[string]meshos.Factory { return buildFactories(DefaultOptions()) }

// FactoriesWith returns a factory per daemon kind built with o.
func FactoriesWith(o Options) (map[string]meshos.Factory, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	return buildFactories(o), nil
}

func buildFactories(o Options) map[string]meshos.Factory {
	out := make(map[string]meshos.Factory, len(kernels))
	for kind := range kernels {
		out[kind] = func(info meshos.DaemonInfo) meshos.Daemon { return newDaemon(kind, info, o) }
	}
	return out
}

// Spec is the demo's workload: every group the demo cluster runs.
func Spec() meshos.Spec {
	return meshos.Spec{Groups: []meshos.GroupSpec{
		{Name: "inference", Kind: snapshot.GroupReplica, DaemonKind: KindInference, Members: 3,
			ChainReplicas: 3, Requires: []string{CapGPU}, Load: 0.30},
		{Name: "trainer", Kind: snapshot.GroupStandby, DaemonKind: KindTrainer, Members: 3,
			ChainReplicas: 2, Requires: []string{CapGPU}, Load: 0.35},
		{Name: "forge", Kind: snapshot.GroupFork, DaemonKind: KindForge, Members: 2,
			Parent: "trainer", ForkAt: ForgeForkAtSeq, Requires: []string{CapDatafort}, Load: 0.25},
		{Name: "sensor-array", Kind: snapshot.GroupSolo, DaemonKind: KindSensor, Members: 1,
			Requires: []string{CapEdge}, Load: 0.15},
		{Name: "drone-ctl", Kind: snapshot.GroupSolo, DaemonKind: KindDrone, Members: 1,
			Requires: []string{CapEdge}, Load: 0.10},
		{Name: "stage-ctl", Kind: snapshot.GroupSolo, DaemonKind: KindStage, Members: 1, Load: 0.10},
	}}
}

// Capability provisioning for NodeCapabilities.
const (
	// capacityTargetLoad is the share of a node's capacity the demo plans to
	// use for one capability's groups, leaving headroom for bursts.
	capacityTargetLoad = 0.6
	// spareNodes per capability: one node may be drained or dead and every
	// member must still find a distinct host.
	spareNodes = 1
	// minCapShareDenom puts every capability on at least 1/4 of the nodes,
	// so the map shows more than the bare minimum of each kind.
	minCapShareDenom = 4
)

// NodeCapabilities says which capabilities the i-th of n demo nodes gets.
// For each capability the count is derived from Spec: enough nodes that
// every group needing it can put each member on a distinct node with one
// node drained, at no more than capacityTargetLoad per node. Capabilities
// are handed out heaviest first, each to the nodes with the least load
// planned so far (ties broken towards an even spread over the indices), so
// heavy capabilities do not pile onto the same nodes. Out-of-range i yields
// nil.
func NodeCapabilities(i, n int) []string {
	if n <= 0 || i < 0 || i >= n {
		return nil
	}
	return capabilityPlan(n)[i]
}

// capabilityPlan assigns capabilities to all n nodes.
func capabilityPlan(n int) [][]string {
	type capNeed struct {
		name  string
		nodes int
		load  float64
	}
	var needs []capNeed
	for _, c := range []string{CapGPU, CapDatafort, CapEdge} {
		members, load := 0, 0.0
		for _, g := range Spec().Groups {
			if slices.Contains(g.Requires, c) {
				members = max(members, g.Members)
				load += float64(g.Members) * g.Load
			}
		}
		if members == 0 {
			continue
		}
		k := max(members+spareNodes, int(math.Ceil(load/capacityTargetLoad))+spareNodes, (n+minCapShareDenom-1)/minCapShareDenom)
		needs = append(needs, capNeed{c, min(k, n), load})
	}
	sort.SliceStable(needs, func(a, b int) bool { return needs[a].load > needs[b].load })
	planned := make([]float64, n)
	out := make([][]string, n)
	for off, c := range needs {
		// spread(i) holds for exactly c.nodes evenly spaced indices.
		spread := func(i int) bool { return ((i+off)%n*c.nodes)%n < c.nodes }
		order := make([]int, n)
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(a, b int) bool {
			x, y := order[a], order[b]
			if planned[x] != planned[y] {
				return planned[x] < planned[y]
			}
			return spread(x) && !spread(y)
		})
		for _, i := range order[:c.nodes] {
			out[i] = append(out[i], c.name)
			planned[i] += c.load / float64(c.nodes)
		}
	}
	for i := range out {
		sort.Strings(out[i])
	}
	return out
}
