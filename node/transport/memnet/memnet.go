// Package memnet is an in-process datagram network for tests and
// simulations: a switch that carries packets between transport.Conns with
// per-link latency, loss, partitions and bandwidth, as wireguard-go's
// conn/bindtest does for its Bind. A thousand Transports can share one
// Network in one process.
//
// Cost per packet is a pooled buffer copy and, on a link with latency or
// bandwidth, one entry in the receiving Conn's delivery heap: no goroutine
// per packet or per link, one per Conn. Every queue is bounded and drops
// when full, as a router does.
//
// Delivery is per Conn, not one loop for the whole network: a single
// delivery goroutine got one goroutine's share of a busy process while
// carrying every node's traffic, and at 128 simulated nodes on two cores
// it delivered packets 0.3–2 s late on average (max 8 s): links of "1 ms"
// that were slower than the transport's handshake retry timer. One loop
// per Conn keeps the delivery work proportional to the Conns that share
// the CPU.
//
// Addresses are allocated from 198.18.0.0/15 (RFC 2544's benchmarking
// range, never routed), so they cannot be mistaken for a real socket.
package memnet

import (
	"container/heap"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of a Network.
const (
	// InboxPackets is how many delivered datagrams wait for a reader per
	// Conn before more are dropped (a socket receive buffer). The
	// transport asks the kernel for transport.SocketBufferBytes (4 MiB),
	// which holds some thousands of datagrams at the kernel's per-datagram
	// overhead; 1,024 made a busy simulated node drop sooner than a real
	// one would. Only pointers wait here, so an idle inbox costs 32 KiB.
	InboxPackets = 4096
	// MaxInFlightPackets bounds the datagrams on the wire (in the Conns'
	// delivery heaps) across the whole network.
	MaxInFlightPackets = 1 << 18
	// LinkQueueBytes is how much a bandwidth-limited link holds waiting to
	// be serialised before it tail-drops (a router's interface queue).
	LinkQueueBytes = 256 << 10
	// MaxDatagramBytes is the largest datagram carried (UDP's limit).
	MaxDatagramBytes = 65507
	// port is every Conn's port: each gets its own address.
	port = 4000
)

// addrBase is the first address handed out; the range holds 2^17.
var addrBase = netip.AddrFrom4([4]byte{198, 18, 0, 0})

// maxAddrs is the size of 198.18.0.0/15, less the network address.
const maxAddrs = 1<<17 - 1

// Link is what one direction of a link does to the packets on it.
type Link struct {
	Latency        time.Duration // one way, added to every packet
	Loss           float64       // fraction dropped, 0..1
	BytesPerSecond int64         // serialisation rate; 0 is unlimited
	Down           bool          // partitioned: everything is dropped
}

// Stats counts what the network did with the datagrams written to it.
type Stats struct {
	Sent, Delivered                           uint64
	Lost, Partitioned, QueueDrops, NoListener uint64
}

// Network is one switch. The zero value is not usable; call New.
type Network struct {
	mu    sync.RWMutex
	conns map[netip.AddrPort]*Conn
	links map[pair]*linkState // directional; absent: the default link
	def   Link
	next  uint32 // addresses handed out so far

	inflight  atomic.Int64 // datagrams in the Conns' delivery heaps
	seq       atomic.Uint64
	done      chan struct{}
	closeOnce sync.Once

	sent, delivered, lost, parted, queueDrops, noListener atomic.Uint64
}

type pair struct{ from, to netip.AddrPort }

// linkState is one direction's settings and its serialisation clock.
type linkState struct {
	mu        sync.Mutex
	cfg       Link
	busyUntil time.Time // when the link finishes sending what it holds
}

// New starts a network whose links all behave as def until set otherwise.
func New(def Link) *Network {
	n := &Network{
		conns: make(map[netip.AddrPort]*Conn),
		links: make(map[pair]*linkState),
		def:   def,
		done:  make(chan struct{}),
	}
	return n
}

// Close stops the network: every Conn is closed and packets in flight
// are dropped.
func (n *Network) Close() {
	n.closeOnce.Do(func() {
		close(n.done)
		n.mu.Lock()
		conns := make([]*Conn, 0, len(n.conns))
		for _, c := range n.conns {
			conns = append(conns, c)
		}
		n.mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
}

// Listen opens a Conn on a fresh address.
func (n *Network) Listen() (*Conn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.isClosed() {
		return nil, fmt.Errorf("memnet: listen: %w", net.ErrClosed)
	}
	for n.next < maxAddrs {
		n.next++
		a := addrBase.As4()
		a[1] += byte(n.next >> 16)
		a[2] += byte(n.next >> 8)
		a[3] += byte(n.next)
		addr := netip.AddrPortFrom(netip.AddrFrom4(a), port)
		if n.conns[addr] == nil {
			return n.openLocked(addr), nil
		}
	}
	return nil, errors.New("memnet: addresses exhausted")
}

// ListenAt opens a Conn on addr (a node restarted on its old address);
// it fails when addr is in use.
func (n *Network) ListenAt(addr netip.AddrPort) (*Conn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.isClosed() {
		return nil, fmt.Errorf("memnet: listen %s: %w", addr, net.ErrClosed)
	}
	if n.conns[addr] != nil {
		return nil, fmt.Errorf("memnet: listen %s: address in use", addr)
	}
	return n.openLocked(addr), nil
}

func (n *Network) openLocked(addr netip.AddrPort) *Conn {
	c := &Conn{net: n, addr: addr, inbox: make(chan *packet, InboxPackets), closed: make(chan struct{}),
		kick: make(chan struct{}, 1), loopDone: make(chan struct{})}
	n.conns[addr] = c
	go c.deliverLoop()
	return c
}

// SetLink sets both directions between a and b.
func (n *Network) SetLink(a, b netip.AddrPort, l Link) {
	n.SetOneWay(a, b, l)
	n.SetOneWay(b, a, l)
}

// SetOneWay sets what happens to packets from a to b.
func (n *Network) SetOneWay(from, to netip.AddrPort, l Link) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ls := n.links[pair{from, to}]; ls != nil {
		ls.mu.Lock()
		ls.cfg = l
		ls.mu.Unlock()
		return
	}
	n.links[pair{from, to}] = &linkState{cfg: l}
}

// Partition cuts (on) or heals the link between a and b in both
// directions, keeping its other settings.
func (n *Network) Partition(a, b netip.AddrPort, on bool) {
	for _, p := range []pair{{a, b}, {b, a}} {
		n.mu.Lock()
		ls := n.links[p]
		if ls == nil {
			ls = &linkState{cfg: n.def}
			n.links[p] = ls
		}
		n.mu.Unlock()
		ls.mu.Lock()
		ls.cfg.Down = on
		ls.mu.Unlock()
	}
}

// Stats returns the counters.
func (n *Network) Stats() Stats {
	return Stats{
		Sent: n.sent.Load(), Delivered: n.delivered.Load(),
		Lost: n.lost.Load(), Partitioned: n.parted.Load(), QueueDrops: n.queueDrops.Load(), NoListener: n.noListener.Load(),
	}
}

// send carries pkt from one Conn towards addr. Like UDP, a datagram the
// network drops is not an error.
func (n *Network) send(from netip.AddrPort, pkt []byte, to netip.AddrPort) {
	n.sent.Add(1)
	n.mu.RLock()
	dst := n.conns[to]
	ls := n.links[pair{from, to}]
	n.mu.RUnlock()
	if dst == nil {
		n.noListener.Add(1)
		return
	}
	cfg := n.def
	if ls != nil {
		ls.mu.Lock()
		cfg = ls.cfg
		ls.mu.Unlock()
	}
	if cfg.Down {
		n.parted.Add(1)
		return
	}
	if cfg.Loss > 0 && rand.Float64() < cfg.Loss {
		n.lost.Add(1)
		return
	}
	var due time.Time
	if cfg.BytesPerSecond > 0 || cfg.Latency > 0 {
		now := time.Now()
		depart := now
		if cfg.BytesPerSecond > 0 {
			if ls == nil {
				ls = n.linkFor(pair{from, to})
			}
			tx := time.Duration(int64(len(pkt)) * int64(time.Second) / cfg.BytesPerSecond)
			ls.mu.Lock()
			start := ls.busyUntil
			if start.Before(now) {
				start = now
			}
			// What the link already holds, in bytes at its rate.
			if held := int64(start.Sub(now)) * cfg.BytesPerSecond / int64(time.Second); held+int64(len(pkt)) > LinkQueueBytes {
				ls.mu.Unlock()
				n.queueDrops.Add(1)
				return
			}
			ls.busyUntil = start.Add(tx)
			depart = ls.busyUntil
			ls.mu.Unlock()
		}
		due = depart.Add(cfg.Latency)
	}
	p := getPacket()
	p.buf = append(p.buf[:0], pkt...)
	p.from, p.dst = from, dst
	if due.IsZero() {
		n.deliver(p)
		return
	}
	p.due = due
	if n.inflight.Add(1) > MaxInFlightPackets || n.isClosed() {
		n.inflight.Add(-1)
		putPacket(p)
		n.queueDrops.Add(1)
		return
	}
	p.seq = n.seq.Add(1)
	if !dst.schedule(p) {
		n.inflight.Add(-1)
		putPacket(p)
		n.noListener.Add(1)
	}
}

func (n *Network) isClosed() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

// linkFor returns the state of a directional link, creating it with the
// default settings.
func (n *Network) linkFor(p pair) *linkState {
	n.mu.Lock()
	defer n.mu.Unlock()
	ls := n.links[p]
	if ls == nil {
		ls = &linkState{cfg: n.def}
		n.links[p] = ls
	}
	return ls
}

// deliver hands p to its Conn's inbox, dropping it when the reader is
// behind or gone.
func (n *Network) deliver(p *packet) {
	select {
	case <-p.dst.closed:
		n.noListener.Add(1)
		putPacket(p)
		return
	default:
	}
	select {
	case p.dst.inbox <- p:
		n.delivered.Add(1)
	default:
		n.queueDrops.Add(1)
		p.dst.inboxDrops.Add(1)
		putPacket(p)
	}
}

// schedule puts p on the way to c, to be delivered at p.due; false when
// c is closed (p is then the caller's).
func (c *Conn) schedule(p *packet) bool {
	c.sched.Lock()
	if c.schedClosed {
		c.sched.Unlock()
		return false
	}
	heap.Push(&c.inflight, p)
	first := c.inflight[0] == p
	c.sched.Unlock()
	if first {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
	return true
}

// deliverLoop is c's timer: it delivers every packet in c's heap whose
// time has come, then sleeps until the next is due. It ends when c
// closes, dropping what is still in flight.
func (c *Conn) deliverLoop() {
	defer close(c.loopDone)
	n := c.net
	tm := time.NewTimer(time.Hour)
	defer tm.Stop()
	var due []*packet
	for {
		now := time.Now()
		wait := time.Hour
		c.sched.Lock()
		for len(c.inflight) > 0 {
			if d := c.inflight[0].due.Sub(now); d > 0 {
				wait = d
				break
			}
			due = append(due, heap.Pop(&c.inflight).(*packet))
		}
		c.sched.Unlock()
		n.inflight.Add(-int64(len(due)))
		for i, p := range due {
			n.deliver(p)
			due[i] = nil
		}
		due = due[:0]
		tm.Reset(wait)
		select {
		case <-tm.C:
		case <-c.kick: // an earlier packet arrived: recompute the wait
		case <-c.closed:
			c.sched.Lock()
			c.schedClosed = true
			left := c.inflight
			c.inflight = nil
			c.sched.Unlock()
			n.inflight.Add(-int64(len(left)))
			for _, p := range left {
				n.noListener.Add(1)
				putPacket(p)
			}
			return
		}
	}
}

// packet is one datagram in flight or waiting in an inbox.
type packet struct {
	buf  []byte
	from netip.AddrPort
	dst  *Conn
	due  time.Time
	seq  uint64 // ties on due keep the order packets were sent in
}

var packetPool = sync.Pool{New: func() any { return &packet{buf: make([]byte, 0, 1500)} }}

func getPacket() *packet { return packetPool.Get().(*packet) }

func putPacket(p *packet) {
	p.dst = nil
	p.due = time.Time{}
	packetPool.Put(p)
}

type deliveryHeap []*packet

func (h deliveryHeap) Len() int { return len(h) }
func (h deliveryHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].seq < h[j].seq
}
func (h deliveryHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *deliveryHeap) Push(x any)   { *h = append(*h, x.(*packet)) }
func (h *deliveryHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return p
}

// Conn is one endpoint on a Network; it implements transport.Conn (the
// package does not import transport, so transport's own tests can use it).
type Conn struct {
	net       *Network
	addr      netip.AddrPort
	inbox     chan *packet
	closed    chan struct{}
	closeOnce sync.Once
	// The packets on their way to this Conn, by due time (deliverLoop).
	sched       sync.Mutex
	inflight    deliveryHeap
	schedClosed bool
	kick        chan struct{}
	loopDone    chan struct{}
	// inboxDrops counts datagrams dropped because this Conn's inbox was
	// full (its reader behind): which node a network's QueueDrops hit.
	inboxDrops atomic.Uint64
}

// InboxDrops is how many datagrams for this Conn were dropped on a full
// inbox (a reader too slow for what it is sent).
func (c *Conn) InboxDrops() uint64 { return c.inboxDrops.Load() }

// ReadBatch blocks for the next datagram, then takes those already in
// the inbox behind it, up to len(bufs), without waiting for more: what a
// socket's recvmmsg returns. It implements transport.Conn.ReadBatch.
func (c *Conn) ReadBatch(bufs [][]byte, sizes []int, from []netip.AddrPort) (int, error) {
	max := min(len(bufs), len(sizes), len(from))
	if max == 0 {
		return 0, nil
	}
	select {
	case p := <-c.inbox:
		c.take(p, bufs[0], &sizes[0], &from[0])
	case <-c.closed:
		return 0, fmt.Errorf("memnet: read %s: %w", c.addr, net.ErrClosed)
	}
	for n := 1; n < max; n++ {
		select {
		case p := <-c.inbox:
			c.take(p, bufs[n], &sizes[n], &from[n])
		default:
			return n, nil
		}
	}
	return max, nil
}

// take copies p into buf (truncating, as a socket does) and frees it.
func (c *Conn) take(p *packet, buf []byte, size *int, from *netip.AddrPort) {
	*size, *from = copy(buf, p.buf), p.from
	putPacket(p)
}

// WriteTo sends one datagram through the network.
func (c *Conn) WriteTo(pkt []byte, addr netip.AddrPort) error {
	select {
	case <-c.closed:
		return fmt.Errorf("memnet: write %s: %w", c.addr, net.ErrClosed)
	default:
	}
	if len(pkt) > MaxDatagramBytes {
		return fmt.Errorf("memnet: write %s: datagram of %d bytes, max %d", c.addr, len(pkt), MaxDatagramBytes)
	}
	c.net.send(c.addr, pkt, addr)
	return nil
}

// LocalAddr is the Conn's address on the network.
func (c *Conn) LocalAddr() netip.AddrPort { return c.addr }

// Close releases the address and unblocks the reader.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.net.mu.Lock()
		if c.net.conns[c.addr] == c {
			delete(c.net.conns, c.addr)
		}
		c.net.mu.Unlock()
	})
	<-c.loopDone // what was in flight to c is dropped and counted
	return nil
}
