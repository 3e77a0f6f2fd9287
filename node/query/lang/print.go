package lang

import (
	"strconv"
	"strings"
)

// String prints q in canonical form: one space between tokens, keywords
// lower case, strings quoted with Go's escapes. Parsing the canonical form
// gives the same query (the fuzz target checks it).
func (q *Query) String() string {
	var b strings.Builder
	q.print(&b)
	return b.String()
}

func (q *Query) print(b *strings.Builder) {
	q.Source.print(b)
	if q.Where != nil {
		b.WriteString(" where ")
		q.Where.print(b)
	}
	for _, s := range q.Stages {
		b.WriteString(" | ")
		s.print(b)
	}
}

func (c *Call) print(b *strings.Builder) {
	b.WriteString(c.Name)
	b.WriteByte('(')
	for i, a := range c.Args {
		if i > 0 {
			b.WriteString(", ")
		}
		a.print(b)
	}
	b.WriteByte(')')
}

func (a *Arg) print(b *strings.Builder) {
	switch {
	case a.On != nil:
		b.WriteString("on ")
		b.WriteString(a.On.Left)
		if a.On.Right != "" {
			b.WriteString(" = ")
			b.WriteString(a.On.Right)
		}
	case a.Sub != nil:
		a.Sub.Call.print(b)
		if a.Sub.Where != nil {
			b.WriteString(" where ")
			a.Sub.Where.print(b)
		}
	case a.Value != nil:
		b.WriteString(a.Value.Text())
	}
}

// Text is the value as written (strings quoted).
func (v *Value) Text() string {
	switch {
	case v.Duration != nil:
		return *v.Duration
	case v.Number != nil:
		return *v.Number
	case v.String != nil:
		return strconv.Quote(*v.String)
	case v.Ident != nil:
		return *v.Ident
	}
	return ""
}

func (s *Stage) print(b *strings.Builder) {
	switch {
	case s.Where != nil:
		b.WriteString("where ")
		s.Where.print(b)
	case s.Window != nil:
		b.WriteString("window ")
		b.WriteString(s.Window.Size.Text())
		if s.Window.Seq {
			b.WriteString(" seq")
		}
	case len(s.Sort) > 0:
		b.WriteString("sort ")
		for i, k := range s.Sort {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(k.Col)
			if k.Desc {
				b.WriteString(" desc")
			}
		}
	case s.Limit != nil:
		b.WriteString("limit ")
		b.WriteString(s.Limit.Text())
	case len(s.Select) > 0:
		b.WriteString("select ")
		printNames(b, s.Select)
	case s.Agg != nil:
		for i, f := range s.Agg.Funcs {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(f.Name)
			if f.Paren {
				b.WriteByte('(')
				for j, v := range f.Args {
					if j > 0 {
						b.WriteString(", ")
					}
					b.WriteString(v.Text())
				}
				b.WriteByte(')')
			}
		}
		if len(s.Agg.By) > 0 {
			b.WriteString(" by ")
			printNames(b, s.Agg.By)
		}
	}
}

func printNames(b *strings.Builder, ns []*Name) {
	for i, n := range ns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(n.Name)
	}
}

// String prints e in canonical form.
func (e *Expr) String() string {
	var b strings.Builder
	e.print(&b)
	return b.String()
}

func (e *Expr) print(b *strings.Builder) {
	for i, a := range e.Or {
		if i > 0 {
			b.WriteString(" or ")
		}
		for j, n := range a.And {
			if j > 0 {
				b.WriteString(" and ")
			}
			n.print(b)
		}
	}
}

func (n *NotExpr) print(b *strings.Builder) {
	switch {
	case n.Not != nil:
		b.WriteString("not ")
		n.Not.print(b)
	case n.Paren != nil:
		b.WriteByte('(')
		n.Paren.print(b)
		b.WriteByte(')')
	case n.Left != nil:
		b.WriteString(n.Left.Text())
		if n.Op != "" {
			b.WriteByte(' ')
			b.WriteString(n.Op)
			b.WriteByte(' ')
			b.WriteString(n.Right.Text())
		}
	}
}
