package transport

import (
	"net/netip"
	"sync/atomic"
	"testing"
)

// TestLinkQueueBoundsAndOrder: packets leave in the order they were queued,
// a full queue refuses (the caller counts the drop), spare buffers are
// bounded, and a retired link refuses everything.
func TestLinkQueueBoundsAndOrder(t *testing.T) {
	l := newLinkQueue(netip.MustParseAddrPort("127.0.0.1:9"))
	for i := range LinkQueuePackets {
		if queued, dead := l.put(nil, []byte{byte(i), byte(i >> 8)}); !queued || dead {
			t.Fatalf("packet %d refused (dead %v)", i, dead)
		}
	}
	if queued, dead := l.put(nil, []byte{1}); queued || dead {
		t.Fatalf("full queue accepted a packet (queued %v dead %v)", queued, dead)
	}
	select {
	case <-l.wake:
	default:
		t.Fatal("no wake-up token after the first packet")
	}
	batch := l.take(nil)
	if len(batch) != LinkQueuePackets {
		t.Fatalf("took %d packets", len(batch))
	}
	for i, p := range batch {
		if p.n != 2 || p.buf[0] != byte(i) || p.buf[1] != byte(i>>8) {
			t.Fatalf("packet %d out of order or damaged: % x", i, p.buf[:p.n])
		}
	}
	batch = l.recycle(batch)
	if len(batch) != 0 || len(l.spare) != linkSpareBuffers {
		t.Fatalf("after recycle: batch %d spare %d (max %d)", len(batch), len(l.spare), linkSpareBuffers)
	}
	if l.spare[0].n != 0 {
		t.Fatal("recycled buffer not reset")
	}
	// The queue is empty again, so the next packet signals again.
	if queued, _ := l.put(nil, []byte{7}); !queued {
		t.Fatal("emptied queue refused a packet")
	}
	select {
	case <-l.wake:
	default:
		t.Fatal("no wake-up token after the queue emptied and refilled")
	}
	if l.retire(false) {
		t.Fatal("retired a link with a queued packet")
	}
	if !l.retire(true) || len(l.spare) != 0 || l.queued() != 0 {
		t.Fatal("forced retire kept buffers")
	}
	if queued, dead := l.put(getPacket(), nil); queued || !dead {
		t.Fatalf("retired link: queued %v dead %v", queued, dead)
	}
}

// TestHopCacheFollowsPublishedTable: the read loop's cache serves hits,
// replaces round-robin, and forgets everything when a new table is
// published (a retired link or a swept bucket is never served from it).
func TestHopCacheFollowsPublishedTable(t *testing.T) {
	var c hopCache[int]
	tbl1, tbl2 := new(int), new(int)
	c.sync(tbl1)
	addr := func(port uint16) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	}
	for i := range hopCacheSize + 1 {
		c.put(addr(uint16(i+1)), i+1)
	}
	if _, ok := c.get(addr(1)); ok {
		t.Fatal("oldest entry survived a full round of puts")
	}
	for i := 2; i <= hopCacheSize+1; i++ {
		if v, ok := c.get(addr(uint16(i))); !ok || v != i {
			t.Fatalf("entry %d: %v %v", i, v, ok)
		}
	}
	c.sync(tbl1) // same table: nothing forgotten
	if _, ok := c.get(addr(2)); !ok {
		t.Fatal("re-sync to the same table emptied the cache")
	}
	c.sync(tbl2)
	if _, ok := c.get(addr(2)); ok {
		t.Fatal("entry served after a new table was published")
	}
}

// TestRelayLinkReplacesRetiredLink: after a link retires, the relay path
// starts a fresh one instead of queueing into the dead one through its
// cache.
func TestRelayLinkReplacesRetiredLink(t *testing.T) {
	tr, err := New(testConfig(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	next := netip.MustParseAddrPort("127.0.0.1:9")
	first := tr.relayLink(next)
	if first == nil || tr.relayLink(next) != first {
		t.Fatal("relay path did not reuse its link")
	}
	// Retire it the way the idle writer does.
	tr.linksMu.Lock()
	first.retire(true)
	tr.setLinkLocked(next, nil)
	tr.linksMu.Unlock()
	if !tr.enqueueCopy(next, make([]byte, 40)) {
		t.Fatal("relay packet dropped after its link retired")
	}
	second := tr.relayLink(next)
	if second == first || second == nil {
		t.Fatal("relay path kept the retired link")
	}
}

// TestAllowForwardSpendsTheSharedBucket: the cached path spends the same
// tokens as the limiter itself, so the cache cannot widen a peer's budget.
func TestAllowForwardSpendsTheSharedBucket(t *testing.T) {
	tr, err := New(testConfig(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	tr.fwdLimit = newTickLimiter(1, 3, 8)
	from := netip.MustParseAddrPort("127.0.0.1:10")
	var allowed atomic.Int32
	for range 10 {
		if tr.allowForward(from) {
			allowed.Add(1)
		}
	}
	if got := allowed.Load(); got != 3 {
		t.Fatalf("allowed %d packets with a burst of 3", got)
	}
}
