package chain

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

type reqKind uint8

const (
	reqAppend reqKind = iota + 1
	reqSnapshot
	reqLedger
	reqDelete
	reqBarrier
	reqBlob
)

// writeReq is one unit of work for the committer. The committer owns it
// from submit until done is signalled.
type writeReq struct {
	kind reqKind
	log  *logState

	payloads [][]byte // reqAppend; reqSnapshot: exactly one

	snapNode   uint64 // reqSnapshot
	snapAtNano int64

	events []pendingEvent // reqLedger
	report InsertReport   // reqLedger result

	delSeqs    []uint64 // reqDelete: log seqs of log to remove
	delSnapIdx [][]byte // reqDelete: snapshot index keys to remove

	first uint64 // reqAppend/reqSnapshot result: seq of the first record

	blobOps []BlobOp // reqBlob: one atomic group in the blob keyspace

	done chan error // nil: fire-and-forget
}

func (r *writeReq) records() int {
	return len(r.payloads) + len(r.events) + len(r.delSeqs) + len(r.blobOps) + 1
}

func (r *writeReq) bytes() int {
	n := 0
	for _, p := range r.payloads {
		n += len(p)
	}
	for _, e := range r.events {
		n += e.sizeOf()
	}
	for _, op := range r.blobOps {
		n += len(op.Key) + len(op.Value)
	}
	return n
}

func (r *writeReq) finish(db *DB, err error) {
	if r.done != nil {
		r.done <- err
		return
	}
	if err != nil {
		db.stats.asyncErrors.Add(1)
		name := "blob store"
		if r.log != nil {
			name = r.log.name
		}
		db.noteErr(fmt.Errorf("chain: async append to %s: %w", name, err))
	}
}

// stager writes a batch into as few Badger transactions as fit, committing
// (and so fsyncing) one before it would overflow. Every transaction but the
// last commits early; the batch's waiters are only answered after the last.
type stager struct {
	db              *DB
	txn             *badger.Txn
	size, count     int64
	maxSize, maxCnt int64
}

func newStager(db *DB) *stager {
	return &stager{
		db:      db,
		txn:     db.bdb.NewTransaction(true),
		maxSize: db.bdb.MaxBatchSize(),
		maxCnt:  db.bdb.MaxBatchCount(),
	}
}

func entryCost(k, v []byte) int64 { return int64(len(k) + len(v) + txnSlackBytes) }

// reserve makes room for an atomic group of n keys costing bytes, so that
// a group is never split across transactions.
func (s *stager) reserve(bytes, n int64) error {
	if s.count+n < s.maxCnt && s.size+bytes < s.maxSize {
		s.size += bytes
		s.count += n
		return nil
	}
	if s.count == 0 {
		return fmt.Errorf("%w: a group of %d keys / %d bytes exceeds one transaction", ErrTooLarge, n, bytes)
	}
	if err := s.flush(); err != nil {
		return err
	}
	return s.reserve(bytes, n)
}

func (s *stager) set(k, v []byte) error {
	if err := s.reserve(entryCost(k, v), 1); err != nil {
		return err
	}
	return s.setReserved(k, v)
}

// setReserved sets a key whose cost was already reserved.
func (s *stager) setReserved(k, v []byte) error {
	if err := s.txn.Set(k, v); err != nil {
		return fmt.Errorf("chain: stage set: %w", err)
	}
	return nil
}

func (s *stager) del(k []byte) error {
	if err := s.reserve(entryCost(k, nil), 1); err != nil {
		return err
	}
	if err := s.txn.Delete(k); err != nil {
		return fmt.Errorf("chain: stage delete: %w", err)
	}
	return nil
}

func (s *stager) flush() error {
	err := s.txn.Commit()
	s.txn = s.db.bdb.NewTransaction(true)
	s.size, s.count = 0, 0
	if err != nil {
		return fmt.Errorf("chain: commit: %w", err)
	}
	return nil
}

func (s *stager) discard() { s.txn.Discard() }

// publication is what a committed batch makes visible: per-log entries in
// seq order, new retention floors, and ledger additions.
type publication struct {
	entries  [5][]Entry
	newFirst [5]uint64
	events   []Event
	head     *ledgerHead
}

