package meshos

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/mesh/meshtest"
	"github.com/deck-mesh/deck/node/snapshot"
)

// loseFirst loses the first message (between any two nodes) that match
// reports, once per rule, and counts what it lost.
type loseFirst struct {
	mu    sync.Mutex
	rules []func(*message) bool
	lost  []string
}

func (l *loseFirst) lose(mm meshtest.Message) bool {
	m, err := decodeMessage(mm.Data)
	if err != nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, r := range l.rules {
		if r != nil && r(m) {
			l.rules[i] = nil
			l.lost = append(l.lost, m.describe())
			return true
		}
	}
	return false
}

func (m *message) describe() string {
	switch m.Kind {
	case msgMigOffer:
		return "offer"
	case msgMigReplay:
		return "replay"
	case msgMigCutover:
		return "cutover"
	case msgMigAck:
		return "ack of " + m.Phase.String()
	}
	return "other"
}

func soloSpec() Spec {
	return Spec{Groups: []GroupSpec{{Name: "solo", Kind: snapshot.GroupSolo, DaemonKind: "counter", Members: 1}}}
}

// TestMigrationSurvivesLostMessages: the offer, the replay's ack and the
// cutover's ack are each lost once. Every step is resent after its timeout
// and the target answers a resent step without redoing it (a second
// cutover must not start a second copy), so the daemon arrives once, with
// its state, and the source counts the retries.
func TestMigrationSurvivesLostMessages(t *testing.T) {
	c := newCluster(t, 3, soloSpec())
	c.waitFor("convergence", c.settled)
	src := c.where()["solo-0"][0]
	c.waitFor("daemon counting", func() bool { return c.count("solo-0") > 50 })
	loss := &loseFirst{rules: []func(*message) bool{
		func(m *message) bool { return m.Kind == msgMigOffer },
		func(m *message) bool { return m.Kind == msgMigAck && m.Phase == snapshot.PhaseReplay && m.OK },
		func(m *message) bool { return m.Kind == msgMigAck && m.Phase == snapshot.PhaseCutover && m.OK },
	}}
	c.hub.SetLoss(loss.lose)
	before := c.count("solo-0")
	c.editNode(src, func(ni *NodeIntent) { ni.Maintenance, ni.MaintGen = MaintIntentEnter, 1 })
	var done snapshot.Migration
	c.waitFor("migration complete", func() bool {
		for _, m := range c.node(src).Migrations {
			if m.Source == src && m.Phase == snapshot.PhaseComplete {
				done = m
				return true
			}
			if m.Phase == snapshot.PhaseRolledBack {
				t.Fatalf("migration rolled back: %s (lost %v)", m.Error, loss.lost)
			}
		}
		return false
	})
	loss.mu.Lock()
	lost := append([]string(nil), loss.lost...)
	loss.mu.Unlock()
	if len(lost) != 3 {
		t.Fatalf("lost %v, want one offer, one replay ack, one cutover ack", lost)
	}
	if done.Retries < 3 {
		t.Fatalf("migration reports %d retries after 3 lost messages", done.Retries)
	}
	c.waitFor("one copy, off the drained node", func() bool {
		w := c.where()["solo-0"]
		return len(w) == 1 && w[0] == done.Target
	})
	if got := c.count("solo-0"); got < before {
		t.Fatalf("count %d < %d before the migration: state lost", got, before)
	}
	if n := c.sinks[done.Target].countFailures("solo-0"); n != 0 {
		t.Fatalf("target recorded %d failures for solo-0", n)
	}
}

// TestMigrationRollsBackWhenTargetFallsSilent: the target takes the offer
// and then hears nothing more from the source (every replay is lost). The
// source resends MigrationRetriesMax times, then rolls back: the daemon
// runs on the source again from the final state it stopped with, the
// target gives up its half, and once messages flow again the drain moves
// the daemon after all.
func TestMigrationRollsBackWhenTargetFallsSilent(t *testing.T) {
	// Long enough to look at the rolled-back state before the drain tries
	// again.
	c := newCluster(t, 3, soloSpec(), func(_ NodeID, cfg *Config) { cfg.Timers.MigrationRetry = 2 * time.Second })
	c.waitFor("convergence", c.settled)
	src := c.where()["solo-0"][0]
	c.waitFor("daemon counting", func() bool { return c.count("solo-0") > 200 })
	c.reg.mu.Lock()
	made := len(c.reg.all["solo-0"])
	c.reg.mu.Unlock()
	before := c.count("solo-0")
	c.hub.SetLoss(func(mm meshtest.Message) bool {
		m, err := decodeMessage(mm.Data)
		return err == nil && m.Kind == msgMigReplay
	})
	c.editNode(src, func(ni *NodeIntent) { ni.Maintenance, ni.MaintGen = MaintIntentEnter, 1 })
	var rolled snapshot.Migration
	c.waitFor("rolled back", func() bool {
		for _, m := range c.node(src).Migrations {
			if m.Source == src && m.Phase == snapshot.PhaseRolledBack {
				rolled = m
				return true
			}
		}
		return false
	})
	// Restarted from its final state, and nowhere fresh: every instance
	// made since the drain began was restored from the daemon's state (a
	// fresh one counts from 0 and could not be past before this soon, one
	// tick per 2 ms).
	c.reg.mu.Lock()
	for i, k := range c.reg.all["solo-0"][made:] {
		if got := k.get(); got < before {
			c.reg.mu.Unlock()
			t.Fatalf("instance %d made during the migration counts from %d < %d: started without its state\n%s", made+i, got, before, c.dump())
		}
	}
	c.reg.mu.Unlock()
	c.waitFor("running again on the source only", func() bool {
		w := c.where()["solo-0"]
		return len(w) == 1 && w[0] == src
	})
	if !strings.Contains(rolled.Error, "replay") || !strings.Contains(rolled.Error, "no ack") {
		t.Fatalf("rollback error %q, want the replay step's timeout", rolled.Error)
	}
	if rolled.Retries != MigrationRetriesMax {
		t.Fatalf("rolled back after %d retries, want %d", rolled.Retries, MigrationRetriesMax)
	}
	if !c.sinks[src].hasFailure("rolled back") {
		t.Fatal("rollback not reported as a failure on the source")
	}
	c.waitFor("target dropped its half", func() bool {
		for _, m := range c.node(rolled.Target).Migrations {
			if m.ID == rolled.ID {
				return m.Phase == snapshot.PhaseRolledBack
			}
		}
		return false
	})
	c.hub.SetLoss(nil)
	c.waitFor("drain completes once messages flow", func() bool {
		w := c.where()["solo-0"]
		return c.node(src).Maintenance.State == snapshot.MaintMaintenance && len(w) == 1 && w[0] != src
	})
}
