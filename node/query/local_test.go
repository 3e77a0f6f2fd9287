package query

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

var t0 = time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)

const self = identity.NodeID(0x1111_0000_0000_0001)

// localEngine is one node's engine over in-memory chains: 100 log lines
// (one a second from t0, every tenth a warning from daemon d-1, the rest
// info from d-0), 5 failures naming d-1, an admin ledger of 3 events, and
// a replicated chain "trainer" with a fork group "forge" under it.
func localEngine(t *testing.T) *Engine {
	t.Helper()
	logs, fails := &MemLog{}, &MemLog{}
	for i := range 100 {
		at := t0.Add(time.Duration(i) * time.Second)
		rec := api.LogRecord{At: at, Node: self, Level: api.LevelInfo, Daemon: "d-0", Text: fmt.Sprintf("line %d", i)}
		if i%10 == 9 {
			rec.Level, rec.Daemon = api.LevelWarn, "d-1"
		}
		logs.Append(at.UnixNano(), chain.AppendLogRecord(nil, rec))
	}
	for i := range 5 {
		at := t0.Add(time.Duration(10*i+5) * time.Second)
		fails.Append(at.UnixNano(), chain.AppendFailureRecord(nil, api.FailureRecord{At: at, Node: self, Source: "daemon", Reason: fmt.Sprintf("d-1 crashed (%d)", i)}))
	}
	audit := []api.AuditRecord{
		{Seq: 1, IssuedAt: t0, Operator: 7, Action: api.Action{Verb: api.VerbCordon, Node: self}},
		{Seq: 2, IssuedAt: t0.Add(time.Minute), Operator: 7, Action: api.Action{Verb: api.VerbFreezeCluster}, ICE: true},
		{Seq: 3, IssuedAt: t0.Add(2 * time.Minute), Operator: 8, Action: api.Action{Verb: api.VerbUncordon, Node: self}, Outcome: api.Rejected, Reason: "frozen"},
	}
	view := &snapshot.ClusterSnapshot{Self: self, Nodes: []snapshot.NodeView{{NodeSnapshot: snapshot.NodeSnapshot{ID: self, Label: "n1",
		Daemons: []snapshot.Daemon{{ID: "forge-0", Lineage: snapshot.Lineage{Kind: snapshot.GroupFork, Group: "forge", ForkAt: 1, ForkSentinel: 0xabc}}}}}},
		Chains: []snapshot.Chain{{Name: "trainer", Group: "trainer", Desired: 1, Holders: []identity.NodeID{self}, Leader: self, HeadSeq: 3}},
		Groups: []snapshot.Group{
			{Name: "trainer", Kind: snapshot.GroupStandby, Members: []string{"trainer-0"}, Chain: "trainer"},
			{Name: "forge", Kind: snapshot.GroupFork, Parent: "trainer", ForkAt: 1, Members: []string{"forge-0", "forge-1"}},
			{Name: "forge2", Kind: snapshot.GroupFork, Parent: "forge", ForkAt: 2, Members: []string{"forge2-0"}},
		}}
	st := &Store{Self: self, Logs: logs, Failures: fails,
		Audit:   func() []api.AuditRecord { return audit },
		Daemons: func() []string { return []string{"d-0", "d-1"} },
		Replica: func(name string) ([]ReplicaEntry, bool) {
			if name != "trainer" {
				return nil, false
			}
			return []ReplicaEntry{{1, "trainer-0", []byte("a")}, {2, "trainer-0", []byte("bb")}, {3, "trainer-0", []byte("ccc")}}, true
		}}
	return New(Config{Self: self, Store: st, View: func() *snapshot.ClusterSnapshot { return view }, Now: func() time.Time { return t0.Add(100 * time.Second) }})
}

func run(t *testing.T, e *Engine, q string) ([]api.QueryColumn, []api.QueryRow, api.QueryStatus) {
	t.Helper()
	r, err := e.Query(context.Background(), q, api.QueryOptions{NoCache: true})
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	rows, st, err := r.Collect()
	if err != nil {
		t.Fatalf("%s: run: %v", q, err)
	}
	return r.Columns, rows, st
}

