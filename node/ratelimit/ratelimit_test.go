package ratelimit

import (
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func TestAllowBurstThenRate(t *testing.T) {
	tb := New[int](2, 4, 8)
	for i := range 4 {
		if !tb.Allow(1, t0) {
			t.Fatalf("token %d of the burst refused", i+1)
		}
	}
	if tb.Allow(1, t0) {
		t.Fatal("fifth token at the same instant allowed")
	}
	if !tb.Allow(2, t0) {
		t.Fatal("another key shares the first key's bucket")
	}
	if tb.Allow(1, t0.Add(499*time.Millisecond)) {
		t.Fatal("a token before 1/rate seconds passed")
	}
	if !tb.Allow(1, t0.Add(500*time.Millisecond)) {
		t.Fatal("no token after 1/rate seconds")
	}
	// A long silence refills to the burst, not beyond.
	later := t0.Add(time.Hour)
	for i := range 4 {
		if !tb.Allow(1, later) {
			t.Fatalf("token %d after an hour refused", i+1)
		}
	}
	if tb.Allow(1, later) {
		t.Fatal("refilled beyond the burst")
	}
}

func TestClockSteppingBackRefillsNothing(t *testing.T) {
	tb := New[int](1, 1, 8)
	if !tb.Allow(1, t0) {
		t.Fatal("first token refused")
	}
	if tb.Allow(1, t0.Add(-time.Hour)) {
		t.Fatal("a clock step back refilled the bucket")
	}
	if tb.Allow(1, t0.Add(999*time.Millisecond)) {
		t.Fatal("the step back moved the refill reference")
	}
	if !tb.Allow(1, t0.Add(time.Second)) {
		t.Fatal("no token a second after the first")
	}
}

func TestReadyTakesNothing(t *testing.T) {
	tb := New[int](1, 2, 1)
	for range 5 {
		if !tb.Ready(1, t0, 1) {
			t.Fatal("a new key is not ready")
		}
	}
	if tb.Len() != 0 {
		t.Fatal("Ready added a bucket")
	}
	tb.Allow(1, t0)
	tb.Allow(1, t0)
	if tb.Ready(1, t0, 1) {
		t.Fatal("an empty bucket is ready")
	}
	if tb.Ready(2, t0, 1) {
		t.Fatal("a new key is ready while the one-key table holds a busy bucket")
	}
	if tb.Ready(1, t0, 3) {
		t.Fatal("more than the burst is ready")
	}
}

func TestChargeRunsIntoBoundedDebt(t *testing.T) {
	tb := New[int](100, 100, 8)
	tb.Charge(1, t0, 150)
	if tb.Ready(1, t0, 0) {
		t.Fatal("a bucket in debt is ready")
	}
	if w := tb.Wait(1, t0, 0); w != 500*time.Millisecond {
		t.Fatalf("wait %v to pay a debt of 50 at 100/s", w)
	}
	if !tb.Ready(1, t0.Add(500*time.Millisecond), 0) {
		t.Fatal("debt not paid back by refill")
	}
	// One huge charge owes at most one burst.
	tb.Charge(2, t0, 1e12)
	if w := tb.Wait(2, t0, 1); w != 1010*time.Millisecond {
		t.Fatalf("wait %v after a huge charge; the debt is capped at one burst", w)
	}
}

func TestTableCapSweepsIdleBucketsAndRefusesWhenBusy(t *testing.T) {
	tb := New[int](1, 1, 2)
	tb.Allow(1, t0)
	tb.Allow(2, t0)
	if tb.Allow(3, t0) {
		t.Fatal("a third key admitted while two busy buckets fill the table")
	}
	if tb.Charge(3, t0, 1) {
		t.Fatal("a third key charged while the table is full")
	}
	// A second later both buckets are full again: idle, swept for the newcomer.
	if !tb.Allow(3, t0.Add(time.Second)) {
		t.Fatal("the new key refused although the others are idle")
	}
	if tb.Len() != 1 {
		t.Fatalf("%d buckets after the sweep, want 1", tb.Len())
	}
}

func TestZeroConfigStillLimits(t *testing.T) {
	tb := New[int](0, 0, 0)
	if !tb.Allow(1, t0) || tb.Allow(1, t0) || tb.Allow(2, t0) {
		t.Fatal("a zero config must still be a budget (1/s, burst 1, one key)")
	}
}

func BenchmarkAllow(b *testing.B) {
	b.ReportAllocs()
	tb := New[uint64](1e9, 1e9, 1024)
	now := t0
	for i := 0; b.Loop(); i++ {
		tb.Allow(uint64(i&511), now)
	}
}
