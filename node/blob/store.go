package blob

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/codec"
)

// Key layout inside the database's blob keyspace (chain.BlobSpace):
//
//	'c' chunk(32)            chunk bytes (BLAKE3 of them is the chunk hash)
//	'k' chunk(32)            chunk meta: uvarint length (exact disk accounting)
//	'e' chunk(32) owner(32)  reference edge: owner (a blob, or a transfer's
//	                         staging id) needs the chunk; empty value
//	'b' blob(32)             record of a blob held here: role, stored at, size, intent
//	'm' blob(32)             its manifest (apart, so listing records reads no manifest)
//	't' blob(32)             tombstone: the signed removal, kept TombstoneTTL
//
// Reference counts are kept as edges rather than counters: adding and
// removing a reference is idempotent, so a blob's thousands of references
// can be written in several transactions and a crash between them leaves
// only edges to an owner that has no record, which the GC removes. A chunk
// is live while some edge names a live owner: a blob with a record, or a
// transfer in progress (Begin/End).
const (
	pfxChunk    = 'c'
	pfxMeta     = 'k'
	pfxEdge     = 'e'
	pfxRecord   = 'b'
	pfxManifest = 'm'
	pfxTomb     = 't'
)

func key1(p byte, h Hash) []byte {
	k := make([]byte, 1+HashBytes)
	k[0] = p
	copy(k[1:], h[:])
	return k
}

func edgeKey(chunk, owner Hash) []byte {
	k := make([]byte, 1+2*HashBytes)
	k[0] = pfxEdge
	copy(k[1:], chunk[:])
	copy(k[1+HashBytes:], owner[:])
	return k
}

// Role is why a node holds a blob.
type Role uint8

const (
	// RolePlaced: placement chose this node (or the put landed here).
	RolePlaced Role = iota
	// RoleGravity: a copy near the nodes that read it (its heat).
	RoleGravity
	// RoleOverflow: taken from a node past its disk budget.
	RoleOverflow
	// RoleStaging: a put's source copy on a node that is no datafort (a
	// console); dropped once the datafort nodes hold the blob.
	RoleStaging
	numRoles
)

func (r Role) String() string {
	return [...]string{"placed", "gravity", "overflow", "staging", "unknown"}[min(r, numRoles)]
}

// Record is what a node keeps about one blob it holds. Records listed by
// Records carry no Manifest (Size says how big the blob is).
type Record struct {
	Hash     Hash
	Size     uint64
	Manifest *Manifest
	Intent   *Intent
	Role     Role
	StoredAt time.Time
}

const recordVersion = 2

func (rec *Record) encode() ([]byte, error) {
	in, err := rec.Intent.Encode()
	if err != nil {
		return nil, err
	}
	w := codec.NewWriter(make([]byte, 0, 32+len(in)), ErrMalformed)
	w.U8(recordVersion)
	w.Enum("role", uint8(rec.Role), uint8(numRoles))
	w.Varint(rec.StoredAt.UnixMilli())
	w.Uvarint(rec.Size)
	w.Bytes(codec.PrefixUvarint, MaxIntentBytes, "intent", in)
	return w.B, w.Err()
}

// decodeRecord parses a record read from disk for blob h; its intent must
// name h, or the record is corrupt.
func decodeRecord(h Hash, b []byte) (*Record, error) {
	r := codec.NewReader(b, ErrMalformed)
	if v := r.U8(); r.Err() == nil && v != recordVersion {
		r.Failf(codec.ErrMalformed, "record version %d", v)
	}
	rec := &Record{Hash: h, Role: Role(r.Enum("role", uint8(numRoles)))}
	rec.StoredAt = time.UnixMilli(r.Varint()).UTC()
	rec.Size = r.Uvarint()
	ib := r.Bytes(codec.PrefixUvarint, MaxIntentBytes, "intent")
	if err := r.Finish(); err != nil {
		return nil, err
	}
	var err error
	if rec.Intent, err = DecodeIntent(ib); err != nil {
		return nil, err
	}
	if rec.Intent.Blob != h {
		return nil, fmt.Errorf("%w: record of %s holds the intent of %s", ErrCorrupt, h.Short(), rec.Intent.Blob.Short())
	}
	return rec, nil
}

