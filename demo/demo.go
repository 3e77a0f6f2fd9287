// Package demo runs a local multi-node mesh on one machine: N real nodes,
// each with its own UDP socket on 127.0.0.1, its own Badger directory and
// its own keys, running the believable workloads of demo/workloads. It writes
// a cluster file with two demo operators (alice and bob) so a second terminal
// can attach, and it injects real faults (kill, pause, partition, slow,
// crash-loop) through the nodes' sockets (package demo/faultconn).
package demo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/deck-mesh/deck/demo/faultconn"
	"github.com/deck-mesh/deck/demo/workloads"
	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/meshos"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Limits of the demo's flags.
const (
	MinNodes      = 2
	MaxNodes      = 64
	DefaultNodes  = 9
	ClusterName   = "deck-demo"
	ClusterFile   = "cluster.toml"
	ControlSocket = "demo.sock"
	// maxBootstrapPeers is how many running nodes a (re)started node is
	// given to join through.
	maxBootstrapPeers = 3
	// consoleIdx stands for the console in the blocked map's pairs.
	consoleIdx = -1
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
	// Procs runs every node in a child process (this binary re-executed;
	// it must call RunMemberIfChild first thing) instead of in-process.
	Procs bool
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
	cert    *identity.Certificate // issued by alice in prepare
	dataDir string
	addr    string
	caps    []string
	node    *node.Node      // in-process; nil while killed or with Procs
	faults  *faultconn.Conn // node's socket, with the faults in force
	proc    *child          // with Procs; nil while killed
	// blobs is the in-process node's datafort surface its daemons keep
	// their blobs through (nil inside while it is down).
	blobs memberBlobs
}

func (m *member) alive() bool { return m.node != nil || m.proc != nil }

// block and impair set m's side of the link to peer; pause stops or
// resumes m's socket. In a child they travel down its command pipe.
func (m *member) block(peer identity.NodeID, on bool) {
	switch {
	case m.node != nil:
		m.faults.Block(peer, on)
	case m.proc != nil:
		m.proc.setBlocked(peer, on)
	}
}

func (m *member) impair(peer identity.NodeID, imp impairment) {
	switch {
	case m.node != nil:
		m.faults.Impair(peer, imp.delay, imp.loss)
	case m.proc != nil:
		m.proc.setImpaired(peer, imp)
	}
}

func (m *member) pause(on bool) {
	switch {
	case m.node != nil:
		m.faults.Pause(on)
	case m.proc != nil:
		m.proc.send(memberCommand{Op: "pause", On: on})
	}
}

// Demo is a running local mesh.
type Demo struct {
	opts        Options
	stateDir    string
	tempState   bool
	clusterPath string
	cluster     *config.Cluster
	operators   map[string]*identity.Key

	mu            sync.Mutex
	members       []*member
	links         map[[2]int]bool // topology: direct links allowed (i<j)
	faults        []api.Fault
	blocked       map[[2]int]bool // partitions in force (i<j; [i, consoleIdx] cuts the console)
	impaired      map[[2]int]impairment
	console       *node.Node
	consoleFaults *faultconn.Conn
	closed        bool
	ctl           *controlServer
	detector      *detector
}

