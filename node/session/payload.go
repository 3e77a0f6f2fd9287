package session

import (
	"errors"
	"fmt"

	"github.com/deck-mesh/deck/node/identity"
)

// PayloadSize is the exact size of the handshake payload carried by Noise
// messages 2 and 3: a version byte and the sender's signed node record.
const PayloadSize = 1 + identity.NodeRecordSize

// ErrPayload is returned for a malformed handshake payload.
var ErrPayload = errors.New("session: bad handshake payload")

// MarshalPayload encodes the handshake payload for rec.
func MarshalPayload(rec *identity.NodeRecord) []byte {
	b := make([]byte, 0, PayloadSize)
	b = append(b, PayloadVersion)
	return append(b, rec.Marshal()...)
}

// UnmarshalPayload decodes a handshake payload. It only parses: checking
// the record against the Noise static and its signature is verifyPeer's job.
func UnmarshalPayload(b []byte) (*identity.NodeRecord, error) {
	if len(b) != PayloadSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrPayload, len(b), PayloadSize)
	}
	if b[0] != PayloadVersion {
		return nil, fmt.Errorf("%w: version %d", ErrPayload, b[0])
	}
	rec, err := identity.UnmarshalNodeRecord(b[1:])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPayload, err)
	}
	return rec, nil
}