// loadManifest reads blob h's manifest, which must hash to h.
func (s *Store) loadManifest(h Hash) (*Manifest, error) {
	mb, err := s.space.Get(key1(pfxManifest, h), nil)
	if errors.Is(err, chain.ErrNotFound) {
		return nil, fmt.Errorf("%w: record of %s has no manifest", ErrCorrupt, h.Short())
	}
	if err != nil {
		return nil, err
	}
	if Sum(mb) != h {
		return nil, fmt.Errorf("%w: the manifest stored for %s is another", ErrCorrupt, h.Short())
	}
	return DecodeManifest(mb)
}

// Usage is a store's disk accounting.
type Usage struct {
	Budget uint64 // bytes the store may hold in chunks
	Used   uint64 // bytes of chunks held
	Chunks uint64
}

// StoreStats are the store's honest counters.
type StoreStats struct {
	ChunksWritten, ChunksRead uint64
	BytesWritten, BytesRead   uint64
	// Corrupt counts chunks whose bytes did not hash to their address when
	// read from this node's disk.
	Corrupt uint64
	// Refused counts chunk writes refused for the disk budget.
	Refused uint64
	// Collected counts chunks the GC removed, CollectedBytes their bytes.
	Collected, CollectedBytes uint64
	// GCRuns counts the GC runs begun.
	GCRuns uint64
}

// Store is one node's chunks and blob records in its database. It is safe
// for concurrent use.
type Store struct {
	space *chain.BlobSpace
	now   func() time.Time

	budget       atomic.Uint64
	used, chunks atomic.Int64

	// stripes serialise, per chunk hash, the check-then-write of a chunk
	// and the GC's check-then-delete, so a chunk is never deleted under a
	// reference written after the GC judged it.
	stripes [ChunkLockStripes]sync.Mutex

	mu     sync.Mutex
	active map[Hash]int // owners with a transfer in progress

	// gcMu keeps GC runs one at a time.
	gcMu sync.Mutex

	written, read, wbytes, rbytes, corrupt, refused, collected, collectedBytes, gcRuns atomic.Uint64
}

// OpenStore reads the store's accounting from space (one scan of the chunk
// meta keys).
func OpenStore(space *chain.BlobSpace, budget uint64, now func() time.Time) (*Store, error) {
	if now == nil {
		now = time.Now
	}
	s := &Store{space: space, now: now, active: map[Hash]int{}}
	s.budget.Store(budget)
	var used, n int64
	var bad error
	err := space.Scan([]byte{pfxMeta}, nil, true, func(it chain.BlobItem) bool {
		r := codec.NewReader(it.Value, ErrMalformed)
		l := r.Uvarint()
		if err := r.Finish(); err != nil || len(it.Key) != 1+HashBytes || l > ChunkBytes {
			bad = fmt.Errorf("%w: chunk meta %x", ErrCorrupt, it.Key)
			return false
		}
		used += int64(l)
		n++
		return true
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return nil, fmt.Errorf("blob: open store: %w", err)
	}
	s.used.Store(used)
	s.chunks.Store(n)
	return s, nil
}

// SetBudget changes the disk budget.
func (s *Store) SetBudget(b uint64) { s.budget.Store(b) }

// Usage is the store's accounting now.
func (s *Store) Usage() Usage {
	return Usage{Budget: s.budget.Load(), Used: uint64(max(0, s.used.Load())), Chunks: uint64(max(0, s.chunks.Load()))}
}

// Stats are the store's counters.
func (s *Store) Stats() StoreStats {
	return StoreStats{
		ChunksWritten: s.written.Load(), ChunksRead: s.read.Load(),
		BytesWritten: s.wbytes.Load(), BytesRead: s.rbytes.Load(),
		Corrupt: s.corrupt.Load(), Refused: s.refused.Load(),
		Collected: s.collected.Load(), CollectedBytes: s.collectedBytes.Load(),
		GCRuns: s.gcRuns.Load(),
	}
}

// Begin marks owner (a blob being fetched, a put's staging id) as a
// transfer in progress: chunks it references are live until End.
func (s *Store) Begin(owner Hash) {
	s.mu.Lock()
	s.active[owner]++
	s.mu.Unlock()
}

// End undoes one Begin.
func (s *Store) End(owner Hash) {
	s.mu.Lock()
	if s.active[owner]--; s.active[owner] <= 0 {
		delete(s.active, owner)
	}
	s.mu.Unlock()
}

func (s *Store) isActive(owner Hash) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active[owner] > 0
}

