package chain

import (
	"sync"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/ratelimit"
)

// aeServeQueue holds the ledger requests peers sent this node, one FIFO per
// peer, and releases them to the serving goroutine round robin at each
// peer's budget: AEServeRequestsPerSecondPerPeer requests and
// AEServeBytesPerSecondPerPeer answer bytes (charged once the answer is
// built). A peer that asks faster than its budget fills its own queue
// (AEMaxQueuedPerPeer) and its further requests are refused before they
// are decoded; the other peers' requests wait behind at most one of its
// answers per turn. An honest requester, one request in flight at a time,
// is only ever delayed, by less than its request timeout, never refused.
type aeServeQueue struct {
	now func() time.Time

	mu     sync.Mutex
	queues map[identity.NodeID][]aeInbound
	order  []identity.NodeID // peers with queued requests, in turn order
	turn   int               // index in order of the peer served next
	total  int
	wake   chan struct{}

	reqs  *ratelimit.Table[identity.NodeID]
	bytes *ratelimit.Table[identity.NodeID]
}

func newAEServeQueue(now func() time.Time) *aeServeQueue {
	return &aeServeQueue{
		now:    now,
		queues: map[identity.NodeID][]aeInbound{},
		wake:   make(chan struct{}, 1),
		reqs:   ratelimit.New[identity.NodeID](AEServeRequestsPerSecondPerPeer, AEServeBurstRequestsPerPeer, AEMaxServedPeers),
		bytes:  ratelimit.New[identity.NodeID](AEServeBytesPerSecondPerPeer, AEServeBurstBytesPerPeer, AEMaxServedPeers),
	}
}

// aeRefusal says why a request was not queued.
type aeRefusal int

const (
	aeQueued    aeRefusal = iota
	aePeerFull            // the peer's own queue is full: it asks beyond its budget
	aeQueueFull           // every peer's requests together fill AEQueueLen
)

// room reports whether a request from peer would be queued, so the handler
// can refuse one before copying and decoding it.
func (q *aeServeQueue) room(peer identity.NodeID) aeRefusal {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.roomLocked(peer)
}

func (q *aeServeQueue) roomLocked(peer identity.NodeID) aeRefusal {
	switch {
	case len(q.queues[peer]) >= AEMaxQueuedPerPeer:
		return aePeerFull
	case q.total >= AEQueueLen:
		return aeQueueFull
	}
	return aeQueued
}

// push queues a decoded request; it never blocks.
func (q *aeServeQueue) push(in aeInbound) aeRefusal {
	q.mu.Lock()
	if r := q.roomLocked(in.from); r != aeQueued {
		q.mu.Unlock()
		return r
	}
	if len(q.queues[in.from]) == 0 {
		q.order = append(q.order, in.from)
	}
	q.queues[in.from] = append(q.queues[in.from], in)
	q.total++
	q.mu.Unlock()
	signal(q.wake)
	return aeQueued
}

// next takes the next request whose peer's budget allows an answer now,
// taking turns between peers. When none does it returns how long until the
// first will (0: nothing is queued; wait for a push).
func (q *aeServeQueue) next() (in aeInbound, wait time.Duration, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	for range len(q.order) {
		if q.turn >= len(q.order) {
			q.turn = 0
		}
		peer := q.order[q.turn]
		w := max(q.reqs.Wait(peer, now, 1), q.bytes.Wait(peer, now, 0))
		if w > 0 || !q.reqs.Allow(peer, now) {
			if wait == 0 || w < wait {
				wait = max(w, time.Millisecond)
			}
			q.turn++
			continue
		}
		pq := q.queues[peer]
		in = pq[0]
		pq[0] = aeInbound{}
		q.total--
		if len(pq) == 1 {
			delete(q.queues, peer)
			q.order = append(q.order[:q.turn], q.order[q.turn+1:]...)
		} else {
			q.queues[peer] = pq[1:]
			q.turn++
		}
		return in, 0, true
	}
	return aeInbound{}, wait, false
}

// charge bills peer for an answer of n bytes.
func (q *aeServeQueue) charge(peer identity.NodeID, n int) {
	q.bytes.Charge(peer, q.now(), float64(n))
}
