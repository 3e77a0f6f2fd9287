package chain

import (
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// BlobSpace is the blob store's keyspace (namespace 0x06) in the node's one
// database: node/blob lays out its own keys after the namespace byte, and
// writes them through the same committer as every log, so a chunk is on
// disk (fsynced with the group commit) when Write returns, and one fsync is
// shared by every chunk and record waiting with it. Keys passed in and
// handed back never include the namespace byte.
type BlobSpace struct{ db *DB }

// BlobSpace is the database's blob keyspace.
func (db *DB) BlobSpace() *BlobSpace { return &BlobSpace{db: db} }

// BlobOp is one change in a BlobSpace write: a set of Key to Value, or a
// delete of Key.
type BlobOp struct {
	Key    []byte
	Value  []byte
	Delete bool
}

// Bounds of a BlobSpace write.
const (
	// MaxBlobKeyBytes bounds one key of the blob keyspace.
	MaxBlobKeyBytes = 128
	// MaxBlobValueBytes bounds one value: a chunk (node/blob's chunk size
	// is well below) or a record.
	MaxBlobValueBytes = 1 << 20
	// MaxBlobWriteOps bounds one atomic write; larger changes are split by
	// the caller into groups that are each safe to apply alone.
	MaxBlobWriteOps = 1024
)

// Write applies ops atomically: all of them in one Badger transaction, or
// none. It returns once they are committed (fsynced) or ctx ends before
// the write was queued.
func (s *BlobSpace) Write(ctx context.Context, ops []BlobOp) error {
	if len(ops) == 0 {
		return nil
	}
	if len(ops) > MaxBlobWriteOps {
		return fmt.Errorf("%w: blob write of %d ops, at most %d", ErrTooLarge, len(ops), MaxBlobWriteOps)
	}
	for _, op := range ops {
		if len(op.Key) == 0 || len(op.Key) > MaxBlobKeyBytes {
			return fmt.Errorf("%w: blob key of %d bytes", ErrInvalid, len(op.Key))
		}
		if len(op.Value) > MaxBlobValueBytes {
			return fmt.Errorf("%w: blob value of %d bytes, at most %d", ErrTooLarge, len(op.Value), MaxBlobValueBytes)
		}
	}
	return s.db.do(ctx, &writeReq{kind: reqBlob, blobOps: ops})
}

// stageBlob stages one atomic group of blob ops (committer only). The cost
// reserved is Badger's own estimate: a value at or above the value
// threshold lives in the value log and costs the transaction only its
// pointer, so a group of several chunks still fits one transaction.
func (db *DB) stageBlob(st *stager, r *writeReq) error {
	var cost int64
	keys := make([][]byte, len(r.blobOps))
	for i, op := range r.blobOps {
		keys[i] = blobKey(op.Key)
		cost += blobEntryCost(keys[i], op.Value)
	}
	if err := st.reserve(cost, int64(len(r.blobOps))); err != nil {
		return err
	}
	for i, op := range r.blobOps {
		var err error
		if op.Delete {
			err = st.txn.Delete(keys[i])
		} else {
			err = st.txn.Set(keys[i], op.Value)
		}
		if err != nil {
			return fmt.Errorf("chain: stage blob op: %w", err)
		}
	}
	db.stats.records.Add(uint64(len(r.blobOps)))
	return nil
}

// blobEntryCost is Badger's size estimate for one entry plus our slack.
func blobEntryCost(k, v []byte) int64 {
	if len(v) >= BadgerValueThresholdBytes {
		return int64(len(k)) + 12 + 2 + txnSlackBytes
	}
	return entryCost(k, v)
}

func blobKey(k []byte) []byte {
	out := make([]byte, 1+len(k))
	out[0] = nsBlob
	copy(out[1:], k)
	return out
}

// Get appends the value of key to dst and returns it; ErrNotFound when
// there is none.
func (s *BlobSpace) Get(key, dst []byte) ([]byte, error) {
	var out []byte
	err := s.db.view(func(txn *badger.Txn) error {
		it, err := txn.Get(blobKey(key))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("chain: blob get: %w", err)
		}
		if it.ValueSize() > MaxBlobValueBytes {
			return fmt.Errorf("%w: blob value of %d bytes", ErrCorrupt, it.ValueSize())
		}
		return it.Value(func(v []byte) error {
			out = append(dst, v...)
			return nil
		})
	})
	return out, err
}

// Has reports whether key is set.
func (s *BlobSpace) Has(key []byte) (bool, error) {
	err := s.db.view(func(txn *badger.Txn) error {
		_, err := txn.Get(blobKey(key))
		return err
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return false, nil
	}
	return false, fmt.Errorf("chain: blob has: %w", err)
}

// BlobItem is one key of a Scan: the key (without the namespace byte, valid
// only during the callback), the value's size, and the value when the scan
// asked for values (also valid only during the callback). ValueSize is
// Badger's estimate, off by a few bytes for a value kept in the value log
// (it cannot know the record header's length without reading it): exact
// sizes belong in the caller's own records.
type BlobItem struct {
	Key       []byte
	ValueSize int64
	Value     []byte
}

// Scan calls fn for every key with prefix, in key order, starting at the
// first key ≥ from (nil: the prefix's first), until fn returns false. With
// values unset it reads keys only (a value in the value log is not
// touched). It reads one consistent snapshot; writes made meanwhile are
// not seen.
func (s *BlobSpace) Scan(prefix, from []byte, values bool, fn func(it BlobItem) bool) error {
	return s.db.view(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		opt.Prefix = blobKey(prefix)
		it := txn.NewIterator(opt)
		defer it.Close()
		start := opt.Prefix
		if len(from) > 0 {
			start = blobKey(from)
		}
		for it.Seek(start); it.Valid(); it.Next() {
			item := it.Item()
			bi := BlobItem{Key: item.Key()[1:], ValueSize: item.ValueSize()}
			if values {
				if bi.ValueSize > MaxBlobValueBytes {
					return fmt.Errorf("%w: blob value of %d bytes", ErrCorrupt, bi.ValueSize)
				}
				if err := item.Value(func(v []byte) error {
					bi.Value = v
					return nil
				}); err != nil {
					return fmt.Errorf("chain: blob scan: %w", err)
				}
			}
			if !fn(bi) {
				return nil
			}
		}
		return nil
	})
}
