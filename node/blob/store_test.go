package blob

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/identity/identitytest"
)

func openDB(t testing.TB, dir string) *chain.DB {
	t.Helper()
	db, err := chain.Open(chain.Config{Dir: dir, RetentionInterval: -1, ValueLogGCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func testStore(t testing.TB, budget uint64) (*Store, *chain.DB) {
	t.Helper()
	db := openDB(t, t.TempDir())
	t.Cleanup(func() { db.Close() })
	s, err := OpenStore(db.BlobSpace(), budget, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func signedIntent(t testing.TB, h Hash, replicas int, pinned bool, at time.Time) *Intent {
	t.Helper()
	in := &Intent{Blob: h, Replicas: replicas, Pinned: pinned, IssuedAt: at, Name: "test"}
	if err := in.Sign(identity.KeySigner{K: identitytest.Key(t, "operator")}); err != nil {
		t.Fatal(err)
	}
	return in
}

// put ingests data and commits it under a fresh intent.
func put(t testing.TB, s *Store, data []byte, pinned bool) *Record {
	t.Helper()
	ctx := context.Background()
	st, err := s.Ingest(ctx, bytes.NewReader(data), nil)
	if err != nil {
		t.Fatalf("ingest: %v", err)
	}
	rec, err := st.Commit(ctx, signedIntent(t, st.Hash, 1, pinned, time.Now()), RolePlaced)
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	return rec
}

// readAll reassembles a held blob from the store.
func readAll(t testing.TB, s *Store, rec *Record) []byte {
	t.Helper()
	out := make([]byte, rec.Manifest.Size)
	err := s.ForEachChunk(rec.Manifest, func(i int, h Hash) error {
		if i < 0 {
			return nil
		}
		b, err := s.ReadChunk(h, nil)
		if err != nil {
			return err
		}
		copy(out[i*ChunkBytes:], b)
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", rec.Hash.Short(), err)
	}
	return out
}

func TestStorePutReadRoundTrip(t *testing.T) {
	s, _ := testStore(t, 1<<30)
	for _, n := range []int{0, 1, ChunkBytes - 1, ChunkBytes, ChunkBytes + 1, 5*ChunkBytes + 17} {
		data := randomBytes(uint64(n)+1, n)
		rec := put(t, s, data, false)
		if rec.Manifest.Size != uint64(n) || len(rec.Manifest.Refs) != ChunkCount(uint64(n)) {
			t.Fatalf("%d bytes: manifest %d bytes, %d refs", n, rec.Manifest.Size, len(rec.Manifest.Refs))
		}
		got, err := s.Record(rec.Hash)
		if err != nil || got.Intent.Blob != rec.Hash || got.Role != RolePlaced {
			t.Fatalf("record: %+v, %v", got, err)
		}
		if b := readAll(t, s, got); !bytes.Equal(b, data) {
			t.Fatalf("%d bytes: read back differs", n)
		}
	}
}

// A blob of more than InlineChunkRefs chunks lists index chunks; repeated
// content is stored once.
func TestStoreIndexedManifestAndDedup(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes 256 MiB")
	}
	s, _ := testStore(t, 1<<30)
	pattern := [][]byte{randomBytes(1, ChunkBytes), randomBytes(2, ChunkBytes), randomBytes(3, ChunkBytes)}
	chunks := InlineChunkRefs + 3
	r := io.MultiReader(func() []io.Reader {
		var rs []io.Reader
		for i := range chunks {
			rs = append(rs, bytes.NewReader(pattern[i%3]))
		}
		return rs
	}()...)
	ctx := context.Background()
	st, err := s.Ingest(ctx, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Manifest.Indexed() || len(st.Manifest.Refs) != 1 || st.Manifest.Chunks() != chunks {
		t.Fatalf("manifest: indexed %v, %d refs, %d chunks", st.Manifest.Indexed(), len(st.Manifest.Refs), st.Manifest.Chunks())
	}
	rec, err := st.Commit(ctx, signedIntent(t, st.Hash, 1, false, time.Now()), RolePlaced)
	if err != nil {
		t.Fatal(err)
	}
	u := s.Usage()
	// Three distinct data chunks and one index chunk.
	if u.Chunks != 4 || u.Used != 3*ChunkBytes+uint64(chunks*HashBytes) {
		t.Fatalf("usage %+v", u)
	}
	n := 0
	if err := s.ForEachChunk(rec.Manifest, func(i int, h Hash) error {
		if i >= 0 && h != Sum(pattern[i%3]) {
			t.Fatalf("chunk %d is %s", i, h.Short())
		}
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != chunks+1 {
		t.Fatalf("visited %d chunks", n)
	}
}

func TestStoreBudgetRefusesNewChunks(t *testing.T) {
	s, _ := testStore(t, 2*ChunkBytes)
	ctx := context.Background()
	_, err := s.Ingest(ctx, bytes.NewReader(randomBytes(9, 3*ChunkBytes)), nil)
	if !errors.Is(err, ErrFull) {
		t.Fatalf("ingest past the budget: %v", err)
	}
	if u := s.Usage(); u.Used > u.Budget {
		t.Fatalf("usage %+v past its budget", u)
	}
	if s.Stats().Refused == 0 {
		t.Fatal("refusal not counted")
	}
}

func TestStoreReadDetectsCorruption(t *testing.T) {
	s, db := testStore(t, 1<<30)
	rec := put(t, s, randomBytes(4, 2*ChunkBytes), false)
	h := rec.Manifest.Refs[1]
	good, err := s.ReadChunk(h, nil)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(good)
	bad[1000] ^= 0x20
	ctx := context.Background()
	// A write through the keyspace, as a failing disk would leave the bytes.
	if err := db.BlobSpace().Write(ctx, []chain.BlobOp{{Key: key1(pfxChunk, h), Value: bad}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadChunk(h, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt chunk read: %v", err)
	}
	if s.Stats().Corrupt != 1 {
		t.Fatalf("corrupt count %d", s.Stats().Corrupt)
	}
	if err := s.RepairChunk(ctx, h, bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("repair with bad bytes: %v", err)
	}
	if err := s.RepairChunk(ctx, h, good); err != nil {
		t.Fatal(err)
	}
	if b, err := s.ReadChunk(h, nil); err != nil || !bytes.Equal(b, good) {
		t.Fatalf("after repair: %v", err)
	}
}

func TestStorePutChunkRefusesBytesNotMatchingTheirHash(t *testing.T) {
	s, _ := testStore(t, 1<<30)
	data := randomBytes(5, 1000)
	var owner Hash
	owner[0] = 1
	_, err := s.PutChunk(context.Background(), owner, data, Sum([]byte("something else")))
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("mismatched chunk: %v", err)
	}
	if ok, _ := s.HasChunk(Sum(data)); ok || s.Usage().Chunks != 0 {
		t.Fatal("a chunk that did not match its hash was stored")
	}
}

// The GC keeps every chunk a held blob (pinned or not) or a transfer in
// progress references, and collects the rest.
func TestStoreGCKeepsPinnedAndReferenced(t *testing.T) {
	s, _ := testStore(t, 1<<30)
	ctx := context.Background()
	shared := randomBytes(10, ChunkBytes)
	pinned := put(t, s, append(bytes.Clone(shared), randomBytes(11, ChunkBytes)...), true)
	plain := put(t, s, append(bytes.Clone(shared), randomBytes(12, 100)...), false)
	dropped := put(t, s, randomBytes(13, 2*ChunkBytes), false)
	// A put abandoned half way and one still in progress.
	abandoned, err := s.Ingest(ctx, bytes.NewReader(randomBytes(14, ChunkBytes)), nil)
	if err != nil {
		t.Fatal(err)
	}
	abandoned.Abort()
	inProgress, err := s.Ingest(ctx, bytes.NewReader(randomBytes(15, ChunkBytes)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Drop(ctx, dropped.Hash); err != nil {
		t.Fatal(err)
	}
	before := s.Usage()
	rep, err := s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The dropped blob's two chunks and the abandoned put's one go.
	if rep.ChunksCollected != 3 || rep.BytesCollected != 3*ChunkBytes {
		t.Fatalf("gc report %+v", rep)
	}
	if after := s.Usage(); after.Chunks != before.Chunks-3 || after.Used != before.Used-3*ChunkBytes {
		t.Fatalf("usage %+v → %+v", before, after)
	}
	for _, rec := range []*Record{pinned, plain} {
		got, err := s.Record(rec.Hash)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, s, got)
	}
	if ok, _ := s.HasChunk(inProgress.Manifest.Refs[0]); !ok {
		t.Fatal("the GC took a chunk of a put in progress")
	}
	if _, err := inProgress.Commit(ctx, signedIntent(t, inProgress.Hash, 1, false, time.Now()), RolePlaced); err != nil {
		t.Fatal(err)
	}
	if rep, err := s.GC(ctx); err != nil || rep.ChunksCollected != 0 {
		t.Fatalf("second gc: %+v, %v", rep, err)
	}
	// The accounting survives a reopen.
	s2, err := OpenStore(s.space, 1<<30, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s2.Usage() != s.Usage() {
		t.Fatalf("reopened usage %+v, was %+v", s2.Usage(), s.Usage())
	}
}

func TestStoreRemovalKeepsTombstone(t *testing.T) {
	s, _ := testStore(t, 1<<30)
	ctx := context.Background()
	rec := put(t, s, randomBytes(20, 3000), false)
	rm := &Intent{Blob: rec.Hash, Removed: true, IssuedAt: time.Now().Add(time.Second)}
	if err := rm.Sign(identity.KeySigner{K: identitytest.Key(t, "operator")}); err != nil {
		t.Fatal(err)
	}
	if newer, err := s.UpdateIntent(ctx, rm); err != nil || !newer {
		t.Fatalf("removal: %v, %v", newer, err)
	}
	if _, err := s.Record(rec.Hash); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removed blob still held: %v", err)
	}
	// An older intent (a stale replica coming back) cannot resurrect it.
	st, err := s.Ingest(ctx, bytes.NewReader(randomBytes(20, 3000)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Commit(ctx, rec.Intent, RolePlaced); !errors.Is(err, ErrRemoved) {
		t.Fatalf("commit under an older intent: %v", err)
	}
	if rep, err := s.GC(ctx); err != nil || rep.ChunksCollected != 1 {
		t.Fatalf("gc after removal: %+v, %v", rep, err)
	}
}
