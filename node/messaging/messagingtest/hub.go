// Package messagingtest is an in-memory messaging.Messenger fabric for tests, in the
// manner of net/http/httptest: a Hub joins any number of Nodes in one
// process, and each Node is a messaging.Messenger that services (gossip, chain
// anti-entropy, subscriptions, migrations) run on unchanged.
//
// Delivery behaves like the real transport's datagrams: Send copies the
// message and returns at once; each node's handlers run on that node's own
// delivery goroutine, in arrival order, off the sender's goroutine; a full
// inbox drops (counted in the receiver's Stats). A test can take a node
// down, cut links (Partition, Cut), lose messages (DropNext, SetLoss,
// DropRate) and delay them (SetDelay). Unreachable destinations make Send
// return messaging.ErrNoRoute, as the transport does once its failure detector
// gives up on a peer, and Peers reports them Unreachable.
//
// The package depends only on messaging and identity, so it moves with messaging.
package messagingtest

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/snapshot"
)

// DefaultInboxLen bounds each node's queue of undelivered messages when
// Config.InboxLen is zero: generous, so only a flood drops.
const DefaultInboxLen = 4096

// MinPeerRTT is the RTT Peers reports for a link with no configured delay.
const MinPeerRTT = time.Millisecond

// Config shapes a Hub.
type Config struct {
	// InboxLen bounds each node's undelivered messages (and, separately,
	// the messages held back by SetDelay); beyond it messages drop.
	// Zero means DefaultInboxLen.
	InboxLen int
	// Ring marks only ring neighbours (nodes adjacent in join order)
	// Direct in Peers; the others are relayed through the next node on
	// the ring. Delivery is unaffected: every node still reaches every
	// other, as through a relaying transport. False: every peer is Direct.
	Ring bool
}

// Message is one message in flight, as a loss rule sees it. Data is the
// sender's buffer: a rule must not keep or modify it.
type Message struct {
	From, To identity.NodeID
	Channel  messaging.Channel
	Data     []byte
}

// LossRule reports whether a message is lost on the way. It runs on the
// sender's goroutine, outside the hub's lock.
type LossRule func(m Message) bool

