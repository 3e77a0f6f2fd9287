package query

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/query/lang"
	"github.com/deck-mesh/deck/node/snapshot"
)

// The catalogue and the lineage walks are read from the cluster view the
// coordinator already holds (the chains' holders and heads, the workload
// groups and their fork-of links, the daemons' fork sentinels): they run
// where the query is asked, with no fragment on the wire.

// chainsRows is chains(): every chain a query can read.
func (p *planner) chainsRows() []api.QueryRow {
	view := p.cat.View
	nodes := 0
	for _, nv := range view.Nodes {
		if !nv.Observer {
			nodes++
		}
	}
	perNode := func(name string) api.QueryRow {
		return api.QueryRow{api.StringValue(name), api.StringValue("per-node"), api.Null(), api.IntValue(int64(nodes)),
			api.StringValue("each node its own"), api.Null(), api.Null(), api.Null(), api.StringValue("ok")}
	}
	rows := []api.QueryRow{
		{api.StringValue(ChainAdmin), api.StringValue("ledger"), api.Null(), api.IntValue(1),
			api.StringValue("every node"), api.Null(), api.IntValue(int64(view.AdminHead.LastSeq)), api.Null(), api.StringValue("ok")},
		perNode(ChainFailures), perNode(ChainLogs), perNode(ChainSnapshots),
	}
	for _, ch := range view.Chains {
		labels := make([]string, 0, len(ch.Holders))
		for _, h := range p.rank(slices.Clone(ch.Holders)) {
			labels = append(labels, nodeLabel(view, h))
		}
		leader := api.Null()
		if ch.Leader != 0 {
			leader = api.NodeValue(ch.Leader)
		}
		rows = append(rows, api.QueryRow{api.StringValue(ch.Name), api.StringValue("replicated"), api.StringValue(ch.Group),
			api.IntValue(1), api.StringValue(strings.Join(labels, ",")), leader, api.IntValue(int64(ch.HeadSeq)),
			api.IntValue(int64(ch.Desired)), api.StringValue(ch.Status())})
	}
	return rows
}

// lineage is lineage(NAME), siblings(NAME) or descendants(NAME), NAME a
// daemon, a group or a chain: the fork-of graph walked from its group.
func (p *planner) lineage(c *lang.Call) ([]api.QueryRow, error) {
	if len(c.Args) != 1 || c.Args[0].Value == nil || (c.Args[0].Value.Ident == nil && c.Args[0].Value.String == nil) {
		return nil, p.errAt(c.Pos, "%s(NAME): a daemon, group or chain", c.Name)
	}
	v := c.Args[0].Value
	name := v.Text()
	if v.String != nil {
		name = *v.String
	}
	view := p.cat.View
	g, daemon := p.groupOf(name)
	if g == nil {
		return nil, &notFoundError{lang.ErrorAt(p.src, v.Pos, "no daemon, group or chain %q", name)}
	}
	byName := map[string]*snapshot.Group{}
	for i := range view.Groups {
		byName[view.Groups[i].Name] = &view.Groups[i]
	}
	var rows []api.QueryRow
	switch c.Name {
	case "lineage":
		seen := map[string]bool{}
		for depth, cur := 0, g; cur != nil && depth <= MaxLineageDepth && !seen[cur.Name]; depth++ {
			seen[cur.Name] = true
			rel := "ancestor"
			if depth == 0 {
				rel = "self"
			}
			rows = append(rows, p.groupRow(depth, rel, cur))
			cur = byName[cur.Parent]
		}
	case "siblings":
		if daemon != "" {
			for _, m := range g.Members {
				if m != daemon {
					row := p.groupRow(0, "member", g)
					row[7] = api.StringValue(m)
					rows = append(rows, row)
				}
			}
		}
		if g.Parent != "" {
			for i := range view.Groups {
				s := &view.Groups[i]
				if s.Name != g.Name && s.Parent == g.Parent {
					rows = append(rows, p.groupRow(0, "sibling", s))
				}
			}
		}
	case "descendants":
		frontier, seen := []*snapshot.Group{g}, map[string]bool{g.Name: true}
		for depth := 1; len(frontier) > 0 && depth <= MaxLineageDepth; depth++ {
			var next []*snapshot.Group
			for _, f := range frontier {
				for i := range view.Groups {
					ch := &view.Groups[i]
					if ch.Parent == f.Name && !seen[ch.Name] {
						seen[ch.Name] = true
						rows = append(rows, p.groupRow(depth, "descendant", ch))
						next = append(next, ch)
					}
				}
			}
			frontier = next
		}
	}
	return rows, nil
}

