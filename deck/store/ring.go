// Package store holds the deck's bounded in-memory state fed by the Client
// streams: log records, failures and audit records. Every store is a
// fixed-capacity ring indexed by an absolute position (records ever pushed),
// so views can keep cheap incremental indexes and detect eviction without
// copying the buffer.
package store

// Ring is a fixed-capacity FIFO that overwrites its oldest element.
// Absolute positions grow forever: position p is present while
// First() <= p < Total().
type Ring[T any] struct {
	buf   []T
	total uint64
}

// NewRing makes a ring holding up to capacity elements (at least 1).
func NewRing[T any](capacity int) *Ring[T] {
	if capacity < 1 {
		capacity = 1
	}
	return &Ring[T]{buf: make([]T, capacity)}
}

// Push appends v, evicting the oldest element when full.
func (r *Ring[T]) Push(v T) {
	r.buf[r.total%uint64(len(r.buf))] = v
	r.total++
}

// Cap is the ring's capacity.
func (r *Ring[T]) Cap() int { return len(r.buf) }

// Len is the number of elements held.
func (r *Ring[T]) Len() int {
	if r.total < uint64(len(r.buf)) {
		return int(r.total)
	}
	return len(r.buf)
}

// Total is how many elements were ever pushed (the next absolute position).
func (r *Ring[T]) Total() uint64 { return r.total }

// First is the absolute position of the oldest element held.
func (r *Ring[T]) First() uint64 { return r.total - uint64(r.Len()) }

// At returns the element at absolute position p; ok is false when p was
// evicted or not yet pushed.
func (r *Ring[T]) At(p uint64) (v *T, ok bool) {
	if p >= r.total || p < r.First() {
		return nil, false
	}
	return &r.buf[p%uint64(len(r.buf))], true
}

// Index returns the i-th held element, 0 being the oldest. i must be in
// [0, Len()).
func (r *Ring[T]) Index(i int) *T {
	return &r.buf[(r.First()+uint64(i))%uint64(len(r.buf))]
}