// Hub connects Nodes. Its methods are safe for concurrent use.
type Hub struct {
	tb       testing.TB
	inboxLen int
	ring     bool

	mu       sync.Mutex
	nodes    map[identity.NodeID]*Node
	order    []identity.NodeID // join order: the ring
	down     map[identity.NodeID]bool
	cut      map[link]bool
	dropNext map[dropKey]int
	lose     LossRule
	delay    time.Duration
	delayed  int // messages held back by the delay, bounded by inboxLen
	closed   bool

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

type link struct{ from, to identity.NodeID }

type dropKey struct {
	to identity.NodeID
	ch messaging.Channel
}

type delivery struct {
	from identity.NodeID
	ch   messaging.Channel
	msg  []byte
}

// NewHub makes an empty hub, closed when the test ends.
func NewHub(tb testing.TB, cfg Config) *Hub {
	tb.Helper()
	if cfg.InboxLen <= 0 {
		cfg.InboxLen = DefaultInboxLen
	}
	h := &Hub{
		tb: tb, inboxLen: cfg.InboxLen, ring: cfg.Ring,
		nodes: map[identity.NodeID]*Node{}, down: map[identity.NodeID]bool{},
		cut: map[link]bool{}, dropNext: map[dropKey]int{}, stop: make(chan struct{}),
	}
	tb.Cleanup(h.Close)
	return h
}

// Close stops every node's delivery goroutine and waits for running
// handlers to return; later Sends fail with messaging.ErrClosed. Idempotent.
func (h *Hub) Close() {
	h.once.Do(func() {
		h.mu.Lock()
		h.closed = true
		h.mu.Unlock()
		close(h.stop)
	})
	h.wg.Wait()
}

// Join adds node id (placed on the ring in join order) and starts its
// delivery goroutine. Joining an id twice fails the test.
func (h *Hub) Join(id identity.NodeID) *Node {
	h.tb.Helper()
	n := &Node{h: h, id: id, handlers: map[messaging.Channel]messaging.Handler{}, inbox: make(chan delivery, h.inboxLen)}
	h.mu.Lock()
	_, dup := h.nodes[id]
	if !dup {
		h.nodes[id] = n
		h.order = append(h.order, id)
	}
	h.mu.Unlock()
	if dup {
		h.tb.Fatalf("messagingtest: node %v joined twice", id)
	}
	h.wg.Add(1)
	go n.deliverLoop()
	return n
}

// Node returns the joined node id, or nil.
func (h *Hub) Node(id identity.NodeID) *Node {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.nodes[id]
}

// IDs lists every joined node (down or not), sorted.
func (h *Hub) IDs() []identity.NodeID {
	h.mu.Lock()
	out := slices.Clone(h.order)
	h.mu.Unlock()
	slices.Sort(out)
	return out
}

// SetDown takes a node off the hub (or back on): while down it neither
// sends nor receives, and every peer sees it Unreachable (it sees them so
// too). Messages already in its inbox are still delivered.
func (h *Hub) SetDown(id identity.NodeID, down bool) {
	h.mu.Lock()
	h.down[id] = down
	h.mu.Unlock()
}

// Cut severs the link between a and b in both directions until Heal.
func (h *Hub) Cut(a, b identity.NodeID) {
	h.mu.Lock()
	h.cut[link{a, b}], h.cut[link{b, a}] = true, true
	h.mu.Unlock()
}

// Partition cuts every link between the nodes of side and the other
// nodes joined so far.
func (h *Hub) Partition(side ...identity.NodeID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, a := range side {
		for _, b := range h.order {
			if !slices.Contains(side, b) {
				h.cut[link{a, b}], h.cut[link{b, a}] = true, true
			}
		}
	}
}

// Heal restores every link cut by Cut or Partition (down nodes stay down).
func (h *Hub) Heal() {
	h.mu.Lock()
	clear(h.cut)
	h.mu.Unlock()
}

// DropNext loses the next n messages sent to node to on channel ch.
func (h *Hub) DropNext(to identity.NodeID, ch messaging.Channel, n int) {
	h.mu.Lock()
	h.dropNext[dropKey{to, ch}] += n
	h.mu.Unlock()
}

// SetLoss installs a rule deciding per message whether it is lost (nil:
// lose nothing). It can also serve as a tap that counts what passes.
func (h *Hub) SetLoss(rule LossRule) {
	h.mu.Lock()
	h.lose = rule
	h.mu.Unlock()
}

// DropRate is a LossRule losing each message with probability p, from a
// seeded generator so a failing run can be replayed.
func DropRate(p float64, seed uint64) LossRule {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return func(Message) bool {
		mu.Lock()
		defer mu.Unlock()
		return r.Float64() < p
	}
}

// SetDelay holds every message sent from now on for d before it reaches
// the destination's inbox (0: deliver at once). Held messages are bounded
// by Config.InboxLen across the hub; beyond it they drop.
func (h *Hub) SetDelay(d time.Duration) {
	h.mu.Lock()
	h.delay = max(d, 0)
	h.mu.Unlock()
}

// Node is one member of a Hub: a messaging.Messenger.
type Node struct {
	h        *Hub
	id       identity.NodeID
	mu       sync.RWMutex
	handlers map[messaging.Channel]messaging.Handler
	inbox    chan delivery

	packetsOut, bytesOut atomic.Uint64
	packetsIn, bytesIn   atomic.Uint64
	drops                atomic.Uint64
}

var _ messaging.Messenger = (*Node)(nil)

func (n *Node) deliverLoop() {
	defer n.h.wg.Done()
	for {
		select {
		case <-n.h.stop:
			return
		case d := <-n.inbox:
			n.mu.RLock()
			fn := n.handlers[d.ch]
			n.mu.RUnlock()
			if fn == nil {
				n.drops.Add(1) // nobody listening, as the transport counts it
				continue
			}
			n.packetsIn.Add(1)
			n.bytesIn.Add(uint64(len(d.msg)))
			fn(d.from, d.msg)
		}
	}
}

// enqueue never blocks: a full inbox drops, like a full socket buffer.
func (n *Node) enqueue(d delivery) {
	select {
	case n.inbox <- d:
	default:
		n.drops.Add(1)
	}
}

// Self is the node's id.
func (n *Node) Self() identity.NodeID { return n.id }

// Send copies msg towards node to. It fails with messaging.ErrNoRoute when
// either end is down or the link is cut, and returns nil for a message
// lost on the way.
func (n *Node) Send(ctx context.Context, to identity.NodeID, ch messaging.Channel, msg []byte) error {
	if len(msg) > messaging.MaxMessageBytes {
		return messaging.ErrTooLarge
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	h := n.h
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return messaging.ErrClosed
	}
	dst := h.nodes[to]
	if dst == nil || h.down[n.id] || h.down[to] || h.cut[link{n.id, to}] {
		h.mu.Unlock()
		return fmt.Errorf("%w: %v", messaging.ErrNoRoute, to)
	}
	k := dropKey{to, ch}
	dropped := h.dropNext[k] > 0
	if dropped {
		h.dropNext[k]--
	}
	lose, delay := h.lose, h.delay
	h.mu.Unlock()

	n.packetsOut.Add(1)
	n.bytesOut.Add(uint64(len(msg)))
	if dropped || (lose != nil && lose(Message{From: n.id, To: to, Channel: ch, Data: msg})) {
		return nil // lost on the way, like a datagram
	}
	d := delivery{from: n.id, ch: ch, msg: slices.Clone(msg)}
	if delay == 0 {
		dst.enqueue(d)
		return nil
	}
	h.mu.Lock()
	full := h.delayed >= h.inboxLen
	if !full {
		h.delayed++
	}
	h.mu.Unlock()
	if full {
		dst.drops.Add(1)
		return nil
	}
	time.AfterFunc(delay, func() {
		h.mu.Lock()
		h.delayed--
		h.mu.Unlock()
		dst.enqueue(d)
	})
	return nil
}

// Handle registers fn for ch, replacing any previous one; nil removes it.
func (n *Node) Handle(ch messaging.Channel, fn messaging.Handler) {
	n.mu.Lock()
	if fn == nil {
		delete(n.handlers, ch)
	} else {
		n.handlers[ch] = fn
	}
	n.mu.Unlock()
}

// HasHandler reports whether a handler is registered for ch, so a test
// can wait for a service to start listening.
func (n *Node) HasHandler(ch messaging.Channel) bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.handlers[ch] != nil
}

