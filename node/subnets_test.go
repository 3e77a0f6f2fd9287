package node_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deck-mesh/deck/demo/workloads"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/meshos"

	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/nodetest"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/node/testmesh"
)

// carved is a test mesh split into subnets: per subnet, a gateway first,
// then plain members.
type carved struct {
	*testmesh.Mesh
	subnets []string
	members map[string][]*node.Node
}

// newCarved starts len(subnets)×perSubnet nodes; edit adjusts each node's
// options (nil: none).
func newCarved(t *testing.T, subnets []string, perSubnet int, edit func(*node.Options)) *carved {
	t.Helper()
	return newCarvedWith(t, subnets, perSubnet, 1, edit)
}

// newCarvedWith is newCarved with gateways gateways per subnet.
func newCarvedWith(t *testing.T, subnets []string, perSubnet, gateways int, edit func(*node.Options)) *carved {
	t.Helper()
	c := &carved{Mesh: testmesh.New(t, "carved"), subnets: subnets, members: map[string][]*node.Node{}}
	c.Cluster.Subnets.Visibility = map[string]string{snapshot.ChannelLogs: "local"}
	for _, s := range subnets {
		for i := range perSubnet {
			nd := c.Start(testmesh.Member{Label: fmt.Sprintf("%s-%d", s, i), Subnet: s, Gateway: i < gateways, Edit: edit})
			c.members[s] = append(c.members[s], nd)
		}
	}
	return c
}

// viewState dumps what one node sees, for Eventually's failure message.
func viewState(nd *node.Node) func() string {
	return func() string {
		cs := nd.Cluster()
		var b strings.Builder
		fmt.Fprintf(&b, "%s (%q): ", nd.ID(), nd.Subnet())
		for _, nv := range cs.Nodes {
			fmt.Fprintf(&b, "%s/%q/%s/stale=%v ", nv.ID, nv.Subnet, nv.Health, nv.Stale)
		}
		for _, s := range cs.Subnets {
			fmt.Fprintf(&b, "| %q gen %d nodes %v agg %s", s.Path, s.Generation, s.Nodes, s.Aggregator)
		}
		return b.String()
	}
}

// ownSubnetOnly reports whether nd's view holds exactly the members of its
// subnet, each healthy and fresh.
func (c *carved) ownSubnetOnly(nd *node.Node) bool {
	cs := nd.Cluster()
	want := c.members[nd.Subnet()]
	if len(cs.Nodes) != len(want) {
		return false
	}
	for _, m := range want {
		if !member(cs, m.ID()) {
			return false
		}
	}
	return true
}

// summaryOf is the subnet view of path in nd's cluster view.
func summaryOf(nd *node.Node, path string) (snapshot.SubnetView, bool) {
	for _, v := range nd.Cluster().Subnets {
		if v.Path == path {
			return v, true
		}
	}
	return snapshot.SubnetView{}, false
}

// TestSubnetsScopeViewsAndSpreadSummaries: in a small carved mesh each
// node's view holds its own subnet only, every node holds every subnet's
// summary, and a plain member keeps no session of its own making with
// another subnet.
func TestSubnetsScopeViewsAndSpreadSummaries(t *testing.T) {
	c := newCarved(t, []string{"eu", "us"}, 3, nil)
	for _, s := range c.subnets {
		for _, nd := range c.members[s] {
			nodetest.Eventually(t, nd.ID().String()+" to see its own subnet only", func() bool { return c.ownSubnetOnly(nd) }, viewState(nd))
			for _, other := range c.subnets {
				nodetest.Eventually(t, nd.ID().String()+" to hold "+other+"'s summary", func() bool {
					v, ok := summaryOf(nd, other)
					return ok && v.Generation > 0 && v.Nodes[snapshot.Healthy] == len(c.members[other])
				}, viewState(nd))
			}
		}
	}
	plain := c.members["eu"][2]
	for _, p := range plain.Stats().Peers {
		if p.Session && p.Subnet != "eu" && p.Role == identity.RoleNode {
			t.Errorf("plain member %s holds a session with %s of %q", plain.ID(), p.ID, p.Subnet)
		}
	}
}

// smallSpec keeps a carved mesh's work small: one replica group of two
// with a chain, per subnet (each subnet places the spec on its members).
func smallSpec(o *node.Options) {
	o.Spec = meshos.Spec{Groups: []meshos.GroupSpec{{Name: "inference", Kind: snapshot.GroupReplica,
		DaemonKind: workloads.KindInference, Members: 2, ChainReplicas: 2, Load: 0.1}}}
}

// expectedSummary folds what the members of path say of themselves (their
// own snapshots, read on each member) the way a summary states it.
func (c *carved) expectedSummary(path string) (nodes, daemons [3]int, chainsHeld int) {
	for _, nd := range c.members[path] {
		select {
		case <-nd.Done():
			continue // killed: its peers see it unreachable
		default:
		}
		own := nd.Cluster().Node(nd.ID())
		if own == nil {
			continue
		}
		nodes[snapshot.Healthy]++
		for _, d := range own.Daemons {
			daemons[d.Health]++
		}
		chainsHeld += len(own.Replicas)
	}
	return nodes, daemons, chainsHeld
}

