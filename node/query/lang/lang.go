// Package lang is MeshDB's query language: its grammar, parser and
// canonical printer. A query is a source (a call on a chain: a time read,
// a lineage walk, a join of two sub-queries), an optional filter, and a
// pipeline of stages:
//
//	latest(snapshots) where node = "node-3"
//	between(logs, -5m, now) where level >= warn | count by daemon
//	lineage(forge-1)
//	join(between(logs, -1h, now) where level >= warn, failures, on daemon) | count by daemon
//	between(logs, -1h, now) | window 5m | count, max(level) by node
//
// The grammar (EBNF; keywords are case-sensitive, lower case):
//
//	Query   = Call [ "where" Expr ] { "|" Stage } .
//	Call    = ident "(" [ Arg { "," Arg } ] ")" .
//	Arg     = "on" ident [ "=" ident ] | Call [ "where" Expr ] | Value .
//	Stage   = "where" Expr | "window" Value [ "seq" ] | "sort" Key { "," Key }
//	        | "limit" number | "select" ident { "," ident } | Agg { "," Agg } [ "by" ident { "," ident } ] .
//	Key     = ident [ "asc" | "desc" ] .
//	Agg     = ( "count" | "sum" | "avg" | "min" | "max" | "distinct" | "percentile" ) [ "(" [ Value { "," Value } ] ")" ] .
//	Expr    = And { "or" And } .
//	And     = Not { "and" Not } .
//	Not     = "not" Not | "(" Expr ")" | Value [ op Value ] .
//	Value   = duration | number | string | ident .
//	op      = "=" | "==" | "!=" | "<" | "<=" | ">" | ">=" | "~" | "!~" .
//
// Durations are Go's (`-5m`, `1h30m`, `500ms`, plus `d` for days);
// identifiers may contain `-` and `.` (daemon ids like `forge-1`, join
// columns like `failures.reason`), so `now-5m` is one identifier that the
// planner reads as a time. `#` starts a comment to the end of the line.
//
// The parser is participle (github.com/alecthomas/participle/v2): the
// grammar lives in the struct tags below, every node carries its position,
// and its errors name the token and what was expected, which is what the
// caret under an operator's query needs. What a query means (which chains
// exist, column types, where each part runs) is node/query's business.
package lang

import (
	"fmt"
	"strings"
	"sync"

	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"

	"github.com/deck-mesh/deck/node/api"
)

// Bounds on a query's text, checked before the parser runs.
const (
	// MaxQueryBytes bounds a query's text.
	MaxQueryBytes = 4096
	// MaxNestingDepth bounds nested parentheses (sub-queries and
	// parenthesised predicates), so no input recurses the parser deeply.
	MaxNestingDepth = 16
	// MaxTokens bounds a query's tokens.
	MaxTokens = 1024
)

// Pos is a position in the query text (1-based line and rune column).
type Pos = lexer.Position

// Query is a parsed query.
type Query struct {
	Pos    Pos
	Source *Call    `parser:"@@"`
	Where  *Expr    `parser:"( \"where\" @@ )?"`
	Stages []*Stage `parser:"( \"|\" @@ )*"`
}

// Call is a source: a function of chains and values.
type Call struct {
	Pos  Pos
	Name string `parser:"@Ident \"(\""`
	Args []*Arg `parser:"( @@ ( \",\" @@ )* )? \")\""`
}

// Arg is one argument of a call.
type Arg struct {
	Pos   Pos
	On    *On       `parser:"(  \"on\" @@"`
	Sub   *SubQuery `parser:" | @@"`
	Value *Value    `parser:" | @@ )"`
}

// SubQuery is a call (with its own filter) as an argument: a join's side.
type SubQuery struct {
	Pos   Pos
	Call  *Call `parser:"@@"`
	Where *Expr `parser:"( \"where\" @@ )?"`
}

// On names a join's key columns (Right empty: the same name on both sides).
type On struct {
	Pos   Pos
	Left  string `parser:"@Ident"`
	Right string `parser:"( \"=\" @Ident )?"`
}

// Value is a literal or a name.
type Value struct {
	Pos      Pos
	Duration *string `parser:"(  @Duration"`
	Number   *string `parser:" | @Number"`
	String   *string `parser:" | @String"`
	Ident    *string `parser:" | @Ident )"`
}

// Stage is one step of the pipeline.
type Stage struct {
	Pos    Pos
	Where  *Expr      `parser:"(  \"where\" @@"`
	Window *Window    `parser:" | \"window\" @@"`
	Sort   []*SortKey `parser:" | \"sort\" @@ ( \",\" @@ )*"`
	Limit  *Value     `parser:" | \"limit\" @@"`
	Select []*Name    `parser:" | \"select\" @@ ( \",\" @@ )*"`
	Agg    *Aggregate `parser:" | @@ )"`
}

// Window is a tumbling window: a duration over `at`, or a count of seqs.
type Window struct {
	Pos  Pos
	Size *Value `parser:"@@"`
	Seq  bool   `parser:"@\"seq\"?"`
}

// SortKey is one sort column.
type SortKey struct {
	Pos  Pos
	Col  string `parser:"@Ident"`
	Desc bool   `parser:"( @\"desc\" | \"asc\" )?"`
}

// Name is a column name with its position.
type Name struct {
	Pos  Pos
	Name string `parser:"@Ident"`
}

