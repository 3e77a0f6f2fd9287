package transport

import (
	"net/netip"
	"sync/atomic"
)

// hopCacheSize is how many addresses a hopCache remembers. A relay talks to
// a handful of neighbours, so a few entries catch nearly every packet.
const hopCacheSize = 4

// hopCache is a tiny address-keyed cache in front of a copy-on-write map
// (the link table, the relay's rate-limit buckets). Hashing a
// netip.AddrPort costs more than the rest of a forward's lookups, while
// comparing a few in a row is nearly free. The cache remembers which
// published table its entries came from and empties itself when a new
// table appears, so it never serves an entry the table has dropped.
//
// It is not safe for concurrent use: each one belongs to the read loop.
type hopCache[V any] struct {
	table any // the published map the entries were read from
	keys  [hopCacheSize]netip.AddrPort
	vals  [hopCacheSize]V
	used  int
	next  int // slot replaced on the next miss, round-robin
}

// sync empties the cache if table is not the one its entries came from.
func (c *hopCache[V]) sync(table any) {
	if c.table != table {
		c.table = table
		c.used, c.next = 0, 0
		clear(c.vals[:]) // drop references to retired values
	}
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

// readCaches is state owned by the read loop (the only caller of forward).
type readCaches struct {
	links  hopCache[*link]
	limits hopCache[*atomic.Int64]
}

// relayLink returns addr's live link for the relay path, through the read
// loop's cache.
func (t *Transport) relayLink(addr netip.AddrPort) *link {
	c := &t.rc.links
	tbl := t.links.Load()
	c.sync(tbl)
	if l, ok := c.get(addr); ok {
		return l
	}
	if l := (*tbl)[addr]; l != nil {
		c.put(addr, l)
		return l
	}
	return t.newLink(addr) // publishes a new table: the next call re-syncs
}

// allowForward spends one token of from's relay budget, through the read
// loop's cache of bucket pointers.
func (t *Transport) allowForward(from netip.AddrPort) bool {
	c := &t.rc.limits
	tbl := t.fwdLimit.buckets.Load()
	c.sync(tbl)
	if b, ok := c.get(from); ok {
		return t.fwdLimit.spend(b)
	}
	if b := (*tbl)[from]; b != nil {
		c.put(from, b)
		return t.fwdLimit.spend(b)
	}
	return t.fwdLimit.allow(from) // adds a bucket and publishes a new table
}
