package query

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/messaging/messagingtest"
	"github.com/deck-mesh/deck/node/nodetest"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Attacks on the serving side by a member: it holds a session, so the
// transport delivers what it sends; what it may ask of a holder is what
// these tests bound. Each runs a holder (the victim) and an honest
// coordinator as engines on the one in-memory hub, and the attacker as a
// raw hub node or as a coordinator asking for too much.

const (
	victimID   = identity.NodeID(0xaaaa_0000_0000_0001)
	honestID   = identity.NodeID(0xbbbb_0000_0000_0002)
	attackerID = identity.NodeID(0xcccc_0000_0000_0003)
)

type attackBed struct {
	hub      *messagingtest.Hub
	victim   *Engine
	honest   *Engine
	attacker *messagingtest.Node
	view     *snapshot.ClusterSnapshot
}

// newAttackBed runs a victim holding records log lines (distinct texts,
// three daemons) under limits, an honest coordinator, and an attacker.
func newAttackBed(t *testing.T, records int, limits ServeLimits) *attackBed {
	t.Helper()
	b := &attackBed{hub: messagingtest.NewHub(t, messagingtest.Config{InboxLen: 1 << 14})}
	logs := &MemLog{}
	at := time.Now().Add(-time.Hour)
	for i := range records {
		rec := api.LogRecord{At: at, Node: victimID, Level: api.LevelInfo, Daemon: fmt.Sprintf("d-%d", i%3), Text: fmt.Sprintf("line %d", i)}
		logs.Append(at.UnixNano(), chain.AppendLogRecord(nil, rec))
	}
	b.view = &snapshot.ClusterSnapshot{Nodes: []snapshot.NodeView{
		{NodeSnapshot: snapshot.NodeSnapshot{ID: victimID, Label: "victim"}},
		{NodeSnapshot: snapshot.NodeSnapshot{ID: honestID, Label: "honest"}},
	}}
	view := func() *snapshot.ClusterSnapshot { return b.view }
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	vm := b.hub.Join(victimID)
	b.victim = New(Config{Self: victimID, Messenger: vm, Store: &Store{Self: victimID, Logs: logs, Failures: &MemLog{}}, View: view, Serve: limits})
	vm.Handle(messaging.ChanQuery, b.victim.Handle)
	go b.victim.Run(ctx)
	hm := b.hub.Join(honestID)
	b.honest = New(Config{Self: honestID, Messenger: hm, Store: &Store{Self: honestID, Logs: &MemLog{}, Failures: &MemLog{}}, View: view})
	hm.Handle(messaging.ChanQuery, b.honest.Handle)
	go b.honest.Run(ctx)
	b.attacker = b.hub.Join(attackerID)
	b.attacker.Handle(messaging.ChanQuery, func(identity.NodeID, []byte) {}) // answers go nowhere
	return b
}

// request is a fragment request as the attacker sends it.
func request(t *testing.T, qid uint64, q string, view *snapshot.ClusterSnapshot) []byte {
	t.Helper()
	pl, err := Compile(q, &Catalog{View: view, Self: attackerID, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return encodeRequest(qid, 60_000, pl.Frags[0].enc)
}

func (b *attackBed) honestCount(t *testing.T) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := b.honest.Query(ctx, `scan(logs) where node = victim | count`, api.QueryOptions{NoCache: true})
	if err != nil {
		t.Fatal(err)
	}
	rows, st, err := run.Collect()
	if err != nil || st.Partial || len(rows) != 1 {
		t.Fatalf("the honest query: rows %v status %+v err %v", rows, st, err)
	}
	return rows[0][0].I
}

// flood sends n fragment requests from the attacker and waits until the
// victim judged them all.
func (b *attackBed) flood(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		if err := b.attacker.Send(context.Background(), victimID, messaging.ChanQuery, request(t, uint64(i+1), `scan(logs) where node = victim`, b.view)); err != nil {
			t.Fatal(err)
		}
	}
	nodetest.Eventually(t, "the victim to judge every request", func() bool {
		s := b.victim.Stats().Serve
		return s.Started+s.RefusedRate+s.RefusedBusy >= uint64(n)
	}, func() string { return fmt.Sprintf("%+v", b.victim.Stats().Serve) })
}

// TestAttackQueryFloodIsRateLimitedPerPeer: a member firing fragment
// requests gets its start budget, no more: the rest are refused and
// counted, and an honest peer's query is still served in full.
func TestAttackQueryFloodIsRateLimitedPerPeer(t *testing.T) {
	limits := ServeLimits{QueriesPerSecondPerPeer: 1, QueryBurstPerPeer: 4, MaxQueriesPerPeer: 1000, MaxServedQueries: 1000}
	b := newAttackBed(t, 1000, limits)
	start := time.Now()
	b.flood(t, 500)
	s := b.victim.Stats().Serve
	allowed := uint64(limits.QueryBurstPerPeer) + uint64(time.Since(start).Seconds()+1)*uint64(limits.QueriesPerSecondPerPeer)
	if s.Started > allowed || s.RefusedRate < 500-allowed {
		t.Fatalf("the victim started %d of the attacker's 500 fragments (budget %d): %+v", s.Started, allowed, s)
	}
	if n := b.honestCount(t); n != 1000 {
		t.Fatalf("the honest peer counted %d of 1000 records", n)
	}
}

