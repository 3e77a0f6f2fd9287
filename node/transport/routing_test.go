package transport

import (
	"bytes"
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
		prove(rt, now, from, seq)
		prove(rt, now, d, seq)
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

// prove records seq as dest's freshest proven sequence number, as a
// verified origin token would (the routing rule's tests use made-up ids
// that no key derives to).
func prove(rt *routeTable, now time.Time, dest identity.NodeID, seq uint64) {
	rt.learnOrigin(dest, &wire.OriginToken{Seq: seq}, now)
}

func TestAnnouncementPoisonsReverse(t *testing.T) {
	const self, b, d identity.NodeID = 1, 2, 9
	now := time.Unix(100, 0)
	rt := newRouteTable(self, MaxPeers)
	rt.setNeighbour(b, netip.MustParseAddrPort("127.0.0.1:2"), 100, true, now)
	rt.apply(b, []wire.Route{{Dest: b, Seq: 1}, {Dest: d, Seq: 1, MetricMicros: 10, Hops: 1}}, now)
	rt.recompute(now, time.Minute)
	rt.selfOrigin = wire.OriginToken{Seq: 7}
	for _, r := range rt.announcement(b, nil) {
		if r.Dest == d && r.MetricMicros != wire.MetricInfinity {
			t.Fatalf("route to %v through b announced to b with metric %d", d, r.MetricMicros)
		}
		if r.Dest == self && r.Seq != 7 {
			t.Fatal("self route carries the wrong sequence")
		}
	}
	other := identity.NodeID(5)
	found := false
	for _, r := range rt.announcement(other, nil) {
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

// TestDirectLinkOutranksAnnouncements: while a neighbour is up, the route
// to it is the link, even against a fresher (proven) sequence number with
// metric 0 through another neighbour; when the link goes down the other
// route takes over.
func TestDirectLinkOutranksAnnouncements(t *testing.T) {
	const self, v, m identity.NodeID = 1, 2, 3
	now := time.Unix(100, 0)
	rt := newRouteTable(self, MaxPeers)
	av, am := netip.MustParseAddrPort("127.0.0.1:2"), netip.MustParseAddrPort("127.0.0.1:3")
	rt.setNeighbour(v, av, 5000, true, now)
	rt.setNeighbour(m, am, 100, true, now)
	prove(rt, now, v, 10)
	rt.apply(v, []wire.Route{{Dest: v, Seq: 10}}, now)
	prove(rt, now, v, 1<<40)
	rt.apply(m, []wire.Route{{Dest: m, Seq: 1}, {Dest: v, Seq: 1 << 40, Hops: 1}}, now)
	rt.recompute(now, time.Minute)
	r, ok := rt.lookup(v)
	if !ok || r.NextHop != v || r.NextAddr != av || r.Hops != 1 || r.Metric != 5000 {
		t.Fatalf("route to the direct neighbour %+v, want over its link", r)
	}
	rt.setNeighbour(v, av, 5000, false, now)
	rt.recompute(now, time.Minute)
	if r, ok := rt.lookup(v); !ok || r.NextHop != m {
		t.Fatalf("link down: route %+v, want through %v", r, m)
	}
}

// TestUnprovenSequenceIsClamped: a sequence number above the freshest one
// its destination proved is believed only up to that one, so it cannot
// make an honest route stale; once the destination proves it, it counts.
func TestUnprovenSequenceIsClamped(t *testing.T) {
	const self, r1, m, d identity.NodeID = 1, 2, 3, 9
	now := time.Unix(100, 0)
	rt := newRouteTable(self, MaxPeers)
	rt.setNeighbour(r1, netip.MustParseAddrPort("127.0.0.1:2"), 100, true, now)
	rt.setNeighbour(m, netip.MustParseAddrPort("127.0.0.1:3"), 100, true, now)
	prove(rt, now, d, 10)
	rt.apply(r1, []wire.Route{{Dest: r1}, {Dest: d, Seq: 10, MetricMicros: 500, Hops: 1}}, now)
	rt.apply(m, []wire.Route{{Dest: m}, {Dest: d, Seq: 1 << 60, MetricMicros: 900, Hops: 1}}, now)
	rt.recompute(now, time.Minute)
	if r, _ := rt.lookup(d); r.NextHop != r1 || r.Seq != 10 {
		t.Fatalf("route %+v, want the honest one through %v at seq 10", r, r1)
	}
	prove(rt, now, d, 1<<60)
	rt.apply(m, []wire.Route{{Dest: m}, {Dest: d, Seq: 1 << 60, MetricMicros: 900, Hops: 1}}, now)
	rt.recompute(now, time.Minute)
	if r, _ := rt.lookup(d); r.NextHop != m {
		t.Fatalf("route %+v, want the proven fresher one through %v", r, m)
	}
}

// TestOriginTokenChecks: a token verifies only for the id its key derives
// to, over exactly the sequence number it names.
func TestOriginTokenChecks(t *testing.T) {
	k, other := mustKey(t), mustKey(t)
	tok := signOrigin(k, 42)
	if err := verifyOrigin(k.ID, &tok); err != nil {
		t.Fatalf("genuine token: %v", err)
	}
	bySomeoneElse := signOrigin(other, 42)
	keyOfVictim := bySomeoneElse
	keyOfVictim.PublicKey = tok.PublicKey
	higher := tok
	higher.Seq = 1 << 50
	for name, c := range map[string]struct {
		id  identity.NodeID
		tok wire.OriginToken
	}{
		"signed by another key, claiming the victim": {k.ID, bySomeoneElse},
		"victim's key, another's signature":          {k.ID, keyOfVictim},
		"genuine signature, raised sequence":         {k.ID, higher},
		"genuine token, presented for another id":    {other.ID, tok},
	} {
		if err := verifyOrigin(c.id, &c.tok); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestOriginTokensVerifiedOncePerNode: a token already proven is not
// checked again when another neighbour brings it, and one neighbour's
// checks are bounded by its budget.
func TestOriginTokensVerifiedOncePerNode(t *testing.T) {
	const self, n1, n2 identity.NodeID = 1, 2, 3
	now := time.Unix(100, 0)
	rt := newRouteTable(self, MaxPeers)
	rt.setNeighbour(n1, netip.MustParseAddrPort("127.0.0.1:2"), 100, true, now)
	rt.setNeighbour(n2, netip.MustParseAddrPort("127.0.0.1:3"), 100, true, now)
	k := mustKey(t)
	routes := []wire.Route{{Dest: k.ID, Seq: 5, MetricMicros: 10, Hops: 1, Origin: signOrigin(k, 5)}}
	todo := rt.tokensToVerify(n1, routes, now, nil)
	if len(todo) != 1 || verifyOrigin(k.ID, &routes[0].Origin) != nil {
		t.Fatalf("first sight: %d to verify", len(todo))
	}
	rt.learnOrigin(k.ID, &routes[0].Origin, now)
	if todo := rt.tokensToVerify(n2, routes, now, nil); len(todo) != 0 {
		t.Fatalf("already proven token checked again (%d)", len(todo))
	}
	if rt.provenSeq(k.ID) != 5 {
		t.Fatalf("proven %d, want 5", rt.provenSeq(k.ID))
	}

	// A flood of never-proven tokens from one neighbour: the budget holds.
	flood := make([]wire.Route, wire.MaxOriginTokensPerAnnouncement)
	for i := range flood {
		flood[i] = wire.Route{Dest: identity.NodeID(1000 + i), Seq: 1, Origin: wire.OriginToken{Seq: 1}}
	}
	spent := 0
	for range 10 {
		spent += len(rt.tokensToVerify(n1, flood, now, nil))
	}
	if spent > OriginVerificationBurst {
		t.Fatalf("%d checks in one instant, budget %d", spent, OriginVerificationBurst)
	}
	if got := len(rt.tokensToVerify(n1, flood, now.Add(time.Second), nil)); got == 0 || got > OriginVerificationsPerSecondPerNeighbour {
		t.Fatalf("after a second: %d checks, want 1..%d", got, OriginVerificationsPerSecondPerNeighbour)
	}
	if len(rt.tokensToVerify(n2, flood, now, nil)) == 0 {
		t.Fatal("one neighbour's flood spent another's budget")
	}
}

// routedNeighbour is a Transport (not started) with one neighbour up, and
// an announcement of that neighbour listing n destinations, each with its
// own key's origin token at seq.
func routedNeighbour(tb testing.TB, n int, seq uint64) (tr *Transport, from identity.NodeID, msg []byte) {
	tb.Helper()
	tr, err := New(testConfig(tb, nil))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { tr.Close() })
	tr.cfg.Logf = func(string, ...any) {}
	nk := mustKey(tb)
	now := time.Now()
	tr.mu.Lock()
	tr.routes.setNeighbour(nk.ID, netip.MustParseAddrPort("127.0.0.1:9"), 300, true, now)
	tr.mu.Unlock()
	routes := []wire.Route{{Dest: nk.ID, Seq: seq, Origin: signOrigin(nk, seq)}}
	for range n - 1 {
		k := mustKey(tb)
		routes = append(routes, wire.Route{Dest: k.ID, Seq: seq, MetricMicros: 500, Hops: 1, Origin: signOrigin(k, seq)})
	}
	msg, err = wire.AppendAnnouncement(nil, &wire.Announcement{Routes: routes})
	if err != nil {
		tb.Fatal(err)
	}
	return tr, nk.ID, msg
}

// FuzzAnnouncementProcessing feeds arbitrary control messages from an up
// neighbour to a node: nothing may panic, and the routing state stays
// within its bounds whatever the tokens say.
func FuzzAnnouncementProcessing(f *testing.F) {
	tr, from, msg := routedNeighbour(f, 3, 7)
	f.Add(msg)
	bad := bytes.Clone(msg)
	bad[len(bad)-1] ^= 1 // the last token's signature
	f.Add(bad)
	f.Add([]byte{byte(wire.ControlAnnouncement), wire.AnnouncementVersion, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > wire.MaxMessageBytes {
			return
		}
		var ann wire.Announcement
		tr.handleControl(from, data, &ann, true)
		tr.mu.Lock()
		defer tr.mu.Unlock()
		if len(tr.routes.origins) > tr.routes.maxDest || len(tr.peers) > MaxPeers {
			t.Fatalf("bounds broken: %d proofs, %d peers", len(tr.routes.origins), len(tr.peers))
		}
		for _, n := range tr.routes.nbrs {
			if len(n.cands) > tr.routes.maxDest {
				t.Fatalf("%d candidates", len(n.cands))
			}
		}
		for d, p := range tr.routes.origins {
			if p.tok.Seq != 0 && verifyOrigin(d, &p.tok) != nil {
				t.Fatalf("unverified token of %v kept", d)
			}
		}
	})
}

// BenchmarkOriginTokenVerify is one origin token check (ed25519 verify and
// the id derivation), the cost a receiver pays once per destination per
// round.
func BenchmarkOriginTokenVerify(b *testing.B) {
	k := mustKey(b)
	tok := signOrigin(k, 12345)
	b.ReportAllocs()
	for b.Loop() {
		if err := verifyOrigin(k.ID, &tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOriginTokenSign is a node's own token, signed once per round.
func BenchmarkOriginTokenSign(b *testing.B) {
	k := mustKey(b)
	b.ReportAllocs()
	var seq uint64
	for b.Loop() {
		seq++
		_ = signOrigin(k, seq)
	}
}

// BenchmarkAnnouncementProcessing is one received 100-route announcement
// after decryption: decode, origin tokens, merge, recompute. "known": every
// token already proven (every neighbour but the first to bring a round's
// tokens); "fresh": every token new and checked (the first).
func BenchmarkAnnouncementProcessing(b *testing.B) {
	for _, fresh := range []bool{false, true} {
		name := "known"
		if fresh {
			name = "fresh"
		}
		b.Run(name, func(b *testing.B) {
			tr, from, msg := routedNeighbour(b, 100, 7)
			var ann wire.Announcement
			tr.handleControl(from, msg, &ann, true)
			if got := tr.routes.provenSeq(from); got != 7 {
				b.Fatalf("neighbour's token not proven (%d)", got)
			}
			b.ReportAllocs()
			for b.Loop() {
				if fresh {
					tr.mu.Lock()
					clear(tr.routes.origins)
					tr.routes.nbrs[from].verifyAt = time.Time{} // a full budget
					tr.mu.Unlock()
				}
				tr.handleControl(from, msg, &ann, true)
			}
			if len(tr.routes.origins) != 100 {
				b.Fatalf("%d destinations proven, want 100", len(tr.routes.origins))
			}
		})
	}
}

// TestOriginTokensTravelBeyondNeighbours: on the line A–B–C, C's tokens
// reach A through B, so A's route to C keeps a proven, advancing sequence
// number (without them it would expire: A never hears C directly).
func TestOriginTokensTravelBeyondNeighbours(t *testing.T) {
	a, b, c, _ := line(t)
	var first uint64
	eventually(t, "A has a proven route to C through B", func() bool {
		r, ok := a.routes.lookup(c.Self())
		first = r.Seq
		return ok && r.NextHop == b.Self() && r.Seq != 0
	})
	eventually(t, "A's route to C advances", func() bool {
		r, ok := a.routes.lookup(c.Self())
		a.mu.Lock()
		proven := a.routes.provenSeq(c.Self())
		a.mu.Unlock()
		return ok && r.NextHop == b.Self() && r.Seq > first+RouteExpiryAnnouncements && r.Seq <= proven
	})
}

// TestNeighbourOwnOriginTakenFromItsSession: a neighbour's token for its
// own route arrives over its authenticated session, so it is learned
// without a signature check (a full mesh checks none), even with a broken
// signature (it only hurts the neighbour's own routes elsewhere); a token
// whose key is not the neighbour's is not taken that way; and a token for
// any other destination still has to verify.
func TestNeighbourOwnOriginTakenFromItsSession(t *testing.T) {
	other := mustKey(t)
	now := time.Now()
	// A neighbour's own route, as routedNeighbour announces it.
	_, from2, msg := routedNeighbour(t, 1, 9)
	var ann wire.Announcement
	if err := wire.ParseAnnouncement(msg, &ann); err != nil {
		t.Fatal(err)
	}
	own := ann.Routes[0].Origin
	own.Signature[0] ^= 1 // broken: taken anyway, it is the sender's own
	tr2, _, _ := routedNeighbour(t, 1, 1)
	tr2.mu.Lock()
	tr2.routes.setNeighbour(from2, netip.MustParseAddrPort("127.0.0.1:10"), 300, true, now)
	routes := []wire.Route{
		{Dest: from2, Seq: 9, Origin: own},
		{Dest: other.ID, Seq: 4, MetricMicros: 10, Hops: 1, Origin: signOrigin(other, 4)},
	}
	tr2.learnOwnOriginLocked(from2, routes, now)
	todo := tr2.routes.tokensToVerify(from2, routes, now, nil)
	proven := tr2.routes.provenSeq(from2)
	tr2.mu.Unlock()
	if proven != 9 {
		t.Fatalf("the neighbour's own token was not taken from its session: proven %d", proven)
	}
	if len(todo) != 1 || routes[todo[0]].Dest != other.ID {
		t.Fatalf("to verify: %v, want only the other destination's token", todo)
	}
	// Posing as the neighbour's own route with another key is not taken.
	forged := signOrigin(other, 20)
	tr2.mu.Lock()
	tr2.learnOwnOriginLocked(from2, []wire.Route{{Dest: from2, Seq: 20, Origin: forged}}, now)
	proven = tr2.routes.provenSeq(from2)
	tr2.mu.Unlock()
	if proven != 9 {
		t.Fatalf("a token under another key was taken as the neighbour's own: proven %d", proven)
	}
}
