package chain

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// DB is one node's database. It is safe for concurrent use.
type DB struct {
	cfg Config
	bdb *badger.DB

	logs   [5]*logState // indexed by log id; [0] unused
	ledger *ledgerState

	// sendMu orders senders against Close: senders hold it shared while they
	// hand a request to the committer, Close takes it exclusively before it
	// closes reqs, so nobody sends on a closed channel.
	sendMu sync.RWMutex
	closed bool
	reqs   chan *writeReq

	// readMu orders reads against Close: Badger panics when an iterator
	// is opened on a closed database, so Close waits for reads in flight
	// and later reads get ErrClosed.
	readMu     sync.RWMutex
	readClosed bool

	stop      chan struct{}
	bgDone    sync.WaitGroup
	committed chan struct{} // closed when the committer exits
	closeOnce sync.Once
	closeErr  error

	stats dbStats
}

type dbStats struct {
	commits, commitErrors, records atomic.Uint64
	logsDropped, failuresDropped   atomic.Uint64
	asyncErrors                    atomic.Uint64
	retentionDeleted               atomic.Uint64
	vlogGCRuns                     atomic.Uint64
	lastErr                        atomic.Pointer[string]
}

// Stats are the database's honest counters.
type Stats struct {
	Commits          uint64 // group-commit cycles that succeeded
	CommitErrors     uint64
	Records          uint64 // records committed (entries, events, snapshots)
	LogsDropped      uint64 // AppendLog calls refused because the queue was full
	FailuresDropped  uint64 // AppendFailure calls refused
	AsyncErrors      uint64 // fire-and-forget appends whose commit failed
	RetentionDeleted uint64 // records removed by retention
	ValueLogGCRuns   uint64 // value-log files rewritten
	LastError        string
}

// Open opens (creating if needed) the database in cfg.Dir and starts its
// committer, retention sweep and value-log GC.
func Open(cfg Config) (*DB, error) {
	switch {
	case cfg.InMemory && cfg.Dir != "":
		return nil, fmt.Errorf("%w: chain: Config.Dir set on an in-memory database", ErrInvalid)
	case !cfg.InMemory && cfg.Dir == "":
		return nil, fmt.Errorf("%w: chain: Config.Dir is empty", ErrInvalid)
	}
	cfg = cfg.withDefaults()
	if !cfg.InMemory {
		if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("chain: mkdir %s: %w", cfg.Dir, err)
		}
	}
	bdb, err := badger.Open(badgerOptions(cfg))
	if err != nil {
		return nil, fmt.Errorf("chain: open badger in %s: %w", cfg.describe(), err)
	}
	db := &DB{
		cfg:       cfg,
		bdb:       bdb,
		reqs:      make(chan *writeReq, WriteQueueLen),
		stop:      make(chan struct{}),
		committed: make(chan struct{}),
	}
	for _, n := range []struct {
		name string
		id   byte
		ret  *Retention
	}{
		{LogAdmin, logIDAdmin, nil},
		{LogLogs, logIDLogs, &db.cfg.Logs},
		{LogFailures, logIDFailures, &db.cfg.Failures},
		{LogSnapshots, logIDSnapshots, &db.cfg.Snapshots},
	} {
		db.logs[n.id] = &logState{name: n.name, id: n.id, retention: n.ret, subs: map[*Tail]struct{}{}, tails: map[*Tail]struct{}{}}
	}
	db.ledger = newLedgerState()
	if err := db.initSchema(); err != nil {
		bdb.Close()
		return nil, err
	}
	if err := db.loadState(); err != nil {
		bdb.Close()
		return nil, err
	}
	go db.commitLoop()
	db.startBackground()
	return db, nil
}

func (db *DB) initSchema() error {
	return db.bdb.Update(func(txn *badger.Txn) error {
		it, err := txn.Get(metaSchemaKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return txn.Set(metaSchemaKey, schemaVersion)
		}
		if err != nil {
			return fmt.Errorf("chain: read schema: %w", err)
		}
		v, err := it.ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("chain: read schema: %w", err)
		}
		if len(v) != 1 || v[0] != schemaVersion[0] {
			return fmt.Errorf("%w: schema %x, this build reads %x", ErrCorrupt, v, schemaVersion)
		}
		return nil
	})
}

// loadState reads every in-memory head from disk: at open, and after a
// failed commit (when part of a batch may have reached the disk).
func (db *DB) loadState() error {
	for _, ls := range db.logs[1:] {
		first, last, lastAt, err := db.scanLogBounds(ls.id)
		if err != nil {
			return err
		}
		ls.mu.Lock()
		ls.first, ls.last, ls.tentLast, ls.tentLastAt = first, last, last, lastAt
		ls.mu.Unlock()
	}
	return db.loadLedger()
}

