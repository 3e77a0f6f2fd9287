package ratelimit

import (
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/nodetest"
)

// TestFairQueueTakesTurnsAndBudgets: keys are served in turn whatever
// order their items arrived in, a key is refused once its own FIFO is
// full, and a key over its request or cost budget waits while the others
// are served.
func TestFairQueueTakesTurnsAndBudgets(t *testing.T) {
	clk := nodetest.NewClock(time.Unix(1000, 0))
	q := NewFairQueue[string, int](FairQueueConfig{
		MaxPerKey: 3, MaxTotal: 5, RequestsPerSecond: 1, Burst: 2, CostPerSecond: 100, CostBurst: 100, MaxKeys: 8,
	}, clk.Now)
	for i := range 3 {
		if r := q.Push("flood", i); r != Queued {
			t.Fatalf("flood item %d: %v", i, r)
		}
	}
	if r := q.Push("flood", 3); r != KeyFull {
		t.Fatalf("fourth item of one key: %v", r)
	}
	q.Push("a", 10)
	q.Push("b", 20)
	if r := q.Push("c", 30); r != AllFull {
		t.Fatalf("sixth item: %v", r)
	}
	var got []string
	for range 5 {
		k, _, _, ok := q.Next()
		if !ok {
			break
		}
		got = append(got, k)
	}
	// flood, a, b in turn; flood's second; its third waits for its budget
	// (a burst of two requests).
	if want := "[flood a b flood]"; fmtSlice(got) != want {
		t.Fatalf("served %v, want %s", got, want)
	}
	_, _, wait, ok := q.Next()
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("over-budget key: ok %v wait %v", ok, wait)
	}
	clk.Advance(time.Second)
	if k, v, _, ok := q.Next(); !ok || k != "flood" || v != 2 {
		t.Fatalf("after refill: %v %v %v", k, v, ok)
	}
	// Cost in debt holds the key back until it is paid off.
	q.Push("a", 11)
	q.Charge("a", 300)
	if _, _, wait, ok := q.Next(); ok || wait < time.Second {
		t.Fatalf("key in cost debt: ok %v wait %v", ok, wait)
	}
	clk.Advance(3 * time.Second)
	if k, _, _, ok := q.Next(); !ok || k != "a" {
		t.Fatal("key not served once its debt was paid")
	}
}

func fmtSlice(s []string) string {
	out := "["
	for i, v := range s {
		if i > 0 {
			out += " "
		}
		out += v
	}
	return out + "]"
}
