package wire

import (
	"bytes"
	"net/netip"
	"testing"
)

// Every decoder gets a fuzz target: no input may panic, and whatever
// decodes must re-encode to the same bytes (so nothing is silently
// dropped or invented).

func FuzzHeader(f *testing.F) {
	h := sampleHeader()
	var b [HeaderSize]byte
	h.Encode(b[:])
	f.Add(b[:])
	f.Add([]byte{Version, byte(TypeHandshakeInit)})
	f.Fuzz(func(t *testing.T, data []byte) {
		var h Header
		if h.Parse(data) != nil {
			return
		}
		var out [HeaderSize]byte
		h.Encode(out[:])
		if !bytes.Equal(out[:], data[:HeaderSize]) {
			t.Fatalf("re-encode mismatch")
		}
		_ = h.String()
	})
}

func FuzzHandshake(f *testing.F) {
	f.Add(AppendHandshake(nil, &Handshake{SenderIndex: 1, ReceiverIndex: 2, Noise: make([]byte, 32)}))
	withMACs := Handshake{SenderIndex: 3, Noise: make([]byte, 32)}
	for i := range withMACs.MAC1 {
		withMACs.MAC1[i], withMACs.MAC2[i] = byte(i), byte(0xf0|i)
	}
	f.Add(AppendHandshake(nil, &withMACs))
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var h Handshake
		if ParseHandshake(data, &h) != nil {
			return
		}
		if !bytes.Equal(AppendHandshake(nil, &h), data) {
			t.Fatal("re-encode mismatch")
		}
	})
}

func FuzzCookieReply(f *testing.F) {
	c := CookieReply{ReceiverIndex: 0x01020304}
	for i := range c.Nonce {
		c.Nonce[i] = byte(i)
	}
	f.Add(AppendCookieReply(nil, &c))
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var c CookieReply
		if ParseCookieReply(data, &c) != nil {
			return
		}
		if !bytes.Equal(AppendCookieReply(nil, &c), data) {
			t.Fatal("re-encode mismatch")
		}
	})
}

func FuzzHeartbeat(f *testing.F) {
	f.Add(AppendHeartbeat(nil, &Heartbeat{Seq: 1, SentNanos: 2, EchoNanos: 3, EchoHeldNs: 4}))
	f.Add([]byte{byte(ControlHeartbeat)})
	f.Fuzz(func(t *testing.T, data []byte) {
		var h Heartbeat
		if ParseHeartbeat(data, &h) != nil {
			return
		}
		if !bytes.Equal(AppendHeartbeat(nil, &h), data) {
			t.Fatal("re-encode mismatch")
		}
	})
}

func FuzzAnnouncement(f *testing.F) {
	b, _ := AppendAnnouncement(nil, &Announcement{Routes: []Route{{Dest: 1, Seq: 2, MetricMicros: 3, Hops: 1}}})
	f.Add(b)
	f.Add([]byte{byte(ControlAnnouncement), AnnouncementVersion, 0xff, 0xff})
	tok := OriginToken{Seq: 9, PublicKey: [32]byte{1}, Signature: [64]byte{2}}
	b, _ = AppendAnnouncement(nil, &Announcement{Routes: []Route{
		{Dest: 1, Seq: 9, Origin: tok},
		{Dest: 2, Seq: 4, MetricMicros: 3, Hops: 1, Addr: netip.MustParseAddrPort("10.0.0.1:7"), Origin: tok},
		{Dest: 3, Seq: 5, MetricMicros: MetricInfinity, Hops: 2},
	}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var a Announcement
		if ParseAnnouncement(data, &a) != nil {
			return
		}
		if len(a.Routes) > MaxAnnouncementEntries {
			t.Fatal("cap exceeded")
		}
		out, err := AppendAnnouncement(nil, &a)
		if err != nil {
			t.Fatal(err)
		}
		// IPv4-mapped IPv6 addresses are normalised to IPv4, so compare by
		// decoding again rather than byte for byte.
		var a2 Announcement
		if err := ParseAnnouncement(out, &a2); err != nil || len(a2.Routes) != len(a.Routes) {
			t.Fatalf("re-decode: %v", err)
		}
		for i := range a.Routes {
			if a.Routes[i] != a2.Routes[i] {
				t.Fatalf("route %d changed", i)
			}
		}
	})
}

func FuzzControlKind(f *testing.F) {
	f.Add([]byte{byte(ControlConfirm)})
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ControlKindOf(data)
		if err == nil && k == ControlConfirm {
			_ = ParseConfirm(data)
		}
	})
}

func FuzzFragment(f *testing.F) {
	b := make([]byte, FragmentHeaderSize+10)
	PutFragment(b, &Fragment{MessageID: 1, Total: 10, Index: 0, Count: 1})
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var fr Fragment
		d, err := ParseFragment(data, &fr)
		if err != nil {
			return
		}
		if len(d) != FragmentLen(int(fr.Total), int(fr.Index)) || fr.Index >= fr.Count {
			t.Fatal("accepted an inconsistent fragment")
		}
	})
}
