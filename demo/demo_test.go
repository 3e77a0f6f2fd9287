package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deck-mesh/deck/demo/workloads"
	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/meshos"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/node/transport"
)

// Timeouts of the live tests: generous for a loaded 2-core box; the
// figures the tests assert are tighter and measured, not these.
const (
	readyTimeout     = 30 * time.Second
	steadyRun        = 10 * time.Second
	detectTimeout    = 15 * time.Second
	maxDetection     = 5 * time.Second // asserted: kill to Unreachable, as the console saw it (issue 7)
	minDetection     = 2 * time.Second // below this the detector is measuring something else
	replaceTimeout   = 30 * time.Second
	reconvergeTimout = 45 * time.Second
)

// shared is the 9-node demo the live subtests share, with its console.
var shared struct {
	once    sync.Once
	d       *Demo
	console *node.Node
	startup time.Duration // Start to Ready
	err     error
}

func TestMain(m *testing.M) {
	RunMemberIfChild() // the --procs test re-executes this binary as its nodes
	code := m.Run()
	if shared.d != nil {
		shared.d.Close()
	}
	os.Exit(code)
}

func sharedDemo(t *testing.T) (*Demo, *node.Node) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a 9-node demo")
	}
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
		defer cancel()
		start := time.Now()
		d, err := Start(ctx, Options{Version: "test"})
		if err != nil {
			shared.err = err
			return
		}
		shared.d = d
		if shared.console, err = d.Console(ctx); err != nil {
			shared.err = err
			return
		}
		if err := d.WaitReady(ctx); err != nil {
			shared.err = err
			return
		}
		shared.startup = time.Since(start)
	})
	if shared.err != nil {
		t.Fatalf("shared demo: %v", shared.err)
	}
	return shared.d, shared.console
}

// TestDemo runs the live scenarios on one shared 9-node demo, in order:
// each leaves the mesh whole (every node running, faults healed) for the
// next, except kill, whose victim control restarts.
func TestDemo(t *testing.T) {
	d, console := sharedDemo(t)
	t.Logf("9 nodes ready after %v", shared.startup)
	var victim *member
	t.Run("steady", func(t *testing.T) { testSteady(t, d, console) })
	t.Run("kill", func(t *testing.T) { testKill(t, d, console, &victim) })
	t.Run("control", func(t *testing.T) { testControl(t, d, victim) })
	t.Run("partition-heal", func(t *testing.T) { testPartitionHeal(t, d, console) })
	t.Run("dataforts", func(t *testing.T) { testDataforts(t, d, console) })
}

// blobTimeout bounds the waits on the workloads' blobs: a checkpoint every
// 10 s, rollouts every 15 s once a fork has taken a policy, the tight
// datafort full within about a minute.
const blobTimeout = 2 * time.Minute

