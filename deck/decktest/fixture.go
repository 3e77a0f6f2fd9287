// Package decktest is a TEST FIXTURE: a deterministic, in-memory
// implementation of api.Client over fixed cluster snapshots, used only by the
// deck's tests, golden files and benchmarks. It is not a node and never
// touches the network.
//
// What is data is data: the cluster (Snapshot's nodes, chains, groups), the
// workload Spec its daemons are placed by, logs, failures, and the admin
// ledger's history as real signed events (Ledger). What is logic is the
// node's own: Admin(), ICE() and Preview() are a command.Commands (the
// node's command plane) over a Source that serves the fixture and a
// Committer that folds each committed event into the fixture's AdminState
// with command.Apply; the freeze, lockouts, thresholds, operator registry
// and AUDIT all come from that fold. Keys are ed25519 from fixed seeds, the
// clock is T0 and nonces a fixed sequence, so payloads and goldens are
// stable.
package decktest

import (
	"cmp"
	"crypto/sha256"
	"fmt"
	"slices"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/placement"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/node/trust"
)

// T0 is the fixture's fixed "now".
var T0 = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)

// ClusterName of the fixture cluster.
const ClusterName = "nightcity"

// OperatorKey derives a fixture operator's key from its name.
func OperatorKey(name string) *identity.Key {
	seed := sha256.Sum256([]byte("deck-fixture-operator:" + name))
	k, err := identity.FromSeed(seed[:])
	if err != nil {
		// A zero id from a fixed seed would be a fixture bug found at once.
		panic(fmt.Sprintf("decktest: fixture seed for %s: %v", name, err))
	}
	return k
}

// NodeKey derives the key of a fixture node outside the membership from
// its name: a pending node presents a real key, so the admit-node event
// carries one its id derives from, as the command plane checks.
func NodeKey(name string) *identity.Key {
	seed := sha256.Sum256([]byte("deck-fixture-node:" + name))
	k, err := identity.FromSeed(seed[:])
	if err != nil {
		panic(fmt.Sprintf("decktest: fixture seed for %s: %v", name, err))
	}
	return k
}

// Nodes outside the membership: hosaka holds the cluster PSK and waits for
// admission (no certificate); molly was revoked by carol an hour ago (the
// ledger's revoke-node, see history) and still knocks. Both are pending
// in the view (PendingNodes), neither is a member.
var (
	Hosaka = NodeKey("hosaka").ID
	Molly  = NodeKey("molly").ID
)

// MollyRevokedAgo is how long before T0 carol revoked molly.
const MollyRevokedAgo = time.Hour

// Node ids of the fixture, fixed so goldens are stable.
const (
	Gibson      api.NodeID = 0x1a2b3c4d5e6f7081
	Wintermute  api.NodeID = 0x2b3c4d5e6f708192
	Neuromancer api.NodeID = 0x3c4d5e6f708192a3
	Straylight  api.NodeID = 0x4d5e6f708192a3b4
	Chiba       api.NodeID = 0x5e6f708192a3b4c5
	Freeside    api.NodeID = 0x6f708192a3b4c5d6
	Sprawl      api.NodeID = 0x708192a3b4c5d6e7
	Zion        api.NodeID = 0x8192a3b4c5d6e7f8
	Villa       api.NodeID = 0x92a3b4c5d6e7f809
	// Console is the deck's own embedded node: an observer (Self).
	Console api.NodeID = 0x0dec0dec0dec0dec
)

func ago(d time.Duration) time.Time   { return T0.Add(-d) }
func ahead(d time.Duration) time.Time { return T0.Add(d) }

func trend(base float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		// A deterministic wobble around base.
		v := base + 0.08*float64((i*7)%5-2)/2
		if v < 0 {
			v = 0
		}
		if v > 1 {
			v = 1
		}
		out[i] = v
	}
	return out
}

