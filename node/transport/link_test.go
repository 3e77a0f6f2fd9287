package transport

import (
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/wire"
)

// TestLinkQueueBoundsAndOrder: packets leave in the order they were queued,
// a batch is taken as far as the queue has room (the caller drops the
// rest), the writer is woken once per batch, written buffers go back to
// the read loop through the spares (bounded, and kept only for a link that
// relays), and a retired link refuses everything.
func TestLinkQueueBoundsAndOrder(t *testing.T) {
	l := newLinkQueue(netip.MustParseAddrPort("127.0.0.1:9"))
	packet := func(i int) *outPacket {
		p := getPacket()
		p.buf[0], p.buf[1], p.n = byte(i), byte(i>>8), 2
		return p
	}
	if queued, dead := l.put(packet(0)); !queued || dead {
		t.Fatalf("own packet refused (dead %v)", dead)
	}
	batch := make([]*outPacket, 0, LinkQueuePackets)
	for i := 1; i <= LinkQueuePackets; i++ {
		batch = append(batch, packet(i))
	}
	queued, free, dead := l.putBatch(batch, make([]*outPacket, 0, 4))
	if dead || queued != LinkQueuePackets-1 || len(free) != 0 {
		t.Fatalf("batch into a queue with room for %d: queued %d, dead %v, %d buffers back", LinkQueuePackets-1, queued, dead, len(free))
	}
	select {
	case <-l.wake:
	default:
		t.Fatal("no wake-up token after the first packet")
	}
	if queued, dead := l.put(packet(0)); queued || dead {
		t.Fatalf("full queue accepted a packet (queued %v dead %v)", queued, dead)
	}
	if queued, _, _ := l.putBatch(batch[len(batch)-1:], free); queued != 0 {
		t.Fatal("full queue accepted a relayed packet")
	}
	taken := l.takeNext(nil)
	if len(taken) != LinkQueuePackets {
		t.Fatalf("took %d packets", len(taken))
	}
	for i, p := range taken {
		if p.n != 2 || p.buf[0] != byte(i) || p.buf[1] != byte(i>>8) {
			t.Fatalf("packet %d out of order or damaged: % x", i, p.buf[:p.n])
		}
	}
	taken = l.recycle(taken)
	if len(taken) != 0 || len(l.spare) != linkSpareBuffers {
		t.Fatalf("after recycle: batch %d spare %d (max %d)", len(taken), len(l.spare), linkSpareBuffers)
	}
	if l.spare[0].n != 0 {
		t.Fatal("recycled buffer not reset")
	}
	// The queue is empty again, so the next batch signals again, and the
	// read loop gets written buffers back up to its free list's capacity.
	queued, free, _ = l.putBatch([]*outPacket{packet(7), packet(8)}, free)
	if queued != 2 || len(free) != cap(free) || len(l.spare) != linkSpareBuffers-cap(free) {
		t.Fatalf("queued %d, %d buffers back (room %d), %d spares left", queued, len(free), cap(free), len(l.spare))
	}
	select {
	case <-l.wake:
	default:
		t.Fatal("no wake-up token after the queue emptied and refilled")
	}
	if l.retire(false) {
		t.Fatal("retired a link with a queued packet")
	}
	if !l.retire(true) || len(l.spare) != 0 || l.queued() != 0 {
		t.Fatal("forced retire kept buffers")
	}
	if queued, dead := l.put(getPacket()); queued || !dead {
		t.Fatalf("retired link: queued %v dead %v", queued, dead)
	}
	if _, _, dead := l.putBatch([]*outPacket{packet(9)}, free); !dead {
		t.Fatal("retired link took a relayed batch")
	}

	// A link that only carries our own packets keeps no spares: nobody
	// would take them back.
	own := newLinkQueue(netip.MustParseAddrPort("127.0.0.1:10"))
	own.put(packet(1))
	own.recycle(own.takeNext(nil))
	if len(own.spare) != 0 {
		t.Fatalf("a link that never relayed kept %d spares", len(own.spare))
	}
}

// TestHopCacheReplacesAndResets: the read loop's cache serves hits,
// replaces round-robin, and forgets everything on reset (a swept bucket is
// never served from it).
func TestHopCacheReplacesAndResets(t *testing.T) {
	var c hopCache[int]
	addr := func(port uint16) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	}
	for i := range hopCacheSize + 1 {
		c.put(addr(uint16(i+1)), i+1)
	}
	if _, ok := c.get(addr(1)); ok {
		t.Fatal("oldest entry survived a full round of puts")
	}
	for i := 2; i <= hopCacheSize+1; i++ {
		if v, ok := c.get(addr(uint16(i))); !ok || v != i {
			t.Fatalf("entry %d: %v %v", i, v, ok)
		}
	}
	c.reset()
	if _, ok := c.get(addr(2)); ok {
		t.Fatal("entry served after a reset")
	}
}

