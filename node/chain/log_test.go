package chain

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/nodetest"
	"github.com/dgraph-io/badger/v4"
)

func payload(i int) []byte { return []byte(fmt.Sprintf("record-%06d", i)) }

func TestOptionsWithinDesignBounds(t *testing.T) {
	o := badgerOptions(Config{Dir: t.TempDir()})
	if o.ValueLogFileSize > badgerMaxValueLogFileBytes {
		t.Errorf("value-log file %d bytes exceeds the design's %d", o.ValueLogFileSize, badgerMaxValueLogFileBytes)
	}
	if !o.SyncWrites {
		t.Error("SyncWrites must be on: an acknowledged append must survive a crash")
	}
	if o.MemTableSize > 16<<20 || o.BlockCacheSize > 16<<20 {
		t.Errorf("memtable %d / block cache %d: not a small footprint", o.MemTableSize, o.BlockCacheSize)
	}
}

func TestAppendGetRangeReverse(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t, Config{})
	logs := db.Logs()
	first, err := logs.Append(ctx, payload(1), payload(2), payload(3))
	if err != nil || first != 1 {
		t.Fatalf("append: first %d err %v", first, err)
	}
	if first, err = logs.Append(ctx, payload(4)); err != nil || first != 4 {
		t.Fatalf("second append: first %d err %v", first, err)
	}
	e, err := logs.Get(2)
	if err != nil || string(e.Value) != string(payload(2)) {
		t.Fatalf("get 2: %q %v", e.Value, err)
	}
	if _, err := logs.Get(9); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get 9: %v, want ErrNotFound", err)
	}
	var got []uint64
	if err := logs.Range(2, 4, func(e Entry) bool { got = append(got, e.Seq); return true }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[2 3]" {
		t.Fatalf("range [2,4) = %v", got)
	}
	got = nil
	if err := logs.Reverse(0, func(e Entry) bool { got = append(got, e.Seq); return len(got) < 3 }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[4 3 2]" {
		t.Fatalf("reverse = %v", got)
	}
	if f, l := logs.Bounds(); f != 1 || l != 4 {
		t.Fatalf("bounds %d..%d", f, l)
	}
}

func TestAppendRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t, Config{})
	admin, err := db.Log(LogAdmin)
	if err != nil {
		t.Fatal(err)
	}
	snaps, _ := db.Log(LogSnapshots)
	tests := []struct {
		name string
		log  *Log
		in   [][]byte
		want error
	}{
		{"empty", db.Logs(), nil, ErrInvalid},
		{"too large", db.Logs(), [][]byte{make([]byte, MaxEntryBytes+1)}, ErrTooLarge},
		{"too many", db.Logs(), make([][]byte, MaxAppendRecords+1), ErrInvalid},
		{"admin is the ledger's", admin, [][]byte{{1}}, ErrReadOnlyLog},
		{"snapshots via AppendSnapshot", snaps, [][]byte{{1}}, ErrReadOnlyLog},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.log.Append(ctx, tt.in...); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := db.Log("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown log: %v", err)
	}
}

