package chainfold

import (
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/identity/identitytest"
)

const cluster = "chainfold-test"

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func event(t *testing.T, a api.Action, at time.Duration, n byte, keys ...*identity.Key) *command.Event {
	kind, _ := command.KindOf(a.Verb)
	b := command.Body{Kind: kind, Cluster: cluster, Action: a, Proposer: keys[0].ID,
		Nonce: command.Nonce{1, n}, IssuedAtMs: t0.Add(at).UnixMilli()}
	if kind == command.KindICE {
		b.BlastHash = [32]byte{9}
	}
	p, err := b.SigningPayload()
	if err != nil {
		t.Fatal(err)
	}
	var sigs []api.Signature
	for _, k := range keys {
		sigs = append(sigs, api.Signature{Operator: k.ID, Sig: k.Sign(p)})
	}
	e, err := command.NewEvent(b, sigs)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestLedgerFoldMatchesReference stores events in a real Badger ledger,
// out of order and in two batches (the second forces a refold), and checks
// the ledger's fold reaches exactly command.Fold's state.
func TestLedgerFoldMatchesReference(t *testing.T) {
	alice, bob, mallory := identitytest.Key(t, "alice"), identitytest.Key(t, "bob"), identitytest.Key(t, "mallory")
	g := command.Genesis{Cluster: cluster, ICEThreshold: 2, Operators: []command.GenesisOperator{
		{Name: "alice", PublicKey: alice.Public}, {Name: "bob", PublicKey: bob.Public}}}
	evs := []*command.Event{
		event(t, api.Action{Verb: api.VerbCordon, Node: 1}, 0, 1, alice),
		event(t, api.Action{Verb: api.VerbDrain, Node: 2, Duration: time.Minute}, time.Second, 2, bob),
		event(t, api.Action{Verb: api.VerbFreezeCluster, Reason: "r", Duration: time.Minute}, 2*time.Second, 3, alice), // below ICE threshold
		event(t, api.Action{Verb: api.VerbFreezeCluster, Reason: "r", Duration: time.Minute}, 3*time.Second, 4, alice, bob),
		event(t, api.Action{Verb: api.VerbUncordon, Node: 1}, 4*time.Second, 5, alice), // frozen
		event(t, api.Action{Verb: api.VerbCordon, Node: 3}, 5*time.Second, 6, mallory), // unknown operator
		event(t, api.Action{Verb: api.VerbThawCluster}, 6*time.Second, 7, bob, alice),
		event(t, api.Action{Verb: api.VerbUncordon, Node: 1}, 7*time.Second, 8, alice),
	}
	ref, refRecs, err := command.Fold(g, evs)
	if err != nil {
		t.Fatal(err)
	}

	db, err := chain.Open(chain.Config{Dir: t.TempDir(), RetentionInterval: -1, ValueLogGCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var validations atomic.Int64
	v := Validator(cluster, func() time.Time { return t0.Add(time.Minute) })
	led := db.Ledger(func(raw []byte) (chain.EventMeta, error) {
		validations.Add(1)
		return v(raw)
	})
	f, err := NewFolder(g)
	if err != nil {
		t.Fatal(err)
	}
	fold := chain.NewFold[*State](led, f, 2)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- fold.Run(ctx) }()
	defer func() { cancel(); <-done }()

	order := rand.New(rand.NewPCG(3, 4)).Perm(len(evs))
	late, early := order[:len(order)/2], order[len(order)/2:]
	insert := func(idx []int) {
		var raws [][]byte
		for _, i := range idx {
			raws = append(raws, evs[i].Marshal())
		}
		rep, err := led.InsertMany(ctx, raws)
		if err != nil || len(rep.Rejected) > 0 {
			t.Fatalf("insert: %v %+v", err, rep.Rejected)
		}
	}
	insert(early)
	waitApplied(t, fold, len(early))
	insert(late)
	waitApplied(t, fold, len(evs))
	st, _ := fold.State()
	if !st.Admin.Equal(ref) {
		t.Fatal("ledger fold differs from the reference fold")
	}
	if !reflect.DeepEqual(st.Audit, refRecs) {
		t.Fatalf("audit trail differs from the reference:\n got %+v\nwant %+v", st.Audit, refRecs)
	}
	rejected := 0
	for _, r := range st.Audit {
		if r.Outcome == api.Rejected {
			rejected++
		}
	}
	if rejected != 3 {
		t.Fatalf("%d rejections, want 3", rejected)
	}
	// Ingest decoded each event once, in the Validator; the late batch
	// refolded the early events from their stored bytes.
	if n := validations.Load(); n != int64(len(evs)) {
		t.Fatalf("%d validations for %d events", n, len(evs))
	}
	if fs := f.Stats(); fs.Handed != uint64(len(evs)) || fs.Skipped != 0 {
		t.Fatalf("folder stats %+v: want every event handed over once", fs)
	}
}

func waitApplied(t *testing.T, fold *chain.Fold[*State], n int) {
	t.Helper()
	deadline := time.After(20 * time.Second) // a hang guard, not a speed assertion
	for fold.Stats().Applied < uint64(n) {
		select {
		case <-fold.Changed():
		case <-deadline:
			t.Fatalf("fold stuck at %+v", fold.Stats())
		}
	}
}

// TestIngestDecodesOnce: events committed one by one (a push) and in a
// batch (an anti-entropy pull) are decoded once each, by the Validator, and
// folded from that decoded value; a fold restarted over the stored ledger
// decodes each from its bytes (so the count is real, not assumed).
func TestIngestDecodesOnce(t *testing.T) {
	alice := identitytest.Key(t, "alice")
	g := command.Genesis{Cluster: cluster, Operators: []command.GenesisOperator{{Name: "alice", PublicKey: alice.Public}}}
	db, err := chain.Open(chain.Config{Dir: t.TempDir(), RetentionInterval: -1, ValueLogGCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var validations atomic.Int64
	v := Validator(cluster, func() time.Time { return t0.Add(time.Hour) })
	led := db.Ledger(func(raw []byte) (chain.EventMeta, error) {
		validations.Add(1)
		return v(raw)
	})
	run := func(f *Folder) (*chain.Fold[*State], func()) {
		fold := chain.NewFold[*State](led, f, 0)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- fold.Run(ctx) }()
		// Run's first pass folds what is stored from disk; let it finish
		// before inserting, or an event inserted meanwhile is decoded by it
		// (a race of the test, not of ingest).
		select {
		case <-fold.Changed():
		case <-time.After(20 * time.Second):
			t.Fatal("fold did not start")
		}
		return fold, func() { cancel(); <-done }
	}
	f, err := NewFolder(g)
	if err != nil {
		t.Fatal(err)
	}
	fold, stop := run(f)
	const n = 40
	var batch [][]byte
	for i := range n {
		raw := event(t, api.Action{Verb: api.VerbCordon, Node: identity.NodeID(1 + i)}, time.Duration(i)*time.Second, byte(i), alice).Marshal()
		if i < n/2 {
			ev, added, err := led.Insert(t.Context(), raw)
			if err != nil || !added || EventOf(ev.Meta) == nil {
				t.Fatalf("insert %d: added=%v err=%v decoded=%v", i, added, err, EventOf(ev.Meta) != nil)
			}
			continue
		}
		batch = append(batch, raw)
	}
	if _, err := led.InsertMany(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	waitApplied(t, fold, n)
	stop()
	if got := validations.Load(); got != n {
		t.Fatalf("%d validations (decodes) for %d events", got, n)
	}
	if fs := f.Stats(); fs != (FolderStats{Handed: n}) {
		t.Fatalf("fold decoded again: %+v", fs)
	}
	st, _ := fold.State()
	if st.Admin.Accepted() != n || len(st.Audit) != n {
		t.Fatalf("accepted %d, audit %d", st.Admin.Accepted(), len(st.Audit))
	}

	f2, err := NewFolder(g)
	if err != nil {
		t.Fatal(err)
	}
	fold2, stop2 := run(f2)
	waitApplied(t, fold2, n)
	stop2()
	if fs := f2.Stats(); fs != (FolderStats{Decoded: n}) {
		t.Fatalf("fold over the stored ledger: %+v", fs)
	}
}

func TestValidatorRejects(t *testing.T) {
	alice := identitytest.Key(t, "alice")
	good := event(t, api.Action{Verb: api.VerbCordon, Node: 1}, 0, 1, alice)
	v := Validator(cluster, func() time.Time { return t0 })
	meta, err := v(good.Marshal())
	if err != nil || meta.ID != good.LedgerKey() || meta.IssuedAt != good.IssuedAtMs() || EventOf(meta).ID() != good.ID() {
		t.Fatalf("meta %+v %v", meta, err)
	}
	// Refused after decoding: the meta still names the event.
	future := event(t, api.Action{Verb: api.VerbCordon, Node: 1}, time.Hour, 2, alice)
	if meta, err := v(future.Marshal()); !errors.Is(err, command.ErrClockSkew) || meta.ID != future.LedgerKey() || EventOf(meta) == nil {
		t.Fatalf("future: %+v %v", meta, err)
	}
	if meta, err := Validator("other", nil)(good.Marshal()); !errors.Is(err, command.ErrWrongCluster) || meta.ID != good.LedgerKey() {
		t.Fatalf("cluster: %+v %v", meta, err)
	}
	if meta, err := v(append(good.Marshal(), 0)); !errors.Is(err, api.ErrInvalid) || EventOf(meta) != nil {
		t.Fatalf("trailing: %+v %v", meta, err)
	}
}
