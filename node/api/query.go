package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// MeshDB's results (node/query runs them): typed values, columns, rows
// streamed in batches, the plan that produced them and how complete they
// are. Plain data, so the TUI and the CLI render them without importing
// the engine.

// ValueKind is the type of a query value.
type ValueKind uint8

const (
	KindNull     ValueKind = iota
	KindInt                // I
	KindFloat              // F
	KindString             // S
	KindBool               // I: 0 or 1
	KindTime               // I: Unix nanoseconds (UTC)
	KindDuration           // I: nanoseconds
	KindNode               // I: the node id's bits
	KindLevel              // I: a LogLevel
	KindBytes              // B
	kindCount
)

var kindNames = [kindCount]string{"null", "int", "float", "string", "bool", "time", "duration", "node", "level", "bytes"}

func (k ValueKind) String() string {
	if k < kindCount {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Valid reports whether k is a known kind.
func (k ValueKind) Valid() bool { return k < kindCount }

// Value is one typed query value. The zero Value is null.
type Value struct {
	Kind ValueKind
	I    int64
	F    float64
	S    string
	B    []byte
}

// Value constructors.
func Null() Value                         { return Value{} }
func IntValue(i int64) Value              { return Value{Kind: KindInt, I: i} }
func FloatValue(f float64) Value          { return Value{Kind: KindFloat, F: f} }
func StringValue(s string) Value          { return Value{Kind: KindString, S: s} }
func BytesValue(b []byte) Value           { return Value{Kind: KindBytes, B: b} }
func NodeValue(id NodeID) Value           { return Value{Kind: KindNode, I: int64(id)} }
func LevelValue(l LogLevel) Value         { return Value{Kind: KindLevel, I: int64(l)} }
func DurationValue(d time.Duration) Value { return Value{Kind: KindDuration, I: int64(d)} }

// BoolValue is b as a value.
func BoolValue(b bool) Value {
	v := Value{Kind: KindBool}
	if b {
		v.I = 1
	}
	return v
}

// TimeValue is t as a value; the zero time is null.
func TimeValue(t time.Time) Value {
	if t.IsZero() {
		return Value{}
	}
	return Value{Kind: KindTime, I: t.UnixNano()}
}

// IsNull reports whether v is null.
func (v Value) IsNull() bool { return v.Kind == KindNull }

// Time is a time value as a time.Time (UTC); zero for any other kind.
func (v Value) Time() time.Time {
	if v.Kind != KindTime {
		return time.Time{}
	}
	return time.Unix(0, v.I).UTC()
}

// Node is a node value's id; zero for any other kind.
func (v Value) Node() NodeID {
	if v.Kind != KindNode {
		return 0
	}
	return NodeID(v.I)
}

// Bool is a bool value's truth; false for any other kind.
func (v Value) Bool() bool { return v.Kind == KindBool && v.I != 0 }

// Numeric reports v as a float when it is a number, a time, a duration, a
// level or a bool (what sum, avg and percentile fold).
func (v Value) Numeric() (float64, bool) {
	switch v.Kind {
	case KindFloat:
		return v.F, true
	case KindInt, KindTime, KindDuration, KindLevel, KindBool:
		return float64(v.I), true
	}
	return 0, false
}

// Compare orders two values: null first, then by kind, then by value
// (ints and floats compare as numbers; floats' NaN before every number).
// It is total, so sorts and min/max are deterministic.
func Compare(a, b Value) int {
	if (a.Kind == KindInt || a.Kind == KindFloat) && (b.Kind == KindInt || b.Kind == KindFloat) && a.Kind != b.Kind {
		x, _ := a.Numeric()
		y, _ := b.Numeric()
		return compareFloat(x, y)
	}
	if a.Kind != b.Kind {
		return cmp.Compare(a.Kind, b.Kind)
	}
	switch a.Kind {
	case KindNull:
		return 0
	case KindFloat:
		return compareFloat(a.F, b.F)
	case KindString:
		return strings.Compare(a.S, b.S)
	case KindBytes:
		return strings.Compare(string(a.B), string(b.B))
	case KindNode:
		return cmp.Compare(uint64(a.I), uint64(b.I))
	}
	return cmp.Compare(a.I, b.I)
}

func compareFloat(x, y float64) int {
	switch {
	case math.IsNaN(x) && math.IsNaN(y):
		return 0
	case math.IsNaN(x):
		return -1
	case math.IsNaN(y):
		return 1
	}
	return cmp.Compare(x, y)
}

// Equal reports whether a and b are the same value (Compare == 0).
func Equal(a, b Value) bool { return Compare(a, b) == 0 }

// String is the value's canonical text: times in RFC 3339 UTC with
// milliseconds, durations in Go's form, nodes as 0x hex, levels by name,
// bytes as their length.
func (v Value) String() string {
	switch v.Kind {
	case KindNull:
		return ""
	case KindInt:
		return strconv.FormatInt(v.I, 10)
	case KindFloat:
		return strconv.FormatFloat(v.F, 'g', 6, 64)
	case KindString:
		return v.S
	case KindBool:
		return strconv.FormatBool(v.I != 0)
	case KindTime:
		return v.Time().Format("2006-01-02T15:04:05.000Z07:00")
	case KindDuration:
		return time.Duration(v.I).String()
	case KindNode:
		return NodeID(v.I).String()
	case KindLevel:
		return LogLevel(v.I).String()
	case KindBytes:
		return strconv.Itoa(len(v.B)) + " B"
	}
	return "?"
}

// Size estimates the memory v holds, for the per-query memory budgets.
func (v Value) Size() int { return 40 + len(v.S) + len(v.B) }

// QueryColumn is one result column.
type QueryColumn struct {
	Name string
	Kind ValueKind
}

// QueryRow is one result row, one value per column.
type QueryRow []Value

// Size estimates the memory r holds.
func (r QueryRow) Size() int {
	n := 24
	for _, v := range r {
		n += v.Size()
	}
	return n
}

// QueryOptions tune one query; zero fields take the engine's defaults.
type QueryOptions struct {
	// Explain plans the query and returns the plan without running it.
	Explain bool
	// Timeout bounds the whole query (node/query DefaultQueryTimeout).
	Timeout time.Duration
	// MemoryLimitBytes bounds what the coordinator holds for the query
	// (join tables, aggregate groups, sort buffers); beyond it the query
	// fails with ErrQueryMemory.
	MemoryLimitBytes int64
	// NoCache skips the result cache (and does not fill it).
	NoCache bool
	// MaxRows cuts the result after this many rows (node/query
	// DefaultMaxRows); the status then says it is partial.
	MaxRows uint64
}

// QueryFragment is one atomic part of a plan: a chain read on one holder.
type QueryFragment struct {
	ID       int
	Chain    string
	Instance NodeID // whose chain, for a per-node chain (logs, failures, snapshots); 0 otherwise
	// Holder is the node chosen to run it (nearest healthy holder by RTT);
	// Alternates are the other holders, in the order a failover tries them.
	Holder     NodeID
	Alternates []NodeID
	// Text is the fragment as it runs on the holder (read, filter,
	// window, partial aggregate).
	Text string
}

// QueryPlan is how a query runs: a tree of operators whose leaves are
// fragments run where the data is. Plans are deterministic: the same
// query over the same cluster view gives the same plan and Key.
type QueryPlan struct {
	Key         string // hex digest of the canonical plan (the result cache's key)
	Coordinator NodeID // where the composite operators run (the querying node)
	Text        string // the plan as an indented tree (EXPLAIN)
	Fragments   []QueryFragment
}

// QueryMissing is a fragment whose rows are not (all) in the result.
type QueryMissing struct {
	Fragment int
	Chain    string
	Instance NodeID
	Holder   NodeID // the last holder tried
	Reason   string
}

// QueryStatus is how a query ended.
type QueryStatus struct {
	Rows      uint64 // rows delivered
	Scanned   uint64 // records read by the holders
	Partial   bool   // some fragment's rows are missing (Missing says which)
	Missing   []QueryMissing
	Failovers int  // fragments moved to another holder mid-query
	Cached    bool // served from the result cache
	Elapsed   time.Duration
	// MemoryBytes is the most the coordinator held for the query (join
	// tables, groups, sort buffers), charged against its limit.
	MemoryBytes int64
}

// Typed query errors (beside ErrInvalid for a query that does not parse
// or type-check, ErrNotFound for an unknown chain, ErrTimeout for a
// deadline).
var (
	// ErrQueryMemory: the query needed more memory than its limit (a join,
	// group-by or sort too large); it was refused, never run out of memory.
	ErrQueryMemory = errors.New("query memory limit exceeded")
	// ErrQueryRefused: a holder refused the query's work (its per-peer
	// budget, its capacity).
	ErrQueryRefused = errors.New("query refused by holder")
)

// QueryError is a query that does not parse or type-check, with where.
type QueryError struct {
	Query string
	// Line and Col are 1-based; Col counts runes.
	Line, Col int
	Msg       string
}

func (e *QueryError) Error() string { return fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg) }

// Unwrap makes a query error an invalid argument (exit 2).
func (e *QueryError) Unwrap() error { return ErrInvalid }

// Caret is the offending line of the query with a caret under the column.
func (e *QueryError) Caret() string {
	lines := strings.Split(e.Query, "\n")
	if e.Line < 1 || e.Line > len(lines) {
		return ""
	}
	line := strings.ReplaceAll(lines[e.Line-1], "\t", " ")
	col := max(min(e.Col, utf8.RuneCountInString(line)+1), 1)
	return line + "\n" + strings.Repeat(" ", col-1) + "^"
}

// QueryRun is a query in flight: its plan and columns at once, its rows in
// bounded batches as holders answer, its status when it ends. The producer
// blocks when the consumer is behind (rows are never dropped); Cancel ends
// the query and the remote work it started.
type QueryRun struct {
	Plan    QueryPlan
	Columns []QueryColumn

	rows   chan []QueryRow
	done   chan struct{}
	cancel context.CancelFunc

	mu       sync.Mutex
	status   QueryStatus
	err      error
	finished bool
}

// NewQueryRun makes a run whose row channel holds buf batches; cancel ends
// the producer's work.
func NewQueryRun(plan QueryPlan, cols []QueryColumn, buf int, cancel context.CancelFunc) *QueryRun {
	return &QueryRun{Plan: plan, Columns: cols, rows: make(chan []QueryRow, max(buf, 1)), done: make(chan struct{}), cancel: cancel}
}

// Rows yields batches of rows; it is closed when the query ended (then
// Wait returns at once).
func (r *QueryRun) Rows() <-chan []QueryRow { return r.rows }

// Done is closed when the query ended.
func (r *QueryRun) Done() <-chan struct{} { return r.done }

// Cancel ends the query; the status says what was delivered.
func (r *QueryRun) Cancel() {
	if r.cancel != nil {
		r.cancel()
	}
}

// Wait blocks until the query ended and returns its status and error.
// Rows not read meanwhile stay in the channel: a caller that only wants
// the status cancels first, or reads Rows to the end.
func (r *QueryRun) Wait() (QueryStatus, error) {
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status, r.err
}

// Collect reads every row and the final status.
func (r *QueryRun) Collect() ([]QueryRow, QueryStatus, error) {
	var out []QueryRow
	for b := range r.rows {
		out = append(out, b...)
	}
	st, err := r.Wait()
	return out, st, err
}

// Send hands a batch to the consumer, waiting while the channel is full
// (producer side).
func (r *QueryRun) Send(ctx context.Context, rows []QueryRow) error {
	if len(rows) == 0 {
		return nil
	}
	select {
	case r.rows <- rows:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Finish ends the run with its status and error (producer side; once).
func (r *QueryRun) Finish(st QueryStatus, err error) {
	r.mu.Lock()
	if r.finished {
		r.mu.Unlock()
		return
	}
	r.finished = true
	r.status, r.err = st, err
	r.mu.Unlock()
	close(r.rows)
	close(r.done)
	if r.cancel != nil {
		r.cancel()
	}
}
