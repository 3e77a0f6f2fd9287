package transport

import (
	"math/bits"
	"net/netip"

	"github.com/deck-mesh/deck/node/wire"
)

// The relay path is the read loop's alone, and built around its batches
// (recv.go's handleBatch): a batch of datagrams is read at once, each
// relayed packet is staged under its next hop, and when the batch ends
// each next hop's link takes its packets under one lock, waking its writer
// at most once. Everything a packet touches on the way (duplicate filter,
// rate-limit bucket, staging, buffers, counters) is plain read-loop state,
// so a relayed packet costs no locked instruction of its own: before
// batching, the link's mutex, the rate limiter's atomic token and three
// atomic counters per packet were about half of a forward's cost.
//
// Nothing waits for a later batch: the batch's staged packets are handed
// over before the read loop reads again (and early, if one batch relays to
// more than relayStageHops next hops). A quiet link's batch is one packet,
// so it pays what a packet paid before batching, and a busy relay's cost
// per packet falls with the batch.
//
// A relayed packet is not copied either: the read buffer it arrived in
// (an outPacket) is queued on the next hop's link as it is, and the read
// loop takes a spare buffer in its place, which the link's writer hands
// back once it is written (link.putBatch).

// readBatch is the read loop's receive state: ReadBatchPackets buffers
// and what ReadBatch reports about each.
type readBatch struct {
	bufs  [][]byte
	sizes []int
	from  []netip.AddrPort
	pkts  []*outPacket      // pkts[i] is the buffer behind bufs[i]
	ann   wire.Announcement // scratch for control messages
}

func newReadBatch(n int) *readBatch {
	rb := &readBatch{
		bufs:  make([][]byte, n),
		sizes: make([]int, n),
		from:  make([]netip.AddrPort, n),
		pkts:  make([]*outPacket, n),
	}
	for i := range n {
		rb.pkts[i] = getPacket()
		rb.bufs[i] = rb.pkts[i].buf[:]
	}
	return rb
}

// relayStageHops is how many next hops the read loop stages packets for,
// remembering their links between batches (at most 32: relayState.staged
// is a bitmask). A relay has a handful of neighbours; a batch spread over
// more hands over what it has staged early to make room.
const relayStageHops = 8

// relayFreeBuffers bounds the read loop's spare buffers (two batches'
// worth, about 90 KiB); the links' writers refill them.
const relayFreeBuffers = 2 * ReadBatchPackets

// relayState is the read loop's relay state. Nothing else touches it.
type relayState struct {
	now     int64 // tickNanos when the batch began
	console bool  // consoles never relay

	hops   [relayStageHops]stagedHop
	staged uint32                    // bit i: hops[i] holds packets
	evict  int                       // entry reused next when every one holds packets
	links  *map[netip.AddrPort]*link // the link table the entries' links came from

	free   []*outPacket // spare read buffers, at most relayFreeBuffers
	budget *forwardBudget

	// This batch's counts, added to the shared counters once at its end.
	forwarded, drops uint64
}

// stagedHop is one next hop's packets of the current batch.
type stagedHop struct {
	addr netip.AddrPort // invalid: unused entry
	link *link          // nil: looked up when the batch is handed over
	pkts []*outPacket
}

func newRelayState() relayState {
	r := relayState{
		free:   make([]*outPacket, 0, relayFreeBuffers),
		budget: newForwardBudget(ForwardPacketsPerSecondPerPeer, ForwardBurstPackets, MaxRateLimiterEntries),
	}
	for i := range r.hops {
		r.hops[i].pkts = make([]*outPacket, 0, ReadBatchPackets)
	}
	return r
}

// stage queues p for next until the batch ends.
func (t *Transport) stage(next netip.AddrPort, p *outPacket) {
	r := &t.relay
	room := -1
	for i := range r.hops {
		h := &r.hops[i]
		if h.addr == next {
			h.pkts = append(h.pkts, p)
			r.staged |= 1 << i
			return
		}
		if len(h.pkts) == 0 && (room < 0 || !h.addr.IsValid() && r.hops[room].addr.IsValid()) {
			room = i // prefer an unused entry over another hop's cached link
		}
	}
	if room < 0 {
		t.flushRelay() // more next hops than entries in this batch
		room = r.evict
		r.evict = (r.evict + 1) % relayStageHops
	}
	h := &r.hops[room]
	h.addr, h.link = next, nil
	h.pkts = append(h.pkts, p)
	r.staged |= 1 << room
}

