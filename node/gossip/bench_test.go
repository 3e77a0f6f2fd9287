package gossip

import (
	"testing"
	"time"
)

// BenchmarkBuildSignEncode50 is what a node pays per publication: build the
// snapshot of a 50-daemon node, encode it and sign it. Target ≤ 100 µs.
func BenchmarkBuildSignEncode50(b *testing.B) {
	key := testKey(b, 1)
	now := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ns := nodeSnapshot(key.ID, uint64(i), 50, now)
		if _, err := Seal(key, ns, 1, uint64(i), now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeSnapshot50(b *testing.B) {
	ns := nodeSnapshot(testKey(b, 1).ID, 1, 50, time.Now())
	buf := make([]byte, 0, 16<<10)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendSnapshot(buf[:0], ns); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDecodeSnapshot50(b *testing.B) {
	enc, err := EncodeSnapshot(nodeSnapshot(testKey(b, 1).ID, 1, 50, time.Now()))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeSnapshot(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenEnvelope50 is what a receiver pays per new announcement:
// parse, check the signer id, verify the signature, decode.
func BenchmarkOpenEnvelope50(b *testing.B) {
	key := testKey(b, 1)
	raw, err := Seal(key, nodeSnapshot(key.ID, 1, 50, time.Now()), 1, 1, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Open(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConvergence16Ring measures how long one change takes to reach
// all 16 nodes: each iteration a node (round robin) publishes a new
// generation and the clock stops when the last of the 15 others holds it.
// It runs over the in-process hub (ring neighbours marked Direct; the hub
// delivers to any node without relay hops). MinPublishInterval is 1 ms and
// the per-signer acceptance budget is lifted so the round robin measures
// dissemination, not the publish rate limit or the signer budget.
// Reports p50/p90/p99 in ms.
func BenchmarkConvergence16Ring(b *testing.B) {
	c := startCluster(b, 16, benchPublishFast)
	measureConvergence(b, c)
}

// benchPublishFast lifts the publish interval and the per-signer acceptance
// budget: the convergence benchmarks publish a change per iteration, far
// above the rate an honest node signs at.
func benchPublishFast(cfg *Config) {
	cfg.MinPublishInterval = time.Millisecond
	cfg.SignerAcceptsPerSecond = 1e6
	cfg.SignerAcceptBurst = 1e6
}
