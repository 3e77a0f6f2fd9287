package query

import (
	"errors"
	"fmt"
	"math"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/codec"
	"github.com/deck-mesh/deck/node/identity"
)

// The wire, on messaging.ChanQuery. Every message starts with
//
//	ver(1)=1 kind(1) qid(8)
//
// where qid names one fragment run, chosen by the coordinator (unique per
// coordinator: the holder keys its state by sender and qid). Then, by kind:
//
//	request   deadline_ms(uvarint) fragment          coordinator → holder: run it, answer with batch 0
//	pull      seq(uvarint)                           coordinator → holder: send batch seq (again)
//	cancel    done(bool)                             coordinator → holder: drop the fragment
//	batch     seq(uvarint) last(bool) cursor(uvarint) scanned(uvarint) truncated(string)
//	          ncols(uvarint) kinds(1 each) nrows(uvarint) rows  holder → coordinator
//	progress  seq(uvarint) scanned(uvarint)          holder → coordinator: batch seq is being made
//	error     code(1) message(string)                holder → coordinator
//
// Batches are pulled one at a time: the holder makes batch n+1 only when
// asked, keeps batch n until then to send it again, so a lost datagram
// costs a resend and a slow coordinator holds the holder's work back
// instead of piling up at either end.
const wireVersion = 1

type msgKind uint8

const (
	msgRequest msgKind = iota + 1
	msgPull
	msgCancel
	msgBatch
	msgProgress
	msgError
	msgKindEnd
)

const headerBytes = 1 + 1 + 8

// errWire wraps every decoding failure of this package.
var errWire = errors.New("query: malformed message")

// errCode is an error answer's class.
type errCode uint8

const (
	codeUnknown  errCode = iota + 1 // no such fragment here (expired, or never started)
	codeRefused                     // a budget or capacity refused it
	codeInvalid                     // the fragment does not decode or does not fit the chain
	codeMemory                      // the fragment's state exceeded MaxFragmentMemoryBytes
	codeDeadline                    // the fragment ran out of time
	codeNotHeld                     // this node does not hold the chain
	codeInternal                    // reading the chain failed
	codeEnd
)

var codeText = [codeEnd]string{"", "unknown fragment", "refused", "invalid", "memory limit", "deadline", "not held", "internal"}

func (c errCode) String() string {
	if c < codeEnd {
		return codeText[c]
	}
	return "error"
}

// ReadKind is a fragment's atomic read.
type ReadKind uint8

const (
	readAll       ReadKind = iota // every retained record, oldest first
	readLatest                    // the N newest matching records, newest first
	readAtSeq                     // the record at seq From
	readAtTime                    // the newest record at or before time From
	readSeqRange                  // From ≤ seq ≤ To (To 0: to the head), oldest first
	readTimeRange                 // From ≤ at ≤ To (Unix ns), oldest first
	readBounds                    // one row: the instance's bounds
	readKindEnd
)

// Read is a fragment's read with its arguments.
type Read struct {
	Kind     ReadKind
	N        uint64
	From, To int64
}

// WindowKind is a tumbling window's axis.
type WindowKind uint8

const (
	windowNone WindowKind = iota
	windowTime            // Width ns of `at`; the window column is a time
	windowSeq             // Width seqs; the window column is an int
	windowKindEnd
)

// Window is a tumbling window: a row's window is its at (or seq) rounded
// down to a multiple of Width.
type Window struct {
	Kind  WindowKind
	Width int64
}

// AggFn is an aggregate function.
type AggFn uint8

const (
	aggCount AggFn = iota
	aggSum
	aggAvg
	aggMin
	aggMax
	aggDistinct   // exact count of distinct values
	aggPercentile // nearest-rank percentile P of the values
	aggFnEnd
)

var aggNames = [aggFnEnd]string{"count", "sum", "avg", "min", "max", "distinct", "percentile"}

func (f AggFn) String() string {
	if f < aggFnEnd {
		return aggNames[f]
	}
	return "agg?"
}

// AggSpec is one aggregate: Fn over column Col (-1 for count), P the
// percentile.
type AggSpec struct {
	Fn  AggFn
	Col int
	P   float64
}

