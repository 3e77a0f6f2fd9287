package decktest

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/gossip"
	"github.com/deck-mesh/deck/node/snapshot"
)

// The fixture's subnets (issue 16). The console and the nine nodes are the
// console's own subnet, LocalSubnet, held in full detail. Around it the
// mesh has five more subnets the console knows only by their aggregators'
// summaries (remoteSubnets); FocusSubnet drills into one, putting its
// members into Snapshot().Nodes until the focus moves. Every summary is
// folded from its members (summarize), so a focused subnet's rows always
// add up to the summary the SUBNETS tab showed before the drill.

// LocalSubnet is the fixture console's own subnet.
const LocalSubnet = "eu/ams"

// SummaryGeneration is the generation every fixture summary starts from
// (a subnet's is this plus its member count, so they differ).
const SummaryGeneration = 4000

// remoteSubnet is one subnet beyond the console's: its members' health,
// their mean saturation, how old its newest summary is, and its aggregator
// group's held and desired size.
type remoteSubnet struct {
	path     string
	prefix   string // member labels: prefix-01, prefix-02, …
	health   []snapshot.Health
	sat      float64
	builtAgo time.Duration
	stale    bool
	aggHeld  int
	aggWant  int
	chains   [2]int // held, desired replicas
}

const (
	hH = snapshot.Healthy
	hS = snapshot.Suspect
	hU = snapshot.Unreachable
)

var remoteSubnets = []remoteSubnet{
	{path: "ap/tyo", prefix: "tyo", health: []snapshot.Health{hH, hH, hH, hS, hS}, sat: 0.81, builtAgo: 2 * time.Second,
		aggHeld: 3, aggWant: 3, chains: [2]int{4, 6}},
	{path: "eu", prefix: "hub", health: []snapshot.Health{hH, hH, hH}, sat: 0.22, builtAgo: time.Second,
		aggHeld: 3, aggWant: 3, chains: [2]int{3, 3}},
	{path: "eu/fra", prefix: "fra", health: []snapshot.Health{hH, hH, hH, hH, hH, hS, hU}, sat: 0.47, builtAgo: 3 * time.Second,
		aggHeld: 3, aggWant: 3, chains: [2]int{6, 6}},
	{path: "us/sfo", prefix: "sfo", health: []snapshot.Health{hH, hH, hH, hH, hH, hH, hH, hH, hH, hH, hH, hU}, sat: 0.38,
		builtAgo: 2 * time.Second, aggHeld: 3, aggWant: 3, chains: [2]int{9, 9}},
	// The edge's aggregator group lost a member and its summary is old:
	// the view marks it stale.
	{path: "us/sfo/edge", prefix: "edge", health: []snapshot.Health{hH, hH, hH, hH}, sat: 0.12, builtAgo: 3*time.Minute + 10*time.Second,
		stale: true, aggHeld: 1, aggWant: 2, chains: [2]int{1, 2}},
}

// SubnetMemberID is the id of the i-th member (from 0) of the fixture
// subnet at path: fixed, so goldens are stable.
func SubnetMemberID(path string, i int) api.NodeID {
	h := sha256.Sum256([]byte(fmt.Sprintf("deck-fixture-subnet:%s:%d", path, i)))
	return api.NodeID(binary.BigEndian.Uint64(h[:8]))
}

