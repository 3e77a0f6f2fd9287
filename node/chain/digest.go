package chain

import (
	"fmt"
	"sort"

	"github.com/dgraph-io/badger/v4"
)

// BucketDigest summarises the events whose issue time falls in
// [Start, Start + 1<<shift): how many, and the XOR of their ids. Ids are
// BLAKE2b hashes of signed events, so the XOR of a set is a cheap,
// order-independent fingerprint; together with the count, two different sets
// collide only by a crafted coincidence, and the price of a collision is a
// sync that waits for the next event, never a wrong ledger.
type BucketDigest struct {
	Start int64
	Count uint32
	XOR   [32]byte
}

func (d *BucketDigest) add(id [32]byte) {
	d.Count++
	for i := range d.XOR {
		d.XOR[i] ^= id[i]
	}
}

func (d *BucketDigest) merge(o BucketDigest) {
	d.Count += o.Count
	for i := range d.XOR {
		d.XOR[i] ^= o.XOR[i]
	}
}

// bucketIndex keeps the finest-level buckets (width 1<<DigestMinWidthShiftBits
// ms) sorted by start; coarser digests are folded from it on demand. Its
// size is at most the number of events, 44 bytes each.
type bucketIndex struct {
	b     []BucketDigest
	total BucketDigest
}

func bucketStart(t int64, shift uint) int64 { return t &^ (int64(1)<<shift - 1) }

func (x *bucketIndex) add(p Position) {
	s := bucketStart(p.IssuedAtMs, DigestMinWidthShiftBits)
	i := sort.Search(len(x.b), func(i int) bool { return x.b[i].Start >= s })
	if i == len(x.b) || x.b[i].Start != s {
		x.b = append(x.b, BucketDigest{})
		copy(x.b[i+1:], x.b[i:])
		x.b[i] = BucketDigest{Start: s}
	}
	x.b[i].add(p.ID)
	x.total.add(p.ID)
}

// digest returns the non-empty buckets of width 1<<shift inside [from, to).
func (x *bucketIndex) digest(from, to int64, shift uint) []BucketDigest {
	return x.digestN(from, to, shift, 0)
}

// digestN is digest stopping after max buckets (0: no limit), so a peer's
// request for a fine split of all time costs this node the answer it gets,
// not a walk of every bucket it holds.
func (x *bucketIndex) digestN(from, to int64, shift uint, max int) []BucketDigest {
	if shift >= DigestMaxWidthShiftBits && from == 0 && to >= int64(1)<<DigestMaxWidthShiftBits {
		// Every round opens with this question: answer it from the running
		// total instead of folding every bucket.
		if x.total.Count == 0 {
			return nil
		}
		return []BucketDigest{x.total}
	}
	var out []BucketDigest
	i := sort.Search(len(x.b), func(i int) bool { return x.b[i].Start >= from })
	for ; i < len(x.b) && x.b[i].Start < to; i++ {
		s := bucketStart(x.b[i].Start, shift)
		if n := len(out); n > 0 && out[n-1].Start == s {
			out[n-1].merge(x.b[i])
			continue
		}
		if max > 0 && len(out) == max {
			break
		}
		d := BucketDigest{Start: s}
		d.merge(x.b[i])
		out = append(out, d)
	}
	return out
}

// Digest is the ledger's whole-set fingerprint.
func (l *Ledger) Digest() BucketDigest {
	l.st.mu.RLock()
	defer l.st.mu.RUnlock()
	return l.st.buckets.total
}

// DigestRange returns the ledger's buckets of width 1<<shift within
// [from, to); from and to must be multiples of 1<<DigestMinWidthShiftBits.
func (l *Ledger) DigestRange(from, to int64, shift uint) ([]BucketDigest, error) {
	return l.digestRangeN(from, to, shift, 0)
}

// digestRangeN is DigestRange stopping after max buckets (0: no limit).
func (l *Ledger) digestRangeN(from, to int64, shift uint, max int) ([]BucketDigest, error) {
	if shift < DigestMinWidthShiftBits || shift > DigestMaxWidthShiftBits || from < 0 || to < from ||
		from != bucketStart(from, DigestMinWidthShiftBits) {
		return nil, fmt.Errorf("%w: digest range [%d,%d) shift %d", ErrInvalid, from, to, shift)
	}
	l.st.mu.RLock()
	defer l.st.mu.RUnlock()
	return l.st.buckets.digestN(from, to, shift, max), nil
}

// IDsRange lists up to max event positions with from <= issued_at < to,
// strictly after the cursor after (nil: from the start), in fold order.
// more says whether the range holds further events.
func (l *Ledger) IDsRange(from, to int64, after *Position, max int) (ps []Position, more bool, err error) {
	err = l.db.view(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		opt.Prefix = []byte{nsEvent}
		it := txn.NewIterator(opt)
		defer it.Close()
		seek := eventKey(from, [32]byte{})
		if after != nil {
			seek = eventKey(after.IssuedAtMs, after.ID)
		}
		for it.Seek(seek); it.Valid(); it.Next() {
			p, ok := parseEventKey(it.Item().Key())
			if !ok {
				return fmt.Errorf("%w: bad event key %s", ErrCorrupt, keyString(it.Item().Key()))
			}
			if p.IssuedAtMs >= to {
				return nil
			}
			if after != nil && p.Compare(*after) <= 0 {
				continue
			}
			if len(ps) == max {
				more = true
				return nil
			}
			ps = append(ps, p)
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("chain: ledger ids: %w", err)
	}
	return ps, more, nil
}