// Start creates the state dir, the operators and the cluster file, and
// starts the nodes. It returns when every node is up (not yet converged).
func Start(ctx context.Context, opts Options) (*Demo, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	d := &Demo{opts: opts, operators: map[string]*identity.Key{}, links: map[[2]int]bool{}, blocked: map[[2]int]bool{},
		impaired: map[[2]int]impairment{}}
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
	if opts.Procs {
		// Children read the cluster from the state dir.
		if err := config.WriteCluster(d.clusterPath, d.cluster, true); err != nil {
			return nil, err
		}
	}
	// One at a time: each node joins through the ones already running.
	for _, m := range d.members {
		if err := d.startMember(ctx, m); err != nil {
			return nil, err
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
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			// A key the demo cannot use (an unprotected one, say) is the
			// operator's to fix, not to replace behind their back.
			return fmt.Errorf("demo: %s: %w", m.label, err)
		}
		if err != nil {
			if k, err = identity.Generate(); err != nil {
				return err
			}
			if err := identity.SaveKey(keyPath, k); err != nil {
				return err
			}
		}
		m.key = k
		// Every demo node is certified by alice, as `deck node init` and
		// an operator would for a real node: a fresh certificate each
		// start, kept in its data dir (a --procs child loads it there).
		cert, err := identity.NewNodeCertificate(identity.KeySigner{K: d.operators["alice"]}, d.cluster.Name, k.Public,
			identity.RoleNode, time.Now(), identity.NodeCertificateLifetime)
		if err != nil {
			return fmt.Errorf("demo: certify %s: %w", m.label, err)
		}
		if err := identity.SaveCertificate(filepath.Join(m.dataDir, identity.CertificateFileName), cert); err != nil {
			return fmt.Errorf("demo: certify %s: %w", m.label, err)
		}
		m.cert = cert
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
	if d.opts.Procs {
		c, addr, err := d.startChild(ctx, m)
		if err != nil {
			return err
		}
		for _, id := range workloads.CrashLoops() {
			c.send(memberCommand{Op: "crashloop", Daemon: id, On: true})
		}
		d.mu.Lock()
		m.proc, m.addr = c, addr
		d.mu.Unlock()
		d.applyLinks()
		return nil
	}
	spec, err := d.cluster.Spec()
	if err != nil {
		return err
	}
	nd, fc, err := startNode(ctx, node.Options{
		Cluster: d.cluster, Key: m.key, DataDir: m.dataDir, ListenAddr: m.addr, Bootstrap: d.bootstrapFor(m),
		Label: m.label, Capabilities: m.caps, Spec: spec, Factories: workloadFactories(&m.blobs),
		Version: d.opts.Version, Logf: d.opts.Logf, Certificate: m.cert, BlobBudget: blobBudget(m.idx, len(d.members)),
	})
	if err != nil {
		return err
	}
	if err := m.blobs.bind(nd, d.operators[blobOperator]); err != nil {
		nd.Close()
		return err
	}
	d.mu.Lock()
	m.node, m.faults, m.addr = nd, fc, nd.Addr()
	d.mu.Unlock()
	d.applyLinks()
	return nil
}

// bootstrapFor picks the addresses m joins through: at most
// maxBootstrapPeers running members it has a link to, lowest index first
// (node-1 for a fresh demo), so a node restarted after node-1 was killed,
// or one that only has ring neighbours, still finds the mesh.
func (d *Demo) bootstrapFor(m *member) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var boot, unlinked []string
	for _, o := range d.members {
		if o == m || !o.alive() || o.addr == "" {
			continue
		}
		linked := false
		if m.idx == consoleIdx {
			linked = !d.blocked[[2]int{o.idx, consoleIdx}]
		} else {
			key := [2]int{min(m.idx, o.idx), max(m.idx, o.idx)}
			linked = d.links[key] && !d.blocked[key]
		}
		if linked {
			boot = append(boot, o.addr)
		} else {
			unlinked = append(unlinked, o.addr)
		}
	}
	// No direct link to any running node (a partition in force): try the
	// others anyway; the fault wrapper drops what the faults block.
	boot = append(boot, unlinked...)
	return boot[:min(len(boot), maxBootstrapPeers)]
}

// applyLinks makes every running node's socket match the topology and
// the faults in force: a pair is blocked when the topology has no link or
// a partition cuts it, and slowed when an impairment is on it. It runs
// after every start, so a restarted node (a new transport) gets the same
// links, partitions and impairments as the one that was killed.
func (d *Demo) applyLinks() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, a := range d.members {
		if !a.alive() {
			continue
		}
		for _, b := range d.members {
			if a == b {
				continue
			}
			key := [2]int{min(a.idx, b.idx), max(a.idx, b.idx)}
			a.block(b.key.ID, !d.links[key] || d.blocked[key])
			// The wrapper delays what it sends and drops a fraction both
			// of what it sends and of what it receives on the link: delay
			// at both ends, loss at one, so the flags mean what they say
			// (one-way latency, loss per direction).
			imp := d.impaired[key]
			loss := imp.loss
			if a.idx > b.idx {
				loss = 0
			}
			a.impair(b.key.ID, impairment{delay: imp.delay, loss: loss})
		}
		if d.console != nil {
			cut := d.blocked[[2]int{a.idx, consoleIdx}]
			a.block(d.console.ID(), cut)
			d.consoleFaults.Block(a.key.ID, cut)
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

// Nodes returns the running in-process nodes (killed ones are skipped;
// with Procs there are none).
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
	// Join through running nodes: the cluster file names node-1 and node-2,
	// which may have been killed.
	boot := d.bootstrapFor(&member{idx: consoleIdx})
	nd, fc, err := startNode(ctx, node.Options{
		Cluster: d.cluster, Label: "deck", Observer: true, Spec: spec, Bootstrap: boot,
		Version: d.opts.Version, Logf: d.opts.Logf, CertifyWith: identity.KeySigner{K: d.operators["alice"]},
	})
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.console, d.consoleFaults = nd, fc
	d.mu.Unlock()
	d.applyLinks()
	d.detector.watch(nd)
	return nd, nil
}

// WaitConverged waits until Converged, or ctx ends.
func (d *Demo) WaitConverged(ctx context.Context) error {
	return d.wait(ctx, "converged", d.Unsettled)
}

// WaitReady waits until Ready, or ctx ends: the mesh is up and the console
// can be shown, even if placement is still settling.
func (d *Demo) WaitReady(ctx context.Context) error {
	return d.wait(ctx, "ready", d.notReady)
}

func (d *Demo) wait(ctx context.Context, what string, problems func() []string) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		p := problems()
		if len(p) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("demo: not %s (%s): %w", what, strings.Join(p, "; "), ctx.Err())
		case <-t.C:
		}
	}
}

// Converged reports whether the observer's view is complete and settled:
// see Unsettled.
func (d *Demo) Converged() bool { return len(d.Unsettled()) == 0 }