// TestAttackQueryFloodHoldsOnlyItsShareOfFragments: however fast its
// budget lets it start them, a member holds at most MaxQueriesPerPeer
// fragments open on a holder, so the holder's table always has room for
// other peers.
func TestAttackQueryFloodHoldsOnlyItsShareOfFragments(t *testing.T) {
	limits := ServeLimits{QueriesPerSecondPerPeer: 1e6, QueryBurstPerPeer: 1e6, MaxQueriesPerPeer: 2, MaxServedQueries: 8}
	b := newAttackBed(t, 1000, limits)
	b.flood(t, 500)
	if s := b.victim.Stats().Serve; s.Active > 2 || s.Started > 2 || s.RefusedBusy < 498 {
		t.Fatalf("the attacker holds %d fragments open (%d started), at most 2: %+v", s.Active, s.Started, s)
	}
	if n := b.honestCount(t); n != 1000 {
		t.Fatalf("the honest peer counted %d of 1000 records", n)
	}
}

// TestAttackEndlessScanIsCutByScanBudget: a member asking for a scan of
// everything, forever, gets the fragment's scan budget and a truncated
// answer that says so.
func TestAttackEndlessScanIsCutByScanBudget(t *testing.T) {
	const budget = 10_000
	b := newAttackBed(t, 50_000, ServeLimits{ScanRecordsPerQuery: budget})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The honest engine stands in for the member's console here: it pulls
	// every batch the victim makes.
	run, err := b.honest.Query(ctx, `scan(logs) where node = victim | select seq`, api.QueryOptions{NoCache: true})
	if err != nil {
		t.Fatal(err)
	}
	rows, st, err := run.Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) > budget || !st.Partial || len(st.Missing) != 1 {
		t.Fatalf("a scan of 50000 records under a budget of %d: %d rows, status %+v", budget, len(rows), st)
	}
	s := b.victim.Stats().Serve
	if s.Truncated != 1 || s.Scanned > budget+ScanSliceRecords {
		t.Fatalf("victim: %+v", s)
	}
}

// TestAttackScanFloodWaitsForThePeersBudget: a member running scans back
// to back is held to its records-per-second budget (its fragments wait
// their turn, counted Throttled) while another peer's query still runs.
func TestAttackScanFloodWaitsForThePeersBudget(t *testing.T) {
	b := newAttackBed(t, 50_000, ServeLimits{ScanRecordsPerSecondPerPeer: 40_000, ScanBurstRecordsPerPeer: 20_000})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 2)
	for range 2 {
		go func() {
			run, err := b.honest.Query(ctx, `scan(logs) where node = victim | count by text | count`, api.QueryOptions{NoCache: true})
			if err == nil {
				_, _, err = run.Collect()
			}
			done <- err
		}()
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if s := b.victim.Stats().Serve; s.Throttled == 0 {
		t.Fatalf("100000 records scanned for one peer against 20000 of burst and 40000/s, never throttled: %+v", s)
	}
}

// TestAttackAbandonedFragmentExpires: a member that starts fragments and
// never pulls them does not keep the holder's state: each is dropped at
// the idle timeout.
func TestAttackAbandonedFragmentExpires(t *testing.T) {
	b := newAttackBed(t, 100_000, ServeLimits{IdleTimeout: time.Second})
	for i := range 3 {
		if err := b.attacker.Send(context.Background(), victimID, messaging.ChanQuery, request(t, uint64(i+1), `scan(logs) where node = victim`, b.view)); err != nil {
			t.Fatal(err)
		}
	}
	nodetest.Eventually(t, "the victim to start the fragments", func() bool { return b.victim.Stats().Serve.Started == 3 })
	nodetest.Eventually(t, "the victim to drop the abandoned fragments", func() bool {
		s := b.victim.Stats().Serve
		return s.Active == 0 && s.Expired == 3
	}, func() string { return fmt.Sprintf("%+v", b.victim.Stats().Serve) })
	if s := b.victim.Stats().Serve; s.Scanned > 3*ScanSliceRecords {
		t.Fatalf("the victim scanned %d records for fragments nobody pulled", s.Scanned)
	}
}

// TestAttackHugeGroupByIsRefusedOnHolder: a member's group-by with a group
// per record would hold every record on the holder; the fragment's memory
// budget refuses it with a typed error instead.
func TestAttackHugeGroupByIsRefusedOnHolder(t *testing.T) {
	b := newAttackBed(t, 20_000, ServeLimits{FragmentMemoryBytes: 256 << 10})
	run, err := b.honest.Query(context.Background(), `scan(logs) where node = victim | count by text`, api.QueryOptions{NoCache: true})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = run.Collect()
	if !errors.Is(err, api.ErrQueryMemory) {
		t.Fatalf("a group per record under a 256 KiB fragment budget: %v, want ErrQueryMemory", err)
	}
	if s := b.victim.Stats().Serve; s.MemoryRefused != 1 || s.Active != 0 {
		t.Fatalf("victim: %+v", s)
	}
}

// TestAttackHugeJoinIsRefusedNotRunOutOfMemory: a join whose right side
// outgrows the query's memory limit fails with ErrQueryMemory; it is never
// built past the limit.
func TestAttackHugeJoinIsRefusedNotRunOutOfMemory(t *testing.T) {
	b := newAttackBed(t, 5_000, ServeLimits{})
	run, err := b.honest.Query(context.Background(), `join(scan(logs), scan(logs), on daemon) | count`, api.QueryOptions{NoCache: true, MemoryLimitBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	rows, _, err := run.Collect()
	if !errors.Is(err, api.ErrQueryMemory) {
		t.Fatalf("a 5000 × 5000 join under 1 MiB: rows %v, err %v; want ErrQueryMemory", rows, err)
	}
}
