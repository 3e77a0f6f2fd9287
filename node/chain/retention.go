package chain

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/dgraph-io/badger/v4"
)

// Sweep applies retention now: logs and failures by count and age, snapshot
// history by count per node and by age. The admin log is never touched,
// and the newest record of every log is always kept so seqs survive a
// restart. It returns how many records it removed.
func (db *DB) Sweep(ctx context.Context) (int, error) {
	total := 0
	for _, id := range []byte{logIDLogs, logIDFailures} {
		n, err := db.sweepLog(ctx, db.logs[id])
		total += n
		if err != nil {
			return total, err
		}
	}
	n, err := db.sweepSnapshots(ctx)
	return total + n, err
}

func (db *DB) sweepLog(ctx context.Context, ls *logState) (int, error) {
	ret := *ls.retention
	first, last := ls.bounds()
	if last == 0 || first == 0 || first >= last {
		return 0, nil
	}
	var upTo uint64 // delete every seq <= upTo
	if ret.MaxCount > 0 && last-first+1 > ret.MaxCount {
		upTo = last - ret.MaxCount
	}
	if ret.MaxAge > 0 {
		cutoff := db.cfg.Now().Add(-ret.MaxAge).UnixNano()
		// Append times never decrease along a log, so the expired records
		// are a prefix: binary-search its end.
		var probeErr error
		k := sort.Search(int(min(last-first+1, 1<<62)), func(i int) bool {
			if probeErr != nil {
				return true
			}
			es, err := db.readEntries(ls.id, first+uint64(i), 0, 1, false)
			if err != nil {
				probeErr = err
				return true
			}
			return len(es) == 0 || es[0].AtNano >= cutoff
		})
		if probeErr != nil {
			return 0, fmt.Errorf("chain: retention %s: %w", ls.name, probeErr)
		}
		if k > 0 {
			upTo = max(upTo, first+uint64(k)-1)
		}
	}
	upTo = min(upTo, last-1)
	if upTo < first {
		return 0, nil
	}
	deleted := 0
	for lo := first; lo <= upTo; lo += RetentionDeleteChunkRecords {
		hi := min(lo+RetentionDeleteChunkRecords-1, upTo)
		seqs := make([]uint64, 0, hi-lo+1)
		for s := lo; s <= hi; s++ {
			seqs = append(seqs, s)
		}
		if err := db.do(ctx, &writeReq{kind: reqDelete, log: ls, delSeqs: seqs}); err != nil {
			return deleted, fmt.Errorf("chain: retention %s: %w", ls.name, err)
		}
		deleted += len(seqs)
	}
	return deleted, nil
}

func (db *DB) sweepSnapshots(ctx context.Context) (int, error) {
	ls := db.logs[logIDSnapshots]
	ret := *ls.retention
	cutoff := int64(-1 << 63)
	if ret.MaxAge > 0 {
		cutoff = db.cfg.Now().Add(-ret.MaxAge).UnixNano()
	}
	var seqs []uint64
	var keys [][]byte
	deleted := 0
	flush := func() error {
		if len(seqs) == 0 {
			return nil
		}
		err := db.do(ctx, &writeReq{kind: reqDelete, log: ls, delSeqs: seqs, delSnapIdx: keys})
		if err == nil {
			deleted += len(seqs)
		}
		seqs, keys = nil, nil
		return err
	}
	// group holds one node's index keys, oldest first (the index order).
	var group [][]byte
	curNode := uint64(0)
	judge := func() error {
		keep := len(group)
		if ret.MaxCount > 0 && uint64(keep) > ret.MaxCount {
			keep = int(ret.MaxCount)
		}
		for i, k := range group {
			_, at, seq, _ := parseSnapIdxKey(k)
			if i < len(group)-keep || at < cutoff {
				seqs = append(seqs, seq)
				keys = append(keys, k)
				if len(seqs) >= RetentionDeleteChunkRecords {
					if err := flush(); err != nil {
						return err
					}
				}
			}
		}
		group = group[:0]
		return nil
	}
	err := db.view(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		opt.Prefix = []byte{nsSnapshot}
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().KeyCopy(nil)
			node, _, _, ok := parseSnapIdxKey(k)
			if !ok {
				return fmt.Errorf("%w: bad snapshot index key %s", ErrCorrupt, keyString(k))
			}
			if node != curNode {
				if err := judge(); err != nil {
					return err
				}
				curNode = node
			}
			group = append(group, k)
		}
		return judge()
	})
	if err == nil {
		err = flush()
	}
	if err != nil && !errors.Is(err, ErrClosed) {
		err = fmt.Errorf("chain: retention snapshots: %w", err)
	}
	return deleted, err
}
