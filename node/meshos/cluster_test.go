package meshos

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/snapshot"
)

// clusterSpec is a small workload of every group kind, with chains.
func clusterSpec() Spec {
	return Spec{Groups: []GroupSpec{
		{Name: "solo", Kind: snapshot.GroupSolo, DaemonKind: "counter", Members: 1, ChainReplicas: 2, Load: 0.1},
		{Name: "rep", Kind: snapshot.GroupReplica, DaemonKind: "counter", Members: 3, ChainReplicas: 3, Load: 0.1},
		{Name: "stby", Kind: snapshot.GroupStandby, DaemonKind: "counter", Members: 2, ChainReplicas: 2, Load: 0.1},
		{Name: "fork", Kind: snapshot.GroupFork, DaemonKind: "counter", Members: 2, Parent: "rep", ForkAt: 3, Load: 0.05},
	}}
}

// busiest picks the node running the most daemons (ties: lowest id).
func (c *cluster) busiest() NodeID {
	var best NodeID
	n := -1
	for _, id := range c.live() {
		s := c.node(id)
		if k := len(s.Daemons) + len(s.Replicas); k > n {
			best, n = id, k
		}
	}
	return best
}

func TestClusterConverges(t *testing.T) {
	c := newCluster(t, 5, clusterSpec())
	c.waitFor("convergence", c.settled)
	a := c.rts[c.ids[0]].Assignment()
	if len(a.Unplaced) != 0 {
		t.Fatalf("unplaced: %v", a.Unplaced)
	}
	// Chains replicate: followers reach the leader's seq as daemons work.
	c.waitFor("chain replication", func() bool {
		for name, cp := range a.Chains {
			var lead uint64
			var seqs []uint64
			for _, id := range cp.Holders {
				for _, r := range c.node(id).Replicas {
					if r.Chain == name {
						if r.Role == snapshot.Leader {
							lead = r.Seq
						}
						seqs = append(seqs, r.Seq)
					}
				}
			}
			if lead < 3 || slices.Min(seqs) == 0 {
				return false
			}
		}
		return true
	})
	// Exactly one standby member is active.
	active := 0
	for _, id := range c.live() {
		for _, d := range c.node(id).Daemons {
			if d.Lineage.Kind == snapshot.GroupStandby && d.Lineage.Active {
				active++
			}
		}
	}
	if active != 1 {
		t.Fatalf("%d active standby members", active)
	}
}

func TestDrainAndExitMaintenance(t *testing.T) {
	c := newCluster(t, 5, clusterSpec())
	c.waitFor("convergence", c.settled)
	x := c.busiest()
	before := map[string]uint64{}
	for _, d := range c.node(x).Daemons {
		c.waitFor("daemon counting", func() bool { return c.count(d.ID) > 20 })
		before[d.ID] = c.count(d.ID)
	}
	if len(before) == 0 {
		t.Fatal("busiest node runs nothing")
	}
	c.editNode(x, func(ni *NodeIntent) {
		ni.Maintenance, ni.MaintGen, ni.DrainDeadline = MaintIntentEnter, 1, time.Now().Add(time.Minute)
	})
	c.waitFor("maintenance", func() bool { return c.node(x).Maintenance.State == snapshot.MaintMaintenance })
	m := c.node(x).Maintenance
	if m.DaemonsLeft != 0 || m.ReplicasLeft != 0 || m.DaemonsTotal != len(before) {
		t.Fatalf("drain progress %+v, want all of %d daemons moved", m, len(before))
	}
	c.waitFor("re-convergence without the drained node", c.settled)
	w := c.where()
	for id, n := range before {
		if len(w[id]) != 1 || w[id][0] == x {
			t.Fatalf("%s runs on %v after drain", id, w[id])
		}
		// Identity and state moved: the count continues, it did not restart from zero.
		if got := c.count(id); got < n {
			t.Fatalf("%s count %d < %d before migration: state lost", id, got, n)
		}
	}
	completed := false
	for _, mg := range c.node(x).Migrations {
		// Both ends are filled on both sides (the source's own end too).
		if mg.Phase == snapshot.PhaseComplete && mg.Source == x && mg.Target != 0 && mg.Target != x {
			completed = true
		}
	}
	if !completed {
		t.Fatalf("source reports no completed migration: %+v", c.node(x).Migrations)
	}
	for _, mg := range c.node(x).Migrations {
		if mg.Phase != snapshot.PhaseComplete {
			continue
		}
		found := false
		for _, in := range c.node(mg.Target).Migrations {
			if in.ID == mg.ID {
				found = true
				if in.Source != x || in.Target != mg.Target {
					t.Fatalf("target reports %v → %v for %s, want %v → %v", in.Source, in.Target, mg.ID, x, mg.Target)
				}
			}
		}
		if !found {
			t.Fatalf("target %v does not report migration %s", mg.Target, mg.ID)
		}
	}
	a := c.rts[c.ids[0]].Assignment()
	for name, cp := range a.Chains {
		if slices.Contains(cp.Holders, x) || len(cp.Holders) != cp.Desired {
			t.Fatalf("chain %s holders %v (desired %d) after draining %v", name, cp.Holders, cp.Desired, x)
		}
	}

	// Replaying the same intent changes nothing.
	gen := c.node(x).Generation
	c.editNode(x, func(ni *NodeIntent) {})
	time.Sleep(5 * fastTimers().Tick)
	if s := c.node(x); s.Maintenance.State != snapshot.MaintMaintenance || s.Generation != gen {
		t.Fatalf("replayed intent moved the node: %s gen %d→%d", s.Maintenance.State, gen, s.Generation)
	}

	seen := map[snapshot.MaintState]bool{}
	c.editNode(x, func(ni *NodeIntent) { ni.Maintenance, ni.MaintGen = MaintIntentExit, 2 })
	c.waitFor("active again", func() bool {
		st := c.node(x).Maintenance.State
		seen[st] = true
		return st == snapshot.MaintActive
	})
	if !seen[snapshot.MaintRecovery] {
		t.Fatalf("never observed Recovery on the way back: %v", seen)
	}
	if !logged(c.sinks[x], "maintenance recovery → active") {
		t.Fatal("Recovery → Active transition not logged")
	}
}

