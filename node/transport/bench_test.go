package transport

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/mesh"
	"github.com/deck-mesh/deck/node/wire"
)

// BenchmarkRelayForward is a relay's whole work for one packet addressed to
// another node: header parse, fault check, TTL, duplicate filter, rate
// limit, route lookup, copy into a pooled buffer and enqueue on the next
// hop's queue. A drain goroutine stands in for the socket writer so the
// figure is the relay path, not the write syscall.
func BenchmarkRelayForward(b *testing.B) {
	tr, err := New(testConfig(b, nil))
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	tr.fwdLimit = newTickLimiter(1e15, 1e15, MaxRateLimiterEntries)
	next := netip.MustParseAddrPort("127.0.0.1:9")
	from := netip.MustParseAddrPort("127.0.0.1:10")
	const dst, nh = 0x1111, 0x2222
	now := time.Now()
	tr.mu.Lock()
	tr.routes.setNeighbour(nh, next, 300, true, now)
	tr.routes.apply(nh, []wire.Route{{Dest: nh, Seq: 1}, {Dest: dst, Seq: 1, MetricMicros: 100, Hops: 1}}, now)
	tr.routes.recompute(now, time.Hour)
	tr.mu.Unlock()
	if r, ok := tr.routes.lookup(dst); !ok || r.NextAddr != next {
		b.Fatal("route not installed")
	}
	l := &link{addr: next, q: make(chan *outPacket, LinkQueuePackets)}
	tr.linksMu.Lock()
	tr.setLinkLocked(next, l)
	tr.linksMu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p := range l.q {
			putPacket(p)
		}
	}()
	pkt := make([]byte, wire.HeaderSize+1000)
	h := wire.Header{Version: wire.Version, Type: wire.TypeData, Src: 0x3333, Dst: dst, TTL: wire.DefaultTTL}
	h.Encode(pkt)
	var ann wire.Announcement
	b.ReportAllocs()
	var c uint64
	for b.Loop() {
		c++
		binary.BigEndian.PutUint64(pkt[23:], c) // a new packet, not a duplicate
		tr.handlePacket(from, pkt, &ann)
	}
	b.StopTimer()
	tr.linksMu.Lock()
	tr.setLinkLocked(next, nil)
	tr.linksMu.Unlock()
	close(l.q)
	<-done
	if got := tr.Stats().Forwarded; got == 0 {
		b.Fatal("nothing forwarded")
	}
}

// BenchmarkHeartbeatProcessing is one received heartbeat after decryption:
// decode, failure detector, RTT sample, echo bookkeeping.
func BenchmarkHeartbeatProcessing(b *testing.B) {
	tr, err := New(testConfig(b, nil))
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	peerID := mustKey(b).ID
	tr.mu.Lock()
	tr.getPeerLocked(peerID, time.Now())
	tr.mu.Unlock()
	msg := wire.AppendHeartbeat(nil, &wire.Heartbeat{Seq: 1, SentNanos: 5, EchoNanos: tr.monoNanos(time.Now()), EchoHeldNs: 1000})
	var ann wire.Announcement
	b.ReportAllocs()
	for b.Loop() {
		tr.dispatch(peerID, mesh.ChanControl, msg, &ann, true)
	}
}
