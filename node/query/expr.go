package query

import (
	"errors"
	"strings"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/codec"
)

// exprOp is a predicate node's operator.
type exprOp uint8

const (
	exprConst exprOp = iota // Val
	exprCol                 // the row's column Col
	exprEq                  // Kids[0] = Kids[1]
	exprNe
	exprLt
	exprLe
	exprGt
	exprGe
	exprMatch    // Kids[0] contains Kids[1], case-insensitively (Kids[1] a lower-cased string constant)
	exprNotMatch //
	exprAnd      // every kid
	exprOr       // any kid
	exprNot      // not Kids[0]
	exprOpCount
)

var exprOpText = [exprOpCount]string{"const", "col", "=", "!=", "<", "<=", ">", ">=", "~", "!~", "and", "or", "not"}

// Expr is a typed, resolved predicate over a row: columns are indexes,
// constants are typed values (node names resolved to ids, relative times
// to absolute ones), so a holder evaluates it without the planner's view.
type Expr struct {
	Op   exprOp
	Col  int
	Val  api.Value
	Kids []*Expr
}

func (e *Expr) value(row api.QueryRow) api.Value {
	switch e.Op {
	case exprConst:
		return e.Val
	case exprCol:
		if e.Col < len(row) {
			return row[e.Col]
		}
		return api.Null()
	}
	return api.BoolValue(e.test(row))
}

// test evaluates e as a predicate. A comparison with a null side is false
// (`!=` is true when exactly one side is null); a lone value is true when
// it is a true bool.
func (e *Expr) test(row api.QueryRow) bool {
	switch e.Op {
	case exprConst, exprCol:
		return e.value(row).Bool()
	case exprAnd:
		for _, k := range e.Kids {
			if !k.test(row) {
				return false
			}
		}
		return true
	case exprOr:
		for _, k := range e.Kids {
			if k.test(row) {
				return true
			}
		}
		return false
	case exprNot:
		return !e.Kids[0].test(row)
	case exprMatch, exprNotMatch:
		l, r := e.Kids[0].value(row), e.Kids[1].value(row)
		if l.Kind != api.KindString || r.Kind != api.KindString {
			return false
		}
		return containsFold(l.S, r.S) == (e.Op == exprMatch)
	}
	l, r := e.Kids[0].value(row), e.Kids[1].value(row)
	if l.IsNull() || r.IsNull() {
		return e.Op == exprNe && l.IsNull() != r.IsNull()
	}
	c := api.Compare(l, r)
	switch e.Op {
	case exprEq:
		return c == 0
	case exprNe:
		return c != 0
	case exprLt:
		return c < 0
	case exprLe:
		return c <= 0
	case exprGt:
		return c > 0
	case exprGe:
		return c >= 0
	}
	return false
}

// containsFold reports whether s contains lower (already lower case),
// ignoring case; ASCII fast path, Unicode folding otherwise.
func containsFold(s, lower string) bool {
	if lower == "" {
		return true
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return strings.Contains(strings.ToLower(s), lower)
		}
	}
	n := len(lower)
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for ; j < n; j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != lower[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}

// String prints e for plans, with column names from cols.
func (e *Expr) String(cols []api.QueryColumn) string {
	var b strings.Builder
	e.print(&b, cols)
	return b.String()
}

func (e *Expr) print(b *strings.Builder, cols []api.QueryColumn) {
	switch e.Op {
	case exprConst:
		b.WriteString(constText(e.Val))
	case exprCol:
		if e.Col < len(cols) {
			b.WriteString(cols[e.Col].Name)
		} else {
			b.WriteString("$" + itoa(e.Col))
		}
	case exprAnd, exprOr:
		for i, k := range e.Kids {
			if i > 0 {
				b.WriteString(" " + exprOpText[e.Op] + " ")
			}
			paren := k.Op == exprAnd || k.Op == exprOr
			if paren {
				b.WriteByte('(')
			}
			k.print(b, cols)
			if paren {
				b.WriteByte(')')
			}
		}
	case exprNot:
		b.WriteString("not (")
		e.Kids[0].print(b, cols)
		b.WriteByte(')')
	default:
		e.Kids[0].print(b, cols)
		b.WriteString(" " + exprOpText[e.Op] + " ")
		e.Kids[1].print(b, cols)
	}
}