// testDataforts: the trainer's checkpoints are blobs, each derived from
// the one before, and the forge's rollouts are derived from a checkpoint;
// a chunk rotted on a holder's disk (corrupt-chunk) is detected when the
// blob is read through that holder and repaired from another replica; and
// fill-disk leaves the store full until heal gives its budget back.
func testDataforts(t *testing.T, d *Demo, console *node.Node) {
	byHash := func(cs *snapshot.ClusterSnapshot) map[[32]byte]snapshot.BlobView {
		out := map[[32]byte]snapshot.BlobView{}
		for _, b := range cs.Blobs {
			out[b.Hash] = b
		}
		return out
	}
	derived := func(prefix string) bool {
		all := byHash(console.Cluster())
		for _, b := range all {
			if p, ok := all[b.Parent]; ok && strings.HasPrefix(b.Name, prefix) && strings.HasPrefix(p.Name, workloads.CheckpointBlobPrefix) {
				return true
			}
		}
		return false
	}
	waitFor(t, "a checkpoint blob derived from the previous checkpoint", blobTimeout, func() bool { return derived(workloads.CheckpointBlobPrefix) })
	waitFor(t, "a rollout blob derived from a checkpoint", blobTimeout, func() bool { return derived("forge-") })
	var tight *member
	for _, m := range d.members {
		if blobBudget(m.idx, len(d.members)) == TightBudgetBytes {
			tight = m
		}
	}
	waitFor(t, tight.label+" (tight budget) at its high-water mark", blobTimeout, func() bool {
		nv := console.Cluster().Node(tight.key.ID)
		return nv != nil && (nv.Datafort.Overflow != snapshot.OverflowNone || nv.Datafort.Used*10 >= nv.Datafort.Capacity*9)
	})

	// corrupt-chunk on a datafort holding a replicated blob.
	var victim *member
	waitFor(t, "a datafort holding a blob another one also holds", blobTimeout, func() bool {
		for _, m := range upMembers(d) {
			if _, err := d.corruptTarget(m); err == nil && m.node != nil {
				victim = m
				return true
			}
		}
		return false
	})
	ctx, cancel := context.WithTimeout(context.Background(), blobTimeout)
	defer cancel()
	if err := d.Inject(ctx, api.Fault{Kind: api.FaultCorruptChunk, Nodes: []identity.NodeID{victim.key.ID}}); err != nil {
		t.Fatalf("corrupt-chunk on %s: %v", victim.label, err)
	}
	st := victim.node.Blobs().Stats()
	if st.Store.Corrupt == 0 || st.Repaired == 0 {
		t.Fatalf("%s after the read: %d corrupt chunks found, %d repaired", victim.label, st.Store.Corrupt, st.Repaired)
	}
	waitFor(t, "the repair in the console's DATAFORTS view", detectTimeout, func() bool {
		nv := console.Cluster().Node(victim.key.ID)
		return nv != nil && nv.Datafort.Errors > 0 && nv.Datafort.Repaired > 0
	})
	if a := d.Active(); slices.ContainsFunc(a, func(f api.Fault) bool { return f.Kind == api.FaultCorruptChunk }) {
		t.Errorf("corrupt-chunk left in force: %v", a)
	}

	// fill-disk, then heal.
	if err := d.Inject(ctx, api.Fault{Kind: api.FaultFillDisk, Nodes: []identity.NodeID{victim.key.ID}}); err != nil {
		t.Fatalf("fill-disk on %s: %v", victim.label, err)
	}
	waitFor(t, "the filled store full in the console's view", detectTimeout, func() bool {
		nv := console.Cluster().Node(victim.key.ID)
		return nv != nil && nv.Datafort.Overflow == snapshot.OverflowFull
	})
	if err := d.Inject(ctx, api.Fault{Kind: api.FaultHeal}); err != nil {
		t.Fatal(err)
	}
	if u := victim.node.Blobs().Store().Usage(); u.Budget != blobBudget(victim.idx, len(d.members)) {
		t.Fatalf("after heal %s's budget is %d, want its own %d", victim.label, u.Budget, blobBudget(victim.idx, len(d.members)))
	}
}

// testSteady: 10 s of an undisturbed demo. Every node stays Healthy, every
// daemon of workloads.Spec() runs on exactly one node, every chain is held
// by exactly its desired number of nodes.
func testSteady(t *testing.T, d *Demo, console *node.Node) {
	end := time.Now().Add(steadyRun)
	flaps := map[string]string{}
	for time.Now().Before(end) {
		cs := console.Cluster()
		for _, p := range nodeProblems(cs, upMembers(d)) {
			flaps[p] = time.Now().Format("15:04:05.000")
		}
		time.Sleep(250 * time.Millisecond)
	}
	if len(flaps) > 0 {
		t.Errorf("nodes not Healthy during the steady run (problem → last seen): %v", flaps)
	}
	cs := console.Cluster()
	if p := nodeProblems(cs, upMembers(d)); len(p) > 0 {
		t.Fatalf("after %v: %s", steadyRun, strings.Join(p, "; "))
	}
	if got := len(liveDemoNodes(cs)); got != DefaultNodes {
		t.Errorf("console sees %d live demo nodes, want %d", got, DefaultNodes)
	}
	// Placement settles within the run: no grace beyond it.
	if p := placementProblems(cs); len(p) > 0 {
		logView(t, cs)
		t.Fatalf("after %v daemons not placed: %s", steadyRun, strings.Join(p, "; "))
	}
	spreadCheck(t, cs)
	checkChains(t, d, console, 0)
}