func (s *Store) stripe(h Hash) *sync.Mutex { return &s.stripes[h[0]%ChunkLockStripes] }

// PutChunk stores data as a chunk referenced by owner and returns its hash.
// When want is not zero the bytes must hash to it (a chunk from a peer):
// otherwise nothing is stored and the error wraps ErrCorrupt. A chunk
// already held only gains the reference. The disk budget is checked before
// a new chunk is written (ErrFull).
func (s *Store) PutChunk(ctx context.Context, owner Hash, data []byte, want Hash) (Hash, error) {
	if len(data) > ChunkBytes {
		return Hash{}, fmt.Errorf("%w: chunk of %d bytes, at most %d", ErrInvalid, len(data), ChunkBytes)
	}
	h := Sum(data)
	if !want.IsZero() && h != want {
		return h, fmt.Errorf("%w: bytes hash to %s, not %s", ErrCorrupt, h.Short(), want.Short())
	}
	mu := s.stripe(h)
	mu.Lock()
	defer mu.Unlock()
	present, err := s.space.Has(key1(pfxMeta, h))
	if err != nil {
		return h, err
	}
	ops := []chain.BlobOp{{Key: edgeKey(h, owner), Value: []byte{}}}
	if !present {
		n := int64(len(data))
		if uint64(s.used.Add(n)) > s.budget.Load() {
			s.used.Add(-n)
			s.refused.Add(1)
			return h, fmt.Errorf("%w: %d of %d bytes used", ErrFull, s.used.Load(), s.budget.Load())
		}
		ops = append(ops,
			chain.BlobOp{Key: key1(pfxChunk, h), Value: data},
			chain.BlobOp{Key: key1(pfxMeta, h), Value: binary.AppendUvarint(nil, uint64(len(data)))})
		if err := s.space.Write(ctx, ops); err != nil {
			s.used.Add(-n)
			return h, err
		}
		s.chunks.Add(1)
		s.written.Add(1)
		s.wbytes.Add(uint64(n))
		return h, nil
	}
	return h, s.space.Write(ctx, ops)
}

// PutChunkRef references chunk h, already held, for owner; ErrNotFound
// when it is not held.
func (s *Store) PutChunkRef(ctx context.Context, owner, h Hash) (Hash, error) {
	mu := s.stripe(h)
	mu.Lock()
	defer mu.Unlock()
	present, err := s.space.Has(key1(pfxMeta, h))
	if err != nil {
		return h, err
	}
	if !present {
		return h, fmt.Errorf("%w: chunk %s", ErrNotFound, h.Short())
	}
	return h, s.space.Write(ctx, []chain.BlobOp{{Key: edgeKey(h, owner), Value: []byte{}}})
}

