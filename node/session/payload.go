package session

import (
	"errors"
	"fmt"

	"github.com/deck-mesh/deck/node/codec"
	"github.com/deck-mesh/deck/node/identity"
)

// The handshake payload carried (encrypted) by Noise messages 2 and 3: a
// version byte, the sender's signed node record, and the sender's
// certificate (empty when it has none: it is then pending wherever a Trust
// asks for one).
//
//	version u8 | record [identity.NodeRecordSize] | cert length u16 | cert
const (
	// MaxPayloadSize bounds the payload: the record and the largest
	// certificate.
	MaxPayloadSize = 1 + identity.NodeRecordSize + 2 + identity.MaxCertificateSize
)

// ErrPayload is returned for a malformed handshake payload.
var ErrPayload = errors.New("session: bad handshake payload")

// Payload is a decoded handshake payload. Certificate is parsed, not
// verified: whether it makes the peer a member is the Trust's decision.
type Payload struct {
	Record      *identity.NodeRecord
	Certificate *identity.Certificate // nil: none presented
}

// MarshalPayload encodes the handshake payload for rec and cert (nil: none).
func MarshalPayload(rec *identity.NodeRecord, cert *identity.Certificate) ([]byte, error) {
	var cb []byte
	if cert != nil {
		var err error
		if cb, err = cert.Marshal(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrPayload, err)
		}
	}
	w := codec.NewWriter(make([]byte, 0, 1+identity.NodeRecordSize+2+len(cb)), ErrPayload)
	w.U8(PayloadVersion)
	w.Raw(rec.Marshal())
	w.Bytes(codec.PrefixU16, identity.MaxCertificateSize, "certificate", cb)
	if err := w.Err(); err != nil {
		return nil, err
	}
	return w.B, nil
}

// UnmarshalPayload decodes a handshake payload. It only parses: checking
// the record against the Noise static and its signature is verifyPeer's
// job, and the certificate the Trust's.
func UnmarshalPayload(b []byte) (*Payload, error) {
	if len(b) > MaxPayloadSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrPayload, len(b), MaxPayloadSize)
	}
	r := codec.NewReader(b, ErrPayload)
	if v := r.U8(); r.Err() == nil && v != PayloadVersion {
		r.Failf(codec.ErrMalformed, "version %d", v)
	}
	recBytes := r.Take(identity.NodeRecordSize)
	cb := r.Bytes(codec.PrefixU16, identity.MaxCertificateSize, "certificate")
	if err := r.Finish(); err != nil {
		return nil, err
	}
	rec, err := identity.UnmarshalNodeRecord(recBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPayload, err)
	}
	p := &Payload{Record: rec}
	if len(cb) > 0 {
		if p.Certificate, err = identity.UnmarshalCertificate(cb); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrPayload, err)
		}
	}
	return p, nil
}
