package blob

import (
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/gossip"
)

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
	ChunkBytes = api.BlobChunkBytes
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
	MaxReplicas = api.MaxBlobReplicas
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

// Serving requests from peers (ChanBlob).
const (
	// ServeWorkers answer requests: two, so on this project's 2-core
	// machines a transfer leaves a core for everything else.
	ServeWorkers = 2
	// ServeQueueLen bounds requests waiting for the workers, all peers
	// together; ServeMaxQueuedPerPeer one peer's share. An honest fetcher
	// has at most FetchWindowChunks requests in flight per fetch.
	ServeQueueLen         = 1024
	ServeMaxQueuedPerPeer = 64
	// ServeRequestsPerSecondPerPeer and ServeRequestBurstPerPeer budget
	// the requests answered for one peer: a fetch at 400 MB/s asks ~3,000
	// chunks a second.
	ServeRequestsPerSecondPerPeer = 4096
	ServeRequestBurstPerPeer      = 256
	// ServeBytesPerSecondPerPeer and ServeByteBurstPerPeer budget the chunk
	// bytes served to one peer: a peer is served while it is not in debt,
	// so one reader gets at most this rate and the workers turn to others.
	ServeBytesPerSecondPerPeer = 512 << 20
	ServeByteBurstPerPeer      = 32 << 20
	// ServeMaxPeers caps the budget tables.
	ServeMaxPeers = 1024
	// IntentChecksPerSecondPerPeer and IntentCheckBurstPerPeer budget the
	// intent signatures (ed25519, ~50 µs) one peer can make this node
	// check.
	IntentChecksPerSecondPerPeer = 64
	IntentCheckBurstPerPeer      = 128
	// MaxCalls bounds this node's own requests awaiting an answer.
	MaxCalls = 4096
	// MaxCorruptTracked bounds the corrupt chunks waiting for repair.
	MaxCorruptTracked = 1024
	// MaxConcurrentFetches bounds replications into this store at once;
	// more are answered busy and asked again by the policy.
	MaxConcurrentFetches = 4
)

// Fetching.
const (
	// FetchWindowChunks is how many chunk requests one fetch keeps in
	// flight, FetchWindowPerSource of them at one holder: 4 × 128 KiB is
	// half of the transport's per-peer bulk reassembly share, and 16 in
	// all is 2 MiB, half of a socket buffer.
	FetchWindowChunks    = 16
	FetchWindowPerSource = 4
	// FetchChunkAttempts: a chunk asked this often without a good answer
	// fails the fetch.
	FetchChunkAttempts = 8
	// FetchSourceFailures: a holder that failed this many requests in a
	// row is left for the rest of the fetch.
	FetchSourceFailures = 3
	// FetchSourceRefills: how many times a fetch whose holders all failed
	// asks the mesh for others before it gives up.
	FetchSourceRefills = 3
	// FetchJobTimeout bounds one replication into this store.
	FetchJobTimeout = 6 * time.Hour
	// MaxLocateQueries bounds the nodes asked where a blob is.
	MaxLocateQueries = 64
	// DefaultRequestTimeout bounds one request and its answer.
	DefaultRequestTimeout = 3 * time.Second
	// DefaultChunkTimeoutMin is the least a chunk request waits; it waits
	// 8× the fetch's smoothed chunk latency when that is longer.
	DefaultChunkTimeoutMin = 500 * time.Millisecond
	// MaxChunkTimeout caps the adaptive chunk timeout.
	MaxChunkTimeout = 5 * time.Second
)

// Policy.
const (
	// DefaultReconcileInterval is how often the policy looks at the blobs
	// held here (replicas, drains, heat, overflow).
	DefaultReconcileInterval = 2 * time.Second
	// DefaultSettledRecheckInterval is how long a blob found fully placed
	// skips the policy's rounds while the placement inputs and its intent
	// stay the same (a view change brings it back at once).
	DefaultSettledRecheckInterval = 30 * time.Second
	// MaxSettledBlobs bounds the settled blobs remembered (about 100 bytes
	// each).
	MaxSettledBlobs = 1 << 16
	// ReconcileBlobsPerRound bounds the blobs one round looks at; a larger
	// store is covered over several rounds.
	ReconcileBlobsPerRound = 64
	// DefaultGCInterval is how often the GC runs on its own.
	DefaultGCInterval = time.Minute
	// MaxBlobsPerSnapshot bounds the blobs a node publishes: the gossip
	// codec's bound.
	MaxBlobsPerSnapshot = gossip.MaxBlobsPerSnapshot
	// HighWaterFraction and LowWaterFraction of the budget: past the high
	// mark a node overflows its coldest blobs onto peers until it is under
	// the low one, and takes no new replicas meanwhile.
	HighWaterFraction = 0.9
	LowWaterFraction  = 0.8
	// GravityHotReadsPerSecond: a reader reading a blob at this rate (chunk
	// reads per second, decaying) draws a replica to the datafort nearest
	// to it; GravityColdReadsPerSecond: a gravity replica read slower than
	// this (on the node holding it) is shed.
	GravityHotReadsPerSecond  = api.BlobHotReadsPerSecond
	GravityColdReadsPerSecond = 0.2
	// ShedGrace: a replica stored this recently is not shed as surplus
	// (a drain or an overflow sheds at once): nodes whose views disagree
	// for a moment would otherwise pass a blob back and forth.
	ShedGrace = 10 * time.Second
	// GravityMinAge: a gravity replica is kept at least this long.
	GravityMinAge = 2 * time.Minute
)

// Client operations.
const (
	// MaxListPages bounds the pages a list reads from one node (64 blobs
	// each).
	MaxListPages = 1024
	// MaxVerifiedIntents bounds the intents remembered as verified (about
	// 200 bytes each).
	MaxVerifiedIntents = 1024
	// MaxGCWaiters bounds the peers' GC requests waiting for the next run
	// (each holds a goroutine until it is answered).
	MaxGCWaiters = 16
	// GCRequestTimeout bounds a GC request (a full GC of a large store).
	GCRequestTimeout = time.Minute
)

// MaxSnapshotScanPages bounds the records a snapshot reads to pick the
// blobs it publishes (64 per page): a node holding more counts them all
// only up to this many pages.
const MaxSnapshotScanPages = 64

// SnapshotBlobsRefresh is how long the published blob list is reused
// before the records are scanned again.
const SnapshotBlobsRefresh = time.Second
