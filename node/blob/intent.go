package blob

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/deck-mesh/deck/node/codec"
	"github.com/deck-mesh/deck/node/identity"
)

// An Intent is an operator's signed word on one blob: how many datafort
// nodes should hold it, whether it is pinned (never shed, its chunks never
// collected), whether it was removed, what it was derived from and its
// name. It travels with the blob (every replica holds the newest one), so
// it is checked wherever the blob goes; the newest by (IssuedAt, signature)
// wins, on every node alike. Blob intents are not admin-ledger events (see
// ARCHITECTURE.md "Dataforts" for why).
//
//	payload = "deck-blob-intent-v1:" || body
//	body    = version(1) blob(32) replicas(1) flags(1) parent(32)
//	          name(uvarint-prefixed UTF-8) issued_at_ms(zigzag varint) operator(8)
//	wire    = body || ed25519 signature(64)
type Intent struct {
	Blob     Hash
	Replicas int // desired holders, 1..MaxReplicas; 0 when Removed
	Pinned   bool
	Removed  bool
	Parent   Hash // the blob this one was derived from; zero: none
	Name     string
	IssuedAt time.Time // millisecond precision
	Operator identity.NodeID
	Sig      []byte
}

const (
	intentDomain  = "deck-blob-intent-v1:"
	intentVersion = 1
	intentSigSize = ed25519.SignatureSize

	flagPinned  = 1 << 0
	flagRemoved = 1 << 1

	// MaxIntentBytes bounds an encoded intent.
	MaxIntentBytes = 1 + HashBytes + 1 + 1 + HashBytes + 2 + MaxNameBytes + 10 + 8 + intentSigSize
)

func (in *Intent) body() ([]byte, error) {
	if err := in.check(); err != nil {
		return nil, err
	}
	w := codec.NewWriter(make([]byte, 0, MaxIntentBytes), ErrMalformed)
	w.U8(intentVersion)
	w.Raw(in.Blob[:])
	w.U8(uint8(in.Replicas))
	var flags uint8
	if in.Pinned {
		flags |= flagPinned
	}
	if in.Removed {
		flags |= flagRemoved
	}
	w.U8(flags)
	w.Raw(in.Parent[:])
	w.Text(codec.PrefixUvarint, MaxNameBytes, "blob name", in.Name)
	w.Varint(in.IssuedAt.UnixMilli())
	w.U64(uint64(in.Operator))
	return w.B, w.Err()
}

func (in *Intent) check() error {
	switch {
	case in.Removed && (in.Replicas != 0 || in.Pinned):
		return fmt.Errorf("%w: a removal keeps no replicas and no pin", ErrInvalid)
	case !in.Removed && (in.Replicas < 1 || in.Replicas > MaxReplicas):
		return fmt.Errorf("%w: %d replicas, want 1..%d", ErrInvalid, in.Replicas, MaxReplicas)
	case in.Blob.IsZero():
		return fmt.Errorf("%w: intent names no blob", ErrInvalid)
	}
	return nil
}

// Payload is what the operator signs.
func (in *Intent) Payload() ([]byte, error) {
	b, err := in.body()
	if err != nil {
		return nil, err
	}
	return append([]byte(intentDomain), b...), nil
}

// Sign fills Operator, truncates IssuedAt to milliseconds and signs.
func (in *Intent) Sign(s identity.Signer) error {
	in.Operator = s.SignerID()
	in.IssuedAt = time.UnixMilli(in.IssuedAt.UnixMilli()).UTC()
	p, err := in.Payload()
	if err != nil {
		return err
	}
	sig, err := s.Sign(p)
	if err != nil {
		return fmt.Errorf("blob: sign intent: %w", err)
	}
	in.Sig = sig
	return nil
}

// Verify checks the signature against the operator's key.
func (in *Intent) Verify(pub ed25519.PublicKey) error {
	p, err := in.Payload()
	if err != nil {
		return err
	}
	if len(pub) != ed25519.PublicKeySize || len(in.Sig) != intentSigSize || !ed25519.Verify(pub, p, in.Sig) {
		return fmt.Errorf("%w: intent for %s is not signed by operator %s", ErrPermission, in.Blob.Short(), in.Operator)
	}
	return nil
}

// Encode is the wire form: body and signature.
func (in *Intent) Encode() ([]byte, error) {
	b, err := in.body()
	if err != nil {
		return nil, err
	}
	if len(in.Sig) != intentSigSize {
		return nil, fmt.Errorf("%w: intent is not signed", ErrInvalid)
	}
	return append(b, in.Sig...), nil
}

// DecodeIntent parses an intent (its signature is not checked here).
func DecodeIntent(b []byte) (*Intent, error) {
	if len(b) > MaxIntentBytes {
		return nil, fmt.Errorf("%w: intent is %d bytes, at most %d", ErrMalformed, len(b), MaxIntentBytes)
	}
	r := codec.NewReader(b, ErrMalformed)
	if v := r.U8(); r.Err() == nil && v != intentVersion {
		r.Failf(codec.ErrMalformed, "intent version %d, this build reads %d", v, intentVersion)
	}
	in := &Intent{}
	copy(in.Blob[:], r.Take(HashBytes))
	in.Replicas = int(r.U8())
	flags := r.U8()
	if r.Err() == nil && flags&^(flagPinned|flagRemoved) != 0 {
		r.Failf(codec.ErrMalformed, "intent flags %#x", flags)
	}
	in.Pinned, in.Removed = flags&flagPinned != 0, flags&flagRemoved != 0
	copy(in.Parent[:], r.Take(HashBytes))
	in.Name = r.Text(codec.PrefixUvarint, MaxNameBytes, "blob name")
	in.IssuedAt = time.UnixMilli(r.Varint()).UTC()
	in.Operator = identity.NodeID(r.U64())
	in.Sig = bytes.Clone(r.Take(intentSigSize))
	if err := r.Finish(); err != nil {
		return nil, err
	}
	if err := in.check(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return in, nil
}

// Newer reports whether in supersedes other: a later issue time, or the
// same time and the larger signature (every node picks the same one).
func (in *Intent) Newer(other *Intent) bool {
	if other == nil {
		return true
	}
	if c := in.IssuedAt.Compare(other.IssuedAt); c != 0 {
		return c > 0
	}
	return bytes.Compare(in.Sig, other.Sig) > 0
}