// Ready reports whether the observer sees every running demo node Healthy
// with a fresh snapshot.
func (d *Demo) Ready() bool { return len(d.notReady()) == 0 }

// observer is the node whose view the demo judges: the console, or the
// first running node.
func (d *Demo) observer() (*node.Node, []*member) {
	d.mu.Lock()
	defer d.mu.Unlock()
	obs := d.console
	var up []*member
	for _, m := range d.members {
		if m.alive() {
			up = append(up, m)
			if obs == nil {
				obs = m.node
			}
		}
	}
	return obs, up
}

func (d *Demo) notReady() []string {
	obs, up := d.observer()
	if obs == nil {
		return []string{"no node running"}
	}
	return nodeProblems(obs.Cluster(), up)
}

// Unsettled lists, from the observer's view, what keeps the demo from
// being converged; nil when it is:
//   - every running demo node is Healthy with a fresh snapshot;
//   - every daemon of the spec runs (or is starting) on exactly one live
//     node, and none runs on an observer;
//   - every chain is held by exactly its desired number of live nodes, and
//     by no observer.
//
// Live means Healthy and fresh as the observer sees it: a killed node's
// last snapshot keeps listing its daemons and replicas until it goes stale,
// and those claims do not count.
func (d *Demo) Unsettled() []string {
	obs, up := d.observer()
	if obs == nil {
		return []string{"no node running"}
	}
	spec, err := d.cluster.Spec()
	if err != nil {
		return []string{err.Error()}
	}
	return settleProblems(obs.Cluster(), up, spec)
}

// specMembers is how many daemons placement makes of g (meshos's rule:
// at least one, exactly one for a solo group, at most GroupMembersMax).
func specMembers(g meshos.GroupSpec) int {
	if g.Kind == snapshot.GroupSolo {
		return 1
	}
	return min(max(g.Members, 1), meshos.GroupMembersMax)
}

func nodeProblems(cs *snapshot.ClusterSnapshot, up []*member) []string {
	var out []string
	for _, m := range up {
		nv := cs.Node(m.key.ID)
		switch {
		case nv == nil || nv.BuiltAt.IsZero():
			out = append(out, m.label+" not seen")
		case nv.Health != snapshot.Healthy:
			out = append(out, m.label+" "+nv.Health.String())
		case nv.Stale:
			out = append(out, m.label+" stale")
		}
	}
	return out
}

func isLive(nv *snapshot.NodeView) bool {
	return nv.Health == snapshot.Healthy && !nv.Stale && !nv.BuiltAt.IsZero()
}

func settleProblems(cs *snapshot.ClusterSnapshot, up []*member, spec meshos.Spec) []string {
	out := nodeProblems(cs, up)
	label := func(nv *snapshot.NodeView) string {
		if nv.Label != "" {
			return nv.Label
		}
		return nv.ID.Short()
	}
	where := map[string][]string{} // daemon id → live nodes running it
	for i := range cs.Nodes {
		nv := &cs.Nodes[i]
		if !isLive(nv) {
			continue
		}
		for _, dm := range nv.Daemons {
			if dm.Lifecycle != snapshot.LifecycleRunning && dm.Lifecycle != snapshot.LifecycleStarting {
				continue
			}
			if nv.Observer {
				out = append(out, fmt.Sprintf("%s runs on observer %s", dm.ID, label(nv)))
				continue
			}
			where[dm.ID] = append(where[dm.ID], label(nv))
		}
	}
	for _, g := range spec.Groups {
		for i := range specMembers(g) {
			id := meshos.DaemonID(g.Name, i)
			switch w := where[id]; len(w) {
			case 1:
			case 0:
				out = append(out, id+" not running")
			default:
				out = append(out, fmt.Sprintf("%s runs on %d nodes (%s)", id, len(w), strings.Join(w, ", ")))
			}
		}
		if g.ChainReplicas <= 0 {
			continue
		}
		name := meshos.ChainName(g.Name)
		held, desired := 0, min(g.ChainReplicas, meshos.ChainReplicasMax)
		for i := range cs.Nodes {
			nv := &cs.Nodes[i]
			if !isLive(nv) || !slices.ContainsFunc(nv.Replicas, func(r snapshot.Replica) bool { return r.Chain == name }) {
				continue
			}
			if nv.Observer {
				out = append(out, fmt.Sprintf("observer %s holds a replica of %s", label(nv), name))
				continue
			}
			held++
		}
		if held != desired {
			state := "under"
			if held > desired {
				state = "over"
			}
			out = append(out, fmt.Sprintf("chain %s held %d/%d (%s)", name, held, desired, state))
		}
	}
	return out
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
	var nodes []*node.Node
	var procs []*child
	for _, m := range d.members {
		if m.node != nil {
			nodes = append(nodes, m.node)
		}
		if m.proc != nil {
			procs = append(procs, m.proc)
		}
	}
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
	for _, n := range nodes {
		wg.Add(1)
		go stop(n)
	}
	for _, c := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.close(); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		}()
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