func (db *DB) commitLoop() {
	defer close(db.committed)
	batch := make([]*writeReq, 0, 64)
	for {
		r, ok := <-db.reqs
		if !ok {
			return
		}
		batch = append(batch[:0], r)
		recs, bytes := r.records(), r.bytes()
	drain:
		for recs < MaxCommitRecords && bytes < MaxCommitBytes {
			select {
			case r, ok := <-db.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
				recs += r.records()
				bytes += r.bytes()
			default:
				break drain
			}
		}
		db.commitBatch(batch)
		clear(batch)
	}
}

func (db *DB) commitBatch(batch []*writeReq) {
	st := newStager(db)
	var pub publication
	var err error
	now := db.cfg.Now().UnixNano()
	for _, r := range batch {
		switch r.kind {
		case reqAppend:
			err = db.stageAppend(st, r, now, &pub)
		case reqSnapshot:
			err = db.stageSnapshot(st, r, now, &pub)
		case reqLedger:
			err = db.stageLedger(st, r, now, &pub)
		case reqDelete:
			err = db.stageDelete(st, r, &pub)
		case reqBarrier:
		case reqBlob:
			err = db.stageBlob(st, r)
		}
		if err != nil {
			break
		}
	}
	if err == nil {
		err = st.flush()
	}
	st.discard()
	if err != nil {
		db.stats.commitErrors.Add(1)
		db.noteErr(err)
		// Part of the batch may be on disk (an early transaction), so the
		// in-memory heads are rebuilt from disk and live tails re-read it.
		if lerr := db.loadState(); lerr != nil {
			db.noteErr(lerr)
			err = errors.Join(err, lerr)
		}
		for _, ls := range db.logs[1:] {
			ls.kickSubs()
		}
		for _, r := range batch {
			r.finish(db, err)
		}
		return
	}
	db.stats.commits.Add(1)
	db.publish(&pub)
	for _, r := range batch {
		r.finish(db, nil)
	}
}

// nextEntry assigns the next seq and append time of ls (committer only).
// Times never go backwards along a log, so age retention can cut a prefix.
func (ls *logState) nextEntry(now int64) (uint64, int64) {
	ls.tentLast++
	if now < ls.tentLastAt {
		now = ls.tentLastAt
	}
	ls.tentLastAt = now
	return ls.tentLast, now
}

func (db *DB) stageAppend(st *stager, r *writeReq, now int64, pub *publication) error {
	ls := r.log
	for i, p := range r.payloads {
		seq, at := ls.nextEntry(now)
		v := encodeEntry(at, p)
		if err := st.set(logKey(ls.id, seq), v); err != nil {
			return err
		}
		if i == 0 {
			r.first = seq
		}
		pub.entries[ls.id] = append(pub.entries[ls.id], Entry{Seq: seq, AtNano: at, Value: v[entryHeaderBytes:]})
	}
	db.stats.records.Add(uint64(len(r.payloads)))
	return nil
}

func (db *DB) stageDelete(st *stager, r *writeReq, pub *publication) error {
	ls := r.log
	newFirst, deleted := uint64(0), uint64(0)
	for _, seq := range r.delSeqs {
		// The newest record is always kept, so seqs continue from it after
		// a restart even when retention removed everything else.
		if seq >= ls.tentLast {
			continue
		}
		if err := st.del(logKey(ls.id, seq)); err != nil {
			return err
		}
		deleted++
		if seq+1 > newFirst {
			newFirst = seq + 1
		}
	}
	for _, k := range r.delSnapIdx {
		if _, _, seq, ok := parseSnapIdxKey(k); ok && seq >= ls.tentLast {
			continue
		}
		if err := st.del(k); err != nil {
			return err
		}
	}
	if ls.id != logIDSnapshots && newFirst > pub.newFirst[ls.id] {
		pub.newFirst[ls.id] = newFirst
	}
	db.stats.retentionDeleted.Add(deleted)
	return nil
}

func (db *DB) publish(pub *publication) {
	// Before the log delivers the admin entries: the Fold follows its Tail
	// and takes each event's decoded form on arrival.
	for _, ev := range pub.events {
		db.ledger.handoff.put(ev)
	}
	for id, es := range pub.entries {
		nf := pub.newFirst[id]
		if len(es) == 0 && nf == 0 {
			continue
		}
		ls := db.logs[id]
		ls.mu.Lock()
		if nf > ls.first {
			ls.first = nf
		}
		if len(es) > 0 {
			if ls.first == 0 {
				ls.first = es[0].Seq
			}
			ls.last = es[len(es)-1].Seq
			ls.deliverLocked(es)
		}
		ls.mu.Unlock()
	}
	if pub.head != nil {
		db.publishLedger(pub)
	}
}