// PartialAgg is an aggregate a holder computes partially: its groups'
// states, merged by the coordinator.
type PartialAgg struct {
	Group []int
	Aggs  []AggSpec
}

// Fragment is what a holder runs: an atomic read of one chain instance,
// with the filter, window and partial aggregate pushed down to it.
type Fragment struct {
	Family   Family
	Chain    string          // the replicated chain's name (FamReplica); empty otherwise
	Instance identity.NodeID // per-node families: whose records; 0 otherwise
	Read     Read
	Filter   *Expr // over the family's columns
	Window   Window
	Agg      *PartialAgg // nil: rows
	Limit    uint64      // rows out at most (0: all)
	// Needed is a bitmask of the columns sent (0: all); the others go as
	// null, so a query that never reads a snapshot does not ship it.
	Needed uint64
}

// inColumns are the columns the fragment's filter, window and aggregate
// read: the family's, plus `window` when windowed.
func (f *Fragment) inColumns() []api.QueryColumn {
	cols := Schema(f.Family)
	switch f.Window.Kind {
	case windowTime:
		cols = append(cols[:len(cols):len(cols)], col("window", api.KindTime))
	case windowSeq:
		cols = append(cols[:len(cols):len(cols)], col("window", api.KindInt))
	}
	return cols
}

// outColumns are the columns of the fragment's batches.
func (f *Fragment) outColumns() []api.QueryColumn {
	if f.Read.Kind == readBounds {
		return boundsSchema
	}
	in := f.inColumns()
	if f.Agg == nil {
		return in
	}
	out := make([]api.QueryColumn, 0, len(f.Agg.Group)+len(f.Agg.Aggs))
	for _, g := range f.Agg.Group {
		out = append(out, in[g])
	}
	for _, a := range f.Agg.Aggs {
		out = append(out, col(aggName(a, in)+".state", api.KindBytes))
	}
	return out
}

// aggName is the column name of an aggregate's result: count, sum(x),
// percentile(x, 99).
func aggName(a AggSpec, cols []api.QueryColumn) string {
	if a.Fn == aggCount {
		return "count"
	}
	name := "?"
	if a.Col >= 0 && a.Col < len(cols) {
		name = cols[a.Col].Name
	}
	if a.Fn == aggPercentile {
		return fmt.Sprintf("percentile(%s, %s)", name, trimFloat(a.P))
	}
	return a.Fn.String() + "(" + name + ")"
}

func appendValue(w *codec.Writer, v api.Value) {
	w.U8(uint8(v.Kind))
	switch v.Kind {
	case api.KindNull:
	case api.KindFloat:
		w.U64(math.Float64bits(v.F))
	case api.KindString:
		w.Uvarint(uint64(len(v.S)))
		w.Raw([]byte(v.S))
	case api.KindBytes:
		w.Uvarint(uint64(len(v.B)))
		w.Raw(v.B)
	case api.KindNode:
		w.U64(uint64(v.I))
	case api.KindBool:
		w.Bool(v.I != 0)
	default:
		w.Varint(v.I)
	}
}

// readValue decodes one value; strings and bytes alias the input.
func readValue(r *codec.Reader) api.Value {
	v := api.Value{Kind: api.ValueKind(r.U8())}
	if r.Err() == nil && !v.Kind.Valid() {
		r.Failf(codec.ErrMalformed, "value kind %d", v.Kind)
		return api.Value{}
	}
	switch v.Kind {
	case api.KindNull:
	case api.KindFloat:
		v.F = math.Float64frombits(r.U64())
	case api.KindString:
		v.S = r.String(codec.PrefixUvarint, MaxValueBytes, "string")
	case api.KindBytes:
		v.B = r.Bytes(codec.PrefixUvarint, MaxValueBytes, "bytes")
	case api.KindNode:
		v.I = int64(r.U64())
	case api.KindBool:
		if r.Bool() {
			v.I = 1
		}
	default:
		v.I = r.Varint()
	}
	return v
}

