package identity_test

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/deck-mesh/deck/node/identity"
)

func recordKey(t testing.TB, name string) *identity.Key {
	seed := sha256.Sum256([]byte("record-test:" + name))
	k, err := identity.FromSeed(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sampleRecord(t testing.TB) (*identity.Key, *identity.NodeRecord) {
	k := recordKey(t, "a")
	var static [32]byte
	copy(static[:], bytes.Repeat([]byte{7}, 32))
	return k, identity.NewNodeRecord(k, static, 1_780_000_000_000)
}

func TestNodeRecordRoundTrip(t *testing.T) {
	_, r := sampleRecord(t)
	raw := r.Marshal()
	if len(raw) != identity.NodeRecordSize {
		t.Fatalf("encoded %d bytes, want %d", len(raw), identity.NodeRecordSize)
	}
	got, err := identity.UnmarshalNodeRecord(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(); err != nil {
		t.Fatalf("decoded record does not verify: %v", err)
	}
	if !bytes.Equal(got.Marshal(), raw) {
		t.Fatal("decode∘encode is not the identity")
	}
	// The decoded record owns its memory.
	raw[9] ^= 1
	if got.Verify() != nil {
		t.Fatal("decoded record aliases its input")
	}
}

func TestNodeRecordRejectsWrongLength(t *testing.T) {
	_, r := sampleRecord(t)
	raw := r.Marshal()
	for _, b := range [][]byte{nil, raw[:1], raw[:len(raw)-1], append(bytes.Clone(raw), 0)} {
		if _, err := identity.UnmarshalNodeRecord(b); err == nil {
			t.Fatalf("%d bytes accepted", len(b))
		}
	}
}

// A record is only as good as its signature: every field is covered, and
// the id must be the signing key's.
func TestNodeRecordForgeriesFailVerify(t *testing.T) {
	_, r := sampleRecord(t)
	other := recordKey(t, "b")
	for name, mutate := range map[string]func(r *identity.NodeRecord){
		"claimed id of another node": func(r *identity.NodeRecord) { r.ID = other.ID },
		"swapped noise static":       func(r *identity.NodeRecord) { r.NoiseStatic[0] ^= 1 },
		"reissued time":              func(r *identity.NodeRecord) { r.IssuedAtMs++ },
		"another node's key":         func(r *identity.NodeRecord) { r.SigningKey = other.Public },
		"short signing key":          func(r *identity.NodeRecord) { r.SigningKey = r.SigningKey[:16] },
		"flipped signature bit":      func(r *identity.NodeRecord) { r.Signature[3] ^= 0x10 },
	} {
		t.Run(name, func(t *testing.T) {
			f, err := identity.UnmarshalNodeRecord(r.Marshal())
			if err != nil {
				t.Fatal(err)
			}
			mutate(f)
			if f.Verify() == nil {
				t.Fatal("forged record verified")
			}
		})
	}
}

// FuzzUnmarshalNodeRecord: bytes from the network never panic the
// decoder; what it accepts re-encodes to exactly the same bytes, and
// verification of garbage fails without panicking.
func FuzzUnmarshalNodeRecord(f *testing.F) {
	_, r := sampleRecord(f)
	f.Add(r.Marshal())
	f.Add([]byte{})
	f.Add(make([]byte, identity.NodeRecordSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := identity.UnmarshalNodeRecord(b)
		if err != nil {
			if len(b) == identity.NodeRecordSize {
				t.Fatalf("a %d-byte record refused: %v", len(b), err)
			}
			return
		}
		if !bytes.Equal(got.Marshal(), b) {
			t.Fatal("decode∘encode is not the identity")
		}
		_ = got.Verify()
	})
}
