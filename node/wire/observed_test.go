package wire

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

func TestObservedRoundTripAndRefusals(t *testing.T) {
	for _, s := range []string{"10.0.0.7:7946", "[fd00::7]:7946", "192.168.1.2:1"} {
		ap := netip.MustParseAddrPort(s)
		b := AppendObserved(nil, ap)
		got, err := ParseObserved(b)
		if err != nil || got != ap {
			t.Fatalf("%s: round trip gave %v, %v", s, got, err)
		}
		if k, err := ControlKindOf(b); err != nil || k != ControlObserved {
			t.Fatalf("%s: kind %v %v", s, k, err)
		}
	}
	if b := AppendObserved([]byte{9}, netip.AddrPort{}); !bytes.Equal(b, []byte{9}) {
		t.Fatalf("invalid address appended %x", b)
	}
	good := AppendObserved(nil, netip.MustParseAddrPort("10.0.0.7:7946"))
	mapped := append([]byte{byte(ControlObserved), 18}, netip.MustParseAddr("::ffff:10.0.0.7").AsSlice()...)
	mapped = append(mapped, 0x1f, 0x0a)
	for name, bad := range map[string][]byte{
		"empty":       nil,
		"kind":        {byte(ControlPending), 6, 10, 0, 0, 7, 0x1f, 0x0a},
		"short":       good[:len(good)-1],
		"trailing":    append(bytes.Clone(good), 0),
		"alen":        {byte(ControlObserved), 5, 10, 0, 0, 7, 0x1f},
		"port 0":      {byte(ControlObserved), 6, 10, 0, 0, 7, 0, 0},
		"unspecified": {byte(ControlObserved), 6, 0, 0, 0, 0, 0x1f, 0x0a},
		"v4 in v6":    mapped,
	} {
		if _, err := ParseObserved(bad); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !errors.Is(err, ErrType) && !errors.Is(err, ErrLength) && !errors.Is(err, ErrValue) {
			t.Errorf("%s: error class %v", name, err)
		}
	}
}

func FuzzObserved(f *testing.F) {
	f.Add(AppendObserved(nil, netip.MustParseAddrPort("10.0.0.7:7946")))
	f.Add(AppendObserved(nil, netip.MustParseAddrPort("[fd00::7]:7946")))
	f.Add([]byte{byte(ControlObserved), 6})
	f.Fuzz(func(t *testing.T, data []byte) {
		ap, err := ParseObserved(data)
		if err != nil {
			return
		}
		if !bytes.Equal(AppendObserved(nil, ap), data) {
			t.Fatal("re-encode mismatch")
		}
	})
}