// flushRelay hands every next hop its staged packets and adds the batch's
// counts to the shared counters.
func (t *Transport) flushRelay() {
	r := &t.relay
	if tbl := t.links.Load(); tbl != r.links {
		// A link started or retired: forget the links held, so none is
		// served after the table dropped it.
		r.links = tbl
		for i := range r.hops {
			r.hops[i].link = nil
		}
	}
	for staged := r.staged; staged != 0; staged &= staged - 1 {
		t.flushHop(&r.hops[bits.TrailingZeros32(staged)])
	}
	r.staged = 0
	if r.forwarded > 0 {
		t.stats.forwarded.Add(r.forwarded)
		r.forwarded = 0
	}
	if r.drops > 0 {
		t.stats.drops.Add(r.drops)
		r.drops = 0
	}
}

func (t *Transport) flushHop(h *stagedHop) {
	r := &t.relay
	for try := 0; try < 2; try++ { // a link retired since it was looked up is replaced once
		if h.link == nil {
			if h.link = t.linkTo(h.addr); h.link == nil {
				break // too many links
			}
		}
		queued, free, dead := h.link.putBatch(h.pkts, r.free)
		r.free = free
		if dead {
			h.link = nil
			continue
		}
		r.forwarded += uint64(queued)
		r.release(h.pkts[queued:]) // the queue was full
		h.empty()
		return
	}
	r.release(h.pkts)
	h.empty()
}

// empty forgets the hop's packets (now a link's, or dropped).
func (h *stagedHop) empty() {
	for i := range h.pkts {
		h.pkts[i] = nil
	}
	h.pkts = h.pkts[:0]
}

// release takes back the buffers of relayed packets that were dropped.
func (r *relayState) release(pkts []*outPacket) {
	r.drops += uint64(len(pkts))
	for _, p := range pkts {
		if len(r.free) < cap(r.free) {
			p.n = 0
			r.free = append(r.free, p)
		} else {
			putPacket(p)
		}
	}
}

// buffer is a read buffer to replace one handed to a link.
func (r *relayState) buffer() *outPacket {
	if n := len(r.free); n > 0 {
		p := r.free[n-1]
		r.free[n-1] = nil
		r.free = r.free[:n-1]
		return p
	}
	return getPacket()
}

// forwardBudget is what each previous hop may make us relay
// (ForwardPacketsPerSecondPerPeer, burst ForwardBurstPackets): a token
// bucket per source address, in a capped table. It belongs to the read
// loop, so a packet's check is plain arithmetic, with no lock, atomic or
// clock read: buckets refill lazily from the tick loop's coarse clock
// (tickNanos, read once per batch), so credit arrives tick by tick as it
// did when the tick loop refilled every bucket itself.
//
// When the table is full, the sources whose bucket has refilled (idle: a
// full bucket carries no information) are swept, at most once per tick;
// if none is idle the new source is refused until the next tick, which is
// the safe answer under a flood of spoofed sources and keeps the sweep's
// cost to one pass per tick however many sources knock.
type forwardBudget struct {
	perNano float64 // tokens per nanosecond
	burst   int64
	max     int
	buckets map[netip.AddrPort]*forwardBucket
	cache   hopCache[*forwardBucket]
	sweptAt int64 // clock of the last sweep
}

type forwardBucket struct {
	tokens int64
	at     int64 // clock of the last refill
}

func newForwardBudget(perSecond, burst float64, max int) *forwardBudget {
	return &forwardBudget{
		perNano: perSecond / 1e9,
		burst:   int64(burst),
		max:     max,
		buckets: make(map[netip.AddrPort]*forwardBucket),
	}
}

// allow spends one of src's tokens at clock now.
func (b *forwardBudget) allow(src netip.AddrPort, now int64) bool {
	k, ok := b.cache.get(src)
	if !ok {
		if k = b.bucket(src, now); k == nil {
			return false
		}
		b.cache.put(src, k)
	}
	if k.at != now {
		b.refill(k, now)
	}
	if k.tokens <= 0 {
		return false
	}
	k.tokens--
	return true
}

// refill credits k for the clock's advance since its last refill.
func (b *forwardBudget) refill(k *forwardBucket, now int64) {
	if add := float64(now-k.at) * b.perNano; add >= 1 {
		k.tokens = min(b.burst, k.tokens+int64(min(add, float64(b.burst))))
		k.at = now
	}
}

// bucket finds or makes src's bucket; nil when the table is full.
func (b *forwardBudget) bucket(src netip.AddrPort, now int64) *forwardBucket {
	if k := b.buckets[src]; k != nil {
		return k
	}
	if len(b.buckets) >= b.max {
		if b.sweptAt == now {
			return nil // swept this tick already
		}
		b.sweep(now)
		if len(b.buckets) >= b.max {
			return nil
		}
	}
	k := &forwardBucket{tokens: b.burst, at: now}
	b.buckets[src] = k
	return k
}

// sweep forgets every source whose bucket has refilled, and empties the
// cache, which may hold them.
func (b *forwardBudget) sweep(now int64) {
	b.sweptAt = now
	for src, k := range b.buckets {
		b.refill(k, now)
		if k.tokens >= b.burst {
			delete(b.buckets, src)
		}
	}
	b.cache.reset()
}