// TestSubnetMesh64: 64 real nodes in 8 subnets (two gateways each) and a
// console. Every node sees its own subnet only and holds every subnet's
// summary, each matching what the subnet's members say of themselves; a
// gateway drops what its rule forbids (logs are local) and counts it; the
// aggregator leader of a subnet killed, a new one continues the summary
// with a higher generation and the group is whole again; the console
// drills into a remote subnet and follows its members live.
func TestSubnetMesh64(t *testing.T) {
	if testing.Short() {
		t.Skip("64 nodes")
	}
	var subnets []string
	for i := range 8 {
		subnets = append(subnets, fmt.Sprintf("s%d", i))
	}
	began := time.Now()
	phase := func(what string) { t.Logf("%6.1fs %s", time.Since(began).Seconds(), what) }
	defer phase("done")
	c := newCarvedWith(t, subnets, 8, 2, smallSpec)
	phase("64 nodes started")
	watcher := c.members["s7"][7]
	for _, s := range subnets {
		for _, nd := range c.members[s] {
			nodetest.Eventually(t, nd.ID().String()+" to see its own subnet only", func() bool { return c.ownSubnetOnly(nd) }, viewState(nd))
		}
	}

	phase("every view scoped to its subnet")
	logFanOut(t, c)
	// Summaries against the members' own snapshots, as seen from another
	// subnet.
	for _, s := range subnets {
		nodetest.Eventually(t, s+"'s summary to match its members' own snapshots", func() bool {
			v, ok := summaryOf(watcher, s)
			nodes, daemons, held := c.expectedSummary(s)
			return ok && !v.Stale && v.Nodes == nodes && v.Daemons == daemons && v.ChainsHeld == held &&
				v.ChainsDesired == 2 && len(v.Gateways) == 2 && v.Saturation >= 0 && v.Capacity > 0
		}, viewState(watcher))
	}
	for _, v := range watcher.Cluster().Subnets {
		t.Logf("summary %q gen %d by %s: nodes %v daemons %v chains %d/%d capacity %.2f saturation %.2f gateways %v",
			v.Path, v.Generation, v.Aggregator, v.Nodes, v.Daemons, v.ChainsHeld, v.ChainsDesired, v.Capacity, v.Saturation, v.Gateways)
	}
	for _, a := range watcher.Cluster().Aggregators {
		if len(a.Members) != node.AggregatorReplicas || a.Desired != node.AggregatorReplicas || !slices.Contains(a.Members, a.Leader) {
			t.Fatalf("aggregator registry entry %+v", a)
		}
	}

	phase("summaries match the members' own snapshots")
	// The console drills into s5 and follows its members.
	console := c.Start(testmesh.Member{Label: "console", Console: true, Subnet: "s0", Edit: smallSpec})
	cl := c.Client(console)
	nodetest.Eventually(t, "the console to hold s5's summary", func() bool { _, ok := summaryOf(console, "s5"); return ok }, viewState(console))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.FocusSubnet(ctx, "s5"); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, "the console to see every s5 member live", func() bool {
		cs := console.Cluster()
		for _, nd := range c.members["s5"] {
			if !member(cs, nd.ID()) {
				return false
			}
		}
		v, ok := summaryOf(console, "s5")
		return ok && v.Detailed && !v.Local
	}, viewState(console))
	followed := c.members["s5"][3].ID()
	first := console.Cluster().Node(followed).ReceivedAt
	nodetest.Eventually(t, "the console to keep receiving s5's snapshots", func() bool {
		nv := console.Cluster().Node(followed)
		return nv != nil && nv.ReceivedAt.After(first) && !nv.Stale
	}, viewState(console))
	qctx, qcancel := context.WithTimeout(context.Background(), time.Minute)
	defer qcancel()
	if sum, err := cl.QuerySubnet(qctx, "s5"); err != nil || sum.Path != "s5" || sum.Generation == 0 {
		t.Fatalf("QuerySubnet = %+v, %v", sum, err)
	}

	phase("console drilled into s5")
	// Logs are local: the console's lease on an s5 member's log never
	// crosses, and the node that refuses it counts it.
	logs, err := cl.SubscribeLogs(qctx, api.LogFilter{Node: c.members["s5"][3].ID()})
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	nodetest.Eventually(t, "a node on the way to count the refused log lease", func() bool {
		dropped, forwarded := gatewayCounts(console.Cluster())
		return dropped[snapshot.ChannelLogs] > 0 && forwarded[snapshot.ChannelSnapshots] > 0 && dropped[snapshot.ChannelLedger] == 0
	}, viewState(console))
	dropped, forwarded := gatewayCounts(console.Cluster())
	t.Logf("gateway counters in the console's view: dropped %v forwarded %v", dropped, forwarded)
	if err := cl.FocusSubnet(qctx, ""); err != nil {
		t.Fatal(err)
	}

	phase("refused log lease counted")
	// Kill s3's aggregator leader.
	var before snapshot.Aggregator
	for _, a := range watcher.Cluster().Aggregators {
		if a.Subnet == "s3" {
			before = a
		}
	}
	var killed *node.Node
	for _, nd := range c.members["s3"] {
		if nd.ID() == before.Leader {
			killed = nd
		}
	}
	if killed == nil {
		t.Fatalf("s3's leader %s is not an s3 member", before.Leader)
	}
	killed.Close()
	nodetest.Eventually(t, "s3's summary to continue under a new leader with a whole group", func() bool {
		for _, a := range watcher.Cluster().Aggregators {
			if a.Subnet == "s3" {
				return a.Leader != killed.ID() && a.Generation > before.Generation && len(a.Members) == node.AggregatorReplicas &&
					!slices.Contains(a.Members, killed.ID())
			}
		}
		return false
	}, viewState(watcher))
	phase("s3's aggregator replaced")
	nodetest.Eventually(t, "s3's summary to count the killed member out", func() bool {
		v, ok := summaryOf(watcher, "s3")
		return ok && v.Nodes[snapshot.Healthy] == 7
	}, viewState(watcher))
}

