package chain

import (
	"math/rand/v2"
	"testing"
)

// TestDigestLevelsAgree: at every width, folding the finest buckets gives
// the same count and XOR as computing the buckets from scratch, and the
// top level equals the running total.
func TestDigestLevelsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var x bucketIndex
	var ps []Position
	for i := 0; i < 2000; i++ {
		var p Position
		p.IssuedAtMs = 1_700_000_000_000 + rng.Int64N(90*24*3600*1000)
		for j := range p.ID {
			p.ID[j] = byte(rng.Uint32())
		}
		ps = append(ps, p)
		x.add(p)
	}
	for shift := uint(DigestMinWidthShiftBits); shift <= DigestMaxWidthShiftBits; shift += DigestLevelShiftBits {
		want := map[int64]BucketDigest{}
		for _, p := range ps {
			s := bucketStart(p.IssuedAtMs, shift)
			d := want[s]
			d.Start = s
			d.add(p.ID)
			want[s] = d
		}
		got := x.digest(0, 1<<DigestMaxWidthShiftBits, shift)
		if len(got) != len(want) {
			t.Fatalf("shift %d: %d buckets, want %d", shift, len(got), len(want))
		}
		for i, d := range got {
			if want[d.Start] != d {
				t.Fatalf("shift %d bucket %d differs", shift, d.Start)
			}
			if i > 0 && got[i-1].Start >= d.Start {
				t.Fatalf("shift %d: buckets out of order", shift)
			}
		}
	}
	if top := x.digest(0, 1<<DigestMaxWidthShiftBits, DigestMaxWidthShiftBits); len(top) != 1 || top[0] != x.total || top[0].Count != 2000 {
		t.Fatalf("top %+v, total %+v", top, x.total)
	}
	// A sub-range sees only its own buckets.
	from := bucketStart(ps[0].IssuedAtMs, 30)
	sub := x.digest(from, from+1<<30, 24)
	n := uint32(0)
	for _, d := range sub {
		if d.Start < from || d.Start >= from+1<<30 {
			t.Fatalf("bucket %d outside the range", d.Start)
		}
		n += d.Count
	}
	want := uint32(0)
	for _, p := range ps {
		if p.IssuedAtMs >= from && p.IssuedAtMs < from+1<<30 {
			want++
		}
	}
	if n != want {
		t.Fatalf("sub-range holds %d events, want %d", n, want)
	}
}
