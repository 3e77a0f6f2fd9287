package query

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/codec"
)

// Aggregates are computed in two steps, so the rows stay where they are:
// each holder folds its records into partial states per group (the state
// travels as one bytes value per aggregate), and the coordinator merges
// the states of every holder and finishes them. count, sum, avg, min and
// max are exact and constant-size; distinct and percentile are exact
// (the states carry the distinct values, or every value), so they are
// bounded by the memory budgets and MaxStateValues.

// cell is one aggregate's state for one group.
type cell struct {
	n        int64 // values folded (rows, for count)
	isum     int64 // sum of an int column (exact)
	fsum     float64
	ints     bool // every value summed so far was an int
	min, max api.Value
	set      map[string]api.Value // distinct
	vals     []api.Value          // percentile
}

// group is one group's key and its cells.
type group struct {
	key   []api.Value
	cells []cell
}

// aggTable folds rows into groups. It charges its memory to a budget and
// fails with ErrQueryMemory beyond it.
type aggTable struct {
	specs  []AggSpec
	groups map[string]*group
	order  []*group // first-seen order (deterministic output given input order)
	budget *memBudget
	keyBuf []byte
}

func newAggTable(specs []AggSpec, budget *memBudget) *aggTable {
	return &aggTable{specs: specs, groups: map[string]*group{}, budget: budget}
}

// find returns the group of key values, creating it.
func (t *aggTable) find(key []api.Value) (*group, error) {
	w := codec.NewWriter(t.keyBuf[:0], errWire)
	for _, v := range key {
		appendValue(&w, v)
	}
	t.keyBuf = w.B
	if g, ok := t.groups[string(w.B)]; ok {
		return g, nil
	}
	size := int64(len(w.B)) + 96 + int64(len(t.specs))*96
	for _, v := range key {
		size += int64(v.Size())
	}
	if err := t.budget.add(size); err != nil {
		return nil, err
	}
	g := &group{key: slices.Clone(key), cells: make([]cell, len(t.specs))}
	for i := range g.cells {
		g.cells[i].ints = true
	}
	t.groups[string(w.B)] = g
	t.order = append(t.order, g)
	return g, nil
}

// add folds one row: key is its group, vals[i] the value of spec i's
// column (ignored for count).
func (t *aggTable) add(key []api.Value, row api.QueryRow) error {
	g, err := t.find(key)
	if err != nil {
		return err
	}
	for i, s := range t.specs {
		c := &g.cells[i]
		if s.Fn == aggCount {
			c.n++
			continue
		}
		var v api.Value
		if s.Col >= 0 && s.Col < len(row) {
			v = row[s.Col]
		}
		if v.IsNull() {
			continue
		}
		if err := t.fold(c, s.Fn, v); err != nil {
			return err
		}
	}
	return nil
}

func (t *aggTable) fold(c *cell, fn AggFn, v api.Value) error {
	switch fn {
	case aggSum, aggAvg:
		f, ok := v.Numeric()
		if !ok {
			return nil
		}
		c.n++
		c.fsum += f
		if v.Kind == api.KindInt {
			c.isum += v.I
		} else {
			c.ints = false
		}
	case aggMin:
		c.n++
		if c.min.IsNull() || api.Compare(v, c.min) < 0 {
			c.min = v
		}
	case aggMax:
		c.n++
		if c.max.IsNull() || api.Compare(v, c.max) > 0 {
			c.max = v
		}
	case aggDistinct:
		if c.set == nil {
			c.set = map[string]api.Value{}
		}
		w := codec.NewWriter(t.keyBuf[:0], errWire)
		appendValue(&w, v)
		t.keyBuf = w.B
		if _, ok := c.set[string(w.B)]; ok {
			return nil
		}
		if len(c.set) >= MaxStateValues {
			return fmt.Errorf("%w: more than %d distinct values in one group", api.ErrQueryMemory, MaxStateValues)
		}
		if err := t.budget.add(int64(len(w.B) + v.Size() + 48)); err != nil {
			return err
		}
		c.set[string(w.B)] = v
	case aggPercentile:
		if len(c.vals) >= MaxStateValues*16 {
			return fmt.Errorf("%w: more than %d values in one group's percentile", api.ErrQueryMemory, MaxStateValues*16)
		}
		if err := t.budget.add(int64(v.Size())); err != nil {
			return err
		}
		c.vals = append(c.vals, v)
	}
	return nil
}

// partialRows are the groups as a holder sends them: key values, then one
// state per aggregate.
func (t *aggTable) partialRows() ([]api.QueryRow, error) {
	out := make([]api.QueryRow, 0, len(t.order))
	for _, g := range t.order {
		row := make(api.QueryRow, 0, len(g.key)+len(g.cells))
		row = append(row, g.key...)
		for i := range g.cells {
			b, err := encodeState(&g.cells[i], t.specs[i].Fn)
			if err != nil {
				return nil, err
			}
			row = append(row, api.BytesValue(b))
		}
		out = append(out, row)
	}
	return out, nil
}

// mergeRow folds a holder's partial row (key values then states).
func (t *aggTable) mergeRow(row api.QueryRow, nkey int) error {
	if len(row) != nkey+len(t.specs) {
		return fmt.Errorf("%w: partial row of %d values", errWire, len(row))
	}
	g, err := t.find(row[:nkey])
	if err != nil {
		return err
	}
	for i, s := range t.specs {
		st := row[nkey+i]
		if st.Kind != api.KindBytes {
			return fmt.Errorf("%w: aggregate state is %s", errWire, st.Kind)
		}
		if err := t.mergeState(&g.cells[i], s.Fn, st.B); err != nil {
			return err
		}
	}
	return nil
}

