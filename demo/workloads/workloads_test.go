package workloads

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/meshos"
	"github.com/deck-mesh/deck/node/snapshot"
)

// recLogger records every line a daemon logs.
type recLogger struct {
	mu    sync.Mutex
	lines []logLine
}

func (l *recLogger) Log(level api.LogLevel, format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, logLine{level, fmt.Sprintf(format, args...)})
}

func (l *recLogger) snapshot() []logLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

func (l *recLogger) contains(sub string) bool {
	for _, x := range l.snapshot() {
		if strings.Contains(x.text, sub) {
			return true
		}
	}
	return false
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

type testCase struct {
	name string
	kind string
	info meshos.DaemonInfo
}

func cases() []testCase {
	lin := func(k snapshot.GroupKind, g string, idx int, active bool, forkAt uint64) snapshot.Lineage {
		return snapshot.Lineage{Kind: k, Group: g, Index: idx, Active: active, ForkAt: forkAt, Term: 1}
	}
	mk := func(name, kind, id string, l snapshot.Lineage) testCase {
		return testCase{name, kind, meshos.DaemonInfo{ID: id, Group: l.Group, Kind: kind, Lineage: l}}
	}
	return []testCase{
		mk("inference", KindInference, "inference/m1", lin(snapshot.GroupReplica, "inference", 1, false, 0)),
		mk("trainer-active", KindTrainer, "trainer/s0", lin(snapshot.GroupStandby, "trainer", 0, true, 0)),
		mk("trainer-warm", KindTrainer, "trainer/s1", lin(snapshot.GroupStandby, "trainer", 1, false, 0)),
		mk("forge", KindForge, "forge/f1", lin(snapshot.GroupFork, "forge", 1, false, ForgeForkAtSeq)),
		mk("sensor", KindSensor, "sensor-array", lin(snapshot.GroupSolo, "sensor-array", 0, false, 0)),
		mk("drone", KindDrone, "drone-ctl", lin(snapshot.GroupSolo, "drone-ctl", 0, false, 0)),
		mk("stage", KindStage, "stage-ctl", lin(snapshot.GroupSolo, "stage-ctl", 0, false, 0)),
	}
}

func testOpts() Options { return Options{Tick: 5 * time.Millisecond, Seed: 42} }

// simulate drives a daemon through n synthetic ticks of dt without the Run
// loop, so long stretches of simulated time cost no wall time.
func simulate(t *testing.T, d *daemon, n int, dt time.Duration) []logLine {
	t.Helper()
	var all []logLine
	for range n {
		lines, err := d.advance(dt)
		if err != nil {
			t.Fatalf("unexpected crash: %v", err)
		}
		all = append(all, lines...)
	}
	return all
}

func TestSpecIsPlaceableAndFactoriesCoverIt(t *testing.T) {
	spec := Spec()
	facts := Factories()
	groups := map[string]meshos.GroupSpec{}
	for _, g := range spec.Groups {
		groups[g.Name] = g
	}
	want := map[string]struct {
		kind     snapshot.GroupKind
		members  int
		replicas int
	}{
		"inference": {snapshot.GroupReplica, 3, 3},
		"trainer":   {snapshot.GroupStandby, 3, 2},
		"forge":     {snapshot.GroupFork, 2, 0},
	}
	for name, w := range want {
		g, ok := groups[name]
		if !ok || g.Kind != w.kind || g.Members != w.members || g.ChainReplicas != w.replicas {
			t.Errorf("group %s: %+v", name, g)
		}
	}
	if !slices.Contains(groups["inference"].Requires, CapGPU) {
		t.Error("inference does not require gpu")
	}
	if f := groups["forge"]; f.Parent != "trainer" || f.ForkAt == 0 {
		t.Errorf("forge is not a fork of trainer: %+v", f)
	}
	for _, g := range spec.Groups {
		if _, ok := facts[g.DaemonKind]; !ok {
			t.Errorf("group %s: no factory for kind %q", g.Name, g.DaemonKind)
		}
		if g.Members < 1 || g.Load <= 0 || g.Load > 1 {
			t.Errorf("group %s: members %d load %v", g.Name, g.Members, g.Load)
		}
		if g.Kind == snapshot.GroupFork {
			if _, ok := groups[g.Parent]; !ok {
				t.Errorf("fork %s: parent %q not in spec", g.Name, g.Parent)
			}
		}
	}
	if _, err := FactoriesWith(Options{Tick: 0}); err == nil {
		t.Error("zero tick accepted")
	}
	if _, err := FactoriesWith(Options{Tick: time.Second, CrashesPerHour: math.NaN()}); err == nil {
		t.Error("NaN crash rate accepted")
	}
}

// TestNodeCapabilitiesPlaceEverythingWithADrainedNode places the whole Spec
// greedily (least-loaded eligible node, members of a group on distinct
// nodes) with each node in turn drained, and checks nothing is left over
// and no node runs hot.
func TestNodeCapabilitiesPlaceEverythingWithADrainedNode(t *testing.T) {
	for _, n := range []int{6, 9, 12, 16} {
		caps := make([][]string, n)
		for i := range caps {
			caps[i] = NodeCapabilities(i, n)
		}
		for drained := -1; drained < n; drained++ {
			load := make([]float64, n)
			for _, g := range Spec().Groups {
				used := map[int]bool{}
				for m := range g.Members {
					best := -1
					for i := range n {
						if i == drained || used[i] || !hasAll(caps[i], g.Requires) {
							continue
						}
						if best < 0 || load[i] < load[best] {
							best = i
						}
					}
					if best < 0 {
						t.Fatalf("n=%d drained=%d: no node for %s member %d (caps %v)", n, drained, g.Name, m, caps)
					}
					used[best] = true
					load[best] += g.Load
				}
			}
			for i, l := range load {
				if l > api.HotSaturation {
					t.Errorf("n=%d drained=%d: node %d load %.2f is hot (caps %v)", n, drained, i, l, caps[i])
				}
			}
		}
	}
	if NodeCapabilities(-1, 9) != nil || NodeCapabilities(9, 9) != nil || NodeCapabilities(0, 0) != nil {
		t.Error("out-of-range index got capabilities")
	}
	// Every capability a group requires exists in a 9-node demo, and some
	// node carries more than one (the map should not be uniform).
	seen, multi := map[string]int{}, false
	for i := range 9 {
		c := NodeCapabilities(i, 9)
		multi = multi || len(c) > 1
		for _, x := range c {
			seen[x]++
		}
	}
	for _, c := range []string{CapGPU, CapDatafort, CapEdge} {
		if seen[c] == 0 {
			t.Errorf("no node has %s: %v", c, seen)
		}
	}
	if !multi {
		t.Error("no node combines capabilities")
	}
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func TestEachDaemonRunsLogsAndShutsDown(t *testing.T) {
	facts, err := FactoriesWith(testOpts())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases() {
		t.Run(tc.name, func(t *testing.T) {
			d := facts[tc.kind](tc.info)
			log := &recLogger{}
			ctl := make(chan meshos.Control, 4)
			done := make(chan error, 1)
			go func() { done <- d.Run(context.Background(), ctl, log) }()
			waitFor(t, "ten log lines", func() bool { return len(log.snapshot()) >= 10 })
			if s := d.Saturation(); s < 0 || s > 1 {
				t.Errorf("saturation %v", s)
			}
			grace := time.Second
			sent := time.Now()
			ctl <- meshos.Control{Kind: meshos.CtlShutdown, Grace: grace}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Run after Shutdown: %v", err)
				}
				if took := time.Since(sent); took > grace {
					t.Errorf("shutdown took %s, grace %s", took, grace)
				}
			case <-time.After(grace):
				t.Fatal("Run did not return within the shutdown grace")
			}
			if !log.contains("shutdown") {
				t.Error("no shutdown line logged")
			}
		})
	}
}

