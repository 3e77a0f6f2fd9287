package transport

import (
	"net/netip"
)

// hopCacheSize is how many addresses a hopCache remembers. A relay talks to
// a handful of neighbours, so a few entries catch nearly every packet.
const hopCacheSize = 4

// hopCache is a tiny address-keyed cache in front of a map (the relay's
// rate-limit buckets). Hashing a netip.AddrPort costs more than the rest
// of a forward's lookups, while comparing a few in a row is nearly free.
// Its owner resets it whenever the map drops an entry, so it never serves
// one the map has forgotten.
//
// It is not safe for concurrent use: each one belongs to the read loop.
type hopCache[V any] struct {
	keys [hopCacheSize]netip.AddrPort
	vals [hopCacheSize]V
	used int
	next int // slot replaced on the next miss, round-robin
}

// reset empties the cache.
func (c *hopCache[V]) reset() {
	c.used, c.next = 0, 0
	clear(c.vals[:]) // drop references to retired values
}

func (c *hopCache[V]) get(k netip.AddrPort) (V, bool) {
	for i := range c.used {
		if c.keys[i] == k {
			return c.vals[i], true
		}
	}
	var zero V
	return zero, false
}

func (c *hopCache[V]) put(k netip.AddrPort, v V) {
	i := c.next
	c.next = (c.next + 1) % hopCacheSize
	if c.used < hopCacheSize {
		i = c.used
		c.used++
	}
	c.keys[i], c.vals[i] = k, v
}
