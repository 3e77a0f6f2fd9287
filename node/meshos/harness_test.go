package meshos

// Test-only harness: N Runtimes joined by an in-process messaging.Messenger hub
// (messagingtest) and a minimal cluster fold. It stands in for node/transport and
// node/gossip (built elsewhere); the Runtimes, supervisors, migrations and
// chains under test are the real ones.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/messaging/messagingtest"
	"github.com/deck-mesh/deck/node/nodetest"
	"github.com/deck-mesh/deck/node/snapshot"
)

// counter is the generic test daemon: it counts while running and
// snapshots its count, so a test can tell a migrated daemon (count kept)
// from a fresh one (count from zero).
type counter struct {
	mu    sync.Mutex
	count uint64
	ctl   []ControlKind
	// warm: a warm standby member, which counts ten times slower (so a
	// test can tell the active's state from the standby's own).
	warm  bool
	ticks uint64
	// restored is the count the instance was restored with (restoredOK).
	restored   uint64
	restoredOK bool
}

func (c *counter) Run(ctx context.Context, ctl <-chan Control, log Logger) error {
	log.Log(api.LevelInfo, "counting from %d", c.get())
	tk := time.NewTicker(2 * time.Millisecond)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-ctl:
			c.mu.Lock()
			c.ctl = append(c.ctl, ev.Kind)
			c.mu.Unlock()
			if ev.Kind == CtlShutdown {
				return nil
			}
		case <-tk.C:
			c.mu.Lock()
			c.ticks++
			if !c.warm || c.ticks%10 == 0 {
				c.count++
			}
			c.mu.Unlock()
		}
	}
}

func (c *counter) get() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count
}

func (c *counter) Snapshot() ([]byte, error) {
	return binary.BigEndian.AppendUint64(nil, c.get()), nil
}

func (c *counter) Restore(b []byte) error {
	if len(b) != 8 {
		return fmt.Errorf("counter state is %d bytes, want 8", len(b))
	}
	c.mu.Lock()
	c.count = binary.BigEndian.Uint64(b)
	c.restored, c.restoredOK = c.count, true
	c.mu.Unlock()
	return nil
}

func (c *counter) Health() (snapshot.DaemonHealthState, string) { return snapshot.DaemonHealthy, "" }
func (c *counter) Saturation() float64                          { return 0.1 }

// crasher fails (alternately by error and by panic) right after starting.
type crasher struct{ n *atomic.Int64 }

func (c crasher) Run(ctx context.Context, _ <-chan Control, _ Logger) error {
	if c.n.Add(1)%2 == 0 {
		panic("crasher: boom")
	}
	return errors.New("crasher: exit 1")
}
func (crasher) Snapshot() ([]byte, error)                    { return nil, nil }
func (crasher) Restore([]byte) error                         { return nil }
func (crasher) Health() (snapshot.DaemonHealthState, string) { return snapshot.DaemonHealthy, "" }
func (crasher) Saturation() float64                          { return 0 }

// registry tracks every counter instance so tests can read live counts.
type registry struct {
	mu  sync.Mutex
	all map[string][]*counter
}

func (r *registry) factory(info DaemonInfo) Daemon {
	c := &counter{warm: info.Lineage.Kind == snapshot.GroupStandby && !info.Lineage.Active}
	r.mu.Lock()
	if r.all == nil {
		r.all = map[string][]*counter{}
	}
	r.all[info.ID] = append(r.all[info.ID], c)
	r.mu.Unlock()
	return c
}

// recordSink collects logs and failures.
type recordSink struct {
	mu       sync.Mutex
	logs     []api.LogRecord
	failures []snapshot.Failure
}

func (s *recordSink) AppendLog(r api.LogRecord) {
	s.mu.Lock()
	s.logs = append(s.logs, r)
	s.mu.Unlock()
}

func (s *recordSink) AppendFailure(f snapshot.Failure) {
	s.mu.Lock()
	s.failures = append(s.failures, f)
	s.mu.Unlock()
}

