// Package sim runs a large mesh in one process and measures it: N real
// nodes (transport, Noise sessions, membership, gossip, the admin fold,
// placement, aggregators) on the in-process network (memnet, per-link
// latency and loss) with in-memory Badger, split into K subnets, and one
// console. It reports what each node costs (packets/s, bytes/s, CPU, heap),
// how fast a change spreads (to its subnet, to the console) and how fast a
// kill is detected, and runs the faults of issue 16: kill 5% of nodes,
// partition a subnet, heal.
//
// Nothing here is simulated but the wire: every node is node.Start, every
// packet is encrypted and authenticated. `deck demo --sim N` and the
// package's benchmarks drive it.
package sim

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/deck-mesh/deck/demo/workloads"
	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/transport/memnet"
)

// Defaults and bounds of a simulation.
const (
	DefaultNodes   = 1000
	DefaultSubnets = 32
	// MaxNodes bounds a simulation: memnet's address range holds far more,
	// but the transport's peer table (transport.MaxPeers) does not.
	MaxNodes = 4000
	// DefaultLinkLatency is every link's one-way latency: a LAN.
	DefaultLinkLatency = time.Millisecond
	// startParallel is how many nodes start at once: opening Badger and
	// binding are the slow steps, and a 2-core machine gains nothing past
	// a few.
	startParallel = 4
	// maxBootstrapPeers bounds Options.BootstrapPeers.
	maxBootstrapPeers = 8
	// loopbackAny binds a UDP node to a free loopback port.
	loopbackAny = "127.0.0.1:0"
	// capabilityEdge is what every simulated node offers placement (the
	// demo catalogue's edge daemons fit it).
	capabilityEdge = "edge"
	// capabilityGateway is the gateway capability (node.CapabilityGateway
	// of the subnet work; a plain capability string before it).
	capabilityGateway = "gateway"
	// subnetRoot is the parent of every simulated subnet ("sim/s07").
	subnetRoot = "sim"
)

// Options say what to simulate.
type Options struct {
	Nodes   int // member nodes, not counting the console
	Subnets int // K: nodes go to subnets round robin
	// Latency and Loss are every link's (one way); Loss is a fraction 0..1.
	Latency time.Duration
	Loss    float64
	// BootstrapPeers is how many members of its subnet a member
	// bootstraps from (its seed first, then those started just before
	// it); 0 is 1, the seed alone.
	BootstrapPeers int
	// StartEvery paces start-up: one node every StartEvery (0: as fast as
	// startParallel allows).
	StartEvery time.Duration
	// Workloads places the demo's workload catalogue (demo/workloads) on
	// the nodes; off, placement runs with an empty spec.
	Workloads bool
	// UDP runs every node on its own loopback UDP socket instead of
	// memnet (the side-by-side with memberlist, which has no memnet);
	// Latency, Loss and PartitionSubnet need memnet.
	UDP     bool
	Version string
	Logf    func(format string, args ...any)

	// afterTraffic, when set (the benchmarks' profiles), runs right after
	// the traffic window, with the mesh formed and idle.
	afterTraffic func()
}

// Validate reports a bad option as api.ErrInvalid.
func (o *Options) Validate() error {
	switch {
	case o.Nodes < 2 || o.Nodes > MaxNodes:
		return fmt.Errorf("%w: --sim must be 2..%d nodes, not %d", api.ErrInvalid, MaxNodes, o.Nodes)
	case o.Subnets < 1 || o.Subnets > o.Nodes:
		return fmt.Errorf("%w: --subnets must be 1..%d (the node count), not %d", api.ErrInvalid, o.Nodes, o.Subnets)
	case o.BootstrapPeers < 0 || o.BootstrapPeers > maxBootstrapPeers:
		return fmt.Errorf("%w: bootstrap peers must be 0..%d, not %d", api.ErrInvalid, maxBootstrapPeers, o.BootstrapPeers)
	case o.StartEvery < 0 || o.StartEvery > time.Second:
		return fmt.Errorf("%w: start pacing must be 0..1s, not %s", api.ErrInvalid, o.StartEvery)
	case o.Latency < 0 || o.Latency > time.Second:
		return fmt.Errorf("%w: link latency must be 0..1s, not %s", api.ErrInvalid, o.Latency)
	case o.Loss < 0 || o.Loss >= 1:
		return fmt.Errorf("%w: link loss must be in [0,1), not %g", api.ErrInvalid, o.Loss)
	case o.UDP && (o.Latency != 0 || o.Loss != 0):
		return fmt.Errorf("%w: link latency and loss need the in-process network, not UDP", api.ErrInvalid)
	}
	return nil
}

