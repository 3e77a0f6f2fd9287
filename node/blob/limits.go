package blob

import "time"

// Every number a reviewer cares about, with its unit in its name.

// Content addressing.
const (
	// ChunkBytes is the size of every chunk but a blob's last. 128 KiB:
	//   - a chunk and its response header must fit one mesh message
	//     (messaging.MaxMessageBytes, 256 KiB); 128 KiB is the largest power
	//     of two that does, so index chunks hold a whole number of refs;
	//   - a chunk is ~94 datagrams: one lost datagram costs one chunk's
	//     resend, and four chunks in flight per source stay far inside the
	//     transport's per-peer reassembly budget (2 MiB, 8 messages);
	//   - its BLAKE3 is ~30 µs on this machine's AVX-512 (BENCHMARKS.md), so
	//     verifying on every read and write is cheap next to moving it;
	//   - in Badger it is one value-log entry (above the 1 KiB value
	//     threshold): 127 of them per 16 MiB value-log file, and a
	//     transaction counts only its pointer, so several chunks and their
	//     records commit atomically together;
	//   - a manifest lists one 32-byte hash per chunk: 256 KiB of refs for
	//     1 GiB, which is why large blobs keep their refs in index chunks.
	ChunkBytes = 128 << 10
	// HashBytes is a BLAKE3-256 digest.
	HashBytes = 32
	// InlineChunkRefs is the most chunk refs a manifest lists itself (blobs
	// up to 256 MiB, a 64 KiB manifest); larger blobs list index chunks.
	InlineChunkRefs = 2048
	// IndexChunkRefs is how many chunk refs one index chunk holds: a full
	// chunk of hashes.
	IndexChunkRefs = ChunkBytes / HashBytes
	// MaxIndexChunks bounds a manifest's index chunks (a 64 KiB manifest).
	MaxIndexChunks = 2048
	// MaxBlobBytes is the largest blob: 2048 index chunks of 4096 chunks of
	// 128 KiB, 1 TiB. A manifest claiming more is refused before anything
	// is allocated for it.
	MaxBlobBytes = uint64(MaxIndexChunks) * IndexChunkRefs * ChunkBytes
	// MaxManifestBytes bounds an encoded manifest: its header and at most
	// max(InlineChunkRefs, MaxIndexChunks) refs.
	MaxManifestBytes = manifestHeaderMaxBytes + max(InlineChunkRefs, MaxIndexChunks)*HashBytes
)

// Intents.
const (
	// MaxNameBytes bounds a blob's name (a label for people, not a key).
	MaxNameBytes = 128
	// DefaultReplicas is how many datafort nodes hold a blob unless the
	// put says otherwise: it survives the loss of one.
	DefaultReplicas = 2
	// MaxReplicas bounds a blob's desired replicas.
	MaxReplicas = 16
	// IntentClockSkew is how far in the future an intent's issue time may
	// be; later ones are refused (they would win every merge).
	IntentClockSkew = time.Minute
	// TombstoneTTL is how long a removed blob's signed removal is kept, so
	// a replica that was away (a partition, a node down) is told and drops
	// its copy instead of spreading it again.
	TombstoneTTL = 7 * 24 * time.Hour
)

// Store.
const (
	// MaxEdgesPerWrite bounds one atomic group of reference edges written
	// or removed when a blob is committed, renamed from staging, or dropped.
	MaxEdgesPerWrite = 512
	// GCBatchChunks is how many chunks one GC step judges under one scan.
	GCBatchChunks = 512
	// DefaultBudgetBytes is a datafort node's disk budget for chunks when
	// none is configured.
	DefaultBudgetBytes = 8 << 30
	// StagingBudgetBytes is the budget of a node that is no datafort (a
	// console staging a put): the largest blob it can stage.
	StagingBudgetBytes = MaxBlobBytes
	// ChunkLockStripes serialise writers and the GC per chunk hash.
	ChunkLockStripes = 64
)
