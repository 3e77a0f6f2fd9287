package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/snapshot"
)

func TestSnapshotRoundTrip(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 123_456_789, time.FixedZone("X", 3600))
	key := testKey(t, 1)
	tests := []struct {
		name string
		ns   *snapshot.NodeSnapshot
	}{
		{"zero", &snapshot.NodeSnapshot{}},
		{"id only", &snapshot.NodeSnapshot{ID: key.ID}},
		{"50 daemons, sub-ms times in a zone", nodeSnapshot(key.ID, 7, 50, now)},
		{"max daemons", nodeSnapshot(key.ID, 1, MaxDaemonsPerSnapshot, now)},
		{"negative and pre-epoch values", &snapshot.NodeSnapshot{
			ID: key.ID, BuiltAt: time.Unix(-86400*365*50, 0), Resources: snapshot.Resources{CPULoad: -0.0, Saturation: math.MaxFloat64},
			Maintenance: snapshot.Maintenance{DaemonsLeft: -1, ReplicasTotal: math.MaxInt64},
			Peers:       []snapshot.PeerView{{Peer: 1, RTT: -time.Second}},
		}},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 50 {
		tests = append(tests, struct {
			name string
			ns   *snapshot.NodeSnapshot
		}{"random/" + string(rune('a'+i%26)), randomSnapshot(t, r, key.ID, 4)})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := EncodeSnapshot(tt.ns)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			got, err := DecodeSnapshot(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if want := normalize(tt.ns); !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip differs at %s", firstDiff("NodeSnapshot", reflect.ValueOf(*got), reflect.ValueOf(*want)))
			}
			again, err := EncodeSnapshot(got)
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("re-encoding is not canonical (err %v)", err)
			}
		})
	}
}

// TestRandomFillCoversEveryField guards the round-trip test itself: the
// filler must leave no field of NodeSnapshot at its zero value, or a field
// the codec forgets would round-trip as zero unnoticed.
func TestRandomFillCoversEveryField(t *testing.T) {
	ns := randomSnapshot(t, rand.New(rand.NewPCG(3, 4)), testKey(t, 1).ID, 3)
	var walk func(path string, v reflect.Value)
	walk = func(path string, v reflect.Value) {
		if v.Type() == reflect.TypeFor[time.Time]() {
			if v.Interface().(time.Time).IsZero() {
				t.Errorf("%s is zero", path)
			}
			return
		}
		switch v.Kind() {
		case reflect.Struct:
			for i := range v.NumField() {
				walk(path+"."+v.Type().Field(i).Name, v.Field(i))
			}
		case reflect.Slice:
			if v.Len() == 0 {
				t.Errorf("%s is empty", path)
			}
			for i := range v.Len() {
				walk(path+"[]", v.Index(i))
			}
		default:
			if v.IsZero() {
				t.Errorf("%s is zero", path)
			}
		}
	}
	walk("NodeSnapshot", reflect.ValueOf(ns).Elem())
}

// offsetOf returns the offset of the first byte where the encoding of base
// and of base changed by mutate differ: a way to find a field's position
// without hard-coding the layout.
func offsetOf(t *testing.T, mutate func(*snapshot.NodeSnapshot)) (enc []byte, off int) {
	t.Helper()
	base := nodeSnapshot(testKey(t, 1).ID, 3, 2, time.UnixMilli(1_700_000_000_000))
	a, err := EncodeSnapshot(base)
	if err != nil {
		t.Fatal(err)
	}
	mutate(base)
	b, err := EncodeSnapshot(base)
	if err != nil {
		t.Fatal(err)
	}
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return a, i
		}
	}
	t.Fatal("mutation did not change the encoding")
	return nil, 0
}

