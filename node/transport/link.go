package transport

import (
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deck-mesh/deck/node/wire"
)

// outPacket is one datagram waiting in a link queue. Buffers are pooled so
// sending and relaying allocate nothing in steady state.
type outPacket struct {
	buf [wire.MaxPacketBytes]byte
	n   int
	due time.Time // zero: send now; else not before (impairment delay)
}

var packetPool = sync.Pool{New: func() any { return new(outPacket) }}

func getPacket() *outPacket { return packetPool.Get().(*outPacket) }

func putPacket(p *outPacket) {
	p.n = 0
	p.due = time.Time{}
	packetPool.Put(p)
}

// link is the outbound queue to one next-hop address, drained by its own
// writer goroutine: a slow or impaired neighbour delays only its own
// packets, and a full queue drops instead of blocking the reader.
type link struct {
	addr netip.AddrPort
	q    chan *outPacket
	dead atomic.Bool // retired; a packet that raced into q is lost, like any datagram
}

// impairment is a fault injected on one peer's link (the demo's Impair).
type impairment struct {
	delay time.Duration
	loss  float64
}

func (im impairment) drop() bool { return im.loss > 0 && rand.Float64() < im.loss }

// enqueue hands p to addr's writer; it takes ownership of p either way.
// Returns false (and counts a drop) when the queue is full, too many links
// exist, the transport is paused or the link is blocked or lossy.
func (t *Transport) enqueue(addr netip.AddrPort, p *outPacket) bool {
	if t.paused.Load() || !addr.IsValid() {
		putPacket(p)
		t.stats.drops.Add(1)
		return false
	}
	if t.anyFaults.Load() {
		blocked, im := t.faultsFor(addr)
		if blocked || im.drop() {
			putPacket(p)
			t.stats.drops.Add(1)
			return false
		}
		if im.delay > 0 {
			p.due = time.Now().Add(im.delay)
		}
	}
	l := (*t.links.Load())[addr]
	if l == nil || l.dead.Load() {
		if l = t.newLink(addr); l == nil {
			putPacket(p)
			t.stats.drops.Add(1)
			return false
		}
	}
	select {
	case l.q <- p:
		return true
	default:
		putPacket(p)
		t.stats.drops.Add(1)
		return false
	}
}

// newLink starts the writer for addr. The link table is copy-on-write so
// the send path looks it up without a lock.
func (t *Transport) newLink(addr netip.AddrPort) *link {
	t.linksMu.Lock()
	defer t.linksMu.Unlock()
	old := *t.links.Load()
	if l := old[addr]; l != nil && !l.dead.Load() {
		return l
	}
	if len(old) >= MaxLinks || t.ctx.Err() != nil {
		return nil
	}
	l := &link{addr: addr, q: make(chan *outPacket, LinkQueuePackets)}
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

func (t *Transport) writeLoop(l *link) {
	defer t.wg.Done()
	idle := time.NewTimer(LinkIdleTimeout)
	defer idle.Stop()
	for {
		select {
		case <-t.ctx.Done():
			t.drainLink(l)
			return
		case p := <-l.q:
			t.writePacket(l, p)
			if !idle.Stop() {
				select {
				case <-idle.C:
				default:
				}
			}
			idle.Reset(LinkIdleTimeout)
		case <-idle.C:
			// Retire under linksMu so no enqueue can slip a packet into a
			// queue nobody reads any more.
			t.linksMu.Lock()
			if len(l.q) == 0 {
				l.dead.Store(true)
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

func (t *Transport) drainLink(l *link) {
	l.dead.Store(true)
	for {
		select {
		case p := <-l.q:
			putPacket(p)
		default:
			return
		}
	}
}

func (t *Transport) writePacket(l *link, p *outPacket) {
	defer putPacket(p)
	if !p.due.IsZero() {
		if d := time.Until(p.due); d > 0 {
			tm := time.NewTimer(d)
			select {
			case <-tm.C:
			case <-t.ctx.Done():
				tm.Stop()
				return
			}
		}
	}
	if t.paused.Load() {
		t.stats.drops.Add(1)
		return
	}
	if _, err := t.conn.WriteToUDPAddrPort(p.buf[:p.n], l.addr); err != nil {
		t.stats.drops.Add(1)
		return
	}
	t.stats.packetsOut.Add(1)
	t.stats.bytesOut.Add(uint64(p.n))
}
