package transport

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// limiter is a token bucket per source address, with a capped table: when
// full, idle (refilled) buckets are swept; if none are idle the new source
// is refused, which is the safe answer under a flood of spoofed sources.
type limiter struct {
	mu      sync.Mutex
	rate    float64 // tokens per second
	burst   float64
	max     int
	buckets map[netip.AddrPort]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(perSecond, burst float64, max int) *limiter {
	return &limiter{rate: perSecond, burst: burst, max: max, buckets: make(map[netip.AddrPort]*bucket)}
}

func (l *limiter) allow(src netip.AddrPort, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[src]
	if b == nil {
		if len(l.buckets) >= l.max {
			l.sweepLocked(now)
			if len(l.buckets) >= l.max {
				return false
			}
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[src] = b
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(l.burst, b.tokens+dt*l.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *limiter) sweepLocked(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// tickLimiter is the relay's per-previous-hop packet budget. The packet
// path reads no clock and takes no lock (clock reads cost more than the
// rest of a forward on some VMs): the bucket table is copy-on-write behind
// an atomic pointer, tokens are atomics, and the transport's ticker
// refills every bucket.
type tickLimiter struct {
	mu      sync.Mutex // serialises writers of buckets
	rate    float64    // tokens per second
	burst   int64
	max     int
	buckets atomic.Pointer[map[netip.AddrPort]*atomic.Int64]
	last    time.Time
}

func newTickLimiter(perSecond, burst float64, max int) *tickLimiter {
	l := &tickLimiter{rate: perSecond, burst: int64(burst), max: max}
	m := make(map[netip.AddrPort]*atomic.Int64)
	l.buckets.Store(&m)
	return l
}

func (l *tickLimiter) allow(src netip.AddrPort) bool {
	b := (*l.buckets.Load())[src]
	if b == nil {
		b = l.add(src)
		if b == nil {
			return false // table full until the next refill sweeps idle sources
		}
	}
	return l.spend(b)
}

// spend takes one token from b, a bucket of this limiter.
func (l *tickLimiter) spend(b *atomic.Int64) bool {
	if b.Add(-1) < 0 {
		b.Add(1)
		return false
	}
	return true
}

func (l *tickLimiter) add(src netip.AddrPort) *atomic.Int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := *l.buckets.Load()
	if b := old[src]; b != nil {
		return b
	}
	if len(old) >= l.max {
		return nil
	}
	next := make(map[netip.AddrPort]*atomic.Int64, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	b := new(atomic.Int64)
	b.Store(l.burst)
	next[src] = b
	l.buckets.Store(&next)
	return b
}

// refill credits every bucket for the time since the last refill and drops
// buckets that are full again (idle sources), keeping the table small.
func (l *tickLimiter) refill(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last.IsZero() {
		l.last = now
		return
	}
	add := int64(now.Sub(l.last).Seconds() * l.rate)
	if add <= 0 {
		return
	}
	l.last = now
	old := *l.buckets.Load()
	idle := 0
	for _, b := range old {
		for {
			v := b.Load()
			if b.CompareAndSwap(v, min(l.burst, v+add)) {
				break
			}
		}
		if b.Load() >= l.burst {
			idle++
		}
	}
	if idle == 0 {
		return
	}
	next := make(map[netip.AddrPort]*atomic.Int64, len(old)-idle)
	for k, b := range old {
		if b.Load() < l.burst {
			next[k] = b
		}
	}
	l.buckets.Store(&next)
}
