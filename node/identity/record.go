package identity

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
)

// NodeRecordPrefix separates node-record signatures from every other kind of
// signature a node key makes.
const NodeRecordPrefix = "deck-node-record-v1:"

// NodeRecordSize is the fixed encoded size of a NodeRecord.
const NodeRecordSize = 8 + 32 + 32 + 8 + 64

// NodeRecord binds a node's X25519 Noise static key to its ed25519 identity.
// It travels in the handshake payload; the receiver checks that the Noise peer
// static equals NoiseStatic before trusting anything else in it.
type NodeRecord struct {
	ID          NodeID
	SigningKey  ed25519.PublicKey // 32 bytes
	NoiseStatic [32]byte          // X25519 public key
	IssuedAtMs  int64
	Signature   []byte // 64 bytes over NodeRecordPrefix || fields
}

func (r *NodeRecord) signedBytes() []byte {
	b := make([]byte, 0, len(NodeRecordPrefix)+8+32+32+8)
	b = append(b, NodeRecordPrefix...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.ID))
	b = append(b, r.SigningKey...)
	b = append(b, r.NoiseStatic[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.IssuedAtMs))
	return b
}

// NewNodeRecord signs a record for k binding noiseStatic.
func NewNodeRecord(k *Key, noiseStatic [32]byte, issuedAtMs int64) *NodeRecord {
	r := &NodeRecord{ID: k.ID, SigningKey: k.Public, NoiseStatic: noiseStatic, IssuedAtMs: issuedAtMs}
	r.Signature = k.Sign(r.signedBytes())
	return r
}

// Verify checks the id is non-zero and derived from SigningKey, and the
// signature is by SigningKey.
func (r *NodeRecord) Verify() error {
	if len(r.SigningKey) != ed25519.PublicKeySize {
		return errors.New("identity: node record signing key has wrong size")
	}
	return Verify(r.ID, r.SigningKey, r.signedBytes(), r.Signature)
}

// Marshal encodes the record in its fixed layout.
func (r *NodeRecord) Marshal() []byte {
	b := make([]byte, 0, NodeRecordSize)
	b = binary.BigEndian.AppendUint64(b, uint64(r.ID))
	b = append(b, r.SigningKey...)
	b = append(b, r.NoiseStatic[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.IssuedAtMs))
	b = append(b, r.Signature...)
	return b
}

// UnmarshalNodeRecord decodes exactly NodeRecordSize bytes; anything else,
// including trailing bytes, is an error.
func UnmarshalNodeRecord(b []byte) (*NodeRecord, error) {
	if len(b) != NodeRecordSize {
		return nil, fmt.Errorf("identity: node record is %d bytes, want %d", len(b), NodeRecordSize)
	}
	r := &NodeRecord{}
	r.ID = NodeID(binary.BigEndian.Uint64(b[0:8]))
	r.SigningKey = ed25519.PublicKey(append([]byte(nil), b[8:40]...))
	copy(r.NoiseStatic[:], b[40:72])
	r.IssuedAtMs = int64(binary.BigEndian.Uint64(b[72:80]))
	r.Signature = append([]byte(nil), b[80:144]...)
	return r, nil
}