// AppendFragment encodes f.
func AppendFragment(b []byte, f *Fragment) ([]byte, error) {
	w := codec.NewWriter(b, errWire)
	w.U8(wireVersion)
	w.U8(uint8(f.Family))
	w.String(codec.PrefixUvarint, MaxChainNameBytes, "chain", f.Chain)
	w.U64(uint64(f.Instance))
	w.U8(uint8(f.Read.Kind))
	w.Uvarint(f.Read.N)
	w.Varint(f.Read.From)
	w.Varint(f.Read.To)
	w.Bool(f.Filter != nil)
	if f.Filter != nil {
		appendExpr(&w, f.Filter)
	}
	w.U8(uint8(f.Window.Kind))
	w.Varint(f.Window.Width)
	w.Bool(f.Agg != nil)
	if f.Agg != nil {
		w.Count("group columns", len(f.Agg.Group), MaxGroupColumns)
		for _, g := range f.Agg.Group {
			w.Uvarint(uint64(g))
		}
		w.Count("aggregates", len(f.Agg.Aggs), MaxAggregates)
		for _, a := range f.Agg.Aggs {
			w.U8(uint8(a.Fn))
			w.Varint(int64(a.Col))
			w.F64("percentile", a.P)
		}
	}
	w.Uvarint(f.Limit)
	w.U64(f.Needed)
	return w.B, w.Err()
}

// DecodeFragment decodes and checks a fragment from a peer: every index
// in range of its family's columns, every count bounded.
func DecodeFragment(b []byte) (*Fragment, error) {
	if len(b) > MaxRequestBytes {
		return nil, fmt.Errorf("%w: fragment of %d bytes", errWire, len(b))
	}
	r := codec.NewReader(b, errWire)
	if v := r.U8(); r.Err() == nil && v != wireVersion {
		return nil, fmt.Errorf("%w: fragment version %d", errWire, v)
	}
	f := &Fragment{}
	f.Family = Family(r.U8())
	if r.Err() == nil && (f.Family == famNone || f.Family >= famCount) {
		return nil, fmt.Errorf("%w: family %d", errWire, f.Family)
	}
	f.Chain = r.Text(codec.PrefixUvarint, MaxChainNameBytes, "chain")
	f.Instance = identity.NodeID(r.U64())
	f.Read.Kind = ReadKind(r.Enum("read", uint8(readKindEnd)))
	f.Read.N = r.Uvarint()
	f.Read.From = r.Varint()
	f.Read.To = r.Varint()
	if r.Bool() {
		d := exprDecoder{r: &r, ncols: len(Schema(f.Family))}
		f.Filter = d.decode(0)
	}
	f.Window.Kind = WindowKind(r.Enum("window", uint8(windowKindEnd)))
	f.Window.Width = r.Varint()
	if r.Err() == nil && f.Window.Kind != windowNone && f.Window.Width <= 0 {
		return nil, fmt.Errorf("%w: window width %d", errWire, f.Window.Width)
	}
	if r.Err() == nil && f.Window.Kind == windowTime && !f.Family.hasTime() {
		return nil, fmt.Errorf("%w: time window on %s", errWire, f.Family)
	}
	ncols := len(f.inColumns())
	if r.Bool() {
		f.Agg = &PartialAgg{}
		n := r.Count("group columns", MaxGroupColumns, 1)
		for range n {
			g := r.Uvarint()
			if r.Err() == nil && g >= uint64(ncols) {
				return nil, fmt.Errorf("%w: group column %d of %d", errWire, g, ncols)
			}
			f.Agg.Group = append(f.Agg.Group, int(g))
		}
		n = r.Count("aggregates", MaxAggregates, 10)
		for range n {
			a := AggSpec{Fn: AggFn(r.Enum("aggregate", uint8(aggFnEnd))), Col: int(r.Varint()), P: r.F64("percentile")}
			if r.Err() != nil {
				break
			}
			if (a.Fn == aggCount) != (a.Col == -1) || a.Col < -1 || a.Col >= ncols || a.P < 0 || a.P > 100 {
				return nil, fmt.Errorf("%w: aggregate %s over column %d (p %v)", errWire, a.Fn, a.Col, a.P)
			}
			f.Agg.Aggs = append(f.Agg.Aggs, a)
		}
	}
	f.Limit = r.Uvarint()
	f.Needed = r.U64()
	if err := r.Finish(); err != nil {
		return nil, err
	}
	if f.Family == FamReplica && f.Chain == "" {
		return nil, fmt.Errorf("%w: replica fragment without a chain", errWire)
	}
	if f.Family.perNode() != (f.Instance != 0) {
		return nil, fmt.Errorf("%w: %s fragment with instance %v", errWire, f.Family, f.Instance)
	}
	if f.Read.Kind == readLatest && (f.Read.N == 0 || f.Read.N > MaxLatest) {
		return nil, fmt.Errorf("%w: latest %d", errWire, f.Read.N)
	}
	if (f.Read.Kind == readTimeRange || f.Read.Kind == readAtTime) && !f.Family.hasTime() {
		return nil, fmt.Errorf("%w: time read on %s", errWire, f.Family)
	}
	return f, nil
}

