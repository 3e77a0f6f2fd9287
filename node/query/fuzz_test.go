package query

import (
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/codec"
	"github.com/deck-mesh/deck/node/snapshot"
)

// fragmentSeeds are encodings of real plans' fragments.
func fragmentSeeds(tb testing.TB) [][]byte {
	view := &snapshot.ClusterSnapshot{Nodes: []snapshot.NodeView{{NodeSnapshot: snapshot.NodeSnapshot{ID: self, Label: "n1"}}},
		Chains: []snapshot.Chain{{Name: "trainer", Holders: []api.NodeID{self}}}}
	var out [][]byte
	for _, q := range []string{
		`between(logs, -5m, now) where level >= warn and daemon ~ "x" | count, percentile(seq, 99), distinct(text) by daemon`,
		`latest(snapshots, 5) where at < now and not (cordoned or node != n1) | select node`,
		`between(logs, 1, 100) | window 10 seq | min(at), max(level), avg(seq), sum(seq) by window`,
		`at(trainer, 3)`, `bounds(failures)`, `scan(admin) | limit 4`,
	} {
		pl, err := Compile(q, &Catalog{View: view, Self: self, Now: time.Unix(1e9, 0)})
		if err != nil {
			tb.Fatalf("%s: %v", q, err)
		}
		for _, f := range pl.Frags {
			out = append(out, f.enc)
		}
	}
	return out
}

// FuzzDecodeFragment: a fragment from a peer never panics the holder, and
// one that decodes re-encodes to the same bytes (one encoding per value).
func FuzzDecodeFragment(f *testing.F) {
	for _, s := range fragmentSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := DecodeFragment(b)
		if err != nil {
			return
		}
		again, err := AppendFragment(nil, fr)
		if err != nil {
			t.Fatalf("a decoded fragment does not encode: %v", err)
		}
		if _, err := DecodeFragment(again); err != nil {
			t.Fatalf("a re-encoded fragment does not decode: %v", err)
		}
		// Running it must not panic either.
		st := localEngine(t).cfg.Store
		if src, err := st.open(fr); err == nil {
			r := newRunner(fr, src, 1<<20, 10_000)
			for range 50 {
				bt, err := r.step(1000)
				if err != nil || (bt != nil && bt.last) {
					break
				}
			}
		}
	})
}

// FuzzDecodeBatch: a batch from a holder never panics the coordinator,
// whatever columns it claims, and its partial states merge or fail.
func FuzzDecodeBatch(f *testing.F) {
	cols := []api.QueryColumn{col("daemon", api.KindString), col("count.state", api.KindBytes), col("at", api.KindTime)}
	st, _ := encodeState(&cell{n: 3}, aggCount)
	b, _ := encodeBatch(7, &batch{seq: 1, cursor: 9, scanned: 100, cols: cols,
		rows: []api.QueryRow{{api.StringValue("d-1"), api.BytesValue(st), api.TimeValue(time.Unix(1e9, 0))}}})
	f.Add(b[headerBytes:])
	f.Add([]byte{0, 1, 0, 0, 0, 3, 3, 9, 10, 1, 0})
	f.Fuzz(func(t *testing.T, body []byte) {
		bt, err := decodeBatch(body, cols)
		if err != nil {
			return
		}
		tab := newAggTable([]AggSpec{{Fn: aggCount, Col: -1}}, newBudget(1<<20, "fuzz"))
		for _, r := range bt.rows {
			_ = tab.mergeRow(r[:2], 1)
		}
		_ = tab.finalRows(cols)
	})
}

// FuzzMergeState: a partial aggregate state from a holder never panics
// the merge, for every aggregate.
func FuzzMergeState(f *testing.F) {
	c := &cell{n: 2, fsum: 3, ints: true, isum: 3, min: api.IntValue(1), max: api.IntValue(2),
		set: map[string]api.Value{"a": api.StringValue("a")}, vals: []api.Value{api.IntValue(1), api.IntValue(2)}}
	for fn := AggFn(0); fn < aggFnEnd; fn++ {
		b, _ := encodeState(c, fn)
		f.Add(uint8(fn), b)
	}
	f.Fuzz(func(t *testing.T, fn uint8, b []byte) {
		a := AggFn(fn % uint8(aggFnEnd))
		tab := newAggTable([]AggSpec{{Fn: a, Col: 0, P: 50}}, newBudget(1<<20, "fuzz"))
		var cl cell
		cl.ints = true
		_ = tab.mergeState(&cl, a, b)
		_ = finish(&cl, AggSpec{Fn: a, Col: 0, P: 50}, []api.QueryColumn{col("x", api.KindInt)})
		_ = codec.ErrMalformed
	})
}