// finalRows are the groups with finished values.
func (t *aggTable) finalRows(cols []api.QueryColumn) []api.QueryRow {
	out := make([]api.QueryRow, 0, len(t.order))
	for _, g := range t.order {
		row := make(api.QueryRow, 0, len(g.key)+len(g.cells))
		row = append(row, g.key...)
		for i, s := range t.specs {
			row = append(row, finish(&g.cells[i], s, cols))
		}
		out = append(out, row)
	}
	return out
}

// aggKind is the kind of an aggregate's finished value.
func aggKind(s AggSpec, cols []api.QueryColumn) api.ValueKind {
	switch s.Fn {
	case aggCount, aggDistinct:
		return api.KindInt
	case aggAvg:
		return api.KindFloat
	case aggSum:
		if s.Col >= 0 && cols[s.Col].Kind == api.KindInt {
			return api.KindInt
		}
		return api.KindFloat
	}
	if s.Col >= 0 && s.Col < len(cols) {
		return cols[s.Col].Kind // min, max, percentile: a value of the column
	}
	return api.KindNull
}

func finish(c *cell, s AggSpec, cols []api.QueryColumn) api.Value {
	switch s.Fn {
	case aggCount:
		return api.IntValue(c.n)
	case aggSum:
		if aggKind(s, cols) == api.KindInt {
			return api.IntValue(c.isum)
		}
		return api.FloatValue(c.fsum)
	case aggAvg:
		if c.n == 0 {
			return api.Null()
		}
		return api.FloatValue(c.fsum / float64(c.n))
	case aggMin:
		return c.min
	case aggMax:
		return c.max
	case aggDistinct:
		return api.IntValue(int64(len(c.set)))
	case aggPercentile:
		if len(c.vals) == 0 {
			return api.Null()
		}
		slices.SortFunc(c.vals, api.Compare)
		rank := int(math.Ceil(s.P / 100 * float64(len(c.vals))))
		rank = min(max(rank, 1), len(c.vals))
		return c.vals[rank-1]
	}
	return api.Null()
}

// encodeState is a cell's partial state:
//
//	count: n(uvarint)   sum, avg: n(uvarint) ints(bool) isum(varint) fsum(f64)
//	min, max: n(uvarint) value   distinct, percentile: count(uvarint) values
func encodeState(c *cell, fn AggFn) ([]byte, error) {
	w := codec.NewWriter(nil, errWire)
	switch fn {
	case aggCount:
		w.Uvarint(uint64(c.n))
	case aggSum, aggAvg:
		w.Uvarint(uint64(c.n))
		w.Bool(c.ints)
		w.Varint(c.isum)
		w.F64("sum", finiteOr0(c.fsum))
	case aggMin, aggMax:
		w.Uvarint(uint64(c.n))
		v := c.min
		if fn == aggMax {
			v = c.max
		}
		appendValue(&w, v)
	case aggDistinct:
		w.Uvarint(uint64(len(c.set)))
		keys := make([]string, 0, len(c.set))
		for k := range c.set {
			keys = append(keys, k)
		}
		slices.Sort(keys) // deterministic bytes
		for _, k := range keys {
			appendValue(&w, c.set[k])
		}
	case aggPercentile:
		w.Uvarint(uint64(len(c.vals)))
		for _, v := range c.vals {
			appendValue(&w, v)
		}
	}
	return w.B, w.Err()
}

func finiteOr0(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

// mergeState folds a partial state from a holder (untrusted bytes,
// bounded like every decoder).
func (t *aggTable) mergeState(c *cell, fn AggFn, b []byte) error {
	r := codec.NewReader(b, errWire)
	switch fn {
	case aggCount:
		c.n += int64(r.Uvarint())
	case aggSum, aggAvg:
		n, ints, isum, fsum := r.Uvarint(), r.Bool(), r.Varint(), r.F64("sum")
		if r.Err() == nil {
			c.n += int64(n)
			c.ints = c.ints && ints
			c.isum += isum
			c.fsum += fsum
		}
	case aggMin, aggMax:
		n := r.Uvarint()
		v := readValue(&r)
		if r.Err() == nil && n > 0 && !v.IsNull() {
			c.n += int64(n)
			if fn == aggMin && (c.min.IsNull() || api.Compare(v, c.min) < 0) {
				c.min = copyValue(v)
			}
			if fn == aggMax && (c.max.IsNull() || api.Compare(v, c.max) > 0) {
				c.max = copyValue(v)
			}
		}
	case aggDistinct, aggPercentile:
		n := r.Count("state values", MaxStateValues*16, 1)
		for range n {
			v := readValue(&r)
			if r.Err() != nil {
				break
			}
			if err := t.fold(c, fn, copyValue(v)); err != nil {
				return err
			}
		}
	}
	return r.Finish()
}

// copyValue detaches v's bytes from a message buffer.
func copyValue(v api.Value) api.Value {
	if v.Kind == api.KindBytes {
		v.B = append([]byte(nil), v.B...)
	}
	if v.Kind == api.KindString {
		v.S = strings.Clone(v.S)
	}
	return v
}

// memBudget is a query's (or a fragment's) memory account.
type memBudget struct {
	used, limit int64
	what        string
}

func newBudget(limit int64, what string) *memBudget { return &memBudget{limit: limit, what: what} }

// add charges n bytes; beyond the limit it fails with ErrQueryMemory and
// charges nothing.
func (b *memBudget) add(n int64) error {
	if b == nil {
		return nil
	}
	if b.used+n > b.limit {
		return fmt.Errorf("%w: %s needs more than %d bytes", api.ErrQueryMemory, b.what, b.limit)
	}
	b.used += n
	return nil
}
