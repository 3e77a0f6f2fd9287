package transport

import (
	"net/netip"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/wire"
)

// BenchmarkHandleInit is a responder's whole work for one message 1 from
// the read loop: parse, macs, under-load check, rate limit, slot, Noise
// and the reply enqueued (the write syscall is the link writer's, left
// out as in BenchmarkRelayForward). The cases are the paths a flood can
// drive: accepted (mac1, then Diffie-Hellman and message 2), accepted
// under load (mac2 checked too), refused at mac1 (a sender without the
// PSK), and answered with a cookie (under load, no mac2).
func BenchmarkHandleInit(b *testing.B) {
	from := netip.MustParseAddrPort("127.0.0.1:10")
	setup := func(b *testing.B, underLoad bool) (*Transport, *link) {
		tr, err := New(testConfig(b, nil))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { tr.Close() })
		tr.hsLimit = newLimiter(1e15, 1e15, MaxRateLimiterEntries)
		if underLoad {
			tr.slots.loadUntil = time.Now().Add(time.Hour)
		}
		l := newLinkQueue(from)
		tr.linksMu.Lock()
		tr.setLinkLocked(from, l)
		tr.linksMu.Unlock()
		return tr, l
	}
	s := mustStatic(b, testPSK)
	_, msg1, err := s.Initiate(5, 0)
	if err != nil {
		b.Fatal(err)
	}
	h := wire.Header{Version: wire.Version, Type: wire.TypeHandshakeInit, Src: s.Key.ID, TTL: wire.DefaultTTL}
	hb := wire.Handshake{SenderIndex: 5, Noise: msg1}
	// run handles pkt b.N times; took counts the message 1s that took the
	// path measured, from the transport's stats and the replies queued.
	run := func(b *testing.B, tr *Transport, l *link, pkt []byte, took func(tr *Transport, replies uint64) uint64) {
		var batch []*outPacket
		rb := newReadBatch(1)
		n, replies := uint64(0), uint64(0)
		b.ReportAllocs()
		for b.Loop() {
			n++
			receive(tr, rb, from, pkt)
			if n%relayBenchBatch == 0 {
				batch = l.takeNext(batch)
				replies += uint64(len(batch))
				batch = l.recycle(batch)
				// Slots go as message 3s would take them, so the table
				// stays below ResponderLoadThreshold (a benchmark of one
				// source would otherwise put it under load).
				tr.mu.Lock()
				tr.expireRespondersLocked(time.Now().Add(time.Hour))
				tr.mu.Unlock()
			}
		}
		b.StopTimer()
		replies += uint64(len(l.takeNext(nil)))
		if got := took(tr, replies); got != n {
			b.Fatalf("%d of %d message 1s took the measured path", got, n)
		}
	}
	b.Run("accepted", func(b *testing.B) {
		tr, l := setup(b, false)
		run(b, tr, l, sealedHandshake(testPSK, h, hb, nil), respondedTo)
	})
	b.Run("accepted-under-load-mac2", func(b *testing.B) {
		tr, l := setup(b, true)
		cookie := tr.cookies.cookie(from, time.Now())
		run(b, tr, l, sealedHandshake(testPSK, h, hb, &cookie), respondedTo)
	})
	b.Run("refused-bad-mac1", func(b *testing.B) {
		tr, l := setup(b, false)
		run(b, tr, l, sealedHandshake([32]byte{0xba, 0xd}, h, hb, nil), func(tr *Transport, replies uint64) uint64 {
			if replies != 0 {
				return 0
			}
			return tr.Stats().HandshakeMAC1Failures
		})
	})
	b.Run("cookie-reply", func(b *testing.B) {
		tr, l := setup(b, true)
		run(b, tr, l, sealedHandshake(testPSK, h, hb, nil), func(tr *Transport, replies uint64) uint64 {
			return min(replies, tr.Stats().CookieRepliesSent)
		})
	})
}

// respondedTo counts message 1s answered with message 2 (a cookie reply
// would be counted).
func respondedTo(tr *Transport, replies uint64) uint64 {
	if tr.Stats().CookieRepliesSent != 0 {
		return 0
	}
	return replies
}

// BenchmarkMAC1 is the check a message from a sender without the PSK
// costs: one keyed BLAKE2s over a message 1.
func BenchmarkMAC1(b *testing.B) {
	s := mustStatic(b, testPSK)
	_, msg1, _ := s.Initiate(5, 0)
	pkt := sealedHandshake(testPSK, wire.Header{Version: wire.Version, Type: wire.TypeHandshakeInit, Src: s.Key.ID, TTL: wire.DefaultTTL}, wire.Handshake{SenderIndex: 5, Noise: msg1}, nil)
	macs := newHandshakeMACs(testPSK)
	b.ReportAllocs()
	for b.Loop() {
		if !macs.checkMAC1(pkt) {
			b.Fatal("mac1 refused")
		}
	}
}
