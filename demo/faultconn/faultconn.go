// Package faultconn is the demo's fault injection: a transport.Conn
// wrapper that pauses a node (drops everything in and out), blocks its
// link to a peer, or delays and drops a fraction of the packets on it.
// The transport below knows nothing of it; to the mesh the faults look
// like a real network misbehaving.
//
// Faults are named by peer NodeID, as the demo's operator names them. The
// wrapper maps addresses to ids by reading the header of the packets it
// receives: a direct packet (TTL wire.DefaultTTL, never relayed) comes
// from the address of its Src. A peer's address is learned from the first
// packet it sends; until then only the peer's end can drop the link, which
// is why the demo sets every fault on both ends.
package faultconn

import (
	"container/heap"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/transport"
	"github.com/deck-mesh/deck/node/wire"
)

// Bounds of one wrapper.
const (
	// MaxLearnedAddrs bounds the address → id map; when full it is
	// cleared and relearned from the next packets (peers speak every
	// heartbeat).
	MaxLearnedAddrs = 1024
	// MaxDelayedPackets bounds the packets held back by Impair's delay;
	// past it they are dropped, as a full router queue does.
	MaxDelayedPackets = 4096
)

// Impairment is a slow link: delay added to what this end sends, and a
// fraction of packets dropped in each direction.
type Impairment struct {
	Delay time.Duration
	Loss  float64
}

func (im Impairment) drop() bool { return im.Loss > 0 && rand.Float64() < im.Loss }

// Conn wraps a transport.Conn with faults. Hand it to transport.Config.Conn
// (or node.Options.Conn); it closes the wrapped Conn on Close.
type Conn struct {
	inner  transport.Conn
	paused atomic.Bool
	faulty atomic.Bool // a block or impairment is in force

	mu       sync.RWMutex
	blocked  map[identity.NodeID]bool
	impaired map[identity.NodeID]Impairment
	addrIDs  map[netip.AddrPort]identity.NodeID

	delayed   delayLine
	closeOnce sync.Once
}

var _ transport.Conn = (*Conn)(nil)

// New wraps inner; no fault is in force.
func New(inner transport.Conn) *Conn {
	c := &Conn{
		inner:    inner,
		blocked:  map[identity.NodeID]bool{},
		impaired: map[identity.NodeID]Impairment{},
		addrIDs:  map[netip.AddrPort]identity.NodeID{},
	}
	c.delayed.start(inner)
	return c
}

// Pause drops everything in and out while on; the socket stays open.
func (c *Conn) Pause(on bool) { c.paused.Store(on) }

// Block drops every packet to and from peer's direct link (relayed paths
// around it still work).
func (c *Conn) Block(peer identity.NodeID, on bool) {
	c.mu.Lock()
	if on {
		c.blocked[peer] = true
	} else {
		delete(c.blocked, peer)
	}
	c.faulty.Store(len(c.blocked)+len(c.impaired) > 0)
	c.mu.Unlock()
}

// Impair delays what this end sends to peer by delay and drops the loss
// fraction of packets each way; zero values clear it.
func (c *Conn) Impair(peer identity.NodeID, delay time.Duration, loss float64) {
	im := Impairment{Delay: max(delay, 0), Loss: min(max(loss, 0), 1)}
	c.mu.Lock()
	if im == (Impairment{}) {
		delete(c.impaired, peer)
	} else {
		c.impaired[peer] = im
	}
	c.faulty.Store(len(c.blocked)+len(c.impaired) > 0)
	c.mu.Unlock()
}

// ReadBatch returns the next datagrams that survive the faults, each
// judged on its own: the survivors of the wrapped Conn's batch move up
// (copied, the buffers stay where the caller put them), and a batch that
// loses every datagram is read again.
func (c *Conn) ReadBatch(bufs [][]byte, sizes []int, from []netip.AddrPort) (int, error) {
	for {
		n, err := c.inner.ReadBatch(bufs, sizes, from)
		if err != nil {
			return 0, err
		}
		if c.paused.Load() {
			continue
		}
		kept := 0
		for i := range n {
			c.learn(from[i], bufs[i][:sizes[i]])
			if c.faulty.Load() {
				if blocked, im := c.faultsAt(from[i]); blocked || im.drop() {
					continue
				}
			}
			if i != kept {
				sizes[kept] = copy(bufs[kept], bufs[i][:sizes[i]])
				from[kept] = from[i]
			}
			kept++
		}
		if kept > 0 {
			return kept, nil
		}
	}
}

