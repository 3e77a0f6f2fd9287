package session

import "testing"

// TestReplayFilter walks every edge of the window, in the style of
// wireguard-go's replay test: in-order, duplicates, the exact window edge,
// slides of less than, exactly and more than the ring, and the limit.
func TestReplayFilter(t *testing.T) {
	const limit = 1 << 20
	const W = ReplayWindowPackets
	type step struct {
		counter uint64
		want    bool
	}
	var f ReplayFilter
	steps := []step{
		{0, true},
		{1, true},
		{1, false}, // duplicate
		{9, true},
		{8, true},
		{7, true},
		{7, false},
		{W, true},          // window now (1, W]: 0 is exactly W behind
		{0, false},         // exactly at the window edge: too old
		{1, false},         // already seen
		{2, true},          // inside the window, unseen
		{W + 1, true},      // slide by one
		{2, false},         // now W-1 behind and seen
		{1, false},         // fell out
		{3, true},          // still inside: W-2 behind
		{2*W + 10, true},   // jump more than a window: everything old is gone
		{W + 11, true},     // exactly W-1 behind the new top
		{W + 10, false},    // exactly W behind: out
		{W + 1, false},     // far out
		{2*W + 10, false},  // duplicate of the top
		{2*W + 9, true},    // just below the top
		{2*W + 200, true},  // small slide across block boundaries
		{2*W + 150, true},  // reorder within window
		{2*W + 150, false}, // duplicate after reorder
		{limit - 1, true},  // the last allowed counter
		{limit, false},     // at the limit: rejected
		{limit + 1, false}, // beyond it: rejected
		{limit - 2, true},  // below the top, still within window
		{limit - 2, false},
	}
	for i, s := range steps {
		if got := f.Commit(s.counter, limit); got != s.want {
			t.Fatalf("step %d: Commit(%d) = %v, want %v", i, s.counter, got, s.want)
		}
	}
}

// TestReplayFilterCheckDoesNotCommit: Check is read-only, so a packet that
// fails authentication after Check never consumes its counter.
func TestReplayFilterCheckDoesNotCommit(t *testing.T) {
	var f ReplayFilter
	for range 3 {
		if !f.Check(5, 100) {
			t.Fatal("Check(5) = false on an empty filter")
		}
	}
	if !f.Commit(5, 100) {
		t.Fatal("first Commit(5) refused")
	}
	if f.Check(5, 100) || f.Commit(5, 100) {
		t.Fatal("counter 5 accepted twice")
	}
	// A Check of a far-ahead counter must not slide the window.
	if !f.Check(1_000_000-1, 1_000_000) {
		t.Fatal("Check of a new top refused")
	}
	if !f.Commit(4, 100) {
		t.Fatal("Check moved the window")
	}
}

// TestReplayFilterEveryCounterOnceAcrossWraps commits a long in-order run
// (many ring wraps), each counter exactly once, then replays the window.
func TestReplayFilterEveryCounterOnceAcrossWraps(t *testing.T) {
	var f ReplayFilter
	const n = 20 * ReplayWindowPackets
	for c := uint64(0); c < n; c++ {
		if !f.Commit(c, RejectAfterMessages) {
			t.Fatalf("fresh counter %d refused", c)
		}
	}
	for c := uint64(0); c < n; c++ {
		if f.Commit(c, RejectAfterMessages) {
			t.Fatalf("replayed counter %d accepted", c)
		}
	}
}

// TestReplayFilterReorderedWithinWindow accepts a whole window delivered in
// reverse order.
func TestReplayFilterReorderedWithinWindow(t *testing.T) {
	var f ReplayFilter
	top := uint64(3 * ReplayWindowPackets)
	if !f.Commit(top, RejectAfterMessages) {
		t.Fatal("top refused")
	}
	for c := top - 1; c > top-ReplayWindowPackets; c-- {
		if !f.Commit(c, RejectAfterMessages) {
			t.Fatalf("counter %d (%d behind) refused", c, top-c)
		}
	}
	if f.Commit(top-ReplayWindowPackets, RejectAfterMessages) {
		t.Fatal("counter a full window behind accepted")
	}
}

func TestReplayWindowAtLeast2048(t *testing.T) {
	if ReplayWindowPackets < 2048 {
		t.Fatalf("ReplayWindowPackets = %d, want >= 2048", ReplayWindowPackets)
	}
}

func BenchmarkReplayFilter(b *testing.B) {
	var f ReplayFilter
	b.ReportAllocs()
	for i := range b.N {
		f.Commit(uint64(i), RejectAfterMessages)
	}
}