func daemon(id, kind string, node api.NodeID, lin snapshot.Lineage, lc snapshot.Lifecycle, h snapshot.DaemonHealthState, sat float64, age time.Duration) snapshot.Daemon {
	return snapshot.Daemon{ID: id, Name: id, Kind: kind, Lineage: lin, Node: node, Lifecycle: lc,
		Health: h, Saturation: sat, StartedAt: ago(age)}
}

// Spec is the fixture cluster's workload: every daemon the fixture runs is
// a member of one of these groups, under the id placement.DaemonID gives it,
// and every chain is its group's (placement.ChainName), so the blast radius
// (the node's own projection) places the fixture as MeshOS would.
func Spec() placement.Spec {
	solo := func(name, kind string, chain int, load float64, requires ...string) placement.GroupSpec {
		return placement.GroupSpec{Name: name, Kind: snapshot.GroupSolo, DaemonKind: kind, Members: 1,
			ChainReplicas: chain, Requires: requires, Load: load}
	}
	return placement.Spec{Groups: []placement.GroupSpec{
		{Name: "ingest", Kind: snapshot.GroupReplica, DaemonKind: "ingest", Members: 3, ChainReplicas: 3, Requires: []string{"compute"}, Load: 0.15},
		{Name: "oracle", Kind: snapshot.GroupStandby, DaemonKind: "oracle", Members: 2, ChainReplicas: 2, Load: 0.20},
		solo("tracer", "tracer", 0, 0.30, "gpu"),
		{Name: "tracer-forks", Kind: snapshot.GroupFork, DaemonKind: "tracer", Members: 2, Parent: "tracer", ForkAt: 4821, ChainReplicas: 2, Load: 0.10},
		solo("cache", "cache", 1, 0.10, "compute"),
		solo("ledger", "archive", 3, 0.10),
		solo("sensor-grid", "sensor", 0, 0.05),
		solo("ice-breaker", "probe", 0, 0.05),
		solo("beacon", "beacon", 0, 0.05),
		solo("relay", "relay", 0, 0.05),
	}}
}

// Snapshot is the fixture ClusterSnapshot at T0 with the full admin ledger
// (Ledger) folded in: nine nodes with daemons of every lineage kind, chains
// under/over/ok, migrations in flight, a node entering maintenance with a
// deadline, a DrainFailed node, avoid lists, failures, two nodes pending
// admission (one of them revoked), and from the ledger a freeze, a lockout
// and the revocation.
func Snapshot() *snapshot.ClusterSnapshot { return withLedger(cluster(), Genesis(), Ledger()) }

// Quiet is the fixture with the routine part of the ledger only
// (QuietLedger): no freeze, no lockout, no banner line.
func Quiet() *snapshot.ClusterSnapshot { return withLedger(cluster(), Genesis(), QuietLedger()) }

