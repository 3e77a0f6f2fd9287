// Package codec is the one bounded byte codec every decoder of untrusted
// bytes in the node uses: chain records and anti-entropy messages, admin
// events, node snapshots, MeshOS messages, node records. Each format is its
// own field list; this package gives them one set of primitives with one
// set of rules, so a bound or a canonical-form check is written once:
//
//   - the first error sticks and every later read returns a zero value, so
//     a decoder reads as a plain field list and checks once at the end;
//   - every error carries the byte offset and wraps both the caller's
//     domain error (chain.ErrCorrupt, command.ErrMalformed …) and one class
//     (ErrTruncated, ErrMalformed, ErrTooLarge, ErrTrailing);
//   - a length or count is checked against its bound and against the bytes
//     left before anything is allocated;
//   - every value has one encoding: varints must be minimal, bools 0 or 1,
//     enums in range, floats finite; Finish rejects trailing bytes.
//
// Writers append to the caller's buffer and refuse what a Reader would
// refuse, so a sender's bug is an error at the sender, not a silent drop.
package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// Error classes. ErrTruncated and ErrTrailing are kinds of ErrMalformed.
var (
	ErrMalformed = errors.New("malformed")
	ErrTooLarge  = errors.New("exceeds its bound")
	ErrTruncated = fmt.Errorf("%w: truncated", ErrMalformed)
	ErrTrailing  = fmt.Errorf("%w: trailing bytes", ErrMalformed)
)

// Error is a decode or encode failure at a byte offset.
type Error struct {
	Domain error // the format's own error (may be nil)
	Class  error // ErrTruncated, ErrMalformed, ErrTooLarge or ErrTrailing
	Off    int   // bytes consumed (or written) when it failed
	Detail string
}

func (e *Error) Error() string {
	if e.Domain == nil {
		return fmt.Sprintf("at byte %d: %s", e.Off, e.Detail)
	}
	return fmt.Sprintf("%v: at byte %d: %s", e.Domain, e.Off, e.Detail)
}

// Unwrap makes errors.Is match both the domain and the class.
func (e *Error) Unwrap() []error {
	if e.Domain == nil {
		return []error{e.Class}
	}
	return []error{e.Domain, e.Class}
}

// Reader decodes one buffer. The zero value reads nothing; use NewReader.
// It never copies: byte slices it returns alias the input.
type Reader struct {
	b      []byte
	off    int
	err    error
	domain error
}

// NewReader reads b; errors wrap domain.
func NewReader(b []byte, domain error) Reader { return Reader{b: b, domain: domain} }

// Err is the first error, or nil.
func (r *Reader) Err() error { return r.err }

// Off is the number of bytes consumed.
func (r *Reader) Off() int { return r.off }

// Len is the number of bytes left.
func (r *Reader) Len() int { return len(r.b) - r.off }

// Failf records a failure of class at the current offset (the first one
// sticks). Formats use it for their own semantic checks.
func (r *Reader) Failf(class error, format string, args ...any) {
	if r.err == nil {
		r.err = &Error{Domain: r.domain, Class: class, Off: r.off, Detail: fmt.Sprintf(format, args...)}
	}
}

// Fail records err (the first failure sticks), wrapped with the offset;
// for a format whose checks build their own error values.
func (r *Reader) Fail(err error) {
	if r.err == nil {
		r.err = &Error{Domain: r.domain, Class: err, Off: r.off, Detail: err.Error()}
	}
}

// Finish returns the first error, or ErrTrailing if bytes are left.
func (r *Reader) Finish() error {
	if r.err == nil && r.off != len(r.b) {
		r.Failf(ErrTrailing, "%d trailing bytes", len(r.b)-r.off)
	}
	return r.err
}

// Take returns the next n bytes without copying.
func (r *Reader) Take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.Failf(ErrTruncated, "need %d bytes, %d left", n, len(r.b)-r.off)
		return nil
	}
	p := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return p
}

func (r *Reader) U8() uint8 {
	if p := r.Take(1); p != nil {
		return p[0]
	}
	return 0
}

