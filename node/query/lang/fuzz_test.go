package lang

import (
	"errors"
	"testing"

	"github.com/deck-mesh/deck/node/api"
)

// FuzzParse: no input panics the parser, every error is a QueryError with
// a position inside the text, and a query that parses prints a canonical
// form that parses to itself.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`latest(snapshots) where node = "node-3"`,
		`between(logs, -5m, now) where level >= warn | count by daemon`,
		`lineage(forge-1)`,
		`join(between(logs, -1h, now) where level >= warn, failures, on daemon) | count by daemon`,
		`between(logs, 100, 200) | window 10 seq | count, percentile(seq, 99) by window`,
		`latest(logs, 10) where not (level < warn or daemon ~ "x\"y") | sort at desc | limit 5 | select at, text`,
		"chains() # all\n",
		`between(logs, -5m now)`,
		`((((`,
		`latest(logs) where "unterminated`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		q, err := Parse(src)
		if err != nil {
			var qe *api.QueryError
			if !errors.As(err, &qe) || !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("error %v is not an invalid-argument QueryError", err)
			}
			if qe.Line < 1 || qe.Col < 1 {
				t.Fatalf("error position %d:%d", qe.Line, qe.Col)
			}
			_ = qe.Caret()
			return
		}
		canon := q.String()
		again, err := Parse(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, src, err)
		}
		if again.String() != canon {
			t.Fatalf("canonical form unstable: %q, then %q", canon, again.String())
		}
	})
}