// remoteMembers builds the members of r as their own snapshots would show
// them: one worker daemon each, the first member its subnet's gateway.
func remoteMembers(r remoteSubnet) []snapshot.NodeView {
	out := make([]snapshot.NodeView, len(r.health))
	for i, h := range r.health {
		id := SubnetMemberID(r.path, i)
		f := r.sat + 0.06*float64(i%5-2)
		f = min(max(f, 0), 1)
		dh := snapshot.DaemonHealthy
		if h == snapshot.Suspect {
			dh = snapshot.DaemonDegraded
		}
		n := snapshot.NodeView{
			NodeSnapshot: snapshot.NodeSnapshot{
				ID: id, Label: fmt.Sprintf("%s-%02d", r.prefix, i+1), Subnet: r.path, Version: "0.4.0",
				Addr: fmt.Sprintf("10.%d.0.%d:7946", 20+len(r.path), i+10), BuiltAt: ago(2 * time.Second),
				StartedAt: ago(5*time.Hour + time.Duration(i)*time.Minute), Capabilities: []string{"compute"},
				Resources: snapshot.Resources{CPULoad: f, MemUsed: min(f+0.1, 1), DiskUsed: f / 2, Saturation: f, Trend: trend(f, 24)},
				Daemons: []snapshot.Daemon{daemon(fmt.Sprintf("%s-%02d-w", r.prefix, i+1), "worker", id,
					snapshot.Lineage{Kind: snapshot.GroupSolo, Group: r.prefix + "-workers"}, snapshot.LifecycleRunning, dh, f, 4*time.Hour)},
			},
			Health: h, HealthSince: ago(11 * time.Minute), RTT: time.Duration(30+4*i) * time.Millisecond, ReceivedAt: ago(time.Second),
		}
		if h == snapshot.Unreachable {
			n.Stale = true
			n.RTT = 0
		}
		if i == 0 {
			n.Capabilities = append(n.Capabilities, "gateway")
			n.Gateway = gatewayRules(r.path, subnetPaths(), uint64(len(r.path))*911, uint64(i))
		}
		out[i] = n
	}
	return out
}

// subnetPaths is every fixture subnet's path, sorted.
func subnetPaths() []string {
	out := []string{LocalSubnet}
	for _, r := range remoteSubnets {
		out = append(out, r.path)
	}
	sort.Strings(out)
	return out
}

// gatewayRules are a gateway's rules in the fixture: logs and blobs stay
// local, failures, snapshots and chains may reach the parent (when paths,
// the mesh's subnets, has it), the ledger and queries go everywhere;
// counters scaled by base, drops by drop.
func gatewayRules(subnet string, paths []string, base, drop uint64) []snapshot.GatewayChannel {
	parent := snapshot.Parent(subnet)
	var up []string
	if parent != "" && slices.Contains(paths, parent) {
		up = []string{parent}
	}
	var all []string
	for _, p := range paths {
		if p != subnet && len(all) < gossip.MaxGatewayReachPerChannel {
			// A snapshot carries at most that many reach entries.
			all = append(all, p)
		}
	}
	vis := map[string]snapshot.Visibility{
		snapshot.ChannelLogs: snapshot.VisLocal, snapshot.ChannelFailures: snapshot.VisParent,
		snapshot.ChannelSnapshots: snapshot.VisParent, snapshot.ChannelLedger: snapshot.VisGlobal,
		snapshot.ChannelChains: snapshot.VisParent, snapshot.ChannelBlobs: snapshot.VisLocal,
		snapshot.ChannelQueries: snapshot.VisGlobal,
	}
	out := make([]snapshot.GatewayChannel, 0, len(snapshot.GatewayChannels))
	for i, ch := range snapshot.GatewayChannels {
		g := snapshot.GatewayChannel{Channel: ch, Visibility: vis[ch]}
		switch g.Visibility {
		case snapshot.VisParent:
			g.Reach = up
		case snapshot.VisGlobal:
			g.Reach = all
		}
		if len(g.Reach) > 0 {
			g.Forwarded = base * uint64(7+i*i)
		}
		// What a rule refuses: the local channels' attempts to leave, and
		// a trickle on the others.
		if g.Visibility == snapshot.VisLocal {
			g.Dropped = drop*97 + uint64(i)*13
		} else if i%3 == 1 {
			g.Dropped = drop * uint64(i)
		}
		out = append(out, g)
	}
	return out
}

