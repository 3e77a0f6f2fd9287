package chain

import (
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/deck-mesh/deck/node/identity"
)

// SnapshotRecord is one stored node snapshot (opaque bytes: the gossip
// codec owns their format).
type SnapshotRecord struct {
	Node identity.NodeID
	At   time.Time
	Seq  uint64 // seq in the snapshots log
	Data []byte
}

const snapHeaderBytes = 8 + 8

// AppendSnapshot durably records that node's snapshot at time at was data,
// for History. Retention keeps at most Config.Snapshots.MaxCount per node and
// nothing older than Config.Snapshots.MaxAge.
func (db *DB) AppendSnapshot(ctx context.Context, node identity.NodeID, at time.Time, data []byte) (uint64, error) {
	if !node.Valid() {
		return 0, fmt.Errorf("%w: snapshot of node 0", ErrInvalid)
	}
	if len(data) > MaxEntryBytes-snapHeaderBytes {
		return 0, fmt.Errorf("%w: snapshot of %d bytes (max %d)", ErrTooLarge, len(data), MaxEntryBytes-snapHeaderBytes)
	}
	p := SnapshotPayload(node, at, data)
	r := &writeReq{kind: reqSnapshot, log: db.logs[logIDSnapshots], payloads: [][]byte{p},
		snapNode: uint64(node), snapAtNano: at.UnixNano()}
	if err := db.do(ctx, r); err != nil {
		return 0, err
	}
	return r.first, nil
}

// SnapshotPayload is a snapshots-log entry's payload: node(8) at(8) data.
func SnapshotPayload(node identity.NodeID, at time.Time, data []byte) []byte {
	p := make([]byte, 0, snapHeaderBytes+len(data))
	p = binary.BigEndian.AppendUint64(p, uint64(node))
	p = binary.BigEndian.AppendUint64(p, uint64(at.UnixNano()))
	return append(p, data...)
}

func (db *DB) stageSnapshot(st *stager, r *writeReq, now int64, pub *publication) error {
	ls := r.log
	seq, at := ls.tentLast+1, max(now, ls.tentLastAt)
	v := encodeEntry(at, r.payloads[0])
	lk := logKey(ls.id, seq)
	ik := snapIdxKey(r.snapNode, r.snapAtNano, seq)
	if err := st.reserve(entryCost(lk, v)+entryCost(ik, nil), 2); err != nil {
		return err
	}
	if err := st.setReserved(lk, v); err != nil {
		return err
	}
	if err := st.setReserved(ik, nil); err != nil {
		return err
	}
	ls.nextEntry(now)
	r.first = seq
	pub.entries[ls.id] = append(pub.entries[ls.id], Entry{Seq: seq, AtNano: at, Value: v[entryHeaderBytes:]})
	db.stats.records.Add(1)
	return nil
}

// decodeSnapshotEntry parses a snapshots-log entry.
func decodeSnapshotEntry(e Entry) (SnapshotRecord, error) {
	if len(e.Value) < snapHeaderBytes {
		return SnapshotRecord{}, fmt.Errorf("%w: snapshots seq %d is %d bytes", ErrCorrupt, e.Seq, len(e.Value))
	}
	return SnapshotRecord{
		Node: identity.NodeID(binary.BigEndian.Uint64(e.Value)),
		At:   time.Unix(0, int64(binary.BigEndian.Uint64(e.Value[8:]))),
		Seq:  e.Seq,
		Data: e.Value[snapHeaderBytes:],
	}, nil
}

// SnapshotRecordOf decodes a "snapshots" log entry (read through
// DB.Log(LogSnapshots)): the node, the time it was recorded, the bytes.
func SnapshotRecordOf(e Entry) (SnapshotRecord, error) { return decodeSnapshotEntry(e) }

type snapRef struct {
	atNano int64
	seq    uint64
}

// History returns up to n of node's snapshots taken strictly before
// before, newest first. Node 0 means every node.
func (db *DB) History(node identity.NodeID, before time.Time, n int) ([]SnapshotRecord, error) {
	if n <= 0 {
		return nil, nil
	}
	n = min(n, MaxHistoryRecords)
	bn := before.UnixNano()
	var refs []snapRef
	err := db.view(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		if node.Valid() {
			opt.Reverse = true
			opt.Prefix = snapIdxKey(uint64(node), 0, 0)[:9]
			it := txn.NewIterator(opt)
			defer it.Close()
			// Reverse seek: the largest key <= (node, before, 0), and seqs
			// start at 1, so every key found is strictly before.
			for it.Seek(snapIdxKey(uint64(node), bn, 0)); it.Valid() && len(refs) < n; it.Next() {
				_, at, seq, ok := parseSnapIdxKey(it.Item().Key())
				if !ok {
					return fmt.Errorf("%w: bad snapshot index key %s", ErrCorrupt, keyString(it.Item().Key()))
				}
				refs = append(refs, snapRef{at, seq})
			}
			return nil
		}
		// Every node: the index is ordered by node first, so keep the n
		// newest in a min-heap while walking it (bounded by retention).
		opt.Prefix = []byte{nsSnapshot}
		it := txn.NewIterator(opt)
		defer it.Close()
		h := &snapHeap{}
		for it.Rewind(); it.Valid(); it.Next() {
			_, at, seq, ok := parseSnapIdxKey(it.Item().Key())
			if !ok {
				return fmt.Errorf("%w: bad snapshot index key %s", ErrCorrupt, keyString(it.Item().Key()))
			}
			if at >= bn {
				continue
			}
			if h.Len() < n {
				heap.Push(h, snapRef{at, seq})
			} else if (*h)[0].less(snapRef{at, seq}) {
				(*h)[0] = snapRef{at, seq}
				heap.Fix(h, 0)
			}
		}
		for h.Len() > 0 {
			refs = append(refs, heap.Pop(h).(snapRef))
		}
		for i, j := 0, len(refs)-1; i < j; i, j = i+1, j-1 {
			refs[i], refs[j] = refs[j], refs[i]
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("chain: history: %w", err)
	}
	out := make([]SnapshotRecord, 0, len(refs))
	snaps := db.logByID(logIDSnapshots)
	for _, r := range refs {
		e, err := snaps.Get(r.seq)
		if errors.Is(err, ErrNotFound) {
			continue // retention removed it after the index walk
		}
		if err != nil {
			return nil, fmt.Errorf("chain: history seq %d: %w", r.seq, err)
		}
		rec, err := decodeSnapshotEntry(e)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

func (a snapRef) less(b snapRef) bool {
	if a.atNano != b.atNano {
		return a.atNano < b.atNano
	}
	return a.seq < b.seq
}

type snapHeap []snapRef

func (h snapHeap) Len() int           { return len(h) }
func (h snapHeap) Less(i, j int) bool { return h[i].less(h[j]) }
func (h snapHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *snapHeap) Push(x any)        { *h = append(*h, x.(snapRef)) }
func (h *snapHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
