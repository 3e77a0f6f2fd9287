package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestPendingRoundTripAndRefusals(t *testing.T) {
	b := AppendPending(nil, "no certificate")
	if r, err := ParsePending(b); err != nil || r != "no certificate" {
		t.Fatalf("round trip: %q %v", r, err)
	}
	long := AppendPending(nil, strings.Repeat("é", MaxPendingReasonBytes))
	if r, err := ParsePending(long); err != nil || len(r) > MaxPendingReasonBytes {
		t.Fatalf("long reason: %d bytes, %v", len(r), err)
	}
	for name, bad := range map[string][]byte{
		"empty":    nil,
		"kind":     {byte(ControlConfirm), 0},
		"short":    {byte(ControlPending), 5, 'a'},
		"trailing": append(AppendPending(nil, "x"), 0),
		"escape":   AppendPending(nil, "\x1b[2J"),
		"utf8":     {byte(ControlPending), 1, 0xff},
	} {
		if _, err := ParsePending(bad); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !errors.Is(err, ErrType) && !errors.Is(err, ErrLength) && !errors.Is(err, ErrValue) {
			t.Errorf("%s: error class %v", name, err)
		}
	}
	if k, err := ControlKindOf(b); err != nil || k != ControlPending {
		t.Fatalf("kind: %v %v", k, err)
	}
}

func FuzzPending(f *testing.F) {
	f.Add(AppendPending(nil, "no certificate and no admission in the ledger"))
	f.Add([]byte{byte(ControlPending), 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParsePending(data)
		if err != nil {
			return
		}
		if !bytes.Equal(AppendPending(nil, r), data) {
			t.Fatal("re-encode mismatch")
		}
	})
}
