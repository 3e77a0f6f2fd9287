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
// outside the timer. "gate" is the node's ingest as built since issue 12
// (Ingest: signatures against the registry at the event's position, read
// from the fold, this node's receipt signed and stored beside the event).
func BenchmarkIngest(b *testing.B) {
	for _, bc := range []struct {
		name  string
		batch int
		twice bool
		gate  bool
	}{{"push/once", 1, false, false}, {"push/twice", 1, true, false}, {"push/gate", 1, false, true},
		{"pull64/once", 64, false, false}, {"pull64/twice", 64, true, false}, {"pull64/gate", 64, false, true}} {
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
			var fold *chain.Fold[*State]
			if bc.gate {
				// Every event fresh: the clock stands in the middle of the
				// run's issue times, the allowance covers the rest.
				now := t0.Add(time.Duration(b.N/2) * time.Millisecond)
				node := identitytest.Key(b, "bench-node")
				in, err := NewIngest(IngestConfig{Cluster: cluster, Now: func() time.Time { return now }, Skew: command.MaxClockSkewAllowance,
					Held: func(id [32]byte) (bool, error) { return led.Has(id) },
					Registry: func(pos chain.Position) (*command.Registry, error) {
						if err := fold.WaitLocalSeq(context.Background(), led.Head().LastSeq); err != nil {
							return nil, err
						}
						var reg *command.Registry
						var err error
						fold.View(func(s *State, _ chain.Position) { reg, err = s.RegistryAt(pos) })
						return reg, err
					},
					Attest: &Attester{Key: node, Cert: certFor(b, alice, node, identity.RoleNode)}})
				if err != nil {
					b.Fatal(err)
				}
				led = db.LedgerAdmitting(in.Validator(), in.Admit)
			}
			f, err := NewFolder(g)
			if err != nil {
				b.Fatal(err)
			}
			fold = chain.NewFold[*State](led, f, 0)
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

// BenchmarkAdmit is the CPU cost of judging one arriving event, storage
// left out: "validator" is the gate before issue 12 (decode, cluster, clock
// ahead); "fresh" is Ingest on an event inside its window (decode, the
// proposer's signature, this node's receipt signed); "late" on an event
// past its window with one receipt (decode, the receipt's signature, the
// attester's certificate, then the proposer's signature).
func BenchmarkAdmit(b *testing.B) {
	alice, node := identitytest.Key(b, "bench"), identitytest.Key(b, "bench-node")
	g := command.Genesis{Cluster: cluster, Operators: []command.GenesisOperator{{Name: "alice", PublicKey: alice.Public}}}
	st, err := command.NewState(g)
	if err != nil {
		b.Fatal(err)
	}
	reg := st.Registry()
	ev := benchEvent(b, alice, 1)
	raw := ev.Marshal()
	cert := certFor(b, alice, node, identity.RoleNode)
	r, err := SignReceipt(node, cert, ev.LedgerKey(), ev.IssuedAt().Add(time.Second))
	if err != nil {
		b.Fatal(err)
	}
	att, err := AppendReceipts(nil, []Receipt{r})
	if err != nil {
		b.Fatal(err)
	}
	certs := newCertRegistry(cluster, alice)
	gate := func(now time.Time) *Ingest {
		in, err := NewIngest(IngestConfig{Cluster: cluster, Now: func() time.Time { return now },
			Held:          func([32]byte) (bool, error) { return false, nil },
			Registry:      func(chain.Position) (*command.Registry, error) { return reg, nil },
			AttesterCheck: certs.check, Attest: &Attester{Key: node, Cert: cert}})
		if err != nil {
			b.Fatal(err)
		}
		return in
	}
	old := Validator(cluster, func() time.Time { return ev.IssuedAt() })
	for _, bc := range []struct {
		name  string
		admit func() error
	}{
		{"validator", func() error { _, err := old(raw); return err }},
		{"fresh", func() error { _, err := gate(ev.IssuedAt()).Admit(chain.Incoming{Raw: raw}); return err }},
		{"late", func() error {
			_, err := gate(ev.IssuedAt().Add(time.Hour)).Admit(chain.Incoming{Raw: raw, Attachment: att})
			return err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bc.admit(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