func (s *recordSink) hasFailure(sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.failures {
		if strings.Contains(f.Reason, sub) {
			return true
		}
	}
	return false
}

func (s *recordSink) hasLog(sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.logs {
		if strings.Contains(r.Text, sub) {
			return true
		}
	}
	return false
}

func (s *recordSink) countFailures(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, f := range s.failures {
		if strings.Contains(f.Reason, sub) {
			n++
		}
	}
	return n
}

func fastTimers() Timers {
	return Timers{
		Tick: 20 * time.Millisecond, BackoffInitial: 5 * time.Millisecond, BackoffMax: 40 * time.Millisecond,
		CrashLoopHold: time.Hour, StopGrace: time.Second, PullCooldown: time.Millisecond,
		ChainStabilization: 10 * time.Millisecond, RecoveryWindow: 100 * time.Millisecond,
		MigrationStep: time.Second, MigrationRetainFor: 5 * time.Second, MigrationRetry: 200 * time.Millisecond,
		CheckpointEvery: 20 * time.Millisecond, DrainRatePerSec: 100,
	}
}

// cluster is N runtimes plus the test fold.
type cluster struct {
	t      *testing.T
	hub    *messagingtest.Hub
	ids    []NodeID
	rts    map[NodeID]*Runtime
	sinks  map[NodeID]*recordSink
	cancel map[NodeID]context.CancelFunc
	done   map[NodeID]chan struct{}
	reg    *registry
	spec   Spec

	mu     sync.Mutex
	intent ClusterIntent
	dead   map[NodeID]bool
	// extra are snapshots of nodes that are not runtimes here (an
	// attacker's signed claims), shown Healthy in every view.
	extra []snapshot.NodeSnapshot
	stop  chan struct{}
	wg    sync.WaitGroup
}

type nodeOpt func(id NodeID, c *Config)

func newCluster(t *testing.T, n int, spec Spec, opts ...nodeOpt) *cluster {
	t.Helper()
	return newClusterIntent(t, n, spec, nil, opts...)
}

// newClusterIntent starts the cluster with an initial intent in force from
// the first tick.
func newClusterIntent(t *testing.T, n int, spec Spec, initial func(ids []NodeID, in *ClusterIntent), opts ...nodeOpt) *cluster {
	t.Helper()
	c := &cluster{t: t, hub: messagingtest.NewHub(t, messagingtest.Config{}), rts: map[NodeID]*Runtime{}, sinks: map[NodeID]*recordSink{},
		cancel: map[NodeID]context.CancelFunc{}, done: map[NodeID]chan struct{}{}, reg: &registry{},
		spec: spec, dead: map[NodeID]bool{}, stop: make(chan struct{}),
		intent: ClusterIntent{Nodes: map[NodeID]NodeIntent{}, Daemons: map[string]DaemonIntent{}}}
	crashes := new(atomic.Int64)
	for i := 1; i <= n; i++ {
		id := NodeID(i * 0x1111)
		c.ids = append(c.ids, id)
		sink := &recordSink{}
		cfg := Config{
			Self: id, Label: fmt.Sprintf("n%d", i), Addr: fmt.Sprintf("127.0.0.1:%d", 7000+i), Version: "test",
			Capabilities: []string{"cpu"}, Spec: spec,
			Factories: map[string]Factory{
				"counter": c.reg.factory,
				"crasher": func(DaemonInfo) Daemon { return crasher{n: crashes} },
			},
			Messenger: c.hub.Join(id), Logs: sink, Failures: sink, Timers: fastTimers(),
		}
		for _, o := range opts {
			o(id, &cfg)
		}
		rt, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.rts[id], c.sinks[id] = rt, sink
	}
	if initial != nil {
		initial(c.ids, &c.intent)
	}
	for _, id := range c.ids {
		ctx, cancel := context.WithCancel(context.Background())
		c.cancel[id] = cancel
		done := make(chan struct{})
		c.done[id] = done
		go func() { defer close(done); c.rts[id].Run(ctx) }()
	}
	c.wg.Add(1)
	go c.foldLoop()
	t.Cleanup(c.close)
	// Intent generations present in a node's first cluster view count as
	// already acted on (see SetCluster), so tests start from a folded view.
	c.waitFor("first cluster view", func() bool {
		for _, id := range c.ids {
			if c.rts[id].Assignment() == nil {
				return false
			}
		}
		return true
	})
	return c
}

