package lang

import (
	"errors"
	"strings"
	"testing"

	"github.com/deck-mesh/deck/node/api"
)

func TestParseExamples(t *testing.T) {
	for _, src := range []string{
		`latest(snapshots) where node = "node-3"`,
		`between(logs, -5m, now) where level >= warn | count by daemon`,
		`lineage(forge-1)`,
		`join(between(logs, -1h, now) where level >= warn, failures, on daemon) | count by daemon`,
		`between(logs, -1h, now) | window 5m | count, max(level) by node`,
		`between(logs, 100, 200) | window 10 seq | count by window`,
		`latest(logs, 10) where not (level < warn or daemon ~ "x") | sort at desc, node | limit 5 | select at, text`,
		`between(logs, -1h, now) | percentile(seq, 99), distinct(daemon), avg(level) by node`,
		"latest(snapshots) # the newest\n| select node, cpu",
		`at(trainer, 3)`,
		`chains()`,
	} {
		q, err := Parse(src)
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		again, err := Parse(q.String())
		if err != nil {
			t.Errorf("canonical %q does not parse: %v", q.String(), err)
			continue
		}
		if again.String() != q.String() {
			t.Errorf("canonical form not stable: %q then %q", q.String(), again.String())
		}
	}
}

func TestParseErrorsPointAtTheColumn(t *testing.T) {
	for _, c := range []struct {
		src       string
		line, col int
		caret     string
	}{
		{`between(logs, -5m now)`, 1, 19, "between(logs, -5m now)\n                  ^"},
		{`latest(logs) | count by`, 1, 24, ""},
		{"latest(logs)\n  | sort", 2, 9, ""},
		{`latest(logs) where level >`, 1, 27, ""},
		{`latest(logs) | frobnicate`, 1, 16, ""},
	} {
		_, err := Parse(c.src)
		var qe *api.QueryError
		if !errors.As(err, &qe) {
			t.Fatalf("%q: error %v is not a QueryError", c.src, err)
		}
		if !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%q: not ErrInvalid", c.src)
		}
		if qe.Line != c.line || qe.Col != c.col {
			t.Errorf("%q: error at %d:%d (%s), want %d:%d", c.src, qe.Line, qe.Col, qe.Msg, c.line, c.col)
		}
		if c.caret != "" && qe.Caret() != c.caret {
			t.Errorf("%q: caret\n%s\nwant\n%s", c.src, qe.Caret(), c.caret)
		}
	}
}

func TestParseBounds(t *testing.T) {
	deep := "latest(logs) where " + strings.Repeat("(", MaxNestingDepth+1) + "x" + strings.Repeat(")", MaxNestingDepth+1)
	if _, err := Parse(deep); err == nil || !strings.Contains(err.Error(), "nested") {
		t.Errorf("deep nesting: %v", err)
	}
	if _, err := Parse(strings.Repeat("x", MaxQueryBytes+1)); err == nil {
		t.Error("oversized query parsed")
	}
	if _, err := Parse("   "); err == nil {
		t.Error("empty query parsed")
	}
}