// Member is one simulated node.
type Member struct {
	Index  int
	Subnet int    // 0..K-1
	Path   string // its subnet path, node.Options.Subnet
	Node   *node.Node
	Addr   netip.AddrPort
	conn   *memnet.Conn // nil on UDP

	mu     sync.Mutex
	killed bool
}

// Killed reports whether the harness killed the member.
func (m *Member) Killed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.killed
}

// kill closes the node: its socket goes away and it stops answering, as a
// SIGKILL looks from the wire.
func (m *Member) kill() {
	m.mu.Lock()
	already := m.killed
	m.killed = true
	m.mu.Unlock()
	if !already {
		m.Node.Close()
	}
}

// Sim is a running simulation.
type Sim struct {
	opts     Options
	Net      *memnet.Network
	Cluster  *config.Cluster
	Operator *identity.Key
	Members  []*Member
	Console  *node.Node
	// Started is when the first node started; Ready when the last did.
	Started, Ready time.Time
}

// SubnetPath names subnet k of K.
func SubnetPath(k int) string { return fmt.Sprintf("%s/s%02d", subnetRoot, k) }

// Start runs opts.Nodes nodes and the console on a fresh network. Node i
// goes to subnet i mod K and bootstraps from its subnet's first node, its
// seed; the seeds are the subnets' gateways and bootstrap from node 0, so
// each subnet forms around one seed as a rack does around its switch. ctx bounds start-up.
func Start(ctx context.Context, opts Options) (*Sim, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	op, err := identity.Generate()
	if err != nil {
		return nil, err
	}
	cl, err := config.NewCluster("sim", nil, []config.Operator{config.NewOperator("alice", op.Public)}, 1, 1)
	if err != nil {
		return nil, err
	}
	s := &Sim{opts: opts, Net: memnet.New(memnet.Link{Latency: opts.Latency, Loss: opts.Loss}), Cluster: cl, Operator: op,
		Started: time.Now()}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	s.Members = make([]*Member, opts.Nodes)
	for i := range s.Members {
		k := i % opts.Subnets
		s.Members[i] = &Member{Index: i, Subnet: k, Path: SubnetPath(k)}
	}
	// The seeds first (one per subnet, node 0 first), then the rest in
	// parallel batches: each needs its seed's address.
	for k := 0; k < opts.Subnets; k++ {
		if err := s.startMember(ctx, s.Members[k]); err != nil {
			return nil, err
		}
	}
	if err := s.startRest(ctx); err != nil {
		return nil, err
	}
	if s.Console, _, err = s.startNode(ctx, "console", "", true, []string{s.Members[0].Node.Addr()}, nil); err != nil {
		return nil, err
	}
	s.Ready = time.Now()
	ok = true
	return s, nil
}

// startRest starts every non-seed member, startParallel at a time, one
// rank after another (rank r is nodes rK..rK+K-1, one per subnet): a node
// bootstraps from nodes of earlier ranks, which are up by then.
func (s *Sim) startRest(ctx context.Context) error {
	var pace <-chan time.Time
	if s.opts.StartEvery > 0 {
		t := time.NewTicker(s.opts.StartEvery)
		defer t.Stop()
		pace = t.C
	}
	k := s.opts.Subnets
	for lo := k; lo < len(s.Members); lo += k {
		if err := s.startRank(ctx, s.Members[lo:min(lo+k, len(s.Members))], pace); err != nil {
			return err
		}
	}
	return nil
}

