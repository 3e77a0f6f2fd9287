package transport

import (
	"net/netip"
	"sync"
	"time"

	"github.com/deck-mesh/deck/node/wire"
)

// outPacket is one datagram's buffer: a packet waiting in a link queue,
// or one of the read loop's receive buffers (which is how a relayed packet
// reaches its next hop without a copy: the buffer it was read into is
// queued as is). Buffers are pooled so sending and relaying allocate
// nothing in steady state.
type outPacket struct {
	// One spare byte past wire.MaxPacketBytes tells an oversized datagram
	// from a full-sized one when the buffer is read into.
	buf [wire.MaxPacketBytes + 1]byte
	n   int32 // not int: with it the struct is 1,408 bytes, an allocator size class (1,416 would take 1,536)
}

var packetPool = sync.Pool{New: func() any { return new(outPacket) }}

func getPacket() *outPacket { return packetPool.Get().(*outPacket) }

func putPacket(p *outPacket) {
	p.n = 0
	packetPool.Put(p)
}

// link is the outbound queue to one next-hop address, drained by its own
// writer goroutine: a slow neighbour delays only its own packets, and a
// full queue drops instead of blocking the reader.
//
// The queue is a mutex-guarded slice the writer swaps out whole, not a
// channel: the read loop hands over a whole batch's relayed packets under
// one lock and wakes the writer once (putBatch), and takes the buffers the
// writer finished with back in the same lock, without a cross-CPU
// sync.Pool steal.
//
// Bulk messages (messaging.Channel.Bulk: blob chunks) wait in a queue of
// their own, which the writer drains only while the control queue is
// empty, at most LinkBulkSlicePackets at a time: a heartbeat, a gossip
// announcement or an admin push queued behind a bulk transfer waits for
// one slice, never for the transfer. A bulk sender waits for room instead
// of being dropped (Transport.sendBulk), so a transfer slows to the link's
// pace and never fills the control queue.
type link struct {
	addr netip.AddrPort
	wake chan struct{} // capacity 1: a token means pending or bulk became non-empty

	mu      sync.Mutex
	pending []*outPacket  // at most LinkQueuePackets, in send order
	bulk    []*outPacket  // bulk messages' packets, about LinkBulkQueuePackets (see putBulk)
	room    chan struct{} // closed when bulk drains to half; nil: nobody waits
	spare   []*outPacket  // written buffers for the read loop, at most linkSpareBuffers
	relays  bool          // the read loop queues here, so spares are worth keeping
	dead    bool          // retired; enqueuers must start a new link
}

// linkSpareBuffers bounds the written buffers a link keeps for the read
// loop: enough for several batches of a busy relay hop, at most about
// 180 KiB per link at wire.MaxPacketBytes. A link the read loop never
// queues on keeps none, and a retired link releases them all.
const linkSpareBuffers = 128

func newLinkQueue(addr netip.AddrPort) *link {
	return &link{addr: addr, wake: make(chan struct{}, 1), pending: make([]*outPacket, 0, 64)}
}

// put queues p (a packet of our own). It reports dead when the link was
// retired (p is not taken) and otherwise whether the packet was queued (a
// full queue drops it, releasing p).
func (l *link) put(p *outPacket) (queued, dead bool) {
	l.mu.Lock()
	if l.dead {
		l.mu.Unlock()
		return false, true
	}
	if len(l.pending) >= LinkQueuePackets {
		l.mu.Unlock()
		putPacket(p)
		return false, false
	}
	l.pending = append(l.pending, p)
	first := len(l.pending) == 1
	l.mu.Unlock()
	if first {
		l.signal()
	}
	return true, false
}

