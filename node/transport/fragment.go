package transport

import (
	"errors"
	"fmt"
	"time"

	"github.com/deck-mesh/deck/node/wire"
)

// Reassembly errors. A fragment that breaks a bound is dropped with one of
// these; the partial message it belonged to may survive or be discarded.
var (
	ErrReassemblyFull     = errors.New("transport: too many partial messages from peer")
	ErrReassemblyBytes    = errors.New("transport: partial messages from peer exceed byte budget")
	ErrReassemblyMismatch = errors.New("transport: fragment disagrees with its message")
)

// reassemblyLimits are the per-peer bounds; tests shrink them.
type reassemblyLimits struct {
	maxMessages int
	maxBytes    int
	timeout     time.Duration
	// Bulk messages' share (messaging.Channel.Bulk): a peer's chunks in
	// flight never take the room its gossip and control messages need.
	maxBulkMessages int
	maxBulkBytes    int
}

// reassembler rebuilds one peer's fragmented messages. It is used by the
// read loop and the ticker, under the peer table lock.
type reassembler struct {
	msgs             map[uint32]*partial
	bytes            int
	bulkN, bulkBytes int // the bulk messages among msgs
}

type partial struct {
	bulk         bool
	total, count int
	buf          []byte
	have         []uint64 // bitmap of received fragment indexes
	got          int
	started      time.Time
}

// add stores one fragment; it returns the whole message once the last
// fragment arrives. The caller has already checked f with wire.ParseFragment,
// so Total, Count, Index and len(data) are consistent with each other.
func (r *reassembler) add(now time.Time, lim reassemblyLimits, f *wire.Fragment, data []byte, bulk bool) ([]byte, error) {
	if r.msgs == nil {
		r.msgs = make(map[uint32]*partial)
	}
	p := r.msgs[f.MessageID]
	if p == nil && bulk && (r.bulkN >= lim.maxBulkMessages || r.bulkBytes+int(f.Total) > lim.maxBulkBytes) {
		r.expire(now, lim.timeout)
		if r.bulkN >= lim.maxBulkMessages || r.bulkBytes+int(f.Total) > lim.maxBulkBytes {
			return nil, fmt.Errorf("%w: %d bulk messages, %d bytes pending", ErrReassemblyFull, r.bulkN, r.bulkBytes)
		}
	}
	if p == nil {
		if len(r.msgs) >= lim.maxMessages {
			r.expire(now, lim.timeout)
			if len(r.msgs) >= lim.maxMessages {
				return nil, fmt.Errorf("%w: %d pending", ErrReassemblyFull, len(r.msgs))
			}
		}
		if r.bytes+int(f.Total) > lim.maxBytes {
			r.expire(now, lim.timeout)
			if r.bytes+int(f.Total) > lim.maxBytes {
				return nil, fmt.Errorf("%w: %d + %d > %d", ErrReassemblyBytes, r.bytes, f.Total, lim.maxBytes)
			}
		}
		p = &partial{
			bulk:    bulk,
			total:   int(f.Total),
			count:   int(f.Count),
			buf:     make([]byte, f.Total),
			have:    make([]uint64, (int(f.Count)+63)/64),
			started: now,
		}
		r.msgs[f.MessageID] = p
		r.account(p, 1)
	}
	if int(f.Total) != p.total || int(f.Count) != p.count || bulk != p.bulk {
		return nil, fmt.Errorf("%w: id %d total %d/%d", ErrReassemblyMismatch, f.MessageID, f.Total, p.total)
	}
	i := int(f.Index)
	if p.have[i/64]&(1<<(i%64)) != 0 {
		return nil, nil // duplicate fragment: harmless, already have it
	}
	p.have[i/64] |= 1 << (i % 64)
	copy(p.buf[i*wire.MaxFragmentBytes:], data)
	p.got++
	if p.got < p.count {
		return nil, nil
	}
	delete(r.msgs, f.MessageID)
	r.account(p, -1)
	return p.buf, nil
}

// account adds (sign 1) or removes (sign -1) p from the totals.
func (r *reassembler) account(p *partial, sign int) {
	r.bytes += sign * p.total
	if p.bulk {
		r.bulkN += sign
		r.bulkBytes += sign * p.total
	}
}

// expire drops partial messages older than timeout and reports how many.
func (r *reassembler) expire(now time.Time, timeout time.Duration) int {
	n := 0
	for id, p := range r.msgs {
		if now.Sub(p.started) > timeout {
			delete(r.msgs, id)
			r.account(p, -1)
			n++
		}
	}
	return n
}