// relayFixture is a transport (not started: the test plays its read loop)
// with direct neighbours 0x1000+i at 127.0.0.1:9000+i, and a link without
// a writer for each (the test plays the writer).
func relayFixture(t testing.TB, hops int) (*Transport, []netip.AddrPort, []*link) {
	t.Helper()
	tr, err := New(testConfig(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	var addrs []netip.AddrPort
	var links []*link
	now := time.Now()
	tr.mu.Lock()
	for i := range hops {
		a := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(9000+i))
		tr.routes.setNeighbour(identity.NodeID(0x1000+i), a, 300, true, now)
		addrs = append(addrs, a)
	}
	tr.routes.recompute(now, time.Hour)
	tr.mu.Unlock()
	tr.linksMu.Lock()
	for _, a := range addrs {
		l := newLinkQueue(a)
		tr.setLinkLocked(a, l)
		links = append(links, l)
	}
	tr.linksMu.Unlock()
	return tr, addrs, links
}

// relayPacket is a data packet from 0x3333 to dst with counter c.
func relayPacket(dst identity.NodeID, c uint64) []byte {
	pkt := make([]byte, wire.HeaderSize+100)
	h := wire.Header{Version: wire.Version, Type: wire.TypeData, Src: 0x3333, Dst: dst, TTL: wire.DefaultTTL, Counter: c}
	h.Encode(pkt)
	return pkt
}

// TestRelayBatchReachesEveryHopBeforeTheNextRead: when the batch handler
// returns, every relayed packet of the batch is on its next hop's queue,
// in arrival order, with its TTL decremented and its writer woken, and
// counted; the read buffers that went to links were replaced. A batch
// spread over more next hops than the read loop stages for at once loses
// nothing either.
func TestRelayBatchReachesEveryHopBeforeTheNextRead(t *testing.T) {
	const hops = relayStageHops + 3
	tr, _, links := relayFixture(t, hops)
	from := netip.MustParseAddrPort("127.0.0.1:10")
	rb := newReadBatch(ReadBatchPackets)
	before := append([]*outPacket(nil), rb.pkts...)
	for i := range ReadBatchPackets {
		rb.sizes[i] = copy(rb.bufs[i], relayPacket(identity.NodeID(0x1000+i%hops), uint64(i+1)))
		rb.from[i] = from
	}
	tr.handleBatch(rb, ReadBatchPackets)
	if got := tr.Stats().Forwarded; got != ReadBatchPackets {
		t.Fatalf("forwarded %d of %d (drops %d)", got, ReadBatchPackets, tr.Stats().Drops)
	}
	for h, l := range links {
		select {
		case <-l.wake:
		default:
			t.Fatalf("hop %d: writer not woken", h)
		}
		queued := l.takeNext(nil)
		var want []uint64
		for i := h; i < ReadBatchPackets; i += hops {
			want = append(want, uint64(i+1))
		}
		if len(queued) != len(want) {
			t.Fatalf("hop %d: %d packets queued, want %d", h, len(queued), len(want))
		}
		for j, p := range queued {
			var hd wire.Header
			if err := hd.Parse(p.buf[:p.n]); err != nil || hd.Counter != want[j] || hd.TTL != wire.DefaultTTL-1 {
				t.Fatalf("hop %d packet %d: counter %d ttl %d (%v), want counter %d ttl %d", h, j, hd.Counter, hd.TTL, err, want[j], wire.DefaultTTL-1)
			}
		}
	}
	for i, p := range rb.pkts {
		if p == before[i] || &rb.bufs[i][0] != &p.buf[0] {
			t.Fatalf("read buffer %d not replaced after its packet went to a link", i)
		}
	}
}

// TestRelayReplacesRetiredLink: after a link retires, the relay path
// starts a fresh one instead of queueing into the dead one it remembers.
func TestRelayReplacesRetiredLink(t *testing.T) {
	tr, addrs, links := relayFixture(t, 1)
	from := netip.MustParseAddrPort("127.0.0.1:10")
	rb := newReadBatch(1)
	receive(tr, rb, from, relayPacket(0x1000, 1))
	if links[0].queued() != 1 {
		t.Fatal("first packet not queued on the link")
	}
	// Retire it the way the idle writer does.
	tr.linksMu.Lock()
	links[0].retire(true)
	tr.setLinkLocked(addrs[0], nil)
	tr.linksMu.Unlock()
	receive(tr, rb, from, relayPacket(0x1000, 2))
	if got := tr.Stats().Forwarded; got != 2 {
		t.Fatalf("forwarded %d of 2 after the link retired (drops %d)", got, tr.Stats().Drops)
	}
	if l := (*tr.links.Load())[addrs[0]]; l == nil || l == links[0] {
		t.Fatal("relay path kept the retired link")
	}
}

// TestForwardBudget: a previous hop gets its burst, then what the tick
// clock credits at its rate, never more than the burst; a full table takes
// a new source only once an idle one is swept, and sweeps at most once per
// tick however many new sources knock.
func TestForwardBudget(t *testing.T) {
	const second = int64(time.Second)
	b := newForwardBudget(2, 3, 2)
	src := func(port uint16) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	}
	spend := func(a netip.AddrPort, now int64) (n int) {
		for b.allow(a, now) {
			n++
		}
		return n
	}
	now := 10 * second
	if got := spend(src(1), now); got != 3 {
		t.Fatalf("burst: %d packets, want 3", got)
	}
	if got := spend(src(1), now+second); got != 2 {
		t.Fatalf("after 1 s at 2/s: %d packets, want 2", got)
	}
	if got := spend(src(1), now+100*second); got != 3 {
		t.Fatalf("after a long pause: %d packets, want the burst of 3", got)
	}
	now += 100 * second
	if got := spend(src(2), now); got != 3 {
		t.Fatalf("second source: %d packets", got)
	}
	// Table full (2), both sources busy: a third is refused, and the
	// sweep that found nothing idle is not repeated within the tick.
	if b.allow(src(3), now) || b.sweptAt != now || len(b.buckets) != 2 {
		t.Fatalf("full table: third source allowed, or no sweep (swept at %d, %d buckets)", b.sweptAt, len(b.buckets))
	}
	b.buckets[src(2)].tokens = b.burst // would be idle, but not until a sweep looks
	if b.allow(src(4), now) {
		t.Fatal("a second sweep ran within the same tick")
	}
	// A tick later, both buckets have refilled: they are swept, the new
	// source gets a full bucket and the cache serves no swept one.
	now += 2 * second
	if got := spend(src(3), now); got != 3 || len(b.buckets) != 1 {
		t.Fatalf("after the sweep: %d packets, %d buckets", got, len(b.buckets))
	}
	if got := spend(src(1), now); got != 3 || len(b.buckets) != 2 {
		t.Fatalf("a swept source came back with %d packets, %d buckets", got, len(b.buckets))
	}
}

