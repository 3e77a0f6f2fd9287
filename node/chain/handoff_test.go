package chain

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// handedFolder counts how often Apply got the Validator's decoded form
// with the event and how often it had to parse the bytes.
type handedFolder struct{ handed, parsed atomic.Int64 }

func (*handedFolder) Init() int { return 0 }
func (f *handedFolder) Apply(s int, e Event) int {
	if body, ok := e.Meta.Decoded.(string); ok && body == testEventBody(e.Raw) {
		f.handed.Add(1)
	} else {
		f.parsed.Add(1)
	}
	return s + 1
}
func (*handedFolder) Clone(s int) int { return s }

// decodingValidator is validateTestEvent that also returns the body it
// parsed, as node/command's validator returns the *command.Event.
func decodingValidator(calls *atomic.Int64) Validator {
	return func(raw []byte) (EventMeta, error) {
		calls.Add(1)
		m, err := validateTestEvent(raw)
		if err == nil {
			m.Decoded = testEventBody(raw)
		}
		return m, err
	}
}

// TestFoldGetsDecodedFromIngest: events inserted one by one and in a batch,
// in order and late (a refold), reach the Fold with the Validator's decoded
// form; the Validator runs once per event. A fold started on a ledger read
// back from disk has nothing handed over and parses every event.
func TestFoldGetsDecodedFromIngest(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t, Config{})
	var calls atomic.Int64
	l := db.Ledger(decodingValidator(&calls))
	f := &handedFolder{}
	fold := NewFold[int](l, f, 4)
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- fold.Run(fctx) }()
	s := newEventSigner(t)
	var raws [][]byte
	for i := range 10 {
		raws = append(raws, s.event(int64(10_000+i*10), fmt.Sprint("k=", i)))
	}
	late := s.event(10_005, "late")
	for _, raw := range raws[:5] {
		if _, _, err := l.Insert(ctx, raw); err != nil {
			t.Fatal(err)
		}
	}
	waitFold(t, fold, 5)
	if _, err := l.InsertMany(ctx, raws[5:]); err != nil {
		t.Fatal(err)
	}
	waitFold(t, fold, 10)
	if _, _, err := l.Insert(ctx, late); err != nil {
		t.Fatal(err)
	}
	waitFold(t, fold, 11)
	cancel()
	<-done
	if calls.Load() != 11 {
		t.Fatalf("validator ran %d times for 11 events", calls.Load())
	}
	// The late event refolds from the checkpoint before it (genesis at
	// checkpoint spacing 4 with the late event at position 2): the events
	// after it are applied a second time from their bytes, which is the
	// refold's cost, not ingest's. Ingest handed over all 11.
	if got := f.handed.Load(); got != 11 {
		t.Fatalf("handed over %d of 11 events (parsed %d)", got, f.parsed.Load())
	}
	if n := len(l.st.handoff.byID); n != 0 {
		t.Fatalf("%d decoded events left in the hand-off", n)
	}

	// A new fold over the stored ledger: nothing to hand over.
	f2 := &handedFolder{}
	fold2 := NewFold[int](l, f2, 4)
	fctx2, cancel2 := context.WithCancel(ctx)
	go func() { done <- fold2.Run(fctx2) }()
	waitFold(t, fold2, 11)
	cancel2()
	<-done
	if f2.handed.Load() != 0 || f2.parsed.Load() != 11 {
		t.Fatalf("fold from disk: handed %d parsed %d", f2.handed.Load(), f2.parsed.Load())
	}
}

func waitFold[S any](t *testing.T, fd *Fold[S], applied uint64) {
	t.Helper()
	deadline := time.After(20 * time.Second) // a hang guard, not a speed assertion
	for fd.Stats().LocalSeq < applied {
		select {
		case <-fd.Changed():
		case <-deadline:
			t.Fatalf("fold stuck at %+v, want %d", fd.Stats(), applied)
		}
	}
}

// TestInsertReturnsMetaForEveryOutcome: Insert hands back what the
// Validator parsed for an added event, a duplicate and a refusal after
// parsing, so a caller never parses the bytes again.
func TestInsertReturnsMetaForEveryOutcome(t *testing.T) {
	ctx := context.Background()
	var calls atomic.Int64
	inner := decodingValidator(&calls)
	refuse := errBadEvent
	l := openTestDB(t, Config{}).Ledger(func(raw []byte) (EventMeta, error) {
		m, err := inner(raw)
		if err == nil && m.Decoded == "k=refused" {
			return m, refuse
		}
		return m, err
	})
	s := newEventSigner(t)
	raw := s.event(1000, "k=v")
	for i, wantAdded := range []bool{true, false} {
		ev, added, err := l.Insert(ctx, raw)
		if err != nil || added != wantAdded || ev.Meta.Decoded != "k=v" || ev.Meta.IssuedAt != 1000 {
			t.Fatalf("insert %d: %+v added=%v err=%v", i, ev.Meta, added, err)
		}
	}
	ev, added, err := l.Insert(ctx, s.event(2000, "k=refused"))
	if err == nil || added || ev.Meta.Decoded != "k=refused" {
		t.Fatalf("refused: %+v added=%v err=%v", ev.Meta, added, err)
	}
	if ev, _, err := l.Insert(ctx, []byte("garbage")); err == nil || ev.Meta.Decoded != nil {
		t.Fatalf("garbage: %+v %v", ev.Meta, err)
	}
}

// TestHandoffBounded: the hand-off holds at most MaxHandoffEvents (and
// MaxHandoffBytes), oldest dropped first, each value taken once, and its
// order list stays bounded however many events pass through.
func TestHandoffBounded(t *testing.T) {
	h := decodedHandoff{byID: map[[32]byte]handoffEntry{}}
	ev := func(i int, size int) Event {
		var id [32]byte
		id[0], id[1], id[2] = byte(i), byte(i>>8), byte(i>>16)
		return Event{Meta: EventMeta{ID: id, Decoded: i}, Raw: make([]byte, size)}
	}
	h.put(ev(1, 10))
	if h.take(ev(1, 10).Meta.ID) != nil {
		t.Fatal("a ledger without a Fold kept a decoded event")
	}
	h.enable()
	for i := range MaxHandoffEvents + 10 {
		h.put(ev(i, 10))
	}
	if len(h.byID) != MaxHandoffEvents {
		t.Fatalf("holds %d, want %d", len(h.byID), MaxHandoffEvents)
	}
	if h.take(ev(9, 10).Meta.ID) != nil || h.take(ev(10, 10).Meta.ID) != 10 || h.take(ev(10, 10).Meta.ID) != nil {
		t.Fatal("oldest not dropped first, or a value taken twice")
	}
	big := MaxHandoffBytes / 4
	for i := range 5 {
		h.put(ev(100_000+i, big))
	}
	if h.bytes > MaxHandoffBytes || h.take(ev(100_000, big).Meta.ID) != nil || h.take(ev(100_004, big).Meta.ID) != 100_004 {
		t.Fatalf("bytes bound: %d held", h.bytes)
	}
	// A fold that keeps up: every value taken right after its put.
	for i := range 10 * MaxHandoffEvents {
		e := ev(200_000+i, 10)
		h.put(e)
		if h.take(e.Meta.ID) != 200_000+i {
			t.Fatal("value not handed over")
		}
	}
	if len(h.order) > 2*MaxHandoffEvents+1 {
		t.Fatalf("order grew to %d", len(h.order))
	}
}
