package store

import "github.com/deck-mesh/deck/node/api"

// Capacities of the stores. The log ring is the big one: 100k records is a
// few minutes of a busy 9-node demo at full trace and about 20 MB.
const (
	LogCapacityRecords     = 100_000
	FailureCapacityRecords = 10_000
	AuditCapacityRecords   = 10_000
)

// Store is the stream-fed state shared by the tabs. It is owned by the root
// model and only mutated from Update.
type Store struct {
	Logs     *Ring[api.LogRecord]
	Failures *Ring[api.FailureRecord]
	Audit    *Ring[api.AuditRecord]
	// Dropped and Lagged are the streams' own counters, copied on every
	// batch so the status line shows the real numbers.
	LogsDropped, LogsLagged        uint64
	FailuresDropped, AuditDropped  uint64
	FailuresGen, AuditGen, LogsGen uint64
}

// New makes a store with the given log capacity (0: LogCapacityRecords).
func New(logCapacity int) *Store {
	if logCapacity <= 0 {
		logCapacity = LogCapacityRecords
	}
	return &Store{
		Logs:     NewRing[api.LogRecord](logCapacity),
		Failures: NewRing[api.FailureRecord](FailureCapacityRecords),
		Audit:    NewRing[api.AuditRecord](AuditCapacityRecords),
	}
}

// Dropped is the total of every stream's dropped records.
func (s *Store) Dropped() uint64 { return s.LogsDropped + s.FailuresDropped + s.AuditDropped }
