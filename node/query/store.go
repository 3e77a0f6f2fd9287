package query

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"golang.org/x/crypto/blake2b"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/gossip"
	"github.com/deck-mesh/deck/node/identity"
)

// SeqLog is a chain a node keeps on disk, addressed by seq, its append
// time never decreasing along it: *chain.Log is one, MemLog another.
type SeqLog interface {
	Bounds() (first, last uint64)
	Get(seq uint64) (chain.Entry, error)
	Range(from, to uint64, fn func(chain.Entry) bool) error
	Reverse(before uint64, fn func(chain.Entry) bool) error
}

// ReplicaEntry is one record of a replicated chain: a daemon's checkpoint.
type ReplicaEntry struct {
	Seq    uint64
	Daemon string
	State  []byte
}

// Store is what one node holds, the chains it serves. Nil fields: not held.
type Store struct {
	Self identity.NodeID
	// Logs, Failures and Snapshots are this node's own logs (the
	// snapshots log of a console holds every node's snapshots it saw).
	Logs, Failures, Snapshots SeqLog
	// Audit is the admin ledger as this node folded it, in seq order.
	Audit func() []api.AuditRecord
	// Replica is the local replica of a replicated chain, oldest first.
	Replica func(chain string) ([]ReplicaEntry, bool)
	// Daemons lists the daemon ids a failure's reason is searched for,
	// to fill the failures' daemon column.
	Daemons func() []string
}

// errNotHeld: this node does not hold the chain instance asked for.
var errNotHeld = errors.New("chain not held here")

// source is one chain instance as the runner reads it.
type source interface {
	// bounds are the first and last seq (0, 0: empty).
	bounds() (first, last uint64)
	// scan visits records with from ≤ seq ≤ to in seq order (newest first
	// when reverse) until fn returns false. at is the record's append time
	// (0 for a chain without one).
	scan(from, to uint64, reverse bool, fn func(seq uint64, at int64, row api.QueryRow) bool) error
	// firstAtOrAfter is the first seq appended at or after t, for a timed
	// chain (ok false otherwise).
	firstAtOrAfter(t int64) (seq uint64, ok bool, err error)
}

