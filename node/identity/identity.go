// Package identity holds the ed25519 keys that name nodes and operators, the
// NodeID derived from them, the signed node record that binds a node's X25519
// Noise static key to its ed25519 identity, and atomic 0600 key files.
package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/blake2b"
)

// NodeID names a node (or an operator) on the mesh: the first 8 bytes of
// BLAKE2b-256 of its ed25519 public key, big-endian. Zero is never valid, so a
// zeroed field on the wire can never alias a real node.
type NodeID uint64

// ErrZeroID is returned when an id derives to, or arrives as, zero.
var ErrZeroID = errors.New("identity: node id 0 is invalid")

// IDFromPublicKey derives the NodeID of an ed25519 public key.
func IDFromPublicKey(pub ed25519.PublicKey) NodeID {
	sum := blake2b.Sum256(pub)
	return NodeID(binary.BigEndian.Uint64(sum[:8]))
}

// Valid reports whether id can name a node.
func (id NodeID) Valid() bool { return id != 0 }

// String is the canonical short hex form used on screen and in JSON ("0x…").
func (id NodeID) String() string { return fmt.Sprintf("0x%016x", uint64(id)) }

// Short is the 6-hex-digit form the deck uses in dense tables.
func (id NodeID) Short() string { return fmt.Sprintf("%06x", uint64(id)>>40) }

// ParseNodeID accepts "0x…" hex (full or any length) or a decimal u64.
func ParseNodeID(s string) (NodeID, error) {
	s = strings.TrimSpace(s)
	var v uint64
	var err error
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		v, err = strconv.ParseUint(s[2:], 16, 64)
	} else {
		v, err = strconv.ParseUint(s, 10, 64)
	}
	if err != nil {
		return 0, fmt.Errorf("identity: bad node id %q: %w", s, err)
	}
	if v == 0 {
		return 0, ErrZeroID
	}
	return NodeID(v), nil
}

// Key is an ed25519 signing identity (a node's or an operator's).
type Key struct {
	Private ed25519.PrivateKey
	Public  ed25519.PublicKey
	ID      NodeID
}

// Generate makes a fresh key whose id is non-zero.
func Generate() (*Key, error) {
	for {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("identity: generate: %w", err)
		}
		if id := IDFromPublicKey(pub); id.Valid() {
			return &Key{Private: priv, Public: pub, ID: id}, nil
		}
	}
}

// FromSeed rebuilds a key from its 32-byte ed25519 seed.
func FromSeed(seed []byte) (*Key, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("identity: seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	id := IDFromPublicKey(pub)
	if !id.Valid() {
		return nil, ErrZeroID
	}
	return &Key{Private: priv, Public: pub, ID: id}, nil
}

// Sign signs msg with the key.
func (k *Key) Sign(msg []byte) []byte { return ed25519.Sign(k.Private, msg) }

// Signer is anything that can produce an ed25519 signature for an operator or
// node id: a local key file, or (for SSH consoles) a forwarded agent.
type Signer interface {
	SignerID() NodeID
	PublicKey() ed25519.PublicKey
	Sign(msg []byte) ([]byte, error)
}

// KeySigner adapts a Key to Signer.
type KeySigner struct{ K *Key }

func (s KeySigner) SignerID() NodeID                { return s.K.ID }
func (s KeySigner) PublicKey() ed25519.PublicKey    { return s.K.Public }
func (s KeySigner) Sign(msg []byte) ([]byte, error) { return s.K.Sign(msg), nil }

// Verify checks sig over msg by pub and that pub derives to the claimed id.
// Both checks matter: a valid signature by some other key must not let a
// sender claim a victim's id (the seed project's forged-node-id bug).
func Verify(claimed NodeID, pub ed25519.PublicKey, msg, sig []byte) error {
	if !claimed.Valid() {
		return ErrZeroID
	}
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("identity: public key is %d bytes", len(pub))
	}
	if IDFromPublicKey(pub) != claimed {
		return fmt.Errorf("identity: id %s is not derived from the signing key", claimed)
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, msg, sig) {
		return errors.New("identity: bad signature")
	}
	return nil
}
