package wire

import (
	"encoding/binary"
	"fmt"
)

// Handshake is the body of a handshake packet (types 1–3). Layout
// (big-endian):
//
//	0      sender index    u32  where replies and data must be addressed
//	4      receiver index  u32  0 on message 1
//	8      noise           the Noise message, 1..MaxHandshakeNoiseBytes
//	n-32   mac1            [MACBytes]
//	n-16   mac2            [MACBytes]
//
// The macs are WireGuard's (whitepaper §5.4.4), keyed for XX: mac1 is a
// keyed BLAKE2s-128 under a key derived from the cluster PSK, over the
// packet's associated data (the header without its TTL) and the body up to
// mac1; mac2 is keyed with a cookie from a cookie reply, over the same
// bytes up to mac2, and zero when the sender holds no cookie. Both are
// computed by package transport over the encoded packet; the codec only
// places them.
type Handshake struct {
	SenderIndex   uint32
	ReceiverIndex uint32
	Noise         []byte // aliases the decoded buffer
	MAC1, MAC2    [MACBytes]byte
}

// AppendHandshake appends the encoded body to b.
func AppendHandshake(b []byte, h *Handshake) []byte {
	b = binary.BigEndian.AppendUint32(b, h.SenderIndex)
	b = binary.BigEndian.AppendUint32(b, h.ReceiverIndex)
	b = append(b, h.Noise...)
	b = append(b, h.MAC1[:]...)
	return append(b, h.MAC2[:]...)
}

// ParseHandshake decodes a handshake body; Noise aliases b.
func ParseHandshake(b []byte, h *Handshake) error {
	if len(b) < HandshakeFixedBytes+1+HandshakeMACsBytes {
		return fmt.Errorf("%w: handshake body of %d bytes", ErrShort, len(b))
	}
	if n := len(b) - HandshakeFixedBytes - HandshakeMACsBytes; n > MaxHandshakeNoiseBytes {
		return fmt.Errorf("%w: handshake noise message of %d bytes", ErrLength, n)
	}
	h.SenderIndex = binary.BigEndian.Uint32(b[0:])
	h.ReceiverIndex = binary.BigEndian.Uint32(b[4:])
	if h.SenderIndex == 0 {
		return fmt.Errorf("%w: sender index 0", ErrValue)
	}
	macs := len(b) - HandshakeMACsBytes
	h.Noise = b[HandshakeFixedBytes:macs]
	copy(h.MAC1[:], b[macs:])
	copy(h.MAC2[:], b[macs+MACBytes:])
	return nil
}

// HandshakeMACed splits an encoded handshake packet (header included) into
// the parts its macs cover: the associated data (the header without the
// TTL, which relays rewrite) and the body up to mac1 (mac1's input) or up to
// mac2 (mac2's input, which includes mac1). ok is false when pkt is too
// short to be a handshake packet.
func HandshakeMACed(pkt []byte) (ad, bodyToMAC1, bodyToMAC2 []byte, ok bool) {
	if len(pkt) < HeaderSize+HandshakeFixedBytes+1+HandshakeMACsBytes {
		return nil, nil, nil, false
	}
	n := len(pkt)
	return pkt[:AssociatedDataSize], pkt[HeaderSize : n-HandshakeMACsBytes], pkt[HeaderSize : n-MACBytes], true
}

// HandshakeMACs returns the mac1 and mac2 fields of an encoded handshake
// packet, aliasing pkt (callers write them in place after encoding). pkt
// must be at least HandshakeMACsBytes long.
func HandshakeMACs(pkt []byte) (mac1, mac2 []byte) {
	n := len(pkt)
	return pkt[n-HandshakeMACsBytes : n-MACBytes], pkt[n-MACBytes:]
}

// CookieReply is the body of a cookie reply (type 5), WireGuard's message
// of that name (whitepaper §5.4.7): a responder under load answers a
// message 1 that lacks a valid mac2 with a cookie instead of handshake
// state. Layout (big-endian):
//
//	0   receiver index    u32  the sender index of the message 1 answered
//	4   nonce             [CookieNonceBytes]  random XChaCha20-Poly1305 nonce
//	28  encrypted cookie  [CookieBytes + TagBytes]
//
// The cookie is sealed under a key derived from the cluster PSK with the
// answered message's mac1 as associated data, so only a holder of the PSK
// who saw that message 1 could have made the reply.
type CookieReply struct {
	ReceiverIndex   uint32
	Nonce           [CookieNonceBytes]byte
	EncryptedCookie [CookieBytes + TagBytes]byte
}

// AppendCookieReply appends the encoded body to b.
func AppendCookieReply(b []byte, c *CookieReply) []byte {
	b = binary.BigEndian.AppendUint32(b, c.ReceiverIndex)
	b = append(b, c.Nonce[:]...)
	return append(b, c.EncryptedCookie[:]...)
}

// ParseCookieReply decodes a cookie reply body, which has exactly
// CookieReplyBytes.
func ParseCookieReply(b []byte, c *CookieReply) error {
	if len(b) < CookieReplyBytes {
		return fmt.Errorf("%w: cookie reply of %d bytes", ErrShort, len(b))
	}
	if len(b) > CookieReplyBytes {
		return fmt.Errorf("%w: cookie reply of %d bytes", ErrTrailer, len(b))
	}
	c.ReceiverIndex = binary.BigEndian.Uint32(b)
	if c.ReceiverIndex == 0 {
		return fmt.Errorf("%w: receiver index 0", ErrValue)
	}
	copy(c.Nonce[:], b[4:])
	copy(c.EncryptedCookie[:], b[4+CookieNonceBytes:])
	return nil
}
