package gossip

import (
	"encoding/binary"
	"fmt"

	"github.com/deck-mesh/deck/node/identity"
)

// Gossip messages on messaging.ChanGossip start with a type byte.
//
//	envelope: 1 | hops u8 | envelope
//	digest:   2 | flags u8 | count uvarint | count × (node u64 | epoch uvarint | seq uvarint)
//
// Digest entries are sorted by node id, strictly increasing, so one node
// appears once and the decoded map can never exceed the count bound.
const (
	msgEnvelope = 1
	msgDigest   = 2

	// digestReply marks a digest sent in answer to one: the receiver pushes
	// what it has newer but does not answer again, which ends the exchange.
	digestReply = 1
	// digestFocus marks a console's digest of a subnet it focuses on (not
	// its own): the receiver answers with the envelopes of its own subnet
	// the console lacks and never with a digest of its own.
	digestFocus = 2

	knownDigestFlags = digestReply | digestFocus
)

// digestEntry is one node's newest announcement as the sender holds it.
type digestEntry struct {
	node       identity.NodeID
	epoch, seq uint64
}

// minDigestEntryBytes: 8-byte id plus two one-byte varints.
const minDigestEntryBytes = 10

func appendEnvelopeMsg(dst []byte, hops uint8, env []byte) []byte {
	dst = append(dst, msgEnvelope, hops)
	return append(dst, env...)
}

func appendDigestMsg(dst []byte, flags uint8, entries []digestEntry) []byte {
	dst = append(dst, msgDigest, flags)
	dst = binary.AppendUvarint(dst, uint64(len(entries)))
	for _, e := range entries {
		dst = binary.BigEndian.AppendUint64(dst, uint64(e.node))
		dst = binary.AppendUvarint(dst, e.epoch)
		dst = binary.AppendUvarint(dst, e.seq)
	}
	return dst
}

// decodeDigest parses a digest message body (after the type byte). It
// bounds the entry count by MaxNodes and by the bytes present before
// allocating, and rejects unsorted or repeated ids and trailing bytes.
func decodeDigest(b []byte) (flags uint8, entries []digestEntry, err error) {
	if len(b) > MaxDigestBytes {
		return 0, nil, fmt.Errorf("gossip: digest: %w: %d bytes, limit %d", ErrTooLarge, len(b), MaxDigestBytes)
	}
	d := newDecoder(b)
	flags = d.u8()
	if d.Err() == nil && flags&^knownDigestFlags != 0 {
		return 0, nil, fmt.Errorf("gossip: digest: %w: unknown flags %#x", ErrMalformed, flags)
	}
	n := d.count("digest entries", MaxNodes, minDigestEntryBytes)
	if n > 0 {
		entries = make([]digestEntry, n)
	}
	for i := range entries {
		e := &entries[i]
		e.node = d.id()
		e.epoch = d.uvarint()
		e.seq = d.uvarint()
		if d.Err() != nil {
			break
		}
		if !e.node.Valid() || (i > 0 && e.node <= entries[i-1].node) {
			return 0, nil, fmt.Errorf("gossip: digest: %w: entry %d: ids not strictly increasing", ErrMalformed, i)
		}
	}
	if d.Err() != nil {
		return 0, nil, fmt.Errorf("gossip: digest: %w", d.Err())
	}
	if d.Off() != len(b) {
		return 0, nil, fmt.Errorf("gossip: digest: %w (%d of %d bytes used)", ErrTrailingBytes, d.Off(), len(b))
	}
	return flags, entries, nil
}
