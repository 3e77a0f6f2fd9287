package query

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/codec"
	"github.com/deck-mesh/deck/node/identity"
)

// The coordinator runs a plan: each fragment on its holder (this node's
// store directly, another node over the wire), the composite operators
// here, pulling rows through a tree of streams. Memory it holds for the
// query (join tables, groups, sort buffers) is charged to the query's
// budget; fragments feed a bounded union, so a slow consumer slows the
// holders instead of filling memory.

// stream yields batches of rows; nil, nil is the end.
type stream interface {
	next(ctx context.Context) ([]api.QueryRow, error)
}

// execution is one run of a plan.
type execution struct {
	e      *Engine
	plan   *Plan
	budget *memBudget

	// fragCtx ends every fragment: a limit that is satisfied cancels it,
	// and then the fragments' ends are not losses.
	fragCtx    context.Context
	fragCancel context.CancelFunc

	mu        sync.Mutex
	status    api.QueryStatus
	limited   bool
	fatal     error
	fragStats map[int]uint64 // scanned, per fragment
}

func (x *execution) missing(pf *planFrag, holder identity.NodeID, why string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.limited {
		return
	}
	x.status.Partial = true
	x.status.Missing = append(x.status.Missing, api.QueryMissing{Fragment: pf.id, Chain: pf.chain, Instance: pf.instance, Holder: holder, Reason: why})
}

func (x *execution) fail(err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.fatal == nil {
		x.fatal = err
	}
	x.fragCancel()
}

func (x *execution) scanned(pf *planFrag, n uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.fragStats[pf.id] = max(x.fragStats[pf.id], n)
}

// build turns the operator tree into streams.
func (x *execution) build(o op) stream {
	switch o := o.(type) {
	case *opFrags:
		return x.union(o)
	case *opMergeAgg:
		return &aggStream{x: x, kid: x.build(o.kid), table: newAggTable(o.specs, x.budget), nkey: o.nkey, merge: true, in: o.in}
	case *opAgg:
		return &aggStream{x: x, kid: x.build(o.kid), table: newAggTable(o.specs, x.budget), group: o.group, in: o.kid.columns()}
	case *opFilter:
		return mapStream{kid: x.build(o.kid), fn: func(rows []api.QueryRow) []api.QueryRow {
			out := rows[:0:0]
			for _, r := range rows {
				if o.e.test(r) {
					out = append(out, r)
				}
			}
			return out
		}}
	case *opWindow:
		return mapStream{kid: x.build(o.kid), fn: func(rows []api.QueryRow) []api.QueryRow {
			out := make([]api.QueryRow, len(rows))
			for i, r := range rows {
				w := api.Null()
				if o.src >= 0 {
					if v := r[o.src]; o.w.Kind == windowTime && v.Kind == api.KindTime {
						w = api.Value{Kind: api.KindTime, I: floorDiv(v.I, o.w.Width) * o.w.Width}
					} else if o.w.Kind == windowSeq && v.Kind == api.KindInt {
						w = api.IntValue(floorDiv(v.I, o.w.Width) * o.w.Width)
					}
				}
				out[i] = append(r[:len(r):len(r)], w)
			}
			return out
		}}
	case *opProject:
		return mapStream{kid: x.build(o.kid), fn: func(rows []api.QueryRow) []api.QueryRow {
			out := make([]api.QueryRow, len(rows))
			for i, r := range rows {
				p := make(api.QueryRow, len(o.idx))
				for j, k := range o.idx {
					p[j] = r[k]
				}
				out[i] = p
			}
			return out
		}}
	case *opLimit:
		return &limitStream{x: x, kid: x.build(o.kid), left: o.n}
	case *opSort:
		return &sortStream{x: x, kid: x.build(o.kid), keys: o.keys}
	case *opJoin:
		return &joinStream{x: x, left: x.build(o.left), right: x.build(o.right), o: o}
	case *opRows:
		return &rowsStream{rows: o.rows}
	}
	return &rowsStream{}
}

// mapStream transforms each batch.
type mapStream struct {
	kid stream
	fn  func([]api.QueryRow) []api.QueryRow
}

