package ratelimit

import (
	"sync"
	"time"
)

// FairQueue holds work that peers asked of a service, one FIFO per key (an
// authenticated node id), and releases it to the service's workers round
// robin, each key at its budget: requests per second, and a cost (bytes
// answered, say) charged once the work is done. A key that asks faster
// than its budget fills its own FIFO (MaxPerKey) and is refused there,
// before its request is queued; the other keys' work waits behind at most
// one of its items per turn. Push never blocks, so a handler on the
// transport's read loop can use it.
type FairQueue[K comparable, T any] struct {
	cfg  FairQueueConfig
	now  func() time.Time
	wake chan struct{}

	mu     sync.Mutex
	queues map[K][]T
	order  []K // keys with queued work, in turn order
	turn   int // index in order of the key served next
	total  int

	reqs *Table[K]
	cost *Table[K]
}

// FairQueueConfig bounds a FairQueue. Zero fields are raised to the least
// useful value (one item, one request a second …), never to "unbounded".
type FairQueueConfig struct {
	MaxPerKey, MaxTotal      int // queued items per key, and in all
	RequestsPerSecond, Burst float64
	CostPerSecond, CostBurst float64 // 0: no cost budget
	MaxKeys                  int     // the budget tables' capacity
}

// Refusal says why Push did not queue an item.
type Refusal int

const (
	Queued  Refusal = iota
	KeyFull         // the key's own FIFO is full: it asks beyond its budget
	AllFull         // every key's items together fill MaxTotal
)

// NewFairQueue makes a queue; now is the service's clock (nil: time.Now).
func NewFairQueue[K comparable, T any](cfg FairQueueConfig, now func() time.Time) *FairQueue[K, T] {
	if now == nil {
		now = time.Now
	}
	cfg.MaxPerKey, cfg.MaxTotal = max(cfg.MaxPerKey, 1), max(cfg.MaxTotal, 1)
	q := &FairQueue[K, T]{cfg: cfg, now: now, wake: make(chan struct{}, 1), queues: map[K][]T{}}
	q.reqs = New[K](cfg.RequestsPerSecond, cfg.Burst, cfg.MaxKeys)
	if cfg.CostPerSecond > 0 {
		q.cost = New[K](cfg.CostPerSecond, cfg.CostBurst, cfg.MaxKeys)
	}
	return q
}

// Wake is signalled (coalesced) when an item is pushed.
func (q *FairQueue[K, T]) Wake() <-chan struct{} { return q.wake }

// Room reports whether an item from k would be queued now, so a handler
// can refuse before it decodes or copies anything.
func (q *FairQueue[K, T]) Room(k K) Refusal {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.roomLocked(k)
}

func (q *FairQueue[K, T]) roomLocked(k K) Refusal {
	switch {
	case len(q.queues[k]) >= q.cfg.MaxPerKey:
		return KeyFull
	case q.total >= q.cfg.MaxTotal:
		return AllFull
	}
	return Queued
}

// Push queues item for k; it never blocks.
func (q *FairQueue[K, T]) Push(k K, item T) Refusal {
	q.mu.Lock()
	if r := q.roomLocked(k); r != Queued {
		q.mu.Unlock()
		return r
	}
	if len(q.queues[k]) == 0 {
		q.order = append(q.order, k)
	}
	q.queues[k] = append(q.queues[k], item)
	q.total++
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return Queued
}

// Next takes the next item whose key's budget allows it now, taking turns
// between keys. When none does it returns how long until the first will
// (0: nothing is queued; wait for Wake).
func (q *FairQueue[K, T]) Next() (k K, item T, wait time.Duration, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	for range len(q.order) {
		if q.turn >= len(q.order) {
			q.turn = 0
		}
		key := q.order[q.turn]
		w := q.reqs.Wait(key, now, 1)
		if q.cost != nil {
			w = max(w, q.cost.Wait(key, now, 0))
		}
		if w > 0 || !q.reqs.Allow(key, now) {
			if wait == 0 || w < wait {
				wait = max(w, time.Millisecond)
			}
			q.turn++
			continue
		}
		fifo := q.queues[key]
		item = fifo[0]
		var zero T
		fifo[0] = zero
		q.total--
		if len(fifo) == 1 {
			delete(q.queues, key)
			q.order = append(q.order[:q.turn], q.order[q.turn+1:]...)
		} else {
			q.queues[key] = fifo[1:]
			q.turn++
		}
		return key, item, 0, true
	}
	return k, item, wait, false
}

// Charge bills k for work of cost n, once it is known (the bytes of an
// answer): k is served again once its cost budget is out of debt.
func (q *FairQueue[K, T]) Charge(k K, n float64) {
	if q.cost != nil {
		q.cost.Charge(k, q.now(), n)
	}
}

// Len is how many items are queued.
func (q *FairQueue[K, T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.total
}