// testKill kills the node running the most daemons and checks that the
// console sees it Unreachable, that the detector measured that plausibly,
// and that its daemons come back on the others.
func testKill(t *testing.T, d *Demo, console *node.Node, killed **member) {
	cs := console.Cluster()
	victim := busiest(d, cs)
	had := daemonsOn(cs, victim.key.ID)
	t.Logf("killing %s (daemons %v)", victim.label, had)
	killedAt := time.Now()
	if err := d.Inject(context.Background(), api.Fault{Kind: api.FaultKill, Nodes: []identity.NodeID{victim.key.ID}}); err != nil {
		t.Fatal(err)
	}
	*killed = victim // control restarts it, whatever happens here
	waitFor(t, victim.label+" Unreachable on the console", detectTimeout, func() bool {
		nv := console.Cluster().Node(victim.key.ID)
		return nv != nil && nv.Health == snapshot.Unreachable
	})
	seen := time.Since(killedAt)
	t.Logf("console saw %s Unreachable %v after the kill (transport.UnreachableAfter %v)", victim.label, seen, transport.UnreachableAfter)

	// The detector polls on its own: give it one more poll.
	var det Detection
	waitFor(t, "the detector's record of the kill", time.Second, func() bool {
		var ok bool
		det, ok = detectionOf(d, api.FaultKill, victim.key.ID, killedAt)
		return ok && !det.UnreachableAt.IsZero()
	})
	unreach := det.UnreachableAt.Sub(det.InjectedAt)
	t.Logf("detector: %s after %v, unreachable after %v", det.SeenAs, det.DetectedAt.Sub(det.InjectedAt), unreach)
	if unreach < minDetection || unreach > maxDetection {
		t.Errorf("detector measured kill → Unreachable in %v, want %v..%v", unreach, minDetection, maxDetection)
	}
	if det.DetectedAt.IsZero() || det.DetectedAt.After(det.UnreachableAt) || det.DetectedAt.Sub(det.InjectedAt) < minDetection/2 {
		t.Errorf("detector: first non-Healthy at %v after the kill, Unreachable at %v: implausible",
			det.DetectedAt.Sub(det.InjectedAt), unreach)
	}

	// Re-placement: every daemon back, on live nodes only.
	waitFor(t, "the victim's daemons re-placed", replaceTimeout, func() bool {
		return len(placementProblems(console.Cluster())) == 0
	})
	cs = console.Cluster()
	t.Logf("every daemon running again, on live nodes, %v after the kill", time.Since(killedAt))
	for _, id := range had {
		if on := runningOn(cs, id); len(on) != 1 || on[0] == victim.label {
			t.Errorf("%s runs on %v after %s was killed", id, on, victim.label)
		}
	}
	checkChains(t, d, console, replaceTimeout)
}