// startRank starts rank's members, startParallel at a time, each on a
// tick of pace when it is set.
func (s *Sim) startRank(ctx context.Context, rank []*Member, pace <-chan time.Time) error {
	sem := make(chan struct{}, startParallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, m := range rank {
		if pace != nil {
			select {
			case <-pace:
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := s.startMember(ctx, m); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (s *Sim) startMember(ctx context.Context, m *Member) error {
	var boot []string
	if seed := s.Members[m.Subnet]; seed != m {
		boot = append(boot, seed.Node.Addr())
	}
	// Besides its seed, a member knows up to bootstrapPeers-1 members of
	// its subnet started before it (the ranks just before its own), so
	// the seed is not every session's only way in.
	for back := m.Index - s.opts.Subnets; back >= s.opts.Subnets && len(boot) > 0 && len(boot) < s.opts.BootstrapPeers; back -= s.opts.Subnets {
		boot = append(boot, s.Members[back].Node.Addr())
	}
	if m.Index != 0 && m.Index < s.opts.Subnets {
		// A seed knows node 0, so the subnets join up; its members know
		// only their seed (node 0 is not everyone's bootstrap).
		boot = append(boot, s.Members[0].Node.Addr())
	}
	caps := []string{capabilityEdge}
	if m.Index < s.opts.Subnets {
		// A seed gateways its subnet: with subnets scoped, only gateways
		// hold sessions across a subnet's boundary.
		caps = append(caps, capabilityGateway)
	}
	nd, conn, err := s.startNode(ctx, fmt.Sprintf("sim-%04d", m.Index), m.Path, false, boot, caps)
	if err != nil {
		return err
	}
	m.Node, m.conn = nd, conn
	m.Addr = netip.MustParseAddrPort(nd.Addr())
	return nil
}

func (s *Sim) startNode(ctx context.Context, label, subnet string, console bool, boot, caps []string) (*node.Node, *memnet.Conn, error) {
	opts := node.Options{
		Cluster: s.Cluster, InMemory: true, Label: label, Subnet: subnet, Observer: console,
		Capabilities: caps, Version: s.opts.Version, Bootstrap: boot,
		CertifyWith: identity.KeySigner{K: s.Operator}, Logf: s.opts.Logf,
	}
	var conn *memnet.Conn
	if s.opts.UDP {
		opts.ListenAddr = loopbackAny
	} else {
		var err error
		if conn, err = s.Net.Listen(); err != nil {
			return nil, nil, err
		}
		opts.Conn = conn
	}
	if opts.Bootstrap == nil {
		opts.Bootstrap = []string{}
	}
	if s.opts.Workloads {
		opts.Spec, opts.Factories = workloads.Spec(), workloads.Factories()
	}
	nd, err := node.Start(ctx, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("sim: start %s: %w", label, err)
	}
	return nd, conn, nil
}

// Live lists the members the harness has not killed.
func (s *Sim) Live() []*Member {
	out := make([]*Member, 0, len(s.Members))
	for _, m := range s.Members {
		if m != nil && m.Node != nil && !m.Killed() {
			out = append(out, m)
		}
	}
	return out
}

// InSubnet lists subnet k's live members.
func (s *Sim) InSubnet(k int) []*Member {
	var out []*Member
	for _, m := range s.Live() {
		if m.Subnet == k {
			out = append(out, m)
		}
	}
	return out
}

// Close stops every node and the network.
func (s *Sim) Close() {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, m := range s.Members {
		if m == nil || m.Node == nil {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			m.kill()
		}()
	}
	wg.Wait()
	if s.Console != nil {
		s.Console.Close()
	}
	s.Net.Close()
}