func TestDecodeSnapshotRejects(t *testing.T) {
	valid, err := EncodeSnapshot(nodeSnapshot(testKey(t, 1).ID, 3, 2, time.UnixMilli(1_700_000_000_000)))
	if err != nil {
		t.Fatal(err)
	}
	patch := func(mutate func(*snapshot.NodeSnapshot), edit func(b []byte, off int) []byte) []byte {
		b, off := offsetOf(t, mutate)
		return edit(bytes.Clone(b), off)
	}
	set := func(vals ...byte) func([]byte, int) []byte {
		return func(b []byte, off int) []byte { copy(b[off:], vals); return b }
	}
	// Replace the one-byte length at off (a short string) with n and, when
	// n is small, keep the rest intact.
	insertAt := func(ins ...byte) func([]byte, int) []byte {
		return func(b []byte, off int) []byte {
			return append(append(append([]byte(nil), b[:off]...), ins...), b[off+1:]...)
		}
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"trailing byte", append(bytes.Clone(valid), 0), ErrTrailingBytes},
		{"bad version", append([]byte{9}, valid[1:]...), ErrMalformed},
		{"oversized input", make([]byte, MaxSnapshotBytes+1), ErrTooLarge},
		{"bool is 2", patch(func(n *snapshot.NodeSnapshot) { n.Cordoned = true }, set(2)), ErrMalformed},
		{"enum out of range", patch(func(n *snapshot.NodeSnapshot) { n.Maintenance.State = 1 }, set(numMaintState)), ErrMalformed},
		{"NaN float", patch(func(n *snapshot.NodeSnapshot) { n.Resources.CPULoad = math.Copysign(0, -1) },
			set(0x7f, 0xf8, 0, 0, 0, 0, 0, 1)), ErrMalformed},
		{"+Inf float", patch(func(n *snapshot.NodeSnapshot) { n.Resources.CPULoad = math.Copysign(0, -1) },
			set(0x7f, 0xf0, 0, 0, 0, 0, 0, 0)), ErrMalformed},
		{"non-minimal varint", patch(func(n *snapshot.NodeSnapshot) { n.Generation = 4 }, insertAt(0x84, 0x00)), ErrMalformed},
		{"varint overflow", patch(func(n *snapshot.NodeSnapshot) { n.Generation = 4 },
			insertAt(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)), ErrMalformed},
		{"invalid UTF-8", patch(func(n *snapshot.NodeSnapshot) { n.Version = "deck 0.1.1" }, func(b []byte, off int) []byte {
			b[off] = 0xff
			return b
		}), ErrMalformed},
		{"string longer than bound", patch(func(n *snapshot.NodeSnapshot) { n.Version = "deck 0.1.1" },
			func(b []byte, off int) []byte {
				i := bytes.Index(b, []byte("deck 0.1.0"))
				return append(append(append([]byte(nil), b[:i-1]...), 0x81, 0x02), b[i:]...) // length 257
			}), ErrTooLarge},
		{"string past end", patch(func(n *snapshot.NodeSnapshot) { n.Version = "deck 0.1.1" },
			func(b []byte, off int) []byte {
				i := bytes.Index(b, []byte("deck 0.1.0"))
				b[i-1] = 0x7f
				return b[:i+20]
			}), ErrTruncated},
		{"daemon count over limit", patch(func(n *snapshot.NodeSnapshot) { n.Daemons = n.Daemons[:1] },
			insertAt(0x81, 0x02)), ErrTooLarge},
		{"daemon count beyond bytes left", patch(func(n *snapshot.NodeSnapshot) { n.Daemons = n.Daemons[:1] },
			insertAt(100)), ErrTruncated},
	}
	for i := 1; i < len(valid); i += max(1, len(valid)/40) {
		tests = append(tests, struct {
			name string
			in   []byte
			want error
		}{"truncated", valid[:i], ErrMalformed})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, err := DecodeSnapshot(tt.in)
			if err == nil {
				t.Fatalf("decoded %d bytes without error: %+v", len(tt.in), ns)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v wraps neither ErrMalformed nor ErrTooLarge", err)
			}
		})
	}
}