// header is a message's common start.
type header struct {
	kind msgKind
	qid  uint64
}

func appendHeader(b []byte, k msgKind, qid uint64) []byte {
	b = append(b, wireVersion, byte(k))
	var q [8]byte
	for i := range q {
		q[i] = byte(qid >> (56 - 8*i))
	}
	return append(b, q[:]...)
}

// parseHeader reads a message's header without decoding the rest: the
// handler routes on it and leaves decoding to the goroutine doing the work.
func parseHeader(msg []byte) (header, bool) {
	if len(msg) < headerBytes || msg[0] != wireVersion || msg[1] == 0 || msgKind(msg[1]) >= msgKindEnd {
		return header{}, false
	}
	var qid uint64
	for _, c := range msg[2:headerBytes] {
		qid = qid<<8 | uint64(c)
	}
	return header{kind: msgKind(msg[1]), qid: qid}, true
}

// encodeRequest is a request message for fragment bytes frag.
func encodeRequest(qid uint64, deadlineMs uint64, frag []byte) []byte {
	w := codec.NewWriter(appendHeader(make([]byte, 0, headerBytes+10+len(frag)), msgRequest, qid), errWire)
	w.Uvarint(deadlineMs)
	w.Raw(frag)
	return w.B
}

func decodeRequest(body []byte) (deadlineMs uint64, frag []byte, err error) {
	r := codec.NewReader(body, errWire)
	deadlineMs = r.Uvarint()
	frag = r.Take(r.Len())
	return deadlineMs, frag, r.Err()
}

func encodeSeq(k msgKind, qid, seq uint64) []byte {
	w := codec.NewWriter(appendHeader(make([]byte, 0, headerBytes+10), k, qid), errWire)
	w.Uvarint(seq)
	return w.B
}

func decodeSeq(body []byte) (uint64, error) {
	r := codec.NewReader(body, errWire)
	s := r.Uvarint()
	return s, r.Finish()
}

func encodeCancel(qid uint64, done bool) []byte {
	w := codec.NewWriter(appendHeader(make([]byte, 0, headerBytes+1), msgCancel, qid), errWire)
	w.Bool(done)
	return w.B
}

func decodeCancel(body []byte) (bool, error) {
	r := codec.NewReader(body, errWire)
	d := r.Bool()
	return d, r.Finish()
}

func encodeProgress(qid, seq, scanned uint64) []byte {
	w := codec.NewWriter(appendHeader(make([]byte, 0, headerBytes+20), msgProgress, qid), errWire)
	w.Uvarint(seq)
	w.Uvarint(scanned)
	return w.B
}

func decodeProgress(body []byte) (seq, scanned uint64, err error) {
	r := codec.NewReader(body, errWire)
	seq, scanned = r.Uvarint(), r.Uvarint()
	return seq, scanned, r.Finish()
}

func encodeError(qid uint64, code errCode, msg string) []byte {
	if len(msg) > MaxErrorBytes {
		msg = msg[:MaxErrorBytes]
	}
	w := codec.NewWriter(appendHeader(make([]byte, 0, headerBytes+2+len(msg)), msgError, qid), errWire)
	w.U8(uint8(code))
	w.Text(codec.PrefixUvarint, MaxErrorBytes, "error", sanitize(msg))
	return w.B
}

