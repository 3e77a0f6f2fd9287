package blob

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/identity/identitytest"
)

// fuzzSeeds are the committed seed corpora under testdata/fuzz. Regenerate
// with DECK_WRITE_FUZZ_CORPUS=1 go test -run TestWriteFuzzCorpus ./node/blob.
func fuzzSeeds(t testing.TB) map[string][][]byte {
	small := &Manifest{Size: 3*ChunkBytes + 5, Refs: []Hash{Sum([]byte("a")), Sum([]byte("b")), Sum([]byte("c")), Sum([]byte("d"))}}
	indexed := &Manifest{Size: uint64(InlineChunkRefs+1) * ChunkBytes, Refs: []Hash{Sum([]byte("index"))}}
	in := &Intent{Blob: small.Hash(), Replicas: 3, Pinned: true, Parent: Sum([]byte("parent")), Name: "dataset.tar", IssuedAt: time.UnixMilli(1_800_000_000_000)}
	if err := in.Sign(identity.KeySigner{K: identitytest.Key(t, "blob-operator")}); err != nil {
		t.Fatal(err)
	}
	rm := &Intent{Blob: small.Hash(), Removed: true, IssuedAt: time.UnixMilli(1_800_000_000_001)}
	if err := rm.Sign(identity.KeySigner{K: identitytest.Key(t, "blob-operator")}); err != nil {
		t.Fatal(err)
	}
	inRaw, _ := in.Encode()
	rmRaw, _ := rm.Encode()
	rec := &Record{Hash: small.Hash(), Size: small.Size, Intent: in, Role: RoleGravity, StoredAt: time.UnixMilli(1_800_000_000_500)}
	recRaw, err := rec.encode()
	if err != nil {
		t.Fatal(err)
	}
	msg := func(m *message) []byte {
		b, err := m.encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	h := small.Hash()
	return map[string][][]byte{
		"FuzzDecodeManifest": {small.Encode(), indexed.Encode(), (&Manifest{}).Encode(), small.Encode()[:40], append(small.Encode(), 0)},
		"FuzzDecodeIntent":   {inRaw, rmRaw, inRaw[:20], {1}},
		"FuzzDecodeRecord":   {recRaw, recRaw[:10], {recordVersion, 9}},
		"FuzzDecodeMessage": {
			msg(&message{Type: msgChunkReq, ReqID: 7, Hash: small.Refs[0], Blob: h}),
			msg(&message{Type: msgChunkResp, ReqID: 7, Status: StatusOK, Data: []byte("chunk bytes")}),
			msg(&message{Type: msgChunkResp, ReqID: 8, Status: StatusCorrupt}),
			msg(&message{Type: msgManifestReq, ReqID: 9, Hash: h}),
			msg(&message{Type: msgManifestResp, ReqID: 9, Status: StatusOK, Data: small.Encode(), Intent: inRaw}),
			msg(&message{Type: msgHaveReq, ReqID: 10, Hash: h}),
			msg(&message{Type: msgHaveResp, ReqID: 10, Status: StatusFetching, Role: RolePlaced, Stored: 1 << 20, Total: 3 << 20, Heat: 1.5, Intent: inRaw}),
			msg(&message{Type: msgReplicateReq, ReqID: 11, Hash: h, Role: RoleOverflow, Intent: inRaw, Sources: []identity.NodeID{1, 2, 3}}),
			msg(&message{Type: msgReplicateResp, ReqID: 11, Status: StatusRefused, Reason: "not a datafort"}),
			msg(&message{Type: msgIntentReq, ReqID: 12, Intent: rmRaw}),
			msg(&message{Type: msgIntentResp, ReqID: 12, Status: StatusOK}),
			msg(&message{Type: msgListReq, ReqID: 13, Hash: h}),
			msg(&message{Type: msgListResp, ReqID: 13, Status: StatusOK, More: true, Entries: []listEntry{{Hash: h, Role: RolePlaced, StoredAt: time.UnixMilli(5), Heat: 2, Size: small.Size, Intent: inRaw}}}),
			msg(&message{Type: msgGCReq, ReqID: 14}),
			msg(&message{Type: msgGCResp, ReqID: 14, Status: StatusOK, GC: GCReport{ChunksKept: 9, ChunksCollected: 2, BytesCollected: 1 << 18, EdgesRemoved: 3, TombstonesAged: 1}}),
			{byte(msgChunkResp), 1, 0, 0xff, 0xff, 0xff, 0x7f},
		},
	}
}

func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("DECK_WRITE_FUZZ_CORPUS") == "" {
		t.Skip("set DECK_WRITE_FUZZ_CORPUS=1 to regenerate testdata/fuzz")
	}
	for name, seeds := range fuzzSeeds(t) {
		dir := filepath.Join("testdata", "fuzz", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, b := range seeds {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestFuzzCorpusCommitted keeps the corpus and the seeds above in step.
func TestFuzzCorpusCommitted(t *testing.T) {
	for name, seeds := range fuzzSeeds(t) {
		ents, err := os.ReadDir(filepath.Join("testdata", "fuzz", name))
		if err != nil || len(ents) != len(seeds) {
			t.Errorf("%s: %d committed seeds, %d in fuzzSeeds (%v): regenerate the corpus", name, len(ents), len(seeds), err)
		}
	}
}

func classified(err error) bool { return errors.Is(err, ErrMalformed) || errors.Is(err, ErrInvalid) }

// FuzzDecodeManifest: never panics; what decodes re-encodes to the same
// bytes and describes its size.
func FuzzDecodeManifest(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeManifest(b)
		if err != nil {
			if !classified(err) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if !bytes.Equal(m.Encode(), b) || m.Check() != nil {
			t.Fatalf("not canonical or inconsistent: %d bytes, size %d, %d refs", len(b), m.Size, len(m.Refs))
		}
	})
}

// FuzzDecodeIntent: never panics; what decodes re-encodes to the same bytes.
func FuzzDecodeIntent(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := DecodeIntent(b)
		if err != nil {
			if !classified(err) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		again, err := in.Encode()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("not canonical: %v", err)
		}
	})
}

// FuzzDecodeRecord: a record read from a damaged disk never panics.
func FuzzDecodeRecord(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 2 {
			return
		}
		var h Hash
		copy(h[:], b)
		rec, err := decodeRecord(h, b)
		if err == nil {
			if _, err := rec.encode(); err != nil {
				t.Fatalf("decoded record does not encode: %v", err)
			}
		}
	})
}

// FuzzDecodeMessage: every ChanBlob message from a peer: never panics,
// bounded, canonical.
func FuzzDecodeMessage(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		if err != nil {
			if !classified(err) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		again, err := m.encode()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("not canonical: %v", err)
		}
		back, err := decodeMessage(again)
		if err != nil || !reflect.DeepEqual(back, m) {
			t.Fatalf("second round trip differs: %v", err)
		}
	})
}
