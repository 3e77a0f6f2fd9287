package transport

import (
	"github.com/deck-mesh/deck/node/wire"
)

// dedup is the relay's duplicate filter: a direct-mapped table of packet
// digests. A collision only evicts, so a late duplicate may slip through;
// the destination's replay window still rejects it. Fixed size, no
// allocation, nothing keyed by wire data grows.
//
// It belongs to the read loop (forward's only caller), so its slots are
// plain words: an atomic swap per relayed packet was a locked instruction
// with a full barrier on the relay's hottest path, for no concurrency.
type dedup struct {
	slots [DedupSlots]uint64
}

func packetDigest(h *wire.Header) uint64 {
	x := uint64(h.Src)*0x9e3779b97f4a7c15 ^ uint64(h.Dst)*0xc2b2ae3d27d4eb4f
	x ^= (uint64(h.Index)<<8 | uint64(h.Type)) * 0x165667b19e3779f9
	x ^= h.Counter * 0xd6e8feb86659fd93
	x ^= x >> 29
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 32
	if x == 0 {
		x = 1 // 0 marks an empty slot
	}
	return x
}

// seen reports whether h was already forwarded, and remembers it.
func (d *dedup) seen(h *wire.Header) bool {
	x := packetDigest(h)
	i := x % DedupSlots
	old := d.slots[i]
	d.slots[i] = x
	return old == x
}
