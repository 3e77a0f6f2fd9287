package transport

import (
	"net/netip"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/wire"
)

// BenchmarkRelayForward is a relay's whole work per packet addressed to
// another node, on a busy link: the read loop's batch handler (handleBatch,
// as the read loop runs it) over batches of ReadBatchPackets, i.e. per
// packet header parse, TTL, duplicate filter, rate limit, route lookup,
// staging and a fresh read buffer, per batch the hand-over to the next
// hop's link under one lock and the counters; plus the writer's share
// (taking the batch, returning its buffers), run inline after each batch.
// Left out are the syscalls, recvmmsg's and the write's, and the kernel's
// copy into the read buffer: the benchmark writes each packet's header
// into its buffer instead. A concurrent drain goroutine was tried and
// rejected: on a 2-core box its scheduling stalls filled the queue, and
// drops, cheaper than forwards, flattered the figure. ns/op is per packet.
func BenchmarkRelayForward(b *testing.B) { benchmarkRelay(b, ReadBatchPackets) }

// BenchmarkRelayForwardQuietLink is the same on a quiet link, where every
// read returns one datagram: each packet pays a whole batch's overhead (a
// lock, a wake-up, the counters). The worst case of the batched design.
func BenchmarkRelayForwardQuietLink(b *testing.B) { benchmarkRelay(b, 1) }

// relayBenchBatch is how often the handshake benchmark drains its link.
const relayBenchBatch = ReadBatchPackets

func benchmarkRelay(b *testing.B, batch int) {
	tr, err := New(testConfig(b, nil))
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	tr.relay.budget = newForwardBudget(1e15, 1e15, MaxRateLimiterEntries)
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
	const size = wire.HeaderSize + 1000
	h := wire.Header{Version: wire.Version, Type: wire.TypeData, Src: 0x3333, Dst: dst, TTL: wire.DefaultTTL}
	rb := newReadBatch(batch)
	var written []*outPacket
	var handled uint64
	k := 0
	b.ReportAllocs()
	for b.Loop() {
		// What the kernel's copy would leave in the buffer: a new packet
		// (not a duplicate) with a full TTL. The rest of the buffer is
		// payload the relay never reads.
		h.Counter++
		h.Encode(rb.bufs[k])
		rb.sizes[k], rb.from[k] = size, from
		if k++; k == batch {
			tr.handleBatch(rb, k)
			handled += uint64(k)
			k = 0
			written = l.recycle(l.takeNext(written))
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(handled)/b.Elapsed().Seconds(), "packets/s")
	tr.linksMu.Lock()
	tr.setLinkLocked(next, nil)
	tr.linksMu.Unlock()
	// A full queue drops, which is cheaper than forwarding: a figure where
	// many packets dropped would flatter the relay.
	if got := tr.Stats().Forwarded; got < handled-handled/100 {
		b.Fatalf("forwarded %d of %d packets (drops %d)", got, handled, tr.Stats().Drops)
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
		tr.dispatch(peerID, messaging.ChanControl, msg, &ann, true)
	}
}