// Peers lists every other joined node, sorted by id: Unreachable when
// either end is down or the link is cut, else Healthy; Direct per the
// hub's topology (Config.Ring).
func (n *Node) Peers() []messaging.PeerInfo {
	h := n.h
	h.mu.Lock()
	defer h.mu.Unlock()
	idx := slices.Index(h.order, n.id)
	size := len(h.order)
	rtt := max(2*h.delay, MinPeerRTT)
	out := make([]messaging.PeerInfo, 0, size)
	for i, id := range h.order {
		if id == n.id {
			continue
		}
		p := messaging.PeerInfo{ID: id, Direct: true, Health: snapshot.Healthy, RTT: rtt}
		if h.ring && i != (idx+1)%size && i != (idx+size-1)%size {
			p.Direct, p.NextHop = false, h.order[(idx+1)%size]
		}
		if h.down[id] || h.down[n.id] || h.cut[link{n.id, id}] {
			p.Health = snapshot.Unreachable
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b messaging.PeerInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Stats counts what this node sent (lost messages included, as a sender
// cannot tell), received and dropped (inbox full or no handler).
func (n *Node) Stats() messaging.Stats {
	return messaging.Stats{
		PacketsOut: n.packetsOut.Load(), BytesOut: n.bytesOut.Load(),
		PacketsIn: n.packetsIn.Load(), BytesIn: n.bytesIn.Load(),
		Drops: n.drops.Load(),
	}
}
