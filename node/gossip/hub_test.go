package gossip

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/mesh"
)

// hub is an in-process mesh.Messenger fabric for tests: every node can reach
// every other (as a relaying transport would), each node's handlers run on
// that node's own delivery goroutine in arrival order, messages are copied
// on Send, and a node can be taken down (sends to it fail, peers see it
// Unreachable). Direct marks ring neighbours so folds see a ring of edges.
type hub struct {
	mu    sync.Mutex
	nodes map[identity.NodeID]*hubNode
	ring  []identity.NodeID
	down  map[identity.NodeID]bool
	wg    sync.WaitGroup
	stop  chan struct{}
	once  sync.Once
}

type hubMsg struct {
	from identity.NodeID
	ch   mesh.Channel
	data []byte
}

type hubNode struct {
	h        *hub
	id       identity.NodeID
	mu       sync.Mutex
	handlers map[mesh.Channel]mesh.Handler
	q        chan hubMsg
	sent     atomic.Uint64
	dropped  atomic.Uint64
	bytes    atomic.Uint64
}

func newHub(t testing.TB) *hub {
	h := &hub{nodes: make(map[identity.NodeID]*hubNode), down: make(map[identity.NodeID]bool), stop: make(chan struct{})}
	t.Cleanup(h.close)
	return h
}

func (h *hub) close() {
	h.once.Do(func() { close(h.stop) })
	h.wg.Wait()
}

// add joins a node; nodes are placed on the ring in join order.
func (h *hub) add(id identity.NodeID) *hubNode {
	n := &hubNode{h: h, id: id, handlers: make(map[mesh.Channel]mesh.Handler), q: make(chan hubMsg, 4096)}
	h.mu.Lock()
	h.nodes[id] = n
	h.ring = append(h.ring, id)
	h.mu.Unlock()
	h.wg.Go(func() {
		for {
			select {
			case <-h.stop:
				return
			case m := <-n.q:
				n.mu.Lock()
				hd := n.handlers[m.ch]
				n.mu.Unlock()
				if hd != nil {
					hd(m.from, m.data)
				}
			}
		}
	})
	return n
}

func (h *hub) setDown(id identity.NodeID, down bool) {
	h.mu.Lock()
	h.down[id] = down
	h.mu.Unlock()
}

func (n *hubNode) Self() identity.NodeID { return n.id }

func (n *hubNode) Send(ctx context.Context, to identity.NodeID, ch mesh.Channel, msg []byte) error {
	if len(msg) > mesh.MaxMessageBytes {
		return mesh.ErrTooLarge
	}
	n.h.mu.Lock()
	dst := n.h.nodes[to]
	down := n.h.down[to] || n.h.down[n.id]
	n.h.mu.Unlock()
	if dst == nil || down {
		return fmt.Errorf("%w: %s", mesh.ErrNoRoute, to)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	n.sent.Add(1)
	n.bytes.Add(uint64(len(msg)))
	select {
	case dst.q <- hubMsg{from: n.id, ch: ch, data: slices.Clone(msg)}:
	default:
		n.dropped.Add(1)
	}
	return nil
}

func (n *hubNode) Handle(ch mesh.Channel, hd mesh.Handler) {
	n.mu.Lock()
	n.handlers[ch] = hd
	n.mu.Unlock()
}

func (n *hubNode) Peers() []mesh.PeerInfo {
	n.h.mu.Lock()
	defer n.h.mu.Unlock()
	idx := slices.Index(n.h.ring, n.id)
	size := len(n.h.ring)
	out := make([]mesh.PeerInfo, 0, size)
	for i, id := range n.h.ring {
		if id == n.id {
			continue
		}
		direct := size > 1 && (i == (idx+1)%size || i == (idx+size-1)%size)
		p := mesh.PeerInfo{ID: id, Direct: direct, Health: mesh.Healthy, RTT: time.Millisecond}
		if n.h.down[id] {
			p.Health = mesh.Unreachable
		}
		if !direct {
			p.NextHop = n.h.ring[(idx+1)%size]
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b mesh.PeerInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

func (n *hubNode) Stats() mesh.Stats {
	return mesh.Stats{PacketsOut: n.sent.Load(), BytesOut: n.bytes.Load(), Drops: n.dropped.Load()}
}

var _ mesh.Messenger = (*hubNode)(nil)