func TestContextCancelStopsRun(t *testing.T) {
	d := newDaemon(KindStage, cases()[6].info, testOpts())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := &recLogger{}
	go func() { done <- d.Run(ctx, nil, log) }()
	waitFor(t, "start line", func() bool { return len(log.snapshot()) > 0 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run ignored cancel")
	}
}

func TestClosedControlChannelDoesNotSpin(t *testing.T) {
	d := newDaemon(KindSensor, cases()[4].info, testOpts())
	ctl := make(chan meshos.Control)
	close(ctl)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := &recLogger{}
	go func() { done <- d.Run(ctx, ctl, log) }()
	waitFor(t, "ticks after close", func() bool { return d.Saturation() > 0 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestRunTwiceConcurrentlyRefused(t *testing.T) {
	d := newDaemon(KindStage, cases()[6].info, testOpts())
	ctl := make(chan meshos.Control, 1)
	done := make(chan error, 1)
	log := &recLogger{}
	go func() { done <- d.Run(context.Background(), ctl, log) }()
	waitFor(t, "start", func() bool { return len(log.snapshot()) > 0 })
	if err := d.Run(context.Background(), nil, &recLogger{}); err == nil {
		t.Error("second concurrent Run accepted")
	}
	if err := d.Restore([]byte(`{}`)); err == nil || !strings.Contains(err.Error(), "running") {
		t.Errorf("Restore while running: %v", err)
	}
	ctl <- meshos.Control{Kind: meshos.CtlShutdown}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestControlEventsAreHonouredAndLogged(t *testing.T) {
	for _, tc := range cases() {
		t.Run(tc.name, func(t *testing.T) {
			d := newDaemon(tc.kind, tc.info, testOpts())
			log := &recLogger{}
			ctl := make(chan meshos.Control, 8)
			done := make(chan error, 1)
			go func() { done <- d.Run(context.Background(), ctl, log) }()
			steps := []struct {
				c    meshos.Control
				want string
			}{
				{meshos.Control{Kind: meshos.CtlDrainStart, Grace: 3 * time.Second}, "drain (grace 3s)"},
				{meshos.Control{Kind: meshos.CtlDrainFinish}, "drain over"},
				{meshos.Control{Kind: meshos.CtlBackpressureOn, Level: 0.7}, "backpressure 0.70"},
				{meshos.Control{Kind: meshos.CtlBackpressureOff}, "backpressure off"},
			}
			for _, s := range steps {
				ctl <- s.c
				waitFor(t, s.want, func() bool { return log.contains(s.want) })
			}
			ctl <- meshos.Control{Kind: meshos.CtlShutdown, Grace: time.Second}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestBackpressureAndDrainLowerSaturation compares two identically seeded
// daemons, one under backpressure (or draining), over the same ticks.
func TestBackpressureAndDrainLowerSaturation(t *testing.T) {
	for _, tc := range cases() {
		for _, ev := range []meshos.Control{{Kind: meshos.CtlBackpressureOn, Level: 1}, {Kind: meshos.CtlDrainStart}} {
			t.Run(tc.name+"/"+ev.Kind.String(), func(t *testing.T) {
				free := newDaemon(tc.kind, tc.info, testOpts())
				held := newDaemon(tc.kind, tc.info, testOpts())
				lines, _ := held.control(ev)
				levels := map[api.LogLevel]bool{}
				for _, l := range lines {
					levels[l.level] = true
				}
				if ev.Kind == meshos.CtlBackpressureOn && !levels[api.LevelWarn] {
					t.Errorf("backpressure not logged as a warning: %v", lines)
				}
				var sumFree, sumHeld float64
				for range 200 {
					if _, err := free.advance(1500 * time.Millisecond); err != nil {
						t.Fatal(err)
					}
					if _, err := held.advance(1500 * time.Millisecond); err != nil {
						t.Fatal(err)
					}
					sumFree += free.Saturation()
					sumHeld += held.Saturation()
				}
				if sumHeld >= sumFree*0.9 {
					t.Errorf("%s did not lower saturation: mean %.3f vs %.3f", ev.Kind, sumHeld/200, sumFree/200)
				}
			})
		}
	}
}

func TestLogsUseEveryLevelVariedAndModestly(t *testing.T) {
	const ticks = 4000
	for _, tc := range cases() {
		t.Run(tc.name, func(t *testing.T) {
			d := newDaemon(tc.kind, tc.info, testOpts())
			lines := simulate(t, d, ticks, DefaultTick)
			levels := map[api.LogLevel]int{}
			distinct := map[string]bool{}
			for _, l := range lines {
				levels[l.level]++
				distinct[l.text] = true
			}
			// A warm standby is quiet by design: it has nothing to report
			// at info level until it is promoted.
			want := []api.LogLevel{api.LevelTrace, api.LevelDebug, api.LevelInfo, api.LevelWarn, api.LevelError}
			if tc.name == "trainer-warm" {
				want = []api.LogLevel{api.LevelTrace, api.LevelDebug, api.LevelWarn, api.LevelError}
			}
			for _, l := range want {
				if levels[l] == 0 {
					t.Errorf("no %s lines in %d ticks: %v", l, ticks, levels)
				}
			}
			perTick := float64(len(lines)) / ticks
			if perTick > 1.5 {
				t.Errorf("%.2f lines per tick: too chatty for a 9-node demo", perTick)
			}
			if perTick < 0.2 {
				t.Errorf("%.2f lines per tick: too quiet to watch", perTick)
			}
			if ratio := float64(len(distinct)) / float64(len(lines)); ratio < 0.6 {
				t.Errorf("only %d distinct of %d lines", len(distinct), len(lines))
			}
		})
	}
}

func TestSaturationMovesSmoothlyAndHealthFollows(t *testing.T) {
	for _, tc := range cases() {
		t.Run(tc.name, func(t *testing.T) {
			d := newDaemon(tc.kind, tc.info, testOpts())
			prev, lo, hi := 0.0, 1.0, 0.0
			for i := range 2000 {
				if _, err := d.advance(DefaultTick); err != nil {
					t.Fatal(err)
				}
				s := d.Saturation()
				if s < 0 || s > 1 || math.IsNaN(s) {
					t.Fatalf("saturation %v", s)
				}
				// The 4 s low-pass caps one 1.5 s step at 1-e^(-1.5/4) ≈ 0.31
				// of the gap to the target.
				if i > 0 && math.Abs(s-prev) > 0.32 {
					t.Fatalf("tick %d: saturation jumped %.3f → %.3f", i, prev, s)
				}
				prev, lo, hi = s, min(lo, s), max(hi, s)
				h, why := d.Health()
				switch {
				case s >= UnhealthySaturation && h != snapshot.DaemonUnhealthy:
					t.Fatalf("saturation %.2f but health %s", s, h)
				case s >= DegradedSaturation && h == snapshot.DaemonHealthy:
					t.Fatalf("saturation %.2f but healthy", s)
				case h != snapshot.DaemonHealthy && why == "":
					t.Fatalf("%s without a reason", h)
				}
			}
			if hi-lo < 0.1 {
				t.Errorf("saturation barely moves: %.3f..%.3f", lo, hi)
			}
		})
	}
}

func TestHealthDegradesUnderHighSaturation(t *testing.T) {
	for _, tc := range cases() {
		t.Run(tc.name, func(t *testing.T) {
			d := newDaemon(tc.kind, tc.info, testOpts())
			d.sat.p = satProfile{Base: 1.2} // pinned overload
			simulate(t, d, 40, DefaultTick)
			h, why := d.Health()
			if h != snapshot.DaemonUnhealthy || why == "" {
				t.Errorf("health %s %q at saturation %.2f", h, why, d.Saturation())
			}
			d.sat.p = satProfile{Base: 0.88}
			simulate(t, d, 40, DefaultTick)
			if h, why := d.Health(); h == snapshot.DaemonHealthy || why == "" {
				t.Errorf("health %s %q at saturation %.2f", h, why, d.Saturation())
			}
		})
	}
}

func TestSnapshotRestoreContinuesState(t *testing.T) {
	for _, tc := range cases() {
		t.Run(tc.name, func(t *testing.T) {
			src := newDaemon(tc.kind, tc.info, testOpts())
			simulate(t, src, 600, DefaultTick)
			state, err := src.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			dst := newDaemon(tc.kind, tc.info, Options{Tick: time.Second, Seed: 7})
			if err := dst.Restore(state); err != nil {
				t.Fatal(err)
			}
			again, err := dst.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			if string(again) != string(state) {
				t.Fatalf("restore changed the state:\n%s\n%s", state, again)
			}
			before := progress(t, tc.kind, state)
			if before == 0 && tc.name != "trainer-warm" {
				t.Fatalf("no progress after 600 ticks: %s", state)
			}
			simulate(t, dst, 300, DefaultTick)
			after, _ := dst.Snapshot()
			if got := progress(t, tc.kind, after); got < before || (got == before && tc.name != "trainer-warm") {
				t.Errorf("progress went %d → %d after restore", before, got)
			}
		})
	}
}

// progress is the kind's main monotonic counter, read from a snapshot.
func progress(t *testing.T, kind string, state []byte) uint64 {
	t.Helper()
	var env envelope
	if err := json.Unmarshal(state, &env); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(env.State, &m); err != nil {
		t.Fatal(err)
	}
	key := map[string]string{
		KindInference: "requests", KindTrainer: "step", KindForge: "episodes",
		KindSensor: "frames", KindStage: "fired",
	}[kind]
	if kind == KindDrone {
		return uint64(m["distance"].(float64))
	}
	return uint64(m[key].(float64))
}

func TestTrainerLossFallsAndCheckpoints(t *testing.T) {
	d := newDaemon(KindTrainer, cases()[1].info, testOpts())
	simulate(t, d, 100, DefaultTick)
	early := d.k.(*trainer).s
	lines := simulate(t, d, 6000, DefaultTick)
	late := d.k.(*trainer).s
	if late.LossEMA >= early.LossEMA*0.8 {
		t.Errorf("loss ema %.3f → %.3f: not falling", early.LossEMA, late.LossEMA)
	}
	if late.Checkpoints == 0 || late.LastCheckpoint%CheckpointEverySteps != 0 || late.LastCheckpoint > late.Step {
		t.Errorf("checkpoints %d, last %d, step %d", late.Checkpoints, late.LastCheckpoint, late.Step)
	}
	if d.SyncedThrough() != late.LastCheckpoint {
		t.Errorf("synced through %d, want %d", d.SyncedThrough(), late.LastCheckpoint)
	}
	found := false
	for _, l := range lines {
		found = found || strings.Contains(l.text, fmt.Sprintf("checkpoint step %d saved", late.LastCheckpoint))
	}
	if !found {
		t.Error("last checkpoint not logged")
	}

	// A warm standby restored from the active one holds only what was
	// checkpointed, and does not train.
	state, _ := d.Snapshot()
	warm := newDaemon(KindTrainer, cases()[2].info, testOpts())
	if err := warm.Restore(state); err != nil {
		t.Fatal(err)
	}
	simulate(t, warm, 200, DefaultTick)
	ws := warm.k.(*trainer).s
	if ws.Step != late.LastCheckpoint || warm.SyncedThrough() != late.LastCheckpoint {
		t.Errorf("warm standby at step %d synced %d, want %d", ws.Step, warm.SyncedThrough(), late.LastCheckpoint)
	}
}

func TestForgeForksFromTrainerCheckpoint(t *testing.T) {
	tr := newDaemon(KindTrainer, cases()[1].info, testOpts())
	simulate(t, tr, 3000, DefaultTick)
	state, _ := tr.Snapshot()
	ck := tr.k.(*trainer).s.LastCheckpoint
	f := newDaemon(KindForge, cases()[3].info, testOpts())
	if got := f.k.(*forge).s.PolicyStep; got != ForgeForkAtSeq {
		t.Errorf("fresh fork policy step %d, want %d", got, ForgeForkAtSeq)
	}
	if err := f.Restore(state); err != nil {
		t.Fatal(err)
	}
	if got := f.k.(*forge).s.PolicyStep; got != ck || ck == 0 {
		t.Errorf("fork policy step %d, want trainer checkpoint %d", got, ck)
	}
	simulate(t, f, 2000, DefaultTick)
	fs := f.k.(*forge).s
	if fs.Episodes == 0 || fs.Best <= forgeRewardStart {
		t.Errorf("forge made no progress: %+v", fs)
	}
}

func TestDroneFliesRouteAndReturnsOnLowBattery(t *testing.T) {
	d := newDaemon(KindDrone, cases()[5].info, Options{Tick: time.Second, Seed: 3})
	lines := simulate(t, d, 3000, DefaultTick)
	var reached, rtb, landed, launched bool
	for _, l := range lines {
		reached = reached || strings.HasPrefix(l.text, "waypoint ")
		rtb = rtb || strings.Contains(l.text, "returning to base")
		landed = landed || strings.HasPrefix(l.text, "landed on pad")
		launched = launched || strings.Contains(l.text, "launching")
	}
	if !reached || !rtb || !landed || !launched {
		t.Errorf("drone cycle incomplete: waypoint %v rtb %v landed %v relaunch %v", reached, rtb, landed, launched)
	}
	s := d.k.(*drone).s
	if s.Battery < 0 || s.Battery > 100 || s.Sorties < 2 {
		t.Errorf("battery %.1f sorties %d", s.Battery, s.Sorties)
	}
}

func TestStageRunsCueListAndResets(t *testing.T) {
	d := newDaemon(KindStage, cases()[6].info, testOpts())
	lines := simulate(t, d, 1500, DefaultTick)
	gos, complete := 0, 0
	for _, l := range lines {
		if strings.HasPrefix(l.text, "GO ") {
			gos++
		}
		if strings.Contains(l.text, "complete:") {
			complete++
		}
	}
	s := d.k.(*stage).s
	if gos == 0 || complete == 0 || s.Show < 2 || uint64(gos) != s.Fired {
		t.Errorf("gos %d complete %d show %d fired %d", gos, complete, s.Show, s.Fired)
	}
}

func TestCrashLoopSwitch(t *testing.T) {
	tc := cases()[0]
	tc.info.ID = "inference/crash-test"
	facts, _ := FactoriesWith(testOpts())
	SetCrashLoop(tc.info.ID, true)
	defer SetCrashLoop(tc.info.ID, false)
	if !slices.Contains(CrashLoops(), tc.info.ID) || !CrashLooping(tc.info.ID) {
		t.Fatal("switch not recorded")
	}
	for range 3 {
		log := &recLogger{}
		err := facts[tc.kind](tc.info).Run(context.Background(), make(chan meshos.Control), log)
		if err == nil || !strings.Contains(err.Error(), "crash-loop") {
			t.Fatalf("Run under crash loop: %v", err)
		}
		if lines := log.snapshot(); len(lines) == 0 || lines[len(lines)-1].level != api.LevelError {
			t.Errorf("crash not logged as an error: %v", lines)
		}
	}
	SetCrashLoop(tc.info.ID, false)
	if CrashLooping(tc.info.ID) {
		t.Fatal("switch stuck on")
	}

	// Off: the daemon runs; switching on while running crashes it.
	d := facts[tc.kind](tc.info)
	done := make(chan error, 1)
	log := &recLogger{}
	go func() { done <- d.Run(context.Background(), make(chan meshos.Control), log) }()
	waitFor(t, "running", func() bool { return len(log.snapshot()) >= 3 })
	select {
	case err := <-done:
		t.Fatalf("Run ended early: %v", err)
	default:
	}
	SetCrashLoop(tc.info.ID, true)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "crash-loop") {
			t.Fatalf("running daemon under crash loop: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("running daemon ignored the crash-loop switch")
	}
}

func TestSpontaneousCrashes(t *testing.T) {
	tc := cases()[4]
	// One crash per simulated second on average: a run of 100 ticks
	// essentially always crashes.
	d := newDaemon(tc.kind, tc.info, Options{Tick: time.Second, CrashesPerHour: 3600, Seed: 1})
	crashed := false
	for range 100 {
		lines, err := d.advance(time.Second)
		if err != nil {
			crashed = true
			if last := lines[len(lines)-1]; last.level != api.LevelError || !strings.HasPrefix(last.text, "fatal: ") {
				t.Errorf("crash logged as %v", last)
			}
			break
		}
	}
	if !crashed {
		t.Error("no crash at 3600/hour over 100 s")
	}
	quiet := newDaemon(tc.kind, tc.info, Options{Tick: time.Second, Seed: 1})
	for range 5000 {
		if _, err := quiet.advance(time.Second); err != nil {
			t.Fatalf("crash with crashes disabled: %v", err)
		}
	}

	// Through Run, a crash is an error return.
	facts, _ := FactoriesWith(Options{Tick: 2 * time.Millisecond, CrashesPerHour: 3600 * 1000, Seed: 5})
	err := facts[tc.kind](tc.info).Run(context.Background(), nil, &recLogger{})
	if err == nil || !strings.Contains(err.Error(), "crashed") {
		t.Errorf("Run did not crash: %v", err)
	}
}

func TestRestoreRejectsBadState(t *testing.T) {
	good := func(kind string, info meshos.DaemonInfo) []byte {
		d := newDaemon(kind, info, testOpts())
		simulate(t, d, 50, DefaultTick)
		b, err := d.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	inf := cases()[0]
	drone := cases()[5]
	stage := cases()[6]
	sensor := cases()[4]
	tr := cases()[1]
	infState := good(inf.kind, inf.info)
	mutate := func(b []byte, f func(m map[string]any)) []byte {
		var env envelope
		if err := json.Unmarshal(b, &env); err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		json.Unmarshal(env.State, &m)
		f(m)
		env.State, _ = json.Marshal(m)
		out, _ := json.Marshal(env)
		return out
	}
	tests := []struct {
		name  string
		tc    testCase
		state []byte
	}{
		{"empty", inf, nil},
		{"garbage", inf, []byte("\x00\xff not json")},
		{"trailing", inf, append(slices.Clone(infState), []byte(" {}")...)},
		{"wrong version", inf, []byte(strings.Replace(string(infState), `"v":1`, `"v":2`, 1))},
		{"unknown envelope field", inf, []byte(strings.Replace(string(infState), `"v":1`, `"v":1,"x":1`, 1))},
		{"wrong kind", stage, infState},
		{"unknown state field", inf, mutate(infState, func(m map[string]any) { m["extra"] = 1 })},
		{"kv cache above 1", inf, mutate(infState, func(m map[string]any) { m["kv_cache"] = 1.5 })},
		{"negative counter", inf, mutate(infState, func(m map[string]any) { m["requests"] = -1 })},
		{"oversized", inf, make([]byte, MaxStateBytes+1)},
		{"drone next out of route", drone, mutate(good(drone.kind, drone.info), func(m map[string]any) { m["next"] = 99 })},
		{"drone empty route", drone, mutate(good(drone.kind, drone.info), func(m map[string]any) { m["route"] = []any{} })},
		{"drone battery", drone, mutate(good(drone.kind, drone.info), func(m map[string]any) { m["battery"] = 140 })},
		{"drone phase", drone, mutate(good(drone.kind, drone.info), func(m map[string]any) { m["phase"] = "warp" })},
		{"stage next", stage, mutate(good(stage.kind, stage.info), func(m map[string]any) { m["next"] = -1 })},
		{"sensor drift count", sensor, mutate(good(sensor.kind, sensor.info), func(m map[string]any) { m["drift"] = []any{0.1} })},
		{"sensor channel", sensor, mutate(good(sensor.kind, sensor.info), func(m map[string]any) { m["last_channel"] = 8 })},
		{"trainer checkpoint ahead", tr, mutate(good(tr.kind, tr.info), func(m map[string]any) { m["last_checkpoint"] = 1e12 })},
		{"trainer loss zero", tr, mutate(good(tr.kind, tr.info), func(m map[string]any) { m["loss"] = 0 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDaemon(tt.tc.kind, tt.tc.info, testOpts())
			before, _ := d.Snapshot()
			if err := d.Restore(tt.state); err == nil {
				t.Fatal("bad state accepted")
			}
			after, _ := d.Snapshot()
			if string(before) != string(after) {
				t.Error("failed restore changed the daemon")
			}
		})
	}
	d := newDaemon(stage.kind, stage.info, testOpts())
	if err := d.Restore(infState); !errors.Is(err, errWrongKind) {
		t.Errorf("wrong kind error %v", err)
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	facts, _ := FactoriesWith(testOpts())
	var wg sync.WaitGroup
	var ctls []chan meshos.Control
	var cancels []context.CancelFunc
	for i := range 3 {
		for _, tc := range cases() {
			tc.info.ID = fmt.Sprintf("%s#%d", tc.info.ID, i)
			ctl := make(chan meshos.Control, 1)
			ctx, cancel := context.WithCancel(context.Background())
			ctls, cancels = append(ctls, ctl), append(cancels, cancel)
			d := facts[tc.kind](tc.info)
			wg.Add(1)
			go func() {
				defer wg.Done()
				d.Run(ctx, ctl, &recLogger{})
			}()
		}
	}
	time.Sleep(50 * time.Millisecond)
	// Half stop by Shutdown, half by cancel.
	for i := range ctls {
		if i%2 == 0 {
			ctls[i] <- meshos.Control{Kind: meshos.CtlShutdown}
		} else {
			cancels[i]()
		}
	}
	wg.Wait()
	for _, c := range cancels {
		c()
	}
	waitFor(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
}

func TestCrashLoopsListSorted(t *testing.T) {
	ids := []string{"z-test", "a-test", "m-test"}
	for _, id := range ids {
		SetCrashLoop(id, true)
		defer SetCrashLoop(id, false)
	}
	got := CrashLoops()
	if !sort.StringsAreSorted(got) {
		t.Errorf("not sorted: %v", got)
	}
	for _, id := range ids {
		if !slices.Contains(got, id) {
			t.Errorf("%s missing from %v", id, got)
		}
	}
}

// BenchmarkAdvance measures one simulation tick per kind: the per-tick cost
// that, times eleven daemons at one tick per 1.5 s, is the demo's idle
// workload CPU.
func BenchmarkAdvance(b *testing.B) {
	for _, tc := range cases() {
		b.Run(tc.name, func(b *testing.B) {
			d := newDaemon(tc.kind, tc.info, testOpts())
			b.ReportAllocs()
			for b.Loop() {
				d.advance(DefaultTick)
			}
		})
	}
}

// Distinct seeds give distinct content: forks' rollouts of one batch and
// checkpoints 256 steps apart are different blobs, not one under two names.
func TestBlobBytesDistinctPerSeed(t *testing.T) {
	seen := map[string]uint64{}
	for _, seed := range []uint64{0, 1, 256, 1 << 24, 1 << 32, 1 << 48, 1<<48 | 2, 2<<48 | 2, 37, 37 + 256} {
		k := string(blobBytes(seed, 64))
		if other, dup := seen[k]; dup {
			t.Fatalf("seeds %d and %d give the same bytes", other, seed)
		}
		seen[k] = seed
	}
	if !bytes.Equal(blobBytes(7, 64), blobBytes(7, 64)) {
		t.Fatal("the same seed gave different bytes")
	}
}