// gatewayCounts sums every node's gateway counters in a view, by channel.
func gatewayCounts(cs *snapshot.ClusterSnapshot) (dropped, forwarded map[string]uint64) {
	dropped, forwarded = map[string]uint64{}, map[string]uint64{}
	for _, nv := range cs.Nodes {
		for _, g := range nv.Gateway {
			dropped[g.Channel] += g.Dropped
			forwarded[g.Channel] += g.Forwarded
		}
	}
	return dropped, forwarded
}

// TestAttackNodeClaimsSubnetItsCertificateDoesNotCarry: a node whose
// operator certified it into "eu" cannot run as a member of "us" (to
// escape eu's rules or speak for us): Start refuses the pair, and a node
// without a certificate cannot claim a subnet at all (a ledger admission
// makes a member of the root only). The wire side of the same claim is
// gossip's TestAttackSnapshotClaimsSubnetItsCertificateDoesNotCarry.
func TestAttackNodeClaimsSubnetItsCertificateDoesNotCarry(t *testing.T) {
	m := testmesh.New(t, "claims")
	key, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := identity.NewSubnetCertificate(identity.KeySigner{K: m.Operator}, m.Cluster.Name, "eu", key.Public,
		identity.RoleNode, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	opts := node.Options{Cluster: m.Cluster, Key: key, Certificate: cert, Subnet: "us", DataDir: t.TempDir(), Bootstrap: []string{}}
	if nd, err := node.Start(context.Background(), opts); !errors.Is(err, api.ErrInvalid) {
		if nd != nil {
			nd.Close()
		}
		t.Fatalf("Start with an eu certificate in us = %v, want ErrInvalid", err)
	}
	opts.Certificate, opts.Key = nil, nil
	if nd, err := node.Start(context.Background(), opts); !errors.Is(err, api.ErrInvalid) {
		if nd != nil {
			nd.Close()
		}
		t.Fatalf("Start in us without a certificate = %v, want ErrInvalid", err)
	}
	// Control: the certificate's own subnet (named or not) starts.
	opts.Certificate, opts.Key, opts.Subnet = cert, key, ""
	nd, err := node.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer nd.Close()
	if nd.Subnet() != "eu" {
		t.Fatalf("node runs in %q, its certificate says eu", nd.Subnet())
	}
}

// logFanOut logs what scoping leaves each node: sessions and heartbeats
// per second, plain members and gateways apart (a figure for
// BENCHMARKS.md, not an assertion: the machine may be busy).
func logFanOut(t *testing.T, c *carved) {
	type sample struct {
		hb  uint64
		out uint64
	}
	before := map[*node.Node]sample{}
	for _, s := range c.subnets {
		for _, nd := range c.members[s] {
			st := nd.Stats().Transport
			before[nd] = sample{st.HeartbeatsOut, st.PacketsOut}
		}
	}
	start := time.Now()
	time.Sleep(3 * time.Second)
	elapsed := time.Since(start).Seconds()
	var plainHB, gwHB, plainPk, gwPk, plainSess, gwSess float64
	var plain, gw float64
	for _, s := range c.subnets {
		for _, nd := range c.members[s] {
			st := nd.Stats()
			hb := float64(st.Transport.HeartbeatsOut-before[nd].hb) / elapsed
			pk := float64(st.Transport.PacketsOut-before[nd].out) / elapsed
			sessions := 0
			for _, p := range st.Peers {
				if p.Session {
					sessions++
				}
			}
			if nd.IsGateway() {
				gw++
				gwHB, gwPk, gwSess = gwHB+hb, gwPk+pk, gwSess+float64(sessions)
			} else {
				plain++
				plainHB, plainPk, plainSess = plainHB+hb, plainPk+pk, plainSess+float64(sessions)
			}
		}
	}
	t.Logf("fan-out over %.1fs: plain member %.1f sessions, %.1f heartbeats/s, %.0f packets/s; gateway %.1f sessions, %.1f heartbeats/s, %.0f packets/s",
		elapsed, plainSess/plain, plainHB/plain, plainPk/plain, gwSess/gw, gwHB/gw, gwPk/gw)
}