// open returns the source for fragment f on this store.
func (s *Store) open(f *Fragment) (source, error) {
	switch f.Family {
	case FamLogs, FamFailures:
		log := s.Logs
		if f.Family == FamFailures {
			log = s.Failures
		}
		if log == nil || f.Instance != s.Self {
			return nil, fmt.Errorf("%w: %s of %v", errNotHeld, f.Family, f.Instance)
		}
		if f.Family == FamLogs {
			return &logSource{log: log, decode: decodeLogRow}, nil
		}
		daemons := map[string]bool{}
		if s.Daemons != nil {
			for _, d := range s.Daemons() {
				daemons[d] = true
			}
		}
		return &logSource{log: log, decode: func(e chain.Entry) (api.QueryRow, bool, error) { return decodeFailureRow(e, daemons) }}, nil
	case FamSnapshots:
		if s.Snapshots == nil {
			return nil, fmt.Errorf("%w: snapshots", errNotHeld)
		}
		// Only the snapshot bytes, seq, at and node are free: decode the
		// snapshot for its other columns only when the fragment reads them.
		full := f.Needed == 0 || f.Needed&^(1<<colSeq|1<<colAt|1<<nodeColumn|1<<snapshotColumn) != 0
		inst := f.Instance
		return &logSource{log: s.Snapshots, decode: func(e chain.Entry) (api.QueryRow, bool, error) {
			return decodeSnapshotRow(e, inst, full)
		}}, nil
	case FamAdmin:
		if s.Audit == nil {
			return nil, fmt.Errorf("%w: admin ledger", errNotHeld)
		}
		var rows []sliceRow
		for _, r := range s.Audit() {
			if r.Seq == 0 {
				continue // a local rejection: not on the ledger
			}
			rows = append(rows, sliceRow{seq: r.Seq, row: auditRow(r)})
		}
		slices.SortFunc(rows, func(a, b sliceRow) int { return cmpU64(a.seq, b.seq) })
		return &sliceSource{rows: rows}, nil
	case FamReplica:
		if s.Replica == nil {
			return nil, fmt.Errorf("%w: chain %s", errNotHeld, f.Chain)
		}
		es, ok := s.Replica(f.Chain)
		if !ok {
			return nil, fmt.Errorf("%w: chain %s", errNotHeld, f.Chain)
		}
		rows := make([]sliceRow, 0, len(es))
		for _, e := range es {
			sum := blake2b.Sum256(e.State)
			rows = append(rows, sliceRow{seq: e.Seq, row: api.QueryRow{
				api.IntValue(int64(e.Seq)), api.StringValue(e.Daemon), api.IntValue(int64(len(e.State))),
				api.StringValue(hex.EncodeToString(sum[:8])),
			}})
		}
		slices.SortFunc(rows, func(a, b sliceRow) int { return cmpU64(a.seq, b.seq) })
		return &sliceSource{rows: rows}, nil
	}
	return nil, fmt.Errorf("%w: family %d", errNotHeld, f.Family)
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// logSource reads a SeqLog; decode turns an entry into a row (false: not
// this instance's record, skipped).
type logSource struct {
	log    SeqLog
	decode func(chain.Entry) (api.QueryRow, bool, error)
}

func (s *logSource) bounds() (uint64, uint64) { return s.log.Bounds() }

func (s *logSource) scan(from, to uint64, reverse bool, fn func(uint64, int64, api.QueryRow) bool) error {
	var derr error
	visit := func(e chain.Entry) bool {
		if e.Seq < from || e.Seq > to {
			return false
		}
		row, ok, err := s.decode(e)
		if err != nil {
			derr = err
			return false
		}
		if !ok {
			return fn(e.Seq, e.AtNano, nil)
		}
		return fn(e.Seq, e.AtNano, row)
	}
	var err error
	if reverse {
		before := to + 1
		if to == ^uint64(0) {
			before = 0
		}
		err = s.log.Reverse(before, visit)
	} else {
		end := to + 1
		if to == ^uint64(0) {
			end = 0
		}
		err = s.log.Range(from, end, visit)
	}
	if err == nil {
		err = derr
	}
	return err
}

func (s *logSource) firstAtOrAfter(t int64) (uint64, bool, error) {
	first, last := s.log.Bounds()
	if last == 0 {
		return 0, true, nil
	}
	// Smallest seq in [first, last+1) whose append time is ≥ t; a record
	// retention removed meanwhile is read as older than everything.
	lo, hi := first, last+1
	var ferr error
	for lo < hi {
		mid := lo + (hi-lo)/2
		e, err := s.log.Get(mid)
		if err != nil && !errors.Is(err, chain.ErrNotFound) {
			ferr = err
			break
		}
		if err == nil && e.AtNano >= t {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, true, ferr
}

func decodeLogRow(e chain.Entry) (api.QueryRow, bool, error) {
	r, err := chain.LogRecordOf(e)
	if err != nil {
		return nil, false, err
	}
	return api.QueryRow{api.IntValue(int64(r.Seq)), api.TimeValue(r.At), api.NodeValue(r.Node),
		api.LevelValue(r.Level), api.StringValue(r.Daemon), api.StringValue(r.Text)}, true, nil
}

func decodeFailureRow(e chain.Entry, daemons map[string]bool) (api.QueryRow, bool, error) {
	r, err := chain.FailureRecordOf(e)
	if err != nil {
		return nil, false, err
	}
	return api.QueryRow{api.IntValue(int64(r.Seq)), api.TimeValue(r.At), api.NodeValue(r.Node),
		api.StringValue(r.Source), api.StringValue(r.Reason), api.StringValue(failureDaemon(r.Reason, daemons))}, true, nil
}

// failureDaemon is the daemon a failure is about: the first word of its
// reason that names a daemon of the workload, else the first that has a
// daemon id's shape (group-index, placement.DaemonID). Failures carry
// their daemon in the text; this column lets a query join on it.
func failureDaemon(reason string, daemons map[string]bool) string {
	shaped := ""
	for _, w := range strings.Fields(reason) {
		w = strings.Trim(w, ":,;()[]'\"")
		if daemons[w] {
			return w
		}
		if shaped == "" && daemonShaped(w) {
			shaped = w
		}
	}
	return shaped
}

// daemonShaped reports whether w looks like group-index.
func daemonShaped(w string) bool {
	i := strings.LastIndexByte(w, '-')
	if i <= 0 || i == len(w)-1 {
		return false
	}
	for _, c := range w[i+1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	c := w[0]
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// decodeSnapshotRow reads a snapshots entry of node inst (another node's
// entry, on a console's log, is skipped).
func decodeSnapshotRow(e chain.Entry, inst identity.NodeID, full bool) (api.QueryRow, bool, error) {
	rec, err := chain.SnapshotRecordOf(e)
	if err != nil {
		return nil, false, err
	}
	if inst != 0 && rec.Node != inst {
		return nil, false, nil
	}
	row := make(api.QueryRow, len(schemas[FamSnapshots]))
	row[colSeq], row[colAt], row[nodeColumn] = api.IntValue(int64(e.Seq)), api.TimeValue(rec.At), api.NodeValue(rec.Node)
	row[snapshotColumn] = api.BytesValue(rec.Data)
	if !full {
		return row, true, nil
	}
	ns, err := gossip.DecodeSnapshot(rec.Data)
	if err != nil {
		return row, true, nil // an older codec's record: its columns stay null
	}
	row[3] = api.IntValue(int64(ns.Generation))
	row[4] = api.StringValue(ns.Label)
	row[5] = api.FloatValue(ns.Resources.CPULoad)
	row[6] = api.FloatValue(ns.Resources.MemUsed)
	row[7] = api.FloatValue(ns.Resources.DiskUsed)
	row[8] = api.FloatValue(ns.Resources.Saturation)
	row[9] = api.IntValue(int64(len(ns.Daemons)))
	row[10] = api.IntValue(int64(len(ns.Replicas)))
	row[11] = api.IntValue(int64(len(ns.Pending)))
	row[12] = api.StringValue(ns.Maintenance.State.String())
	row[13] = api.BoolValue(ns.Cordoned)
	return row, true, nil
}

func auditRow(r api.AuditRecord) api.QueryRow {
	return api.QueryRow{api.IntValue(int64(r.Seq)), api.TimeValue(r.IssuedAt), api.NodeValue(r.Operator),
		api.StringValue(string(r.Action.Verb)), api.StringValue(r.Action.Target()), api.StringValue(r.Outcome.String()),
		api.BoolValue(r.ICE), api.StringValue(r.Reason), api.StringValue(r.EventID)}
}

// sliceSource is an in-memory chain (the ledger's fold, a replica).
type sliceSource struct{ rows []sliceRow }

type sliceRow struct {
	seq uint64
	row api.QueryRow
}

func (s *sliceSource) bounds() (uint64, uint64) {
	if len(s.rows) == 0 {
		return 0, 0
	}
	return s.rows[0].seq, s.rows[len(s.rows)-1].seq
}

func (s *sliceSource) scan(from, to uint64, reverse bool, fn func(uint64, int64, api.QueryRow) bool) error {
	i := sort.Search(len(s.rows), func(i int) bool { return s.rows[i].seq >= from })
	j := sort.Search(len(s.rows), func(i int) bool { return s.rows[i].seq > to })
	if reverse {
		for k := j - 1; k >= i; k-- {
			if !fn(s.rows[k].seq, 0, s.rows[k].row) {
				return nil
			}
		}
		return nil
	}
	for k := i; k < j; k++ {
		if !fn(s.rows[k].seq, 0, s.rows[k].row) {
			return nil
		}
	}
	return nil
}

func (s *sliceSource) firstAtOrAfter(int64) (uint64, bool, error) { return 0, false, nil }

// MemLog is an in-memory SeqLog (tests, and the deck's fixture client):
// entries appended in order, their append time never decreasing.
type MemLog struct {
	mu      sync.RWMutex
	entries []chain.Entry
}

// Append adds a record with payload value at atNano (raised to the last
// one's) and returns its seq.
func (m *MemLog) Append(atNano int64, value []byte) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := len(m.entries); n > 0 {
		atNano = max(atNano, m.entries[n-1].AtNano)
	}
	seq := uint64(len(m.entries)) + 1
	m.entries = append(m.entries, chain.Entry{Seq: seq, AtNano: atNano, Value: value})
	return seq
}

// Bounds implements SeqLog.
func (m *MemLog) Bounds() (uint64, uint64) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if len(m.entries) == 0 {
		return 0, 0
	}
	return 1, uint64(len(m.entries))
}

// Get implements SeqLog.
func (m *MemLog) Get(seq uint64) (chain.Entry, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if seq == 0 || seq > uint64(len(m.entries)) {
		return chain.Entry{}, fmt.Errorf("%w: seq %d", chain.ErrNotFound, seq)
	}
	return m.entries[seq-1], nil
}

// Range implements SeqLog.
func (m *MemLog) Range(from, to uint64, fn func(chain.Entry) bool) error {
	m.mu.RLock()
	es := m.entries
	m.mu.RUnlock()
	for i := max(from, 1); i <= uint64(len(es)) && (to == 0 || i < to); i++ {
		if !fn(es[i-1]) {
			return nil
		}
	}
	return nil
}

// Reverse implements SeqLog.
func (m *MemLog) Reverse(before uint64, fn func(chain.Entry) bool) error {
	m.mu.RLock()
	es := m.entries
	m.mu.RUnlock()
	i := uint64(len(es))
	if before != 0 && before-1 < i {
		i = before - 1
	}
	for ; i >= 1; i-- {
		if !fn(es[i-1]) {
			return nil
		}
	}
	return nil
}