func logged(s *recordSink, sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.logs {
		if strings.Contains(l.Text, sub) {
			return true
		}
	}
	return false
}

func TestDrainDeadlineFails(t *testing.T) {
	spec := clusterSpec()
	spec.Groups = append(spec.Groups, GroupSpec{Name: "pinned", Kind: snapshot.GroupSolo, DaemonKind: "counter", Members: 1, Requires: []string{"special"}})
	var special NodeID
	c := newCluster(t, 5, spec, func(id NodeID, cfg *Config) {
		if special == 0 {
			special = id
			cfg.Capabilities = append(cfg.Capabilities, "special")
		}
	})
	c.waitFor("convergence", c.settled)
	c.editNode(special, func(ni *NodeIntent) {
		ni.Maintenance, ni.MaintGen, ni.DrainDeadline = MaintIntentEnter, 1, time.Now().Add(300*time.Millisecond)
	})
	c.waitFor("drain failed", func() bool { return c.node(special).Maintenance.State == snapshot.MaintDrainFailed })
	m := c.node(special).Maintenance
	if !strings.Contains(m.Reason, "pinned-0") || !strings.Contains(m.Reason, "no eligible node") {
		t.Fatalf("reason %q does not name the blocker", m.Reason)
	}
	if !c.sinks[special].hasFailure("drain failed") {
		t.Fatal("DrainFailed not on the failures sink")
	}
	// A fresh enter (new MaintGen) with no deadline starts a new drain.
	c.editNode(special, func(ni *NodeIntent) { ni.MaintGen, ni.DrainDeadline = 2, time.Time{} })
	c.waitFor("fresh drain", func() bool { return c.node(special).Maintenance.State == snapshot.MaintEntering })
}

func TestCordonBlocksNewPlacements(t *testing.T) {
	// Cordon all but the first two nodes before anything is placed.
	c := newClusterIntent(t, 5, clusterSpec(), func(ids []NodeID, in *ClusterIntent) {
		for _, id := range ids[2:] {
			in.Nodes[id] = NodeIntent{Cordoned: true}
		}
	})
	n1, n2, n3 := c.ids[0], c.ids[1], c.ids[2]
	c.waitFor("convergence", c.settled)
	for _, id := range c.ids[2:] {
		if s := c.node(id); len(s.Daemons) != 0 || len(s.Replicas) != 0 || !s.Cordoned {
			t.Fatalf("cordoned %v got %d daemons %d replicas (cordoned=%v)", id, len(s.Daemons), len(s.Replicas), s.Cordoned)
		}
	}
	// Cordoning a node with daemons keeps them where they are.
	held := len(c.node(n1).Daemons)
	c.editNode(n1, func(ni *NodeIntent) { ni.Cordoned = true })
	c.waitFor("cordon visible", func() bool { return c.node(n1).Cordoned })
	c.waitFor("convergence", c.settled)
	if got := len(c.node(n1).Daemons); got != held {
		t.Fatalf("cordon moved daemons off n1: %d → %d", held, got)
	}
	// Uncordon n3 and lose n2: n3 is the only node that may take new work.
	c.editNode(n3, func(ni *NodeIntent) { ni.Cordoned = false })
	moved := c.node(n2).Daemons
	c.kill(n2)
	c.waitFor("re-placement on the uncordoned node", func() bool {
		w := c.where()
		for _, d := range moved {
			if len(w[d.ID]) != 1 || w[d.ID][0] != n3 {
				return false
			}
		}
		return true
	})
}

