package subnet_test

import (
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/subnet"
)

// BenchmarkSummaryAccept is what believing one new summary costs a node
// (decode, certificate check, signature), with a roster of 100 members.
func BenchmarkSummaryAccept(b *testing.B) {
	f := newFixture(b)
	a := f.node(b, "a", "eu")
	s := f.summary(b, a, "eu", 1, a)
	for i := range 100 {
		s.Members = append(s.Members, identity.NodeID(i+1))
	}
	var wire [][]byte
	for i := range b.N {
		s.Summary.Generation = uint64(i + 1)
		if err := subnet.Sign(a, f.certs[a.ID], s); err != nil {
			b.Fatal(err)
		}
		w, err := s.Encode()
		if err != nil {
			b.Fatal(err)
		}
		wire = append(wire, w)
	}
	st := subnet.NewStore(f.member, nil)
	b.SetBytes(int64(len(wire[0])))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		d, err := subnet.Decode(wire[i])
		if err != nil {
			b.Fatal(err)
		}
		if ok, err := st.Accept(d, t0.Add(time.Duration(i)*time.Microsecond)); !ok {
			b.Fatal(err)
		}
	}
}
