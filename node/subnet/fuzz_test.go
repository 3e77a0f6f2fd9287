package subnet_test

import (
	"bytes"
	"testing"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/subnet"
)

// FuzzDecodeSummary: whatever arrives on ChanSubnet, Decode returns an
// error or a summary that encodes back to the same bytes (one encoding per
// summary), and never panics or allocates past its bounds.
func FuzzDecodeSummary(f *testing.F) {
	fx := newFixture(f)
	a := fx.node(f, "a", "eu/ams")
	s := fx.summary(f, a, "eu/ams", 3, a)
	s.Summary.Children = []string{"eu/ams/r1"}
	s.Members = []identity.NodeID{1, 2, a.ID}
	if err := subnet.Sign(a, fx.certs[a.ID], s); err != nil {
		f.Fatal(err)
	}
	b, err := s.Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := subnet.Decode(in)
		if err != nil {
			return
		}
		out, err := got.Encode()
		if err != nil {
			t.Fatalf("decoded summary does not encode: %v", err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("two encodings of one summary:\n in %x\nout %x", in, out)
		}
	})
}
