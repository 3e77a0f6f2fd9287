package meshos

import (
	"context"
	"fmt"
	"regexp"
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

func sampleSnapshot() *snapshot.NodeSnapshot {
	t0 := time.Unix(1000, 0)
	return &snapshot.NodeSnapshot{
		ID: 7, Label: "n7", BuiltAt: t0, StartedAt: t0,
		Resources:   snapshot.Resources{Saturation: 0.31, Trend: []float64{0.3}},
		Maintenance: snapshot.Maintenance{State: snapshot.MaintActive, Since: t0},
		Daemons: []snapshot.Daemon{{ID: "a-0", Lifecycle: snapshot.LifecycleRunning, Saturation: 0.5,
			Restart: snapshot.RestartBackingOff, RestartUntil: t0.Add(time.Second), StartedAt: t0}},
		Replicas:   []snapshot.Replica{{Chain: "a", Role: snapshot.Leader, Seq: 4, Term: 1}},
		Avoid:      []snapshot.AvoidEntry{{Peer: 9, Reason: "rtt", Until: t0.Add(time.Minute)}},
		Pending:    []snapshot.PendingAction{{ID: "migrate:a-0", Kind: "migrate", Target: "a-0", Since: t0}},
		Migrations: []snapshot.Migration{{ID: "m", Phase: snapshot.PhaseTransfer, Progress: 0.2, StartedAt: t0}},
		Peers:      []snapshot.PeerView{{Peer: 9, RTT: 40 * time.Millisecond}},
	}
}

func TestStructuralHash(t *testing.T) {
	base := StructuralHash(sampleSnapshot())
	tests := []struct {
		name    string
		edit    func(s *snapshot.NodeSnapshot)
		changes bool
	}{
		{"built at", func(s *snapshot.NodeSnapshot) { s.BuiltAt = s.BuiltAt.Add(time.Hour) }, false},
		{"restart until", func(s *snapshot.NodeSnapshot) { s.Daemons[0].RestartUntil = time.Time{} }, false},
		{"avoid until", func(s *snapshot.NodeSnapshot) { s.Avoid[0].Until = s.Avoid[0].Until.Add(time.Hour) }, false},
		{"pending since", func(s *snapshot.NodeSnapshot) { s.Pending[0].Since = time.Time{} }, false},
		{"counters", func(s *snapshot.NodeSnapshot) { s.Counters.PacketsIn = 99 }, false},
		{"trend", func(s *snapshot.NodeSnapshot) { s.Resources.Trend = append(s.Resources.Trend, 0.9) }, false},
		{"saturation jitter", func(s *snapshot.NodeSnapshot) { s.Resources.Saturation = 0.32 }, false},
		{"rtt jitter", func(s *snapshot.NodeSnapshot) { s.Peers[0].RTT = 45 * time.Millisecond }, false},
		{"lifecycle", func(s *snapshot.NodeSnapshot) { s.Daemons[0].Lifecycle = snapshot.LifecycleCrashed }, true},
		{"restart kind", func(s *snapshot.NodeSnapshot) { s.Daemons[0].Restart = snapshot.RestartCrashLooping }, true},
		{"seq step", func(s *snapshot.NodeSnapshot) { s.Replicas[0].Seq += ChainSeqHashStep }, true},
		{"seq within a step", func(s *snapshot.NodeSnapshot) {
			s.Replicas[0].Seq = s.Replicas[0].Seq/ChainSeqHashStep*ChainSeqHashStep + 1
		}, false},
		{"role", func(s *snapshot.NodeSnapshot) { s.Replicas[0].Role = snapshot.Follower }, true},
		{"maintenance", func(s *snapshot.NodeSnapshot) { s.Maintenance.State = snapshot.MaintEntering }, true},
		{"blocked", func(s *snapshot.NodeSnapshot) { s.Pending[0].Blocked = "frozen" }, true},
		{"phase", func(s *snapshot.NodeSnapshot) { s.Migrations[0].Phase = snapshot.PhaseRestore }, true},
		{"saturation step", func(s *snapshot.NodeSnapshot) { s.Resources.Saturation = 0.5 }, true},
		{"rtt doubling", func(s *snapshot.NodeSnapshot) { s.Peers[0].RTT = 300 * time.Millisecond }, true},
		{"cordon", func(s *snapshot.NodeSnapshot) { s.Cordoned = true }, true},
		{"failure", func(s *snapshot.NodeSnapshot) { s.Failures = append(s.Failures, snapshot.Failure{Seq: 1}) }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := sampleSnapshot()
			tc.edit(s)
			if got := StructuralHash(s) != base; got != tc.changes {
				t.Fatalf("hash changed = %v, want %v", got, tc.changes)
			}
		})
	}
	// Loopback and LAN jitter (a few milliseconds either way) is no change.
	lan := func(rtt time.Duration) uint64 {
		s := sampleSnapshot()
		s.Peers[0].RTT = rtt
		return StructuralHash(s)
	}
	for _, rtt := range []time.Duration{0, 300 * time.Microsecond, time.Millisecond, 3 * time.Millisecond, 9 * time.Millisecond} {
		if lan(rtt) != lan(2*time.Millisecond) {
			t.Errorf("rtt %v hashes apart from 2ms", rtt)
		}
	}
}

