package demo

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

// TestProcsDemo runs the demo with every node in a child process (this
// test binary re-executed through RunMemberIfChild): the mesh converges, a
// partition travels down the command pipes (the node goes Unreachable) and
// so does the heal (it is heard again), a kill is a real SIGKILL that the
// console sees as Unreachable and re-places around, and Close stops every
// process and removes the state dir.
func TestProcsDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 4-process demo")
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	d, err := Start(ctx, Options{Nodes: 4, Procs: true, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			d.Close()
		}
	}()
	if len(d.Nodes()) != 0 {
		t.Fatalf("%d in-process nodes with Procs", len(d.Nodes()))
	}
	var procs []*child
	for _, m := range d.members {
		if m.proc == nil || m.proc.pid() == os.Getpid() {
			t.Fatalf("%s is not a child process", m.label)
		}
		procs = append(procs, m.proc)
	}
	console, err := d.Console(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitProcs(t, d, "a converged 4-process mesh", readyTimeout, d.Converged)
	sum := d.Summarize(0, 0)
	if sum.Counters.PacketsIn == 0 || sum.ResidentBytes <= ResidentBytes() {
		t.Errorf("summary does not cover the node processes: packets in %d, resident %d (own %d)",
			sum.Counters.PacketsIn, sum.ResidentBytes, ResidentBytes())
	}

	// A partition is applied inside the children: node-4 cut from every
	// other node and from the console goes Unreachable, then heals.
	cut := d.members[3]
	if err := d.Inject(ctx, api.Fault{Kind: api.FaultPartition, Nodes: []identity.NodeID{cut.key.ID}}); err != nil {
		t.Fatal(err)
	}
	waitProcs(t, d, cut.label+" Unreachable behind the partition", detectTimeout, func() bool {
		nv := console.Cluster().Node(cut.key.ID)
		return nv != nil && nv.Health == snapshot.Unreachable
	})
	if err := d.Inject(ctx, api.Fault{Kind: api.FaultHeal}); err != nil {
		t.Fatal(err)
	}
	// The heal reached the children: the node is heard again. (Full
	// reconvergence after a partition is testPartitionHeal's subject; here
	// it would only repeat it, at four processes' cost on a loaded box.)
	waitProcs(t, d, cut.label+" Healthy again after heal", reconvergeTimout, func() bool {
		nv := console.Cluster().Node(cut.key.ID)
		return nv != nil && nv.Health == snapshot.Healthy && !nv.Stale
	})

	// A kill is SIGKILL: the process is gone, the console sees it, and its
	// daemons move to the survivors.
	victim := busiest(d, console.Cluster())
	vp := victim.proc
	if err := d.Inject(ctx, api.Fault{Kind: api.FaultKill, Nodes: []identity.NodeID{victim.key.ID}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-vp.done:
	default:
		t.Fatalf("%s's process still runs after the kill", victim.label)
	}
	if st := vp.cmd.ProcessState; st == nil || st.Exited() {
		t.Fatalf("%s's process ended by exiting, not by SIGKILL: %v", victim.label, st)
	}
	waitProcs(t, d, victim.label+" Unreachable after SIGKILL", detectTimeout, func() bool {
		nv := console.Cluster().Node(victim.key.ID)
		return nv != nil && nv.Health == snapshot.Unreachable
	})
	waitProcs(t, d, "the victim's daemons re-placed", replaceTimeout, func() bool {
		return len(placementProblems(console.Cluster())) == 0
	})

	state := d.StateDir()
	closed = true
	if err := d.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	for i, c := range procs {
		select {
		case <-c.done:
		default:
			t.Errorf("node-%d's process still runs after Close", i+1)
		}
	}
	if _, err := os.Stat(filepath.Join(state, ClusterFile)); !os.IsNotExist(err) {
		t.Errorf("temporary state dir left behind: %v", err)
	}
}

// waitProcs is waitFor for this test's own demo: on a timeout it logs this
// demo's view and what keeps it unsettled (waitFor logs the shared demo's).
func waitProcs(t *testing.T, d *Demo, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			if obs, _ := d.observer(); obs != nil {
				logView(t, obs.Cluster())
			}
			t.Fatalf("timed out after %v waiting for %s; unsettled: %v", timeout, what, d.Unsettled())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
