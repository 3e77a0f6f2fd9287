package query

import (
	"cmp"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/query/lang"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Catalog is what the planner knows of the mesh: the cluster view (which
// nodes hold which chains, their health and RTT), who plans, and when.
type Catalog struct {
	View *snapshot.ClusterSnapshot
	Self identity.NodeID
	Now  time.Time
}

// Plan is a query ready to run: a tree of operators whose leaves are
// fragments on holders. Build it with Compile; it is deterministic (the
// same query, view and time give the same plan and key).
type Plan struct {
	Root  op
	Frags []*planFrag
	Cols  []api.QueryColumn
	Key   [16]byte
	Text  string
	cat   *Catalog
	query string
}

// planFrag is one fragment with where it runs.
type planFrag struct {
	id       int
	frag     *Fragment
	enc      []byte
	chain    string
	instance identity.NodeID
	holders  []identity.NodeID // best first
	// down: the planner already knows no holder can answer (the only
	// holder is unreachable), with why.
	down string
}

// op is a composite operator, run by the coordinator.
type op interface {
	columns() []api.QueryColumn
}

type (
	// opFrags is the union of fragments' rows (or partial states).
	opFrags struct {
		frags []int
		cols  []api.QueryColumn
	}
	// opMergeAgg merges the holders' partial aggregates and finishes them.
	opMergeAgg struct {
		kid   op
		nkey  int
		specs []AggSpec
		in    []api.QueryColumn // the columns the specs index (for result kinds)
		cols  []api.QueryColumn
		desc  string
	}
	// opAgg aggregates rows at the coordinator (after a join).
	opAgg struct {
		kid   op
		group []int
		specs []AggSpec
		cols  []api.QueryColumn
		desc  string
	}
	opFilter struct {
		kid op
		e   *Expr
	}
	opWindow struct {
		kid op
		w   Window
		src int // the at or seq column
	}
	opSort struct {
		kid  op
		keys []sortKey
	}
	opLimit struct {
		kid op
		n   uint64
	}
	opProject struct {
		kid  op
		idx  []int
		cols []api.QueryColumn
	}
	opJoin struct {
		left, right op
		lkey, rkey  int
		outer       bool // left join: unmatched left rows with nulls
		cols        []api.QueryColumn
	}
	// opRows is rows the planner computed from the view (chains(),
	// lineage walks).
	opRows struct {
		rows []api.QueryRow
		cols []api.QueryColumn
		what string
	}
)

type sortKey struct {
	col  int
	desc bool
}

func (o *opFrags) columns() []api.QueryColumn    { return o.cols }
func (o *opMergeAgg) columns() []api.QueryColumn { return o.cols }
func (o *opAgg) columns() []api.QueryColumn      { return o.cols }
func (o *opFilter) columns() []api.QueryColumn   { return o.kid.columns() }
func (o *opWindow) columns() []api.QueryColumn {
	k := o.kid.columns()
	kind := api.KindInt
	if o.w.Kind == windowTime {
		kind = api.KindTime
	}
	return append(k[:len(k):len(k)], col("window", kind))
}
func (o *opSort) columns() []api.QueryColumn    { return o.kid.columns() }
func (o *opLimit) columns() []api.QueryColumn   { return o.kid.columns() }
func (o *opProject) columns() []api.QueryColumn { return o.cols }
func (o *opJoin) columns() []api.QueryColumn    { return o.cols }
func (o *opRows) columns() []api.QueryColumn    { return o.cols }

// planner carries one compilation.
type planner struct {
	src   string
	cat   *Catalog
	frags []*planFrag
}

func (p *planner) errAt(pos lang.Pos, format string, args ...any) error {
	return lang.ErrorAt(p.src, pos, format, args...)
}

// Compile parses, checks and plans a query against cat.
func Compile(src string, cat *Catalog) (*Plan, error) {
	q, err := lang.Parse(src)
	if err != nil {
		return nil, err
	}
	return compileAST(src, q, cat)
}

func compileAST(src string, q *lang.Query, cat *Catalog) (*Plan, error) {
	if cat.View == nil {
		cat.View = &snapshot.ClusterSnapshot{}
	}
	p := &planner{src: src, cat: cat}
	root, err := p.query(q)
	if err != nil {
		return nil, err
	}
	if len(p.frags) > MaxQueryFragments {
		return nil, p.errAt(q.Pos, "the query reads %d chain instances (at most %d)", len(p.frags), MaxQueryFragments)
	}
	plan := &Plan{Root: root, Frags: p.frags, Cols: root.columns(), cat: cat, query: q.String()}
	demand(plan, root, allOf(len(plan.Cols)))
	for _, f := range plan.Frags {
		if f.enc, err = AppendFragment(nil, f.frag); err != nil {
			return nil, fmt.Errorf("query: encode fragment: %w", err)
		}
		if len(f.enc) > MaxRequestBytes {
			return nil, p.errAt(q.Pos, "a fragment of %d bytes (at most %d): simplify the filter", len(f.enc), MaxRequestBytes)
		}
	}
	plan.Text = plan.explain()
	h, _ := blake2b.New(16, nil)
	h.Write([]byte(plan.Text))
	for _, f := range plan.Frags {
		h.Write(f.enc)
		for _, id := range f.holders {
			h.Write([]byte(id.String()))
		}
	}
	copy(plan.Key[:], h.Sum(nil))
	plan.Text = "plan " + plan.KeyHex() + "\n" + plan.Text
	return plan, nil
}

// KeyHex is the plan's key in hex.
func (pl *Plan) KeyHex() string { return hex.EncodeToString(pl.Key[:]) }

// query plans a whole query: source, filter, stages.
func (p *planner) query(q *lang.Query) (op, error) {
	src := q.Source
	switch src.Name {
	case "join", "leftjoin":
		root, err := p.join(src)
		if err != nil {
			return nil, err
		}
		return p.stages(root, q.Where, q.Stages, nil)
	case "chains":
		if len(src.Args) != 0 {
			return nil, p.errAt(src.Pos, "chains() takes no arguments")
		}
		return p.stages(&opRows{rows: p.chainsRows(), cols: chainsSchema, what: "chains()"}, q.Where, q.Stages, nil)
	case "lineage", "siblings", "descendants":
		rows, err := p.lineage(src)
		if err != nil {
			return nil, err
		}
		return p.stages(&opRows{rows: rows, cols: lineageSchema, what: src.Name + "(" + argText(src) + ")"}, q.Where, q.Stages, nil)
	}
	read, err := p.read(src)
	if err != nil {
		return nil, err
	}
	return p.stages(nil, q.Where, q.Stages, read)
}

func argText(c *lang.Call) string {
	var parts []string
	for _, a := range c.Args {
		if a.Value != nil {
			parts = append(parts, a.Value.Text())
		}
	}
	return strings.Join(parts, ", ")
}

// atomicRead is an atomicRead read not yet split into fragments: the stages after
// it are pushed into it while they can be.
type atomicRead struct {
	pos    lang.Pos
	fam    Family
	chain  string // the name as written
	read   Read
	filter []*Expr
	window Window
	agg    *PartialAgg
	aggIn  []api.QueryColumn
	aggOut []api.QueryColumn
	aggDsc string
	limit  uint64
}

func (a *atomicRead) inCols() []api.QueryColumn {
	f := Fragment{Family: a.fam, Window: a.window}
	return f.inColumns()
}

// read resolves an atomicRead call: latest, at, between, bounds.
func (p *planner) read(c *lang.Call) (*atomicRead, error) {
	if len(c.Args) == 0 {
		return nil, p.errAt(c.Pos, "%s() needs a chain", c.Name)
	}
	a := &atomicRead{pos: c.Pos}
	if err := p.chainArg(c.Args[0], a); err != nil {
		return nil, err
	}
	args := c.Args[1:]
	want := func(lo, hi int) error {
		if len(args) < lo || len(args) > hi {
			return p.errAt(c.Pos, "%s takes %d to %d arguments after the chain, not %d", c.Name, lo, hi, len(args))
		}
		return nil
	}
	switch c.Name {
	case "latest":
		if err := want(0, 1); err != nil {
			return nil, err
		}
		a.read = Read{Kind: readLatest, N: 1}
		if len(args) == 1 {
			n, err := p.count(args[0], MaxLatest)
			if err != nil {
				return nil, err
			}
			a.read.N = n
		}
	case "at":
		if err := want(1, 1); err != nil {
			return nil, err
		}
		v, isTime, err := p.seqOrTime(args[0], a.fam)
		if err != nil {
			return nil, err
		}
		a.read = Read{Kind: readAtSeq, From: v}
		if isTime {
			a.read.Kind = readAtTime
		}
	case "between":
		if err := want(1, 2); err != nil {
			return nil, err
		}
		from, fromTime, err := p.seqOrTime(args[0], a.fam)
		if err != nil {
			return nil, err
		}
		var to int64
		toTime := fromTime
		if len(args) == 2 {
			if to, toTime, err = p.seqOrTime(args[1], a.fam); err != nil {
				return nil, err
			}
		} else if fromTime {
			to = math.MaxInt64
		}
		if fromTime != toTime {
			return nil, p.errAt(args[1].Pos, "between needs two seqs or two times")
		}
		a.read = Read{Kind: readSeqRange, From: from, To: to}
		if fromTime {
			a.read.Kind = readTimeRange
		}
		if to != 0 && from > to {
			return nil, p.errAt(c.Pos, "between: the range ends before it starts")
		}
	case "bounds":
		if err := want(0, 0); err != nil {
			return nil, err
		}
		a.read = Read{Kind: readBounds}
	case "scan":
		if err := want(0, 0); err != nil {
			return nil, err
		}
		a.read = Read{Kind: readAll}
	default:
		return nil, p.errAt(c.Pos, "unknown source %q (latest, at, between, bounds, scan, join, leftjoin, lineage, siblings, descendants, chains)", c.Name)
	}
	return a, nil
}

// chainArg resolves a chain name.
func (p *planner) chainArg(arg *lang.Arg, a *atomicRead) error {
	if arg.Value == nil || (arg.Value.Ident == nil && arg.Value.String == nil) {
		return p.errAt(arg.Pos, "expected a chain name (logs, failures, snapshots, admin, or a replicated chain)")
	}
	name := arg.Value.Text()
	if arg.Value.String != nil {
		name = *arg.Value.String
	}
	a.chain = name
	switch name {
	case ChainLogs:
		a.fam = FamLogs
	case ChainFailures:
		a.fam = FamFailures
	case ChainSnapshots:
		a.fam = FamSnapshots
	case ChainAdmin, "ledger":
		a.fam, a.chain = FamAdmin, ChainAdmin
	default:
		for _, ch := range p.cat.View.Chains {
			if ch.Name == name {
				a.fam = FamReplica
				return nil
			}
		}
		return &notFoundError{lang.ErrorAt(p.src, arg.Pos, "no chain %q (chains() lists them)", name)}
	}
	return nil
}

// notFoundError is a well-formed query naming a chain (or daemon) that does
// not exist: api.ErrNotFound (exit 3), still a *api.QueryError for
// errors.As, so it shows where.
type notFoundError struct{ *api.QueryError }

func (e *notFoundError) Unwrap() error { return api.ErrNotFound }

func (e *notFoundError) As(target any) bool {
	if p, ok := target.(**api.QueryError); ok {
		*p = e.QueryError
		return true
	}
	return false
}

// count reads a positive integer argument.
func (p *planner) count(arg *lang.Arg, limit uint64) (uint64, error) {
	if arg.Value == nil || arg.Value.Number == nil {
		return 0, p.errAt(arg.Pos, "expected a count")
	}
	n, err := strconv.ParseUint(*arg.Value.Number, 10, 64)
	if err != nil || n == 0 || n > limit {
		return 0, p.errAt(arg.Pos, "expected a count from 1 to %d", limit)
	}
	return n, nil
}

// seqOrTime reads a seq (a number) or a time (now, a duration from now,
// an RFC 3339 string).
func (p *planner) seqOrTime(arg *lang.Arg, fam Family) (int64, bool, error) {
	if arg.Value == nil {
		return 0, false, p.errAt(arg.Pos, "expected a seq or a time")
	}
	v := arg.Value
	if v.Number != nil {
		n, err := strconv.ParseInt(*v.Number, 10, 64)
		if err != nil || n < 0 {
			return 0, false, p.errAt(v.Pos, "expected a seq (a whole number ≥ 0)")
		}
		return n, false, nil
	}
	t, ok, err := p.timeValue(v)
	if err != nil {
		return 0, false, err
	}
	if !ok {
		return 0, false, p.errAt(v.Pos, "expected a seq or a time (now, -5m, \"2006-01-02T15:04:05Z\")")
	}
	if !fam.hasTime() {
		return 0, false, p.errAt(v.Pos, "this chain has no time: use seqs")
	}
	return t.UnixNano(), true, nil
}

// timeValue reads now, now±D, ±D (from now) or an RFC 3339 / date string.
func (p *planner) timeValue(v *lang.Value) (time.Time, bool, error) {
	now := p.cat.Now
	switch {
	case v.Duration != nil:
		d, err := parseDuration(*v.Duration)
		if err != nil {
			return time.Time{}, false, p.errAt(v.Pos, "%v", err)
		}
		return now.Add(d), true, nil
	case v.Ident != nil:
		id := *v.Ident
		if id == "now" {
			return now, true, nil
		}
		if rest, ok := strings.CutPrefix(id, "now"); ok && (strings.HasPrefix(rest, "-") || strings.HasPrefix(rest, "+")) {
			d, err := parseDuration(rest)
			if err != nil {
				return time.Time{}, false, p.errAt(v.Pos, "%v", err)
			}
			return now.Add(d), true, nil
		}
	case v.String != nil:
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
			if t, err := time.Parse(layout, *v.String); err == nil {
				return t, true, nil
			}
		}
		return time.Time{}, false, p.errAt(v.Pos, "%q is not a time (RFC 3339, e.g. \"2006-01-02T15:04:05Z\")", *v.String)
	}
	return time.Time{}, false, nil
}