func TestCrashLoopGate(t *testing.T) {
	spec := Spec{Groups: []GroupSpec{{Name: "bad", Kind: snapshot.GroupSolo, DaemonKind: "crasher", Members: 1}}}
	c := newCluster(t, 1, spec)
	id := c.ids[0]
	c.waitFor("crash loop", func() bool {
		for _, d := range c.node(id).Daemons {
			if d.Restart == snapshot.RestartCrashLooping {
				return d.Restarts >= CrashLoopCrashes
			}
		}
		return false
	})
	if !c.sinks[id].hasFailure("crash-looping") {
		t.Fatal("crash loop not recorded as a failure")
	}
	if !c.sinks[id].hasFailure("panic: crasher: boom") {
		t.Fatal("recovered panic not counted as a crash")
	}
	// An admin restart is held by the gate, visibly and reported once.
	c.setIntent(func(in *ClusterIntent) { in.Daemons["bad-0"] = DaemonIntent{RestartGen: 1} })
	c.waitFor("restart blocked", func() bool {
		for _, p := range c.node(id).Pending {
			if p.ID == "restart:bad-0" && strings.Contains(p.Blocked, "crash-looping") {
				return true
			}
		}
		return false
	})
	time.Sleep(10 * fastTimers().Tick)
	if n := c.sinks[id].countFailures("restart bad-0 held"); n != 1 {
		t.Fatalf("gated restart reported %d times, want once", n)
	}
	// ICE force-restart bypasses the gate.
	restarts := c.node(id).Daemons[0].Restarts
	c.setIntent(func(in *ClusterIntent) { in.Daemons["bad-0"] = DaemonIntent{RestartGen: 1, ForceRestartGen: 1} })
	c.waitFor("forced restart", func() bool { return c.node(id).Daemons[0].Restarts > restarts })
}

func TestFreezeStopsMoves(t *testing.T) {
	for _, tc := range []struct {
		name string
		ttl  bool
	}{{"thaw", false}, {"ttl", true}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 4, clusterSpec())
			c.waitFor("convergence", c.settled)
			x := c.busiest()
			held := len(c.node(x).Daemons)
			until := time.Now().Add(time.Hour)
			if tc.ttl {
				until = time.Now().Add(1500 * time.Millisecond)
			}
			c.setIntent(func(in *ClusterIntent) {
				in.Freeze = snapshot.Freeze{Active: true, Reason: "incident 7", Until: until}
				in.Nodes[x] = NodeIntent{Maintenance: MaintIntentEnter, MaintGen: 1}
			})
			c.waitFor("moves held by freeze", func() bool {
				for _, p := range c.node(x).Pending {
					if p.Kind == "migrate" && strings.Contains(p.Blocked, "incident 7") {
						return true
					}
				}
				return false
			})
			if got := len(c.node(x).Daemons); got != held || len(c.node(x).Migrations) != 0 {
				t.Fatalf("daemons moved while frozen: %d → %d, migrations %v", held, got, c.node(x).Migrations)
			}
			if !tc.ttl {
				c.setIntent(func(in *ClusterIntent) { in.Freeze = snapshot.Freeze{} })
			}
			c.waitFor("drain after thaw", func() bool { return c.node(x).Maintenance.State == snapshot.MaintMaintenance })
		})
	}
}

func TestKillNodeReplaces(t *testing.T) {
	c := newCluster(t, 5, clusterSpec())
	c.waitFor("convergence", c.settled)
	x := c.busiest()
	lost := c.node(x).Daemons
	c.kill(x)
	c.waitFor("re-placement", c.settled)
	w := c.where()
	for _, d := range lost {
		if len(w[d.ID]) != 1 || w[d.ID][0] == x {
			t.Fatalf("%s on %v after killing %v", d.ID, w[d.ID], x)
		}
	}
	a := c.rts[c.live()[0]].Assignment()
	for name, cp := range a.Chains {
		if slices.Contains(cp.Holders, x) || len(cp.Holders) != cp.Desired {
			t.Fatalf("chain %s holders %v", name, cp.Holders)
		}
	}
}