// TestOutPacketSizeClass: a packet buffer with the read loop's spare byte
// still fits the allocator's 1,408-byte size class, so every queued or
// pooled packet costs what it did before buffers were read into.
func TestOutPacketSizeClass(t *testing.T) {
	if size := unsafe.Sizeof(outPacket{}); size > 1408 {
		t.Fatalf("outPacket is %d bytes: the next size class is 1,536", size)
	}
}

// TestLinkControlBeforeBulk: the writer takes every control packet before
// any bulk one, and bulk only a slice at a time, so a control packet
// queued behind a bulk transfer waits one slice; a bulk sender is told to
// wait when the bulk queue is full and woken when it drains to half.
func TestLinkControlBeforeBulk(t *testing.T) {
	l := newLinkQueue(netip.MustParseAddrPort("127.0.0.1:9"))
	mk := func(tag byte) *outPacket {
		p := getPacket()
		p.buf[0], p.n = tag, 1
		return p
	}
	bulk := make([]*outPacket, LinkBulkQueuePackets)
	for i := range bulk {
		bulk[i] = mk('b')
	}
	if ok, _ := l.bulkRoom(len(bulk)); !ok {
		t.Fatal("an empty bulk queue has no room")
	}
	if dead := l.putBulk(bulk); dead {
		t.Fatal("live link refused bulk")
	}
	ok, room := l.bulkRoom(1)
	if ok || room == nil {
		t.Fatal("a full bulk queue has room")
	}
	if queued, _ := l.put(mk('c')); !queued {
		t.Fatal("control refused while bulk is full")
	}
	batch := l.takeNext(nil)
	if len(batch) != 1 || batch[0].buf[0] != 'c' {
		t.Fatalf("first batch: %d packets, first %q", len(batch), batch[0].buf[0])
	}
	batch = l.recycle(batch)
	taken := 0
	for {
		batch = l.takeNext(batch)
		if len(batch) == 0 {
			break
		}
		if len(batch) > LinkBulkSlicePackets {
			t.Fatalf("a bulk slice of %d packets", len(batch))
		}
		taken += len(batch)
		if taken == LinkBulkSlicePackets {
			// A control packet queued mid-transfer goes out next.
			l.put(mk('c'))
			batch = l.recycle(batch)
			batch = l.takeNext(batch)
			if len(batch) != 1 || batch[0].buf[0] != 'c' {
				t.Fatal("control packet waited behind more than one bulk slice")
			}
		}
		batch = l.recycle(batch)
		if taken >= LinkBulkQueuePackets/2 {
			select {
			case <-room:
			default:
				t.Fatalf("bulk sender not woken with %d of %d packets left", LinkBulkQueuePackets-taken, LinkBulkQueuePackets)
			}
		}
	}
	if taken != LinkBulkQueuePackets {
		t.Fatalf("took %d bulk packets", taken)
	}
}
