package chain

import "time"

// Every number a reviewer cares about lives here, with its unit in its name.
// Badger tuning constants live in options.go beside the table that justifies
// them.

// Writes and group commit.
const (
	// WriteQueueLen bounds requests waiting for the committer. AppendLog and
	// AppendFailure are refused (and counted) when it is full rather than
	// block a daemon that logs.
	WriteQueueLen = 8192
	// MaxCommitRecords and MaxCommitBytes bound one group-commit cycle, so a
	// burst cannot hold every waiter hostage behind one enormous fsync.
	MaxCommitRecords = 8192
	MaxCommitBytes   = 8 << 20
	// MaxAppendRecords bounds one Append call.
	MaxAppendRecords = 8192
	// MaxEntryBytes bounds one stored record (a log line, a failure, a
	// snapshot, an admin event). Snapshots travel over the mesh, so the
	// mesh's message limit is the natural ceiling.
	MaxEntryBytes = 256 << 10
	// txnSlackBytes is added to Badger's own per-entry estimate (key + value
	// + 2 meta bytes + 10 version bytes) so our batch splitting never hits
	// ErrTxnTooBig.
	txnSlackBytes = 16
)

// Tails.
const (
	// TailBufferLen is a Tail's channel size: how far a live subscriber may
	// fall behind before it is switched back to reading from disk.
	TailBufferLen = 256
	// TailBackfillChunkRecords is how many records one backfill read pulls.
	TailBackfillChunkRecords = 256
)

// Retention defaults (Config overrides them).
const (
	DefaultLogsMaxCount          = 200_000
	DefaultLogsMaxAge            = 24 * time.Hour
	DefaultFailuresMaxCount      = 20_000
	DefaultFailuresMaxAge        = 7 * 24 * time.Hour
	DefaultSnapshotsPerNodeCount = 720 // 6 minutes at one change per 500 ms tick, or days of quiet
	DefaultSnapshotsMaxAge       = 24 * time.Hour
	// DefaultRetentionInterval is how often the retention sweep runs.
	DefaultRetentionInterval = 30 * time.Second
	// RetentionDeleteChunkRecords bounds one retention transaction group.
	RetentionDeleteChunkRecords = 2048
	// MaxHistoryRecords bounds one History query.
	MaxHistoryRecords = 4096
)

// Value-log garbage collection.
const (
	DefaultValueLogGCInterval = 5 * time.Minute
	// ValueLogGCDiscardRatio: rewrite a value-log file once half of it is
	// garbage; lower ratios rewrite more often for little space.
	ValueLogGCDiscardRatio = 0.5
	// MaxValueLogGCRunsPerTick stops one tick from monopolising the disk.
	MaxValueLogGCRunsPerTick = 8
)

// Admin ledger.
const (
	// MaxEventBytes bounds one admin event.
	MaxEventBytes = 64 << 10
	// MaxInsertEvents bounds one Insert call.
	MaxInsertEvents = 4096
	// ledgerOrderRecordBytes is issued_at(8) + id(32) + raw hash(32) + link(32).
	ledgerOrderRecordBytes = 8 + 32 + 32 + 32
	// MaxHandoffEvents and MaxHandoffBytes bound the decoded events the
	// ledger holds for its Fold between insert and fold (see
	// EventMeta.Decoded). A fold that lags further decodes the rest from
	// their bytes; the bytes bound counts each event's raw size, a proxy
	// for its decoded size.
	MaxHandoffEvents = 1024
	MaxHandoffBytes  = 4 << 20
	// MaxAttachmentBytes bounds what is stored and pulled beside one event
	// (node/command/chainfold's receipts: four of them with their
	// certificates take about 1.6 KiB).
	MaxAttachmentBytes = 4 << 10
)

// Digest buckets: power-of-two widths in milliseconds so a bucket's start is
// issued_at with its low bits cleared. Each drill-down step splits a bucket
// into at most 1<<DigestLevelShiftBits children.
const (
	DigestMinWidthShiftBits = 12 // 4.096 s
	DigestLevelShiftBits    = 6  // 64 children per step
	DigestMaxWidthShiftBits = 48 // ~8,900 years: one bucket covers every plausible issue time
)

