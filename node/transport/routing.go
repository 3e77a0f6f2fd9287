package transport

import (
	"cmp"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/wire"
)

// Route is the best known way to a destination.
type Route struct {
	Dest     identity.NodeID
	NextHop  identity.NodeID
	NextAddr netip.AddrPort
	Metric   uint32 // microseconds: sum of link RTTs plus HopPenaltyMicros per hop
	Hops     uint8
	Seq      uint64 // destination-originated; higher is fresher
}

// routeTable is a distance-vector table (DSDV-like). Each neighbour's
// latest announcement is kept as candidates per destination, so when a
// next hop turns Suspect the best alternative is picked at once, without
// waiting for a new round of announcements.
//
// A route is replaced only by a strictly better one (lower metric, among
// fresh candidates) or a fresher one (the current route's sequence lags the
// freshest known by more than RouteSeqSlack). Updates from the current next
// hop are always taken, so metric increases propagate. Candidates whose
// sequence stopped advancing expire, which also ends counting to infinity:
// a loop can only repeat old sequence numbers.
//
// Two rules stop a neighbour from hijacking a destination by freshness
// alone (issue 12):
//   - a live direct link wins: while a neighbour is up (an authenticated
//     packet from it arrived directly, recently, and it is Healthy; see
//     updateNeighboursLocked), the route to it is the link, whatever any
//     other neighbour announces;
//   - a sequence number counts only as far as its destination signed it
//     (origin.go): an announced one above the freshest proven is clamped.
//
// What a malicious certified member can still do. It holds the PSK and a
// certificate, so it is a neighbour like any other, and distance-vector
// metrics are each announcer's own claim: it can announce any destination
// at the freshest proven sequence number with a metric of 0 (or withdraw
// routes it really has) and so attract the traffic for which it is a
// plausible path: destinations that are not our direct neighbours, when
// its link to us plus its claimed 0 beats the honest alternatives (and,
// through our announcements, the same for nodes that route through us).
// What it gets is the packets, not their contents: payloads are end-to-end
// encrypted and authenticated between source and destination (relays hold
// no keys), so it can drop or delay them, not read, forge or replay them.
// It is bounded: it cannot outrank a direct link (rule one), cannot make an
// honest route stale (rule two), and it cannot hide what it drops: the
// senders' heartbeats take the same route, so the victim's failure
// detector (and the snapshot it gossips) shows them Suspect. Signing
// metrics too (SEAD's hash chains) would bound the lie to "no shorter than
// the truth"; not done.
//
// Writers are serialised by the transport's peer lock; readers (the relay
// hot path) take no lock at all.
type routeTable struct {
	self    identity.NodeID
	maxDest int

	// best is replaced whole on every recompute (copy on write), so the
	// relay's lookup is one atomic load and a map read, no lock.
	best atomic.Pointer[map[identity.NodeID]Route]

	nbrs map[identity.NodeID]*neighbour
	gen  uint64

	// origins holds each destination's freshest verified origin token
	// (origin.go), at most maxDest; selfOrigin is our own for this round.
	origins    map[identity.NodeID]*originProof
	selfOrigin wire.OriginToken
	// reverifyAfter: a destination's proof is advanced (a newer token
	// verified) at most this often; 0 checks every newer token.
	reverifyAfter time.Duration
}

type neighbour struct {
	id    identity.NodeID
	addr  netip.AddrPort
	link  uint32 // link metric, microseconds
	up    bool
	cands map[identity.NodeID]*candidate

	// The neighbour's budget of origin token checks (takeVerification).
	verifyBudget float64
	verifyAt     time.Time
}

type candidate struct {
	seq    uint64
	metric uint32
	hops   uint8
	heard  time.Time // when seq last advanced
	gen    uint64
}

func newRouteTable(self identity.NodeID, maxDest int) *routeTable {
	rt := &routeTable{
		self:    self,
		maxDest: maxDest,
		nbrs:    make(map[identity.NodeID]*neighbour),
		origins: make(map[identity.NodeID]*originProof),
	}
	empty := make(map[identity.NodeID]Route)
	rt.best.Store(&empty)
	return rt
}

// lookup is the relay's route lookup.
func (rt *routeTable) lookup(dst identity.NodeID) (Route, bool) {
	r, ok := (*rt.best.Load())[dst]
	return r, ok
}

// routes returns a copy of the table sorted by destination.
func (rt *routeTable) routes() []Route {
	best := *rt.best.Load()
	out := make([]Route, 0, len(best))
	for _, r := range best {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Route) int { return cmp.Compare(a.Dest, b.Dest) })
	return out
}

// setNeighbour records a direct link's state and metric.
func (rt *routeTable) setNeighbour(id identity.NodeID, addr netip.AddrPort, link uint32, up bool, now time.Time) {
	n := rt.nbrs[id]
	if n == nil {
		if !up || len(rt.nbrs) >= rt.maxDest {
			return
		}
		n = &neighbour{id: id, cands: make(map[identity.NodeID]*candidate)}
		rt.nbrs[id] = n
		// The neighbour itself is reachable over the link before its first
		// announcement arrives; sequence 0 loses to any announced route.
		n.cands[id] = &candidate{heard: now}
	}
	n.addr, n.link, n.up = addr, max(link, 1), up
}

// removeNeighbour forgets a link entirely.
func (rt *routeTable) removeNeighbour(id identity.NodeID) { delete(rt.nbrs, id) }