// summarize folds a subnet's members into its summary as its aggregator
// does: health and daemon-health counts, free capacity, mean saturation,
// gateways; observers (consoles) host nothing and are not counted.
func summarize(path string, members []snapshot.NodeView, builtAt time.Time, chains [2]int) snapshot.SubnetSummary {
	sum := snapshot.SubnetSummary{Path: path, BuiltAt: builtAt, ChainsHeld: chains[0], ChainsDesired: chains[1]}
	hosting := 0
	for i := range members {
		n := &members[i]
		if n.Observer {
			continue
		}
		hosting++
		sum.Nodes[n.Health%3]++
		for _, d := range n.Daemons {
			sum.Daemons[d.Health%3]++
		}
		if n.Health != snapshot.Unreachable {
			sum.Capacity += 1 - n.Resources.Saturation
		}
		sum.Saturation += n.Resources.Saturation
		if len(n.Gateway) > 0 {
			sum.Gateways = append(sum.Gateways, n.ID)
		}
		if sum.Aggregator == 0 && n.Health == snapshot.Healthy {
			sum.Aggregator = n.ID
		}
	}
	if hosting > 0 {
		sum.Saturation /= float64(hosting)
	}
	sum.Generation = SummaryGeneration + uint64(hosting)
	slices.Sort(sum.Gateways)
	for _, p := range subnetPaths() {
		if p != path && snapshot.Parent(p) == path {
			sum.Children = append(sum.Children, p)
		}
	}
	return sum
}

// aggregatorOf is the registry entry of a subnet's aggregator group: the
// first held healthy members, the summary's builder leading.
func aggregatorOf(sum snapshot.SubnetSummary, members []snapshot.NodeView, held, want int) snapshot.Aggregator {
	a := snapshot.Aggregator{Subnet: sum.Path, Desired: want, Leader: sum.Aggregator, Generation: sum.Generation, UpdatedAt: sum.BuiltAt}
	for i := range members {
		if n := &members[i]; !n.Observer && n.Health == snapshot.Healthy && len(a.Members) < held {
			a.Members = append(a.Members, n.ID)
		}
	}
	slices.Sort(a.Members)
	return a
}

// withSubnets puts the fixture cluster's nodes in LocalSubnet (gibson and
// wintermute its gateways) and adds every subnet's summary and aggregator;
// the remote subnets' members are remoteByPath's.
func withSubnets(cs *snapshot.ClusterSnapshot) {
	cs.LocalSubnet = LocalSubnet
	for i := range cs.Nodes {
		n := &cs.Nodes[i]
		n.Subnet = LocalSubnet
		switch n.ID {
		case Gibson:
			n.Gateway = gatewayRules(LocalSubnet, subnetPaths(), 1301, 4)
		case Wintermute:
			n.Gateway = gatewayRules(LocalSubnet, subnetPaths(), 577, 9)
		}
	}
	local := summarize(LocalSubnet, cs.Nodes, ago(time.Second), [2]int{11, 11})
	views := []snapshot.SubnetView{{SubnetSummary: local, Local: true, Detailed: true}}
	aggs := []snapshot.Aggregator{aggregatorOf(local, cs.Nodes, 3, 3)}
	for _, r := range remoteSubnets {
		members := remoteMembers(r)
		sum := summarize(r.path, members, ago(r.builtAgo), r.chains)
		views = append(views, snapshot.SubnetView{SubnetSummary: sum, Stale: r.stale})
		aggs = append(aggs, aggregatorOf(sum, members, r.aggHeld, r.aggWant))
	}
	sort.Slice(views, func(i, j int) bool { return views[i].Path < views[j].Path })
	sort.Slice(aggs, func(i, j int) bool { return aggs[i].Subnet < aggs[j].Subnet })
	cs.Subnets, cs.Aggregators = views, aggs
}

// remoteByPath is every remote subnet's members, by path: what
// FocusSubnet adds to the view.
func remoteByPath() map[string][]snapshot.NodeView {
	out := make(map[string][]snapshot.NodeView, len(remoteSubnets))
	for _, r := range remoteSubnets {
		out[r.path] = remoteMembers(r)
	}
	return out
}

