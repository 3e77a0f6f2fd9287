package chain

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Entry is one record of a named log.
type Entry struct {
	Seq uint64
	// AtNano is the append time (the database clock, Unix nanoseconds),
	// never decreasing along a log; retention by age cuts on it.
	AtNano int64
	// Value is the payload. It may be shared with other tails: read only.
	Value []byte
}

// At is the append time.
func (e Entry) At() time.Time { return time.Unix(0, e.AtNano) }

// logState is one named log's in-memory head and its live subscribers.
type logState struct {
	name      string
	id        byte
	retention *Retention // nil: never truncated

	mu    sync.Mutex
	first uint64 // retention floor: every seq below it is gone (0: empty log)
	last  uint64 // highest committed and published seq
	subs  map[*Tail]struct{}
	tails map[*Tail]struct{} // every open tail, live or backfilling

	// Committer-only: the seq and time handed out to staged entries.
	tentLast   uint64
	tentLastAt int64
}

// bounds returns the published first and last seq.
func (ls *logState) bounds() (first, last uint64) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.first, ls.last
}

// deliverLocked hands committed entries to live tails. A tail whose buffer
// is full is taken off the live set and told to re-read from disk: the
// committer never waits for a reader.
func (ls *logState) deliverLocked(es []Entry) {
	for t := range ls.subs {
		for _, e := range es {
			if e.Seq < t.next {
				continue
			}
			select {
			case t.ch <- e:
				t.next = e.Seq + 1
			default:
				delete(ls.subs, t)
				t.live = false
				t.lagged.Add(1)
				signal(t.wake)
				signal(t.lagC)
			}
			if !t.live {
				break
			}
		}
	}
}

// kickSubs sends every live tail back to disk (after a failed commit that
// may have left records nobody was told about).
func (ls *logState) kickSubs() {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for t := range ls.subs {
		delete(ls.subs, t)
		t.live = false
		signal(t.wake)
	}
}

func (ls *logState) closeTails() {
	ls.mu.Lock()
	ts := make([]*Tail, 0, len(ls.tails))
	for t := range ls.tails {
		ts = append(ts, t)
	}
	ls.mu.Unlock()
	for _, t := range ts {
		t.fail(ErrClosed)
		t.Close()
		<-t.done
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Log is a handle on one named log.
type Log struct {
	db *DB
	ls *logState
}

// Log returns the named log ("admin", "logs", "failures", "snapshots").
func (db *DB) Log(name string) (*Log, error) {
	for _, ls := range db.logs[1:] {
		if ls.name == name {
			return &Log{db: db, ls: ls}, nil
		}
	}
	return nil, fmt.Errorf("%w: no log named %q", ErrNotFound, name)
}

func (db *DB) logByID(id byte) *Log { return &Log{db: db, ls: db.logs[id]} }

// Logs is the "logs" log (encoded api.LogRecord payloads).
func (db *DB) Logs() *Log { return db.logByID(logIDLogs) }

// Failures is the "failures" log (encoded api.FailureRecord payloads).
func (db *DB) Failures() *Log { return db.logByID(logIDFailures) }

// Name is the log's name.
func (l *Log) Name() string { return l.ls.name }

// Bounds returns the first retained and the last committed seq (0, 0 when
// the log is empty). The last seq is never removed by retention.
func (l *Log) Bounds() (first, last uint64) { return l.ls.bounds() }

// Append durably appends payloads as consecutive records and returns the
// seq of the first. Concurrent appends share one fsync. The admin and
// snapshots logs are written through the Ledger and AppendSnapshot.
func (l *Log) Append(ctx context.Context, payloads ...[]byte) (uint64, error) {
	if l.ls.id == logIDAdmin || l.ls.id == logIDSnapshots {
		return 0, fmt.Errorf("%w: %s", ErrReadOnlyLog, l.ls.name)
	}
	if err := checkPayloads(payloads); err != nil {
		return 0, err
	}
	r := &writeReq{kind: reqAppend, log: l.ls, payloads: payloads}
	if err := l.db.do(ctx, r); err != nil {
		return 0, err
	}
	return r.first, nil
}

func checkPayloads(payloads [][]byte) error {
	if len(payloads) == 0 || len(payloads) > MaxAppendRecords {
		return fmt.Errorf("%w: append of %d records (1..%d)", ErrInvalid, len(payloads), MaxAppendRecords)
	}
	for i, p := range payloads {
		if len(p) > MaxEntryBytes {
			return fmt.Errorf("%w: record %d is %d bytes (max %d)", ErrTooLarge, i, len(p), MaxEntryBytes)
		}
	}
	return nil
}

// Get reads one record.
func (l *Log) Get(seq uint64) (Entry, error) {
	es, err := l.db.readEntries(l.ls.id, seq, seq+1, 1, false)
	if err != nil {
		return Entry{}, err
	}
	if len(es) == 0 {
		return Entry{}, fmt.Errorf("%w: %s seq %d", ErrNotFound, l.ls.name, seq)
	}
	return es[0], nil
}

// Range calls fn for each record with from <= seq < to (to 0: to the end)
// in seq order, until fn returns false.
func (l *Log) Range(from, to uint64, fn func(Entry) bool) error {
	for {
		es, err := l.db.readEntries(l.ls.id, from, to, TailBackfillChunkRecords, false)
		if err != nil {
			return err
		}
		for _, e := range es {
			if !fn(e) {
				return nil
			}
		}
		if len(es) < TailBackfillChunkRecords {
			return nil
		}
		from = es[len(es)-1].Seq + 1
	}
}

// Reverse calls fn for each record with seq < before (before 0: every
// record) newest first, until fn returns false.
func (l *Log) Reverse(before uint64, fn func(Entry) bool) error {
	if before == 0 {
		before = ^uint64(0)
	}
	for before > 0 {
		es, err := l.db.readEntries(l.ls.id, 0, before, TailBackfillChunkRecords, true)
		if err != nil {
			return err
		}
		for _, e := range es {
			if !fn(e) {
				return nil
			}
		}
		if len(es) < TailBackfillChunkRecords {
			return nil
		}
		before = es[len(es)-1].Seq
	}
	return nil
}

// readEntries reads up to max records of log id with from <= seq < to (to 0:
// unbounded), newest first when reverse. A record whose header is damaged
// is an error naming it: silently skipping would hide disk corruption.
func (db *DB) readEntries(id byte, from, to uint64, max int, reverse bool) ([]Entry, error) {
	var out []Entry
	err := db.view(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.Prefix = logPrefix(id)
		opt.Reverse = reverse
		opt.PrefetchSize = min(max, 64)
		it := txn.NewIterator(opt)
		defer it.Close()
		if reverse {
			// Reverse seeks land on the largest key <= the seek key.
			it.Seek(logKey(id, to-1))
		} else {
			it.Seek(logKey(id, from))
		}
		for ; it.Valid() && len(out) < max; it.Next() {
			item := it.Item()
			seq, ok := parseLogKey(id, item.Key())
			if !ok {
				return fmt.Errorf("%w: bad log key %s", ErrCorrupt, keyString(item.Key()))
			}
			if (to != 0 && seq >= to) || seq < from {
				break
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("chain: read %s seq %d: %w", db.logs[id].name, seq, err)
			}
			at, payload, err := decodeEntryHeader(v)
			if err != nil {
				return fmt.Errorf("%s seq %d: %w", db.logs[id].name, seq, err)
			}
			out = append(out, Entry{Seq: seq, AtNano: at, Value: payload})
		}
		return nil
	})
	if err != nil && errors.Is(err, badger.ErrDBClosed) {
		return nil, ErrClosed
	}
	return out, err
}