// apply records neighbour from's full announcement. Destinations it no
// longer lists are withdrawn. Each route's sequence number is believed up
// to the freshest one its destination has proven (origin.go): verify the
// announcement's tokens and learnOrigin them first.
func (rt *routeTable) apply(from identity.NodeID, routes []wire.Route, now time.Time) bool {
	n := rt.nbrs[from]
	if n == nil || !n.up {
		return false
	}
	rt.gen++
	for i := range routes {
		r := &routes[i]
		if r.Dest == rt.self {
			continue
		}
		seq := min(r.Seq, rt.provenSeq(r.Dest))
		c := n.cands[r.Dest]
		if c == nil {
			if len(n.cands) >= rt.maxDest {
				continue
			}
			c = &candidate{heard: now}
			n.cands[r.Dest] = c
		} else if seq < c.seq {
			c.gen = rt.gen // older news than we have: keep ours
			continue
		}
		if seq > c.seq {
			c.heard = now
		}
		c.seq, c.metric, c.hops, c.gen = seq, r.MetricMicros, r.Hops, rt.gen
	}
	for d, c := range n.cands {
		if c.gen != rt.gen && d != from {
			delete(n.cands, d)
		}
	}
	return true
}

// recompute rebuilds the best routes from the candidates: a neighbour that
// is up is reached over its link; every other destination by the rule in
// routeTable's comment.
func (rt *routeTable) recompute(now time.Time, expiry time.Duration) {
	type choice struct {
		nbr    *neighbour
		c      *candidate
		metric uint32
	}
	valid := func(n *neighbour, c *candidate) (uint32, bool) {
		if !n.up || c.metric == wire.MetricInfinity || int(c.hops)+1 >= wire.DefaultTTL {
			return 0, false
		}
		if now.Sub(c.heard) > expiry {
			return 0, false
		}
		m := uint64(c.metric) + uint64(n.link)
		if m >= uint64(wire.MetricInfinity) {
			return 0, false
		}
		return uint32(m), true
	}
	// Expire dead candidates and proofs so the maps stay bounded by live
	// routes.
	for _, n := range rt.nbrs {
		for d, c := range n.cands {
			if now.Sub(c.heard) > 2*expiry && d != n.id {
				delete(n.cands, d)
			}
		}
	}
	rt.expireOrigins(now, 2*expiry)
	next := make(map[identity.NodeID]Route)
	for id, n := range rt.nbrs {
		if !n.up {
			continue
		}
		// A live direct link outranks any announcement: no neighbour's
		// sequence number or metric can route our traffic for a direct
		// neighbour through someone else.
		var seq uint64
		if c := n.cands[id]; c != nil {
			seq = c.seq
		}
		next[id] = Route{Dest: id, NextHop: id, NextAddr: n.addr, Metric: n.link, Hops: 1, Seq: seq}
	}
	byDest := make(map[identity.NodeID][]choice)
	maxSeq := make(map[identity.NodeID]uint64)
	for _, n := range rt.nbrs {
		for d, c := range n.cands {
			if _, direct := next[d]; direct {
				continue
			}
			m, ok := valid(n, c)
			if !ok {
				continue
			}
			byDest[d] = append(byDest[d], choice{n, c, m})
			if c.seq > maxSeq[d] {
				maxSeq[d] = c.seq
			}
		}
	}
	old := *rt.best.Load()
	for d, cs := range byDest {
		fresh := func(c *candidate) bool { return c.seq >= maxSeq[d] || maxSeq[d]-c.seq <= RouteSeqSlack }
		var alt, cur *choice
		for i := range cs {
			ch := &cs[i]
			if o, ok := old[d]; ok && o.NextHop == ch.nbr.id {
				cur = ch
			}
			if !fresh(ch.c) {
				continue
			}
			if alt == nil || ch.metric < alt.metric || (ch.metric == alt.metric && ch.nbr.id < alt.nbr.id) {
				alt = ch
			}
		}
		pick := alt
		if cur != nil && fresh(cur.c) && cur.metric <= alt.metric {
			pick = cur // not strictly worse and not stale: keep it
		}
		if pick == nil {
			continue
		}
		next[d] = Route{
			Dest: d, NextHop: pick.nbr.id, NextAddr: pick.nbr.addr,
			Metric: pick.metric, Hops: pick.c.hops + 1, Seq: pick.c.seq,
		}
	}
	rt.best.Store(&next)
}

// announcement builds the routes to tell neighbour to: ourselves with our
// own origin token, then every best route with the freshest token we hold
// for its destination, poisoned (infinite) when it goes through to itself
// so to never routes back through us (poisoned reverse). Direct neighbours
// carry their address so to can try reaching them directly, unless the
// address means something else at to (a loopback address to a peer on
// another host: shareableWith). Past
// wire.MaxOriginTokensPerAnnouncement routes, tokens go to the first ones
// in map order, a different subset each round.
func (rt *routeTable) announcement(to identity.NodeID, out []wire.Route) []wire.Route {
	out = append(out[:0], wire.Route{Dest: rt.self, Seq: rt.selfOrigin.Seq, Origin: rt.selfOrigin})
	tokens := 1
	var toAddr netip.AddrPort
	if n := rt.nbrs[to]; n != nil {
		toAddr = n.addr
	}
	for d, r := range *rt.best.Load() {
		if d == to || len(out) >= wire.MaxAnnouncementEntries {
			continue
		}
		wr := wire.Route{Dest: d, Seq: r.Seq, MetricMicros: r.Metric, Hops: r.Hops}
		if r.NextHop == to {
			wr.MetricMicros = wire.MetricInfinity
		}
		if n := rt.nbrs[d]; n != nil && n.up && shareableWith(n.addr, toAddr) {
			wr.Addr = n.addr
		}
		if p := rt.origins[d]; p != nil && tokens < wire.MaxOriginTokensPerAnnouncement {
			wr.Origin = p.tok
			tokens++
		}
		out = append(out, wr)
	}
	return out
}
