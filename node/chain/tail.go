package chain

import (
	"context"
	"sync"
	"sync/atomic"
)

// Tail follows a log: it backfills from a seq, then goes live, and hands
// every record to C exactly once, in seq order, with no gap and no
// duplicate. Its channel is bounded: when the reader falls TailBufferLen
// records behind, the committer drops it from the live set (counted in
// Lagged, signalled on LagSignal) and the tail resumes from disk at its last
// seq + 1, so nothing is lost. The only records a tail can miss are those
// retention removed before it read them, counted in Skipped.
type Tail struct {
	db *DB
	ls *logState

	ch   chan Entry
	wake chan struct{} // committer → pump: you were dropped from the live set
	lagC chan struct{}

	// Guarded by ls.mu while live; owned by the pump otherwise.
	next uint64
	live bool

	lagged, skipped atomic.Uint64

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	errMu sync.Mutex
	err   error
}

// Tail starts following the log from fromSeq (0: the first retained
// record; Last()+1: only new records). The tail ends when ctx ends, Close is
// called or the database closes; then C is closed and Err says why.
func (l *Log) Tail(ctx context.Context, fromSeq uint64) *Tail {
	ctx, cancel := context.WithCancel(ctx)
	t := &Tail{
		db:     l.db,
		ls:     l.ls,
		ch:     make(chan Entry, TailBufferLen),
		wake:   make(chan struct{}, 1),
		lagC:   make(chan struct{}, 1),
		next:   max(fromSeq, 1),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	l.ls.mu.Lock()
	l.ls.tails[t] = struct{}{}
	l.ls.mu.Unlock()
	go t.pump()
	return t
}

// C delivers the records. It is closed when the tail ends.
func (t *Tail) C() <-chan Entry { return t.ch }

// Close ends the tail.
func (t *Tail) Close() { t.cancel() }

// Done is closed once the tail has ended and C is closed.
func (t *Tail) Done() <-chan struct{} { return t.done }

// Lagged is how many times the reader fell behind the live feed.
func (t *Tail) Lagged() uint64 { return t.lagged.Load() }

// LagSignal receives (coalesced) each time the tail lagged.
func (t *Tail) LagSignal() <-chan struct{} { return t.lagC }

// Skipped counts records retention removed before the tail reached them.
func (t *Tail) Skipped() uint64 { return t.skipped.Load() }

// Err is why the tail ended (the context's error, or a read error).
func (t *Tail) Err() error {
	t.errMu.Lock()
	defer t.errMu.Unlock()
	return t.err
}

func (t *Tail) fail(err error) {
	t.errMu.Lock()
	if t.err == nil {
		t.err = err
	}
	t.errMu.Unlock()
}

func (t *Tail) pump() {
	ls := t.ls
	defer func() {
		ls.mu.Lock()
		delete(ls.subs, t)
		delete(ls.tails, t)
		t.live = false
		ls.mu.Unlock()
		// The committer only sends while the tail is in subs, which it no
		// longer is: closing is safe.
		close(t.ch)
		if t.ctx.Err() != nil {
			t.fail(t.ctx.Err())
		}
		t.cancel()
		close(t.done)
	}()
	for {
		if t.ctx.Err() != nil {
			return
		}
		ls.mu.Lock()
		first, lastBefore := ls.first, ls.last
		ls.mu.Unlock()
		if t.next < first {
			t.skipped.Add(first - t.next)
			t.next = first
		}
		if t.next > lastBefore {
			// Caught up as of lastBefore. Go live only if nothing was
			// committed since: the check and the registration happen under
			// the lock the committer publishes under, so no record can slip
			// between the backfill and the live feed.
			ls.mu.Lock()
			if ls.last < t.next {
				ls.subs[t] = struct{}{}
				t.live = true
				ls.mu.Unlock()
				select {
				case <-t.ctx.Done():
					return
				case <-t.wake:
					// Dropped from the live set: continue from next on disk.
				}
				ls.mu.Lock()
				ls.mu.Unlock() // next is now ours again; the lock orders the read
				continue
			}
			ls.mu.Unlock()
			continue
		}
		es, err := t.db.readEntries(ls.id, t.next, 0, TailBackfillChunkRecords, false)
		if err != nil {
			t.fail(err)
			return
		}
		if len(es) == 0 {
			// Everything in [next, lastBefore] was removed by retention
			// (the read saw every commit up to lastBefore).
			t.skipped.Add(lastBefore + 1 - t.next)
			t.next = lastBefore + 1
			continue
		}
		for _, e := range es {
			if e.Seq > t.next {
				t.skipped.Add(e.Seq - t.next)
			}
			select {
			case t.ch <- e:
				t.next = e.Seq + 1
			case <-t.ctx.Done():
				return
			}
		}
	}
}
