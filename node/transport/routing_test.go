package transport

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/wire"
)

// TestRouteReplacementRule walks the distance-vector rule: a route changes
// only for a strictly better metric among fresh candidates or for a fresher
// one, always follows its own next hop, and fails over at once when the
// next hop goes down.
func TestRouteReplacementRule(t *testing.T) {
	const self, b, c, d identity.NodeID = 1, 2, 3, 9
	now := time.Unix(100, 0)
	const expiry = 5 * time.Second
	rt := newRouteTable(self, MaxPeers)
	ab, ac := netip.MustParseAddrPort("127.0.0.1:2"), netip.MustParseAddrPort("127.0.0.1:3")
	rt.setNeighbour(b, ab, 100, true, now)
	rt.setNeighbour(c, ac, 100, true, now)
	ann := func(from identity.NodeID, seq uint64, metric uint32) {
		rt.apply(from, []wire.Route{{Dest: from, Seq: seq}, {Dest: d, Seq: seq, MetricMicros: metric, Hops: 1}}, now)
		rt.recompute(now, expiry)
	}
	hop := func() identity.NodeID {
		r, ok := rt.lookup(d)
		if !ok {
			return 0
		}
		return r.NextHop
	}
	steps := []struct {
		name string
		do   func()
		want identity.NodeID
	}{
		{"first route", func() { ann(b, 10, 500) }, b},
		{"equal metric elsewhere: keep", func() { ann(c, 10, 500) }, b},
		{"worse metric elsewhere: keep", func() { ann(c, 11, 900) }, b},
		{"strictly better elsewhere: switch", func() { ann(c, 11, 400) }, c},
		{"current next hop gets worse: follow it", func() { ann(c, 12, 450) }, c},
		{"slightly fresher but worse elsewhere: keep", func() { ann(b, 13, 600) }, c},
		{"current goes stale, other is fresh: switch", func() { ann(b, 12+RouteSeqSlack+1, 600) }, b},
		{"next hop withdraws: fail over", func() { ann(b, 20, wire.MetricInfinity); ann(c, 20, 450) }, c},
		{"next hop down: fail over at once", func() {
			ann(b, 21, 700)
			rt.setNeighbour(c, ac, 100, false, now)
			rt.recompute(now, expiry)
		}, b},
		{"all candidates expire", func() {
			now = now.Add(expiry + time.Second)
			rt.recompute(now, expiry)
		}, 0},
	}
	for _, s := range steps {
		s.do()
		if got := hop(); got != s.want {
			t.Fatalf("%s: next hop %v, want %v", s.name, got, s.want)
		}
	}
}

func TestAnnouncementPoisonsReverse(t *testing.T) {
	const self, b, d identity.NodeID = 1, 2, 9
	now := time.Unix(100, 0)
	rt := newRouteTable(self, MaxPeers)
	rt.setNeighbour(b, netip.MustParseAddrPort("127.0.0.1:2"), 100, true, now)
	rt.apply(b, []wire.Route{{Dest: b, Seq: 1}, {Dest: d, Seq: 1, MetricMicros: 10, Hops: 1}}, now)
	rt.recompute(now, time.Minute)
	for _, r := range rt.announcement(b, 7, nil) {
		if r.Dest == d && r.MetricMicros != wire.MetricInfinity {
			t.Fatalf("route to %v through b announced to b with metric %d", d, r.MetricMicros)
		}
		if r.Dest == self && r.Seq != 7 {
			t.Fatal("self route carries the wrong sequence")
		}
	}
	other := identity.NodeID(5)
	found := false
	for _, r := range rt.announcement(other, 7, nil) {
		if r.Dest == d {
			found = r.MetricMicros == 110
		}
	}
	if !found {
		t.Fatal("route not announced with its metric to another neighbour")
	}
}

func TestRateLimiters(t *testing.T) {
	src := netip.MustParseAddrPort("127.0.0.1:1")
	t0 := time.Unix(0, 0)
	l := newLimiter(10, 3, 2)
	for i := range 3 {
		if !l.allow(src, t0) {
			t.Fatalf("burst token %d refused", i)
		}
	}
	if l.allow(src, t0) {
		t.Fatal("allowed beyond the burst")
	}
	if !l.allow(src, t0.Add(100*time.Millisecond)) {
		t.Fatal("not refilled after 1/rate")
	}
	l.allow(netip.MustParseAddrPort("127.0.0.1:2"), t0)
	if l.allow(netip.MustParseAddrPort("127.0.0.1:3"), t0) {
		t.Fatal("table cap not enforced")
	}

	tl := newTickLimiter(10, 2, 1)
	tl.refill(t0)
	if !tl.allow(src) || !tl.allow(src) || tl.allow(src) {
		t.Fatal("tick limiter burst wrong")
	}
	if tl.allow(netip.MustParseAddrPort("127.0.0.1:2")) {
		t.Fatal("tick limiter table cap not enforced")
	}
	tl.refill(t0.Add(100 * time.Millisecond))
	if !tl.allow(src) {
		t.Fatal("tick limiter not refilled")
	}
	tl.refill(t0.Add(time.Second)) // full again: idle bucket swept
	if len(*tl.buckets.Load()) != 0 {
		t.Fatal("idle bucket not swept")
	}
}

// TestHeartbeatCarriesAnnouncement: a neighbour's heartbeat with its route
// announcement behind it (one packet per beat) teaches the routes; a
// heartbeat with anything else behind it is counted as a drop.
func TestHeartbeatCarriesAnnouncement(t *testing.T) {
	tr, err := New(testConfig(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	const neighbour, far identity.NodeID = 2, 9
	hb := wire.AppendHeartbeat(nil, &wire.Heartbeat{Seq: 1, SentNanos: 5})
	ann, err := wire.AppendAnnouncement(nil, &wire.Announcement{Routes: []wire.Route{
		{Dest: neighbour, Seq: 1}, {Dest: far, Seq: 1, MetricMicros: 10, Hops: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	known := func(id identity.NodeID) bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return tr.peers[id] != nil
	}
	tr.handleControl(neighbour, append(slices.Clone(hb), ann...), &wire.Announcement{}, true)
	if !known(far) {
		t.Fatal("the bundled announcement's route was not learned")
	}
	drops := tr.Stats().Drops
	tr.handleControl(neighbour, append(slices.Clone(hb), wire.AppendHeartbeat(nil, &wire.Heartbeat{Seq: 2})...), &wire.Announcement{}, true)
	if got := tr.Stats().Drops; got != drops+1 {
		t.Fatalf("heartbeat behind a heartbeat: drops %d → %d, want one more", drops, got)
	}
}
