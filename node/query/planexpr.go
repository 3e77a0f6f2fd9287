package query

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/query/lang"
	"github.com/deck-mesh/deck/node/snapshot"
)

// expr type-checks a predicate over cols and resolves its constants: a
// name is a column when cols has it, else a literal of the other side's
// kind (`daemon = forge-1`, `level >= warn`); node names become ids, times
// and durations absolute times.
func (p *planner) expr(e *lang.Expr, cols []api.QueryColumn) (*Expr, error) {
	var ors []*Expr
	for _, a := range e.Or {
		var ands []*Expr
		for _, n := range a.And {
			x, err := p.notExpr(n, cols)
			if err != nil {
				return nil, err
			}
			ands = append(ands, x)
		}
		ors = append(ors, andOf(ands))
	}
	if len(ors) == 1 {
		return ors[0], nil
	}
	return &Expr{Op: exprOr, Kids: ors}, nil
}

func (p *planner) notExpr(n *lang.NotExpr, cols []api.QueryColumn) (*Expr, error) {
	switch {
	case n.Not != nil:
		x, err := p.notExpr(n.Not, cols)
		if err != nil {
			return nil, err
		}
		return &Expr{Op: exprNot, Kids: []*Expr{x}}, nil
	case n.Paren != nil:
		return p.expr(n.Paren, cols)
	}
	if n.Op == "" {
		// A lone value: a bool column.
		i := p.colOf(n.Left, cols)
		if i < 0 || cols[i].Kind != api.KindBool {
			return nil, p.errAt(n.Left.Pos, "%s is not a bool column: compare it (%s = …)", n.Left.Text(), n.Left.Text())
		}
		return &Expr{Op: exprCol, Col: i}, nil
	}
	l, r := n.Left, n.Right
	li, ri := p.colOf(l, cols), p.colOf(r, cols)
	op := map[string]exprOp{"=": exprEq, "==": exprEq, "!=": exprNe, "<": exprLt, "<=": exprLe, ">": exprGt, ">=": exprGe, "~": exprMatch, "!~": exprNotMatch}[n.Op]
	if li < 0 && ri >= 0 {
		// constant op column: flip to column op constant.
		l, r, li, ri = r, l, ri, li
		op = map[exprOp]exprOp{exprEq: exprEq, exprNe: exprNe, exprLt: exprGt, exprLe: exprGe, exprGt: exprLt, exprGe: exprLe, exprMatch: exprMatch, exprNotMatch: exprNotMatch}[op]
		if op == exprMatch || op == exprNotMatch {
			return nil, p.errAt(n.Pos, "~ matches a column against a string: column ~ \"text\"")
		}
	}
	if li < 0 {
		return nil, p.errAt(l.Pos, "no column %q (%s)", l.Text(), names(cols))
	}
	left := &Expr{Op: exprCol, Col: li}
	lk := cols[li].Kind
	if op == exprMatch || op == exprNotMatch {
		if lk != api.KindString {
			return nil, p.errAt(l.Pos, "~ needs a string column; %s is %s", cols[li].Name, lk)
		}
		if r.String == nil && r.Ident == nil {
			return nil, p.errAt(r.Pos, "~ needs a string")
		}
		s := r.Text()
		if r.String != nil {
			s = *r.String
		}
		return &Expr{Op: op, Kids: []*Expr{left, {Op: exprConst, Val: api.StringValue(strings.ToLower(s))}}}, nil
	}
	if ri >= 0 {
		rk := cols[ri].Kind
		if lk != rk && !(numericKind(lk) && numericKind(rk)) {
			return nil, p.errAt(n.Pos, "%s (%s) and %s (%s) do not compare", cols[li].Name, lk, cols[ri].Name, rk)
		}
		return &Expr{Op: op, Kids: []*Expr{left, {Op: exprCol, Col: ri}}}, nil
	}
	v, err := p.constant(r, lk)
	if err != nil {
		return nil, err
	}
	if lk == api.KindBytes && op != exprEq && op != exprNe {
		return nil, p.errAt(n.Pos, "bytes compare only with = and !=")
	}
	return &Expr{Op: op, Kids: []*Expr{left, {Op: exprConst, Val: v}}}, nil
}

