package chain

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

// Folder turns the ledger into state. Apply must be deterministic (a pure
// function of the state and the event): the fold applies events in
// (issued_at, id) order, so every node that holds the same set of events
// computes the same state whatever order they arrived in. Apply may modify
// and return its input; the fold Clones before it keeps a checkpoint.
type Folder[S any] interface {
	Init() S
	Apply(s S, e Event) S
	Clone(s S) S
}

// Fold keeps a Folder's state up to date with a ledger. It follows the
// ledger's local order through a Tail (so it never misses an event); an
// event whose position is after the applied-through watermark is applied
// directly, an older one (a late arrival from a healed partition) triggers
// a refold from the nearest checkpoint before it.
//
// Checkpoints: a clone of the state every CheckpointEvery applied events,
// at most MaxFoldCheckpoints (thinned by half when full). Without them, a
// late event refolds the whole ledger; BenchmarkFoldLateEvent measures both.
type Fold[S any] struct {
	l     *Ledger
	f     Folder[S]
	every int

	mu      sync.RWMutex
	state   S
	through Position // applied-through watermark (zero: nothing applied)
	applied uint64   // events in state
	cps     []foldCheckpoint[S]
	sinceCP int
	refolds uint64
	seen    uint64 // local seqs consumed from the tail
	// advanced is closed (and replaced) whenever seen moves: WaitLocalSeq's
	// broadcast, apart from notify, which has one consumer.
	advanced chan struct{}

	notify chan struct{}
}

type foldCheckpoint[S any] struct {
	through Position
	applied uint64
	state   S
}

// FoldStats describe a fold's progress and cost.
type FoldStats struct {
	Applied     uint64   // events folded into the state
	Through     Position // applied-through watermark
	Refolds     uint64   // late events that forced a refold
	Checkpoints int
	LocalSeq    uint64 // last local seq consumed
}

// NewFold makes a fold of l with f. checkpointEvery <= 0 means
// DefaultFoldCheckpointEvery. Call Run to follow the ledger.
func NewFold[S any](l *Ledger, f Folder[S], checkpointEvery int) *Fold[S] {
	if checkpointEvery <= 0 {
		checkpointEvery = DefaultFoldCheckpointEvery
	}
	l.st.handoff.enable()
	return &Fold[S]{l: l, f: f, every: checkpointEvery, state: f.Init(), notify: make(chan struct{}, 1), advanced: make(chan struct{})}
}

// WaitLocalSeq blocks until the fold has consumed local seq seq (its state
// holds every event stored up to it), or ctx ends. A reader that must judge
// against state as of the ledger's head (node/command/chainfold's ingest
// reads the registry from it) waits here rather than read a lagging state.
func (fd *Fold[S]) WaitLocalSeq(ctx context.Context, seq uint64) error {
	for {
		fd.mu.RLock()
		seen, ch := fd.seen, fd.advanced
		fd.mu.RUnlock()
		if seen >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("chain: fold at local seq %d, waiting for %d: %w", seen, seq, ctx.Err())
		}
	}
}

// advance wakes WaitLocalSeq's waiters; fd.mu must be held for writing.
func (fd *Fold[S]) advance() {
	close(fd.advanced)
	fd.advanced = make(chan struct{})
}

