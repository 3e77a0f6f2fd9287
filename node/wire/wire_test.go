package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/deck-mesh/deck/node/identity"
)

func sampleHeader() Header {
	return Header{
		Version: Version, Type: TypeData, Flags: FlagFragment,
		Src: 0x0102030405060708, Dst: 0x1112131415161718,
		Index: 0xdeadbeef, Counter: 0x0123456789abcdef, Channel: 7, TTL: 9,
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	h := sampleHeader()
	var b [HeaderSize]byte
	h.Encode(b[:])
	var got Header
	if err := got.Parse(b[:]); err != nil {
		t.Fatal(err)
	}
	if got != h {
		t.Fatalf("got %v want %v", got.String(), h.String())
	}
	if b[HeaderSize-1] != 9 {
		t.Fatal("TTL is not the last byte")
	}
	SetTTL(b[:], 3)
	got.Parse(b[:])
	if got.TTL != 3 {
		t.Fatal("SetTTL did not change the TTL")
	}
	if len(AssociatedData(b[:])) != HeaderSize-1 {
		t.Fatal("associated data must be the header without the TTL")
	}
}

func TestHeaderParseRejects(t *testing.T) {
	h := sampleHeader()
	var good [HeaderSize]byte
	h.Encode(good[:])
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"short", good[:HeaderSize-1], ErrShort},
		{"version", mutate(good[:], 0, Version+1), ErrVersion},
		{"type 0", mutate(good[:], 1, 0), ErrType},
		{"type 6", mutate(good[:], 1, 6), ErrType},
		{"unknown flag", mutate(good[:], 2, 0x80), ErrFlags},
	}
	for _, tc := range tests {
		var got Header
		if err := got.Parse(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func mutate(b []byte, i int, v byte) []byte {
	c := bytes.Clone(b)
	c[i] = v
	return c
}

func TestHandshakeRoundTripAndRejects(t *testing.T) {
	in := Handshake{SenderIndex: 1, ReceiverIndex: 2, Noise: []byte("noise")}
	in.MAC1[0], in.MAC2[MACBytes-1] = 0xaa, 0xbb
	b := AppendHandshake(nil, &in)
	var out Handshake
	if err := ParseHandshake(b, &out); err != nil || out.SenderIndex != 1 || out.ReceiverIndex != 2 ||
		!bytes.Equal(out.Noise, in.Noise) || out.MAC1 != in.MAC1 || out.MAC2 != in.MAC2 {
		t.Fatalf("round trip: %v %+v", err, out)
	}
	for name, b := range map[string][]byte{
		"short":          b[:HandshakeFixedBytes],
		"no noise":       b[:HandshakeFixedBytes+HandshakeMACsBytes],
		"sender index 0": AppendHandshake(nil, &Handshake{ReceiverIndex: 2, Noise: []byte("x")}),
		"oversized":      AppendHandshake(nil, &Handshake{SenderIndex: 1, Noise: make([]byte, MaxHandshakeNoiseBytes+1)}),
	} {
		if err := ParseHandshake(b, &out); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// The largest handshake fits a packet exactly.
	if n := HeaderSize + len(AppendHandshake(nil, &Handshake{SenderIndex: 1, Noise: make([]byte, MaxHandshakeNoiseBytes)})); n != MaxPacketBytes {
		t.Fatalf("largest handshake packet is %d bytes, want %d", n, MaxPacketBytes)
	}
}

// TestHandshakeMACedCoversAllButTTLAndMACs pins what the macs cover: every
// byte of the packet but the TTL (relays rewrite it) and the macs
// themselves (mac2's input includes mac1).
func TestHandshakeMACedCoversAllButTTLAndMACs(t *testing.T) {
	h := sampleHeader()
	h.Type = TypeHandshakeInit
	pkt := make([]byte, HeaderSize)
	h.Encode(pkt)
	pkt = AppendHandshake(pkt, &Handshake{SenderIndex: 9, Noise: []byte("e-key")})
	ad, to1, to2, ok := HandshakeMACed(pkt)
	if !ok {
		t.Fatal("not a handshake packet")
	}
	if !bytes.Equal(ad, pkt[:HeaderSize-1]) {
		t.Fatal("associated data is not the header without the TTL")
	}
	if len(to1) != len(pkt)-HeaderSize-HandshakeMACsBytes || len(to2) != len(to1)+MACBytes {
		t.Fatalf("mac inputs of %d and %d bytes", len(to1), len(to2))
	}
	mac1, mac2 := HandshakeMACs(pkt)
	mac1[0], mac2[0] = 1, 2
	var got Handshake
	if err := ParseHandshake(pkt[HeaderSize:], &got); err != nil || got.MAC1[0] != 1 || got.MAC2[0] != 2 {
		t.Fatalf("macs written in place not parsed back: %v", err)
	}
	if _, _, _, ok := HandshakeMACed(pkt[:HeaderSize+HandshakeMACsBytes]); ok {
		t.Fatal("a packet too short for a handshake was split")
	}
}

func TestCookieReplyRoundTripAndRejects(t *testing.T) {
	in := CookieReply{ReceiverIndex: 7}
	in.Nonce[3], in.EncryptedCookie[31] = 4, 5
	b := AppendCookieReply(nil, &in)
	if len(b) != CookieReplyBytes {
		t.Fatalf("cookie reply of %d bytes, want %d", len(b), CookieReplyBytes)
	}
	var out CookieReply
	if err := ParseCookieReply(b, &out); err != nil || out != in {
		t.Fatalf("round trip: %v %+v", err, out)
	}
	for name, tc := range map[string]struct {
		b    []byte
		want error
	}{
		"short":            {b[:CookieReplyBytes-1], ErrShort},
		"trailing":         {append(bytes.Clone(b), 0), ErrTrailer},
		"receiver index 0": {AppendCookieReply(nil, &CookieReply{}), ErrValue},
	} {
		if err := ParseCookieReply(tc.b, &out); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
	// A reply never amplifies: it is smaller than the message 1 it answers
	// (whose Noise message is at least a 32-byte ephemeral key).
	if CookieReplyBytes >= HandshakeFixedBytes+32+HandshakeMACsBytes {
		t.Fatal("a cookie reply is not smaller than a message 1")
	}
}

func TestHeartbeatRoundTripAndRejects(t *testing.T) {
	in := Heartbeat{Seq: 7, SentNanos: 100, EchoNanos: 50, EchoHeldNs: 3}
	b := AppendHeartbeat(nil, &in)
	var out Heartbeat
	if err := ParseHeartbeat(b, &out); err != nil || out != in {
		t.Fatalf("round trip: %v %+v", err, out)
	}
	neg := AppendHeartbeat(nil, &Heartbeat{SentNanos: -1})
	for name, b := range map[string][]byte{
		"trailing": append(bytes.Clone(b), 0),
		"short":    b[:len(b)-1],
		"kind":     mutate(b, 0, byte(ControlAnnouncement)),
		"negative": neg,
	} {
		if err := ParseHeartbeat(b, &out); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestAnnouncementRoundTripAndRejects(t *testing.T) {
	in := Announcement{Routes: []Route{
		{Dest: 1, Seq: 10, MetricMicros: 0, Hops: 0},
		{Dest: 2, Seq: 11, MetricMicros: 300, Hops: 1, Addr: netip.MustParseAddrPort("127.0.0.1:4000")},
		{Dest: 3, Seq: 12, MetricMicros: MetricInfinity, Hops: 2, Addr: netip.MustParseAddrPort("[2001:db8::1]:5000"),
			Origin: OriginToken{Seq: 13, PublicKey: [32]byte{1, 2}, Signature: [64]byte{3, 4}}},
		{Dest: 4, Seq: 7, MetricMicros: 5, Hops: 1, Origin: OriginToken{Seq: 7, PublicKey: [32]byte{5}, Signature: [64]byte{6}}},
	}}
	b, err := AppendAnnouncement(nil, &in)
	if err != nil {
		t.Fatal(err)
	}
	var out Announcement
	if err := ParseAnnouncement(b, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Routes) != len(in.Routes) {
		t.Fatalf("%d routes", len(out.Routes))
	}
	for i := range in.Routes {
		if out.Routes[i] != in.Routes[i] {
			t.Fatalf("route %d: %+v want %+v", i, out.Routes[i], in.Routes[i])
		}
	}
	zeroDest, _ := AppendAnnouncement(nil, &Announcement{Routes: []Route{{Dest: 0}}})
	hugeCount := []byte{byte(ControlAnnouncement), AnnouncementVersion, 0xff, 0xff}
	first := announcementHeaderBytes // the first route's offset
	badAddrLen := mutate(b, first+routeFixedBytes-1, 5)
	badFlags := mutate(b, first+routeFixedBytes-2, 2)
	// The last route's token starts OriginTokenBytes from the end.
	tokenSeqZero := bytes.Clone(b)
	clear(tokenSeqZero[len(b)-OriginTokenBytes : len(b)-OriginTokenBytes+8])
	tooMany := Announcement{Routes: make([]Route, MaxOriginTokensPerAnnouncement+1)}
	for i := range tooMany.Routes {
		tooMany.Routes[i] = Route{Dest: identity.NodeID(i + 1), Origin: OriginToken{Seq: 1}}
	}
	if _, err := AppendAnnouncement(nil, &tooMany); err == nil {
		t.Error("encoder accepted more than MaxOriginTokensPerAnnouncement tokens")
	}
	tooMany.Routes = tooMany.Routes[:MaxOriginTokensPerAnnouncement]
	atCap, err := AppendAnnouncement(nil, &tooMany)
	if err != nil {
		t.Fatal(err)
	}
	if err := ParseAnnouncement(atCap, &out); err != nil {
		t.Fatalf("announcement with the most tokens: %v", err)
	}
	overCap := append(bytes.Clone(atCap), atCap[first:first+routeFixedBytes+OriginTokenBytes]...)
	binary.BigEndian.PutUint16(overCap[2:], MaxOriginTokensPerAnnouncement+1)
	for name, bb := range map[string][]byte{
		"trailing":         append(bytes.Clone(b), 0),
		"truncated":        b[:len(b)-1],
		"token truncated":  b[:len(b)-OriginTokenBytes/2],
		"zero destination": zeroDest,
		"count over cap":   hugeCount,
		"bad addr length":  badAddrLen,
		"unknown flags":    badFlags,
		"token for seq 0":  tokenSeqZero,
		"tokens over cap":  overCap,
		"kind":             mutate(b, 0, byte(ControlHeartbeat)),
		"version 1":        mutate(b, 1, 1),
		"version unknown":  mutate(b, 1, AnnouncementVersion+1),
	} {
		err := ParseAnnouncement(bb, &out)
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := AppendAnnouncement(nil, &Announcement{Routes: make([]Route, MaxAnnouncementEntries+1)}); err == nil {
		t.Error("encoder accepted more than MaxAnnouncementEntries")
	}
}

func TestFragmentParse(t *testing.T) {
	const total = 3*MaxFragmentBytes + 10
	mk := func(f Fragment, n int) []byte {
		b := make([]byte, FragmentHeaderSize+n)
		PutFragment(b, &f)
		return b
	}
	count := uint16(FragmentCount(total))
	tests := []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"first", mk(Fragment{1, total, 0, count}, MaxFragmentBytes), true},
		{"last", mk(Fragment{1, total, 3, count}, 10), true},
		{"last too long", mk(Fragment{1, total, 3, count}, 11), false},
		{"middle short", mk(Fragment{1, total, 1, count}, MaxFragmentBytes-1), false},
		{"index out of range", mk(Fragment{1, total, 4, count}, 10), false},
		{"count inconsistent", mk(Fragment{1, total, 0, count + 1}, MaxFragmentBytes), false},
		{"total zero", mk(Fragment{1, 0, 0, 0}, 0), false},
		{"total over max", mk(Fragment{1, MaxMessageBytes + 1, 0, uint16(FragmentCount(MaxMessageBytes + 1))}, MaxFragmentBytes), false},
		{"header only short", make([]byte, FragmentHeaderSize-1), false},
	}
	for _, tc := range tests {
		var f Fragment
		_, err := ParseFragment(tc.b, &f)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestConstantsAreConsistent(t *testing.T) {
	if HeaderSize+TagBytes+FragmentHeaderSize+MaxFragmentBytes != MaxPacketBytes {
		t.Fatal("a full fragment does not fill a packet exactly")
	}
	if MaxFragmentsPerMessage > 1<<16-1 {
		t.Fatal("fragment count does not fit u16")
	}
	if id := identity.NodeID(0); id.Valid() {
		t.Fatal("zero id valid")
	}
}

var sink Header

func BenchmarkHeaderEncode(b *testing.B) {
	h := sampleHeader()
	buf := make([]byte, HeaderSize)
	b.ReportAllocs()
	for b.Loop() {
		h.Encode(buf)
	}
}

func BenchmarkHeaderParse(b *testing.B) {
	h := sampleHeader()
	buf := make([]byte, HeaderSize)
	h.Encode(buf)
	b.ReportAllocs()
	for b.Loop() {
		if err := sink.Parse(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHeartbeatParse(b *testing.B) {
	buf := AppendHeartbeat(nil, &Heartbeat{Seq: 1, SentNanos: 2, EchoNanos: 3, EchoHeldNs: 4})
	var hb Heartbeat
	b.ReportAllocs()
	for b.Loop() {
		if err := ParseHeartbeat(buf, &hb); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLargestAnnouncementFitsOneMessage: the most routes, every one with
// the longest address, and the most tokens still make one message.
func TestLargestAnnouncementFitsOneMessage(t *testing.T) {
	a := Announcement{Routes: make([]Route, MaxAnnouncementEntries)}
	for i := range a.Routes {
		a.Routes[i] = Route{Dest: identity.NodeID(i + 1), Addr: netip.MustParseAddrPort("[2001:db8::1]:5000")}
		if i < MaxOriginTokensPerAnnouncement {
			a.Routes[i].Origin = OriginToken{Seq: 1}
		}
	}
	b, err := AppendAnnouncement(nil, &a)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxMessageBytes {
		t.Fatalf("largest announcement is %d bytes, over MaxMessageBytes %d", len(b), MaxMessageBytes)
	}
	t.Logf("largest announcement: %d bytes", len(b))
}
