package meshos

import (
	"encoding/binary"
	"strings"
	"sync"
	"testing"

	"github.com/deck-mesh/deck/node/mesh/meshtest"
	"github.com/deck-mesh/deck/node/snapshot"
)

const testForkAt = 150

func forkSpec() Spec {
	return Spec{Groups: []GroupSpec{
		{Name: "rep", Kind: snapshot.GroupReplica, DaemonKind: "counter", Members: 2, ChainReplicas: 2},
		{Name: "fork", Kind: snapshot.GroupFork, DaemonKind: "counter", Members: 2, Parent: "rep", ForkAt: testForkAt},
	}}
}

// TestForkStartsFromParentAtForkPoint: fork members wait, visibly, until
// the parent chain reaches the fork seq; then each starts restored from
// its parent member's checkpoint exactly as it stood at that seq, and
// carries the fork point's sentinel, the same one every holder of the
// parent chain derived.
func TestForkStartsFromParentAtForkPoint(t *testing.T) {
	c := newCluster(t, 4, forkSpec())
	c.waitFor("fork members held awaiting the fork point", func() bool {
		for _, n := range c.live() {
			for _, p := range c.node(n).Pending {
				if strings.HasPrefix(p.ID, "place:fork-") && strings.Contains(p.Blocked, "awaiting fork point") {
					return true
				}
			}
		}
		return false
	})
	if w := c.where(); len(w["fork-0"])+len(w["fork-1"]) != 0 {
		t.Fatalf("a fork member runs before the fork point: %v", w)
	}
	c.waitFor("convergence", c.settled)

	// The fork point as the parent chain's holders captured it.
	var fp *forkPoint
	holders := 0
	for _, id := range c.live() {
		rt := c.rts[id]
		rt.mu.Lock()
		if r := rt.replicas["rep"]; r != nil {
			holders++
			got := r.forks[testForkAt]
			if got == nil {
				// A holder that caught up by a reset jumped past the seq;
				// the fork asks the holders that did apply it.
				rt.mu.Unlock()
				continue
			}
			if fp != nil && got.sentinel != fp.sentinel {
				rt.mu.Unlock()
				t.Fatalf("holders derived different sentinels: %016x vs %016x", got.sentinel, fp.sentinel)
			}
			fp = got
		}
		rt.mu.Unlock()
	}
	if holders == 0 || fp == nil || fp.sentinel == 0 {
		t.Fatalf("no holder captured the fork point (holders %d)", holders)
	}
	for i, parent := range []string{"rep-0", "rep-1"} {
		fork := DaemonID("fork", i)
		d, _, ok := c.member(fork)
		if !ok {
			t.Fatalf("%s not running", fork)
		}
		if d.Lineage.ForkAt != testForkAt || d.Lineage.ForkSentinel != fp.sentinel {
			t.Fatalf("%s lineage %+v, want fork at %d with sentinel %016x", fork, d.Lineage, testForkAt, fp.sentinel)
		}
		st, ok := fp.states[parent]
		if !ok {
			t.Fatalf("fork point has no state for %s", parent)
		}
		want := binary.BigEndian.Uint64(st)
		c.reg.mu.Lock()
		found := false
		for _, k := range c.reg.all[fork] {
			k.mu.Lock()
			found = found || (k.restoredOK && k.restored == want)
			k.mu.Unlock()
		}
		c.reg.mu.Unlock()
		if !found {
			t.Fatalf("%s was not started from %s's state at the fork point (count %d)", fork, parent, want)
		}
	}
}

// TestForkSentinelBindsTheForkPoint: the sentinel changes with the chain,
// the seq and any member's state, and not with map order.
func TestForkSentinelBindsTheForkPoint(t *testing.T) {
	base := map[string][]byte{"a": {1}, "b": {2, 3}}
	s := forkSentinel("rep", 7, base)
	for name, other := range map[string]uint64{
		"chain": forkSentinel("rep2", 7, base),
		"seq":   forkSentinel("rep", 8, base),
		"state": forkSentinel("rep", 7, map[string][]byte{"a": {1}, "b": {2, 4}}),
		"split": forkSentinel("rep", 7, map[string][]byte{"a": {1, 2}, "b": {3}}),
	} {
		if other == s {
			t.Errorf("changing the %s kept the sentinel", name)
		}
	}
	if forkSentinel("rep", 7, map[string][]byte{"b": {2, 3}, "a": {1}}) != s {
		t.Error("same fork point, different sentinel")
	}
}

// TestForkPointOfferedToWaitingHosts: the parent chain's leader offers the
// fork point to every fork member's host the moment it appends ForkAt, so
// a fork member on a node that holds no replica of the parent starts
// without asking — here every ask is lost.
func TestForkPointOfferedToWaitingHosts(t *testing.T) {
	c := newCluster(t, 6, forkSpec())
	var mu sync.Mutex
	offered := map[NodeID]int{}
	c.hub.SetLoss(func(mm meshtest.Message) bool {
		m, err := decodeMessage(mm.Data)
		if err != nil {
			return false
		}
		if m.Kind == msgForkResp {
			mu.Lock()
			offered[mm.To]++
			mu.Unlock()
		}
		return m.Kind == msgForkReq
	})
	c.waitFor("convergence", c.settled)
	remote := 0
	for i := range 2 {
		fork := DaemonID("fork", i)
		hosts := c.where()[fork]
		if len(hosts) != 1 {
			t.Fatalf("%s runs on %v", fork, hosts)
		}
		rt := c.rts[hosts[0]]
		rt.mu.Lock()
		r := rt.replicas["rep"]
		local := r != nil && r.forks[testForkAt] != nil
		rt.mu.Unlock()
		if local {
			continue // its host captured the fork point itself
		}
		remote++
		mu.Lock()
		got := offered[hosts[0]]
		mu.Unlock()
		if got == 0 {
			t.Fatalf("%s started on %v, which holds no fork point and was offered none", fork, hosts[0])
		}
	}
	t.Logf("%d of 2 fork members started from an offer", remote)
}
