package chain

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

func TestLedgerInsertIdempotent(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t, Config{})
	l := db.Ledger(validateTestEvent)
	s := newEventSigner(t)
	raw := s.event(1000, "cordon a")
	ev, added, err := l.Insert(ctx, raw)
	if err != nil || !added || ev.Seq != 1 {
		t.Fatalf("first insert: %+v added %v err %v", ev, added, err)
	}
	_, added, err = l.Insert(ctx, raw)
	if err != nil || added {
		t.Fatalf("duplicate: added %v err %v", added, err)
	}
	// Duplicates inside one batch, and against the stored set.
	rep, err := l.InsertMany(ctx, [][]byte{s.event(2000, "b"), s.event(2000, "b"), raw})
	if err != nil || len(rep.Added) != 1 || rep.Duplicates != 2 {
		t.Fatalf("batch: %+v %v", rep, err)
	}
	if h := l.Head(); h.Count != 2 || h.LastSeq != 2 {
		t.Fatalf("head %+v", h)
	}
	if d := l.Digest(); d.Count != 2 {
		t.Fatalf("digest count %d", d.Count)
	}
	if err := l.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestLedgerRejectsInvalidEvents(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t, Config{})
	l := db.Ledger(validateTestEvent)
	s := newEventSigner(t)
	good := s.event(5, "ok")
	forged := append([]byte{}, good...)
	forged[len(forged)-1] ^= 1 // signature no longer verifies
	tests := []struct {
		name string
		raw  []byte
		want error
	}{
		{"bad signature", forged, errBadEvent},
		{"empty", nil, ErrInvalid},
		{"too large", make([]byte, MaxEventBytes+1), ErrInvalid},
		{"negative issue time", s.event(-1, "x"), ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := l.Insert(ctx, tt.raw); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	rep, err := l.InsertMany(ctx, [][]byte{forged, good})
	if err != nil || len(rep.Added) != 1 || len(rep.Rejected) != 1 || rep.Rejected[0].Index != 0 {
		t.Fatalf("mixed batch: %+v %v", rep, err)
	}
	if l.Head().Count != 1 {
		t.Fatal("rejected event stored")
	}
}

func TestLedgerScanFoldOrder(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t, Config{})
	l := db.Ledger(validateTestEvent)
	s := newEventSigner(t)
	// Inserted out of order; Scan yields (issued_at, id) order.
	for _, at := range []int64{30, 10, 20, 10, 40} {
		if _, _, err := l.Insert(ctx, s.event(at, fmt.Sprint("e", at, l.Head().Count))); err != nil {
			t.Fatal(err)
		}
	}
	var prev Position
	n := 0
	if err := l.Scan(Position{}, func(e Event) bool {
		if n > 0 && e.Meta.Pos().Compare(prev) <= 0 {
			t.Fatalf("scan out of order at %d", n)
		}
		prev = e.Meta.Pos()
		n++
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Fatalf("scanned %d", n)
	}
	// Local order is arrival order.
	ev, err := l.Local(2)
	if err != nil || ev.Meta.IssuedAt != 10 {
		t.Fatalf("local 2: %+v %v", ev.Meta, err)
	}
}

// tamperFixture is a ledger of n events on disk, closed, ready to be
// damaged directly in Badger.
func tamperFixture(t *testing.T, n int) (dir string, positions []Position) {
	t.Helper()
	ctx := context.Background()
	dir = t.TempDir()
	db, err := Open(Config{Dir: dir, RetentionInterval: -1, ValueLogGCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	l := db.Ledger(validateTestEvent)
	s := newEventSigner(t)
	for i := 0; i < n; i++ {
		ev, _, err := l.Insert(ctx, s.event(int64(1000+i*7%5), fmt.Sprint("event ", i)))
		if err != nil {
			t.Fatal(err)
		}
		positions = append(positions, ev.Meta.Pos())
	}
	if err := l.Verify(ctx); err != nil {
		t.Fatalf("intact ledger fails Verify: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, positions
}

func rawBadger(t *testing.T, dir string, fn func(txn *badger.Txn) error) {
	t.Helper()
	bdb, err := badger.Open(badgerOptions(Config{Dir: dir}))
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}
}

func getValue(txn *badger.Txn, k []byte) ([]byte, error) {
	it, err := txn.Get(k)
	if err != nil {
		return nil, err
	}
	return it.ValueCopy(nil)
}

func TestVerifyDetectsTampering(t *testing.T) {
	const n = 6
	tests := []struct {
		name    string
		tamper  func(txn *badger.Txn, ps []Position) error
		wantSeq uint64
	}{
		{"flip a byte of an event", func(txn *badger.Txn, ps []Position) error {
			k := eventKey(ps[2].IssuedAtMs, ps[2].ID)
			v, err := getValue(txn, k)
			if err != nil {
				return err
			}
			v[12] ^= 0x40
			return txn.Set(k, v)
		}, 3},
		{"flip a byte of an order record", func(txn *badger.Txn, ps []Position) error {
			k := logKey(logIDAdmin, 4)
			v, err := getValue(txn, k)
			if err != nil {
				return err
			}
			v[entryHeaderBytes+50] ^= 1 // inside the raw hash
			return txn.Set(k, v)
		}, 4},
		{"delete an order record", func(txn *badger.Txn, ps []Position) error {
			return txn.Delete(logKey(logIDAdmin, 3))
		}, 3},
		{"delete the last order record", func(txn *badger.Txn, ps []Position) error {
			return txn.Delete(logKey(logIDAdmin, n))
		}, n},
		{"delete an event", func(txn *badger.Txn, ps []Position) error {
			return txn.Delete(eventKey(ps[4].IssuedAtMs, ps[4].ID))
		}, 5},
		{"swap two order records", func(txn *badger.Txn, ps []Position) error {
			a, err := getValue(txn, logKey(logIDAdmin, 2))
			if err != nil {
				return err
			}
			b, err := getValue(txn, logKey(logIDAdmin, 5))
			if err != nil {
				return err
			}
			if err := txn.Set(logKey(logIDAdmin, 2), b); err != nil {
				return err
			}
			return txn.Set(logKey(logIDAdmin, 5), a)
		}, 2},
		{"truncate an order record", func(txn *badger.Txn, ps []Position) error {
			return txn.Set(logKey(logIDAdmin, 1), []byte{1, 2, 3})
		}, 1},
		{"event smuggled in beside the order", func(txn *badger.Txn, ps []Position) error {
			var id [32]byte
			id[0] = 0xee
			return txn.Set(eventKey(999, id), []byte("not in the chain"))
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, ps := tamperFixture(t, n)
			rawBadger(t, dir, func(txn *badger.Txn) error { return tt.tamper(txn, ps) })
			db := openTestDB(t, Config{Dir: dir})
			err := db.Ledger(validateTestEvent).Verify(context.Background())
			var te *TamperError
			if !errors.As(err, &te) || !errors.Is(err, ErrTampered) {
				t.Fatalf("Verify = %v, want a TamperError", err)
			}
			if te.Seq != tt.wantSeq || te.Key == "" {
				t.Fatalf("Verify named seq %d key %q (%s), want seq %d", te.Seq, te.Key, te.Reason, tt.wantSeq)
			}
		})
	}
}

func TestLedgerSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	dir, ps := tamperFixture(t, 5)
	db := openTestDB(t, Config{Dir: dir})
	l := db.Ledger(validateTestEvent)
	if h := l.Head(); h.Count != 5 || h.LastSeq != 5 {
		t.Fatalf("head after reopen %+v", h)
	}
	for _, p := range ps {
		if ok, err := l.Has(p.ID); err != nil || !ok {
			t.Fatalf("event %x lost: %v", p.ID[:4], err)
		}
	}
	// The chain continues from the stored head.
	if _, _, err := l.Insert(ctx, newEventSigner(t).event(77, "after reopen")); err != nil {
		t.Fatal(err)
	}
	if err := l.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	if d := l.Digest(); d.Count != 6 {
		t.Fatalf("digest rebuilt with %d events", d.Count)
	}
}

// FuzzDecodeStored feeds arbitrary bytes to the decoders of what this
// package reads back from disk (which Verify assumes may be tampered with):
// entry headers, order records, the ledger head, snapshot entries.
func FuzzDecodeStored(f *testing.F) {
	var link [32]byte
	f.Add(encodeEntry(1234, orderRecord{Pos: Position{IssuedAtMs: 7}, Link: link}.encode()))
	f.Add(encodeHead(Head{Count: 3, LastSeq: 3}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if at, payload, err := decodeEntryHeader(b); err == nil {
			if string(encodeEntry(at, payload)) != string(b) {
				t.Fatal("entry header round trip")
			}
			if o, err := decodeOrderRecord(payload); err == nil && string(o.encode()) != string(payload) {
				t.Fatal("order record round trip")
			}
			_, _ = decodeSnapshotEntry(Entry{Value: payload})
		}
		if h, err := decodeHead(b); err == nil && string(encodeHead(h)) != string(b) {
			t.Fatal("head round trip")
		}
	})
}
