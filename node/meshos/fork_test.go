package meshos

import (
	"encoding/binary"
	"strings"
	"testing"

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
