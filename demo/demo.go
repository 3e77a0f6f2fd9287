// Package demo runs a local multi-node mesh on one machine: N real nodes,
// each with its own UDP socket on 127.0.0.1, its own Badger directory and
// its own keys, running the believable workloads of demo/workloads. It writes
// a cluster file with two demo operators (alice and bob) so a second terminal
// can attach, and it injects real faults (kill, pause, partition, slow,
// crash-loop) through the nodes' transports.
package demo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/deck-mesh/deck/demo/workloads"
	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Limits of the demo's flags.
const (
	MinNodes       = 2
	MaxNodes       = 64
	DefaultNodes   = 9
	ClusterName    = "deck-demo"
	ClusterFile    = "cluster.toml"
	ControlSocket  = "demo.sock"
	startupTimeout = 20 * time.Second
)

// Topologies the demo can lay out.
const (
	TopologyRing   = "ring"
	TopologyMesh   = "mesh"
	TopologyRandom = "random"
)

// Options configure a demo.
type Options struct {
	Nodes        int
	Topology     string
	Seed         int64
	StateDir     string // "": a temporary dir removed on Close
	ICEThreshold int    // 1 or 2 (two demo operators)
	Version      string
	Logf         func(format string, args ...any)
}

// Validate checks the flags and fills defaults; errors wrap api.ErrInvalid.
func (o *Options) Validate() error {
	if o.Nodes == 0 {
		o.Nodes = DefaultNodes
	}
	if o.Nodes < MinNodes || o.Nodes > MaxNodes {
		return fmt.Errorf("%w: --nodes %d: want %d..%d", api.ErrInvalid, o.Nodes, MinNodes, MaxNodes)
	}
	if o.Topology == "" {
		o.Topology = TopologyMesh
	}
	switch o.Topology {
	case TopologyRing, TopologyMesh, TopologyRandom:
	default:
		return fmt.Errorf("%w: --topology %q: want ring, mesh or random", api.ErrInvalid, o.Topology)
	}
	if o.ICEThreshold == 0 {
		o.ICEThreshold = 1
	}
	if o.ICEThreshold < 1 || o.ICEThreshold > 2 {
		return fmt.Errorf("%w: --ice-threshold %d: the demo has two operators, want 1 or 2", api.ErrInvalid, o.ICEThreshold)
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return nil
}

// member is one demo node, alive or killed.
type member struct {
	idx     int
	label   string
	key     *identity.Key
	dataDir string
	addr    string
	caps    []string
	node    *node.Node // nil while killed
}

// Demo is a running local mesh.
type Demo struct {
	opts        Options
	stateDir    string
	tempState   bool
	clusterPath string
	cluster     *config.Cluster
	operators   map[string]*identity.Key

	mu       sync.Mutex
	members  []*member
	links    map[[2]int]bool // topology: direct links allowed (i<j)
	faults   []api.Fault
	blocked  map[[2]int]bool // partitions in force (i<j)
	console  *node.Node
	closed   bool
	ctl      *controlServer
	detector *detector
}

// Start creates the state dir, the operators and the cluster file, and
// starts the nodes. It returns when every node is up (not yet converged).
func Start(ctx context.Context, opts Options) (*Demo, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	d := &Demo{opts: opts, operators: map[string]*identity.Key{}, links: map[[2]int]bool{}, blocked: map[[2]int]bool{}}
	d.detector = newDetector()
	if opts.StateDir == "" {
		dir, err := os.MkdirTemp("", "deck-demo-*")
		if err != nil {
			return nil, fmt.Errorf("demo: state dir: %w", err)
		}
		d.stateDir, d.tempState = dir, true
	} else {
		if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
			return nil, fmt.Errorf("demo: state dir: %w", err)
		}
		d.stateDir = opts.StateDir
	}
	ok := false
	defer func() {
		if !ok {
			d.Close()
		}
	}()
	if err := d.prepare(); err != nil {
		return nil, err
	}
	d.layout()
	for i := range d.members {
		if err := d.startMember(ctx, d.members[i]); err != nil {
			return nil, err
		}
		if i == 0 {
			// Every later node (and every console) joins through the first.
			d.cluster.Bootstrap = []string{d.members[0].addr}
		}
	}
	// Bootstrap through two nodes so a console survives the loss of one.
	if len(d.members) > 1 {
		d.cluster.Bootstrap = []string{d.members[0].addr, d.members[1].addr}
	}
	if err := config.WriteCluster(d.clusterPath, d.cluster, true); err != nil {
		return nil, err
	}
	ctl, err := listenControl(filepath.Join(d.stateDir, ControlSocket), d)
	if err != nil {
		return nil, err
	}
	d.ctl = ctl
	ok = true
	return d, nil
}