func (s mapStream) next(ctx context.Context) ([]api.QueryRow, error) {
	for {
		rows, err := s.kid.next(ctx)
		if rows == nil || err != nil {
			return nil, err
		}
		if out := s.fn(rows); len(out) > 0 {
			return out, nil
		}
	}
}

type rowsStream struct {
	rows []api.QueryRow
	done bool
}

func (s *rowsStream) next(context.Context) ([]api.QueryRow, error) {
	if s.done || len(s.rows) == 0 {
		return nil, nil
	}
	s.done = true
	return s.rows, nil
}

// limitStream cuts at n rows and ends the fragments: nothing more is read.
type limitStream struct {
	x    *execution
	kid  stream
	left uint64
}

func (s *limitStream) next(ctx context.Context) ([]api.QueryRow, error) {
	if s.left == 0 {
		return nil, nil
	}
	rows, err := s.kid.next(ctx)
	if rows == nil || err != nil {
		return nil, err
	}
	if uint64(len(rows)) >= s.left {
		rows = rows[:s.left]
		s.left = 0
		s.x.mu.Lock()
		s.x.limited = true
		s.x.mu.Unlock()
		s.x.fragCancel()
		return rows, nil
	}
	s.left -= uint64(len(rows))
	return rows, nil
}

// drain reads a stream to its end, charging the rows to the budget.
func drain(ctx context.Context, x *execution, s stream, fn func(api.QueryRow) error) error {
	for {
		rows, err := s.next(ctx)
		if err != nil {
			return err
		}
		if rows == nil {
			return nil
		}
		for _, r := range rows {
			if err := fn(r); err != nil {
				return err
			}
		}
	}
}

// aggStream aggregates its input (or merges partial states) and yields
// the groups in batches.
type aggStream struct {
	x     *execution
	kid   stream
	table *aggTable
	in    []api.QueryColumn
	group []int
	nkey  int
	merge bool
	out   []api.QueryRow
	done  bool
}

func (s *aggStream) next(ctx context.Context) ([]api.QueryRow, error) {
	if !s.done {
		s.done = true
		key := make([]api.Value, len(s.group))
		err := drain(ctx, s.x, s.kid, func(r api.QueryRow) error {
			if s.merge {
				return s.table.mergeRow(r, s.nkey)
			}
			for i, g := range s.group {
				key[i] = r[g]
			}
			return s.table.add(key, r)
		})
		if err != nil {
			return nil, err
		}
		s.out = s.table.finalRows(s.in)
	}
	return takeBatch(&s.out), nil
}

// takeBatch pops up to BatchMaxRows rows.
func takeBatch(rows *[]api.QueryRow) []api.QueryRow {
	if len(*rows) == 0 {
		return nil
	}
	n := min(len(*rows), BatchMaxRows)
	out := (*rows)[:n:n]
	*rows = (*rows)[n:]
	return out
}

// sortStream sorts its whole input (held in the query's budget).
type sortStream struct {
	x    *execution
	kid  stream
	keys []sortKey
	out  []api.QueryRow
	done bool
}

func (s *sortStream) next(ctx context.Context) ([]api.QueryRow, error) {
	if !s.done {
		s.done = true
		err := drain(ctx, s.x, s.kid, func(r api.QueryRow) error {
			if err := s.x.budget.add(int64(r.Size())); err != nil {
				return fmt.Errorf("sort: %w", err)
			}
			s.out = append(s.out, r)
			return nil
		})
		if err != nil {
			return nil, err
		}
		slices.SortStableFunc(s.out, func(a, b api.QueryRow) int {
			for _, k := range s.keys {
				c := api.Compare(a[k.col], b[k.col])
				if k.desc {
					c = -c
				}
				if c != 0 {
					return c
				}
			}
			return 0
		})
	}
	return takeBatch(&s.out), nil
}

// joinStream is a hash join: the right side is built into a table in the
// query's budget (a right side too large fails with ErrQueryMemory), the
// left side streams through it.
type joinStream struct {
	x           *execution
	left, right stream
	o           *opJoin
	table       map[string][]api.QueryRow
	built       bool
	keyBuf      []byte
	nright      int
	pending     []api.QueryRow // left rows not yet joined
	match       int            // next match of pending[0]
}