// constText is a constant as the plan shows it: strings quoted, times
// absolute.
func constText(v api.Value) string {
	if v.Kind == api.KindString {
		return quote(v.S)
	}
	if v.Kind == api.KindLevel {
		return strings.ToLower(v.String())
	}
	return v.String()
}

// conj splits e into its top-level conjuncts.
func conj(e *Expr) []*Expr {
	if e == nil {
		return nil
	}
	if e.Op == exprAnd {
		var out []*Expr
		for _, k := range e.Kids {
			out = append(out, conj(k)...)
		}
		return out
	}
	return []*Expr{e}
}

// andOf joins conjuncts (nil for none).
func andOf(es []*Expr) *Expr {
	switch len(es) {
	case 0:
		return nil
	case 1:
		return es[0]
	}
	return &Expr{Op: exprAnd, Kids: es}
}

// columns lists the columns e reads.
func (e *Expr) columns(into map[int]bool) {
	if e == nil {
		return
	}
	if e.Op == exprCol {
		into[e.Col] = true
	}
	for _, k := range e.Kids {
		k.columns(into)
	}
}

// remap rewrites column indexes through m (m[i] < 0: not available);
// false when e reads a column m drops.
func (e *Expr) remap(m []int) (*Expr, bool) {
	cp := *e
	if e.Op == exprCol {
		if e.Col >= len(m) || m[e.Col] < 0 {
			return nil, false
		}
		cp.Col = m[e.Col]
		return &cp, true
	}
	cp.Kids = make([]*Expr, len(e.Kids))
	for i, k := range e.Kids {
		nk, ok := k.remap(m)
		if !ok {
			return nil, false
		}
		cp.Kids[i] = nk
	}
	return &cp, true
}

// appendExpr encodes e:
//
//	op(1) then: const: value | col: uvarint | and/or: count(uvarint) exprs |
//	not: expr | comparisons: expr expr
func appendExpr(w *codec.Writer, e *Expr) {
	w.U8(uint8(e.Op))
	switch e.Op {
	case exprConst:
		appendValue(w, e.Val)
	case exprCol:
		w.Uvarint(uint64(e.Col))
	case exprAnd, exprOr:
		w.Uvarint(uint64(len(e.Kids)))
		for _, k := range e.Kids {
			appendExpr(w, k)
		}
	case exprNot:
		appendExpr(w, e.Kids[0])
	default:
		appendExpr(w, e.Kids[0])
		appendExpr(w, e.Kids[1])
	}
}

// exprDecoder bounds a predicate's size and depth while it decodes.
type exprDecoder struct {
	r     *codec.Reader
	ncols int
	nodes int
}

var errExpr = errors.New("predicate")

func (d *exprDecoder) decode(depth int) *Expr {
	if d.r.Err() != nil {
		return nil
	}
	d.nodes++
	if d.nodes > MaxExprNodes || depth > MaxExprDepth {
		d.r.Failf(codec.ErrTooLarge, "predicate beyond %d nodes or %d deep", MaxExprNodes, MaxExprDepth)
		return nil
	}
	e := &Expr{Op: exprOp(d.r.Enum("predicate op", uint8(exprOpCount)))}
	switch e.Op {
	case exprConst:
		e.Val = readValue(d.r)
	case exprCol:
		c := d.r.Uvarint()
		if d.r.Err() == nil && c >= uint64(d.ncols) {
			d.r.Failf(codec.ErrMalformed, "predicate column %d of %d", c, d.ncols)
			return nil
		}
		e.Col = int(c)
	case exprAnd, exprOr:
		n := d.r.Count("predicate terms", MaxExprNodes, 2)
		if d.r.Err() == nil && n < 1 {
			d.r.Failf(codec.ErrMalformed, "empty %s", exprOpText[e.Op])
		}
		for range n {
			e.Kids = append(e.Kids, d.decode(depth+1))
		}
	case exprNot:
		e.Kids = []*Expr{d.decode(depth + 1)}
	default:
		e.Kids = []*Expr{d.decode(depth + 1), d.decode(depth + 1)}
		if (e.Op == exprMatch || e.Op == exprNotMatch) && d.r.Err() == nil {
			// The pattern is a string constant, compared lower-cased.
			if k := e.Kids[1]; k.Op != exprConst || k.Val.Kind != api.KindString {
				d.r.Failf(codec.ErrMalformed, "~ needs a string constant")
			} else {
				k.Val.S = strings.ToLower(k.Val.S)
			}
		}
	}
	if d.r.Err() != nil {
		return nil
	}
	return e
}
