package store

import "testing"

func TestRing(t *testing.T) {
	tests := []struct {
		name      string
		capacity  int
		push      int
		wantLen   int
		wantFirst uint64
		probe     uint64
		probeOK   bool
		probeVal  int
	}{
		{"empty", 3, 0, 0, 0, 0, false, 0},
		{"partial", 3, 2, 2, 0, 1, true, 1},
		{"exact", 3, 3, 3, 0, 0, true, 0},
		{"wrapped keeps newest", 3, 7, 3, 4, 6, true, 6},
		{"wrapped evicts oldest", 3, 7, 3, 4, 3, false, 0},
		{"future position", 3, 2, 2, 0, 2, false, 0},
		{"capacity clamps to one", 0, 5, 1, 4, 4, true, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRing[int](tc.capacity)
			for i := 0; i < tc.push; i++ {
				r.Push(i)
			}
			if r.Len() != tc.wantLen || r.First() != tc.wantFirst || r.Total() != uint64(tc.push) {
				t.Fatalf("len %d first %d total %d, want %d %d %d", r.Len(), r.First(), r.Total(), tc.wantLen, tc.wantFirst, tc.push)
			}
			v, ok := r.At(tc.probe)
			if ok != tc.probeOK || (ok && *v != tc.probeVal) {
				t.Fatalf("At(%d) = %v %v", tc.probe, v, ok)
			}
			for i := 0; i < r.Len(); i++ {
				if got := *r.Index(i); uint64(got) != r.First()+uint64(i) {
					t.Fatalf("Index(%d) = %d", i, got)
				}
			}
		})
	}
}
