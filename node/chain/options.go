package chain

import (
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Badger tuning. A 9-node demo runs nine databases in one process, so every
// per-database fixed cost is paid nine times; the records are small (log
// lines, failures, admin events of a few hundred bytes; snapshots of a few
// KiB) and the write rate is modest. Badger's defaults target a server with
// gigabytes to spare (64 MiB memtables ×5, 256 MiB block cache, 1 GiB
// value-log files).
//
//	option               value    default   why
//	MemTableSize         4 MiB    64 MiB    the skiplist arena is allocated whole (plus 30% batch
//	                                        headroom) and its WAL is mmapped at twice the size;
//	                                        4 MiB still holds ~15,000 log records before a flush
//	NumMemtables         2        5         one mutable + one flushing; more only buffers bursts
//	                                        that our group commit already absorbs
//	NumLevelZeroTables   3        5         fewer L0 tables to merge on reads; compaction is cheap
//	NumLevelZeroStall    8        15        stall sooner rather than pile up unmerged tables
//	BaseTableSize        1 MiB    2 MiB     smaller SSTs: less to rewrite per compaction
//	BaseLevelSize        4 MiB    10 MiB    with ~10 MiB per node there is no need for big levels
//	BlockCacheSize       4 MiB    256 MiB   hot data is the log tail, which is still in the memtable;
//	                                        the cache is needed because blocks are compressed
//	IndexCacheSize       2 MiB    0 (all)   bound table indexes and bloom filters instead of pinning
//	                                        every one in memory as the database grows
//	ValueLogFileSize     16 MiB   1 GiB     ≤ 64 MiB per the design; small files let value-log GC
//	                                        reclaim expired snapshots in small steps
//	ValueThreshold       1 KiB    1 MiB     log lines and events stay inline in the LSM (one read,
//	                                        deleted by compaction); snapshot bodies go to the value
//	                                        log, kept out of the memtable arena
//	NumCompactors        2        4         Badger's minimum above zero (1 is rejected, 0 never
//	                                        compacts, so deletes would never free space)
//	NumVersionsToKeep    1        1         records are immutable; old versions are only garbage
//	Compression          Snappy   Snappy    log text compresses ~3×, at negligible CPU
//	SyncWrites           true     false     an acknowledged append must survive kill -9 and power
//	                                        loss; group commit shares one fsync among all waiters
//	DetectConflicts      false    true      one committer goroutine is the only writer: conflict
//	                                        tracking would cost memory for nothing
//	MetricsEnabled       false    true      expvar metrics are process-global; nine databases in
//	                                        one process would only overwrite each other's
//	NumGoroutines        2        8         only used by Badger's Stream framework, which we do not
//	                                        use; fewer idle goroutines
//	Logger               quiet    stderr    the TUI owns the terminal; warnings go to Config.Logf
const (
	BadgerMemTableBytes        = 4 << 20
	BadgerNumMemtables         = 2
	BadgerNumLevelZeroTables   = 3
	BadgerNumLevelZeroStall    = 8
	BadgerBaseTableBytes       = 1 << 20
	BadgerBaseLevelBytes       = 4 << 20
	BadgerBlockCacheBytes      = 4 << 20
	BadgerIndexCacheBytes      = 2 << 20
	BadgerValueLogFileBytes    = 16 << 20
	BadgerValueThresholdBytes  = 1 << 10
	BadgerNumCompactors        = 2
	BadgerNumGoroutines        = 2
	badgerMaxValueLogFileBytes = 64 << 20 // the design's ceiling, checked by a test
)

// Retention bounds one log by record count and by age. Zero fields mean
// "no bound on this axis".
type Retention struct {
	MaxCount uint64
	MaxAge   time.Duration
}

// Config configures Open. The zero value of every field means its default.
type Config struct {
	// Dir is the database directory (created if missing). Required.
	Dir string
	// Now is the clock for record times, retention and leases; tests inject
	// one. Default time.Now.
	Now func() time.Time
	// Logs, Failures and Snapshots bound those logs. Snapshots.MaxCount is
	// per node. The admin log has no retention: it is never truncated.
	Logs      Retention
	Failures  Retention
	Snapshots Retention
	// RetentionInterval is the retention sweep period; negative disables the
	// background sweep (call Sweep yourself).
	RetentionInterval time.Duration
	// ValueLogGCInterval is the value-log GC period; negative disables it.
	ValueLogGCInterval time.Duration
	// InMemory runs Badger without a disk (badger.Options.InMemory): the
	// same engine, nothing written, everything lost on Close. For large
	// in-process simulations, where a Badger directory per node would not
	// fit; Dir must be empty. Its smaller footprint is the in-memory table
	// below.
	InMemory bool
	// Logf receives Badger's warnings and errors. Default: discarded (the
	// TUI owns the terminal; failures still surface as returned errors).
	Logf func(format string, args ...any)
}

func (c Config) withDefaults() Config {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logs == (Retention{}) {
		c.Logs = Retention{MaxCount: DefaultLogsMaxCount, MaxAge: DefaultLogsMaxAge}
	}
	if c.Failures == (Retention{}) {
		c.Failures = Retention{MaxCount: DefaultFailuresMaxCount, MaxAge: DefaultFailuresMaxAge}
	}
	if c.Snapshots == (Retention{}) {
		c.Snapshots = Retention{MaxCount: DefaultSnapshotsPerNodeCount, MaxAge: DefaultSnapshotsMaxAge}
	}
	if c.RetentionInterval == 0 {
		c.RetentionInterval = DefaultRetentionInterval
	}
	if c.ValueLogGCInterval == 0 {
		c.ValueLogGCInterval = DefaultValueLogGCInterval
	}
	return c
}

// In-memory Badger (Config.InMemory), for a thousand simulated nodes in
// one process: every fixed cost of the table above is paid a thousand
// times, and the whole LSM lives on the heap.
//
//	option               value    on disk   why
//	MemTableSize         1 MiB    4 MiB     the arena is allocated whole per memtable; a simulated
//	                                        node writes a few snapshots and admin events a second.
//	                                        Badger caps one write batch at 15% of it (150 KiB),
//	                                        above any single record the chains write except a blob
//	                                        chunk, which a simulation does not store
//	BaseTableSize        256 KiB  1 MiB     flushed tables are heap too
//	BaseLevelSize        1 MiB    4 MiB
//	Compression          none     Snappy    nothing to save on the heap that the block cache would
//	                                        not spend again; without compression Badger needs no
//	                                        block cache
//	BlockCacheSize       0        4 MiB     tables are already in memory
//	IndexCacheSize       0        2 MiB     ditto (indexes stay with their in-memory table)
//	SyncWrites           false    true      nothing to sync (Badger forces it off)
//	ValueThreshold       128 KiB  1 KiB     there is no value log: every value must stay in the LSM.
//	                                        Badger v4.9 means to force this itself but sets it after
//	                                        the threshold it reads is initialised, and then panics
//	                                        writing a "value pointer" for any value above 1 KiB; 128
//	                                        KiB is under the batch cap, so a larger value is refused
//	                                        as too big instead
const (
	BadgerInMemoryMemTableBytes       = 1 << 20
	BadgerInMemoryValueThresholdBytes = 128 << 10
	BadgerInMemoryBaseTableBytes      = 256 << 10
	BadgerInMemoryBaseLevelBytes      = 1 << 20
)

// describe names where the database lives, for errors.
func (c Config) describe() string {
	if c.InMemory {
		return "memory"
	}
	return c.Dir
}

// badgerOptions turns the tables above into Badger options.
func badgerOptions(c Config) badger.Options {
	if c.InMemory {
		return diskOptions(c).
			WithInMemory(true).
			WithMemTableSize(BadgerInMemoryMemTableBytes).
			WithBaseTableSize(BadgerInMemoryBaseTableBytes).
			WithBaseLevelSize(BadgerInMemoryBaseLevelBytes).
			WithCompression(options.None).
			WithBlockCacheSize(0).
			WithIndexCacheSize(0).
			WithValueThreshold(BadgerInMemoryValueThresholdBytes).
			WithSyncWrites(false)
	}
	return diskOptions(c)
}

// diskOptions is the on-disk table.
func diskOptions(c Config) badger.Options {
	return badger.DefaultOptions(c.Dir).
		WithMemTableSize(BadgerMemTableBytes).
		WithNumMemtables(BadgerNumMemtables).
		WithNumLevelZeroTables(BadgerNumLevelZeroTables).
		WithNumLevelZeroTablesStall(BadgerNumLevelZeroStall).
		WithBaseTableSize(BadgerBaseTableBytes).
		WithBaseLevelSize(BadgerBaseLevelBytes).
		WithBlockCacheSize(BadgerBlockCacheBytes).
		WithIndexCacheSize(BadgerIndexCacheBytes).
		WithValueLogFileSize(BadgerValueLogFileBytes).
		WithValueThreshold(BadgerValueThresholdBytes).
		WithNumCompactors(BadgerNumCompactors).
		WithNumVersionsToKeep(1).
		WithCompression(options.Snappy).
		WithSyncWrites(true).
		WithDetectConflicts(false).
		WithMetricsEnabled(false).
		WithNumGoroutines(BadgerNumGoroutines).
		WithLogger(quietLogger{logf: c.Logf})
}

// quietLogger forwards Badger's warnings and errors to logf and drops its
// chatty info/debug lines.
type quietLogger struct {
	logf func(format string, args ...any)
}

func (l quietLogger) Errorf(f string, a ...any) {
	if l.logf != nil {
		l.logf("badger: error: "+f, a...)
	}
}

func (l quietLogger) Warningf(f string, a ...any) {
	if l.logf != nil {
		l.logf("badger: warning: "+f, a...)
	}
}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Debugf(string, ...any) {}