// groupOf finds the group a name refers to (and the daemon, when it is one).
func (p *planner) groupOf(name string) (*snapshot.Group, string) {
	view := p.cat.View
	for i := range view.Groups {
		if view.Groups[i].Name == name {
			return &view.Groups[i], ""
		}
	}
	for i := range view.Groups {
		g := &view.Groups[i]
		if slices.Contains(g.Members, name) || (g.Chain != "" && g.Chain == name) {
			if g.Chain == name {
				return g, ""
			}
			return g, name
		}
	}
	for _, ch := range view.Chains {
		if ch.Name == name {
			for i := range view.Groups {
				if view.Groups[i].Name == ch.Group {
					return &view.Groups[i], ""
				}
			}
		}
	}
	// A daemon the view shows running but not yet listed in its group.
	for _, nv := range view.Nodes {
		for _, d := range nv.Daemons {
			if d.ID == name {
				for i := range view.Groups {
					if view.Groups[i].Name == d.Lineage.Group {
						return &view.Groups[i], name
					}
				}
			}
		}
	}
	return nil, ""
}

// groupRow is one row of lineageSchema.
func (p *planner) groupRow(depth int, rel string, g *snapshot.Group) api.QueryRow {
	view := p.cat.View
	forkAt, parent := api.Null(), api.Null()
	if g.Parent != "" {
		parent = api.StringValue(g.Parent)
		if g.Kind == snapshot.GroupFork {
			forkAt = api.IntValue(int64(g.ForkAt))
		}
	}
	holders, head, chain := api.IntValue(0), api.Null(), api.Null()
	if g.Chain != "" {
		chain = api.StringValue(g.Chain)
		for _, ch := range view.Chains {
			if ch.Name == g.Chain {
				holders, head = api.IntValue(int64(len(ch.Holders))), api.IntValue(int64(ch.HeadSeq))
			}
		}
	}
	// The fork sentinel (the digest of the parent chain at the fork
	// point) as the group's daemons report it: one value, or the
	// disagreeing ones joined.
	var sentinels []string
	for _, nv := range view.Nodes {
		for _, d := range nv.Daemons {
			if d.Lineage.Group == g.Name && d.Lineage.ForkSentinel != 0 {
				s := fmt.Sprintf("%016x", d.Lineage.ForkSentinel)
				if !slices.Contains(sentinels, s) {
					sentinels = append(sentinels, s)
				}
			}
		}
	}
	slices.Sort(sentinels)
	sentinel := api.Null()
	if len(sentinels) > 0 {
		sentinel = api.StringValue(strings.Join(sentinels, ","))
	}
	members := slices.Clone(g.Members)
	slices.Sort(members)
	return api.QueryRow{api.IntValue(int64(depth)), api.StringValue(rel), api.StringValue(g.Name),
		api.StringValue(g.Kind.String()), parent, forkAt, chain, api.StringValue(strings.Join(members, ",")),
		holders, head, sentinel}
}

// explain prints the plan as a tree (the part after its key line).
func (pl *Plan) explain() string {
	var b strings.Builder
	fmt.Fprintf(&b, "coordinator %s (%s)\n", nodeLabel(pl.cat.View, pl.cat.Self), pl.cat.Self)
	pl.explainOp(&b, pl.Root, "", "")
	return b.String()
}

