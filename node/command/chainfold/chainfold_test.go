package chainfold

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
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
	led := db.Ledger(Validator(cluster, func() time.Time { return t0.Add(time.Minute) }))
	var mu sync.Mutex
	verdicts := map[[32]byte]error{}
	f, err := NewFolder(g, func(k [32]byte, _ *command.Event, err error) {
		mu.Lock()
		verdicts[k] = err
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	fold := chain.NewFold[*command.AdminState](led, f, 2)
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
	insert(late)
	deadline := time.After(20 * time.Second) // a hang guard, not a speed assertion
	for fold.Stats().Applied < uint64(len(evs)) {
		select {
		case <-fold.Changed():
		case <-deadline:
			t.Fatalf("fold stuck at %+v", fold.Stats())
		}
	}
	st, _ := fold.State()
	if !st.Equal(ref) {
		t.Fatal("ledger fold differs from the reference fold")
	}
	mu.Lock()
	defer mu.Unlock()
	rejected := 0
	for _, r := range refRecs {
		if r.Outcome == api.Rejected {
			rejected++
		}
	}
	got := 0
	for _, err := range verdicts {
		if err != nil {
			got++
		}
	}
	if rejected != 3 || got != rejected {
		t.Fatalf("rejections: reference %d, ledger %d", rejected, got)
	}
}

func TestValidatorRejects(t *testing.T) {
	alice := identitytest.Key(t, "alice")
	good := event(t, api.Action{Verb: api.VerbCordon, Node: 1}, 0, 1, alice)
	v := Validator(cluster, func() time.Time { return t0 })
	meta, err := v(good.Marshal())
	if err != nil || meta.ID != good.LedgerKey() || meta.IssuedAt != good.IssuedAtMs() {
		t.Fatalf("meta %+v %v", meta, err)
	}
	future := event(t, api.Action{Verb: api.VerbCordon, Node: 1}, time.Hour, 2, alice)
	if _, err := v(future.Marshal()); !errors.Is(err, command.ErrClockSkew) {
		t.Fatalf("future: %v", err)
	}
	if _, err := Validator("other", nil)(good.Marshal()); !errors.Is(err, command.ErrWrongCluster) {
		t.Fatalf("cluster: %v", err)
	}
	if _, err := v(append(good.Marshal(), 0)); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("trailing: %v", err)
	}
}
