package query

import (
	"errors"
	"fmt"

	"github.com/deck-mesh/deck/node/api"
)

// timeOrderSlack is how far a record's own time may trail its append
// time (the log queue's delay): a time range stops scanning once append
// times pass its end by this much.
const timeOrderSlack int64 = 60e9

// runner executes one fragment against a source, resumably: step scans at
// most a slice of records and returns, keeping its place, so a worker
// serves many fragments in turns and a coordinator's pull asks for exactly
// one more batch.
type runner struct {
	f      *Fragment
	src    source
	in     []api.QueryColumn
	out    []api.QueryColumn
	budget *memBudget

	planned bool
	from    uint64 // next seq to visit (forward), or lowest seq (reverse)
	to      uint64 // highest seq to visit (forward), or next seq to visit (reverse)
	reverse bool
	endAt   int64 // forward time ranges: stop past this append time (0: none)

	scanned   uint64
	matched   uint64
	cursor    uint64
	truncated string
	done      bool // the scan is over
	flushed   bool // every row went out (the last batch was made)

	pending  []api.QueryRow
	pendSize int
	agg      *aggTable
	aggRows  []api.QueryRow // finished partial groups waiting to go out
	keyBuf   []api.Value
	maxScan  uint64
}

// newRunner prepares f over src; it reads nothing yet.
func newRunner(f *Fragment, src source, memLimit int64, maxScan uint64) *runner {
	r := &runner{f: f, src: src, in: f.inColumns(), out: f.outColumns(), budget: newBudget(memLimit, "the fragment"), maxScan: maxScan}
	if f.Agg != nil {
		r.agg = newAggTable(f.Agg.Aggs, r.budget)
	}
	return r
}

// plan turns the read into a seq interval and a direction.
func (r *runner) plan() error {
	r.planned = true
	first, last := r.src.bounds()
	rd := r.f.Read
	if last == 0 {
		r.done = true
		return nil
	}
	r.from, r.to = first, last
	switch rd.Kind {
	case readLatest:
		r.reverse = true
		if rd.To > 0 && r.f.Family.timed() {
			// latest before a time (the planner lifts `at < T` here): start
			// where append times pass T, not at the head.
			if seq, ok, err := r.src.firstAtOrAfter(rd.To + timeOrderSlack + 1); err != nil {
				return err
			} else if ok && seq > first {
				r.to = min(seq-1, last)
			} else if ok {
				r.done = true
			}
		}
	case readAtSeq:
		s := uint64(rd.From)
		if rd.From <= 0 || s < first || s > last {
			r.done = true
		}
		r.from, r.to = s, s
	case readAtTime:
		r.reverse = true
		if seq, ok, err := r.src.firstAtOrAfter(rd.From + timeOrderSlack + 1); err != nil {
			return err
		} else if ok && seq > first {
			r.to = min(seq-1, last)
		}
	case readSeqRange:
		r.from = max(first, uint64(max(rd.From, 0)))
		if rd.To > 0 {
			r.to = min(last, uint64(rd.To))
		}
		if r.from > r.to {
			r.done = true
		}
	case readTimeRange:
		if seq, ok, err := r.src.firstAtOrAfter(rd.From); err != nil {
			return err
		} else if ok {
			r.from = max(seq, first)
			r.endAt = rd.To + timeOrderSlack
		}
		if r.from > r.to {
			r.done = true
		}
	case readBounds:
		return r.planBounds(first, last)
	}
	return nil
}

// planBounds makes bounds' one row.
func (r *runner) planBounds(first, last uint64) error {
	var lo, hi api.QueryRow
	var n int64
	// A per-node log holds only its node's records except a console's
	// snapshots log: count the instance's records by scanning (bounded by
	// retention), and take the first and last of them.
	err := r.src.scan(first, last, false, func(seq uint64, _ int64, row api.QueryRow) bool {
		r.scanned++
		if row == nil {
			return r.scanned < r.maxScan
		}
		if lo == nil {
			lo = row
		}
		hi = row
		n++
		return r.scanned < r.maxScan
	})
	if err != nil {
		return err
	}
	r.done = true
	if lo == nil {
		return nil
	}
	timeOf := func(row api.QueryRow) api.Value {
		if r.f.Family.hasTime() {
			return row[colAt]
		}
		return api.Null()
	}
	chain := r.f.Chain
	if chain == "" {
		chain = r.f.Family.String()
	}
	inst := api.Null()
	if r.f.Instance != 0 {
		inst = api.NodeValue(r.f.Instance)
	}
	r.pending = append(r.pending, api.QueryRow{api.StringValue(chain), inst, api.Null(),
		lo[colSeq], hi[colSeq], timeOf(lo), timeOf(hi), api.IntValue(n)})
	return nil
}

// step scans up to slice records and returns a batch when one is ready:
// full, or the last. nil with no error: call again (the slice ran out).
func (r *runner) step(slice int) (*batch, error) {
	if !r.planned {
		if err := r.plan(); err != nil {
			return nil, err
		}
	}
	turn := 0
	for !r.done && turn < slice && !r.full() {
		n, err := r.scanSome(slice - turn)
		turn += n
		if err != nil {
			return nil, err
		}
		if n == 0 {
			r.done = true
		}
	}
	if r.done && r.agg != nil && r.aggRows == nil && !r.flushed {
		rows, err := r.agg.partialRows()
		if err != nil {
			return nil, err
		}
		r.aggRows = rows
		r.agg = nil
		if rows == nil {
			r.aggRows = []api.QueryRow{}
		}
	}
	for len(r.aggRows) > 0 && !r.full() {
		r.push(r.aggRows[0])
		r.aggRows = r.aggRows[1:]
	}
	if r.full() || (r.done && len(r.aggRows) == 0) {
		return r.take(), nil
	}
	return nil, nil
}

