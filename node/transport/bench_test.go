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
// another node: header parse, TTL, duplicate filter, rate limit, route
// lookup, copy into a pooled buffer and enqueue on the next hop's queue, plus the writer's share (taking the batch, recycling its
// buffers) run inline every relayBenchBatch packets. The write syscall is
// left out: the figure is the relay path. A concurrent drain goroutine was
// tried and rejected: on a 2-core box its scheduling stalls filled the
// queue, and drops, cheaper than forwards, flattered the figure.
const relayBenchBatch = 32

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
	l := newLinkQueue(next)
	tr.linksMu.Lock()
	tr.setLinkLocked(next, l)
	tr.linksMu.Unlock()
	pkt := make([]byte, wire.HeaderSize+1000)
	h := wire.Header{Version: wire.Version, Type: wire.TypeData, Src: 0x3333, Dst: dst, TTL: wire.DefaultTTL}
	h.Encode(pkt)
	var ann wire.Announcement
	b.ReportAllocs()
	var c uint64
	var batch []*outPacket
	for b.Loop() {
		c++
		binary.BigEndian.PutUint64(pkt[23:], c) // a new packet, not a duplicate
		wire.SetTTL(pkt, wire.DefaultTTL)       // forward decrements it in place
		tr.handlePacket(from, pkt, &ann)
		if c%relayBenchBatch == 0 {
			batch = l.recycle(l.take(batch))
		}
	}
	b.StopTimer()
	tr.linksMu.Lock()
	tr.setLinkLocked(next, nil)
	tr.linksMu.Unlock()
	// A full queue drops, which is cheaper than forwarding: a figure where
	// many packets dropped would flatter the relay.
	if got := tr.Stats().Forwarded; got < c-c/100 {
		b.Fatalf("forwarded %d of %d packets (drops %d)", got, c, tr.Stats().Drops)
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
