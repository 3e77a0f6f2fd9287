package chainfold

import (
	"context"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/identity/identitytest"
)

// BenchmarkIngest is the cost of one admin event from arrival to folded
// state: validate and store it in a real Badger ledger (durable writes),
// then fold it (signature check and effect) into the admin state. "push"
// stores events one by one (a peer's commit push), "pull64" in batches of
// 64 (an anti-entropy pull). "once" is the ingest path as built (the
// Validator's decoded event reaches the fold); "twice" drops it, so the
// fold decodes the stored bytes again, as it did before. Event signing is
// outside the timer.
func BenchmarkIngest(b *testing.B) {
	for _, bc := range []struct {
		name  string
		batch int
		twice bool
	}{{"push/once", 1, false}, {"push/twice", 1, true}, {"pull64/once", 64, false}, {"pull64/twice", 64, true}} {
		b.Run(bc.name, func(b *testing.B) {
			alice := identitytest.Key(b, "bench")
			g := command.Genesis{Cluster: cluster, Operators: []command.GenesisOperator{{Name: "alice", PublicKey: alice.Public}}}
			raws := make([][]byte, b.N)
			for i := range raws {
				raws[i] = benchEvent(b, alice, i).Marshal()
			}
			db, err := chain.Open(chain.Config{Dir: b.TempDir(), RetentionInterval: -1, ValueLogGCInterval: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			v := Validator(cluster, func() time.Time { return t0.Add(365 * 24 * time.Hour) })
			if bc.twice {
				v = func(raw []byte) (chain.EventMeta, error) {
					meta, err := Validator(cluster, func() time.Time { return t0.Add(365 * 24 * time.Hour) })(raw)
					meta.Decoded = nil
					return meta, err
				}
			}
			led := db.Ledger(v)
			f, err := NewFolder(g)
			if err != nil {
				b.Fatal(err)
			}
			fold := chain.NewFold[*State](led, f, 0)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- fold.Run(ctx) }()
			defer func() { cancel(); <-done }()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < len(raws); i += bc.batch {
				rep, err := led.InsertMany(ctx, raws[i:min(i+bc.batch, len(raws))])
				if err != nil || len(rep.Rejected) > 0 {
					b.Fatalf("insert: %v %+v", err, rep.Rejected)
				}
			}
			for fold.Stats().Applied < uint64(b.N) {
				select {
				case <-fold.Changed():
				case <-time.After(time.Minute):
					b.Fatalf("fold stuck at %+v", fold.Stats())
				}
			}
			b.StopTimer()
			if st, _ := fold.State(); st.Admin.Accepted() != uint64(b.N) {
				b.Fatalf("accepted %d of %d", st.Admin.Accepted(), b.N)
			}
		})
	}
}

// benchEvent is the i-th of a run of distinct, valid cordon events.
func benchEvent(b *testing.B, k *identity.Key, i int) *command.Event {
	body := command.Body{Kind: command.KindAdmin, Cluster: cluster, Proposer: k.ID,
		Action:     api.Action{Verb: api.VerbCordon, Node: identity.NodeID(1 + i%64)},
		Nonce:      command.Nonce{byte(i), byte(i >> 8), byte(i >> 16), byte(i >> 24), 1},
		IssuedAtMs: t0.Add(time.Duration(i) * time.Millisecond).UnixMilli()}
	p, err := body.SigningPayload()
	if err != nil {
		b.Fatal(err)
	}
	ev, err := command.NewEvent(body, []api.Signature{{Operator: k.ID, Sig: k.Sign(p)}})
	if err != nil {
		b.Fatal(err)
	}
	return ev
}

// BenchmarkIngestDecode is one decode of a typical event: what each decode
// that ingest no longer repeats cost.
func BenchmarkIngestDecode(b *testing.B) {
	raw := benchEvent(b, identitytest.Key(b, "bench"), 1).Marshal()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := command.DecodeEvent(raw); err != nil {
			b.Fatal(err)
		}
	}
}