// RepairChunk overwrites a chunk whose stored bytes are corrupt with data,
// which must hash to h; the reference edges stay as they are.
func (s *Store) RepairChunk(ctx context.Context, h Hash, data []byte) error {
	if Sum(data) != h {
		return fmt.Errorf("%w: repair bytes do not hash to %s", ErrCorrupt, h.Short())
	}
	mu := s.stripe(h)
	mu.Lock()
	defer mu.Unlock()
	present, err := s.space.Has(key1(pfxMeta, h))
	if err != nil || !present {
		if err == nil {
			err = fmt.Errorf("%w: chunk %s", ErrNotFound, h.Short())
		}
		return err
	}
	return s.space.Write(ctx, []chain.BlobOp{{Key: key1(pfxChunk, h), Value: data}})
}

// owners lists up to n owners that reference chunk h.
func (s *Store) owners(h Hash, n int) ([]Hash, error) {
	var out []Hash
	err := s.space.Scan(key1(pfxEdge, h), nil, false, func(it chain.BlobItem) bool {
		var o Hash
		copy(o[:], it.Key[1+HashBytes:])
		out = append(out, o)
		return len(out) < n
	})
	return out, err
}

// HasRef reports whether owner references chunk h (and so holds it).
func (s *Store) HasRef(h, owner Hash) (bool, error) {
	ok, err := s.space.Has(edgeKey(h, owner))
	if !ok || err != nil {
		return false, err
	}
	return s.space.Has(key1(pfxMeta, h))
}

// HasChunk reports whether the chunk is held (not whether it is intact).
func (s *Store) HasChunk(h Hash) (bool, error) { return s.space.Has(key1(pfxMeta, h)) }

// ReadChunk appends chunk h to dst, verified: bytes that do not hash to h
// are ErrCorrupt (and counted), a chunk not held is ErrNotFound.
func (s *Store) ReadChunk(h Hash, dst []byte) ([]byte, error) {
	b, err := s.space.Get(key1(pfxChunk, h), dst)
	if errors.Is(err, chain.ErrNotFound) {
		return dst, fmt.Errorf("%w: chunk %s", ErrNotFound, h.Short())
	}
	if err != nil {
		return dst, err
	}
	data := b[len(dst):]
	if len(data) > ChunkBytes || Sum(data) != h {
		s.corrupt.Add(1)
		return dst, fmt.Errorf("%w: stored chunk %s no longer hashes to its address", ErrCorrupt, h.Short())
	}
	s.read.Add(1)
	s.rbytes.Add(uint64(len(data)))
	return b, nil
}

// Record returns the record of blob h (ErrNotFound when not held).
func (s *Store) Record(h Hash) (*Record, error) {
	b, err := s.space.Get(key1(pfxRecord, h), nil)
	if errors.Is(err, chain.ErrNotFound) {
		return nil, fmt.Errorf("%w: blob %s is not held here", ErrNotFound, h.Short())
	}
	if err != nil {
		return nil, err
	}
	rec, err := decodeRecord(h, b)
	if err != nil {
		return nil, err
	}
	if rec.Manifest, err = s.loadManifest(h); err != nil {
		return nil, err
	}
	if rec.Manifest.Size != rec.Size {
		return nil, fmt.Errorf("%w: record of %s says %d bytes, its manifest %d", ErrCorrupt, h.Short(), rec.Size, rec.Manifest.Size)
	}
	return rec, nil
}

