package query

import "time"

// Every number a reviewer cares about, with its unit in its name.

// Coordinator: one query as the querying node runs it.
const (
	// DefaultQueryTimeout bounds a query whose options set none.
	DefaultQueryTimeout = 30 * time.Second
	// MaxQueryTimeout bounds any query's deadline.
	MaxQueryTimeout = 10 * time.Minute
	// DefaultQueryMemoryBytes bounds what the coordinator holds for one
	// query (join tables, aggregate groups, sort buffers, cached rows).
	DefaultQueryMemoryBytes = 64 << 20
	// DefaultMaxRows cuts a result (rows delivered to the caller): a
	// holder cannot make a query stream without end.
	DefaultMaxRows = 1_000_000
	// MaxQueryFragments bounds the fragments of one plan (one per chain
	// instance it reads).
	MaxQueryFragments = 512
	// RunBatchesBuffered is how many row batches a QueryRun buffers for a
	// slow reader before the query waits for it.
	RunBatchesBuffered = 16
	// PullTimeout is how long the coordinator waits for a holder's next
	// batch (or a progress note) before asking again; PullRetries asks
	// give up on the holder (failover, or the fragment is missing).
	PullTimeout = 750 * time.Millisecond
	PullRetries = 4
	// SendTimeout bounds one Send of a query message.
	SendTimeout = 2 * time.Second
	// MaxCallsInFlight bounds the remote fragments this node has open as a
	// coordinator, all queries together.
	MaxCallsInFlight = 4096
	// CallInboxLen is how many undecoded answers one open call holds for
	// its goroutine; more are dropped (the pull is asked again).
	CallInboxLen = 8
)

// Result cache: a small LRU of finished results, keyed by the plan.
const (
	ResultCacheEntries    = 32
	ResultCacheEntryBytes = 1 << 20
	ResultCacheTTL        = 2 * time.Second
)

// Serving: what a holder does for the queries of its peers. Every bound
// is refused and counted beyond it (ServeStats), never queued without one.
const (
	// QueryWorkers run the holder's fragments: scans, filters, partial
	// aggregates. Two, so however many peers ask, queries take at most two
	// cores of this node.
	QueryWorkers = 2
	// ScanSliceRecords is the most records one fragment scans in one
	// worker turn; then it yields to the next fragment in the queue, so a
	// long scan cannot starve the others.
	ScanSliceRecords = 16 << 10
	// MaxScanRecordsPerQuery is one fragment's scan budget: a scan that
	// reaches it stops, and the fragment is reported truncated.
	MaxScanRecordsPerQuery = 8 << 20
	// ScanRecordsPerSecondPerPeer and ScanBurstRecordsPerPeer budget the
	// records this node scans for one peer, all its queries together; a
	// peer in debt waits (its fragments yield) until the budget refills.
	ScanRecordsPerSecondPerPeer = 4 << 20
	ScanBurstRecordsPerPeer     = 8 << 20
	// QueriesPerSecondPerPeer and QueryBurstPerPeer budget the fragments
	// one peer may start here; beyond them a request is refused.
	QueriesPerSecondPerPeer = 50
	QueryBurstPerPeer       = 100
	// MaxQueriesPerPeer and MaxServedQueries bound fragments open at once
	// (running, or waiting for their coordinator's next pull).
	MaxQueriesPerPeer = 16
	MaxServedQueries  = 128
	// MaxServedPeers caps the serving budgets' tables of peers.
	MaxServedPeers = 1024
	// MaxServeDuration bounds one fragment's life on a holder, whatever
	// its coordinator asked.
	MaxServeDuration = 2 * time.Minute
	// ServeIdleTimeout: a fragment whose coordinator stopped pulling for
	// this long is dropped (counted Expired), freeing its state.
	ServeIdleTimeout = 10 * time.Second
	// MaxFragmentMemoryBytes bounds a fragment's state on a holder
	// (partial aggregate groups, latest-N buffers).
	MaxFragmentMemoryBytes = 32 << 20
	// OutboxLen bounds messages waiting for the serving side's sender
	// (resends and progress notes from the handler); more are dropped,
	// and the coordinator's next pull asks again.
	OutboxLen = 512
	// ProgressEvery bounds progress notes: at most one per fragment per
	// this long.
	ProgressEvery = PullTimeout / 2
)

// Wire bounds.
const (
	// BatchMaxBytes and BatchMaxRows bound one batch of rows (a message
	// is at most messaging.MaxMessageBytes, 256 KiB, with its header).
	BatchMaxBytes = 192 << 10
	BatchMaxRows  = 4096
	// MaxRequestBytes bounds a fragment request.
	MaxRequestBytes = 16 << 10
	// MaxExprNodes and MaxExprDepth bound a predicate.
	MaxExprNodes = 256
	MaxExprDepth = 24
	// MaxGroupColumns and MaxAggregates bound a partial aggregate.
	MaxGroupColumns = 8
	MaxAggregates   = 16
	// MaxValueBytes bounds one value on the wire (a snapshot is the
	// largest, below a chain entry's 256 KiB).
	MaxValueBytes = 192 << 10
	// MaxColumns bounds a batch's row width.
	MaxColumns = 64
	// MaxChainNameBytes bounds a chain's name.
	MaxChainNameBytes = 128
	// MaxErrorBytes bounds an error message from a holder.
	MaxErrorBytes = 512
	// MaxStateValues bounds the values one partial distinct or percentile
	// state carries.
	MaxStateValues = 64 << 10
)

// Lineage and the catalogue.
const (
	// MaxLineageDepth bounds a fork-of walk.
	MaxLineageDepth = 64
	// MaxLatest bounds latest(CHAIN, N).
	MaxLatest = 100_000
)