func TestChangesOnlyOnStructure(t *testing.T) {
	c := newCluster(t, 1, Spec{})
	rt := c.rts[c.ids[0]]
	// Let it settle, then drain any pending signal.
	c.waitFor("settled generation", func() bool {
		g := rt.Latest().Generation
		time.Sleep(5 * fastTimers().Tick)
		return rt.Latest().Generation == g
	})
	select {
	case <-rt.Changes():
	default:
	}
	gen, built := rt.Latest().Generation, rt.Latest().BuiltAt
	c.waitFor("more ticks", func() bool { return rt.Latest().BuiltAt.After(built.Add(3 * fastTimers().Tick)) })
	select {
	case <-rt.Changes():
		t.Fatal("change signalled without a structural change")
	default:
	}
	if g := rt.Latest().Generation; g != gen {
		t.Fatalf("generation moved %d → %d without a structural change", gen, g)
	}
	rt.SetPeers([]snapshot.PeerView{{Peer: 0x4242, RTT: time.Millisecond}})
	select {
	case <-rt.Changes():
	case <-time.After(30 * time.Second):
		t.Fatal("no change signal after a structural change")
	}
	if g := rt.Latest().Generation; g != gen+1 {
		t.Fatalf("generation %d, want %d", g, gen+1)
	}
}

// logSink captures supervisor logs for the backoff test.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) log(_ api.LogLevel, _ string, text string) {
	l.mu.Lock()
	l.lines = append(l.lines, text)
	l.mu.Unlock()
}