func render(cols []api.QueryColumn, rows []api.QueryRow) string {
	var b strings.Builder
	for i, c := range cols {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(c.Name)
	}
	b.WriteString("\n")
	for _, r := range rows {
		for i, v := range r {
			if i > 0 {
				b.WriteString(" ")
			}
			b.WriteString(v.String())
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestLocalOperators(t *testing.T) {
	e := localEngine(t)
	for _, c := range []struct{ q, want string }{
		{`latest(logs) | select seq, text`, "seq text\n100 line 99\n"},
		{`latest(logs, 3) where level >= warn | select seq, daemon`, "seq daemon\n100 d-1\n90 d-1\n80 d-1\n"},
		{`at(logs, 5) | select seq`, "seq\n5\n"},
		{`at(logs, "2026-01-02T12:00:10.500Z") | select seq`, "seq\n11\n"},
		{`between(logs, 10, 12) | select seq`, "seq\n10\n11\n12\n"},
		{`between(logs, -10s, now) | count`, "count\n10\n"},
		{`between(logs, -100s, now) where level >= warn | count by daemon`, "daemon count\nd-1 10\n"},
		{`between(logs, 1, 100) | count, min(seq), max(seq), sum(seq), avg(seq), distinct(daemon), percentile(seq, 90) by level | sort level`,
			"level count min(seq) max(seq) sum(seq) avg(seq) distinct(daemon) percentile(seq, 90)\nINFO 90 1 99 4500 50 1 89\nWARN 10 10 100 550 55 1 90\n"},
		{`between(logs, 1, 40) | window 20 seq | count by window`, "window count\n0 19\n20 20\n40 1\n"},
		{`between(logs, 1, 100) | window 30s | count | sort window | limit 2`, "window count\n2026-01-02T12:00:00.000Z 30\n2026-01-02T12:00:30.000Z 30\n"},
		{`scan(failures) | select daemon, reason | limit 1`, "daemon reason\nd-1 d-1 crashed (0)\n"},
		{`join(between(logs, 1, 100) where level >= warn, failures, on daemon) | count`, "count\n50\n"},
		{`leftjoin(between(logs, 1, 20), scan(failures) where seq = 1, on daemon) | sort logs.seq | limit 3 | select logs.seq, failures.seq`, "logs.seq failures.seq\n1 \n2 \n3 \n"},
		{`scan(admin) where ice | select verb`, "verb\nfreeze-cluster\n"},
		{`latest(admin) | select seq, outcome, reason`, "seq outcome reason\n3 rejected frozen\n"},
		{`scan(trainer) | select seq, bytes`, "seq bytes\n1 1\n2 2\n3 3\n"},
		{`lineage(forge-1) | select depth, relation, group, fork_at, sentinel`, "depth relation group fork_at sentinel\n0 self forge 1 0000000000000abc\n1 ancestor trainer  \n"},
		{`descendants(trainer) | select depth, group`, "depth group\n1 forge\n2 forge2\n"},
		{`siblings(forge-1) | select relation, members`, "relation members\nmember forge-0\n"},
		{`chains() where kind = replicated | select chain, holders, head_seq`, "chain holders head_seq\ntrainer n1 3\n"},
		{`bounds(logs) | select first_seq, last_seq, records`, "first_seq last_seq records\n1 100 100\n"},
	} {
		cols, rows, _ := run(t, e, c.q)
		if got := render(cols, rows); got != c.want {
			t.Errorf("%s:\n%s\nwant\n%s", c.q, got, c.want)
		}
	}
}

func TestQueryErrorsPoint(t *testing.T) {
	e := localEngine(t)
	for _, c := range []struct {
		q   string
		col int
		is  error
	}{
		{`latest(nochain)`, 8, api.ErrNotFound},
		{`latest(logs) where levl >= warn`, 20, api.ErrInvalid},
		{`latest(logs) where level >= loud`, 29, api.ErrInvalid},
		{`latest(logs) | sum(text)`, 20, api.ErrInvalid},
		{`between(logs, 1, now)`, 18, api.ErrInvalid},
		{`latest(logs) where node = "nobody"`, 27, api.ErrInvalid},
	} {
		_, err := e.Query(context.Background(), c.q, api.QueryOptions{})
		var qe *api.QueryError
		if !errors.As(err, &qe) || !errors.Is(err, c.is) {
			t.Errorf("%s: %v, want a QueryError that is %v", c.q, err, c.is)
			continue
		}
		if qe.Col != c.col {
			t.Errorf("%s: error at column %d (%s), want %d", c.q, qe.Col, qe.Msg, c.col)
		}
	}
}

// TestResultIsCutAtMaxRows: a result stops at MaxRows and says so.
func TestResultIsCutAtMaxRows(t *testing.T) {
	e := localEngine(t)
	r, err := e.Query(context.Background(), `scan(logs)`, api.QueryOptions{MaxRows: 7})
	if err != nil {
		t.Fatal(err)
	}
	rows, st, err := r.Collect()
	if err != nil || len(rows) != 7 || !st.Partial || st.Missing[0].Fragment != -1 {
		t.Fatalf("rows %d, status %+v, err %v", len(rows), st, err)
	}
}
