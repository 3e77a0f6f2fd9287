package wire

import (
	"encoding/binary"
	"fmt"
)

// Handshake is the body of a handshake packet: the sender's session index
// (where replies and data must be addressed), the receiver's index (0 on the
// first message) and the Noise message itself.
type Handshake struct {
	SenderIndex   uint32
	ReceiverIndex uint32
	Noise         []byte // aliases the decoded buffer
}

// AppendHandshake appends the encoded body to b.
func AppendHandshake(b []byte, h *Handshake) []byte {
	b = binary.BigEndian.AppendUint32(b, h.SenderIndex)
	b = binary.BigEndian.AppendUint32(b, h.ReceiverIndex)
	return append(b, h.Noise...)
}

// ParseHandshake decodes a handshake body; Noise aliases b.
func ParseHandshake(b []byte, h *Handshake) error {
	if len(b) < HandshakeFixedBytes+1 {
		return fmt.Errorf("%w: handshake body of %d bytes", ErrShort, len(b))
	}
	if n := len(b) - HandshakeFixedBytes; n > MaxHandshakeNoiseBytes {
		return fmt.Errorf("%w: handshake noise message of %d bytes", ErrLength, n)
	}
	h.SenderIndex = binary.BigEndian.Uint32(b[0:])
	h.ReceiverIndex = binary.BigEndian.Uint32(b[4:])
	if h.SenderIndex == 0 {
		return fmt.Errorf("%w: sender index 0", ErrValue)
	}
	h.Noise = b[HandshakeFixedBytes:]
	return nil
}