// Run folds what the ledger holds, then follows it until ctx ends or the
// database closes. Events that arrive together are folded as one batch, so a
// burst of late events (a healed partition) costs one refold, not one each.
func (fd *Fold[S]) Run(ctx context.Context) error {
	if fd.LocalSeq() == 0 {
		fd.mu.Lock()
		err := fd.refoldLocked(false)
		fd.advance()
		fd.mu.Unlock()
		if err != nil {
			return err
		}
		signal(fd.notify)
	}
	t := fd.l.Tail(ctx, fd.LocalSeq()+1)
	defer t.Close()
	batch := make([]Event, 0, 64)
	for e := range t.C() {
		batch = batch[:0]
		for {
			ev, err := fd.l.EventOf(e)
			if err != nil {
				return fmt.Errorf("chain: fold: %w", err)
			}
			batch = append(batch, ev)
			if len(batch) == cap(batch) {
				break
			}
			var ok bool
			select {
			case e, ok = <-t.C():
			default:
			}
			if !ok {
				break
			}
		}
		if err := fd.addBatch(batch); err != nil {
			return err
		}
	}
	if err := t.Err(); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// Changed receives (coalesced) after every change of the state.
func (fd *Fold[S]) Changed() <-chan struct{} { return fd.notify }

// LocalSeq is the last local seq the fold has consumed.
func (fd *Fold[S]) LocalSeq() uint64 {
	fd.mu.RLock()
	defer fd.mu.RUnlock()
	return fd.seen
}

// State returns a clone of the folded state and its watermark.
func (fd *Fold[S]) State() (S, Position) {
	fd.mu.RLock()
	defer fd.mu.RUnlock()
	return fd.f.Clone(fd.state), fd.through
}

// View calls fn with the state under the fold's read lock; fn must not keep
// or modify it.
func (fd *Fold[S]) View(fn func(s S, through Position)) {
	fd.mu.RLock()
	defer fd.mu.RUnlock()
	fn(fd.state, fd.through)
}

// Stats reports the fold's progress.
func (fd *Fold[S]) Stats() FoldStats {
	fd.mu.RLock()
	defer fd.mu.RUnlock()
	return FoldStats{Applied: fd.applied, Through: fd.through, Refolds: fd.refolds, Checkpoints: len(fd.cps), LocalSeq: fd.seen}
}

// addBatch folds newly stored events.
func (fd *Fold[S]) addBatch(evs []Event) error {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	// A refold already folded every event up to the head it read.
	fresh := evs[:0]
	for _, ev := range evs {
		if ev.Seq > fd.seen {
			fresh = append(fresh, ev)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	sort.Slice(fresh, func(i, j int) bool { return fresh[i].Meta.Pos().Compare(fresh[j].Meta.Pos()) < 0 })
	if first := fresh[0].Meta.Pos(); fd.applied > 0 && first.Compare(fd.through) <= 0 {
		if err := fd.refoldLocked(true); err != nil {
			return err
		}
	} else {
		for _, ev := range fresh {
			fd.apply(ev)
			fd.seen = max(fd.seen, ev.Seq)
		}
	}
	fd.advance()
	signal(fd.notify)
	return nil
}

func (fd *Fold[S]) apply(ev Event) {
	// Apply sees only what every node agrees on: the local seq and arrival
	// time differ between nodes and would break determinism. The decoded
	// form is a function of the bytes, so it may ride along.
	ev.Seq, ev.RecordedAtNano = 0, 0
	if ev.Meta.Decoded == nil {
		ev.Meta.Decoded = fd.l.st.handoff.take(ev.Meta.ID)
	}
	fd.state = fd.f.Apply(fd.state, ev)
	fd.through = ev.Meta.Pos()
	fd.applied++
	fd.sinceCP++
	if fd.sinceCP >= fd.every {
		fd.sinceCP = 0
		fd.cps = append(fd.cps, foldCheckpoint[S]{through: fd.through, applied: fd.applied, state: fd.f.Clone(fd.state)})
		if len(fd.cps) > MaxFoldCheckpoints {
			// Keep every other checkpoint: the spacing doubles, the count
			// halves, the newest (most useful for late events) survives.
			kept := make([]foldCheckpoint[S], 0, MaxFoldCheckpoints/2+1)
			for i := (len(fd.cps) - 1) % 2; i < len(fd.cps); i += 2 {
				kept = append(kept, fd.cps[i])
			}
			fd.cps = kept
		}
	}
}

// refoldLocked rebuilds the state after events arrived out of order. In one
// database snapshot it finds the earliest position among every event not yet
// folded (local seq > seen: the late batch, and anything committed since,
// which may be earlier still), restores the newest checkpoint strictly before
// it (genesis if none), and applies every event after the checkpoint. The
// snapshot's head tells exactly which local seqs the new state covers.
func (fd *Fold[S]) refoldLocked(late bool) error {
	if late {
		fd.refolds++
	}
	head, err := fd.l.refoldView(fd.seen, func(earliest Position, any bool) Position {
		i := len(fd.cps)
		if any {
			i = sort.Search(len(fd.cps), func(i int) bool { return fd.cps[i].through.Compare(earliest) >= 0 })
		}
		fd.cps = fd.cps[:i] // checkpoints at or after it miss a late event
		fd.sinceCP = 0
		if i == 0 {
			fd.state, fd.through, fd.applied = fd.f.Init(), Position{}, 0
			return Position{}
		}
		cp := fd.cps[i-1]
		fd.state, fd.through, fd.applied = fd.f.Clone(cp.state), cp.through, cp.applied
		return cp.through
	}, func(ev Event) {
		if fd.applied > 0 && ev.Meta.Pos().Compare(fd.through) <= 0 {
			return // the checkpoint already holds it
		}
		fd.apply(ev)
	})
	if err != nil {
		return fmt.Errorf("chain: refold: %w", err)
	}
	fd.seen = max(fd.seen, head.LastSeq)
	return nil
}
