package serve

import (
	"container/list"
	"net"
	"net/netip"
	"sync"
	"time"
)

// rateLimiter is a token bucket per source: burst attempts back to back,
// then one per refill interval. Sources are IPv4 addresses and IPv6 /64s (one
// host usually owns a whole /64, so per-address buckets would be free for
// it). The table is an LRU capped at max entries; forgetting a source only
// ever gives it a fresh bucket, which is the cost of a bounded table.
type rateLimiter struct {
	burst  float64
	refill time.Duration
	max    int
	now    func() time.Time

	mu  sync.Mutex
	m   map[netip.Prefix]*list.Element
	lru list.List // of *bucket, most recently seen first
}

type bucket struct {
	key    netip.Prefix
	tokens float64
	last   time.Time
}

func newRateLimiter(burst int, refill time.Duration, max int, now func() time.Time) *rateLimiter {
	if burst < 1 {
		burst = 1
	}
	if max < 1 {
		max = 1
	}
	if now == nil {
		now = time.Now
	}
	return &rateLimiter{burst: float64(burst), refill: refill, max: max, now: now, m: make(map[netip.Prefix]*list.Element)}
}

// sourceKey maps a remote address to its bucket. An address that is not IP
// (a pipe in tests) shares the zero bucket: limited, never unlimited.
func sourceKey(addr net.Addr) netip.Prefix {
	var ap netip.AddrPort
	switch a := addr.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	default:
		if addr != nil {
			ap, _ = netip.ParseAddrPort(addr.String())
		}
	}
	ip := ap.Addr().Unmap()
	if !ip.IsValid() {
		return netip.Prefix{}
	}
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// allow takes one token from addr's bucket and reports whether there was one.
func (r *rateLimiter) allow(addr net.Addr) bool {
	key := sourceKey(addr)
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	var b *bucket
	if e, ok := r.m[key]; ok {
		r.lru.MoveToFront(e)
		b = e.Value.(*bucket)
		if r.refill > 0 {
			if dt := now.Sub(b.last); dt > 0 {
				b.tokens = min(r.burst, b.tokens+float64(dt)/float64(r.refill))
			}
		}
		b.last = now
	} else {
		if r.lru.Len() >= r.max {
			old := r.lru.Back()
			r.lru.Remove(old)
			delete(r.m, old.Value.(*bucket).key)
		}
		b = &bucket{key: key, tokens: r.burst, last: now}
		r.m[key] = r.lru.PushFront(b)
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// len is the number of sources tracked (tests).
func (r *rateLimiter) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lru.Len()
}