func TestReopenContinuesSeqs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := Open(Config{Dir: dir, RetentionInterval: -1, ValueLogGCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := db.Failures().Append(ctx, payload(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Failures().Append(ctx, payload(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	db = openTestDB(t, Config{Dir: dir})
	if f, l := db.Failures().Bounds(); f != 1 || l != 10 {
		t.Fatalf("bounds after reopen %d..%d", f, l)
	}
	if s, err := db.Failures().Append(ctx, payload(10)); err != nil || s != 11 {
		t.Fatalf("append after reopen: seq %d err %v", s, err)
	}
}

// TestTailConcurrentAppends: several writers append concurrently while
// every tail is drained by its own goroutine during the writes. One tail
// follows from seq 1 and is live before the writes start; partway through,
// two more open: one at the head (Bounds().last+1) and one from a seq
// already written, whose reader is held back until more commits have
// landed, so its backfill is guaranteed to overlap live commits and it must
// hand off from disk to the live feed while writers are still committing.
// Every tail sees every record from its start seq exactly once, in order,
// with the value written at that seq, and each ends up live.
func TestTailConcurrentAppends(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db := openTestDB(t, Config{})
	logs := db.Logs()
	// Writer 0 alone appends 2 records per batch on average, so by the time
	// it opens the late tails (batch perWriter/2) the log holds at least
	// perWriter records, more than the held-back tail's backlog needs.
	const writers, perWriter = 4, 600
	total := uint64(0)
	for i := 0; i < perWriter; i++ {
		total += uint64(1 + i%3)
	}
	total *= writers

	isLive := func(tl *Tail) bool {
		logs.ls.mu.Lock()
		defer logs.ls.mu.Unlock()
		_, live := logs.ls.subs[tl]
		return live
	}

	// A reader drains its tail until it has seen seq total, checking order
	// as it goes; the values are checked once every writer is done.
	type reader struct {
		name  string
		tl    *Tail
		start uint64
		gate  chan struct{} // nil: read at once
		got   []Entry
		err   error
		done  chan struct{}
	}
	var readers []*reader
	var rmu sync.Mutex
	startReader := func(name string, from uint64, gate chan struct{}) *reader {
		r := &reader{name: name, tl: logs.Tail(ctx, from), start: max(from, 1), gate: gate, done: make(chan struct{})}
		rmu.Lock()
		readers = append(readers, r)
		rmu.Unlock()
		go func() {
			defer close(r.done)
			if r.gate != nil {
				select {
				case <-r.gate:
				case <-ctx.Done():
					r.err = ctx.Err()
					return
				}
			}
			next := r.start
			for next <= total {
				select {
				case e, ok := <-r.tl.C():
					if !ok {
						r.err = fmt.Errorf("tail ended at %d: %v", next, r.tl.Err())
						return
					}
					if e.Seq != next {
						r.err = fmt.Errorf("got seq %d, want %d", e.Seq, next)
						return
					}
					r.got = append(r.got, e)
					next++
				case <-ctx.Done():
					r.err = fmt.Errorf("stalled at %d of %d", next, total)
					return
				}
			}
		}()
		return r
	}

	early := startReader("early", 1, nil)
	nodetest.Eventually(t, "early tail to go live", func() bool { return isLive(early.tl) })

	// written[w] records what writer w appended: the first seq of each batch
	// and its payloads.
	type batch struct {
		first uint64
		ps    [][]byte
	}
	written := make([][]batch, writers)
	release := make(chan struct{}) // lets the held-back reader go
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				// Mixed batch sizes exercise group commit across writers.
				ps := make([][]byte, 1+i%3)
				for j := range ps {
					ps[j] = []byte(fmt.Sprintf("w%d-i%d-j%d", w, i, j))
				}
				first, err := logs.Append(ctx, ps...)
				if err != nil {
					t.Error(err)
					return
				}
				written[w] = append(written[w], batch{first, ps})
				if w != 0 {
					continue
				}
				switch i {
				case perWriter / 2:
					_, last := logs.Bounds()
					if last <= 2*TailBufferLen {
						t.Errorf("only %d records at the midpoint", last)
						return
					}
					startReader("head", last+1, nil)
					// Held back 2*TailBufferLen records behind the head: its
					// pump fills the buffer from disk and blocks mid-backfill
					// while writer 0 alone commits perWriter/4 more batches;
					// then its reader starts while the writers still run.
					startReader("held", last-2*TailBufferLen, release)
				case 3 * perWriter / 4:
					close(release)
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if _, last := logs.Bounds(); last != total {
		t.Fatalf("last seq %d, want %d", last, total)
	}
	want := make(map[uint64]string, total)
	for _, bs := range written {
		for _, b := range bs {
			for j, p := range b.ps {
				want[b.first+uint64(j)] = string(p)
			}
		}
	}
	if uint64(len(want)) != total {
		t.Fatalf("%d distinct seqs handed out for %d records", len(want), total)
	}
	if len(readers) != 3 {
		t.Fatalf("%d tails, want 3", len(readers))
	}
	for _, r := range readers {
		<-r.done
		if r.err != nil {
			t.Fatalf("%s tail (from %d): %v", r.name, r.start, r.err)
		}
		if n := uint64(len(r.got)); n != total-r.start+1 {
			t.Fatalf("%s tail got %d records, want %d", r.name, n, total-r.start+1)
		}
		for _, e := range r.got {
			if string(e.Value) != want[e.Seq] {
				t.Fatalf("%s tail: seq %d value %q, want %q", r.name, e.Seq, e.Value, want[e.Seq])
			}
		}
		if r.tl.Skipped() != 0 {
			t.Fatalf("%s tail skipped %d", r.name, r.tl.Skipped())
		}
		// A reader that has caught up goes (or stays) live. Whether it lagged
		// on the way depends on scheduling, so Lagged is only reported.
		nodetest.Eventually(t, r.name+" tail to go live", func() bool { return isLive(r.tl) })
		t.Logf("%s tail: from %d, %d records, lagged %d times", r.name, r.start, len(r.got), r.tl.Lagged())
	}
	// One more record reaches every tail through the live feed, and after
	// that nothing else is queued: no tail holds a duplicate or a stray.
	if seq, err := logs.Append(ctx, []byte("final")); err != nil || seq != total+1 {
		t.Fatalf("final append: seq %d err %v", seq, err)
	}
	for _, r := range readers {
		select {
		case e := <-r.tl.C():
			if e.Seq != total+1 || string(e.Value) != "final" {
				t.Fatalf("%s tail: after the writes got seq %d %q, want %d", r.name, e.Seq, e.Value, total+1)
			}
		case <-ctx.Done():
			t.Fatalf("%s tail: final record never arrived", r.name)
		}
		r.tl.Close()
		<-r.tl.Done()
		for e := range r.tl.C() {
			t.Fatalf("%s tail: stray record seq %d after the last one", r.name, e.Seq)
		}
	}
}

// TestTailLaggedRecovers: a reader that stops reading while the writer
// runs far ahead is dropped from the live feed, told it lagged, and then
// gets every record anyway, in order, from disk.
func TestTailLaggedRecovers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db := openTestDB(t, Config{})
	logs := db.Logs()
	if _, err := logs.Append(ctx, payload(0)); err != nil {
		t.Fatal(err)
	}
	tl := logs.Tail(ctx, 2) // live from the next record
	nodetest.Eventually(t, "tail to go live", func() bool {
		logs.ls.mu.Lock()
		defer logs.ls.mu.Unlock()
		_, live := logs.ls.subs[tl]
		return live
	})
	const n = 4 * TailBufferLen
	for i := 1; i <= n; i++ {
		if _, err := logs.Append(ctx, payload(i)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-tl.LagSignal():
	case <-ctx.Done():
		t.Fatal("no lag signal")
	}
	if tl.Lagged() == 0 {
		t.Fatal("Lagged() = 0 after the reader fell behind")
	}
	for want := uint64(2); want <= n+1; want++ {
		select {
		case e := <-tl.C():
			if e.Seq != want {
				t.Fatalf("after lag: seq %d, want %d", e.Seq, want)
			}
			if string(e.Value) != string(payload(int(want-1))) {
				t.Fatalf("seq %d value %q", e.Seq, e.Value)
			}
		case <-ctx.Done():
			t.Fatalf("stalled at %d", want)
		}
	}
	// And it goes live again: a new record arrives.
	if _, err := logs.Append(ctx, payload(n+1)); err != nil {
		t.Fatal(err)
	}
	if e := <-tl.C(); e.Seq != n+2 {
		t.Fatalf("live again: seq %d", e.Seq)
	}
}

func TestTailEndsOnClose(t *testing.T) {
	db := openTestDB(t, Config{})
	tl := db.Logs().Tail(context.Background(), 1)
	tl.Close()
	select {
	case <-tl.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("tail did not end")
	}
	if _, ok := <-tl.C(); ok {
		t.Fatal("channel not closed")
	}
	if !errors.Is(tl.Err(), context.Canceled) {
		t.Fatalf("err %v", tl.Err())
	}
}

func TestDBCloseEndsTails(t *testing.T) {
	db, err := Open(Config{Dir: t.TempDir(), RetentionInterval: -1, ValueLogGCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	tl := db.Logs().Tail(context.Background(), 1)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-tl.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("tail survived Close")
	}
}

func TestAppendLogGroupCommit(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t, Config{})
	const n = 3000
	for i := 0; i < n; i++ {
		for {
			err := db.AppendLog(testLogRecord(i))
			if err == nil {
				break
			}
			if !errors.Is(err, ErrQueueFull) {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond) // a real daemon would drop; the test wants all
		}
	}
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, last := db.Logs().Bounds(); last != n {
		t.Fatalf("last %d, want %d", last, n)
	}
	st := db.Stats()
	// Group commit: far fewer commits (fsyncs) than records.
	if st.Commits >= n {
		t.Fatalf("%d commits for %d records: no batching", st.Commits, n)
	}
	rec, err := LogRecordOf(mustGet(t, db.Logs(), 17))
	if err != nil || rec.Seq != 17 || rec.Text != testLogRecord(16).Text {
		t.Fatalf("record 17: %+v %v", rec, err)
	}
}

func mustGet(t *testing.T, l *Log, seq uint64) Entry {
	t.Helper()
	e, err := l.Get(seq)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestCorruptEntryIsAnError: a damaged value on disk is reported with its
// seq, never a panic.
func TestCorruptEntryIsAnError(t *testing.T) {
	db := openTestDB(t, Config{})
	if _, err := db.Logs().Append(context.Background(), payload(1)); err != nil {
		t.Fatal(err)
	}
	if err := db.bdb.Update(func(txn *badger.Txn) error { return txn.Set(logKey(logIDLogs, 1), []byte{1, 2}) }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Logs().Get(1); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v, want ErrCorrupt", err)
	}
}
