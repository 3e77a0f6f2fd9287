package api

import (
	"context"
	"encoding/hex"
	"io"
	"time"
)

// BlobHash is a blob's address: the BLAKE3-256 of its manifest. It prints
// as 64 lowercase hex digits.
type BlobHash [32]byte

func (h BlobHash) String() string { return hex.EncodeToString(h[:]) }

// Short is the first 12 hex digits, for tables.
func (h BlobHash) Short() string { return hex.EncodeToString(h[:6]) }

// IsZero reports whether h is unset (no parent).
func (h BlobHash) IsZero() bool { return h == BlobHash{} }

// BlobChunkBytes is the size of every chunk of a blob but its last (the
// store's unit: node/blob.ChunkBytes); MaxBlobReplicas bounds a blob's
// desired replicas.
const (
	BlobChunkBytes  = 128 << 10
	MaxBlobReplicas = 16
	// BlobHotReadsPerSecond is the heat (chunk reads per second) from which
	// a reader draws a gravity replica (node/blob.GravityHotReadsPerSecond);
	// screens mark blobs this hot.
	BlobHotReadsPerSecond = 2.0
)

// BlobChunks is how many chunks a blob of size bytes has.
func BlobChunks(size uint64) int { return int((size + BlobChunkBytes - 1) / BlobChunkBytes) }

// BlobCopy is one node's answer about a blob it holds or is fetching:
// bytes stored of the total, its role there ("placed", "gravity",
// "overflow", "staging") and its heat there.
type BlobCopy struct {
	Node     NodeID
	Fetching bool
	Role     string
	Stored   uint64
	Total    uint64
	Heat     float64
}

// BlobInfo is one blob as the mesh knows it: its content, its signed intent
// (desired replicas, pin, name, parent, who signed it and when) and where
// it lives.
type BlobInfo struct {
	Hash     BlobHash
	Size     uint64
	Chunks   int
	Replicas int // desired holders
	Holders  []NodeID
	// Fetching are nodes fetching it now (a replication in progress).
	Fetching []NodeID
	Heat     float64 // chunk reads per second over its holders, decaying
	Pinned   bool
	Removed  bool
	Name     string
	Parent   BlobHash // the blob it was derived from; zero: none
	Operator NodeID   // who signed the newest intent
	IssuedAt time.Time
	StoredAt time.Time // when the earliest holder that answered stored it
	// Copies are the answers of the nodes asked (Stat: holders and nodes
	// fetching it), sorted by node; empty from List.
	Copies []BlobCopy
}

// BlobPutOptions shape a put. Zero Replicas means the mesh default.
type BlobPutOptions struct {
	Replicas int
	Pin      bool
	Name     string
	Parent   BlobHash
	// Progress hears bytes stored locally, then bytes replicated (total is
	// the blob's size times the replicas still wanted); may be nil.
	Progress func(phase string, done, total int64)
}

// BlobGC is one datafort node's answer to a GC request.
type BlobGC struct {
	Node            NodeID
	ChunksKept      uint64
	ChunksCollected uint64
	BytesCollected  uint64
	Err             string
}

// Blobs is the datafort surface of a Client: content-addressed blobs on
// the mesh. Put, Pin, Unpin and Remove sign an intent with the client's
// operator key (ErrPermission without one).
type Blobs interface {
	// Put stores r as a blob on the mesh and returns once Replicas
	// datafort nodes hold it (each fsynced).
	Put(ctx context.Context, r io.Reader, o BlobPutOptions) (BlobInfo, error)
	// Get writes the blob's bytes to w in order, verified chunk by chunk,
	// from the nearest holders (continuing with another when one fails).
	Get(ctx context.Context, h BlobHash, w io.Writer, progress func(done, total int64)) (BlobInfo, error)
	// Stat asks every datafort node about the blob.
	Stat(ctx context.Context, h BlobHash) (BlobInfo, error)
	// List asks every datafort node for the blobs it holds, merged.
	List(ctx context.Context) ([]BlobInfo, error)
	Pin(ctx context.Context, h BlobHash) (BlobInfo, error)
	Unpin(ctx context.Context, h BlobHash) (BlobInfo, error)
	// Remove deletes the blob everywhere; a pinned blob only with force.
	Remove(ctx context.Context, h BlobHash, force bool) error
	// SetReplicas sets how many datafort nodes should hold the blob
	// (1..MaxBlobReplicas).
	SetReplicas(ctx context.Context, h BlobHash, n int) (BlobInfo, error)
	// GC asks every datafort node to collect unreferenced chunks.
	GC(ctx context.Context) ([]BlobGC, error)
	// Commit applies a blob verb's action (pin-blob, unpin-blob,
	// set-blob-replicas) bound to the preview its operator confirmed: it
	// projects again and, when the copies that move differ, returns a
	// *PreviewChangedError with the new preview and signs nothing.
	Commit(ctx context.Context, confirmed BlastRadius) (BlobInfo, error)
}

// BlobClient is a Client with a datafort surface (node.Client is one); a
// console type-asserts it.
type BlobClient interface {
	Blobs() Blobs
}