// Anti-entropy.
const (
	DefaultAntiEntropyInterval = 2 * time.Second
	// AERequestTimeout is how long a round waits for one answer: datagrams
	// get lost, and the next round retries.
	AERequestTimeout = 3 * time.Second
	// AEMaxRoundRequests bounds the digest/ids requests of one round.
	AEMaxRoundRequests = 64
	// AESmallBucketEvents: a differing bucket with at most this many events
	// on the peer is listed id by id instead of split further.
	AESmallBucketEvents = 32
	// AEMaxBucketsPerMessage bounds a digest response (64 children plus the
	// top-level summary fit far below it).
	AEMaxBucketsPerMessage = 1024
	// AEMaxIDsPerMessage bounds an id listing (40 bytes each).
	AEMaxIDsPerMessage = 2048
	// AEMaxPullEvents and AEMaxPullBytes bound one pull response; a round
	// pulls at most AEMaxRoundPullEvents and leaves the rest to the next.
	AEMaxPullEvents      = 256
	AEMaxPullBytes       = 192 << 10
	AEMaxRoundPullEvents = 4096
	// AEQueueLen bounds requests waiting for the service's worker, all
	// peers together; beyond it requests are dropped and counted (the
	// handler must never block).
	AEQueueLen = 256
	// AEServeBurstRequestsPerPeer and AEServeRequestsPerSecondPerPeer
	// budget the requests this node answers for one peer: a burst of one
	// full round (AEMaxRoundRequests digest and id requests plus the pulls
	// of AEMaxRoundPullEvents), refilled at two full rounds a second, far
	// above the one round per interval (plus hinted ones) an honest peer runs.
	AEServeBurstRequestsPerPeer     = AEMaxRoundRequests + AEMaxRoundPullEvents/AEMaxPullEvents
	AEServeRequestsPerSecondPerPeer = 2 * AEServeBurstRequestsPerPeer
	// AEServeBurstBytesPerPeer and AEServeBytesPerSecondPerPeer budget the
	// answer bytes for one peer: a burst of one round's pulls, refilled at
	// 1 MiB/s. A peer is served while its byte budget is not in debt, so a
	// queued request waits at most one answer's bytes of refill (~0.2 s),
	// well inside AERequestTimeout.
	AEServeBurstBytesPerPeer     = AEMaxRoundPullEvents / AEMaxPullEvents * AEMaxPullBytes
	AEServeBytesPerSecondPerPeer = 1 << 20
	// AEMaxQueuedPerPeer bounds one peer's requests waiting for its budget;
	// beyond it they are refused and counted (Throttled). An honest
	// requester has one request in flight per round.
	AEMaxQueuedPerPeer = 8
	// AEMaxServedPeers caps the serving budgets' tables of peers.
	AEMaxServedPeers = 1024
	// AEHintsPerSecondPerPeer and AEHintBurstPerPeer budget the hints
	// heeded from one peer (each can start a round against it); honest
	// senders send at most one per AEHintMinInterval (5 a second).
	AEHintsPerSecondPerPeer = 5
	AEHintBurstPerPeer      = 4
	// AEHintQueueLen bounds hints waiting for the serving goroutine.
	AEHintQueueLen = 64
	// AEMaxPending bounds outstanding requests awaiting an answer.
	AEMaxPending = 64
	// AEHintMinInterval rate-limits "I have something new" hints.
	AEHintMinInterval = 200 * time.Millisecond
	// AESendTimeout bounds one Send (session setup included).
	AESendTimeout = 2 * time.Second
	// AEMaxRoundRefusals: once this many pulled events were refused in a
	// round, the round pulls no more from that peer. Judging an event costs
	// signature checks; a peer serving junk gets fewer than
	// AEMaxRoundRefusals + AEMaxPullEvents events judged per round, not
	// AEMaxRoundPullEvents.
	AEMaxRoundRefusals = 64
)