// cluster is the nodes' side of the fixture view: everything but the fields
// the admin fold owns (freeze, registry, thresholds, lockouts, ledger head).
func cluster() *snapshot.ClusterSnapshot {
	solo := func(group string) snapshot.Lineage { return snapshot.Lineage{Kind: snapshot.GroupSolo, Group: group} }
	rep := func(i int) snapshot.Lineage {
		return snapshot.Lineage{Kind: snapshot.GroupReplica, Group: "ingest", Index: i}
	}
	stby := func(i int, active bool, synced uint64) snapshot.Lineage {
		return snapshot.Lineage{Kind: snapshot.GroupStandby, Group: "oracle", Index: i, Active: active, Synced: synced, Term: 7}
	}
	fork := func(i int, at uint64) snapshot.Lineage {
		return snapshot.Lineage{Kind: snapshot.GroupFork, Group: "tracer-forks", Index: i, ForkAt: at}
	}
	node := func(id api.NodeID, label string, caps []string, res snapshot.Resources, h snapshot.Health, rtt time.Duration) snapshot.NodeView {
		return snapshot.NodeView{
			NodeSnapshot: snapshot.NodeSnapshot{
				ID: id, Label: label, Addr: fmt.Sprintf("10.7.0.%d:7946", uint64(id)>>60),
				Version: "0.4.0", Generation: uint64(id) >> 56, BuiltAt: ago(2 * time.Second),
				StartedAt: ago(3*time.Hour + time.Duration(uint64(id)>>58)*time.Minute), Capabilities: caps, Resources: res,
				Counters: snapshot.Counters{PacketsIn: uint64(id) >> 44, PacketsOut: uint64(id) >> 45, Drops: uint64(id) >> 60,
					ReplaysRejected: 0, AuthFailures: 0},
			},
			Health: h, HealthSince: ago(17 * time.Minute), RTT: rtt, ReceivedAt: ago(time.Second),
		}
	}
	res := func(cpu, mem, disk, sat float64) snapshot.Resources {
		return snapshot.Resources{CPULoad: cpu, MemUsed: mem, DiskUsed: disk, Saturation: sat, Trend: trend(sat, 24)}
	}

	console := node(Console, "deck", nil, res(0.21, 0.30, 0.22, 0), snapshot.Healthy, 0)
	console.Observer = true
	console.Replicas = nil

	gibson := node(Gibson, "gibson", []string{"compute", "datafort", "gateway"}, res(0.31, 0.48, 0.22, 0.36), snapshot.Healthy, 900*time.Microsecond)
	gibson.Daemons = []snapshot.Daemon{
		daemon("ingest-0", "ingest", Gibson, rep(0), snapshot.LifecycleRunning, snapshot.DaemonHealthy, 0.41, 3*time.Hour),
		daemon("cache-0", "cache", Gibson, solo("cache"), snapshot.LifecycleMigrating, snapshot.DaemonHealthy, 0.22, 52*time.Minute),
	}
	gibson.Replicas = []snapshot.Replica{{Chain: "ingest", Role: snapshot.Leader, Seq: 88412}, {Chain: "cache", Role: snapshot.Leader, Seq: 1203}}
	gibson.Avoid = []snapshot.AvoidEntry{{Peer: Chiba, Reason: "crash-loop", Until: ahead(10 * time.Minute)}}
	gibson.Pending = []snapshot.PendingAction{{ID: "pa-11", Kind: "migrate", Target: "cache-0→villa", Since: ago(84 * time.Second)}}
	gibson.Migrations = []snapshot.Migration{{ID: "mig-7", Daemon: "cache-0", Source: Gibson, Target: Villa,
		Phase: snapshot.PhaseTransfer, Progress: 0.46, StartedAt: ago(84 * time.Second)}}

	winter := node(Wintermute, "wintermute", []string{"compute", "datafort"}, res(0.52, 0.61, 0.71, 0.58), snapshot.Healthy, 2100*time.Microsecond)
	winter.Daemons = []snapshot.Daemon{
		daemon("ingest-1", "ingest", Wintermute, rep(1), snapshot.LifecycleRunning, snapshot.DaemonHealthy, 0.44, 3*time.Hour),
		daemon("oracle-0", "oracle", Wintermute, stby(0, true, 40211), snapshot.LifecycleRunning, snapshot.DaemonHealthy, 0.63, 2*time.Hour),
	}
	winter.Replicas = []snapshot.Replica{{Chain: "ingest", Seq: 88410}, {Chain: "ledger", Role: snapshot.Leader, Seq: 5120}, {Chain: "oracle", Role: snapshot.Leader, Seq: 40211}}

	neuro := node(Neuromancer, "neuromancer", []string{"compute", "gpu"}, res(0.67, 0.55, 0.40, 0.66), snapshot.Healthy, 4800*time.Microsecond)
	neuro.Daemons = []snapshot.Daemon{
		daemon("ingest-2", "ingest", Neuromancer, rep(2), snapshot.LifecycleRunning, snapshot.DaemonDegraded, 0.71, 3*time.Hour),
		daemon("tracer-forks-0", "tracer", Neuromancer, fork(0, 4821), snapshot.LifecycleRunning, snapshot.DaemonHealthy, 0.30, 40*time.Minute),
	}
	neuro.Daemons[0].HealthReason = "replay lag 1.2s"
	neuro.Replicas = []snapshot.Replica{{Chain: "ingest", Seq: 88409}, {Chain: "tracer-forks", Seq: 9921}}

	stray := node(Straylight, "straylight", []string{"datafort"}, res(0.44, 0.70, 0.83, 0.62), snapshot.Suspect, 38*time.Millisecond)
	stray.Maintenance = snapshot.Maintenance{State: snapshot.MaintEntering, Since: ago(3 * time.Minute), Deadline: ahead(4*time.Minute + 12*time.Second),
		DaemonsLeft: 2, DaemonsTotal: 5, ReplicasLeft: 1, ReplicasTotal: 3}
	stray.Daemons = []snapshot.Daemon{
		daemon("sensor-grid-0", "sensor", Straylight, solo("sensor-grid"), snapshot.LifecycleStarting, snapshot.DaemonUnhealthy, 0.12, 20*time.Second),
		daemon("tracer-forks-1", "tracer", Straylight, fork(1, 5100), snapshot.LifecycleDraining, snapshot.DaemonHealthy, 0.27, 35*time.Minute),
	}
	stray.Daemons[0].Restart = snapshot.RestartBackingOff
	stray.Daemons[0].RestartUntil = ahead(8 * time.Second)
	stray.Daemons[0].Restarts = 3
	stray.Daemons[0].HealthReason = "probe timeout"
	stray.Replicas = []snapshot.Replica{{Chain: "ledger", Seq: 5118}}
	stray.Pending = []snapshot.PendingAction{{ID: "pa-12", Kind: "migrate", Target: "sensor-grid-0→neuromancer", Since: ago(40 * time.Second)}}
	stray.Migrations = []snapshot.Migration{{ID: "mig-8", Daemon: "sensor-grid-0", Source: Straylight, Target: Neuromancer,
		Phase: snapshot.PhaseSnapshot, Progress: 0.10, Retries: 2, StartedAt: ago(40 * time.Second), Error: "snapshot timeout"}}

	chiba := node(Chiba, "chiba", []string{"compute"}, res(0.12, 0.33, 0.51, 0.18), snapshot.Healthy, 12*time.Millisecond)
	chiba.Cordoned = true
	chiba.Maintenance = snapshot.Maintenance{State: snapshot.MaintDrainFailed, Since: ago(6 * time.Minute),
		Reason: "ledger: no eligible target (quorum 3, 2 candidates)", DaemonsLeft: 1, DaemonsTotal: 2, ReplicasLeft: 0, ReplicasTotal: 0}
	chiba.Daemons = []snapshot.Daemon{
		daemon("ice-breaker-0", "probe", Chiba, solo("ice-breaker"), snapshot.LifecycleCrashed, snapshot.DaemonUnhealthy, 0.0, 9*time.Second),
	}
	chiba.Daemons[0].Restart = snapshot.RestartCrashLooping
	chiba.Daemons[0].Restarts = 14
	chiba.Daemons[0].RestartUntil = ahead(45 * time.Second)
	chiba.Daemons[0].HealthReason = "exit status 2"
	chiba.Pending = []snapshot.PendingAction{{ID: "pa-9", Kind: "evict", Target: "ledger", Since: ago(6 * time.Minute), Blocked: "no eligible target"}}

	free := node(Freeside, "freeside", []string{"compute", "datafort"}, res(0.0, 0.40, 0.35, 0.0), snapshot.Unreachable, 0)
	free.HealthSince = ago(2*time.Minute + 4*time.Second)
	free.Stale = true
	free.ReceivedAt = ago(2*time.Minute + 10*time.Second)
	free.Daemons = []snapshot.Daemon{daemon("beacon-0", "beacon", Freeside, solo("beacon"), snapshot.LifecycleRunning, snapshot.DaemonHealthy, 0.05, 5*time.Hour)}

	sprawl := node(Sprawl, "sprawl", []string{"compute", "gpu"}, res(0.95, 0.88, 0.64, 0.93), snapshot.Healthy, 7500*time.Microsecond)
	sprawl.Daemons = []snapshot.Daemon{
		daemon("oracle-1", "oracle", Sprawl, stby(1, false, 40198), snapshot.LifecycleRunning, snapshot.DaemonHealthy, 0.52, 2*time.Hour),
		daemon("tracer-0", "tracer", Sprawl, solo("tracer"), snapshot.LifecycleRunning, snapshot.DaemonDegraded, 0.91, 90*time.Minute),
	}
	sprawl.Daemons[1].HealthReason = "saturated"
	sprawl.Replicas = []snapshot.Replica{{Chain: "oracle", Seq: 40198}, {Chain: "tracer-forks", Role: snapshot.Leader, Seq: 9930}}
	sprawl.Avoid = []snapshot.AvoidEntry{{Peer: Freeside, Reason: "unreachable", Until: ahead(5 * time.Minute)}}

	zion := node(Zion, "zion", []string{"compute", "datafort"}, res(0.03, 0.12, 0.20, 0.02), snapshot.Healthy, 19*time.Millisecond)
	zion.Maintenance = snapshot.Maintenance{State: snapshot.MaintMaintenance, Since: ago(25 * time.Minute), DaemonsTotal: 3, ReplicasTotal: 2}
	zion.Daemons = []snapshot.Daemon{daemon("relay-0", "relay", Zion, solo("relay"), snapshot.LifecycleStopped, snapshot.DaemonHealthy, 0, 25*time.Minute)}

	villa := node(Villa, "villa", []string{"compute", "datafort"}, res(0.28, 0.37, 0.30, 0.29), snapshot.Healthy, 25*time.Millisecond)
	villa.Maintenance = snapshot.Maintenance{State: snapshot.MaintRecovery, Since: ago(90 * time.Second)}
	villa.Daemons = []snapshot.Daemon{daemon("ledger-0", "archive", Villa, solo("ledger"), snapshot.LifecycleRunning, snapshot.DaemonHealthy, 0.33, 80*time.Second)}
	villa.Replicas = []snapshot.Replica{{Chain: "oracle", Seq: 40150}}

	// Failures and peer views (the node's recent failures ring).
	chiba.Failures = []snapshot.Failure{{Seq: 31, At: ago(9 * time.Second), Node: Chiba, Source: "daemon", Reason: "ice-breaker-0 exited: status 2"}}

	nodes := []snapshot.NodeView{console, gibson, winter, neuro, stray, chiba, free, sprawl, zion, villa}

	// Pending admission, as the members report them (the reasons are the
	// trust package's own).
	pending := []snapshot.PendingNode{
		{PendingPeer: snapshot.PendingPeer{ID: Hosaka, Key: NodeKey("hosaka").Public, Addr: "10.7.0.77:7946",
			Reason: trust.ErrNoCertificate.Error(), FirstSeen: ago(6*time.Minute + 41*time.Second), LastSeen: ago(2 * time.Second)},
			SeenBy: []api.NodeID{Console, Gibson, Wintermute}},
		{PendingPeer: snapshot.PendingPeer{ID: Molly, Key: NodeKey("molly").Public, Addr: "203.0.113.9:41641",
			Reason:    fmt.Errorf("%w (%s)", trust.ErrRevoked, ago(MollyRevokedAgo).Format(time.RFC3339)).Error(),
			FirstSeen: ago(MollyRevokedAgo), LastSeen: ago(9 * time.Second)},
			SeenBy: []api.NodeID{Sprawl}},
	}
	slices.SortFunc(pending, func(a, b snapshot.PendingNode) int { return cmp.Compare(a.ID, b.ID) })
	cs := &snapshot.ClusterSnapshot{
		Cluster: ClusterName, Self: Console, BuiltAt: ago(time.Second), Generation: 4471,
		Nodes: nodes, PendingNodes: pending,
		Chains: []snapshot.Chain{
			{Name: "cache", Group: "cache", Desired: 1, Holders: []api.NodeID{Gibson}, Leader: Gibson, HeadSeq: 1203},
			{Name: "ingest", Group: "ingest", Desired: 3, Holders: []api.NodeID{Gibson, Wintermute, Neuromancer}, Leader: Gibson, HeadSeq: 88412},
			{Name: "ledger", Group: "ledger", Desired: 3, Holders: []api.NodeID{Wintermute, Straylight}, Leader: Wintermute, HeadSeq: 5120},
			{Name: "oracle", Group: "oracle", Desired: 2, Holders: []api.NodeID{Wintermute, Sprawl, Villa}, Leader: Wintermute, HeadSeq: 40211},
			{Name: "tracer-forks", Group: "tracer-forks", Desired: 2, Holders: []api.NodeID{Neuromancer, Sprawl}, Leader: Sprawl, HeadSeq: 9930},
		},
		Groups: []snapshot.Group{
			{Name: "ingest", Kind: snapshot.GroupReplica, Desired: 3, Members: []string{"ingest-0", "ingest-1", "ingest-2"}, Chain: "ingest"},
			{Name: "oracle", Kind: snapshot.GroupStandby, Desired: 2, Term: 7, Members: []string{"oracle-0", "oracle-1"}, Chain: "oracle"},
			{Name: "tracer-forks", Kind: snapshot.GroupFork, Desired: 2, Parent: "tracer", ForkAt: 4821, Members: []string{"tracer-forks-0", "tracer-forks-1"}, Chain: "tracer-forks"},
		},
		Edges: []snapshot.Edge{
			{A: Console, B: Gibson, RTT: 900 * time.Microsecond}, {A: Console, B: Wintermute, RTT: 2100 * time.Microsecond},
			{A: Gibson, B: Wintermute, RTT: 2100 * time.Microsecond}, {A: Gibson, B: Neuromancer, RTT: 4800 * time.Microsecond},
			{A: Gibson, B: Sprawl, RTT: 7500 * time.Microsecond}, {A: Gibson, B: Chiba, RTT: 12 * time.Millisecond},
			{A: Wintermute, B: Straylight, RTT: 35 * time.Millisecond}, {A: Neuromancer, B: Zion, RTT: 15 * time.Millisecond},
			{A: Sprawl, B: Villa, RTT: 18 * time.Millisecond}, {A: Chiba, B: Villa, RTT: 14 * time.Millisecond},
			{A: Wintermute, B: Neuromancer, RTT: 3 * time.Millisecond},
		},
	}
	addDataforts(cs)
	withSubnets(cs)
	return cs
}