func (r *runner) full() bool { return len(r.pending) >= BatchMaxRows || r.pendSize >= BatchMaxBytes }

func (r *runner) push(row api.QueryRow) {
	r.pending = append(r.pending, row)
	r.pendSize += row.Size()
}

// take makes the next batch of what is pending.
func (r *runner) take() *batch {
	last := r.done && len(r.aggRows) == 0 && r.agg == nil
	bt := &batch{last: last, cursor: r.cursor, scanned: r.scanned, truncated: r.truncated, cols: r.out}
	// A row bigger than the batch (a huge snapshot) goes alone.
	n, size := 0, 0
	for n < len(r.pending) && n < BatchMaxRows {
		s := r.pending[n].Size()
		if n > 0 && size+s > BatchMaxBytes {
			break
		}
		size += s
		n++
	}
	bt.rows = r.pending[:n:n]
	r.pending = r.pending[n:]
	r.pendSize -= size
	if len(r.pending) > 0 {
		bt.last = false
	}
	if bt.last {
		r.flushed = true
	}
	return bt
}

// scanSome visits up to limit records of the interval left.
func (r *runner) scanSome(limit int) (int, error) {
	if r.from > r.to {
		r.done = true
		return 0, nil
	}
	visited := 0
	stop := false
	var ferr error
	err := r.src.scan(r.from, r.to, r.reverse, func(seq uint64, at int64, row api.QueryRow) bool {
		visited++
		r.scanned++
		if r.reverse {
			if seq == 0 || seq <= r.from {
				r.to, r.from = r.from, r.from+1 // nothing left after this record
			} else {
				r.to = seq - 1
			}
		} else {
			if seq == ^uint64(0) {
				r.from, r.to = 1, 0
			} else {
				r.from = seq + 1
			}
		}
		if r.endAt != 0 && at > r.endAt {
			stop = true
			return false
		}
		if row != nil {
			if err := r.consider(seq, row); err != nil {
				ferr = err
				return false
			}
		}
		if r.scanned >= r.maxScan {
			r.truncated = fmt.Sprintf("scan budget of %d records reached at seq %d", r.maxScan, seq)
			stop = true
			return false
		}
		if r.done {
			stop = true
			return false
		}
		return visited < limit && !r.full()
	})
	if err == nil {
		err = ferr
	}
	if err != nil {
		return visited, err
	}
	if stop || r.from > r.to || (visited < limit && !r.full()) {
		// The source ran out before the limit: the interval is done.
		r.done = true
	}
	return max(visited, 1), nil
}

// consider runs one record through the fragment: range, filter, window,
// then the aggregate or the batch.
func (r *runner) consider(seq uint64, row api.QueryRow) error {
	rd := r.f.Read
	switch rd.Kind {
	case readTimeRange:
		if at := row[colAt]; at.Kind != api.KindTime || at.I < rd.From || at.I > rd.To {
			return nil
		}
	case readAtTime:
		if at := row[colAt]; at.Kind != api.KindTime || at.I > rd.From {
			return nil
		}
	}
	if r.f.Filter != nil && !r.f.Filter.test(row) {
		return nil
	}
	if r.f.Window.Kind != windowNone {
		row = append(row[:len(row):len(row)], windowOf(r.f.Window, row))
	}
	r.cursor = seq
	r.matched++
	if r.agg != nil {
		r.keyBuf = r.keyBuf[:0]
		for _, g := range r.f.Agg.Group {
			r.keyBuf = append(r.keyBuf, row[g])
		}
		if err := r.agg.add(r.keyBuf, row); err != nil {
			return err
		}
	} else {
		r.push(project(row, r.f.Needed))
	}
	switch {
	case rd.Kind == readLatest && r.matched >= rd.N,
		rd.Kind == readAtSeq, rd.Kind == readAtTime,
		r.f.Limit > 0 && r.matched >= r.f.Limit:
		r.done = true
	}
	return nil
}

// windowOf is the row's tumbling window start.
func windowOf(w Window, row api.QueryRow) api.Value {
	switch w.Kind {
	case windowTime:
		at := row[colAt]
		if at.Kind != api.KindTime {
			return api.Null()
		}
		return api.Value{Kind: api.KindTime, I: floorDiv(at.I, w.Width) * w.Width}
	case windowSeq:
		s := row[colSeq]
		return api.IntValue(floorDiv(s.I, w.Width) * w.Width)
	}
	return api.Null()
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// project nulls the columns a fragment does not need to send.
func project(row api.QueryRow, needed uint64) api.QueryRow {
	if needed == 0 {
		return row
	}
	out := make(api.QueryRow, len(row))
	for i := range row {
		if i >= 64 || needed&(1<<i) != 0 {
			out[i] = row[i]
		}
	}
	return out
}

// codeOf classifies a runner error for the wire.
func codeOf(err error) errCode {
	switch {
	case errors.Is(err, api.ErrQueryMemory):
		return codeMemory
	case errors.Is(err, errNotHeld):
		return codeNotHeld
	case errors.Is(err, errWire):
		return codeInvalid
	}
	return codeInternal
}
