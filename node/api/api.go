// Package api is the contract between the bundled node and its users (the
// TUI, the CLI and SSH consoles): the Client interface, its streams, the
// action and blast-radius types, and typed errors that map to exit codes.
// It holds no logic beyond small helpers; node.Client implements it.
package api

import (
	"context"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

// NodeID is the mesh-wide node (and operator) id.
type NodeID = identity.NodeID

// Client is everything a console can see and do. Implementations are safe for
// concurrent use; Snapshot never blocks or locks.
type Client interface {
	// Cluster is the cluster's name, from the cluster file.
	Cluster() string
	// Operator is the identity signing this client's commands; ok is false on
	// a read-only client (no key, or a key that is not a registered operator),
	// with the reason.
	Operator() (op OperatorInfo, ok bool, reason string)
	// Snapshot is the latest folded cluster view.
	Snapshot() *snapshot.ClusterSnapshot
	// WatchSnapshots yields a new snapshot on every structural change until
	// ctx ends. The channel holds one value; a slow reader sees the newest.
	WatchSnapshots(ctx context.Context) <-chan *snapshot.ClusterSnapshot
	SubscribeLogs(ctx context.Context, f LogFilter) (*Stream[LogRecord], error)
	SubscribeFailures(ctx context.Context, sinceSeq uint64) (*Stream[FailureRecord], error)
	// History returns up to n of node's past snapshots taken before t, newest
	// first, for scrolling back in time; node 0: every node, each node's
	// newest before t among them. It reads each node's own snapshot chain
	// through MeshDB, so it reaches before this console joined.
	History(ctx context.Context, node NodeID, before time.Time, n int) ([]snapshot.NodeSnapshot, error)
	// Query runs a MeshDB query (node/query/lang): its plan and columns at
	// once, its rows streamed. A query that does not parse or type-check
	// is a *QueryError (ErrInvalid) pointing at the column.
	Query(ctx context.Context, q string, o QueryOptions) (*QueryRun, error)
	Audit() AuditQuery
	Admin() AdminCommands
	ICE() IceCommands
	// Preview projects the blast radius of any admin or ICE action without
	// committing anything.
	Preview(ctx context.Context, a Action) (BlastRadius, error)
}

// OperatorInfo names the operator behind a client.
type OperatorInfo struct {
	ID   NodeID
	Name string
}

// LogLevel of a log record.
type LogLevel uint8

const (
	LevelTrace LogLevel = iota
	LevelDebug
	LevelInfo
	LevelWarn
	LevelError
)

func (l LogLevel) String() string {
	return [...]string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR"}[l%5]
}

// ParseLogLevel accepts the names above in any case.
func ParseLogLevel(s string) (LogLevel, bool) {
	for l := LevelTrace; l <= LevelError; l++ {
		if equalFold(s, l.String()) {
			return l, true
		}
	}
	return 0, false
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'a' <= x && x <= 'z' {
			x -= 'a' - 'A'
		}
		if 'a' <= y && y <= 'z' {
			y -= 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// LogRecord is one log line from a node's log chain.
type LogRecord struct {
	Seq    uint64
	At     time.Time
	Node   NodeID
	Daemon string
	Level  LogLevel
	Text   string
}

// LogFilter selects log records; zero fields match everything.
type LogFilter struct {
	MinLevel LogLevel
	Node     NodeID
	Daemon   string
	Match    string // case-insensitive substring of Text
}

// FailureRecord is one record on a failures chain.
type FailureRecord = snapshot.Failure