func TestAvoidList(t *testing.T) {
	c := newCluster(t, 3, Spec{})
	a, b := c.ids[0], c.ids[1]
	c.rts[a].SetPeers([]snapshot.PeerView{{Peer: b, RTT: 300 * time.Millisecond, Direct: true}, {Peer: c.ids[2], RTT: 5 * time.Millisecond}})
	c.waitFor("avoid entry", func() bool {
		av := c.node(a).Avoid
		return len(av) == 1 && av[0].Peer == b && strings.Contains(av[0].Reason, "rtt 300ms")
	})
	if until := c.node(a).Avoid[0].Until; time.Until(until) < 4*time.Minute {
		t.Fatalf("avoid TTL too short: %s", time.Until(until))
	}
	// Clearing works even while the RTT stays bad; the entry comes back
	// on a later pass because the link is still slow.
	c.rts[a].SetPeers([]snapshot.PeerView{{Peer: b, RTT: 10 * time.Millisecond}})
	c.editNode(a, func(ni *NodeIntent) { ni.ClearAvoidGen = 1 })
	c.waitFor("cleared", func() bool { return len(c.node(a).Avoid) == 0 })
	c.rts[a].SetPeers([]snapshot.PeerView{{Peer: b, RTT: 400 * time.Millisecond}})
	c.waitFor("avoid again", func() bool { return len(c.node(a).Avoid) == 1 })
	c.setIntent(func(in *ClusterIntent) { in.FlushAvoidGen = 1 })
	c.rts[a].SetPeers(nil)
	c.waitFor("flushed", func() bool { return len(c.node(a).Avoid) == 0 })
}

func TestCutoverAndEviction(t *testing.T) {
	c := newCluster(t, 5, clusterSpec())
	c.waitFor("convergence", c.settled)
	a := c.rts[c.ids[0]].Assignment()
	cp := a.Chains["rep"]
	var target NodeID
	for _, h := range cp.Holders {
		if h != cp.Leader {
			target = h
			break
		}
	}
	c.setIntent(func(in *ClusterIntent) {
		in.Cutovers = append(in.Cutovers, Cutover{Chain: "rep", Target: target, Gen: 1})
	})
	c.waitFor("cutover", func() bool {
		return c.settled() && c.rts[c.ids[0]].Assignment().Chains["rep"].Leader == target
	})
	victim := target
	c.setIntent(func(in *ClusterIntent) {
		in.Evictions = append(in.Evictions, ReplicaEviction{Chain: "rep", Node: victim, Gen: 1})
	})
	c.waitFor("eviction refilled elsewhere", func() bool {
		if !c.settled() {
			return false
		}
		cp := c.rts[c.ids[0]].Assignment().Chains["rep"]
		return !slices.Contains(cp.Holders, victim) && len(cp.Holders) == cp.Desired
	})
}

func TestKillMigrationRollsBack(t *testing.T) {
	c := newCluster(t, 3, Spec{Groups: []GroupSpec{{Name: "solo", Kind: snapshot.GroupSolo, DaemonKind: "counter", Members: 1}}})
	c.waitFor("convergence", c.settled)
	src := c.where()["solo-0"][0]
	// Make the only other candidates refuse to answer: every step times
	// out, so the migration is in flight long enough to kill.
	for _, id := range c.ids {
		if id != src {
			c.hub.SetDown(id, true)
		}
	}
	c.editNode(src, func(ni *NodeIntent) { ni.Maintenance, ni.MaintGen = MaintIntentEnter, 1 })
	var mig string
	c.waitFor("migration in flight", func() bool {
		for _, m := range c.node(src).Migrations {
			if m.Phase < snapshot.PhaseComplete {
				mig = m.ID
				return true
			}
		}
		return false
	})
	c.setIntent(func(in *ClusterIntent) { in.KilledMigrations[mig] = 1 })
	c.waitFor("rolled back", func() bool {
		for _, m := range c.node(src).Migrations {
			if m.ID == mig && m.Phase == snapshot.PhaseRolledBack && strings.Contains(m.Error, "killed by operator") {
				return true
			}
		}
		return false
	})
	// The rollback restarts the daemon on the source a moment after the
	// migration shows RolledBack; the other nodes are down, so it can run
	// nowhere else.
	c.waitFor(fmt.Sprintf("solo-0 running on the source %v alone after the rollback", src), func() bool {
		w := c.where()["solo-0"]
		return len(w) == 1 && w[0] == src
	})
}
