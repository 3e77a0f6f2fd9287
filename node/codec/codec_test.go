package codec_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/deck-mesh/deck/node/codec"
)

var errDomain = errors.New("test: bad record")

func TestRoundTripEveryShape(t *testing.T) {
	w := codec.NewWriter(nil, errDomain)
	w.U8(7)
	w.U16(0xBEEF)
	w.U32(1 << 31)
	w.U64(math.MaxUint64)
	w.Uvarint(300)
	w.Varint(-5)
	w.Bool(true)
	w.Enum("kind", 2, 3)
	w.F64("load", 0.25)
	w.String(codec.PrefixU8, 16, "name", "node-1")
	w.Bytes(codec.PrefixU32, 1<<10, "state", []byte{1, 2, 3})
	w.Text(codec.PrefixUvarint, 64, "label", "ünïcode")
	w.Count("items", 2, 10)
	if w.Err() != nil {
		t.Fatal(w.Err())
	}
	r := codec.NewReader(w.B, errDomain)
	if r.U8() != 7 || r.U16() != 0xBEEF || r.U32() != 1<<31 || r.U64() != math.MaxUint64 ||
		r.Uvarint() != 300 || r.Varint() != -5 || !r.Bool() || r.Enum("kind", 3) != 2 || r.F64("load") != 0.25 ||
		r.String(codec.PrefixU8, 16, "name") != "node-1" || !bytes.Equal(r.Bytes(codec.PrefixU32, 1<<10, "state"), []byte{1, 2, 3}) ||
		r.Text(codec.PrefixUvarint, 64, "label") != "ünïcode" {
		t.Fatalf("values changed in a round trip (err %v)", r.Err())
	}
	// A count of 2 with nothing after it cannot fit two 1-byte items.
	if n := r.Count("items", 10, 1); n != 0 || !errors.Is(r.Err(), codec.ErrTruncated) {
		t.Fatalf("count beyond the input: n=%d err=%v", n, r.Err())
	}
}

func TestReaderRefusals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    []byte
		read  func(r *codec.Reader)
		class error
	}{
		{"short u64", []byte{1, 2, 3}, func(r *codec.Reader) { r.U64() }, codec.ErrTruncated},
		{"non-minimal uvarint", []byte{0x80, 0x00}, func(r *codec.Reader) { r.Uvarint() }, codec.ErrMalformed},
		{"overflowing uvarint", bytes.Repeat([]byte{0xff}, 11), func(r *codec.Reader) { r.Uvarint() }, codec.ErrMalformed},
		{"cut uvarint", []byte{0x80}, func(r *codec.Reader) { r.Uvarint() }, codec.ErrTruncated},
		{"bool 2", []byte{2}, func(r *codec.Reader) { r.Bool() }, codec.ErrMalformed},
		{"enum out of range", []byte{3}, func(r *codec.Reader) { r.Enum("kind", 3) }, codec.ErrMalformed},
		{"NaN", binary.BigEndian.AppendUint64(nil, math.Float64bits(math.NaN())), func(r *codec.Reader) { r.F64("x") }, codec.ErrMalformed},
		{"+Inf", binary.BigEndian.AppendUint64(nil, math.Float64bits(math.Inf(1))), func(r *codec.Reader) { r.F64("x") }, codec.ErrMalformed},
		{"string over its bound", append([]byte{5}, "hello"...), func(r *codec.Reader) { r.String(codec.PrefixU8, 4, "s") }, codec.ErrTooLarge},
		{"length beyond the input", []byte{0, 0, 0, 9, 1}, func(r *codec.Reader) { r.Bytes(codec.PrefixU32, 100, "b") }, codec.ErrTruncated},
		{"huge length, tiny input", []byte{0xff, 0xff, 0xff, 0xff}, func(r *codec.Reader) { r.Bytes(codec.PrefixU32, math.MaxInt, "b") }, codec.ErrTruncated},
		{"invalid UTF-8", []byte{1, 0xff}, func(r *codec.Reader) { r.Text(codec.PrefixUvarint, 8, "t") }, codec.ErrMalformed},
		{"escape in text", []byte{4, 0x1b, '[', '2', 'J'}, func(r *codec.Reader) { r.Text(codec.PrefixUvarint, 8, "t") }, codec.ErrMalformed},
		{"C1 in text", []byte{2, 0xc2, 0x9b}, func(r *codec.Reader) { r.Text(codec.PrefixUvarint, 8, "t") }, codec.ErrMalformed},
		{"count over its limit", []byte{11}, func(r *codec.Reader) { r.Count("items", 10, 0) }, codec.ErrTooLarge},
		{"trailing bytes", []byte{1, 2}, func(r *codec.Reader) { r.U8() }, codec.ErrTrailing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := codec.NewReader(tc.in, errDomain)
			tc.read(&r)
			err := r.Finish()
			if !errors.Is(err, tc.class) || !errors.Is(err, errDomain) {
				t.Fatalf("err = %v, want %v wrapping %v", err, tc.class, errDomain)
			}
			var ce *codec.Error
			if !errors.As(err, &ce) || ce.Off < 0 || ce.Off > len(tc.in) {
				t.Fatalf("no offset in %v", err)
			}
		})
	}
}