// testControl drives the control socket the way `deck demo fault` does:
// errors come back with the CLI's exit codes, kill/restart/heal round-trip
// and the active-fault list follows.
func testControl(t *testing.T, d *Demo, killed *member) {
	ctx := context.Background()
	sock := filepath.Join(d.StateDir(), ControlSocket)
	bad := []struct {
		name string
		req  FaultRequest
		code int
		msg  string
	}{
		{"unknown kind", FaultRequest{Kind: "explode", Nodes: []string{"node-2"}}, api.ExitInvalid, `unknown fault "explode"`},
		{"unknown node", FaultRequest{Kind: api.FaultKill, Nodes: []string{"node-99"}}, api.ExitNotFound, `"node-99" is not a demo node`},
		{"unknown peer", FaultRequest{Kind: api.FaultPartition, Nodes: []string{"1"}, Peers: []string{"0x00"}}, api.ExitNotFound, "not a demo node"},
		{"no node", FaultRequest{Kind: api.FaultPause}, api.ExitInvalid, "needs at least one node"},
		{"slow without delay or loss", FaultRequest{Kind: api.FaultSlow, Nodes: []string{"2"}}, api.ExitInvalid, "needs a delay or a loss"},
		{"loss out of range", FaultRequest{Kind: api.FaultSlow, Nodes: []string{"2"}, Loss: 2}, api.ExitInvalid, "loss"},
		{"crashloop without daemon", FaultRequest{Kind: api.FaultCrashLoop}, api.ExitInvalid, "needs a daemon id"},
	}
	if killed != nil {
		bad = append(bad,
			struct {
				name string
				req  FaultRequest
				code int
				msg  string
			}{"kill a killed node", FaultRequest{Kind: api.FaultKill, Nodes: []string{killed.label}}, api.ExitInvalid, "already killed"},
			struct {
				name string
				req  FaultRequest
				code int
				msg  string
			}{"pause a killed node", FaultRequest{Kind: api.FaultPause, Nodes: []string{killed.label}}, api.ExitInvalid, "restart it first"})
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			before := d.Active()
			resp, err := SendFault(ctx, sock, tt.req)
			var re *RemoteError
			if !errors.As(err, &re) {
				t.Fatalf("SendFault = %+v, %v; want a RemoteError", resp, err)
			}
			if re.ExitCode() != tt.code || !strings.Contains(re.Error(), tt.msg) {
				t.Errorf("error %q code %d, want code %d mentioning %q", re.Error(), re.ExitCode(), tt.code, tt.msg)
			}
			if !slices.EqualFunc(before, d.Active(), faultEqual) {
				t.Errorf("a refused request changed the active faults: %v → %v", before, d.Active())
			}
		})
	}
	t.Run("malformed request", func(t *testing.T) {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintln(c, `{"kind": 7`)
		buf := make([]byte, 512)
		n, _ := c.Read(buf)
		if got := string(buf[:n]); !strings.Contains(got, `"code":2`) || !strings.Contains(got, "bad request") {
			t.Errorf("response %q, want a bad request with code 2", got)
		}
	})
	t.Run("no demo", func(t *testing.T) {
		_, err := SendFault(ctx, filepath.Join(t.TempDir(), ControlSocket), FaultRequest{Kind: api.FaultHeal})
		if api.ExitCode(err) != api.ExitNotConnected {
			t.Errorf("SendFault to no demo = %v (code %d), want not connected", err, api.ExitCode(err))
		}
	})

	t.Run("kill restart heal", func(t *testing.T) {
		target := d.members[len(d.members)-1]
		if target == killed {
			target = d.members[len(d.members)-2]
		}
		send := func(req FaultRequest) FaultResponse {
			t.Helper()
			resp, err := SendFault(ctx, sock, req)
			if err != nil {
				t.Fatalf("%s %v: %v", req.Kind, req.Nodes, err)
			}
			return resp
		}
		resp := send(FaultRequest{Kind: api.FaultKill, Nodes: []string{target.key.ID.String()}}) // by id
		if !slices.Contains(resp.Active, "kill "+target.label) {
			t.Errorf("after kill: active %q, want it to list %q", resp.Active, "kill "+target.label)
		}
		if len(d.Nodes()) != DefaultNodes-1-btoi(killed != nil) {
			t.Errorf("%d nodes running after the kill", len(d.Nodes()))
		}
		restart := []string{fmt.Sprint(target.idx + 1)} // by index
		if killed != nil {
			restart = append(restart, killed.label) // by label: the kill test's victim
		}
		resp = send(FaultRequest{Kind: api.FaultRestart, Nodes: restart})
		for _, a := range resp.Active {
			if strings.HasPrefix(a, "kill ") {
				t.Errorf("after restart: still active %q", a)
			}
		}
		if _, err := SendFault(ctx, sock, FaultRequest{Kind: api.FaultRestart, Nodes: []string{target.label}}); remoteCode(err) != api.ExitInvalid {
			t.Errorf("restart of a running node: %v, want invalid", err)
		}
		send(FaultRequest{Kind: api.FaultSlow, Nodes: []string{"node-1"}, DelayMs: 20})
		resp = send(FaultRequest{Kind: api.FaultHeal})
		if len(resp.Active) != 0 || len(d.Active()) != 0 {
			t.Errorf("after heal: active %q", resp.Active)
		}
		rctx, cancel := context.WithTimeout(ctx, readyTimeout)
		defer cancel()
		if err := d.WaitReady(rctx); err != nil {
			t.Fatal(err)
		}
		if got := len(d.Nodes()); got != DefaultNodes {
			t.Errorf("%d nodes running after restart, want %d", got, DefaultNodes)
		}
	})
}

