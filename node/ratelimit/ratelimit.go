// Package ratelimit is the token bucket behind every per-peer budget on a
// service's receive path: lease setups per client (chain subscriptions),
// requests and bytes served per peer (chain anti-entropy), envelopes
// accepted per signer (gossip).
//
// A Table holds one bucket per key (a node id from an authenticated
// session, or a signer id from a verified envelope), refilled at a fixed
// rate up to a burst. The table is capped: when it is full, buckets that
// have refilled completely are swept (a full bucket carries no information:
// a fresh one would be the same), and if none has, the new key is refused,
// which is the safe answer when more keys are busy than the table holds.
//
// Time is passed in, never read, so a service's clock (and a test's
// hand-moved one) decides every refill. A clock that steps back refills
// nothing; it never takes tokens away.
package ratelimit

import (
	"sync"
	"time"
)

// Table is a capped set of token buckets keyed by K. Safe for concurrent use.
type Table[K comparable] struct {
	mu      sync.Mutex
	rate    float64 // tokens per second
	burst   float64
	max     int
	buckets map[K]*bucket
}

type bucket struct {
	tokens float64 // may be negative after Charge: a debt paid back by refill
	last   time.Time
}

// New makes a table whose buckets refill perSecond tokens a second up to
// burst, holding at most maxKeys buckets. Non-positive arguments are raised
// to the smallest useful value (a rate of one token a second, a burst of one
// token, one key) so a zero config cannot disable the budget.
func New[K comparable](perSecond, burst float64, maxKeys int) *Table[K] {
	if perSecond <= 0 {
		perSecond = 1
	}
	if burst < 1 {
		burst = 1
	}
	return &Table[K]{rate: perSecond, burst: burst, max: max(maxKeys, 1), buckets: make(map[K]*bucket)}
}

// Allow takes one token from k's bucket if it has one.
func (t *Table[K]) Allow(k K, now time.Time) bool { return t.AllowN(k, now, 1) }

// AllowN takes n tokens from k's bucket if it holds at least n.
func (t *Table[K]) AllowN(k K, now time.Time, n float64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.getLocked(k, now, true)
	if b == nil || b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

// Ready reports whether k's bucket holds at least n tokens, taking none:
// the cheap check before work whose cost is only known afterwards (Charge
// it then), or before work that may still fail and should then cost
// nothing. It adds no bucket for an unknown key.
func (t *Table[K]) Ready(k K, now time.Time, n float64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.getLocked(k, now, false)
	if b == nil {
		// A new key starts full, if the table has room for it.
		return n <= t.burst && (len(t.buckets) < t.max || t.sweepLocked(now) > 0)
	}
	return b.tokens >= n
}

// Charge takes n tokens from k's bucket even when that leaves it in debt,
// for a cost known only after the work (the bytes of an answer). The debt
// is capped at one burst, so one huge charge cannot lock a key out for
// longer than two bursts take to refill. It reports false when the table
// is full and k has no bucket (nothing was charged).
func (t *Table[K]) Charge(k K, now time.Time, n float64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.getLocked(k, now, true)
	if b == nil {
		return false
	}
	b.tokens = max(b.tokens-n, -t.burst)
	return true
}

// Wait is how long k's bucket needs to hold n tokens, at the table's rate;
// 0 when it already does (or k has no bucket: a new one starts full).
func (t *Table[K]) Wait(k K, now time.Time, n float64) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.getLocked(k, now, false)
	if b == nil || b.tokens >= n {
		return 0
	}
	return time.Duration((n - b.tokens) / t.rate * float64(time.Second))
}

// Len is how many buckets the table holds.
func (t *Table[K]) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.buckets)
}

// getLocked returns k's bucket refilled to now, creating it (full) when
// create is set and the table has room; nil otherwise.
func (t *Table[K]) getLocked(k K, now time.Time, create bool) *bucket {
	b := t.buckets[k]
	if b == nil {
		if !create {
			return nil
		}
		if len(t.buckets) >= t.max && t.sweepLocked(now) == 0 {
			return nil
		}
		b = &bucket{tokens: t.burst, last: now}
		t.buckets[k] = b
		return b
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(t.burst, b.tokens+dt*t.rate)
		b.last = now
	}
	return b
}

// sweepLocked drops the buckets that are full again at now and returns how
// many it dropped.
func (t *Table[K]) sweepLocked(now time.Time) int {
	n := 0
	for k, b := range t.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*t.rate >= t.burst {
			delete(t.buckets, k)
			n++
		}
	}
	return n
}
