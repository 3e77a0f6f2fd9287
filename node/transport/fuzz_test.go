package transport

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/wire"
)

// FuzzReassembly drives one peer's reassembler with an arbitrary sequence
// of fragments (each record: 12-byte fragment header, 2-byte data length,
// data) under small bounds: nothing may panic, the bounds must hold, and
// any message it completes must have exactly its declared length.
func FuzzReassembly(f *testing.F) {
	rec := func(id, total uint32, idx, count uint16, n int) []byte {
		b := make([]byte, wire.FragmentHeaderSize+2+n)
		wire.PutFragment(b, &wire.Fragment{MessageID: id, Total: total, Index: idx, Count: count})
		binary.BigEndian.PutUint16(b[wire.FragmentHeaderSize:], uint16(n))
		return b
	}
	total := uint32(wire.MaxFragmentBytes + 5)
	var seed []byte
	seed = append(seed, rec(1, total, 1, 2, 5)...)
	seed = append(seed, rec(1, total, 0, 2, wire.MaxFragmentBytes)...)
	f.Add(seed)
	f.Add(rec(2, 10, 0, 1, 10))
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := reassemblyLimits{maxMessages: 2, maxBytes: 3 * wire.MaxFragmentBytes, timeout: time.Second}
		var r reassembler
		now := time.Unix(0, 0)
		for len(data) >= wire.FragmentHeaderSize+2 {
			n := int(binary.BigEndian.Uint16(data[wire.FragmentHeaderSize:]))
			payload := append([]byte(nil), data[:wire.FragmentHeaderSize]...)
			data = data[wire.FragmentHeaderSize+2:]
			n = min(n, len(data))
			payload = append(payload, data[:n]...)
			data = data[n:]
			now = now.Add(100 * time.Millisecond)
			var fr wire.Fragment
			d, err := wire.ParseFragment(payload, &fr)
			if err != nil {
				continue
			}
			msg, err := r.add(now, lim, &fr, d, false)
			if err == nil && msg != nil && len(msg) != int(fr.Total) {
				t.Fatalf("completed %d bytes, declared %d", len(msg), fr.Total)
			}
			if len(r.msgs) > lim.maxMessages || r.bytes > lim.maxBytes {
				t.Fatalf("bounds broken: %d msgs, %d bytes", len(r.msgs), r.bytes)
			}
		}
	})
}

// FuzzHandlePacket feeds arbitrary datagrams to a live node's read loop
// handler (a batch of one): nothing from the wire may panic it.
func FuzzHandlePacket(f *testing.F) {
	tr, err := New(testConfig(f, nil))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { tr.Close() })
	tr.cfg.Logf = func(string, ...any) {}
	h := wire.Header{Version: wire.Version, Type: wire.TypeData, Src: 5, Dst: tr.Self(), TTL: wire.DefaultTTL}
	pkt := make([]byte, wire.HeaderSize+20)
	h.Encode(pkt)
	f.Add(pkt)
	h.Type, h.Dst = wire.TypeHandshakeInit, 0
	h.Encode(pkt)
	f.Add(sealedHandshake(testPSK, h, wire.Handshake{SenderIndex: 1, Noise: make([]byte, 32)}, nil))
	cookie := [wire.CookieBytes]byte{1}
	f.Add(sealedHandshake(testPSK, h, wire.Handshake{SenderIndex: 2, Noise: make([]byte, 32)}, &cookie))
	h.Type, h.Dst = wire.TypeCookieReply, tr.Self()
	h.Encode(pkt)
	f.Add(wire.AppendCookieReply(pkt[:wire.HeaderSize:wire.HeaderSize], &wire.CookieReply{ReceiverIndex: 1}))
	h.Type, h.Dst = wire.TypeData, 99 // for someone else: relay path
	h.Encode(pkt)
	f.Add(pkt)
	from := netip.MustParseAddrPort("127.0.0.1:9")
	rb := newReadBatch(1)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > wire.MaxPacketBytes+1 {
			return // the read buffer's size: a socket truncates to it
		}
		receive(tr, rb, from, data)
	})
}
