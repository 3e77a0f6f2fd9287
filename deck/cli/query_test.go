package cli

import (
	"strings"
	"testing"
	"time"
)

// TestQueryParseErrorNeedsNoCluster: a query that does not parse exits 2
// with a caret under the column, before any cluster is joined.
func TestQueryParseErrorNeedsNoCluster(t *testing.T) {
	r := run(t, IO{}, "query", "between(logs, -5m now)")
	if r.code != 2 {
		t.Fatalf("want exit 2\n%s", r)
	}
	want := "deck: query: 1:19: unexpected token \"now\" (expected \")\")\n  between(logs, -5m now)\n                    ^\n"
	if r.err != want {
		t.Fatalf("stderr:\n%q\nwant\n%q", r.err, want)
	}
}

// TestQueryAndChainOnTheMesh runs deck query and deck chain against the
// shared mesh: JSON rows, the plan, exit codes, the catalogue, a chain's
// inspection and its tail.
func TestQueryAndChainOnTheMesh(t *testing.T) {
	t.Parallel()
	m := sharedMesh(t)
	type doc struct {
		Columns []struct{ Name, Type string }
		Rows    []map[string]any
		Partial bool
	}
	d := decodeJSON[doc](t, m.must(t, 0, "query", `latest(snapshots) where node = "n2" | select node, label, generation`, "-o", "json"))
	if len(d.Rows) != 1 || d.Rows[0]["label"] != "n2" || d.Partial {
		t.Fatalf("latest snapshot of n2: %+v", d)
	}
	if d.Columns[0].Name != "node" || d.Columns[0].Type != "node" {
		t.Errorf("columns %+v", d.Columns)
	}
	r := m.must(t, 0, "query", "--explain", `between(logs, -5m, now) where level >= warn | count by daemon`)
	for _, want := range []string{"merge count by daemon", "partial count by daemon", "@ n1", "@ n2", "@ n3"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("explain lacks %q:\n%s", want, r.out)
		}
	}
	r = m.must(t, 0, "query", `between(logs, -1h, now) | count by node | sort node`)
	t.Logf("deck query:\n%s", r)
	if !strings.Contains(r.out, "NODE") || !strings.Contains(r.out, "COUNT") || !strings.Contains(r.err, "row(s)") {
		t.Errorf("pretty output:\n%s", r)
	}
	r = m.must(t, 2, "query", `latest(logs) where nosuch = 1`)
	if !strings.Contains(r.err, "^") {
		t.Errorf("a type error without a caret:\n%s", r)
	}
	m.must(t, 3, "query", `latest(nosuchchain)`)

	r = m.must(t, 0, "chain", "ls")
	for _, want := range []string{"admin", "logs", "failures", "snapshots", "trainer", "replicated"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("chain ls lacks %q:\n%s", want, r.out)
		}
	}
	eventually(t, 30*time.Second, func() string {
		r := m.deck(t, "chain", "inspect", "trainer")
		if r.code != 0 {
			return r.String()
		}
		t.Logf("deck chain inspect trainer:\n%s", r.out)
		for _, want := range []string{"HOLDERS", "COLUMNS", "seq:int", "FIRST_SEQ", "self"} {
			if !strings.Contains(r.out, want) {
				return "chain inspect trainer lacks " + want + "\n" + r.String()
			}
		}
		return ""
	})
	m.must(t, 3, "chain", "inspect", "nosuchchain")
	r = m.must(t, 0, "chain", "tail", "logs", "--from", "1", "--follow=false")
	if !strings.Contains(r.out, "seq=1 ") {
		t.Errorf("tail from 1 lacks seq 1:\n%s", r)
	}
}
