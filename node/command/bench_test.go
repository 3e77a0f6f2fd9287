package command

import (
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity/identitytest"
)

// BenchmarkVerifyAdminEvent is the per-event cost every node pays in the
// fold: one ed25519 verification against the registry plus the state checks.
// Target: ≤ 100 µs.
func BenchmarkVerifyAdminEvent(b *testing.B) {
	alice := identitytest.Key(b, "alice")
	st := mustState(b, genesisOf(b, 1, 1, "alice", "bob", "carol"))
	e := ev(b, api.Action{Verb: api.VerbDrain, Node: 0x1001, Duration: time.Minute}, 0, 1, alice)
	b.ReportAllocs()
	for b.Loop() {
		if err := st.Verify(e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeAndVerifyAdminEvent adds decoding the wire form.
func BenchmarkDecodeAndVerifyAdminEvent(b *testing.B) {
	alice := identitytest.Key(b, "alice")
	st := mustState(b, genesisOf(b, 1, 1, "alice", "bob", "carol"))
	wire := ev(b, api.Action{Verb: api.VerbDrain, Node: 0x1001, Duration: time.Minute}, 0, 1, alice).Marshal()
	b.ReportAllocs()
	for b.Loop() {
		e, err := DecodeEvent(wire)
		if err != nil {
			b.Fatal(err)
		}
		if err := st.Verify(e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPreviewDrain100x1000 projects a drain on a 100-node cluster
// running 1,000 daemons (100 groups of 10, each with a 3-holder chain).
// Target: ≤ 20 ms.
func BenchmarkPreviewDrain100x1000(b *testing.B) {
	cs, spec := buildCluster(b, 100, 100, 10, 3, 0.005)
	node := busiest(cs).ID
	a := api.Action{Verb: api.VerbDrain, Node: node, Duration: time.Minute}
	br, err := Preview(cs, spec, a)
	if err != nil {
		b.Fatal(err)
	}
	if len(br.Migrated) == 0 {
		b.Fatal("the drain moves nothing: the benchmark would measure an idle projection")
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Preview(cs, spec, a); err != nil {
			b.Fatal(err)
		}
	}
}