func decodeError(body []byte) (errCode, string, error) {
	r := codec.NewReader(body, errWire)
	c := errCode(r.Enum("error code", uint8(codeEnd)))
	m := r.Text(codec.PrefixUvarint, MaxErrorBytes, "error")
	if err := r.Finish(); err != nil {
		return 0, "", err
	}
	if c == 0 {
		return 0, "", fmt.Errorf("%w: error code 0", errWire)
	}
	return c, m, nil
}

// sanitize replaces control characters (Text refuses them).
func sanitize(s string) string {
	out := []rune(nil)
	for i, c := range s {
		if codec.IsControl(c) {
			if out == nil {
				out = []rune(s[:i])
			}
			out = append(out, '?')
		} else if out != nil {
			out = append(out, c)
		}
	}
	if out == nil {
		return s
	}
	return string(out)
}

// batch is one answer of rows.
type batch struct {
	seq       uint64
	last      bool
	cursor    uint64 // the last seq a row of this fragment came from (resume point)
	scanned   uint64 // records scanned so far by the fragment
	truncated string // non-empty: the fragment stopped early, and why
	cols      []api.QueryColumn
	rows      []api.QueryRow
}

func encodeBatch(qid uint64, bt *batch) ([]byte, error) {
	w := codec.NewWriter(appendHeader(make([]byte, 0, 4096), msgBatch, qid), errWire)
	w.Uvarint(bt.seq)
	w.Bool(bt.last)
	w.Uvarint(bt.cursor)
	w.Uvarint(bt.scanned)
	w.Text(codec.PrefixUvarint, MaxErrorBytes, "truncated", sanitize(bt.truncated))
	w.Count("columns", len(bt.cols), MaxColumns)
	for _, c := range bt.cols {
		w.U8(uint8(c.Kind))
	}
	w.Count("rows", len(bt.rows), BatchMaxRows)
	for _, r := range bt.rows {
		for i := range bt.cols {
			if i < len(r) {
				appendValue(&w, r[i])
			} else {
				appendValue(&w, api.Null())
			}
		}
	}
	return w.B, w.Err()
}

// decodeBatch decodes a batch whose columns must be cols (what the
// coordinator asked for): a holder cannot change a query's shape. Values
// are copied out of body (it may be a reused buffer).
func decodeBatch(body []byte, cols []api.QueryColumn) (*batch, error) {
	r := codec.NewReader(body, errWire)
	bt := &batch{seq: r.Uvarint(), last: r.Bool(), cursor: r.Uvarint(), scanned: r.Uvarint()}
	bt.truncated = r.Text(codec.PrefixUvarint, MaxErrorBytes, "truncated")
	n := r.Count("columns", MaxColumns, 1)
	if r.Err() == nil && n != len(cols) {
		return nil, fmt.Errorf("%w: batch of %d columns, want %d", errWire, n, len(cols))
	}
	for i := range n {
		k := api.ValueKind(r.U8())
		if r.Err() == nil && k != cols[i].Kind {
			return nil, fmt.Errorf("%w: column %s is %s, want %s", errWire, cols[i].Name, k, cols[i].Kind)
		}
	}
	nrows := r.Count("rows", BatchMaxRows, n)
	bt.cols = cols
	bt.rows = make([]api.QueryRow, 0, nrows)
	for range nrows {
		row := make(api.QueryRow, n)
		for i := range row {
			v := readValue(&r)
			if r.Err() != nil {
				break
			}
			if v.Kind != api.KindNull && v.Kind != cols[i].Kind {
				return nil, fmt.Errorf("%w: a %s value in %s column %s", errWire, v.Kind, cols[i].Kind, cols[i].Name)
			}
			if v.Kind == api.KindBytes {
				v.B = append([]byte(nil), v.B...) // String already copied
			}
			row[i] = v
		}
		bt.rows = append(bt.rows, row)
	}
	if err := r.Finish(); err != nil {
		return nil, err
	}
	return bt, nil
}
