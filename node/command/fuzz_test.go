package command

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity/identitytest"
)

// -seeds rewrites the committed fuzz seed corpora under testdata/fuzz.
var writeSeeds = flag.Bool("seeds", false, "rewrite testdata/fuzz seed corpora")

// seedEvents is one valid event per verb plus a multi-signature one.
func seedEvents(tb testing.TB) [][]byte {
	alice, bob := identitytest.Key(tb, "alice"), identitytest.Key(tb, "bob")
	var out [][]byte
	for i, a := range allActions(tb) {
		out = append(out, ev(tb, a, time.Duration(i)*time.Second, i+1, alice).Marshal())
	}
	out = append(out, ev(tb, api.Action{Verb: api.VerbForceDrain, Node: 9}, 0, 99, alice, bob).Marshal())
	return out
}

func seedPayloads(tb testing.TB) [][]byte {
	var out [][]byte
	for _, raw := range seedEvents(tb) {
		e, err := DecodeEvent(raw)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, e.SigningPayload())
	}
	return out
}

func seedSignatures(tb testing.TB) []string {
	alice := identitytest.Key(tb, "alice")
	return []string{
		FormatSignature(api.Signature{Operator: alice.ID, Sig: alice.Sign([]byte("seed"))}),
		"deck-sig:0000000000000001:" + strings.Repeat("A", 86) + "==",
		"deck-sig:ffffffffffffffff:",
		"deck-sig::",
	}
}

// TestFuzzSeedCorpora keeps the committed corpora present (and rewrites
// them with -seeds), so every fuzzer starts from valid inputs of every verb.
func TestFuzzSeedCorpora(t *testing.T) {
	corpora := map[string][][]byte{
		"FuzzDecodeEvent":          seedEvents(t),
		"FuzzDecodeSigningPayload": seedPayloads(t),
	}
	var sigs [][]byte
	for _, s := range seedSignatures(t) {
		sigs = append(sigs, []byte(s))
	}
	corpora["FuzzParseSignature"] = sigs
	for name, seeds := range corpora {
		dir := filepath.Join("testdata", "fuzz", name)
		if *writeSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for i, s := range seeds {
				typ := "[]byte"
				if name == "FuzzParseSignature" {
					typ = "string"
				}
				body := fmt.Sprintf("go test fuzz v1\n%s(%q)\n", typ, s)
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		files, err := os.ReadDir(dir)
		if err != nil || len(files) < len(seeds) {
			t.Fatalf("%s: %d seed files (%v); run go test -run TestFuzzSeedCorpora -seeds", name, len(files), err)
		}
	}
}

func FuzzDecodeEvent(f *testing.F) {
	for _, s := range seedEvents(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := DecodeEvent(in)
		if err != nil {
			return
		}
		// One encoding per event: what decodes re-encodes to the input.
		if !bytes.Equal(e.Marshal(), in) {
			t.Fatal("decoded event re-encodes differently")
		}
		if e.ID() != blake2b.Sum256(e.CanonicalBody()) {
			t.Fatal("id is not the body hash")
		}
		b := e.Body()
		if err := b.Validate(); err != nil {
			t.Fatalf("decoded an invalid body: %v", err)
		}
		// The fold must not panic on anything the decoder accepts.
		st, err := NewState(genesisOf(t, 1, 1, "alice"))
		if err != nil {
			t.Fatal(err)
		}
		_ = st.Apply(e)
		_ = AuditRecordFor(e, nil, 1)
	})
}

func FuzzDecodeSigningPayload(f *testing.F) {
	for _, s := range seedPayloads(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		b, err := DecodeSigningPayload(in)
		if err != nil {
			return
		}
		p, err := b.SigningPayload()
		if err != nil {
			t.Fatalf("decoded body does not re-encode: %v", err)
		}
		if !bytes.Equal(p, in) {
			t.Fatal("payload re-encodes differently")
		}
	})
}

func FuzzParseSignature(f *testing.F) {
	for _, s := range seedSignatures(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseSignature(in)
		if err != nil {
			return
		}
		if !s.Operator.Valid() || len(s.Sig) != 64 {
			t.Fatalf("parsed %+v", s)
		}
		again, err := ParseSignature(FormatSignature(s))
		if err != nil || again.Operator != s.Operator || !bytes.Equal(again.Sig, s.Sig) {
			t.Fatalf("format/parse round trip: %v", err)
		}
	})
}