// prepare makes the operators, the node keys and the cluster definition.
// State dirs are reused: keys and data found there are kept.
func (d *Demo) prepare() error {
	store := &config.OperatorStore{Dir: filepath.Join(d.stateDir, "operators")}
	var ops []config.Operator
	for _, name := range []string{"alice", "bob"} {
		k, err := store.Load(name)
		if errors.Is(err, api.ErrNotFound) {
			k, err = store.Generate(name)
		}
		if err != nil {
			return fmt.Errorf("demo: operator %s: %w", name, err)
		}
		d.operators[name] = k
		ops = append(ops, config.NewOperator(name, k.Public))
	}
	d.clusterPath = filepath.Join(d.stateDir, ClusterFile)
	if c, _, err := config.LoadCluster(d.clusterPath); err == nil {
		d.cluster = c
	} else {
		c, err := config.NewCluster(ClusterName, nil, ops, 1, d.opts.ICEThreshold)
		if err != nil {
			return err
		}
		c.Workload = config.WorkloadFromSpec(workloads.Spec())
		d.cluster = c
	}
	d.cluster.Bootstrap = nil
	for i := 0; i < d.opts.Nodes; i++ {
		m := &member{idx: i, label: fmt.Sprintf("node-%d", i+1), caps: workloads.NodeCapabilities(i, d.opts.Nodes),
			dataDir: filepath.Join(d.stateDir, "nodes", fmt.Sprintf("node-%d", i+1))}
		keyPath := filepath.Join(m.dataDir, "node.key")
		k, err := identity.LoadKey(keyPath)
		if err != nil {
			if k, err = identity.Generate(); err != nil {
				return err
			}
			if err := identity.SaveKey(keyPath, k); err != nil {
				return err
			}
		}
		m.key = k
		d.members = append(d.members, m)
	}
	return nil
}

// layout decides which pairs of nodes have a direct link.
func (d *Demo) layout() {
	n := len(d.members)
	add := func(i, j int) {
		if i == j {
			return
		}
		if i > j {
			i, j = j, i
		}
		d.links[[2]int{i, j}] = true
	}
	switch d.opts.Topology {
	case TopologyMesh:
		for i := 0; i < n; i++ {
			for j := i + 1; j < n; j++ {
				add(i, j)
			}
		}
	case TopologyRing, TopologyRandom:
		for i := 0; i < n; i++ {
			add(i, (i+1)%n)
		}
		if d.opts.Topology == TopologyRandom {
			r := rand.New(rand.NewPCG(uint64(d.opts.Seed), 0x5eed))
			for c := 0; c < n; c++ {
				add(r.IntN(n), r.IntN(n))
			}
		}
	}
}

func (d *Demo) startMember(ctx context.Context, m *member) error {
	spec, err := d.cluster.Spec()
	if err != nil {
		return err
	}
	listen := m.addr
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	var boot []string
	if m.idx > 0 {
		boot = []string{d.members[0].addr}
		if prev := d.members[m.idx-1]; prev.addr != "" && prev.idx != 0 {
			boot = append(boot, prev.addr)
		}
	} else if len(d.members) > 1 && d.members[1].addr != "" {
		boot = []string{d.members[1].addr} // a restarted first node rejoins through the second
	}
	nd, err := node.Start(ctx, node.Options{
		Cluster: d.cluster, Key: m.key, DataDir: m.dataDir, ListenAddr: listen, Bootstrap: boot,
		Label: m.label, Capabilities: m.caps, Spec: spec, Factories: workloads.Factories(),
		Version: d.opts.Version, Logf: d.opts.Logf,
	})
	if err != nil {
		return fmt.Errorf("demo: start %s: %w", m.label, err)
	}
	d.mu.Lock()
	m.node, m.addr = nd, nd.Addr()
	d.mu.Unlock()
	d.applyLinks()
	return nil
}

// applyLinks makes every running node's transport match the topology and
// the partitions in force: a pair is blocked when the topology has no link
// or a partition cuts it.
func (d *Demo) applyLinks() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, a := range d.members {
		if a.node == nil {
			continue
		}
		for _, b := range d.members {
			if a == b {
				continue
			}
			key := [2]int{min(a.idx, b.idx), max(a.idx, b.idx)}
			a.node.Transport().Block(b.key.ID, !d.links[key] || d.blocked[key])
		}
		if d.console != nil {
			cut := d.blocked[[2]int{a.idx, -1}]
			a.node.Transport().Block(d.console.ID(), cut)
			d.console.Transport().Block(a.key.ID, cut)
		}
	}
}