func TestEncodeSnapshotRefuses(t *testing.T) {
	id := testKey(t, 1).ID
	now := time.UnixMilli(1_700_000_000_000)
	big := nodeSnapshot(id, 1, MaxDaemonsPerSnapshot, now)
	for i := range big.Daemons {
		big.Daemons[i].HealthReason = strings.Repeat("x", MaxStringBytes)
	}
	tests := []struct {
		name   string
		mutate func(*snapshot.NodeSnapshot)
		want   error
	}{
		{"too many daemons", func(n *snapshot.NodeSnapshot) { n.Daemons = make([]snapshot.Daemon, MaxDaemonsPerSnapshot+1) }, ErrTooLarge},
		{"too many failures", func(n *snapshot.NodeSnapshot) { n.Failures = make([]snapshot.Failure, MaxFailuresPerSnapshot+1) }, ErrTooLarge},
		{"long label", func(n *snapshot.NodeSnapshot) { n.Label = strings.Repeat("é", MaxStringBytes) }, ErrTooLarge},
		{"invalid UTF-8", func(n *snapshot.NodeSnapshot) { n.Label = "\xff" }, ErrMalformed},
		{"NaN", func(n *snapshot.NodeSnapshot) { n.Resources.Saturation = math.NaN() }, ErrMalformed},
		{"-Inf in trend", func(n *snapshot.NodeSnapshot) { n.Resources.Trend[3] = math.Inf(-1) }, ErrMalformed},
		{"enum out of range", func(n *snapshot.NodeSnapshot) { n.Daemons[0].Lifecycle = numLifecycle }, ErrMalformed},
		{"sum over MaxSnapshotBytes", func(n *snapshot.NodeSnapshot) { *n = *big }, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := nodeSnapshot(id, 1, 3, now)
			tt.mutate(ns)
			if _, err := EncodeSnapshot(ns); !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestFit(t *testing.T) {
	id := testKey(t, 1).ID
	now := time.UnixMilli(1_700_000_000_000)
	t.Run("in bounds is untouched", func(t *testing.T) {
		ns := nodeSnapshot(id, 1, 50, now)
		got, cut := Fit(ns)
		if cut != 0 || !reflect.DeepEqual(got, ns) {
			t.Fatalf("cut %d, changed %v", cut, !reflect.DeepEqual(got, ns))
		}
	})
	tests := []struct {
		name    string
		mutate  func(*snapshot.NodeSnapshot)
		wantCut int
		check   func(t *testing.T, got *snapshot.NodeSnapshot)
	}{
		{"daemons cut to bound", func(n *snapshot.NodeSnapshot) { n.Daemons = make([]snapshot.Daemon, MaxDaemonsPerSnapshot+5) }, 5,
			func(t *testing.T, got *snapshot.NodeSnapshot) {
				if len(got.Daemons) != MaxDaemonsPerSnapshot {
					t.Fatalf("%d daemons", len(got.Daemons))
				}
			}},
		{"failures keep the newest", func(n *snapshot.NodeSnapshot) {
			for i := range MaxFailuresPerSnapshot + 10 {
				// Newest first, with a tie at the cut.
				n.Failures = append(n.Failures, snapshot.Failure{Seq: uint64(100 - i)})
			}
			n.Failures = append(n.Failures, snapshot.Failure{Seq: 100 - MaxFailuresPerSnapshot + 1})
		}, 11, func(t *testing.T, got *snapshot.NodeSnapshot) {
			if len(got.Failures) != MaxFailuresPerSnapshot || got.Failures[0].Seq != 100 {
				t.Fatalf("%d failures, first %d", len(got.Failures), got.Failures[0].Seq)
			}
			for _, f := range got.Failures {
				if f.Seq < 100-MaxFailuresPerSnapshot+1 {
					t.Fatalf("kept old failure %d", f.Seq)
				}
			}
		}},
		{"trend keeps the newest samples", func(n *snapshot.NodeSnapshot) {
			n.Resources.Trend = make([]float64, MaxTrendSamplesPerSnapshot+2)
			n.Resources.Trend[len(n.Resources.Trend)-1] = 0.9
		}, 2, func(t *testing.T, got *snapshot.NodeSnapshot) {
			if tr := got.Resources.Trend; len(tr) != MaxTrendSamplesPerSnapshot || tr[len(tr)-1] != 0.9 {
				t.Fatalf("trend %d samples, last %v", len(tr), tr[len(tr)-1])
			}
		}},
		{"long string cut on a rune boundary", func(n *snapshot.NodeSnapshot) { n.Label = "a" + strings.Repeat("é", MaxStringBytes) }, 1,
			func(t *testing.T, got *snapshot.NodeSnapshot) {
				if len(got.Label) != MaxStringBytes-1 || !strings.HasSuffix(got.Label, "é") {
					t.Fatalf("label %d bytes", len(got.Label))
				}
			}},
		{"invalid UTF-8 replaced", func(n *snapshot.NodeSnapshot) { n.Daemons[0].HealthReason = "oom\xff" }, 1,
			func(t *testing.T, got *snapshot.NodeSnapshot) {
				if got.Daemons[0].HealthReason != "oom\uFFFD" {
					t.Fatalf("reason %q", got.Daemons[0].HealthReason)
				}
			}},
		{"non-finite floats zeroed", func(n *snapshot.NodeSnapshot) {
			n.Resources.CPULoad = math.NaN()
			n.Daemons[1].Saturation = math.Inf(1)
		}, 2, func(t *testing.T, got *snapshot.NodeSnapshot) {
			if got.Resources.CPULoad != 0 || got.Daemons[1].Saturation != 0 {
				t.Fatal("not zeroed")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := nodeSnapshot(id, 1, 3, now)
			tt.mutate(ns)
			before := fmt.Sprintf("%+v", *ns) // to detect writes into the input (NaN-safe, unlike DeepEqual)
			got, cut := Fit(ns)
			if cut != tt.wantCut {
				t.Errorf("cut %d, want %d", cut, tt.wantCut)
			}
			tt.check(t, got)
			if fmt.Sprintf("%+v", *ns) != before {
				t.Fatal("Fit modified its input")
			}
			if _, err := EncodeSnapshot(got); err != nil {
				t.Fatalf("fitted snapshot does not encode: %v", err)
			}
		})
	}
}

// firstDiff names the first path where a and b differ.
func firstDiff(path string, a, b reflect.Value) string {
	if a.Type() == reflect.TypeFor[time.Time]() {
		if !a.Interface().(time.Time).Equal(b.Interface().(time.Time)) || !reflect.DeepEqual(a.Interface(), b.Interface()) {
			return fmt.Sprintf("%s: %v != %v", path, a, b)
		}
		return ""
	}
	switch a.Kind() {
	case reflect.Struct:
		for i := range a.NumField() {
			if d := firstDiff(path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i)); d != "" {
				return d
			}
		}
		return ""
	case reflect.Slice:
		if a.Len() != b.Len() || a.IsNil() != b.IsNil() {
			return fmt.Sprintf("%s: len %d (nil %v) != len %d (nil %v)", path, a.Len(), a.IsNil(), b.Len(), b.IsNil())
		}
		for i := range a.Len() {
			if d := firstDiff(fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i)); d != "" {
				return d
			}
		}
		return ""
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		return fmt.Sprintf("%s: %v != %v", path, a, b)
	}
	return ""
}
