package api

import (
	"sync"
	"sync/atomic"
)

// Stream is a bounded, droppable feed of records. The producer never blocks:
// when the buffer is full the record is counted in Dropped. A producer that
// detects the consumer lost records it must re-fetch counts them in Lagged.
type Stream[T any] struct {
	ch      chan T
	dropped atomic.Uint64
	lagged  atomic.Uint64
	once    sync.Once
	done    chan struct{}
	onClose func()
}

// NewStream makes a stream with a buffer of size records; onClose (may be
// nil) runs once when the consumer closes it.
func NewStream[T any](size int, onClose func()) *Stream[T] {
	if size < 1 {
		size = 1
	}
	return &Stream[T]{ch: make(chan T, size), done: make(chan struct{}), onClose: onClose}
}

// C is the consumer's channel. It is never closed by Close (so a consumer
// selecting on it is safe); use Done to learn the stream ended.
func (s *Stream[T]) C() <-chan T { return s.ch }

// Done is closed when the stream is closed.
func (s *Stream[T]) Done() <-chan struct{} { return s.done }

// Offer hands v to the consumer without blocking; false means it was dropped
// (buffer full) or the stream is closed.
func (s *Stream[T]) Offer(v T) bool {
	select {
	case <-s.done:
		return false
	default:
	}
	select {
	case s.ch <- v:
		return true
	default:
		s.dropped.Add(1)
		return false
	}
}

// MarkLagged records that the consumer fell behind n records that the
// producer will backfill or that were lost.
func (s *Stream[T]) MarkLagged(n uint64) { s.lagged.Add(n) }

// AddDropped counts n records dropped upstream of the stream (for example
// by a remote node's push bound), so Dropped stays the one honest total.
func (s *Stream[T]) AddDropped(n uint64) { s.dropped.Add(n) }

// Dropped is how many records were dropped because the consumer was slow.
func (s *Stream[T]) Dropped() uint64 { return s.dropped.Load() }

// Lagged is how many times (or records) the stream lagged.
func (s *Stream[T]) Lagged() uint64 { return s.lagged.Load() }

// Close ends the stream; safe to call more than once.
func (s *Stream[T]) Close() {
	s.once.Do(func() {
		close(s.done)
		if s.onClose != nil {
			s.onClose()
		}
	})
}
