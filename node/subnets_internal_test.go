package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/node/transport"
)

// testScope is a scope of node 1 in subnet "eu/ams" whose directory places
// n nodes round robin in eu/ams, eu/fra, eu and us.
func testScope(n int, rules map[string]snapshot.Visibility) *scope {
	s := &scope{self: 1, subnet: "eu/ams", rules: rules,
		known: func(identity.NodeID, time.Time) (transport.Admission, bool) { return transport.Admission{}, false }}
	subnets := []string{"eu/ams", "eu/fra", "eu", "us"}
	dir := map[identity.NodeID]string{}
	for i := range n {
		dir[identity.NodeID(i+1)] = subnets[i%len(subnets)]
	}
	s.dir.Store(&dir)
	none := ""
	s.focus.Store(&none)
	return s
}

func allVisibility(v snapshot.Visibility) map[string]snapshot.Visibility {
	out := map[string]snapshot.Visibility{}
	for _, c := range snapshot.GatewayChannels {
		out[c] = v
	}
	out[snapshot.ChannelLedger] = snapshot.VisGlobal
	return out
}

// TestScopeAllowFollowsTheRules: local keeps a channel inside, parent lets
// it between a subnet and its parent (either way) and no further, global
// anywhere; the ledger and the transport's own channels always cross;
// every judged crossing is counted; an end the directory cannot place is
// let through.
func TestScopeAllowFollowsTheRules(t *testing.T) {
	ams, fra, eu, us := identity.NodeID(1), identity.NodeID(2), identity.NodeID(3), identity.NodeID(4)
	for _, tt := range []struct {
		vis      snapshot.Visibility
		src, dst identity.NodeID
		want     bool
	}{
		{snapshot.VisLocal, ams, ams + 4, true},
		{snapshot.VisLocal, ams, fra, false},
		{snapshot.VisParent, ams, eu, true},
		{snapshot.VisParent, eu, ams, true},
		{snapshot.VisParent, ams, fra, false},
		{snapshot.VisParent, ams, us, false},
		{snapshot.VisGlobal, ams, us, true},
		{snapshot.VisLocal, ams, 999, true}, // unknown end
	} {
		s := testScope(8, allVisibility(tt.vis))
		if got := s.Allow(messaging.ChanGossip, tt.src, tt.dst); got != tt.want {
			t.Errorf("%s %s→%s: %v, want %v", tt.vis, tt.src, tt.dst, got, tt.want)
		}
		if !s.Allow(messaging.ChanLedger, tt.src, tt.dst) || !s.Allow(messaging.ChanControl, tt.src, tt.dst) || !s.Allow(messaging.ChanSubnet, tt.src, tt.dst) {
			t.Errorf("%s %s→%s: the ledger, control or summaries were stopped", tt.vis, tt.src, tt.dst)
		}
	}
	s := testScope(8, allVisibility(snapshot.VisLocal))
	s.Allow(messaging.ChanGossip, ams, fra)
	s.Allow(messaging.ChanLedger, ams, fra)
	i, l := channelIndex(snapshot.ChannelSnapshots), channelIndex(snapshot.ChannelLedger)
	if s.dropped[i].Load() != 1 || s.forwarded[l].Load() != 1 {
		t.Fatalf("counters: snapshots dropped %d, ledger forwarded %d", s.dropped[i].Load(), s.forwarded[l].Load())
	}
	// Logs and failures share a channel: the stricter rule holds.
	rules := allVisibility(snapshot.VisGlobal)
	rules[snapshot.ChannelFailures] = snapshot.VisLocal
	if testScope(8, rules).Allow(messaging.ChanSubscribe, ams, us) {
		t.Fatal("a failures=local rule let the subscription channel cross")
	}
}

// BenchmarkScopeAllow is the cost a carved mesh adds to each relayed data
// packet: the directory lookups of both ends and a counter.
func BenchmarkScopeAllow(b *testing.B) {
	for _, n := range []int{64, 1024} {
		b.Run(fmt.Sprintf("dir=%d", n), func(b *testing.B) {
			s := testScope(n, allVisibility(snapshot.VisParent))
			b.ReportAllocs()
			for i := range b.N {
				s.Allow(messaging.ChanGossip, identity.NodeID(i%n+1), identity.NodeID((i*7)%n+1))
			}
		})
	}
}