func (c *cluster) close() {
	close(c.stop)
	c.wg.Wait()
	for _, id := range c.ids {
		c.cancel[id]()
	}
	for _, id := range c.ids {
		<-c.done[id]
	}
}

// fold builds each live node's ClusterSnapshot from every node's latest
// NodeSnapshot: dead nodes show Unreachable; edges come from the peers.
func (c *cluster) foldLoop() {
	defer c.wg.Done()
	tk := time.NewTicker(15 * time.Millisecond)
	defer tk.Stop()
	var gen uint64
	for {
		select {
		case <-c.stop:
			return
		case <-tk.C:
		}
		gen++
		c.mu.Lock()
		intent := c.intent
		dead := maps(c.dead)
		extra := slices.Clone(c.extra)
		c.mu.Unlock()
		var views []snapshot.NodeView
		var edges []snapshot.Edge
		for _, id := range c.ids {
			s := c.rts[id].Latest()
			v := snapshot.NodeView{NodeSnapshot: *s, Health: snapshot.Healthy, ReceivedAt: time.Now()}
			if dead[id] {
				v.Health = snapshot.Unreachable
			}
			views = append(views, v)
			for _, p := range s.Peers {
				if id < p.Peer {
					edges = append(edges, snapshot.Edge{A: id, B: p.Peer, RTT: p.RTT})
				}
			}
		}
		for _, ns := range extra {
			views = append(views, snapshot.NodeView{NodeSnapshot: ns, Health: snapshot.Healthy, ReceivedAt: time.Now()})
		}
		for _, id := range c.ids {
			if dead[id] {
				continue
			}
			cs := &snapshot.ClusterSnapshot{Cluster: "test", Self: id, BuiltAt: time.Now(), Generation: gen,
				Nodes: slices.Clone(views), Edges: edges, Freeze: intent.Freeze}
			c.rts[id].SetCluster(cs, intent)
		}
	}
}