// Aggregate is one or more aggregate functions over groups.
type Aggregate struct {
	Pos   Pos
	Funcs []*AggFunc `parser:"@@ ( \",\" @@ )*"`
	By    []*Name    `parser:"( \"by\" @@ ( \",\" @@ )* )?"`
}

// AggFunc is one aggregate function.
type AggFunc struct {
	Pos   Pos
	Name  string   `parser:"@( \"count\" | \"sum\" | \"avg\" | \"min\" | \"max\" | \"distinct\" | \"percentile\" )"`
	Paren bool     `parser:"( @\"(\""`
	Args  []*Value `parser:"  ( @@ ( \",\" @@ )* )? \")\" )?"`
}

// Expr is a disjunction.
type Expr struct {
	Pos Pos
	Or  []*AndExpr `parser:"@@ ( \"or\" @@ )*"`
}

// AndExpr is a conjunction.
type AndExpr struct {
	Pos Pos
	And []*NotExpr `parser:"@@ ( \"and\" @@ )*"`
}

// NotExpr is a negation, a parenthesised expression or a comparison (a
// lone value is a boolean column).
type NotExpr struct {
	Pos   Pos
	Not   *NotExpr `parser:"(  \"not\" @@"`
	Paren *Expr    `parser:" | \"(\" @@ \")\""`
	Left  *Value   `parser:" | @@"`
	Op    string   `parser:"   ( @( \"==\" | \"!=\" | \"<=\" | \">=\" | \"!~\" | \"=\" | \"<\" | \">\" | \"~\" )"`
	Right *Value   `parser:"     @@ )? )"`
}

var queryLexer = lexer.MustSimple([]lexer.SimpleRule{
	{Name: "Comment", Pattern: `#[^\n]*`},
	{Name: "Whitespace", Pattern: `[ \t\r\n]+`},
	{Name: "Duration", Pattern: `[-+]?(\d+(\.\d+)?(ns|us|µs|ms|s|m|h|d))+`},
	{Name: "Number", Pattern: `[-+]?\d+(\.\d+)?`},
	{Name: "String", Pattern: `"(\\.|[^"\\\n])*"`},
	{Name: "Ident", Pattern: `[A-Za-z_][A-Za-z0-9_.\-]*`},
	{Name: "Op", Pattern: `==|!=|<=|>=|!~|[=<>~|(),]`},
})

var (
	parserOnce sync.Once
	parser     *participle.Parser[Query]
)

func theParser() *participle.Parser[Query] {
	parserOnce.Do(func() {
		parser = participle.MustBuild[Query](
			participle.Lexer(queryLexer),
			participle.Elide("Whitespace", "Comment"),
			participle.Unquote("String"),
			participle.UseLookahead(4),
		)
	})
	return parser
}

// Parse parses a query. Its errors are *api.QueryError (an ErrInvalid)
// pointing at the line and column.
func Parse(src string) (*Query, error) {
	if err := precheck(src); err != nil {
		return nil, err
	}
	q, err := theParser().ParseString("", src)
	if err != nil {
		var pe participle.Error
		if pos := (Pos{}); asParticiple(err, &pe) {
			pos = pe.Position()
			return nil, ErrorAt(src, pos, "%s", pe.Message())
		}
		return nil, &api.QueryError{Query: src, Line: 1, Col: 1, Msg: err.Error()}
	}
	return q, nil
}

func asParticiple(err error, pe *participle.Error) bool {
	e, ok := err.(participle.Error)
	if ok {
		*pe = e
	}
	return ok
}

// precheck bounds the text before the parser sees it: its size, its
// nesting and its token count.
func precheck(src string) error {
	if len(src) > MaxQueryBytes {
		return &api.QueryError{Query: src[:64], Line: 1, Col: 1, Msg: fmt.Sprintf("query of %d bytes (at most %d)", len(src), MaxQueryBytes)}
	}
	if strings.TrimSpace(src) == "" {
		return &api.QueryError{Query: src, Line: 1, Col: 1, Msg: "empty query"}
	}
	depth, tokens, inString, escaped := 0, 0, false, false
	pos := Pos{Line: 1, Column: 1}
	prevSpace := true
	for _, r := range src {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case r == '\\':
				escaped = true
			case r == '"':
				inString = false
			}
		case r == '"':
			inString = true
			tokens++
		case r == '(':
			depth++
			tokens++
			if depth > MaxNestingDepth {
				return ErrorAt(src, pos, "nested deeper than %d parentheses", MaxNestingDepth)
			}
		case r == ')':
			depth = max(depth-1, 0)
			tokens++
		case r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == ',' || r == '|':
			if r == ',' || r == '|' {
				tokens++
			}
		default:
			if prevSpace {
				tokens++
			}
		}
		prevSpace = !inString && (r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == ',' || r == '|' || r == '(' || r == ')')
		if tokens > MaxTokens {
			return ErrorAt(src, pos, "more than %d tokens", MaxTokens)
		}
		pos.Advance(string(r))
	}
	return nil
}

// ErrorAt is a query error at pos.
func ErrorAt(src string, pos Pos, format string, args ...any) *api.QueryError {
	line, col := pos.Line, pos.Column
	if line < 1 {
		line, col = 1, 1
	}
	return &api.QueryError{Query: src, Line: line, Col: max(col, 1), Msg: fmt.Sprintf(format, args...)}
}