func TestBackoffDoublesThenGates(t *testing.T) {
	n := new(atomic.Int64)
	ls := &logSink{}
	var fails []string
	var fmu sync.Mutex
	tm := timing{now: time.Now, backoffInitial: time.Millisecond, backoffMax: 4 * time.Millisecond,
		crashWindow: time.Hour, crashHold: time.Hour, stableRun: time.Hour, stopGrace: time.Second, poll: time.Millisecond}
	s := newSupervisor(DaemonInfo{ID: "bad-0", Kind: "crasher"}, func(DaemonInfo) Daemon {
		n.Add(1)
		return crashOnce{}
	}, tm, ls.log, func(_, r string) { fmu.Lock(); fails = append(fails, r); fmu.Unlock() }, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.start(ctx)
	nodetest.Eventually(t, "the crash loop to be gated", func() bool {
		g, _ := s.gated(time.Now())
		return g
	})
	ls.mu.Lock()
	lines := slices.Clone(ls.lines)
	ls.mu.Unlock()
	re := regexp.MustCompile(`restarting in (\S+):`)
	var waits []string
	for _, l := range lines {
		if m := re.FindStringSubmatch(l); m != nil {
			waits = append(waits, m[1])
		}
	}
	if want := []string{"1ms", "2ms", "4ms", "4ms"}; !slices.Equal(waits, want) {
		t.Fatalf("backoff sequence %v, want %v (logs %q)", waits, want, lines)
	}
	if !strings.Contains(lines[len(lines)-1], fmt.Sprintf("crash-looping: %d crashes", CrashLoopCrashes)) {
		t.Fatalf("last log %q", lines[len(lines)-1])
	}
	if v := s.view(1, time.Now()); v.Restart != snapshot.RestartCrashLooping || v.Restarts != CrashLoopCrashes || v.Lifecycle != snapshot.LifecycleCrashed {
		t.Fatalf("view %+v", v)
	}
	// Gated: no further instance is built while the gate holds.
	built := n.Load()
	time.Sleep(20 * time.Millisecond)
	if n.Load() != built {
		t.Fatal("a gated daemon was restarted")
	}
	s.stop(time.Second)
}

type crashOnce struct{}

func (crashOnce) Run(context.Context, <-chan Control, Logger) error { panic("boom") }
func (crashOnce) Snapshot() ([]byte, error)                         { return nil, nil }
func (crashOnce) Restore([]byte) error                              { return nil }
func (crashOnce) Health() (snapshot.DaemonHealthState, string)      { return snapshot.DaemonDegraded, "x" }
func (crashOnce) Saturation() float64                               { return 0 }

func TestRestartAllAndControls(t *testing.T) {
	spec := Spec{Groups: []GroupSpec{{Name: "w", Kind: snapshot.GroupReplica, DaemonKind: "counter", Members: 2, Load: 0.5}}}
	c := newCluster(t, 1, spec, func(_ NodeID, cfg *Config) {
		cfg.Timers.BackpressureHigh, cfg.Timers.BackpressureLow = 0.6, 0.3
	})
	id := c.ids[0]
	c.waitFor("running", c.settled)
	// Two members at 0.5 declared load saturate the only node: backpressure.
	c.waitFor("backpressure on", func() bool {
		c.reg.mu.Lock()
		defer c.reg.mu.Unlock()
		for _, k := range c.reg.all["w-0"] {
			k.mu.Lock()
			on := slices.Contains(k.ctl, CtlBackpressureOn)
			k.mu.Unlock()
			if on {
				return true
			}
		}
		return false
	})
	c.editNode(id, func(ni *NodeIntent) { ni.RestartAllGen = 1 })
	c.waitFor("restarted", func() bool {
		s := c.node(id)
		return len(s.Daemons) == 2 && s.Daemons[0].Restarts == 1 && s.Daemons[1].Restarts == 1 &&
			s.Daemons[0].Lifecycle == snapshot.LifecycleRunning
	})
	time.Sleep(5 * fastTimers().Tick)
	if s := c.node(id); s.Daemons[0].Restarts != 1 {
		t.Fatalf("restart-all acted twice: %d restarts", s.Daemons[0].Restarts)
	}
}

// BenchmarkBuildAndHash50 builds and hashes a node snapshot with 50
// running daemons: the per-tick publish cost.
func BenchmarkBuildAndHash50(b *testing.B) {
	spec := Spec{Groups: []GroupSpec{{Name: "w", Kind: snapshot.GroupReplica, DaemonKind: "counter", Members: 50, ChainReplicas: 1}}}
	h := messagingtest.NewHub(b, messagingtest.Config{})
	reg := &registry{}
	rt, err := New(Config{Self: 1, Spec: spec, Factories: map[string]Factory{"counter": reg.factory},
		Messenger: h.Join(1), Timers: Timers{Tick: time.Hour},
		Resources: func() snapshot.Resources { return snapshot.Resources{Saturation: 0.4} }})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); rt.Run(ctx) }()
	defer func() { cancel(); <-done }()
	rt.SetCluster(&snapshot.ClusterSnapshot{Nodes: []snapshot.NodeView{{NodeSnapshot: snapshot.NodeSnapshot{ID: 1}}}}, ClusterIntent{})
	rt.mu.Lock()
	rt.reconcileLocked(time.Now())
	n := len(rt.daemons)
	rt.mu.Unlock()
	if n != 50 {
		b.Fatalf("%d daemons", n)
	}
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rt.publish(now)
	}
}

// A saturation jittering across a quantisation boundary is no structural
// change (no new generation, so no snapshot signed and pushed); a move by a
// whole step is one, once.
func TestPublishSaturationJitterAcrossAStepIsNoChange(t *testing.T) {
	var sat atomic.Value
	sat.Store(0.474)
	h := messagingtest.NewHub(t, messagingtest.Config{})
	rt, err := New(Config{Self: 1, Messenger: h.Join(1), Timers: Timers{Tick: time.Hour},
		Resources: func() snapshot.Resources { return snapshot.Resources{Saturation: sat.Load().(float64)} }})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rt.publish(now)
	gen := rt.Latest().Generation
	for _, v := range []float64{0.476, 0.474, 0.476, 0.49, 0.46} { // quantised: 9, 10, 9, 10, 10, 9
		sat.Store(v)
		rt.publish(now)
		if g := rt.Latest().Generation; g != gen {
			t.Fatalf("saturation %.3f: generation %d, want %d (jitter)", v, g, gen)
		}
		if got := rt.Latest().Resources.Saturation; got != v {
			t.Fatalf("the snapshot carries saturation %.3f, want the exact %.3f", got, v)
		}
	}
	sat.Store(0.53)
	rt.publish(now)
	if g := rt.Latest().Generation; g != gen+1 {
		t.Fatalf("a whole step: generation %d, want %d", g, gen+1)
	}
	rt.publish(now)
	if g := rt.Latest().Generation; g != gen+1 {
		t.Fatalf("the same value again: generation %d, want %d", g, gen+1)
	}
}