// StateDir is where the demo keeps its cluster file, keys and data.
func (d *Demo) StateDir() string { return d.stateDir }

// ClusterPath is the demo's cluster file.
func (d *Demo) ClusterPath() string { return d.clusterPath }

// Cluster is the demo's cluster definition.
func (d *Demo) Cluster() *config.Cluster { return d.cluster }

// Operator returns a demo operator's key (alice or bob).
func (d *Demo) Operator(name string) *identity.Key { return d.operators[name] }

// Nodes returns the running nodes (killed ones are skipped).
func (d *Demo) Nodes() []*node.Node {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*node.Node
	for _, m := range d.members {
		if m.node != nil {
			out = append(out, m.node)
		}
	}
	return out
}

// Console starts the operator's embedded node: an observer that joins the
// demo mesh like any console would, through the cluster file.
func (d *Demo) Console(ctx context.Context) (*node.Node, error) {
	spec, err := d.cluster.Spec()
	if err != nil {
		return nil, err
	}
	nd, err := node.Start(ctx, node.Options{
		Cluster: d.cluster, Label: "deck", Observer: true, Spec: spec,
		Version: d.opts.Version, Logf: d.opts.Logf,
	})
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.console = nd
	d.mu.Unlock()
	d.applyLinks()
	d.detector.watch(nd)
	return nd, nil
}

// WaitConverged waits until the console (or, without one, the first node)
// sees every demo node Healthy with a fresh snapshot and every chain at its
// desired holder count.
func (d *Demo) WaitConverged(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if d.Converged() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("demo: not converged: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// Converged reports whether the observer's view is complete and settled.
func (d *Demo) Converged() bool {
	d.mu.Lock()
	obs := d.console
	if obs == nil && len(d.members) > 0 {
		obs = d.members[0].node
	}
	want := 0
	for _, m := range d.members {
		if m.node != nil {
			want++
		}
	}
	d.mu.Unlock()
	if obs == nil {
		return false
	}
	cs := obs.Cluster()
	healthy := 0
	for _, nv := range cs.Nodes {
		if !nv.Observer && nv.Health == snapshot.Healthy && !nv.Stale && !nv.BuiltAt.IsZero() {
			healthy++
		}
	}
	if healthy < want {
		return false
	}
	for _, c := range cs.Chains {
		if c.Desired > 0 && c.Held() < c.Desired {
			return false
		}
	}
	placed := 0
	for _, nv := range cs.Nodes {
		placed += len(nv.Daemons)
	}
	return placed > 0
}

// Close stops every node (and the console, if the demo started it) and
// removes a temporary state dir.
func (d *Demo) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	members := slices.Clone(d.members)
	console := d.console
	d.mu.Unlock()
	if d.ctl != nil {
		d.ctl.Close()
	}
	var wg sync.WaitGroup
	var errs []error
	var emu sync.Mutex
	stop := func(n *node.Node) {
		defer wg.Done()
		if err := n.Close(); err != nil {
			emu.Lock()
			errs = append(errs, err)
			emu.Unlock()
		}
	}
	if console != nil {
		wg.Add(1)
		go stop(console)
	}
	for _, m := range members {
		if m.node != nil {
			wg.Add(1)
			go stop(m.node)
		}
	}
	wg.Wait()
	for _, id := range workloads.CrashLoops() {
		workloads.SetCrashLoop(id, false)
	}
	if d.tempState {
		os.RemoveAll(d.stateDir)
	}
	return errors.Join(errs...)
}

// memberByRef finds a member by label ("node-3"), index ("3") or node id.
func (d *Demo) memberByRef(ref identity.NodeID) (*member, error) {
	for _, m := range d.members {
		if m.key.ID == ref {
			return m, nil
		}
	}
	return nil, fmt.Errorf("%w: no demo node %s", api.ErrNotFound, ref)
}

// ResolveNode turns a label ("node-3"), a 1-based index ("3") or a node id
// into the node's id.
func (d *Demo) ResolveNode(ref string) (identity.NodeID, error) {
	ref = strings.TrimSpace(ref)
	for _, m := range d.members {
		if m.label == ref || fmt.Sprint(m.idx+1) == ref {
			return m.key.ID, nil
		}
	}
	id, err := identity.ParseNodeID(ref)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is not a demo node (node-1..node-%d or an id)", api.ErrNotFound, ref, len(d.members))
	}
	if _, err := d.memberByRef(id); err != nil {
		return 0, err
	}
	return id, nil
}