// parseDuration is time.ParseDuration plus d (days).
func parseDuration(s string) (time.Duration, error) {
	if !strings.Contains(s, "d") {
		return time.ParseDuration(s)
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimLeft(s, "+-")
	days, rest, _ := strings.Cut(s, "d")
	n, err := strconv.ParseFloat(days, 64)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	d := time.Duration(n * float64(24*time.Hour))
	if rest != "" {
		r, err := time.ParseDuration(rest)
		if err != nil {
			return 0, err
		}
		d += r
	}
	if neg {
		d = -d
	}
	return d, nil
}

// stages plans the filter and the pipeline over root, or, when root is
// nil, over the atomicRead read a, pushing into it what can run on holders:
// filters before any window or aggregate, one window, one aggregate (as
// partial states), and a limit (each holder sends at most that many).
func (p *planner) stages(root op, where *lang.Expr, stages []*lang.Stage, a *atomicRead) (op, error) {
	pushing := a != nil
	cols := func() []api.QueryColumn {
		if root != nil {
			return root.columns()
		}
		return a.inCols()
	}
	addFilter := func(e *lang.Expr) error {
		x, err := p.expr(e, cols())
		if err != nil {
			return err
		}
		if root == nil && pushing && a.window.Kind == windowNone && a.agg == nil {
			a.filter = append(a.filter, conj(x)...)
			return nil
		}
		root = &opFilter{kid: root, e: x}
		return nil
	}
	if where != nil {
		if err := addFilter(where); err != nil {
			return nil, err
		}
	}
	for _, s := range stages {
		if root == nil && pushing {
			if ok, err := p.push(a, s); err != nil {
				return nil, err
			} else if ok {
				continue
			}
			// The stage runs on the coordinator: the fragments end here.
			var err error
			if root, err = p.split(a); err != nil {
				return nil, err
			}
		}
		var err error
		switch {
		case s.Where != nil:
			err = addFilter(s.Where)
		case s.Window != nil:
			root, err = p.rootWindow(root, s.Window)
		case len(s.Sort) > 0:
			root, err = p.sort(root, s.Sort)
		case s.Limit != nil:
			var n uint64
			if n, err = p.limit(s.Limit); err == nil {
				root = &opLimit{kid: root, n: n}
			}
		case len(s.Select) > 0:
			root, err = p.project(root, s.Select)
		case s.Agg != nil:
			root, err = p.rootAgg(root, s.Agg)
		}
		if err != nil {
			return nil, err
		}
	}
	if root == nil {
		return p.split(a)
	}
	return root, nil
}

// push tries to run stage s on the holders; false: it must run on the
// coordinator.
func (p *planner) push(a *atomicRead, s *lang.Stage) (bool, error) {
	switch {
	case s.Where != nil:
		if a.window.Kind != windowNone || a.agg != nil || a.limit > 0 {
			return false, nil
		}
		x, err := p.expr(s.Where, a.inCols())
		if err != nil {
			return false, err
		}
		a.filter = append(a.filter, conj(x)...)
		return true, nil
	case s.Window != nil:
		if a.window.Kind != windowNone || a.agg != nil || a.limit > 0 || a.read.Kind == readBounds {
			return false, nil
		}
		w, err := p.window(s.Window, a.inCols())
		if err != nil {
			return false, err
		}
		a.window = w
		return true, nil
	case s.Agg != nil:
		if a.agg != nil || a.limit > 0 || a.read.Kind == readBounds {
			return false, nil
		}
		in := a.inCols()
		group, specs, out, desc, err := p.aggregate(s.Agg, in, a.window.Kind != windowNone)
		if err != nil {
			return false, err
		}
		a.agg, a.aggIn, a.aggOut, a.aggDsc = &PartialAgg{Group: group, Aggs: specs}, in, out, desc
		return true, nil
	case s.Limit != nil:
		if a.agg != nil || a.limit > 0 {
			return false, nil
		}
		n, err := p.limit(s.Limit)
		if err != nil {
			return false, err
		}
		// Each holder sends at most n; the coordinator still cuts to n.
		a.limit = n
		return false, nil
	}
	return false, nil
}

func (p *planner) limit(v *lang.Value) (uint64, error) {
	if v.Number == nil {
		return 0, p.errAt(v.Pos, "limit needs a count")
	}
	n, err := strconv.ParseUint(*v.Number, 10, 64)
	if err != nil || n == 0 {
		return 0, p.errAt(v.Pos, "limit needs a count ≥ 1")
	}
	return n, nil
}

// split turns the atomicRead read into its fragments (one per chain instance
// it needs) under a union, and the merge of a pushed aggregate.
func (p *planner) split(a *atomicRead) (op, error) {
	filter := andOf(a.filter)
	if a.read.Kind == readLatest && a.fam.timed() {
		// latest before a time: the holder starts its scan there.
		for _, c := range a.filter {
			if t, ok := upperTimeBound(c); ok && (a.read.To == 0 || t < a.read.To) {
				a.read.To = t
			}
		}
	}
	instances, err := p.instances(a)
	if err != nil {
		return nil, err
	}
	base := Fragment{Family: a.fam, Read: a.read, Filter: filter, Window: a.window, Agg: a.agg, Limit: a.limit}
	if a.fam == FamReplica {
		base.Chain = a.chain
	}
	union := &opFrags{cols: base.outColumns()}
	for _, inst := range instances {
		f := base
		f.Instance = inst
		pf := &planFrag{id: len(p.frags), frag: &f, chain: a.chain, instance: inst}
		pf.holders, pf.down = p.holders(a.fam, a.chain, inst)
		p.frags = append(p.frags, pf)
		union.frags = append(union.frags, pf.id)
	}
	if a.agg == nil {
		return union, nil
	}
	return &opMergeAgg{kid: union, nkey: len(a.agg.Group), specs: a.agg.Aggs, in: a.aggIn, cols: a.aggOut, desc: a.aggDsc}, nil
}

// upperTimeBound reads `at < T` / `at <= T` as T.
func upperTimeBound(e *Expr) (int64, bool) {
	if (e.Op != exprLt && e.Op != exprLe) || e.Kids[0].Op != exprCol || e.Kids[0].Col != colAt ||
		e.Kids[1].Op != exprConst || e.Kids[1].Val.Kind != api.KindTime {
		return 0, false
	}
	return e.Kids[1].Val.I, true
}

// instances are the chain instances a read needs: one per node for a
// per-node chain (only the nodes its filter can match), one otherwise.
func (p *planner) instances(a *atomicRead) ([]identity.NodeID, error) {
	if !a.fam.perNode() {
		return []identity.NodeID{0}, nil
	}
	allowed, known := nodeSet(andOf(a.filter))
	var out []identity.NodeID
	for _, nv := range p.cat.View.Nodes {
		if nv.Observer && nv.ID != p.cat.Self {
			continue // a console's chains are its own business
		}
		if nv.Observer && a.fam != FamSnapshots {
			continue
		}
		if known && !allowed[nv.ID] {
			continue
		}
		out = append(out, nv.ID)
	}
	if known {
		// A node the view does not list is still asked: its filter named it.
		for id := range allowed {
			if !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// nodeSet reads which nodes a filter can match on the node column: known
// false when it does not say.
func nodeSet(e *Expr) (map[identity.NodeID]bool, bool) {
	if e == nil {
		return nil, false
	}
	switch e.Op {
	case exprEq:
		l, r := e.Kids[0], e.Kids[1]
		if l.Op == exprConst {
			l, r = r, l
		}
		if l.Op == exprCol && l.Col == nodeColumn && r.Op == exprConst && r.Val.Kind == api.KindNode {
			return map[identity.NodeID]bool{r.Val.Node(): true}, true
		}
	case exprOr:
		out := map[identity.NodeID]bool{}
		for _, k := range e.Kids {
			s, ok := nodeSet(k)
			if !ok {
				return nil, false
			}
			for id := range s {
				out[id] = true
			}
		}
		return out, true
	case exprAnd:
		var out map[identity.NodeID]bool
		known := false
		for _, k := range e.Kids {
			s, ok := nodeSet(k)
			if !ok {
				continue
			}
			if !known {
				out, known = s, true
				continue
			}
			for id := range out {
				if !s[id] {
					delete(out, id)
				}
			}
		}
		return out, known
	}
	return nil, false
}

// holders are the nodes that can run a fragment, best first: healthy
// before suspect before unreachable, then by RTT from here, then by id
// (this node's RTT is 0). down says why none can, when the planner knows.
func (p *planner) holders(fam Family, chain string, inst identity.NodeID) ([]identity.NodeID, string) {
	view := p.cat.View
	switch fam {
	case FamLogs, FamFailures, FamSnapshots:
		hs := []identity.NodeID{inst}
		if fam == FamSnapshots && inst != p.cat.Self {
			// A console records every node's snapshots it hears: its copy
			// stands in when the node itself does not answer.
			if me := view.Node(p.cat.Self); me != nil && me.Observer {
				hs = append(hs, p.cat.Self)
			}
		}
		if inst != p.cat.Self {
			if nv := view.Node(inst); nv != nil && nv.Health == snapshot.Unreachable {
				if len(hs) == 1 {
					return hs, "unreachable"
				}
				hs = append(hs[1:], inst)
			}
		}
		return hs, ""
	case FamAdmin:
		// Every member holds the ledger; this node first (it holds a copy).
		out := []identity.NodeID{p.cat.Self}
		var rest []identity.NodeID
		for _, nv := range view.Nodes {
			if nv.ID != p.cat.Self && !nv.Observer {
				rest = append(rest, nv.ID)
			}
		}
		return append(out, p.rank(rest)...), ""
	}
	for _, ch := range view.Chains {
		if ch.Name != chain {
			continue
		}
		hs := p.rank(slices.Clone(ch.Holders))
		if len(hs) == 0 {
			return nil, "no holder"
		}
		if nv := view.Node(hs[0]); hs[0] != p.cat.Self && nv != nil && nv.Health == snapshot.Unreachable {
			return hs, "every holder unreachable"
		}
		return hs, ""
	}
	return nil, "no holder"
}

// rank sorts node ids by health, RTT and id.
func (p *planner) rank(ids []identity.NodeID) []identity.NodeID {
	type key struct {
		health int
		rtt    time.Duration
	}
	k := func(id identity.NodeID) key {
		if id == p.cat.Self {
			return key{}
		}
		nv := p.cat.View.Node(id)
		if nv == nil {
			return key{health: 3}
		}
		h := int(nv.Health)
		if nv.Stale {
			h = max(h, 1)
		}
		return key{health: h, rtt: nv.RTT}
	}
	slices.SortFunc(ids, func(a, b identity.NodeID) int {
		ka, kb := k(a), k(b)
		if c := cmp.Compare(ka.health, kb.health); c != 0 {
			return c
		}
		if c := cmp.Compare(ka.rtt, kb.rtt); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	return ids
}

// window resolves a window stage over cols.
func (p *planner) window(w *lang.Window, cols []api.QueryColumn) (Window, error) {
	if w.Seq {
		if w.Size.Number == nil {
			return Window{}, p.errAt(w.Size.Pos, "window N seq needs a count")
		}
		n, err := strconv.ParseInt(*w.Size.Number, 10, 64)
		if err != nil || n <= 0 {
			return Window{}, p.errAt(w.Size.Pos, "window needs a count ≥ 1")
		}
		if columnIndex(cols, "seq") < 0 {
			return Window{}, p.errAt(w.Pos, "no seq column to window on")
		}
		return Window{Kind: windowSeq, Width: n}, nil
	}
	if w.Size.Duration == nil {
		return Window{}, p.errAt(w.Size.Pos, "window needs a duration (5m) or a count of seqs (100 seq)")
	}
	d, err := parseDuration(*w.Size.Duration)
	if err != nil || d <= 0 {
		return Window{}, p.errAt(w.Size.Pos, "window needs a positive duration")
	}
	if i := columnIndex(cols, "at"); i < 0 || cols[i].Kind != api.KindTime {
		return Window{}, p.errAt(w.Pos, "no at column to window on: use seqs (window 100 seq)")
	}
	return Window{Kind: windowTime, Width: int64(d)}, nil
}

func (p *planner) rootWindow(root op, w *lang.Window) (op, error) {
	win, err := p.window(w, root.columns())
	if err != nil {
		return nil, err
	}
	if columnIndex(root.columns(), "window") >= 0 {
		return nil, p.errAt(w.Pos, "already windowed")
	}
	name := "at"
	if win.Kind == windowSeq {
		name = "seq"
	}
	return &opWindow{kid: root, w: win, src: columnIndex(root.columns(), name)}, nil
}

// aggregate resolves an aggregate stage over in: the group columns (the
// window first when windowed), the specs, the output columns.
func (p *planner) aggregate(ag *lang.Aggregate, in []api.QueryColumn, windowed bool) ([]int, []AggSpec, []api.QueryColumn, string, error) {
	var group []int
	var out []api.QueryColumn
	if w := columnIndex(in, "window"); windowed && w >= 0 {
		group = append(group, w)
	}
	for _, b := range ag.By {
		i := columnIndex(in, b.Name)
		if i < 0 {
			return nil, nil, nil, "", p.errAt(b.Pos, "no column %q to group by (%s)", b.Name, names(in))
		}
		if !slices.Contains(group, i) {
			group = append(group, i)
		}
	}
	if len(group) > MaxGroupColumns {
		return nil, nil, nil, "", p.errAt(ag.Pos, "at most %d group columns", MaxGroupColumns)
	}
	if len(ag.Funcs) > MaxAggregates {
		return nil, nil, nil, "", p.errAt(ag.Pos, "at most %d aggregates", MaxAggregates)
	}
	for _, g := range group {
		out = append(out, in[g])
	}
	var specs []AggSpec
	for _, f := range ag.Funcs {
		s := AggSpec{Col: -1}
		for fn := AggFn(0); fn < aggFnEnd; fn++ {
			if fn.String() == f.Name {
				s.Fn = fn
			}
		}
		nargs := 1
		switch s.Fn {
		case aggCount:
			nargs = 0
		case aggPercentile:
			nargs = 2
		}
		if len(f.Args) != nargs || (nargs == 0 && f.Paren && len(f.Args) != 0) {
			return nil, nil, nil, "", p.errAt(f.Pos, "%s takes %d argument(s)", f.Name, nargs)
		}
		if nargs > 0 {
			a := f.Args[0]
			if a.Ident == nil {
				return nil, nil, nil, "", p.errAt(a.Pos, "%s needs a column", f.Name)
			}
			s.Col = columnIndex(in, *a.Ident)
			if s.Col < 0 {
				return nil, nil, nil, "", p.errAt(a.Pos, "no column %q (%s)", *a.Ident, names(in))
			}
			k := in[s.Col].Kind
			numeric := k == api.KindInt || k == api.KindFloat || k == api.KindDuration || k == api.KindLevel || k == api.KindBool || k == api.KindTime
			if (s.Fn == aggSum || s.Fn == aggAvg) && !numeric {
				return nil, nil, nil, "", p.errAt(a.Pos, "%s of a %s column", f.Name, k)
			}
			if k == api.KindBytes && s.Fn != aggDistinct {
				return nil, nil, nil, "", p.errAt(a.Pos, "%s of a bytes column", f.Name)
			}
		}
		if s.Fn == aggPercentile {
			a := f.Args[1]
			if a.Number == nil {
				return nil, nil, nil, "", p.errAt(a.Pos, "percentile needs a rank from 0 to 100")
			}
			v, err := strconv.ParseFloat(*a.Number, 64)
			if err != nil || v < 0 || v > 100 {
				return nil, nil, nil, "", p.errAt(a.Pos, "percentile needs a rank from 0 to 100")
			}
			s.P = v
		}
		specs = append(specs, s)
		name := aggName(s, in)
		if columnIndex(out, name) >= 0 {
			return nil, nil, nil, "", p.errAt(f.Pos, "%s twice", name)
		}
		out = append(out, col(name, aggKind(s, in)))
	}
	var desc strings.Builder
	for i, s := range specs {
		if i > 0 {
			desc.WriteString(", ")
		}
		desc.WriteString(aggName(s, in))
	}
	if len(group) > 0 {
		desc.WriteString(" by ")
		for i, g := range group {
			if i > 0 {
				desc.WriteString(", ")
			}
			desc.WriteString(in[g].Name)
		}
	}
	return group, specs, out, desc.String(), nil
}

func (p *planner) rootAgg(root op, ag *lang.Aggregate) (op, error) {
	in := root.columns()
	group, specs, out, desc, err := p.aggregate(ag, in, columnIndex(in, "window") >= 0)
	if err != nil {
		return nil, err
	}
	return &opAgg{kid: root, group: group, specs: specs, cols: out, desc: desc}, nil
}

func (p *planner) sort(root op, keys []*lang.SortKey) (op, error) {
	cols := root.columns()
	s := &opSort{kid: root}
	for _, k := range keys {
		i := columnIndex(cols, k.Col)
		if i < 0 {
			return nil, p.errAt(k.Pos, "no column %q to sort by (%s)", k.Col, names(cols))
		}
		s.keys = append(s.keys, sortKey{col: i, desc: k.Desc})
	}
	return s, nil
}

func (p *planner) project(root op, sel []*lang.Name) (op, error) {
	cols := root.columns()
	pr := &opProject{kid: root}
	for _, n := range sel {
		i := columnIndex(cols, n.Name)
		if i < 0 {
			return nil, p.errAt(n.Pos, "no column %q (%s)", n.Name, names(cols))
		}
		pr.idx = append(pr.idx, i)
		pr.cols = append(pr.cols, cols[i])
	}
	return pr, nil
}

func names(cols []api.QueryColumn) string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.Name
	}
	return strings.Join(out, ", ")
}

// join plans join(A, B, on k) / leftjoin: each side's fragments with its
// filter pushed down, the hash join on the coordinator.
func (p *planner) join(c *lang.Call) (op, error) {
	if len(c.Args) != 3 || c.Args[2].On == nil {
		return nil, p.errAt(c.Pos, "%s(LEFT, RIGHT, on COLUMN[=COLUMN])", c.Name)
	}
	side := func(a *lang.Arg) (op, string, error) {
		var call *lang.Call
		var where *lang.Expr
		switch {
		case a.Sub != nil:
			call, where = a.Sub.Call, a.Sub.Where
		case a.Value != nil && a.Value.Ident != nil:
			call = &lang.Call{Pos: a.Pos, Name: "scan", Args: []*lang.Arg{a}}
		default:
			return nil, "", p.errAt(a.Pos, "a join side is a chain or a read (between(logs, -1h, now) where …)")
		}
		if slices.Contains([]string{"join", "leftjoin", "chains", "lineage", "siblings", "descendants"}, call.Name) {
			return nil, "", p.errAt(call.Pos, "a join side reads a chain (latest, at, between, scan)")
		}
		a2, err := p.read(call)
		if err != nil {
			return nil, "", err
		}
		o, err := p.stages(nil, where, nil, a2)
		return o, a2.chain, err
	}
	left, lname, err := side(c.Args[0])
	if err != nil {
		return nil, err
	}
	right, rname, err := side(c.Args[1])
	if err != nil {
		return nil, err
	}
	on := c.Args[2].On
	rk := on.Right
	if rk == "" {
		rk = on.Left
	}
	lc, rc := left.columns(), right.columns()
	j := &opJoin{left: left, right: right, lkey: columnIndex(lc, on.Left), rkey: columnIndex(rc, rk), outer: c.Name == "leftjoin"}
	if j.lkey < 0 {
		return nil, p.errAt(on.Pos, "no column %q on the left (%s)", on.Left, names(lc))
	}
	if j.rkey < 0 {
		return nil, p.errAt(on.Pos, "no column %q on the right (%s)", rk, names(rc))
	}
	if lk, rkk := lc[j.lkey].Kind, rc[j.rkey].Kind; lk != rkk {
		return nil, p.errAt(on.Pos, "join keys of different kinds (%s, %s)", lk, rkk)
	}
	if lname == rname {
		lname, rname = "left", "right"
	}
	j.cols = append(j.cols, lc[j.lkey])
	for i, cl := range lc {
		if i != j.lkey {
			j.cols = append(j.cols, col(lname+"."+cl.Name, cl.Kind))
		}
	}
	for i, cl := range rc {
		if i != j.rkey {
			j.cols = append(j.cols, col(rname+"."+cl.Name, cl.Kind))
		}
	}
	return j, nil
}

func allOf(n int) []bool {
	out := make([]bool, n)
	for i := range out {
		out[i] = true
	}
	return out
}

// demand marks, from the root down, the columns each operator's input
// must carry, and sets each row fragment's Needed mask from it: a column
// nothing reads (a snapshot's bytes, most often) is not shipped.
func demand(pl *Plan, o op, need []bool) {
	switch o := o.(type) {
	case *opFrags:
		var mask uint64
		all := true
		for i, n := range need {
			if n && i < 64 {
				mask |= 1 << i
			}
			all = all && n
		}
		for _, id := range o.frags {
			f := pl.Frags[id].frag
			if f.Agg == nil && f.Read.Kind != readBounds && !all {
				f.Needed = mask | 1<<colSeq // the seq is the resume cursor
			}
		}
	case *opMergeAgg:
	case *opAgg:
		kid := make([]bool, len(o.kid.columns()))
		for _, g := range o.group {
			kid[g] = true
		}
		for _, s := range o.specs {
			if s.Col >= 0 {
				kid[s.Col] = true
			}
		}
		demand(pl, o.kid, kid)
	case *opFilter:
		kid := slices.Clone(need)
		m := map[int]bool{}
		o.e.columns(m)
		for c := range m {
			kid[c] = true
		}
		demand(pl, o.kid, kid)
	case *opWindow:
		kid := slices.Clone(need[:len(need)-1])
		if o.src >= 0 {
			kid[o.src] = true
		}
		demand(pl, o.kid, kid)
	case *opSort:
		kid := slices.Clone(need)
		for _, k := range o.keys {
			kid[k.col] = true
		}
		demand(pl, o.kid, kid)
	case *opLimit:
		demand(pl, o.kid, need)
	case *opProject:
		kid := make([]bool, len(o.kid.columns()))
		for j, i := range o.idx {
			if need[j] {
				kid[i] = true
			}
		}
		demand(pl, o.kid, kid)
	case *opJoin:
		l := make([]bool, len(o.left.columns()))
		r := make([]bool, len(o.right.columns()))
		l[o.lkey], r[o.rkey] = true, true
		j := 1
		for i := range l {
			if i != o.lkey {
				l[i] = l[i] || need[j]
				j++
			}
		}
		for i := range r {
			if i != o.rkey {
				r[i] = r[i] || need[j]
				j++
			}
		}
		demand(pl, o.left, l)
		demand(pl, o.right, r)
	}
}
