package wire

// Every number a reviewer cares about on the wire lives here.
const (
	// Version is the only header version this build speaks; anything else is
	// dropped before it is parsed further. 2: handshake bodies end in
	// mac1/mac2 and type 5 is the cookie reply (issue 12); a version 1 node
	// could not complete a handshake with a version 2 one, so its packets are
	// refused at the header rather than as mac failures.
	Version = 2

	// HeaderSize is the fixed size of the packet header in bytes.
	HeaderSize = 34

	// AssociatedDataSize is the part of the header the AEAD authenticates:
	// everything but the trailing TTL byte, which relays decrement.
	AssociatedDataSize = HeaderSize - 1

	// TagBytes is the ChaCha20-Poly1305 authenticator appended to every
	// encrypted payload.
	TagBytes = 16

	// MaxPacketBytes bounds one UDP datagram we send or accept. 1400 stays
	// under common path MTUs (1500 minus IP/UDP and tunnel overheads) so IP
	// fragmentation never enters the picture.
	MaxPacketBytes = 1400

	// MaxPlaintextBytes is the largest payload one data packet can carry.
	MaxPlaintextBytes = MaxPacketBytes - HeaderSize - TagBytes

	// FragmentHeaderSize is the fragment prefix inside the encrypted payload.
	FragmentHeaderSize = 12

	// MaxFragmentBytes is the message data carried by every fragment but the
	// last; fixed by the protocol so the receiver can check each fragment's
	// length exactly instead of trusting a sender-chosen size.
	MaxFragmentBytes = MaxPlaintextBytes - FragmentHeaderSize

	// MaxMessageBytes mirrors messaging.MaxMessageBytes (256 KiB); duplicated so
	// wire does not import mesh.
	MaxMessageBytes = 256 << 10

	// MaxFragmentsPerMessage is how many fragments the largest message needs.
	MaxFragmentsPerMessage = (MaxMessageBytes + MaxFragmentBytes - 1) / MaxFragmentBytes

	// DefaultTTL is the hop budget a packet starts with; a relay decrements
	// it and drops the packet at zero, so routing loops die quickly.
	DefaultTTL = 16

	// MaxHandshakeNoiseBytes bounds the Noise message inside a handshake
	// packet (XX messages with a 145-byte payload are under 300 bytes).
	MaxHandshakeNoiseBytes = MaxPacketBytes - HeaderSize - HandshakeFixedBytes - HandshakeMACsBytes

	// MACBytes is the size of each handshake mac (keyed BLAKE2s-128, as
	// WireGuard's mac1 and mac2), and HandshakeMACsBytes the two of them
	// at the end of every handshake body.
	MACBytes           = 16
	HandshakeMACsBytes = 2 * MACBytes

	// CookieBytes is the size of a cookie (a keyed BLAKE2s-128 of the
	// initiator's address) and CookieNonceBytes the XChaCha20-Poly1305
	// nonce it is sealed with.
	CookieBytes      = 16
	CookieNonceBytes = 24

	// CookieReplyBytes is the exact size of a cookie reply body: receiver
	// index, nonce, sealed cookie. With the header it is smaller than the
	// smallest message 1 it answers, so a reply never amplifies.
	CookieReplyBytes = 4 + CookieNonceBytes + CookieBytes + TagBytes

	// HandshakeFixedBytes is the sender+receiver index prefix of a
	// handshake body.
	HandshakeFixedBytes = 8

	// MaxAnnouncementEntries caps the routes one announcement may carry, so a
	// neighbour cannot make us allocate an unbounded table.
	MaxAnnouncementEntries = 4096

	// MaxAddrBytes is the largest encoded address (16-byte IPv6 + port).
	MaxAddrBytes = 18

	// OriginTokenBytes is an encoded origin token: sequence number, ed25519
	// public key, signature.
	OriginTokenBytes = 8 + 32 + 64

	// MaxOriginTokensPerAnnouncement caps the origin tokens one announcement
	// carries: as many as fit beside MaxAnnouncementEntries routes with the
	// largest addresses, so the largest announcement is still one message
	// (≤ MaxMessageBytes). It is 905; a mesh with more routes than that
	// sends a different subset of tokens each round.
	MaxOriginTokensPerAnnouncement = (MaxMessageBytes - announcementHeaderBytes -
		MaxAnnouncementEntries*(routeFixedBytes+MaxAddrBytes)) / OriginTokenBytes
)
