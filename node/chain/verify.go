package chain

import (
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/crypto/blake2b"
)

// Verify re-walks the local hash-linked order and checks, for every seq
// from 1: the order record is present and well formed, its link hash
// follows from the previous one, the event it names exists with exactly the
// bytes that were hashed, the Validator still accepts them with the same id
// and issue time, and the id index agrees. Then the stored head must match
// the walk, and no event may sit outside the order. It returns nil, or a
// *TamperError (wrapping ErrTampered) naming the first bad seq and key.
//
// The links are unkeyed: they detect damage and naive edits, not an
// attacker who rewrites the whole chain consistently (that is what the
// signatures inside the events, checked by the Validator, are for).
func (l *Ledger) Verify(ctx context.Context) error {
	var (
		prev  [32]byte
		seq   uint64
		refs  = map[[32]byte]uint64{}
		tampr *TamperError
	)
	err := l.db.view(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.Prefix = logPrefix(logIDAdmin)
		opt.PrefetchSize = 64
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			k := it.Item().KeyCopy(nil)
			got, ok := parseLogKey(logIDAdmin, k)
			if !ok {
				tampr = &TamperError{Seq: seq + 1, Key: keyString(k), Reason: "malformed order key"}
				return nil
			}
			want := seq + 1
			if got != want {
				tampr = &TamperError{Seq: want, Key: keyString(logKey(logIDAdmin, want)), Reason: fmt.Sprintf("order record missing (next present is seq %d)", got)}
				return nil
			}
			seq = got
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("chain: verify read seq %d: %w", seq, err)
			}
			if t := l.verifyOne(txn, seq, k, v, &prev, refs); t != nil {
				tampr = t
				return nil
			}
		}
		return l.verifyTail(txn, seq, prev, refs, &tampr)
	})
	if err != nil {
		return fmt.Errorf("chain: verify: %w", err)
	}
	if tampr != nil {
		return tampr
	}
	return nil
}

func (l *Ledger) verifyOne(txn *badger.Txn, seq uint64, k, v []byte, prev *[32]byte, refs map[[32]byte]uint64) *TamperError {
	bad := func(key []byte, f string, a ...any) *TamperError {
		return &TamperError{Seq: seq, Key: keyString(key), Reason: fmt.Sprintf(f, a...)}
	}
	_, payload, err := decodeEntryHeader(v)
	if err != nil {
		return bad(k, "%v", err)
	}
	o, err := decodeOrderRecord(payload)
	if err != nil {
		return bad(k, "%v", err)
	}
	if link := linkHash(*prev, seq, o.Pos, o.RawHash); link != o.Link {
		return bad(k, "link hash mismatch: record modified, reordered or a predecessor removed")
	}
	*prev = o.Link
	if other, dup := refs[o.Pos.ID]; dup {
		return bad(k, "event already at seq %d", other)
	}
	refs[o.Pos.ID] = seq
	ek := eventKey(o.Pos.IssuedAtMs, o.Pos.ID)
	item, err := txn.Get(ek)
	if err != nil {
		return bad(ek, "event missing: %v", err)
	}
	raw, err := item.ValueCopy(nil)
	if err != nil {
		return bad(ek, "event unreadable: %v", err)
	}
	if blake2b.Sum256(raw) != o.RawHash {
		return bad(ek, "event bytes modified")
	}
	meta, err := l.validate(raw)
	if err != nil {
		return bad(ek, "event no longer validates: %v", err)
	}
	if meta.Pos() != o.Pos {
		return bad(ek, "event decodes to a different id or issue time")
	}
	idk := eventIDKey(o.Pos.ID)
	if item, err = txn.Get(idk); err != nil {
		return bad(idk, "id index missing: %v", err)
	}
	iv, err := item.ValueCopy(nil)
	if err != nil || len(iv) != 8 || int64(beUint64(iv)) != o.Pos.IssuedAtMs {
		return bad(idk, "id index disagrees with the event")
	}
	return nil
}

func (l *Ledger) verifyTail(txn *badger.Txn, seq uint64, prev [32]byte, refs map[[32]byte]uint64, out **TamperError) error {
	var head Head
	item, err := txn.Get(metaLedgerHeadKey)
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
	case err != nil:
		return fmt.Errorf("chain: verify head: %w", err)
	default:
		v, err := item.ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("chain: verify head: %w", err)
		}
		if head, err = decodeHead(v); err != nil {
			*out = &TamperError{Key: keyString(metaLedgerHeadKey), Reason: err.Error()}
			return nil
		}
	}
	if head.LastSeq != seq || head.Count != seq || head.Hash != prev {
		next := seq + 1
		reason := fmt.Sprintf("head says %d events ending at seq %d, the order has %d", head.Count, head.LastSeq, seq)
		if head.LastSeq > seq {
			reason = fmt.Sprintf("order records from seq %d to %d missing (head says %d)", next, head.LastSeq, head.LastSeq)
		}
		*out = &TamperError{Seq: next, Key: keyString(logKey(logIDAdmin, next)), Reason: reason}
		return nil
	}
	opt := badger.DefaultIteratorOptions
	opt.PrefetchValues = false
	opt.Prefix = []byte{nsEvent}
	it := txn.NewIterator(opt)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().KeyCopy(nil)
		pos, ok := parseEventKey(k)
		if !ok {
			*out = &TamperError{Key: keyString(k), Reason: "malformed event key"}
			return nil
		}
		if _, ok := refs[pos.ID]; !ok {
			*out = &TamperError{Key: keyString(k), Reason: "event not in the local order (inserted behind the ledger's back)"}
			return nil
		}
	}
	return nil
}

func beUint64(b []byte) uint64 {
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}
