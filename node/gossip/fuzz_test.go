package gossip

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the committed fuzz seed corpora under testdata/fuzz")

// FuzzDecodeSnapshot: the decoder never panics, fails only with its two
// error classes, and whatever it accepts re-encodes to the same bytes, so
// decode(encode(x)) == x on the codec's whole domain.
func FuzzDecodeSnapshot(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		ns, err := DecodeSnapshot(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		again, err := EncodeSnapshot(ns)
		if err != nil {
			t.Fatalf("decoded snapshot does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("not canonical: %d bytes in, %d out", len(b), len(again))
		}
		back, err := DecodeSnapshot(again)
		if err != nil || !reflect.DeepEqual(back, ns) {
			t.Fatalf("second round trip differs: %v", err)
		}
	})
}

// FuzzOpenEnvelope: Open never panics, and anything it accepts is signed
// by the key it carries and speaks only for that key's node.
func FuzzOpenEnvelope(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := Open(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrForgedSigner) &&
				!errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrSnapshotIDMismatch) && !errors.Is(err, identity.ErrZeroID) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if identity.IDFromPublicKey(env.PublicKey) != env.Signer || env.Snapshot.ID != env.Signer ||
			env.Snapshot.Generation != env.Generation || CheckSelfDescribed(env.Snapshot) != nil {
			t.Fatalf("accepted an inconsistent envelope: %+v", env)
		}
	})
}

// FuzzSealOpen: any snapshot the codec accepts, re-signed by its own node,
// opens to the same snapshot.
func FuzzSealOpen(f *testing.F) {
	key := testKey(f, 1)
	f.Fuzz(func(t *testing.T, b []byte) {
		ns, err := DecodeSnapshot(b)
		if err != nil {
			return
		}
		ns.ID = key.ID
		for i := range ns.Daemons {
			ns.Daemons[i].Node = key.ID
		}
		for i := range ns.Failures {
			ns.Failures[i].Node = key.ID
		}
		raw, err := Seal(key, ns, 1, 2, testNow)
		if err != nil {
			t.Fatalf("seal of a decoded snapshot: %v", err)
		}
		env, err := Open(raw)
		if err != nil || !reflect.DeepEqual(env.Snapshot, ns) {
			t.Fatalf("open after seal: %v", err)
		}
	})
}

// FuzzDecodeDigest: bounded, sorted, canonical.
func FuzzDecodeDigest(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		flags, entries, err := decodeDigest(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if len(entries) > MaxNodes {
			t.Fatalf("%d entries", len(entries))
		}
		if again := appendDigestMsg(nil, flags, entries); !bytes.Equal(again[1:], b) {
			t.Fatal("digest not canonical")
		}
	})
}

// FuzzReceive drives whole gossip messages through a live Gossip's receive
// path (the code behind the mesh handler): no panic, and nothing unverified
// reaches Latest.
func FuzzReceive(f *testing.F) {
	r := newRig(f, 6, nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		r.g.handle(r.keys[1].ID, b)
		for len(r.g.inbox) > 0 {
			r.g.receive(<-r.g.inbox)
		}
		r.drain()
		for _, v := range r.g.Latest() {
			if v.Snapshot == nil || v.Snapshot.ID == r.keys[0].ID {
				t.Fatalf("bad entry %+v", v)
			}
		}
	})
}

// TestWriteFuzzCorpus regenerates testdata/fuzz/* with -update-corpus; the
// files are committed so every `go test` replays them.
func TestWriteFuzzCorpus(t *testing.T) {
	if !*updateCorpus {
		t.Skip("run with -update-corpus to rewrite the seed corpora")
	}
	k1, k2 := testKey(t, 1), testKey(t, 2)
	small := nodeSnapshot(k1.ID, 3, 2, testNow)
	full := nodeSnapshot(k1.ID, 9, 50, testNow)
	encode := func(b []byte, err error) []byte {
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	smallEnc := encode(EncodeSnapshot(small))
	fullEnc := encode(EncodeSnapshot(full))
	zeroEnc := encode(EncodeSnapshot(&snapshot.NodeSnapshot{}))
	envSmall := encode(Seal(k1, small, 7, 1, testNow))
	envFull := encode(Seal(k1, full, 7, 2, testNow))
	forged := craft(t, k1.ID, k1.Public, k1, SnapshotDomain, k2.ID, 5)
	digest := appendDigestMsg(nil, 0, []digestEntry{{k1.ID, 7, 1}, {k2.ID, 1, 9}})
	corpora := map[string][][]byte{
		"FuzzDecodeSnapshot": {smallEnc, fullEnc, zeroEnc, smallEnc[:len(smallEnc)/2], append(bytes.Clone(smallEnc), 0)},
		"FuzzSealOpen":       {smallEnc, fullEnc, zeroEnc},
		"FuzzOpenEnvelope":   {envSmall, envFull, forged, envSmall[:60]},
		"FuzzDecodeDigest":   {digest[1:], appendDigestMsg(nil, digestReply, nil)[1:], {0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0}},
		"FuzzReceive": {
			appendEnvelopeMsg(nil, 0, envSmall), appendEnvelopeMsg(nil, HardMaxHops, envFull),
			appendEnvelopeMsg(nil, 1, forged), digest, {msgDigest, digestReply, 0}, {9, 9},
		},
	}
	for name, seeds := range corpora {
		dir := filepath.Join("testdata", "fuzz", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range seeds {
			body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n"
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