// learn records from as the address of a direct packet's sender.
func (c *Conn) learn(from netip.AddrPort, pkt []byte) {
	var h wire.Header
	if h.Parse(pkt) != nil || h.TTL != wire.DefaultTTL || !h.Src.Valid() {
		return
	}
	c.mu.RLock()
	known := c.addrIDs[from] == h.Src
	c.mu.RUnlock()
	if known {
		return
	}
	c.mu.Lock()
	if len(c.addrIDs) >= MaxLearnedAddrs {
		clear(c.addrIDs)
	}
	c.addrIDs[from] = h.Src
	c.mu.Unlock()
}

func (c *Conn) faultsAt(addr netip.AddrPort) (bool, Impairment) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	id, ok := c.addrIDs[addr]
	if !ok {
		return false, Impairment{}
	}
	return c.blocked[id], c.impaired[id]
}

// WriteTo sends pkt unless a fault drops it (silently, as a network
// would) or holds it back.
func (c *Conn) WriteTo(pkt []byte, addr netip.AddrPort) error {
	if c.paused.Load() {
		return nil
	}
	if c.faulty.Load() {
		blocked, im := c.faultsAt(addr)
		if blocked || im.drop() {
			return nil
		}
		if im.Delay > 0 {
			c.delayed.push(pkt, addr, time.Now().Add(im.Delay))
			return nil
		}
	}
	return c.inner.WriteTo(pkt, addr)
}

// LocalAddr is the wrapped Conn's.
func (c *Conn) LocalAddr() netip.AddrPort { return c.inner.LocalAddr() }

// Close closes the wrapped Conn; delayed packets are dropped.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.delayed.stop()
		err = c.inner.Close()
	})
	return err
}

// delayLine holds delayed packets in send-time order and writes each when
// due: one goroutine for the whole wrapper, not one per packet.
type delayLine struct {
	out  transport.Conn
	mu   sync.Mutex
	h    delayHeap
	seq  uint64
	kick chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
}

type delayed struct {
	pkt []byte
	to  netip.AddrPort
	due time.Time
	seq uint64
}

func (d *delayLine) start(out transport.Conn) {
	d.out, d.kick, d.done = out, make(chan struct{}, 1), make(chan struct{})
	d.wg.Add(1)
	go d.run()
}

func (d *delayLine) stop() {
	close(d.done)
	d.wg.Wait()
}

func (d *delayLine) push(pkt []byte, to netip.AddrPort, due time.Time) {
	d.mu.Lock()
	if len(d.h) >= MaxDelayedPackets {
		d.mu.Unlock()
		return
	}
	d.seq++
	p := &delayed{pkt: append([]byte(nil), pkt...), to: to, due: due, seq: d.seq}
	heap.Push(&d.h, p)
	first := d.h[0] == p
	d.mu.Unlock()
	if first {
		select {
		case d.kick <- struct{}{}:
		default:
		}
	}
}

func (d *delayLine) run() {
	defer d.wg.Done()
	tm := time.NewTimer(time.Hour)
	defer tm.Stop()
	var due []*delayed
	for {
		now := time.Now()
		wait := time.Hour
		d.mu.Lock()
		for len(d.h) > 0 {
			if w := d.h[0].due.Sub(now); w > 0 {
				wait = w
				break
			}
			due = append(due, heap.Pop(&d.h).(*delayed))
		}
		d.mu.Unlock()
		for i, p := range due {
			_ = d.out.WriteTo(p.pkt, p.to) // a lost datagram, like any other
			due[i] = nil
		}
		due = due[:0]
		tm.Reset(wait)
		select {
		case <-tm.C:
		case <-d.kick:
		case <-d.done:
			return
		}
	}
}

type delayHeap []*delayed

func (h delayHeap) Len() int { return len(h) }
func (h delayHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].seq < h[j].seq
}
func (h delayHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *delayHeap) Push(x any)   { *h = append(*h, x.(*delayed)) }
func (h *delayHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return p
}