// putBatch queues the read loop's relayed packets for this hop, as many as
// the queue has room for, and moves written buffers from the spares onto
// free up to its capacity: one lock and at most one wake-up for the batch.
// It returns how many of pkts were queued (the rest stay the caller's, to
// drop) and free; dead means the link was retired and took nothing.
func (l *link) putBatch(pkts, free []*outPacket) (queued int, _ []*outPacket, dead bool) {
	l.mu.Lock()
	if l.dead {
		l.mu.Unlock()
		return 0, free, true
	}
	l.relays = true
	wasEmpty := len(l.pending) == 0
	queued = min(len(pkts), LinkQueuePackets-len(l.pending))
	// Element by element: a batch is often a single packet, and the
	// runtime's bulk copy and clear cost more than the loop for a few.
	for _, p := range pkts[:queued] {
		l.pending = append(l.pending, p)
	}
	for len(l.spare) > 0 && len(free) < cap(free) {
		last := len(l.spare) - 1
		free = append(free, l.spare[last])
		l.spare[last] = nil
		l.spare = l.spare[:last]
	}
	l.mu.Unlock()
	if wasEmpty && queued > 0 {
		l.signal()
	}
	return queued, free, false
}

// bulkRoom reports whether n more bulk packets fit, and if not returns a
// channel closed when the writer has drained the bulk queue to half (or
// the link is retired).
func (l *link) bulkRoom(n int) (bool, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dead {
		return true, nil // the put finds it dead and the sender starts a new link
	}
	if len(l.bulk) == 0 || len(l.bulk)+n <= LinkBulkQueuePackets {
		return true, nil
	}
	if l.room == nil {
		l.room = make(chan struct{})
	}
	return false, l.room
}

// putBulk queues one bulk message's packets whole. The cap is soft: a
// sender checks bulkRoom first, so the queue exceeds LinkBulkQueuePackets
// by at most one message per sender racing another. It reports dead when
// the link was retired (nothing is taken).
func (l *link) putBulk(pkts []*outPacket) (dead bool) {
	l.mu.Lock()
	if l.dead {
		l.mu.Unlock()
		return true
	}
	first := len(l.bulk) == 0
	l.bulk = append(l.bulk, pkts...)
	l.mu.Unlock()
	if first {
		l.signal()
	}
	return false
}

// takeNext hands the writer its next batch: every control packet queued,
// or, when there is none, at most LinkBulkSlicePackets bulk packets. It
// wakes bulk senders waiting for room once the bulk queue is down to half.
func (l *link) takeNext(batch []*outPacket) []*outPacket {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) > 0 {
		batch, l.pending = l.pending, batch[:0]
		return batch
	}
	n := min(len(l.bulk), LinkBulkSlicePackets)
	batch = append(batch[:0], l.bulk[:n]...)
	clear(l.bulk[:n])
	l.bulk = l.bulk[n:]
	if len(l.bulk) == 0 {
		l.bulk = l.bulk[:0:0] // let the backing array go once drained
	}
	if l.room != nil && len(l.bulk) <= LinkBulkQueuePackets/2 {
		close(l.room)
		l.room = nil
	}
	return batch
}

func (l *link) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// recycle returns a written batch's buffers: to the spares, for the read
// loop, while the link relays and there is room; the rest to the shared
// pool (outside the lock, so the read loop is not held up). It returns
// batch emptied for reuse.
func (l *link) recycle(batch []*outPacket) []*outPacket {
	kept := 0
	l.mu.Lock()
	if !l.dead && l.relays {
		kept = min(len(batch), linkSpareBuffers-len(l.spare))
		for _, p := range batch[:kept] {
			p.n = 0
			l.spare = append(l.spare, p)
		}
	}
	l.mu.Unlock()
	for i, p := range batch {
		if i >= kept {
			putPacket(p)
		}
		batch[i] = nil
	}
	return batch[:0]
}

// retire marks the link dead if nothing is queued and releases its
// buffers; it reports whether it did.
func (l *link) retire(force bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) > 0 && !force {
		return false
	}
	if len(l.bulk) > 0 && !force {
		return false
	}
	l.dead = true
	for _, p := range l.pending {
		putPacket(p)
	}
	for _, p := range l.bulk {
		putPacket(p)
	}
	for _, p := range l.spare {
		putPacket(p)
	}
	l.pending, l.bulk, l.spare = nil, nil, nil
	if l.room != nil {
		close(l.room)
		l.room = nil
	}
	return true
}

