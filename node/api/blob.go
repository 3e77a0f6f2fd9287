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
	// GC asks every datafort node to collect unreferenced chunks.
	GC(ctx context.Context) ([]BlobGC, error)
}

// BlobClient is a Client with a datafort surface (node.Client is one); a
// console type-asserts it.
type BlobClient interface {
	Blobs() Blobs
}