// Tombstone returns the signed removal of blob h, if one is kept.
func (s *Store) Tombstone(h Hash) (*Intent, error) {
	b, err := s.space.Get(key1(pfxTomb, h), nil)
	if errors.Is(err, chain.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	in, err := DecodeIntent(b)
	if err != nil {
		return nil, err
	}
	if in.Blob != h {
		return nil, fmt.Errorf("%w: tombstone of %s names %s", ErrCorrupt, h.Short(), in.Blob.Short())
	}
	return in, nil
}

// Records lists up to limit records in hash order, starting after from
// (zero: from the first), and the hash to continue after (zero: done).
// They carry no manifest.
func (s *Store) Records(from Hash, limit int) ([]*Record, Hash, error) {
	var out []*Record
	var next Hash
	var bad error
	start := key1(pfxRecord, from)
	if !from.IsZero() {
		start = append(start, 0) // strictly after from
	}
	err := s.space.Scan([]byte{pfxRecord}, start, true, func(it chain.BlobItem) bool {
		if len(it.Key) != 1+HashBytes {
			bad = fmt.Errorf("%w: record key %x", ErrCorrupt, it.Key)
			return false
		}
		var h Hash
		copy(h[:], it.Key[1:])
		if len(out) == limit {
			next = out[len(out)-1].Hash
			return false
		}
		rec, err := decodeRecord(h, it.Value)
		if err != nil {
			bad = err
			return false
		}
		out = append(out, rec)
		return true
	})
	if err == nil {
		err = bad
	}
	return out, next, err
}

// ForEachChunk calls fn with each data chunk's index and hash in order,
// then each index chunk's (index -1-i), reading index chunks from this
// store (verified). It stops at fn's first error.
func (s *Store) ForEachChunk(m *Manifest, fn func(i int, h Hash) error) error {
	if !m.Indexed() {
		for i, h := range m.Refs {
			if err := fn(i, h); err != nil {
				return err
			}
		}
		return nil
	}
	var buf []byte
	for x, ih := range m.Refs {
		b, err := s.ReadChunk(ih, buf[:0])
		if err != nil {
			return fmt.Errorf("index chunk %d: %w", x, err)
		}
		buf = b
		refs, err := m.DecodeIndex(x, b)
		if err != nil {
			return err
		}
		for k, h := range refs {
			if err := fn(x*IndexChunkRefs+k, h); err != nil {
				return err
			}
		}
		if err := fn(-1-x, ih); err != nil {
			return err
		}
	}
	return nil
}

// Commit records rec as held. Every chunk it lists must be held and
// referenced by rec.Hash already, or by staging (a put's chunks, written
// before the blob's hash was known): then the references are moved to the
// blob first, the record written, the staging references removed. The
// record replaces an older one of the same blob, keeping the newer
// intent; a tombstone the intent supersedes is dropped.
func (s *Store) Commit(ctx context.Context, rec *Record, staging Hash) error {
	if rec.Manifest.Hash() != rec.Hash || rec.Intent == nil || rec.Intent.Blob != rec.Hash || rec.Intent.Removed {
		return fmt.Errorf("%w: record of %s does not describe it", ErrInvalid, rec.Hash.Short())
	}
	rec.Size = rec.Manifest.Size
	s.Begin(rec.Hash)
	defer s.End(rec.Hash)
	if !staging.IsZero() {
		if err := s.moveEdges(ctx, rec.Manifest, rec.Hash, staging, false); err != nil {
			return err
		}
	}
	if old, err := s.Record(rec.Hash); err == nil && old.Intent.Newer(rec.Intent) {
		cp := *rec
		cp.Intent = old.Intent
		rec = &cp
	}
	tomb, err := s.Tombstone(rec.Hash)
	if err != nil {
		return err
	}
	if tomb != nil && tomb.Newer(rec.Intent) {
		return fmt.Errorf("%w (%s)", ErrRemoved, rec.Hash.Short())
	}
	b, err := rec.encode()
	if err != nil {
		return err
	}
	ops := []chain.BlobOp{{Key: key1(pfxRecord, rec.Hash), Value: b}, {Key: key1(pfxManifest, rec.Hash), Value: rec.Manifest.Encode()}}
	if tomb != nil {
		ops = append(ops, chain.BlobOp{Key: key1(pfxTomb, rec.Hash), Delete: true})
	}
	if err := s.space.Write(ctx, ops); err != nil {
		return err
	}
	if !staging.IsZero() {
		return s.moveEdges(ctx, rec.Manifest, rec.Hash, staging, true)
	}
	return nil
}

// moveEdges writes blob's edge for every chunk of m (drop false), or
// removes staging's (drop true), in groups of MaxEdgesPerWrite.
func (s *Store) moveEdges(ctx context.Context, m *Manifest, blob, staging Hash, drop bool) error {
	ops := make([]chain.BlobOp, 0, MaxEdgesPerWrite)
	flush := func() error {
		err := s.space.Write(ctx, ops)
		ops = ops[:0]
		return err
	}
	err := s.ForEachChunk(m, func(_ int, h Hash) error {
		if drop {
			ops = append(ops, chain.BlobOp{Key: edgeKey(h, staging), Delete: true})
		} else {
			ops = append(ops, chain.BlobOp{Key: edgeKey(h, blob), Value: []byte{}})
		}
		if len(ops) == MaxEdgesPerWrite {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// UpdateIntent keeps in for blob h when it is newer than what is held: a
// held blob's record takes it (a removal deletes the record and keeps the
// tombstone; its chunks go at the next GC); a removal of a blob not held
// is kept as a tombstone all the same. It reports whether in was newer.
func (s *Store) UpdateIntent(ctx context.Context, in *Intent) (bool, error) {
	h := in.Blob
	tomb, err := s.Tombstone(h)
	if err != nil {
		return false, err
	}
	if tomb != nil && !in.Newer(tomb) {
		return false, nil
	}
	rec, err := s.Record(h)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return false, err
	}
	if rec != nil && !in.Newer(rec.Intent) {
		return false, nil
	}
	if in.Removed {
		b, err := in.Encode()
		if err != nil {
			return false, err
		}
		return true, s.space.Write(ctx, []chain.BlobOp{
			{Key: key1(pfxTomb, h), Value: b},
			{Key: key1(pfxRecord, h), Delete: true},
			{Key: key1(pfxManifest, h), Delete: true},
		})
	}
	if rec == nil {
		return false, nil // not held: nothing to update
	}
	cp := *rec
	cp.Intent = in
	b, err := cp.encode()
	if err != nil {
		return false, err
	}
	ops := []chain.BlobOp{{Key: key1(pfxRecord, h), Value: b}}
	if tomb != nil {
		ops = append(ops, chain.BlobOp{Key: key1(pfxTomb, h), Delete: true})
	}
	return true, s.space.Write(ctx, ops)
}

// SetRole changes why the blob is held.
func (s *Store) SetRole(ctx context.Context, h Hash, role Role) error {
	rec, err := s.Record(h)
	if err != nil {
		return err
	}
	if rec.Role == role {
		return nil
	}
	rec.Role = role
	b, err := rec.encode()
	if err != nil {
		return err
	}
	return s.space.Write(ctx, []chain.BlobOp{{Key: key1(pfxRecord, h), Value: b}})
}

// Drop stops holding blob h here (its chunks go at the next GC unless
// another blob references them). Its intent is not a removal: the blob
// lives on elsewhere.
func (s *Store) Drop(ctx context.Context, h Hash) error {
	return s.space.Write(ctx, []chain.BlobOp{{Key: key1(pfxRecord, h), Delete: true}, {Key: key1(pfxManifest, h), Delete: true}})
}

// GCReport is what one GC run did.
type GCReport struct {
	ChunksKept      uint64
	ChunksCollected uint64
	BytesCollected  uint64
	EdgesRemoved    uint64
	TombstonesAged  uint64
}

// GC removes every chunk no live owner references (a blob held here, or a
// transfer in progress), the references to owners that are gone, and
// tombstones older than TombstoneTTL. Pinned blobs are held blobs, so
// their chunks are never collected.
func (s *Store) GC(ctx context.Context) (GCReport, error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	s.gcRuns.Add(1)
	var rep GCReport
	live := map[Hash]bool{} // owner liveness, memoised for this run
	ownerLive := func(o Hash) (bool, error) {
		if s.isActive(o) {
			return true, nil
		}
		if v, ok := live[o]; ok {
			return v, nil
		}
		ok, err := s.space.Has(key1(pfxRecord, o))
		if err != nil {
			return false, err
		}
		if len(live) < 1<<16 {
			live[o] = ok
		}
		return ok, nil
	}
	var cursor []byte
	for {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		batch, err := s.metaBatch(cursor)
		if err != nil || len(batch) == 0 {
			if err == nil {
				err = s.ageTombstones(ctx, &rep)
			}
			return rep, err
		}
		for _, c := range batch {
			if err := s.judge(ctx, c.h, c.size, ownerLive, &rep); err != nil {
				return rep, err
			}
		}
		last := batch[len(batch)-1].h
		cursor = append(key1(pfxMeta, last), 0)
	}
}

type metaEntry struct {
	h    Hash
	size uint64
}

func (s *Store) metaBatch(from []byte) ([]metaEntry, error) {
	var out []metaEntry
	err := s.space.Scan([]byte{pfxMeta}, from, true, func(it chain.BlobItem) bool {
		var e metaEntry
		copy(e.h[:], it.Key[1:])
		r := codec.NewReader(it.Value, ErrMalformed)
		e.size = r.Uvarint()
		out = append(out, e)
		return len(out) < GCBatchChunks
	})
	return out, err
}

// judge decides one chunk under its stripe lock: dead edges go, and the
// chunk goes when no live edge is left.
func (s *Store) judge(ctx context.Context, h Hash, size uint64, ownerLive func(Hash) (bool, error), rep *GCReport) error {
	mu := s.stripe(h)
	mu.Lock()
	defer mu.Unlock()
	// The edges are read first and judged after the scan: a read nested
	// in a scan's callback could deadlock against the database's Close.
	var edges []Hash
	more := false
	err := s.space.Scan(key1(pfxEdge, h), nil, false, func(it chain.BlobItem) bool {
		if len(edges) == chain.MaxBlobWriteOps-2 {
			more = true
			return false
		}
		var o Hash
		copy(o[:], it.Key[1+HashBytes:])
		edges = append(edges, o)
		return true
	})
	if err != nil {
		return err
	}
	var dead [][]byte
	keep := more // edges beyond one write's worth: judged on a later run
	for _, o := range edges {
		ok, err := ownerLive(o)
		if err != nil {
			return err
		}
		if ok {
			keep = true
		} else {
			dead = append(dead, edgeKey(h, o))
		}
	}
	ops := make([]chain.BlobOp, 0, len(dead)+2)
	for _, k := range dead {
		ops = append(ops, chain.BlobOp{Key: k, Delete: true})
	}
	if !keep {
		ops = append(ops, chain.BlobOp{Key: key1(pfxChunk, h), Delete: true}, chain.BlobOp{Key: key1(pfxMeta, h), Delete: true})
	}
	if len(ops) == 0 {
		rep.ChunksKept++
		return nil
	}
	if err := s.space.Write(ctx, ops); err != nil {
		return err
	}
	rep.EdgesRemoved += uint64(len(dead))
	if keep {
		rep.ChunksKept++
		return nil
	}
	s.used.Add(-int64(size))
	s.chunks.Add(-1)
	s.collected.Add(1)
	s.collectedBytes.Add(size)
	rep.ChunksCollected++
	rep.BytesCollected += size
	return nil
}

func (s *Store) ageTombstones(ctx context.Context, rep *GCReport) error {
	cutoff := s.now().Add(-TombstoneTTL)
	var old [][]byte
	err := s.space.Scan([]byte{pfxTomb}, nil, true, func(it chain.BlobItem) bool {
		in, err := DecodeIntent(it.Value)
		if err != nil || in.IssuedAt.Before(cutoff) {
			old = append(old, bytes.Clone(it.Key))
		}
		return len(old) < chain.MaxBlobWriteOps
	})
	if err != nil || len(old) == 0 {
		return err
	}
	ops := make([]chain.BlobOp, len(old))
	for i, k := range old {
		ops[i] = chain.BlobOp{Key: k, Delete: true}
	}
	if err := s.space.Write(ctx, ops); err != nil {
		return err
	}
	rep.TombstonesAged += uint64(len(old))
	return nil
}