// testPartitionHeal cuts the busiest node off from everyone (the console
// stays with the majority), waits for the majority to run its daemons,
// heals, and checks the mesh reconverges: every node Healthy, every daemon
// on exactly one node again (the cut-off node ran its own copies meanwhile).
func testPartitionHeal(t *testing.T, d *Demo, console *node.Node) {
	ctx := context.Background()
	rctx, cancel := context.WithTimeout(ctx, reconvergeTimout)
	defer cancel()
	if err := d.WaitReady(rctx); err != nil {
		t.Fatalf("before the partition: %v", err)
	}
	waitFor(t, "placement before the partition", replaceTimeout, func() bool { return len(placementProblems(console.Cluster())) == 0 })
	cs := console.Cluster()
	cut := busiest(d, cs)
	t.Logf("partitioning %s (daemons %v) from every other node", cut.label, daemonsOn(cs, cut.key.ID))
	if err := d.Inject(ctx, api.Fault{Kind: api.FaultPartition, Nodes: []identity.NodeID{cut.key.ID}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, cut.label+" Unreachable on the console", detectTimeout, func() bool {
		nv := console.Cluster().Node(cut.key.ID)
		return nv != nil && nv.Health == snapshot.Unreachable
	})
	waitFor(t, "the majority running every daemon", replaceTimeout, func() bool {
		return len(placementProblems(console.Cluster())) == 0
	})
	// The cut-off node, alone, sees everyone else gone: it should run its
	// own copy of everything it can host, which heal must resolve.
	healed := time.Now()
	if err := d.Inject(ctx, api.Fault{Kind: api.FaultHeal}); err != nil {
		t.Fatal(err)
	}
	if err := d.WaitReady(rctx); err != nil {
		t.Fatalf("after heal: %v", err)
	}
	waitFor(t, "one copy of every daemon after heal", reconvergeTimout, func() bool {
		return len(placementProblems(console.Cluster())) == 0
	})
	t.Logf("reconverged (nodes Healthy, one copy of every daemon) %v after heal", time.Since(healed))
	checkChains(t, d, console, reconvergeTimout)
}

// checkChains waits up to grace for every chain to be held by exactly its
// desired number of live nodes; a chain under or over its count fails.
func checkChains(t *testing.T, d *Demo, console *node.Node, grace time.Duration) {
	t.Helper()
	deadline := time.Now().Add(grace)
	var p []string
	for {
		p = chainProblems(d.Unsettled())
		if len(p) == 0 {
			return
		}
		if !time.Now().Before(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	logView(t, console.Cluster())
	t.Fatalf("chains: %s", strings.Join(p, "; "))
}

func chainProblems(all []string) []string {
	var out []string
	for _, s := range all {
		if strings.HasPrefix(s, "chain ") || strings.Contains(s, " replica of ") {
			out = append(out, s)
		}
	}
	return out
}

// placementProblems is settleProblems restricted to daemons: every daemon of
// the demo's workload running on exactly one live demo node.
func placementProblems(cs *snapshot.ClusterSnapshot) []string {
	var out []string
	for _, s := range settleProblems(cs, nil, workloads.Spec()) {
		if !strings.HasPrefix(s, "chain ") && !strings.Contains(s, " replica of ") {
			out = append(out, s)
		}
	}
	return out
}

// spreadCheck logs how each replica or standby group is spread; putting
// every member of a group on one node defeats the group. It logs rather
// than fails: spreading is MeshOS policy the spec does not promise yet.
func spreadCheck(t *testing.T, cs *snapshot.ClusterSnapshot) {
	for _, g := range workloads.Spec().Groups {
		if g.Kind != snapshot.GroupReplica && g.Kind != snapshot.GroupStandby {
			continue
		}
		hosts := map[string]bool{}
		for i := range specMembers(g) {
			for _, n := range runningOn(cs, meshos.DaemonID(g.Name, i)) {
				hosts[n] = true
			}
		}
		if len(hosts) == 1 && specMembers(g) > 1 {
			t.Logf("NOTE: all %d members of %s (%s) run on one node %v", specMembers(g), g.Name, g.Kind, hosts)
		}
	}
}

func upMembers(d *Demo) []*member {
	_, up := d.observer()
	return up
}

func liveDemoNodes(cs *snapshot.ClusterSnapshot) []*snapshot.NodeView {
	var out []*snapshot.NodeView
	for i := range cs.Nodes {
		if nv := &cs.Nodes[i]; isLive(nv) && !nv.Observer {
			out = append(out, nv)
		}
	}
	return out
}

// busiest is the running member with the most daemons in cs.
func busiest(d *Demo, cs *snapshot.ClusterSnapshot) *member {
	var best *member
	n := -1
	for _, m := range upMembers(d) {
		if c := len(daemonsOn(cs, m.key.ID)); c > n {
			best, n = m, c
		}
	}
	return best
}

func daemonsOn(cs *snapshot.ClusterSnapshot, id identity.NodeID) []string {
	var out []string
	if nv := cs.Node(id); nv != nil {
		for _, dm := range nv.Daemons {
			out = append(out, dm.ID)
		}
	}
	return out
}

func runningOn(cs *snapshot.ClusterSnapshot, daemon string) []string {
	var out []string
	for _, nv := range liveDemoNodes(cs) {
		for _, dm := range nv.Daemons {
			if dm.ID == daemon && (dm.Lifecycle == snapshot.LifecycleRunning || dm.Lifecycle == snapshot.LifecycleStarting) {
				out = append(out, nv.Label)
			}
		}
	}
	return out
}

func detectionOf(d *Demo, kind api.FaultKind, id identity.NodeID, after time.Time) (Detection, bool) {
	_, det := d.detector.results()
	for _, x := range slices.Backward(det) {
		if x.Kind == kind && x.Node == id && !x.InjectedAt.Before(after.Add(-time.Second)) {
			return x, true
		}
	}
	return Detection{}, false
}

func faultEqual(a, b api.Fault) bool {
	return a.Kind == b.Kind && slices.Equal(a.Nodes, b.Nodes) && slices.Equal(a.Peers, b.Peers) &&
		a.Delay == b.Delay && a.Loss == b.Loss && a.Daemon == b.Daemon
}

// remoteCode is the exit code a control-socket error carries.
func remoteCode(err error) int {
	var re *RemoteError
	if errors.As(err, &re) {
		return re.ExitCode()
	}
	return api.ExitCode(err)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			if shared.console != nil {
				logView(t, shared.console.Cluster())
			}
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logView logs the console's view, one line per node.
func logView(t *testing.T, cs *snapshot.ClusterSnapshot) {
	t.Helper()
	for _, nv := range cs.Nodes {
		s := fmt.Sprintf("%-8s %-11s stale=%-5v obs=%-5v caps=%v:", nv.Label, nv.Health, nv.Stale, nv.Observer, nv.Capabilities)
		for _, dm := range nv.Daemons {
			s += fmt.Sprintf(" %s(%s)", dm.ID, dm.Lifecycle)
		}
		s += " |"
		for _, r := range nv.Replicas {
			s += fmt.Sprintf(" %s:%s@%d/t%d", r.Chain, r.Role, r.Seq, r.Term)
		}
		for _, p := range nv.Pending {
			if p.Blocked != "" {
				s += fmt.Sprintf(" [%s held: %s]", p.ID, p.Blocked)
			} else {
				s += fmt.Sprintf(" [%s pending]", p.ID)
			}
		}
		t.Log(s)
	}
}