func numericKind(k api.ValueKind) bool { return k == api.KindInt || k == api.KindFloat }

// colOf is the column a value names, or -1.
func (p *planner) colOf(v *lang.Value, cols []api.QueryColumn) int {
	if v == nil || v.Ident == nil {
		return -1
	}
	return columnIndex(cols, *v.Ident)
}

// constant reads v as a constant of kind k.
func (p *planner) constant(v *lang.Value, k api.ValueKind) (api.Value, error) {
	text := v.Text()
	if v.String != nil {
		text = *v.String
	}
	bad := func(want string) (api.Value, error) {
		return api.Value{}, p.errAt(v.Pos, "%s is not %s", v.Text(), want)
	}
	switch k {
	case api.KindInt:
		if v.Number == nil {
			return bad("a whole number")
		}
		if i, err := strconv.ParseInt(text, 10, 64); err == nil {
			return api.IntValue(i), nil
		}
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return bad("a number")
		}
		return api.FloatValue(f), nil
	case api.KindFloat:
		f, err := strconv.ParseFloat(text, 64)
		if v.Number == nil || err != nil {
			return bad("a number")
		}
		return api.FloatValue(f), nil
	case api.KindString:
		if v.Duration != nil {
			return bad("a string")
		}
		return api.StringValue(text), nil
	case api.KindBool:
		switch text {
		case "true":
			return api.BoolValue(true), nil
		case "false":
			return api.BoolValue(false), nil
		}
		return bad("true or false")
	case api.KindTime:
		t, ok, err := p.timeValue(v)
		if err != nil {
			return api.Value{}, err
		}
		if !ok {
			return bad("a time (now, -5m, \"2006-01-02T15:04:05Z\")")
		}
		return api.TimeValue(t), nil
	case api.KindLevel:
		if l, ok := api.ParseLogLevel(text); ok {
			return api.LevelValue(l), nil
		}
		return bad("a level (trace, debug, info, warn, error)")
	case api.KindNode:
		id, err := p.node(text)
		if err != nil {
			return api.Value{}, p.errAt(v.Pos, "%v", err)
		}
		return api.NodeValue(id), nil
	case api.KindBytes:
		return api.BytesValue([]byte(text)), nil
	}
	return bad("comparable")
}

// node resolves a node's label, id or unique id prefix (4+ hex digits).
func (p *planner) node(ref string) (identity.NodeID, error) {
	view := p.cat.View
	for _, nv := range view.Nodes {
		if nv.Label == ref {
			return nv.ID, nil
		}
	}
	if id, err := identity.ParseNodeID(ref); err == nil {
		return id, nil
	}
	hexs := strings.TrimPrefix(strings.ToLower(ref), "0x")
	if len(hexs) >= 4 && len(hexs) < 16 {
		var found []identity.NodeID
		for _, nv := range view.Nodes {
			if strings.HasPrefix(fmt.Sprintf("%016x", uint64(nv.ID)), hexs) {
				found = append(found, nv.ID)
			}
		}
		if len(found) == 1 {
			return found[0], nil
		}
		if len(found) > 1 {
			return 0, fmt.Errorf("%q matches %d nodes: give more digits or the label", ref, len(found))
		}
	}
	return 0, fmt.Errorf("no node %q in the view (a label, or an id)", ref)
}

// nodeLabel is a node's label, or its short id.
func nodeLabel(view *snapshot.ClusterSnapshot, id identity.NodeID) string {
	if id == 0 {
		return "-"
	}
	if nv := view.Node(id); nv != nil && nv.Label != "" {
		return nv.Label
	}
	return id.Short()
}