func maps(m map[NodeID]bool) map[NodeID]bool {
	out := make(map[NodeID]bool, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// setIntent edits the shared intent (deep-copying the maps so runtimes
// holding the old value never see it change).
func (c *cluster) setIntent(edit func(in *ClusterIntent)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	in := c.intent
	nodes := make(map[NodeID]NodeIntent, len(in.Nodes))
	for k, v := range in.Nodes {
		nodes[k] = v
	}
	daemons := make(map[string]DaemonIntent, len(in.Daemons))
	for k, v := range in.Daemons {
		daemons[k] = v
	}
	killed := make(map[string]uint64, len(in.KilledMigrations))
	for k, v := range in.KilledMigrations {
		killed[k] = v
	}
	in.Nodes, in.Daemons, in.KilledMigrations = nodes, daemons, killed
	in.Evictions, in.Cutovers = slices.Clone(in.Evictions), slices.Clone(in.Cutovers)
	edit(&in)
	c.intent = in
}

func (c *cluster) editNode(id NodeID, edit func(ni *NodeIntent)) {
	c.setIntent(func(in *ClusterIntent) {
		ni := in.Nodes[id]
		edit(&ni)
		in.Nodes[id] = ni
	})
}

// inject shows ns, a snapshot of a node that is not a runtime here, in
// every view from the next fold on.
func (c *cluster) inject(ns *snapshot.NodeSnapshot) {
	c.mu.Lock()
	c.extra = append(c.extra, *ns)
	c.mu.Unlock()
}

// kill stops a node abruptly: off the mesh, its loop cancelled, and marked
// unreachable in everyone's fold.
func (c *cluster) kill(id NodeID) {
	c.hub.SetDown(id, true)
	c.mu.Lock()
	c.dead[id] = true
	c.mu.Unlock()
	c.cancel[id]()
	<-c.done[id]
}

// isolate cuts a node off (or reconnects it) without stopping it: off the
// mesh and unreachable in everyone's fold, while its own loop runs on with
// the last cluster view it was given — one side of a partition.
func (c *cluster) isolate(id NodeID, cut bool) {
	c.hub.SetDown(id, cut)
	c.mu.Lock()
	c.dead[id] = cut
	c.mu.Unlock()
}

func (c *cluster) live() []NodeID {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []NodeID
	for _, id := range c.ids {
		if !c.dead[id] {
			out = append(out, id)
		}
	}
	return out
}

// waitFor is nodetest.Eventually with the cluster's state as the dump.
func (c *cluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	nodetest.Eventually(c.t, what, cond, c.dump)
}

func (c *cluster) dump() string {
	var b strings.Builder
	for _, id := range c.ids {
		s := c.rts[id].Latest()
		fmt.Fprintf(&b, "%v %s maint=%s gen=%d\n", id, s.Label, s.Maintenance.State, s.Generation)
		for _, d := range s.Daemons {
			fmt.Fprintf(&b, "   daemon %s %s restart=%s n=%d\n", d.ID, d.Lifecycle, d.Restart, d.Restarts)
		}
		for _, r := range s.Replicas {
			fmt.Fprintf(&b, "   replica %s %s seq=%d term=%d\n", r.Chain, r.Role, r.Seq, r.Term)
		}
		for _, p := range s.Pending {
			fmt.Fprintf(&b, "   pending %s blocked=%q\n", p.ID, p.Blocked)
		}
		for _, m := range s.Migrations {
			fmt.Fprintf(&b, "   migration %s %s err=%q\n", m.ID, m.Phase, m.Error)
		}
	}
	return b.String()
}

// where maps each running daemon to the live nodes whose snapshot shows it.
func (c *cluster) where() map[string][]NodeID {
	out := map[string][]NodeID{}
	for _, id := range c.live() {
		for _, d := range c.rts[id].Latest().Daemons {
			if d.Lifecycle == snapshot.LifecycleRunning {
				out[d.ID] = append(out[d.ID], id)
			}
		}
	}
	return out
}

// settled reports whether every live node computed the same assignment,
// every placed daemon runs exactly once where assigned, and every chain has
// its holders with exactly the assigned leader leading.
func (c *cluster) settled() bool {
	live := c.live()
	var ref *Assignment
	for _, id := range live {
		a := c.rts[id].Assignment()
		if a == nil {
			return false
		}
		if ref == nil {
			ref = a
			continue
		}
		if d := Diff(ref, a); len(d.Daemons)+len(d.Replicas)+len(d.Leaders) != 0 {
			return false
		}
	}
	w := c.where()
	for _, did := range ref.DaemonIDs() {
		n := ref.NodeOf(did)
		if n == 0 {
			continue
		}
		if len(w[did]) != 1 || w[did][0] != n {
			return false
		}
	}
	for name, cp := range ref.Chains {
		var holders []NodeID
		leaders := 0
		for _, id := range live {
			for _, r := range c.rts[id].Latest().Replicas {
				if r.Chain == name {
					holders = append(holders, id)
					if r.Role == snapshot.Leader {
						leaders++
						if id != cp.Leader {
							return false
						}
					}
				}
			}
		}
		if !slices.Equal(holders, cp.Holders) || leaders != 1 {
			return false
		}
	}
	for _, id := range live {
		s := c.rts[id].Latest()
		if len(s.Pending) != 0 {
			return false
		}
	}
	return true
}

func (c *cluster) node(id NodeID) *snapshot.NodeSnapshot { return c.rts[id].Latest() }

// counts returns the current count of each daemon's live instance.
func (c *cluster) count(daemon string) uint64 {
	c.reg.mu.Lock()
	defer c.reg.mu.Unlock()
	var best uint64
	for _, k := range c.reg.all[daemon] {
		best = max(best, k.get())
	}
	return best
}