// scanLogBounds finds a log's first and last seq and the last entry's time.
func (db *DB) scanLogBounds(id byte) (first, last uint64, lastAtNano int64, err error) {
	err = db.view(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		opt.Prefix = logPrefix(id)
		it := txn.NewIterator(opt)
		it.Rewind()
		if it.Valid() {
			first, _ = parseLogKey(id, it.Item().Key())
		}
		it.Close()
		opt.Reverse = true
		it = txn.NewIterator(opt)
		defer it.Close()
		// A reverse iterator seeks to the largest key <= the seek key.
		it.Seek(logKey(id, ^uint64(0)))
		if !it.Valid() {
			return nil
		}
		seq, ok := parseLogKey(id, it.Item().Key())
		if !ok {
			return fmt.Errorf("%w: bad log key %s", ErrCorrupt, keyString(it.Item().Key()))
		}
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("chain: read log %d seq %d: %w", id, seq, err)
		}
		at, _, err := decodeEntryHeader(v)
		if err != nil {
			return fmt.Errorf("log %d seq %d: %w", id, seq, err)
		}
		last, lastAtNano = seq, at
		return nil
	})
	if err != nil {
		err = fmt.Errorf("chain: scan log %d: %w", id, err)
	}
	return first, last, lastAtNano, err
}

func (db *DB) startBackground() {
	if db.cfg.RetentionInterval > 0 {
		db.bgDone.Add(1)
		go db.tick(db.cfg.RetentionInterval, func() {
			ctx, cancel := context.WithTimeout(context.Background(), db.cfg.RetentionInterval)
			defer cancel()
			if _, err := db.Sweep(ctx); err != nil && !errors.Is(err, ErrClosed) {
				db.noteErr(err)
			}
		})
	}
	// An in-memory database has no value log (Badger keeps every value in
	// the LSM there, and refuses value-log GC).
	if db.cfg.ValueLogGCInterval > 0 && !db.cfg.InMemory {
		db.bgDone.Add(1)
		go db.tick(db.cfg.ValueLogGCInterval, func() { db.RunValueLogGC() })
	}
}

func (db *DB) tick(every time.Duration, fn func()) {
	defer db.bgDone.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-db.stop:
			return
		case <-t.C:
			fn()
		}
	}
}

// RunValueLogGC rewrites value-log files that are mostly garbage (expired
// snapshots) and returns how many it rewrote.
func (db *DB) RunValueLogGC() int {
	if db.cfg.InMemory {
		return 0 // no value log: every value is in the LSM
	}
	n := 0
	for n < MaxValueLogGCRunsPerTick {
		if err := db.bdb.RunValueLogGC(ValueLogGCDiscardRatio); err != nil {
			// ErrNoRewrite is the normal "nothing worth rewriting" answer.
			if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
				db.noteErr(fmt.Errorf("chain: value-log gc: %w", err))
			}
			break
		}
		n++
		db.stats.vlogGCRuns.Add(1)
	}
	return n
}

func (db *DB) noteErr(err error) {
	s := err.Error()
	db.stats.lastErr.Store(&s)
	if db.cfg.Logf != nil {
		db.cfg.Logf("chain: %v", err)
	}
}

// Stats returns the database's counters.
func (db *DB) Stats() Stats {
	s := Stats{
		Commits:          db.stats.commits.Load(),
		CommitErrors:     db.stats.commitErrors.Load(),
		Records:          db.stats.records.Load(),
		LogsDropped:      db.stats.logsDropped.Load(),
		FailuresDropped:  db.stats.failuresDropped.Load(),
		AsyncErrors:      db.stats.asyncErrors.Load(),
		RetentionDeleted: db.stats.retentionDeleted.Load(),
		ValueLogGCRuns:   db.stats.vlogGCRuns.Load(),
	}
	if p := db.stats.lastErr.Load(); p != nil {
		s.LastError = *p
	}
	return s
}

// Now is the database's clock.
func (db *DB) Now() time.Time { return db.cfg.Now() }

// Close flushes queued writes, ends every Tail, stops the background work
// and closes Badger. Safe to call more than once.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.sendMu.Lock()
		db.closed = true
		close(db.reqs)
		db.sendMu.Unlock()
		<-db.committed
		close(db.stop)
		db.bgDone.Wait()
		for _, ls := range db.logs[1:] {
			ls.closeTails()
		}
		db.readMu.Lock()
		db.readClosed = true
		db.readMu.Unlock()
		if err := db.bdb.Close(); err != nil {
			db.closeErr = fmt.Errorf("chain: close badger: %w", err)
		}
	})
	return db.closeErr
}

// view runs fn in a Badger read transaction unless the database is closed.
func (db *DB) view(fn func(txn *badger.Txn) error) error {
	db.readMu.RLock()
	defer db.readMu.RUnlock()
	if db.readClosed {
		return ErrClosed
	}
	return db.bdb.View(fn)
}

// submit hands r to the committer, waiting for room until ctx ends.
func (db *DB) submit(ctx context.Context, r *writeReq) error {
	db.sendMu.RLock()
	defer db.sendMu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	select {
	case db.reqs <- r:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("chain: queue write: %w", ctx.Err())
	}
}

// trySubmit hands r to the committer without waiting.
func (db *DB) trySubmit(r *writeReq) error {
	db.sendMu.RLock()
	defer db.sendMu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	select {
	case db.reqs <- r:
		return nil
	default:
		return ErrQueueFull
	}
}

// do submits r and waits for its commit.
func (db *DB) do(ctx context.Context, r *writeReq) error {
	r.done = make(chan error, 1)
	if err := db.submit(ctx, r); err != nil {
		return err
	}
	// Once queued the write happens whatever ctx does; waiting for it keeps
	// "returned nil" meaning "on disk".
	return <-r.done
}

// Flush waits until every write queued before it (including AppendLog's
// fire-and-forget records) is committed.
func (db *DB) Flush(ctx context.Context) error {
	return db.do(ctx, &writeReq{kind: reqBarrier})
}
