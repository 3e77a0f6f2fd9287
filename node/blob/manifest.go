package blob

import (
	"fmt"

	"github.com/deck-mesh/deck/node/codec"
)

// A manifest is a blob's table of contents, and its hash is the blob's
// address: the magic, the chunk size, the blob's size in bytes, then its
// refs, 32-byte hashes with no count (the size implies it). A blob of at
// most InlineChunkRefs chunks lists its chunks' hashes; a larger one lists
// its index chunks', each a chunk holding IndexChunkRefs chunk hashes (the
// last one fewer). Everything about the layout follows from the size, so
// each content has exactly one manifest, and a manifest that claims a size
// is checked against the bytes it has before anything is allocated.
//
//	magic "deck-blob-v1" | uvarint chunk size | uvarint size | refs (32 bytes each)
const manifestMagic = "deck-blob-v1"

const manifestHeaderMaxBytes = len(manifestMagic) + 2*10

// Manifest is a decoded manifest.
type Manifest struct {
	Size uint64
	// Refs are the chunk hashes (Indexed false) or the index chunk hashes
	// (Indexed true), in order.
	Refs []Hash
}

// ChunkCount is the number of data chunks of a blob of size bytes.
func ChunkCount(size uint64) int { return int((size + ChunkBytes - 1) / ChunkBytes) }

// ChunkLen is the length of data chunk i of a blob of size bytes.
func ChunkLen(size uint64, i int) int {
	start := uint64(i) * ChunkBytes
	if start >= size {
		return 0
	}
	return int(min(ChunkBytes, size-start))
}

// refCount is how many refs a manifest of a blob of size bytes lists.
func refCount(size uint64) int {
	n := ChunkCount(size)
	if n <= InlineChunkRefs {
		return n
	}
	return (n + IndexChunkRefs - 1) / IndexChunkRefs
}

// Chunks is the number of data chunks.
func (m *Manifest) Chunks() int { return ChunkCount(m.Size) }

// Indexed reports whether Refs are index chunks.
func (m *Manifest) Indexed() bool { return m.Chunks() > InlineChunkRefs }

// IndexLen is the number of chunk refs index chunk i holds.
func (m *Manifest) IndexLen(i int) int {
	n := m.Chunks() - i*IndexChunkRefs
	return max(0, min(n, IndexChunkRefs))
}

// Encode is the manifest's canonical encoding.
func (m *Manifest) Encode() []byte {
	w := codec.NewWriter(make([]byte, 0, manifestHeaderMaxBytes+len(m.Refs)*HashBytes), ErrMalformed)
	w.Raw([]byte(manifestMagic))
	w.Uvarint(ChunkBytes)
	w.Uvarint(m.Size)
	for i := range m.Refs {
		w.Raw(m.Refs[i][:])
	}
	return w.B
}

// Hash is the blob's address: BLAKE3-256 of the encoding.
func (m *Manifest) Hash() Hash { return Sum(m.Encode()) }

// Check refuses a manifest its size does not describe.
func (m *Manifest) Check() error {
	if m.Size > MaxBlobBytes {
		return fmt.Errorf("%w: manifest claims %d bytes, at most %d", ErrInvalid, m.Size, MaxBlobBytes)
	}
	if want := refCount(m.Size); len(m.Refs) != want {
		return fmt.Errorf("%w: a %d-byte blob has %d refs, not %d", ErrInvalid, m.Size, want, len(m.Refs))
	}
	return nil
}

// DecodeManifest parses a manifest from the wire or the disk: never more
// than MaxManifestBytes, the size at most MaxBlobBytes, exactly the refs
// the size implies, no trailing bytes. It allocates only for the refs
// present in b.
func DecodeManifest(b []byte) (*Manifest, error) {
	if len(b) > MaxManifestBytes {
		return nil, fmt.Errorf("%w: manifest is %d bytes, at most %d", ErrMalformed, len(b), MaxManifestBytes)
	}
	r := codec.NewReader(b, ErrMalformed)
	if magic := r.Take(len(manifestMagic)); r.Err() == nil && string(magic) != manifestMagic {
		r.Failf(codec.ErrMalformed, "not a manifest")
	}
	if cs := r.Uvarint(); r.Err() == nil && cs != ChunkBytes {
		r.Failf(codec.ErrMalformed, "chunk size %d, this build reads %d", cs, ChunkBytes)
	}
	m := &Manifest{Size: r.Uvarint()}
	if r.Err() == nil && m.Size > MaxBlobBytes {
		r.Failf(codec.ErrTooLarge, "manifest claims %d bytes, at most %d", m.Size, MaxBlobBytes)
	}
	if r.Err() != nil {
		return nil, r.Err()
	}
	n := refCount(m.Size)
	if r.Len() != n*HashBytes {
		r.Failf(codec.ErrMalformed, "a %d-byte blob has %d refs: %d bytes, not %d", m.Size, n, n*HashBytes, r.Len())
		return nil, r.Err()
	}
	m.Refs = make([]Hash, n)
	for i := range m.Refs {
		copy(m.Refs[i][:], r.Take(HashBytes))
	}
	if err := r.Finish(); err != nil {
		return nil, err
	}
	return m, nil
}

// DecodeIndex parses index chunk i of m (its bytes already verified against
// their hash): exactly IndexLen(i) refs.
func (m *Manifest) DecodeIndex(i int, b []byte) ([]Hash, error) {
	if !m.Indexed() || i < 0 || i >= len(m.Refs) {
		return nil, fmt.Errorf("%w: no index chunk %d", ErrInvalid, i)
	}
	n := m.IndexLen(i)
	if len(b) != n*HashBytes {
		return nil, fmt.Errorf("%w: index chunk %d is %d bytes, not %d", ErrMalformed, i, len(b), n*HashBytes)
	}
	out := make([]Hash, n)
	for k := range out {
		copy(out[k][:], b[k*HashBytes:])
	}
	return out, nil
}

// EncodeIndex is the bytes of an index chunk listing refs.
func EncodeIndex(refs []Hash) []byte {
	b := make([]byte, 0, len(refs)*HashBytes)
	for i := range refs {
		b = append(b, refs[i][:]...)
	}
	return b
}