// FocusSubnet drills into the subnet at path, as the node's cluster view
// does: its members join Snapshot().Nodes and its SubnetView turns
// Detailed, until the focus moves; "" (or the local subnet) clears the
// focus. An unknown path is api.ErrNotFound. Watchers see the new view.
func (c *Client) FocusSubnet(ctx context.Context, path string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	if path != "" && (c.nodes == nil || !hasSubnet(c.nodes, path)) {
		c.mu.Unlock()
		return fmt.Errorf("subnet %q: %w", path, api.ErrNotFound)
	}
	if c.nodes != nil && path == c.nodes.LocalSubnet {
		path = ""
	}
	c.focus = path
	c.focusCalls = append(c.focusCalls, path)
	snap := c.publishLocked()
	c.mu.Unlock()
	c.notify(snap)
	return nil
}

// QuerySubnet answers with the newest summary of the subnet at path that
// the view holds (the aggregator's signed summary on a node).
func (c *Client) QuerySubnet(ctx context.Context, path string) (snapshot.SubnetSummary, error) {
	if err := ctx.Err(); err != nil {
		return snapshot.SubnetSummary{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snap != nil {
		for _, v := range c.snap.Subnets {
			if v.Path == path {
				return v.SubnetSummary, nil
			}
		}
	}
	return snapshot.SubnetSummary{}, fmt.Errorf("subnet %q: %w", path, api.ErrNotFound)
}

// Focus is the subnet the fixture's view is drilled into ("" none).
func (c *Client) Focus() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.focus
}

// FocusCalls lists every FocusSubnet path accepted, in order ("" for a
// clear), so a test sees what the deck asked for.
func (c *Client) FocusCalls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.focusCalls...)
}

func hasSubnet(s *snapshot.ClusterSnapshot, path string) bool {
	for _, v := range s.Subnets {
		if v.Path == path {
			return true
		}
	}
	return false
}

// applyFocus adds the focused subnet's members to cs (sorted by id) and
// marks its view Detailed; cs's slices are copied before they change.
func (c *Client) applyFocus(cs *snapshot.ClusterSnapshot) {
	if c.focus == "" {
		return
	}
	members := c.remote[c.focus]
	nodes := make([]snapshot.NodeView, 0, len(cs.Nodes)+len(members))
	nodes = append(append(nodes, cs.Nodes...), members...)
	slices.SortFunc(nodes, func(a, b snapshot.NodeView) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	cs.Nodes = nodes
	cs.Subnets = slices.Clone(cs.Subnets)
	for i := range cs.Subnets {
		if cs.Subnets[i].Path == c.focus {
			cs.Subnets[i].Detailed = true
		}
	}
}

// LargeSubnets is how many subnets Large spreads its nodes over.
const LargeSubnets = 32

// Large builds a view of n synthetic nodes (Scaled's) spread round robin
// over LargeSubnets subnets ("r0/s00" … "r3/s07": four regions of eight
// sites), each subnet's first member a gateway, with every subnet's
// summary and aggregator. It is the upper bound the frame benchmarks
// measure: every subnet Detailed, so Nodes holds all n members (a
// console's view holds only its own and a focused subnet's).
func Large(n int) *snapshot.ClusterSnapshot {
	s := Scaled(n)
	paths := make([]string, LargeSubnets)
	for i := range paths {
		paths[i] = fmt.Sprintf("r%d/s%02d", i/8, i%8)
	}
	members := make([][]snapshot.NodeView, LargeSubnets)
	for i := range s.Nodes {
		nd := &s.Nodes[i]
		k := i % LargeSubnets
		nd.Subnet = paths[k]
		if i < LargeSubnets {
			nd.Gateway = gatewayRules(paths[k], paths, uint64(i+1)*101, uint64(i%4))
		}
		members[k] = append(members[k], *nd)
	}
	s.LocalSubnet = paths[0]
	s.Subnets, s.Aggregators = nil, nil
	for k, p := range paths {
		sum := summarize(p, members[k], ago(time.Second), [2]int{len(members[k]), len(members[k])})
		sum.Children = nil // Large's subnets stand apart: no tree
		s.Subnets = append(s.Subnets, snapshot.SubnetView{SubnetSummary: sum, Local: k == 0, Detailed: true})
		s.Aggregators = append(s.Aggregators, aggregatorOf(sum, members[k], 3, 3))
	}
	return s
}
