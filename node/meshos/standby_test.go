package meshos

import (
	"slices"
	"testing"

	"github.com/deck-mesh/deck/node/snapshot"
)

func standbySpec() Spec {
	return Spec{Groups: []GroupSpec{{Name: "stby", Kind: snapshot.GroupStandby, DaemonKind: "counter", Members: 2, ChainReplicas: 1}}}
}

// member finds daemon id in the live nodes' snapshots.
func (c *cluster) member(id string) (snapshot.Daemon, NodeID, bool) {
	for _, n := range c.live() {
		for _, d := range c.node(n).Daemons {
			if d.ID == id && d.Lifecycle == snapshot.LifecycleRunning {
				return d, n, true
			}
		}
	}
	return snapshot.Daemon{}, 0, false
}

// TestWarmStandbyFollowsActiveAndTakesOverOnPromotion: the warm standby
// keeps a copy of the active's checkpoint (its synced_through advances and
// the instance is handed StandbySync), and when the active's node dies the
// standby is promoted under a higher term and resumes from that copy, not
// from zero. The chain has one holder, so when it sat with the active the
// standby's own copy is all that is left.
func TestWarmStandbyFollowsActiveAndTakesOverOnPromotion(t *testing.T) {
	c := newCluster(t, 4, standbySpec())
	c.waitFor("convergence", c.settled)
	var active, standby snapshot.Daemon
	var activeNode NodeID
	c.waitFor("one active and one warm standby synced past zero", func() bool {
		a0, n0, ok0 := c.member("stby-0")
		a1, n1, ok1 := c.member("stby-1")
		if !ok0 || !ok1 || a0.Lineage.Active == a1.Lineage.Active {
			return false
		}
		active, activeNode, standby = a0, n0, a1
		if a1.Lineage.Active {
			active, activeNode, standby = a1, n1, a0
		}
		return standby.Lineage.Synced > 0 && c.count(active.ID) > 300
	})
	c.reg.mu.Lock()
	var handed bool
	for _, k := range c.reg.all[standby.ID] {
		k.mu.Lock()
		handed = handed || slices.Contains(k.ctl, CtlStandbySync)
		k.mu.Unlock()
	}
	c.reg.mu.Unlock()
	if !handed {
		t.Fatal("the standby instance was never handed the active's checkpoint")
	}
	before := c.count(active.ID)
	c.kill(activeNode)
	var promoted snapshot.Daemon
	c.waitFor("the standby promoted and restarted as active", func() bool {
		d, _, ok := c.member(standby.ID)
		promoted = d
		return ok && d.Lineage.Active && d.Restarts > standby.Restarts
	})
	if promoted.Lineage.Term <= active.Lineage.Term {
		t.Fatalf("promoted at term %d, not above the old active's %d", promoted.Lineage.Term, active.Lineage.Term)
	}
	// The active counted past 300 before the kill; a copy at most a few
	// checkpoint intervals old is close to that. The standby's own count is
	// a tenth of it (a warm test counter counts ten times slower), and a
	// fresh start is near 0.
	c.reg.mu.Lock()
	all := c.reg.all[standby.ID]
	newest := all[len(all)-1].get()
	c.reg.mu.Unlock()
	if newest < before/2 {
		t.Fatalf("promoted standby resumed from %d, the active was at %d: the warm copy was not used", newest, before)
	}
	if !logged(c.sinks[promotedNode(c, standby.ID)], "promoted to active") {
		t.Fatal("promotion not logged")
	}
}

func promotedNode(c *cluster, id string) NodeID {
	_, n, _ := c.member(id)
	return n
}

// TestAdoptWarmKeepsTheCopyOnAnUnchangedAnswer: a leader answers "no change
// since your seq" with no state, which the wire decodes as an empty slice;
// adopting that as the copy made a promoted standby restart from nothing
// (the restore refused 0 bytes) about one run in ten under load.
func TestAdoptWarmKeepsTheCopyOnAnUnchangedAnswer(t *testing.T) {
	want := []byte{0, 0, 0, 0, 0, 0, 1, 44}
	s := &supervisor{warmed: warmCopy{state: slices.Clone(want), seq: 5}}
	raw, err := (&message{Kind: msgWarmResp, Chain: "stby", Daemon: "stby-0", Seq: 9}).encode()
	if err != nil {
		t.Fatal(err)
	}
	m, err := decodeMessage(raw)
	if err != nil {
		t.Fatal(err)
	}
	s.adoptWarm(m.State, m.Seq)
	if w := s.warm(); !slices.Equal(w.state, want) || w.seq != 9 {
		t.Fatalf("warm copy %v at seq %d after an unchanged answer, want %v at seq 9", w.state, w.seq, want)
	}
}