func (s *joinStream) key(v api.Value) string {
	w := codec.NewWriter(s.keyBuf[:0], errWire)
	appendValue(&w, v)
	s.keyBuf = w.B
	return string(w.B)
}

func (s *joinStream) next(ctx context.Context) ([]api.QueryRow, error) {
	if !s.built {
		s.built = true
		s.table = map[string][]api.QueryRow{}
		s.nright = len(s.o.right.columns())
		err := drain(ctx, s.x, s.right, func(r api.QueryRow) error {
			k := r[s.o.rkey]
			if k.IsNull() {
				return nil // a null key joins nothing
			}
			if err := s.x.budget.add(int64(r.Size() + 64)); err != nil {
				return fmt.Errorf("join: %w", err)
			}
			ks := s.key(k)
			s.table[ks] = append(s.table[ks], r)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	// Each left row's matches go out in batches of at most BatchMaxRows,
	// so a key shared by many rows on both sides multiplies rows a batch
	// at a time, never a whole product in memory.
	var out []api.QueryRow
	for len(out) < BatchMaxRows {
		if len(s.pending) == 0 {
			if len(out) > 0 {
				return out, nil
			}
			rows, err := s.left.next(ctx)
			if rows == nil || err != nil {
				return nil, err
			}
			s.pending, s.match = rows, 0
		}
		l := s.pending[0]
		var matches []api.QueryRow
		if k := l[s.o.lkey]; !k.IsNull() {
			matches = s.table[s.key(k)]
		}
		if len(matches) == 0 {
			if s.o.outer {
				out = append(out, s.combine(l, nil))
			}
			s.pending, s.match = s.pending[1:], 0
			continue
		}
		for s.match < len(matches) && len(out) < BatchMaxRows {
			out = append(out, s.combine(l, matches[s.match]))
			s.match++
		}
		if s.match == len(matches) {
			s.pending, s.match = s.pending[1:], 0
		}
	}
	return out, nil
}

func (s *joinStream) combine(l, r api.QueryRow) api.QueryRow {
	out := make(api.QueryRow, 0, len(s.o.cols))
	out = append(out, l[s.o.lkey])
	for i, v := range l {
		if i != s.o.lkey {
			out = append(out, v)
		}
	}
	for i := 0; i < s.nright; i++ {
		if i == s.o.rkey {
			continue
		}
		if r == nil {
			out = append(out, api.Null())
		} else {
			out = append(out, r[i])
		}
	}
	return out
}

// fragBatch is rows from one fragment into the union.
type fragBatch struct {
	rows []api.QueryRow
	end  bool
}

// unionStream merges its fragments' rows in arrival order (add `| sort`
// for an order). Each fragment runs in its own goroutine; the channel
// bounds what waits for the consumer.
type unionStream struct {
	x       *execution
	ch      chan fragBatch
	running int
	started bool
	o       *opFrags
}

func (x *execution) union(o *opFrags) stream {
	return &unionStream{x: x, o: o, ch: make(chan fragBatch, max(len(o.frags), 4))}
}

func (s *unionStream) next(ctx context.Context) ([]api.QueryRow, error) {
	if !s.started {
		s.started = true
		s.running = len(s.o.frags)
		for _, id := range s.o.frags {
			pf := s.x.plan.Frags[id]
			go func() {
				s.x.runFragment(pf, s.ch)
				select {
				case s.ch <- fragBatch{end: true}:
				case <-s.x.fragCtx.Done():
					select {
					case s.ch <- fragBatch{end: true}:
					default:
						// The consumer is gone too; it counts ends by
						// the context instead.
					}
				}
			}()
		}
	}
	for s.running > 0 {
		select {
		case b := <-s.ch:
			if b.end {
				s.running--
				continue
			}
			if len(b.rows) > 0 {
				return b.rows, nil
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.x.fragCtx.Done():
			if err := s.x.fatalErr(); err != nil {
				return nil, err
			}
			// A limit ended the fragments: what is buffered still counts.
			select {
			case b := <-s.ch:
				if b.end {
					s.running--
					continue
				}
				if len(b.rows) > 0 {
					return b.rows, nil
				}
			default:
				return nil, nil
			}
		}
	}
	return nil, nil
}

func (x *execution) fatalErr() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.fatal
}

// holderError is a holder's error answer.
type holderError struct {
	code errCode
	msg  string
}

func (e *holderError) Error() string { return fmt.Sprintf("%s: %s", e.code, e.msg) }

// errHolderLost: the holder stopped answering.
var errHolderLost = errors.New("holder stopped answering")

// runFragment runs one fragment on its holders in turn: when one fails
// (unreachable, refused, lost mid-scan) the next takes over from the last
// row delivered; when none is left the fragment is reported missing.
func (x *execution) runFragment(pf *planFrag, out chan<- fragBatch) {
	ctx := x.fragCtx
	frag := *pf.frag
	var delivered, cursor uint64
	deliver := func(bt *batch, holder identity.NodeID) error {
		x.scanned(pf, bt.scanned)
		if bt.truncated != "" {
			x.missing(pf, holder, "truncated: "+bt.truncated)
		}
		if len(bt.rows) == 0 {
			return nil
		}
		if frag.Read.Kind == readBounds {
			for _, r := range bt.rows {
				r[2] = api.NodeValue(holder)
			}
		}
		select {
		case out <- fragBatch{rows: bt.rows}:
		case <-ctx.Done():
			return ctx.Err()
		}
		if frag.Agg == nil {
			delivered += uint64(len(bt.rows))
			cursor = bt.cursor
		}
		return nil
	}
	if len(pf.holders) == 0 {
		x.missing(pf, 0, pf.down)
		return
	}
	var lastErr error
	for i, holder := range pf.holders {
		if ctx.Err() != nil {
			return
		}
		if i == 0 && pf.down != "" && len(pf.holders) == 1 {
			x.missing(pf, holder, pf.down)
			return
		}
		f := frag
		if delivered > 0 {
			// Resume after the rows already delivered.
			if !resume(&f, cursor, delivered) {
				x.missing(pf, holder, "lost mid-read; cannot resume: "+lastErr.Error())
				return
			}
		}
		var err error
		switch {
		case holder == x.e.cfg.Self:
			err = x.e.runLocal(ctx, x.e.cfg.Store, &f, func(bt *batch) error { return deliver(bt, holder) })
		case x.e.cfg.Stores != nil:
			err = x.e.runLocal(ctx, x.e.cfg.Stores(holder), &f, func(bt *batch) error { return deliver(bt, holder) })
		default:
			err = x.e.runRemote(ctx, &f, holder, func(bt *batch) error { return deliver(bt, holder) })
		}
		if err == nil || ctx.Err() != nil {
			return
		}
		var he *holderError
		if errors.As(err, &he) && (he.code == codeMemory || he.code == codeInvalid) {
			if he.code == codeMemory {
				x.fail(fmt.Errorf("%w: on %s: %s", api.ErrQueryMemory, holder, he.msg))
			} else {
				x.fail(fmt.Errorf("%w: %s refused the fragment: %s", api.ErrInvalid, holder, he.msg))
			}
			return
		}
		if errors.Is(err, api.ErrQueryMemory) {
			x.fail(err)
			return
		}
		lastErr = err
		if i+1 < len(pf.holders) {
			x.e.stats.failovers.Add(1)
			x.mu.Lock()
			x.status.Failovers++
			x.mu.Unlock()
		}
	}
	x.missing(pf, pf.holders[len(pf.holders)-1], lastErr.Error())
}

// resume rewrites a row fragment to continue after delivered rows whose
// last seq was cursor; false when it cannot (an aggregate restarts whole,
// and has delivered nothing).
func resume(f *Fragment, cursor, delivered uint64) bool {
	if f.Agg != nil || f.Read.Kind == readBounds {
		return false
	}
	if f.Limit > 0 {
		if delivered >= f.Limit {
			return false
		}
		f.Limit -= delivered
	}
	switch f.Read.Kind {
	case readLatest:
		if delivered >= f.Read.N || cursor <= 1 {
			return false
		}
		f.Read.N -= delivered
		// Newest first: continue below the last seq delivered.
		f.Read = Read{Kind: readLatest, N: f.Read.N, To: f.Read.To}
		f.Filter = andOf(append(conj(f.Filter), &Expr{Op: exprLt, Kids: []*Expr{{Op: exprCol, Col: colSeq}, {Op: exprConst, Val: api.IntValue(int64(cursor))}}}))
		return true
	case readAll, readSeqRange:
		to := f.Read.To
		f.Read = Read{Kind: readSeqRange, From: int64(cursor) + 1, To: to}
		return true
	case readTimeRange:
		f.Filter = andOf(append(conj(f.Filter), &Expr{Op: exprGt, Kids: []*Expr{{Op: exprCol, Col: colSeq}, {Op: exprConst, Val: api.IntValue(int64(cursor))}}}))
		return true
	}
	return false
}

// runLocal runs a fragment on this node's own store, in slices like a
// holder serving a peer.
func (e *Engine) runLocal(ctx context.Context, st *Store, f *Fragment, deliver func(*batch) error) error {
	if st == nil {
		return fmt.Errorf("%w: no chains held there", errNotHeld)
	}
	src, err := st.open(f)
	if err != nil {
		return err
	}
	r := newRunner(f, src, MaxFragmentMemoryBytes, e.maxScan())
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		bt, err := r.step(ScanSliceRecords)
		if err != nil {
			return err
		}
		if bt == nil {
			continue
		}
		if err := deliver(bt); err != nil {
			return err
		}
		if bt.last {
			e.stats.localScanned.Add(r.scanned)
			return nil
		}
	}
}

// execute runs the plan into run and finishes it.
func (e *Engine) execute(ctx context.Context, plan *Plan, run *api.QueryRun, opts api.QueryOptions, started time.Time) {
	x := &execution{e: e, plan: plan, budget: newBudget(opts.MemoryLimitBytes, "the query"), fragStats: map[int]uint64{}}
	x.fragCtx, x.fragCancel = context.WithCancel(ctx)
	defer x.fragCancel()
	root := x.build(plan.Root)
	var rows uint64
	var cached []api.QueryRow
	cacheable := !opts.NoCache
	cachedBytes := 0
	var err error
	for {
		var b []api.QueryRow
		b, err = root.next(ctx)
		if err == nil {
			err = x.fatalErr()
		}
		if err != nil || b == nil {
			break
		}
		cut := false
		if rows+uint64(len(b)) > opts.MaxRows {
			b, cut = b[:opts.MaxRows-rows], true
		}
		rows += uint64(len(b))
		if cacheable {
			for _, r := range b {
				cachedBytes += r.Size()
			}
			if cachedBytes > ResultCacheEntryBytes {
				cacheable, cached = false, nil
			} else {
				cached = append(cached, b...)
			}
		}
		if err = run.Send(ctx, b); err != nil {
			break
		}
		if cut {
			x.mu.Lock()
			x.status.Partial = true
			x.status.Missing = append(x.status.Missing, api.QueryMissing{Fragment: -1, Reason: fmt.Sprintf("result cut at %d rows", opts.MaxRows)})
			x.limited = true
			x.mu.Unlock()
			cacheable = false
			break
		}
	}
	x.fragCancel()
	x.mu.Lock()
	st := x.status
	for _, n := range x.fragStats {
		st.Scanned += n
	}
	x.mu.Unlock()
	st.Rows, st.Elapsed, st.MemoryBytes = rows, time.Since(started), x.budget.used
	if err != nil {
		err = classify(ctx, err)
	} else if cacheable && !st.Partial {
		e.cache.put(plan.Key, cached, st)
	}
	if st.Partial {
		e.stats.partial.Add(1)
	}
	slices.SortFunc(st.Missing, func(a, b api.QueryMissing) int { return a.Fragment - b.Fragment })
	run.Finish(st, err)
}

// classify maps an execution error to the api's typed errors.
func classify(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%w: query deadline: %w", api.ErrTimeout, err)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("query cancelled: %w", err)
	}
	return err
}