// Scaled builds a snapshot of n synthetic nodes (two daemons and one replica
// each) for size-independence benchmarks.
func Scaled(n int) *snapshot.ClusterSnapshot {
	s := Quiet()
	nodes := make([]snapshot.NodeView, n)
	for i := range nodes {
		id := api.NodeID(uint64(i+1)<<40 | 0xabc)
		f := float64(i%100) / 100
		nodes[i] = snapshot.NodeView{
			NodeSnapshot: snapshot.NodeSnapshot{
				ID: id, Label: fmt.Sprintf("node-%05d", i), Version: "0.4.0",
				Resources: snapshot.Resources{CPULoad: f, MemUsed: 1 - f, DiskUsed: f / 2, Saturation: f, Trend: trend(f, 16)},
				Daemons: []snapshot.Daemon{
					daemon(fmt.Sprintf("d-%05d-a", i), "worker", id, snapshot.Lineage{}, snapshot.LifecycleRunning, snapshot.DaemonHealthy, f, time.Hour),
					daemon(fmt.Sprintf("d-%05d-b", i), "worker", id, snapshot.Lineage{}, snapshot.LifecycleRunning, snapshot.DaemonHealthy, f, time.Hour),
				},
				Replicas: []snapshot.Replica{{Chain: "bulk", Seq: uint64(i)}},
			},
			Health: snapshot.Health(i % 3), RTT: time.Duration(i%50+1) * time.Millisecond,
		}
	}
	nodes[0].ID = s.Self
	s.Nodes = nodes
	return s
}
