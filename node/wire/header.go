// Package wire defines Deck's packet header and the binary codecs of the
// messages the transport itself exchanges (handshake bodies with their
// macs, cookie replies, heartbeats, route announcements, fragments). Every decoder here treats its input as
// hostile: lengths and counts are bounded before anything is allocated, and
// trailing bytes are an error.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/deck-mesh/deck/node/identity"
)

// Type is the packet type.
type Type uint8

const (
	TypeHandshakeInit  Type = 1 // Noise XX message 1 (-> e)
	TypeHandshakeResp  Type = 2 // Noise XX message 2 (<- e, ee, s, es)
	TypeHandshakeFinal Type = 3 // Noise XX message 3 (-> s, se, psk)
	TypeData           Type = 4 // encrypted session data
	TypeCookieReply    Type = 5 // a responder under load: retry message 1 with this cookie's mac2
)

func (t Type) String() string {
	switch t {
	case TypeHandshakeInit:
		return "hs-init"
	case TypeHandshakeResp:
		return "hs-resp"
	case TypeHandshakeFinal:
		return "hs-final"
	case TypeData:
		return "data"
	case TypeCookieReply:
		return "cookie-reply"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Flags modify how a data packet's payload is read.
type Flags uint8

const (
	// FlagFragment marks a payload that starts with a fragment header.
	FlagFragment Flags = 1 << 0

	knownFlags = FlagFragment
)

// Header is the fixed packet header. Layout (big-endian):
//
//	0  version  u8
//	1  type     u8
//	2  flags    u8
//	3  src      u64   originating node
//	11 dst      u64   final destination (0 only on a direct bootstrap handshake)
//	19 index    u32   receiver's session index (data) / 0 (handshakes)
//	23 counter  u64   AEAD nonce (data) / random tag (handshakes, for relay dedup)
//	31 channel  u16   messaging.Channel of a data packet
//	33 ttl      u8    hop budget
//
// TTL sits last so the associated data is one contiguous slice,
// b[:AssociatedDataSize], with no copy: relays change only that byte.
type Header struct {
	Version uint8
	Type    Type
	Flags   Flags
	Src     identity.NodeID
	Dst     identity.NodeID
	Index   uint32
	Counter uint64
	Channel uint16
	TTL     uint8
}

// Errors from Parse.
var (
	ErrShort   = errors.New("wire: packet too short")
	ErrVersion = errors.New("wire: unsupported version")
	ErrType    = errors.New("wire: unknown packet type")
	ErrFlags   = errors.New("wire: unknown flags")
	ErrLength  = errors.New("wire: bad length")
	ErrTrailer = errors.New("wire: trailing bytes")
	ErrValue   = errors.New("wire: bad value")
)

// Encode writes h into b[:HeaderSize]. It panics only on a short buffer,
// a programming error: callers size buffers from HeaderSize.
func (h *Header) Encode(b []byte) {
	_ = b[HeaderSize-1]
	b[0] = h.Version
	b[1] = byte(h.Type)
	b[2] = byte(h.Flags)
	binary.BigEndian.PutUint64(b[3:], uint64(h.Src))
	binary.BigEndian.PutUint64(b[11:], uint64(h.Dst))
	binary.BigEndian.PutUint32(b[19:], h.Index)
	binary.BigEndian.PutUint64(b[23:], h.Counter)
	binary.BigEndian.PutUint16(b[31:], h.Channel)
	b[33] = h.TTL
}

// Parse decodes the header at the front of b. The payload is b[HeaderSize:];
// Parse does not look at it.
func (h *Header) Parse(b []byte) error {
	if len(b) < HeaderSize {
		return fmt.Errorf("%w: %d bytes", ErrShort, len(b))
	}
	if b[0] != Version {
		return fmt.Errorf("%w: %d", ErrVersion, b[0])
	}
	t := Type(b[1])
	if t < TypeHandshakeInit || t > TypeCookieReply {
		return fmt.Errorf("%w: %d", ErrType, b[1])
	}
	f := Flags(b[2])
	if f&^knownFlags != 0 {
		return fmt.Errorf("%w: %#x", ErrFlags, b[2])
	}
	h.Version = b[0]
	h.Type = t
	h.Flags = f
	h.Src = identity.NodeID(binary.BigEndian.Uint64(b[3:]))
	h.Dst = identity.NodeID(binary.BigEndian.Uint64(b[11:]))
	h.Index = binary.BigEndian.Uint32(b[19:])
	h.Counter = binary.BigEndian.Uint64(b[23:])
	h.Channel = binary.BigEndian.Uint16(b[31:])
	h.TTL = b[33]
	return nil
}

// SetTTL rewrites the TTL of an encoded packet in place; relays use it
// without re-encoding the header.
func SetTTL(packet []byte, ttl uint8) { packet[HeaderSize-1] = ttl }

// AssociatedData is the part of an encoded packet the AEAD authenticates.
func AssociatedData(packet []byte) []byte { return packet[:AssociatedDataSize] }

// String is for debugging and logs.
func (h *Header) String() string {
	return fmt.Sprintf("v%d %s flags=%#x ttl=%d %s->%s idx=%d ctr=%d ch=%d",
		h.Version, h.Type, uint8(h.Flags), h.TTL, h.Src, h.Dst, h.Index, h.Counter, h.Channel)
}