func (r *Reader) U16() uint16 {
	if p := r.Take(2); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (r *Reader) U32() uint32 {
	if p := r.Take(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (r *Reader) U64() uint64 {
	if p := r.Take(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

// Uvarint reads a minimally encoded unsigned varint.
func (r *Reader) Uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	switch {
	case n == 0:
		r.Failf(ErrTruncated, "varint cut short")
		return 0
	case n < 0:
		r.Failf(ErrMalformed, "varint overflows 64 bits")
		return 0
	case n > 1 && r.b[r.off+n-1] == 0:
		// A final zero byte adds nothing: one value, one encoding.
		r.Failf(ErrMalformed, "non-minimal varint")
		return 0
	}
	r.off += n
	return v
}

// Varint reads a minimally encoded zigzag varint (binary.AppendVarint's).
func (r *Reader) Varint() int64 {
	u := r.Uvarint()
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
	return v
}

// Bool reads one byte that must be 0 or 1.
func (r *Reader) Bool() bool {
	switch v := r.U8(); v {
	case 0:
		return false
	case 1:
		return true
	default:
		r.Failf(ErrMalformed, "bool is %d, not 0 or 1", v)
		return false
	}
}

// Enum reads one byte that must be below n.
func (r *Reader) Enum(what string, n uint8) uint8 {
	v := r.U8()
	if r.err == nil && v >= n {
		r.Failf(ErrMalformed, "%s %d out of range [0,%d)", what, v, n)
		return 0
	}
	return v
}

// F64 reads a big-endian IEEE 754 double that must be finite.
func (r *Reader) F64(what string) float64 {
	p := r.Take(8)
	if p == nil {
		return 0
	}
	v := math.Float64frombits(binary.BigEndian.Uint64(p))
	if math.IsNaN(v) || math.IsInf(v, 0) {
		r.Failf(ErrMalformed, "%s is not finite", what)
		return 0
	}
	return v
}

// Prefix is the width of a length prefix.
type Prefix uint8

const (
	PrefixU8      Prefix = 1
	PrefixU16     Prefix = 2
	PrefixU32     Prefix = 4
	PrefixUvarint Prefix = 0
)

func (r *Reader) length(p Prefix) uint64 {
	switch p {
	case PrefixU8:
		return uint64(r.U8())
	case PrefixU16:
		return uint64(r.U16())
	case PrefixU32:
		return uint64(r.U32())
	default:
		return r.Uvarint()
	}
}

// Bytes reads a length with prefix p, checks it against limit, then takes
// that many bytes (aliasing the input).
func (r *Reader) Bytes(p Prefix, limit int, what string) []byte {
	n := r.length(p)
	if r.err != nil {
		return nil
	}
	if n > uint64(limit) {
		r.Failf(ErrTooLarge, "%s is %d bytes, at most %d", what, n, limit)
		return nil
	}
	return r.Take(int(n))
}

// String is Bytes as a string (one allocation unless empty).
func (r *Reader) String(p Prefix, limit int, what string) string {
	return string(r.Bytes(p, limit, what))
}

// Text is String that must also be valid UTF-8.
func (r *Reader) Text(p Prefix, limit int, what string) string {
	b := r.Bytes(p, limit, what)
	if r.err == nil && !utf8.Valid(b) {
		r.Failf(ErrMalformed, "%s is not valid UTF-8", what)
		return ""
	}
	if r.err == nil {
		for _, c := range string(b) {
			if IsControl(c) {
				r.Failf(ErrMalformed, "%s contains control character %U", what, c)
				return ""
			}
		}
	}
	return string(b)
}

// IsControl reports whether c is a C0 or C1 control character or DEL:
// text from the wire ends up on operators' terminals, where an escape
// sequence would be a terminal-injection attack, so Text refuses them and
// writers replace them first.
func IsControl(c rune) bool {
	return c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0)
}

// Count reads a uvarint list length and checks it against limit and
// against the bytes left, each item needing at least minItemBytes, before
// the caller allocates for it.
func (r *Reader) Count(what string, limit, minItemBytes int) int {
	v := r.Uvarint()
	if r.err != nil {
		return 0
	}
	if v > uint64(limit) {
		r.Failf(ErrTooLarge, "%d %s, at most %d", v, what, limit)
		return 0
	}
	if left := uint64(len(r.b) - r.off); v*uint64(minItemBytes) > left {
		r.Failf(ErrTruncated, "%d %s cannot fit in %d bytes", v, what, left)
		return 0
	}
	return int(v)
}

// Writer appends to B. Its first error sticks; writes go on regardless, so
// an encoder reads as a field list and checks Err once.
type Writer struct {
	B      []byte
	err    error
	domain error
}

// NewWriter appends to b (which may be nil); errors wrap domain.
func NewWriter(b []byte, domain error) Writer { return Writer{B: b, domain: domain} }

// Err is the first error, or nil.
func (w *Writer) Err() error { return w.err }

// Failf records a failure of class (the first one sticks).
func (w *Writer) Failf(class error, format string, args ...any) {
	if w.err == nil {
		w.err = &Error{Domain: w.domain, Class: class, Off: len(w.B), Detail: fmt.Sprintf(format, args...)}
	}
}

func (w *Writer) U8(v uint8)       { w.B = append(w.B, v) }
func (w *Writer) U16(v uint16)     { w.B = binary.BigEndian.AppendUint16(w.B, v) }
func (w *Writer) U32(v uint32)     { w.B = binary.BigEndian.AppendUint32(w.B, v) }
func (w *Writer) U64(v uint64)     { w.B = binary.BigEndian.AppendUint64(w.B, v) }
func (w *Writer) Uvarint(v uint64) { w.B = binary.AppendUvarint(w.B, v) }
func (w *Writer) Varint(v int64)   { w.B = binary.AppendVarint(w.B, v) }
func (w *Writer) Raw(p []byte)     { w.B = append(w.B, p...) }

func (w *Writer) Bool(v bool) {
	if v {
		w.B = append(w.B, 1)
	} else {
		w.B = append(w.B, 0)
	}
}

// Enum writes v, failing if it is not below n.
func (w *Writer) Enum(what string, v, n uint8) {
	if v >= n {
		w.Failf(ErrMalformed, "%s %d out of range [0,%d)", what, v, n)
	}
	w.B = append(w.B, v)
}

// F64 writes v, failing if it is not finite.
func (w *Writer) F64(what string, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		w.Failf(ErrMalformed, "%s is not finite", what)
	}
	w.B = binary.BigEndian.AppendUint64(w.B, math.Float64bits(v))
}

func (w *Writer) length(p Prefix, n int) {
	switch p {
	case PrefixU8:
		w.U8(uint8(n))
	case PrefixU16:
		w.U16(uint16(n))
	case PrefixU32:
		w.U32(uint32(n))
	default:
		w.Uvarint(uint64(n))
	}
}

// prefixMax is the largest length prefix p can carry.
func prefixMax(p Prefix) int {
	switch p {
	case PrefixU8:
		return math.MaxUint8
	case PrefixU16:
		return math.MaxUint16
	case PrefixU32:
		return math.MaxUint32
	default:
		return math.MaxInt
	}
}

// Bytes writes a length with prefix p and then b, failing if b is over
// limit (or over what the prefix can carry).
func (w *Writer) Bytes(p Prefix, limit int, what string, b []byte) {
	if len(b) > min(limit, prefixMax(p)) {
		w.Failf(ErrTooLarge, "%s is %d bytes, at most %d", what, len(b), min(limit, prefixMax(p)))
	}
	w.length(p, len(b))
	w.B = append(w.B, b...)
}

// String is Bytes for a string.
func (w *Writer) String(p Prefix, limit int, what, s string) {
	if len(s) > min(limit, prefixMax(p)) {
		w.Failf(ErrTooLarge, "%s is %d bytes, at most %d", what, len(s), min(limit, prefixMax(p)))
	}
	w.length(p, len(s))
	w.B = append(w.B, s...)
}

// Text is String that must also be valid UTF-8.
func (w *Writer) Text(p Prefix, limit int, what, s string) {
	if !utf8.ValidString(s) {
		w.Failf(ErrMalformed, "%s is not valid UTF-8", what)
	}
	for _, c := range s {
		if IsControl(c) {
			w.Failf(ErrMalformed, "%s contains control character %U", what, c)
			break
		}
	}
	w.String(p, limit, what, s)
}

// Count writes a uvarint list length, failing if n is over limit.
func (w *Writer) Count(what string, n, limit int) {
	if n > limit {
		w.Failf(ErrTooLarge, "%d %s, at most %d", n, what, limit)
	}
	w.Uvarint(uint64(n))
}
