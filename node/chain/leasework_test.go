package chain

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/messaging/messagingtest"
	"github.com/deck-mesh/deck/node/nodetest"
)

// TestAttackFilteredLeaseCannotStallReadLoop: a peer fires filtered log
// leases (a Match nothing matches, so each would scan thousands of records
// backwards) interleaved with an honest peer's pings on another channel.
// The hub delivers to the server on one goroutine in arrival order, as the
// transport's read loop does. The log is held busy for the whole flood (its
// lock taken, as a long commit holds it), which turns "each lease costs a
// disk scan on the read loop" from slow into stuck: every ping must still
// be handled, because the lease handler must not touch the log at all.
// After the log is released, the leases the budget admitted are served.
func TestAttackFilteredLeaseCannotStallReadLoop(t *testing.T) {
	ctx := context.Background()
	h := messagingtest.NewHub(t, messagingtest.Config{})
	srv := startSubNodes(t, h, 1, SubscriptionConfig{})[0]
	recs := make([]api.LogRecord, 4000)
	for i := range recs {
		recs[i] = testLogRecord(i)
		recs[i].Text = "routine chatter"
	}
	if _, err := srv.db.AppendLogs(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	var pings atomic.Int64
	srv.ep.Handle(messaging.ChanCommand, func(identity.NodeID, []byte) { pings.Add(1) })
	attacker := newRawClient(h, 0xa77ac)
	honest := h.Join(0x600d)

	ls := srv.db.logs[logIDLogs]
	ls.mu.Lock()
	var release sync.Once
	unlock := func() { release.Do(ls.mu.Unlock) }
	t.Cleanup(unlock) // before the hub and the database close

	const flood = 100
	filter := api.LogFilter{Match: "no record says this"}
	for i := range flood {
		lease := (&subMsg{Type: subLeaseLogs, Sub: uint64(i + 1), Filter: filter}).encode()
		if err := attacker.ep.Send(ctx, srv.id, messaging.ChanSubscribe, lease); err != nil {
			t.Fatal(err)
		}
		if err := honest.Send(ctx, srv.id, messaging.ChanCommand, []byte("ping")); err != nil {
			t.Fatal(err)
		}
	}
	nodetest.Eventually(t, fmt.Sprintf("all %d pings handled while %d filtered leases arrive and the log is busy", flood, flood),
		func() bool { return pings.Load() == flood },
		func() string {
			// Not the service's Stats: a handler stuck on the log may hold
			// its lock. The hub's count is of messages taken off the queue.
			return fmt.Sprintf("pings handled: %d of %d; messages the server's read loop took: %d of %d",
				pings.Load(), flood, srv.ep.Stats().PacketsIn, 2*flood)
		})
	unlock()
	// Every lease the server took on is set up once the log is free; the
	// rest were refused and counted, none queued without bound.
	nodetest.Eventually(t, "the client's allowance of leases to be served, the rest refused", func() bool {
		st := srv.svc.Stats()
		return st.Leases == MaxLeasesPerClient && st.Refused == flood-MaxLeasesPerClient
	}, func() string { return fmt.Sprintf("server %+v", srv.svc.Stats()) })
}

// TestAttackFilteredLeaseSetupsAreRateLimited: a peer sets up a filtered
// lease and cancels it, over and over, so the per-client lease cap never
// binds and every setup would cost a backfill scan. On a clock that does not
// move, the server sets up exactly one burst of leases for that client and
// refuses (and counts) the rest; another client is unaffected.
func TestAttackFilteredLeaseSetupsAreRateLimited(t *testing.T) {
	ctx := context.Background()
	clock := nodetest.NewClock(testClockStart)
	h := messagingtest.NewHub(t, messagingtest.Config{})
	srv := startSubNodesWith(t, h, Config{Now: clock.Now}, SubscriptionConfig{})
	recs := make([]api.LogRecord, 2000)
	for i := range recs {
		recs[i] = testLogRecord(i)
		recs[i].Text = "routine chatter"
	}
	if _, err := srv.db.AppendLogs(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	attacker := newRawClient(h, 0xa77ac)
	const cycles = 3 * LeaseSetupBurstPerClient
	filter := api.LogFilter{Match: "no record says this"}
	for i := range cycles {
		sub := uint64(i + 1)
		for _, m := range []*subMsg{{Type: subLeaseLogs, Sub: sub, Filter: filter}, {Type: subCancel, Sub: sub}} {
			if err := attacker.ep.Send(ctx, srv.id, messaging.ChanSubscribe, m.encode()); err != nil {
				t.Fatal(err)
			}
		}
		// Wait for the lease to end, so the next one is never refused by
		// the per-client lease cap: only a setup budget can refuse it. The
		// hub counts a message in before its handler runs, and runs them in
		// order, so once both are in the lease has been handled.
		nodetest.Eventually(t, fmt.Sprintf("lease %d handled and ended", sub), func() bool {
			return srv.ep.Stats().PacketsIn >= 2*sub && srv.svc.Stats().Leases == 0
		})
	}
	// A lease cancelled before its setup ran costs no scan and is not
	// counted as started: at most the burst was.
	if started := srv.svc.stats.leases.Load(); started > LeaseSetupBurstPerClient {
		t.Fatalf("%d of %d filtered leases set up (each a backfill scan) for one client on a clock that stands still; want at most the burst, %d",
			started, cycles, LeaseSetupBurstPerClient)
	}
	if st := srv.svc.Stats(); st.RateLimited != cycles-LeaseSetupBurstPerClient {
		t.Fatalf("rate limited %d, want %d (%+v)", st.RateLimited, cycles-LeaseSetupBurstPerClient, st)
	}
	// Another client has its own budget.
	other := newRawClient(h, 0x600d)
	if err := other.ep.Send(ctx, srv.id, messaging.ChanSubscribe, (&subMsg{Type: subLeaseLogs, Sub: 1, Filter: filter}).encode()); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, "the other client's lease", func() bool { return srv.svc.Stats().Leases == 1 })
}

// startSubNodesWith starts one subscription server on a database opened
// with dbCfg (a test clock, say).
func startSubNodesWith(t *testing.T, h *messagingtest.Hub, dbCfg Config, cfg SubscriptionConfig) *subNode {
	t.Helper()
	id := identity.NodeID(0x2000 + 1)
	db := openTestDB(t, dbCfg)
	ep := h.Join(id)
	svc := NewSubscriptionService(db, ep, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = svc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	nodetest.Eventually(t, "handler registered", func() bool { return ep.HasHandler(messaging.ChanSubscribe) })
	return &subNode{id: id, db: db, svc: svc, ep: ep}
}

// BenchmarkLeaseSetupScan is the work one filtered logs lease asks of its
// server before any push: the backward scan for its backfill matches over
// a log where nothing matches, so it runs to MaxFilteredBackfillScanRecords.
// It used to run on the transport's read loop, once per lease message; now
// it runs on a setup worker, within the client's setup budget.
func BenchmarkLeaseSetupScan(b *testing.B) {
	db := openTestDB(b, Config{})
	recs := make([]api.LogRecord, MaxFilteredBackfillScanRecords+1000)
	for i := range recs {
		recs[i] = testLogRecord(i)
		recs[i].Text = "routine chatter"
	}
	for len(recs) > 0 {
		n := min(len(recs), 2048)
		if _, err := db.AppendLogs(context.Background(), recs[:n]...); err != nil {
			b.Fatal(err)
		}
		recs = recs[n:]
	}
	s := NewSubscriptionService(db, nil, SubscriptionConfig{})
	l := &lease{kind: subLeaseLogs, filter: api.LogFilter{Match: "no record says this"}, matchLower: "no record says this"}
	b.ReportAllocs()
	for b.Loop() {
		s.leaseStart(db.Logs(), l, 0)
	}
	b.ReportMetric(float64(MaxFilteredBackfillScanRecords), "records/scan")
}

// BenchmarkLeaseHandleRefused is what a filtered lease message beyond its
// client's setup budget costs the read loop now: decode, admission, refusal.
func BenchmarkLeaseHandleRefused(b *testing.B) {
	h := messagingtest.NewHub(b, messagingtest.Config{})
	db := openTestDB(b, Config{})
	s := NewSubscriptionService(db, h.Join(1), SubscriptionConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	nodetest.Eventually(b, "handler registered", func() bool { return h.Node(1).HasHandler(messaging.ChanSubscribe) })
	msg := (&subMsg{Type: subLeaseLogs, Sub: 1, Filter: api.LogFilter{Match: "no record says this"}}).encode()
	for i := range LeaseSetupBurstPerClient {
		s.Handle(66, (&subMsg{Type: subLeaseLogs, Sub: uint64(1000 + i), Filter: api.LogFilter{Match: "x"}}).encode())
		s.Handle(66, (&subMsg{Type: subCancel, Sub: uint64(1000 + i)}).encode())
	}
	nodetest.Eventually(b, "the burst's leases to end", func() bool { return s.Stats().Leases == 0 })
	b.ReportAllocs()
	for b.Loop() {
		s.Handle(66, msg)
	}
	if s.Stats().RateLimited == 0 {
		b.Fatal("nothing refused by the setup budget")
	}
}