func TestFirstErrorSticks(t *testing.T) {
	r := codec.NewReader([]byte{2, 0xff, 0xff}, nil)
	r.Bool() // fails at byte 1
	if v := r.U16(); v != 0 {
		t.Fatalf("read after an error returned %d", v)
	}
	var ce *codec.Error
	if !errors.As(r.Finish(), &ce) || ce.Off != 1 || !errors.Is(ce, codec.ErrMalformed) {
		t.Fatalf("first error lost: %v", r.Err())
	}
}

func TestWriterRefusesWhatReaderRefuses(t *testing.T) {
	for name, write := range map[string]func(w *codec.Writer){
		"string over its bound":  func(w *codec.Writer) { w.String(codec.PrefixUvarint, 3, "s", "four") },
		"string over its prefix": func(w *codec.Writer) { w.String(codec.PrefixU8, 1000, "s", string(make([]byte, 256))) },
		"NaN":                    func(w *codec.Writer) { w.F64("x", math.NaN()) },
		"enum out of range":      func(w *codec.Writer) { w.Enum("kind", 3, 3) },
		"invalid UTF-8":          func(w *codec.Writer) { w.Text(codec.PrefixUvarint, 8, "t", "\xff") },
		"control character":      func(w *codec.Writer) { w.Text(codec.PrefixUvarint, 8, "t", "a\nb") },
		"count over its limit":   func(w *codec.Writer) { w.Count("items", 11, 10) },
		"bytes over their bound": func(w *codec.Writer) { w.Bytes(codec.PrefixU16, 2, "b", []byte{1, 2, 3}) },
	} {
		t.Run(name, func(t *testing.T) {
			w := codec.NewWriter(nil, errDomain)
			write(&w)
			if w.Err() == nil || !errors.Is(w.Err(), errDomain) {
				t.Fatalf("accepted: err %v", w.Err())
			}
		})
	}
}

// FuzzReader drives a script of reads (the first bytes choose the
// operations) over arbitrary input: no panic, no allocation beyond the
// input's size, the sticky error keeps later reads at zero, and what a
// writer wrote of the values read reads back identically.
func FuzzReader(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8}, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	f.Add([]byte{5, 6, 7}, []byte{3, 'a', 'b', 'c', 0x80, 0x01, 1})
	f.Add([]byte{9, 9}, []byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, script, in []byte) {
		if len(script) > 64 {
			script = script[:64]
		}
		r := codec.NewReader(in, errDomain)
		w := codec.NewWriter(nil, errDomain)
		for _, op := range script {
			switch op % 10 {
			case 0:
				w.U8(r.U8())
			case 1:
				w.U16(r.U16())
			case 2:
				w.U32(r.U32())
			case 3:
				w.U64(r.U64())
			case 4:
				w.Uvarint(r.Uvarint())
			case 5:
				w.Varint(r.Varint())
			case 6:
				w.Bool(r.Bool())
			case 7:
				w.String(codec.PrefixU8, 200, "s", r.String(codec.PrefixU8, 200, "s"))
			case 8:
				b := r.Bytes(codec.PrefixU32, 1<<20, "b")
				if len(b) > len(in) {
					t.Fatalf("%d bytes out of a %d-byte input", len(b), len(in))
				}
				w.Bytes(codec.PrefixU32, 1<<20, "b", b)
			case 9:
				n := r.Count("items", 1<<30, 1)
				if n > len(in) {
					t.Fatalf("count %d passed with %d bytes of input", n, len(in))
				}
				w.Count("items", n, 1<<30)
			}
		}
		if r.Err() != nil {
			return
		}
		if w.Err() != nil {
			t.Fatalf("a value read back could not be written: %v", w.Err())
		}
		if !bytes.Equal(w.B, in[:r.Off()]) {
			t.Fatalf("re-encoding differs:\n got %x\nwant %x", w.B, in[:r.Off()])
		}
	})
}