// Fold.
const (
	// DefaultFoldCheckpointEvery: keep a clone of the folded state every so
	// many events, so a late event refolds from the nearest checkpoint.
	DefaultFoldCheckpointEvery = 256
	// MaxFoldCheckpoints bounds the checkpoints kept; when full, every other
	// one is dropped (older history gets sparser, never unbounded).
	MaxFoldCheckpoints = 64
)

// Log and failure record codecs.
const (
	MaxDaemonNameBytes    = 128
	MaxLogTextBytes       = 8 << 10
	MaxFailureSourceBytes = 64
	MaxFailureReasonBytes = 8 << 10
	MaxFilterMatchBytes   = 256
)

// Subscriptions.
const (
	// DefaultLeaseTTL is how long a lease lives without renewal.
	DefaultLeaseTTL = 10 * time.Second
	// DefaultLeaseRenewInterval is how often a client renews (a third of the
	// TTL, so two lost renewals in a row do not end it).
	DefaultLeaseRenewInterval = 3 * time.Second
	// MaxLeases bounds leases on one node; MaxLeasesPerClient bounds one
	// client node's share so one noisy console cannot take them all.
	MaxLeases          = 256
	MaxLeasesPerClient = 16
	// PushMaxRecords and PushMaxBytes bound one push message.
	PushMaxRecords = 256
	PushMaxBytes   = 128 << 10
	// DefaultPushesPerSecond bounds the push rate of one lease (token bucket
	// with a burst of the same size).
	DefaultPushesPerSecond = 20
	// LeaseMaxBacklogRecords: when a lease is further behind its log's head
	// than this, the oldest unsent records are dropped and counted.
	LeaseMaxBacklogRecords = 16_384
	// DefaultLogBackfillRecords is how many recent log records a new logs
	// subscription starts with.
	DefaultLogBackfillRecords = 256
	// MaxFilteredBackfillScanRecords bounds how far back a filtered logs
	// subscription looks for its backfill matches (one lease's disk read):
	// the per-lease scan budget. A scan that reaches it stops and is counted
	// (BackfillTruncated); the lease then starts from the matches found.
	MaxFilteredBackfillScanRecords = LeaseMaxBacklogRecords
	// LeaseSetupsPerSecondPerClient and LeaseSetupBurstPerClient budget the
	// lease setups (and rewinds) one client node may ask of this node, since
	// each can cost a backfill scan of MaxFilteredBackfillScanRecords. The
	// burst lets a console open its whole share of leases at once; beyond
	// it setups are refused and counted (RateLimited), and the client's
	// next renewal, one RenewInterval later, asks again.
	LeaseSetupsPerSecondPerClient = 2
	LeaseSetupBurstPerClient      = MaxLeasesPerClient
	// MaxLeaseClients caps the setup budget's table of client nodes.
	MaxLeaseClients = 1024
	// LeaseSetupWorkers run lease setups (log bounds, backfill scans) off
	// the receive path: one, so however many clients ask, scans take at
	// most one core (a full scan is ~40 ms, BENCHMARKS.md). LeaseSetupQueueLen
	// bounds the setups waiting for it (a full queue is ~2.5 s of scans,
	// well inside LeaseTTL). A setup that finds the queue full is refused
	// and counted (SetupQueueFull): the handler never waits.
	LeaseSetupWorkers  = 1
	LeaseSetupQueueLen = 64
	// SubscriberStreamLen is the client stream's buffer.
	SubscriberStreamLen = 2048
	// MaxClientSubscriptions bounds live subscriptions of one client.
	MaxClientSubscriptions = 64
	// MaxSubscriptionNodes bounds the nodes one subscription follows.
	MaxSubscriptionNodes = 4096
	// SubscribeSendTimeout bounds one lease or push Send.
	SubscribeSendTimeout = 2 * time.Second
	// RewindQuietInterval: a renewal whose cursor is behind the server's is
	// treated as a loss (and the lease rewound) only when nothing was pushed
	// for this long, so pushes still in flight do not cause rewinds.
	RewindQuietInterval = 1 * time.Second
)
