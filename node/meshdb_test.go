package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deck-mesh/deck/demo/faultconn"
	"github.com/deck-mesh/deck/demo/workloads"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/meshos"
	"github.com/deck-mesh/deck/node/nodetest"
	"github.com/deck-mesh/deck/node/query"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/node/transport"
)

// dbMesh is real nodes on loopback UDP, every one certified by the
// operator, plus a console (an observer, certified too) that asks.
type dbMesh struct {
	t       testing.TB
	cluster *config.Cluster
	op      *identity.Key
	nodes   []*Node
	console *Node
	client  *Client
	faults  map[identity.NodeID]*faultconn.Conn
}

// newDBMesh starts n nodes running spec (with limits for MeshDB's serving
// side) and a console, and waits until the console sees every node.
func newDBMesh(t testing.TB, n int, spec meshos.Spec, limits query.ServeLimits) *dbMesh {
	t.Helper()
	op := mustKey(t)
	cl, err := config.NewCluster("meshdb", nil, []config.Operator{config.NewOperator("alice", op.Public)}, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	m := &dbMesh{t: t, cluster: cl, op: op, faults: map[identity.NodeID]*faultconn.Conn{}}
	for i := range n {
		m.nodes = append(m.nodes, m.start(fmt.Sprintf("n%d", i+1), false, spec, limits))
	}
	m.console = m.start("console", true, spec, limits)
	cl2, err := m.console.NewClient(identity.KeySigner{K: op}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	m.client = cl2
	nodetest.Eventually(t, "the console to see every node healthy", func() bool {
		c := 0
		for _, nv := range m.console.Cluster().Nodes {
			if !nv.Observer && nv.Health == snapshot.Healthy && !nv.Stale {
				c++
			}
		}
		return c == n
	})
	return m
}

func (m *dbMesh) start(label string, observer bool, spec meshos.Spec, limits query.ServeLimits) *Node {
	m.t.Helper()
	o := Options{Cluster: m.cluster, Key: mustKey(m.t), DataDir: m.t.TempDir(), Label: label, Version: "test",
		Observer: observer, Spec: spec, CertifyWith: identity.KeySigner{K: m.op}, QueryLimits: limits,
		Capabilities: []string{"gpu", "edge", "datafort"}, Bootstrap: []string{}}
	if len(m.nodes) > 0 {
		o.Bootstrap = []string{m.nodes[0].Addr()}
	}
	if spec.Groups != nil {
		o.Factories = workloads.Factories()
	}
	udp, err := transport.ListenUDP("127.0.0.1:0")
	if err != nil {
		m.t.Fatal(err)
	}
	fc := faultconn.New(udp)
	o.Conn = fc
	nd, err := Start(context.Background(), o)
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() { nd.Close() })
	m.faults[nd.ID()] = fc
	return nd
}

// fill appends count log lines to nd's own log (level warn on every tenth,
// daemon t-<i mod 3>) and failures naming t-1.
func fill(t testing.TB, nd *Node, count, failures int) {
	t.Helper()
	now := time.Now().Add(-time.Minute)
	var recs []api.LogRecord
	flush := func() {
		if _, err := nd.db.AppendLogs(context.Background(), recs...); err != nil {
			t.Fatal(err)
		}
		recs = recs[:0]
	}
	for i := range count {
		r := api.LogRecord{At: now.Add(time.Duration(i) * time.Microsecond), Node: nd.ID(), Level: api.LevelInfo,
			Daemon: fmt.Sprintf("t-%d", i%3), Text: fmt.Sprintf("record %d of %s", i, nd.opts.Label)}
		if i%10 == 9 {
			r.Level = api.LevelWarn
		}
		recs = append(recs, r)
		if len(recs) == 1024 {
			flush()
		}
	}
	if len(recs) > 0 {
		flush()
	}
	for i := range failures {
		if _, err := nd.db.AppendFailures(context.Background(), api.FailureRecord{At: now, Node: nd.ID(), Source: "daemon",
			Reason: fmt.Sprintf("t-1 crashed (%d)", i)}); err != nil {
			t.Fatal(err)
		}
	}
}

func (m *dbMesh) query(q string, o api.QueryOptions) (*api.QueryRun, []api.QueryRow, api.QueryStatus, error) {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := m.client.Query(ctx, q, o)
	if err != nil {
		return nil, nil, api.QueryStatus{}, err
	}
	rows, st, err := run.Collect()
	return run, rows, st, err
}

func (m *dbMesh) mustQuery(q string) ([]api.QueryRow, api.QueryStatus) {
	m.t.Helper()
	_, rows, st, err := m.query(q, api.QueryOptions{NoCache: true})
	if err != nil {
		m.t.Fatalf("%s: %v", q, err)
	}
	return rows, st
}

// byNode maps a (node, value) result to label → value text.
func (m *dbMesh) byNode(rows []api.QueryRow) map[string]string {
	out := map[string]string{}
	for _, r := range rows {
		out[m.label(r[0].Node())] = r[1].String()
	}
	return out
}

func (m *dbMesh) label(id identity.NodeID) string {
	for _, nd := range append(slices.Clone(m.nodes), m.console) {
		if nd.ID() == id {
			return nd.opts.Label
		}
	}
	return id.String()
}

// TestMeshDBOperatorsOnFiveNodes runs every operator from a console over
// five real nodes, each holding its own logs and failures: time reads,
// filters pushed to the holders, partial aggregates merged, windows,
// joins, the snapshot chain, the plan's holders.
func TestMeshDBOperatorsOnFiveNodes(t *testing.T) {
	m := newDBMesh(t, 5, meshos.Spec{}, query.ServeLimits{})
	for i, nd := range m.nodes {
		fill(t, nd, 200*(i+1), i+1)
	}
	t.Run("between where count by node", func(t *testing.T) {
		rows, st := m.mustQuery(`between(logs, -1h, now) where level >= warn and daemon ~ "t-" | count by node`)
		got := m.byNode(rows)
		for i := range m.nodes {
			if want := fmt.Sprint(20 * (i + 1)); got[fmt.Sprintf("n%d", i+1)] != want {
				t.Errorf("n%d: %s warnings, want %s (%v)", i+1, got[fmt.Sprintf("n%d", i+1)], want, got)
			}
		}
		if st.Partial || st.Scanned < 3000 {
			t.Errorf("status %+v", st)
		}
	})
	t.Run("latest per node, where node pushes down", func(t *testing.T) {
		rows, _ := m.mustQuery(`latest(logs) where daemon ~ "t-" | select node, text`)
		if len(rows) != 5 {
			t.Fatalf("latest: %d rows, want 5", len(rows))
		}
		run, rows, _, err := m.query(`latest(logs, 2) where node = "n3" and daemon ~ "t-" | select seq, text`, api.QueryOptions{NoCache: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(run.Plan.Fragments) != 1 || run.Plan.Fragments[0].Holder != m.nodes[2].ID() {
			t.Errorf("node = n3 planned %+v", run.Plan.Fragments)
		}
		if len(rows) != 2 || rows[0][1].S != "record 599 of n3" || rows[1][1].S != "record 598 of n3" {
			t.Errorf("latest 2 of n3: %v", rows)
		}
	})
	t.Run("at seq and seq ranges", func(t *testing.T) {
		rows, _ := m.mustQuery(`between(logs, 10, 19) where node = "n2" and daemon ~ "t-" | select seq`)
		if len(rows) != 10 || rows[0][0].I != 10 || rows[9][0].I != 19 {
			t.Errorf("between 10, 19: %v", rows)
		}
		rows, _ = m.mustQuery(`at(logs, 5) where node = n2 | select seq`)
		if len(rows) != 1 || rows[0][0].I != 5 {
			t.Errorf("at 5: %v", rows)
		}
	})
	t.Run("aggregates and a seq window", func(t *testing.T) {
		rows, _ := m.mustQuery(`between(logs, 1, 100) where node = "n1" and daemon ~ "t-" | window 50 seq | count, min(seq), max(seq), percentile(seq, 50), distinct(daemon) by window | sort window`)
		var b strings.Builder
		for _, r := range rows {
			fmt.Fprintln(&b, r[0], r[1], r[2], r[3], r[4], r[5])
		}
		if want := "0 49 1 49 25 3\n50 50 50 99 74 3\n100 1 100 100 100 1\n"; b.String() != want {
			t.Errorf("windows:\n%s\nwant\n%s", b.String(), want)
		}
	})
	t.Run("join logs with failures on daemon", func(t *testing.T) {
		rows, _ := m.mustQuery(`join(between(logs, -1h, now) where node = "n1" and level >= warn, scan(failures), on daemon) | count by failures.node | sort failures.node`)
		// n1's warnings of t-1: seq 10, 40, 70, … (i%10 == 9 and i%3 == 1):
		// 7 of 200, each joined with every node's t-1 failures (15).
		total := int64(0)
		for _, r := range rows {
			total += r[1].I
		}
		if total != 7*15 {
			t.Errorf("join: %d rows, want %d (%v)", total, 7*15, rows)
		}
	})
	t.Run("snapshot history of another node", func(t *testing.T) {
		target := m.nodes[3]
		nodetest.Eventually(t, "n4's snapshot chain to hold a record", func() bool {
			rows, _ := m.mustQuery(`latest(snapshots) where node = "n4"`)
			return len(rows) == 1 && rows[0][2].Node() == target.ID() && rows[0][4].S == "n4"
		})
		hist, err := m.client.History(context.Background(), 0, time.Now().Add(time.Second), 10)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[identity.NodeID]bool{}
		for _, h := range hist {
			seen[h.ID] = true
		}
		for _, nd := range m.nodes {
			if !seen[nd.ID()] {
				t.Errorf("History lacks %s: %d records", nd.opts.Label, len(hist))
			}
		}
	})
	t.Run("explain names the holders", func(t *testing.T) {
		run, _, _, err := m.query(`between(logs, -5m, now) where level >= warn | count by daemon`, api.QueryOptions{Explain: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(run.Plan.Fragments) != 5 {
			t.Fatalf("%d fragments, want 5: %s", len(run.Plan.Fragments), run.Plan.Text)
		}
		for _, f := range run.Plan.Fragments {
			if f.Holder != f.Instance {
				t.Errorf("fragment %d of %v planned on %v", f.ID, f.Instance, f.Holder)
			}
		}
		if !strings.Contains(run.Plan.Text, "partial count by daemon") || !strings.Contains(run.Plan.Text, "merge count by daemon") {
			t.Errorf("plan:\n%s", run.Plan.Text)
		}
		again, _, _, _ := m.query(`between(logs, -5m, now) where level >= warn | count by daemon`, api.QueryOptions{Explain: true})
		if again.Plan.Fragments[0].Text != run.Plan.Fragments[0].Text && !strings.Contains(run.Plan.Fragments[0].Text, "between(") {
			t.Errorf("plans differ")
		}
	})
	t.Run("memory limit refuses a join", func(t *testing.T) {
		_, _, _, err := m.query(`join(scan(logs), scan(logs), on daemon) | count`, api.QueryOptions{MemoryLimitBytes: 64 << 10, NoCache: true})
		if !errors.Is(err, api.ErrQueryMemory) {
			t.Fatalf("a join over the memory limit: %v, want ErrQueryMemory", err)
		}
	})
}

// TestMeshDBHolderKilledMidQueryIsReportedPartial: a holder that dies
// while its rows stream leaves the result partial, naming it; the other
// holders' rows all arrive.
func TestMeshDBHolderKilledMidQueryIsReportedPartial(t *testing.T) {
	m := newDBMesh(t, 5, meshos.Spec{}, query.ServeLimits{})
	victim, other := m.nodes[4], m.nodes[3]
	fill(t, victim, 60_000, 0)
	fill(t, other, 1000, 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := m.client.Query(ctx, `between(logs, 1, 100000) where (node = "n5" or node = "n4") and daemon ~ "t-" | select node, seq`, api.QueryOptions{NoCache: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[identity.NodeID]int{}
	killed := false
	for b := range run.Rows() {
		for _, r := range b {
			got[r[0].Node()]++
		}
		if !killed && got[victim.ID()] > 0 {
			// Mid-query: n5 has sent a batch and holds the rest.
			killed = true
			victim.Close()
		}
	}
	st, err := run.Wait()
	if err != nil {
		t.Fatalf("the query failed instead of reporting a partial result: %v", err)
	}
	if !killed {
		t.Fatal("n5 never answered")
	}
	if !st.Partial || len(st.Missing) != 1 || st.Missing[0].Instance != victim.ID() {
		t.Fatalf("status %+v: want partial, n5 missing", st)
	}
	if got[other.ID()] != 1000 {
		t.Errorf("n4 delivered %d rows, want 1000", got[other.ID()])
	}
	if got[victim.ID()] >= 60_000 {
		t.Errorf("n5 delivered all its rows before it was killed (%d): not mid-query", got[victim.ID()])
	}
	t.Logf("n5 delivered %d of 60000 rows before it died; missing: %s", got[victim.ID()], st.Missing[0].Reason)
}

// TestMeshDBCancelFreesRemoteWork: cancelling a query tells its holders,
// which drop the fragment at once (counted), rather than at their idle
// timeout.
func TestMeshDBCancelFreesRemoteWork(t *testing.T) {
	m := newDBMesh(t, 5, meshos.Spec{}, query.ServeLimits{IdleTimeout: time.Hour})
	holder := m.nodes[1]
	fill(t, holder, 60_000, 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := m.client.Query(ctx, `between(logs, 1, 100000) where node = "n2"`, api.QueryOptions{NoCache: true})
	if err != nil {
		t.Fatal(err)
	}
	<-run.Rows() // the holder is serving: one batch arrived
	if s := holder.QueryStats().Serve; s.Active != 1 || s.Started != 1 {
		t.Fatalf("n2 serves %d fragments (%d started), want 1", s.Active, s.Started)
	}
	run.Cancel()
	if _, err := run.Wait(); err == nil {
		t.Error("a cancelled query reported no error")
	}
	nodetest.Eventually(t, "n2 to drop the cancelled fragment", func() bool {
		s := holder.QueryStats().Serve
		return s.Active == 0 && s.Cancelled == 1
	}, func() string { return fmt.Sprintf("%+v", holder.QueryStats().Serve) })
	if s := holder.QueryStats().Serve; s.Expired != 0 || s.Scanned >= 60_000 {
		t.Errorf("n2 after the cancel: %+v", s)
	}
}

// TestMeshDBReplicatedChainFailsOverToAnotherHolder: a replicated chain
// read from its nearest holder moves to the next when that one is dead.
// (Cutting one link is not enough: the mesh relays around it.)
func TestMeshDBReplicatedChainFailsOverToAnotherHolder(t *testing.T) {
	m := newDBMesh(t, 5, workloads.Spec(), query.ServeLimits{})
	var ch snapshot.Chain
	// Every holder must hold entries itself (a follower that has not
	// synced yet answers a failover with nothing), and both forks must be
	// placed for siblings(forge-0) to have one: on a slow (-race) run the
	// chain's head is ahead of its followers for seconds.
	nodetest.Eventually(t, "the trainer chain to have two holders with entries, and both forks placed", func() bool {
		cs := m.console.Cluster()
		forks := 0
		for _, nv := range cs.Nodes {
			for _, d := range nv.Daemons {
				if d.Name == "forge-0" || d.Name == "forge-1" {
					forks++
				}
			}
		}
		for _, c := range cs.Chains {
			if c.Name != "trainer" || len(c.Holders) < 2 || c.HeadSeq < 1 || forks < 2 {
				continue
			}
			for _, h := range c.Holders {
				nv := cs.Node(h)
				if nv == nil || !slices.ContainsFunc(nv.Replicas, func(r snapshot.Replica) bool { return r.Chain == "trainer" && r.Seq >= 1 }) {
					return false
				}
			}
			ch = c
			return true
		}
		return false
	})
	t.Run("lineage, catalogue, replicated chain, admin ledger, time windows", func(t *testing.T) {
		rows, _ := m.mustQuery(`lineage(forge-0) | select relation, group, fork_at`)
		if len(rows) != 2 || rows[0][1].S != "forge" || rows[1][1].S != "trainer" || rows[0][2].I != int64(workloads.ForgeForkAtSeq) {
			t.Errorf("lineage(forge-0): %v", rows)
		}
		if rows, _ := m.mustQuery(`descendants(trainer) | select group`); len(rows) != 1 || rows[0][0].S != "forge" {
			t.Errorf("descendants(trainer): %v", rows)
		}
		if rows, _ := m.mustQuery(`siblings(forge-0) | select relation, members`); len(rows) != 1 || rows[0][1].S != "forge-1" {
			t.Errorf("siblings(forge-0): %v", rows)
		}
		if rows, _ := m.mustQuery(`chains() where kind = replicated and chain = trainer`); len(rows) != 1 {
			t.Errorf("chains(): %v", rows)
		}
		if rows, _ := m.mustQuery(`scan(trainer) | count, max(seq)`); len(rows) != 1 || rows[0][0].I < 1 {
			t.Errorf("scan(trainer): %v", rows)
		}
		rows, _ = m.mustQuery(`between(logs, -1h, now) | window 1m | count, sum(seq), avg(seq) by window | sort window`)
		if len(rows) == 0 || rows[0][1].I < 1 {
			t.Errorf("time windows: %v", rows)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		br, err := m.client.Preview(ctx, api.Action{Verb: api.VerbCordon, Node: m.nodes[0].ID()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.client.Admin().Commit(ctx, br.Action); err != nil {
			t.Fatal(err)
		}
		nodetest.Eventually(t, "the cordon on the admin chain", func() bool {
			rows, _ := m.mustQuery(`scan(admin) where verb = cordon | select operator, target, outcome`)
			return len(rows) == 1 && rows[0][2].S == "accepted"
		})
	})
	run, err := m.client.Query(context.Background(), `latest(trainer) | select seq`, api.QueryOptions{Explain: true})
	if err != nil {
		t.Fatal(err)
	}
	first := run.Plan.Fragments[0].Holder
	if len(run.Plan.Fragments[0].Alternates) == 0 {
		t.Fatalf("no alternate holder planned: %+v (chain %+v)", run.Plan.Fragments[0], ch)
	}
	// Kill the first holder: the view still shows it healthy for a while,
	// so the plan still picks it, and gets nothing back.
	for _, nd := range m.nodes {
		if nd.ID() == first {
			nd.Close()
		}
	}
	run2, rows, st, err := m.query(`latest(trainer) | select seq`, api.QueryOptions{NoCache: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.Partial || len(rows) != 1 {
		t.Fatalf("status %+v rows %v: want one row from another holder", st, rows)
	}
	if run2.Plan.Fragments[0].Holder == first && st.Failovers != 1 {
		t.Fatalf("planned on the cut holder, answered, and no failover recorded: %+v", st)
	}
	t.Logf("planned on %v (killed: %v), failovers %d, %v", run2.Plan.Fragments[0].Holder, first, st.Failovers, st.Elapsed)
}

// TestMeshDBHistoryReachesBeforeTheConsoleJoined: BEHAVIOR's scroll-back
// (Client.History) reads each node's own snapshot chain through MeshDB,
// so a console that just joined sees a node's past from before it
// existed, not only what it recorded itself.
func TestMeshDBHistoryReachesBeforeTheConsoleJoined(t *testing.T) {
	m := newDBMesh(t, 3, meshos.Spec{}, query.ServeLimits{})
	n2 := m.nodes[1]
	var first time.Time
	nodetest.Eventually(t, "n2 to record its own snapshot", func() bool {
		recs, err := n2.db.History(n2.ID(), time.Now().Add(time.Hour), 1)
		if err == nil && len(recs) == 1 {
			first = recs[0].At
			return true
		}
		return false
	})
	late := m.start("late-console", true, meshos.Spec{}, query.ServeLimits{})
	joined := time.Now()
	client, err := late.NewClient(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, "the late console to see n2", func() bool {
		nv := late.Cluster().Node(n2.ID())
		return nv != nil && nv.Health == snapshot.Healthy && !nv.Stale
	})
	if own, _ := late.db.History(n2.ID(), joined, 10); len(own) != 0 {
		t.Fatalf("the late console recorded n2 before it joined: %d records", len(own))
	}
	hist, err := client.History(context.Background(), n2.ID(), joined, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) == 0 || hist[len(hist)-1].ID != n2.ID() || hist[len(hist)-1].BuiltAt.After(joined) {
		t.Fatalf("History(n2, before the console joined) = %d snapshots; n2 recorded one at %v", len(hist), first)
	}
}