func (l *link) queued() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pending) + len(l.bulk)
}

// enqueue hands p to addr's writer; it takes ownership of p either way.
// Returns false (and counts a drop) when the queue is full, too many links
// exist or addr is not an address. (Relayed packets take the read loop's
// path instead: relay.go.)
func (t *Transport) enqueue(addr netip.AddrPort, p *outPacket) bool {
	for try := 0; addr.IsValid() && try < 2; try++ { // a link retired between lookup and put is replaced once
		l := t.linkTo(addr)
		if l == nil {
			break
		}
		queued, dead := l.put(p)
		if !dead {
			if !queued {
				t.stats.drops.Add(1)
			}
			return queued
		}
	}
	putPacket(p)
	t.stats.drops.Add(1)
	return false
}

// linkTo returns addr's live link, starting one if needed (nil: too many).
func (t *Transport) linkTo(addr netip.AddrPort) *link {
	if l := (*t.links.Load())[addr]; l != nil {
		return l
	}
	return t.newLink(addr)
}

// newLink starts the writer for addr. The link table is copy-on-write so
// the send path looks it up without a lock.
func (t *Transport) newLink(addr netip.AddrPort) *link {
	t.linksMu.Lock()
	defer t.linksMu.Unlock()
	old := *t.links.Load()
	if l := old[addr]; l != nil {
		return l
	}
	if len(old) >= MaxLinks || t.ctx.Err() != nil {
		return nil
	}
	l := newLinkQueue(addr)
	t.setLinkLocked(addr, l)
	t.wg.Add(1)
	go t.writeLoop(l)
	return l
}

// setLinkLocked publishes a new link table with addr set to l (nil: removed).
func (t *Transport) setLinkLocked(addr netip.AddrPort, l *link) {
	old := *t.links.Load()
	next := make(map[netip.AddrPort]*link, len(old)+1)
	for k, v := range old {
		if k != addr {
			next[k] = v
		}
	}
	if l != nil {
		next[addr] = l
	}
	t.links.Store(&next)
}

// writeLoop drains l in batches. A link that sent nothing for a whole
// LinkIdleTimeout is retired (so after 30–60 s of silence), which keeps
// the per-packet path free of timer resets.
func (t *Transport) writeLoop(l *link) {
	defer t.wg.Done()
	idle := time.NewTimer(LinkIdleTimeout)
	defer idle.Stop()
	var batch []*outPacket
	active := false
	for {
		select {
		case <-t.ctx.Done():
			l.retire(true)
			return
		case <-l.wake:
			// Control first, bulk a slice at a time, until both are empty:
			// a control packet queued meanwhile goes out next.
			for {
				batch = l.takeNext(batch)
				if len(batch) == 0 {
					break
				}
				for _, p := range batch {
					t.writePacket(l, p)
				}
				batch = l.recycle(batch)
			}
			active = true
		case <-idle.C:
			if active {
				active = false
				idle.Reset(LinkIdleTimeout)
				continue
			}
			// Retire under linksMu so no enqueue finds the link in the
			// table after it stopped being drained.
			t.linksMu.Lock()
			if l.retire(false) {
				if (*t.links.Load())[l.addr] == l {
					t.setLinkLocked(l.addr, nil)
				}
				t.linksMu.Unlock()
				return
			}
			t.linksMu.Unlock()
			idle.Reset(LinkIdleTimeout)
		}
	}
}

// writePacket sends one datagram; the buffer stays the caller's.
func (t *Transport) writePacket(l *link, p *outPacket) {
	if err := t.conn.WriteTo(p.buf[:p.n], l.addr); err != nil {
		t.stats.drops.Add(1)
		return
	}
	t.stats.packetsOut.Add(1)
	t.stats.bytesOut.Add(uint64(p.n))
}