func (pl *Plan) explainOp(b *strings.Builder, o op, first, rest string) {
	line := func(s string) { b.WriteString(first + s + "\n") }
	kid := func(k op, last bool) {
		if last {
			pl.explainOp(b, k, rest+"└─ ", rest+"   ")
		} else {
			pl.explainOp(b, k, rest+"├─ ", rest+"│  ")
		}
	}
	switch o := o.(type) {
	case *opFrags:
		line(fmt.Sprintf("union of %d fragment(s)", len(o.frags)))
		for i, id := range o.frags {
			pf := pl.Frags[id]
			pre, _ := rest+"├─ ", rest+"│  "
			if i == len(o.frags)-1 {
				pre = rest + "└─ "
			}
			b.WriteString(pre + pl.fragLine(pf) + "\n")
		}
	case *opMergeAgg:
		line("merge " + o.desc + " (partial on the holders)")
		kid(o.kid, true)
	case *opAgg:
		line("aggregate " + o.desc)
		kid(o.kid, true)
	case *opFilter:
		line("filter " + o.e.String(o.kid.columns()))
		kid(o.kid, true)
	case *opWindow:
		line("window " + windowText(o.w))
		kid(o.kid, true)
	case *opSort:
		var ks []string
		cols := o.kid.columns()
		for _, k := range o.keys {
			s := cols[k.col].Name
			if k.desc {
				s += " desc"
			}
			ks = append(ks, s)
		}
		line("sort " + strings.Join(ks, ", "))
		kid(o.kid, true)
	case *opLimit:
		line(fmt.Sprintf("limit %d", o.n))
		kid(o.kid, true)
	case *opProject:
		line("select " + names(o.cols))
		kid(o.kid, true)
	case *opJoin:
		kind := "hash join"
		if o.outer {
			kind = "hash left join"
		}
		line(fmt.Sprintf("%s on %s = %s (right side built in memory)", kind, o.left.columns()[o.lkey].Name, o.right.columns()[o.rkey].Name))
		kid(o.left, false)
		kid(o.right, true)
	case *opRows:
		line(fmt.Sprintf("%s: %d row(s) from the cluster view", o.what, len(o.rows)))
	}
}

func windowText(w Window) string {
	if w.Kind == windowSeq {
		return fmt.Sprintf("%d seq", w.Width)
	}
	return time.Duration(w.Width).String()
}

// fragLine is one fragment: what it runs and where.
func (pl *Plan) fragLine(pf *planFrag) string {
	view := pl.cat.View
	f := pf.frag
	var b strings.Builder
	fmt.Fprintf(&b, "#%d ", pf.id)
	name := pf.chain
	if f.Family.perNode() {
		name += "@" + nodeLabel(view, f.Instance)
	}
	ts := func(ns int64) string {
		if ns == 0 || ns == 1<<63-1 {
			return "…"
		}
		return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000Z")
	}
	rd := f.Read
	switch rd.Kind {
	case readAll:
		fmt.Fprintf(&b, "scan(%s)", name)
	case readLatest:
		fmt.Fprintf(&b, "latest(%s, %d)", name, rd.N)
		if rd.To != 0 {
			fmt.Fprintf(&b, " before %s", ts(rd.To))
		}
	case readAtSeq:
		fmt.Fprintf(&b, "at(%s, %d)", name, rd.From)
	case readAtTime:
		fmt.Fprintf(&b, "at(%s, %s)", name, ts(rd.From))
	case readSeqRange:
		to := "head"
		if rd.To > 0 {
			to = fmt.Sprint(rd.To)
		}
		fmt.Fprintf(&b, "between(%s, %d, %s)", name, rd.From, to)
	case readTimeRange:
		fmt.Fprintf(&b, "between(%s, %s, %s)", name, ts(rd.From), ts(rd.To))
	case readBounds:
		fmt.Fprintf(&b, "bounds(%s)", name)
	}
	in := f.inColumns()
	if f.Filter != nil {
		b.WriteString(" where " + f.Filter.String(Schema(f.Family)))
	}
	if f.Window.Kind != windowNone {
		b.WriteString(" | window " + windowText(f.Window))
	}
	if f.Agg != nil {
		var parts []string
		for _, a := range f.Agg.Aggs {
			parts = append(parts, aggName(a, in))
		}
		s := " | partial " + strings.Join(parts, ", ")
		if len(f.Agg.Group) > 0 {
			var gs []string
			for _, g := range f.Agg.Group {
				gs = append(gs, in[g].Name)
			}
			s += " by " + strings.Join(gs, ", ")
		}
		b.WriteString(s)
	}
	if f.Limit > 0 {
		fmt.Fprintf(&b, " | limit %d", f.Limit)
	}
	b.WriteString("  @ ")
	if len(pf.holders) == 0 {
		b.WriteString("nowhere")
	} else {
		b.WriteString(holderText(view, pl.cat.Self, pf.holders[0]))
		if len(pf.holders) > 1 {
			var alt []string
			for _, h := range pf.holders[1:] {
				alt = append(alt, nodeLabel(view, h))
			}
			b.WriteString(" (then " + strings.Join(alt, ", ") + ")")
		}
	}
	if pf.down != "" {
		b.WriteString(" [" + pf.down + "]")
	}
	return b.String()
}

func holderText(view *snapshot.ClusterSnapshot, self, id identity.NodeID) string {
	if id == self {
		return "this node"
	}
	return nodeLabel(view, id)
}
