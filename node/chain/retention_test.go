package chain

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/nodetest"
)

func appendN(t *testing.T, l *Log, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := l.Append(context.Background(), payload(i)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRetentionByCount(t *testing.T) {
	db := openTestDB(t, Config{
		Logs:     Retention{MaxCount: 100},
		Failures: Retention{MaxCount: 10},
	})
	appendN(t, db.Logs(), 250)
	appendN(t, db.Failures(), 25)
	n, err := db.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n != 150+15 {
		t.Fatalf("swept %d, want 165", n)
	}
	tests := []struct {
		log         *Log
		first, last uint64
	}{
		{db.Logs(), 151, 250},
		{db.Failures(), 16, 25},
	}
	for _, tt := range tests {
		if f, l := tt.log.Bounds(); f != tt.first || l != tt.last {
			t.Errorf("%s bounds %d..%d, want %d..%d", tt.log.Name(), f, l, tt.first, tt.last)
		}
		if _, err := tt.log.Get(tt.first - 1); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s seq %d still there: %v", tt.log.Name(), tt.first-1, err)
		}
		if _, err := tt.log.Get(tt.first); err != nil {
			t.Errorf("%s seq %d gone: %v", tt.log.Name(), tt.first, err)
		}
	}
	if got := db.Stats().RetentionDeleted; got != 165 {
		t.Fatalf("RetentionDeleted %d", got)
	}
}

// TestRetentionByAge: logs (max age 1h) and failures (max age 2h) each lose
// the prefix older than their own limit, never their newest record.
func TestRetentionByAge(t *testing.T) {
	ctx := context.Background()
	clk := nodetest.NewClock(testClockStart)
	db := openTestDB(t, Config{Now: clk.Now, Logs: Retention{MaxAge: time.Hour}, Failures: Retention{MaxAge: 2 * time.Hour}})
	logs, fails := db.Logs(), db.Failures()
	appendN(t, logs, 50) // at t0
	appendN(t, fails, 10)
	clk.Advance(40 * time.Minute)
	appendN(t, logs, 30) // at t0+40m
	appendN(t, fails, 5)
	clk.Advance(30 * time.Minute)
	appendN(t, logs, 20) // at t0+70m: the first 50 logs are now older than 1h
	appendN(t, fails, 5) // no failure is older than 2h yet
	check := func(when string, l *Log, first, last uint64) {
		t.Helper()
		if f, la := l.Bounds(); f != first || la != last {
			t.Fatalf("%s: %s bounds %d..%d, want %d..%d", when, l.Name(), f, la, first, last)
		}
		if first > 1 {
			if _, err := l.Get(first - 1); !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s: %s seq %d still there: %v", when, l.Name(), first-1, err)
			}
		}
		if _, err := l.Get(first); err != nil {
			t.Fatalf("%s: %s seq %d gone: %v", when, l.Name(), first, err)
		}
	}
	if n, err := db.Sweep(ctx); err != nil || n != 50 {
		t.Fatalf("sweep at t0+70m: %d removed, %v; want 50", n, err)
	}
	check("t0+70m", logs, 51, 100)
	check("t0+70m", fails, 1, 20)
	// t0+130m: logs before t0+70m and failures before t0+10m are expired.
	clk.Advance(60 * time.Minute)
	if n, err := db.Sweep(ctx); err != nil || n != 30+10 {
		t.Fatalf("sweep at t0+130m: %d removed, %v; want 40", n, err)
	}
	check("t0+130m", logs, 81, 100)
	check("t0+130m", fails, 11, 20)
	// Everything ages out except the newest record of each log, which is
	// kept so seqs continue after a restart.
	clk.Advance(24 * time.Hour)
	if _, err := db.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	check("t0+1d", logs, 100, 100)
	check("t0+1d", fails, 20, 20)
	if seq, err := logs.Append(ctx, payload(0)); err != nil || seq != 101 {
		t.Fatalf("append after full expiry: %d %v", seq, err)
	}
	if seq, err := fails.Append(ctx, payload(0)); err != nil || seq != 21 {
		t.Fatalf("failures append after full expiry: %d %v", seq, err)
	}
}

func TestRetentionSeqsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	clk := nodetest.NewClock(testClockStart)
	db, err := Open(Config{Dir: dir, Now: clk.Now, Logs: Retention{MaxAge: time.Minute}, RetentionInterval: -1, ValueLogGCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, db.Logs(), 30)
	clk.Advance(time.Hour)
	if _, err := db.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTestDB(t, Config{Dir: dir, Now: clk.Now})
	if seq, err := db.Logs().Append(context.Background(), payload(0)); err != nil || seq != 31 {
		t.Fatalf("seq after restart %d (%v), want 31: seqs must never be reused", seq, err)
	}
}

func TestAdminLogNeverTruncated(t *testing.T) {
	clk := nodetest.NewClock(testClockStart)
	db := openTestDB(t, Config{Now: clk.Now, Logs: Retention{MaxCount: 1, MaxAge: time.Second},
		Failures: Retention{MaxCount: 1, MaxAge: time.Second}, Snapshots: Retention{MaxCount: 1, MaxAge: time.Second}})
	l := db.Ledger(validateTestEvent)
	s := newEventSigner(t)
	for i := 0; i < 20; i++ {
		if _, _, err := l.Insert(context.Background(), s.event(int64(i), fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(365 * 24 * time.Hour)
	if _, err := db.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f, last := l.Log().Bounds(); f != 1 || last != 20 {
		t.Fatalf("admin log %d..%d after sweep", f, last)
	}
	if err := l.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestTailCountsRecordsRetentionRemoved(t *testing.T) {
	db := openTestDB(t, Config{Logs: Retention{MaxCount: 10}})
	appendN(t, db.Logs(), 40)
	if _, err := db.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	tl := db.Logs().Tail(context.Background(), 1)
	defer tl.Close()
	e := <-tl.C()
	if e.Seq != 31 || tl.Skipped() != 30 {
		t.Fatalf("first seq %d, skipped %d; want 31 and 30", e.Seq, tl.Skipped())
	}
}

func TestSnapshotHistory(t *testing.T) {
	ctx := context.Background()
	clk := nodetest.NewClock(testClockStart)
	db := openTestDB(t, Config{Now: clk.Now, Snapshots: Retention{MaxCount: 5, MaxAge: time.Hour}})
	a, b := identity.NodeID(0xaa), identity.NodeID(0xbb)
	t0 := clk.Now()
	for i := 0; i < 8; i++ {
		at := t0.Add(time.Duration(i) * time.Minute)
		if _, err := db.AppendSnapshot(ctx, a, at, []byte(fmt.Sprint("a", i))); err != nil {
			t.Fatal(err)
		}
		if _, err := db.AppendSnapshot(ctx, b, at.Add(30*time.Second), []byte(fmt.Sprint("b", i))); err != nil {
			t.Fatal(err)
		}
	}
	hist := func(node identity.NodeID, before time.Time, n int) string {
		t.Helper()
		rs, err := db.History(node, before, n)
		if err != nil {
			t.Fatal(err)
		}
		s := ""
		for _, r := range rs {
			s += string(r.Data) + " "
		}
		return s
	}
	tests := []struct {
		name   string
		node   identity.NodeID
		before time.Time
		n      int
		want   string
	}{
		{"newest first", a, t0.Add(time.Hour), 3, "a7 a6 a5 "},
		{"strictly before", a, t0.Add(5 * time.Minute), 2, "a4 a3 "},
		{"every node", 0, t0.Add(3 * time.Minute), 4, "b2 a2 b1 a1 "},
		{"none before", b, t0, 5, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hist(tt.node, tt.before, tt.n); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
	// Count per node: 5 kept of 8 for each.
	if _, err := db.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got := hist(a, t0.Add(time.Hour), 100); got != "a7 a6 a5 a4 a3 " {
		t.Fatalf("after count retention: %q", got)
	}
	// Age: 50 minutes later, snapshots taken before t0+5m30s are past 1h.
	clk.Advance(65*time.Minute + 30*time.Second)
	if _, err := db.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got := hist(0, t0.Add(time.Hour), 100); got != "b7 a7 b6 a6 b5 " {
		t.Fatalf("after age retention: %q", got)
	}
	if _, err := db.AppendSnapshot(ctx, 0, t0, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("node 0: %v", err)
	}
}
