package session

import (
	"crypto/cipher"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/wire"
)

// Errors from Seal and Open.
var (
	ErrReplay     = errors.New("session: replayed or too old counter")
	ErrAuth       = errors.New("session: packet failed authentication")
	ErrExhausted  = errors.New("session: send counter exhausted, rekey required")
	ErrBufferSize = errors.New("session: buffer too small")
)

// Keypair is one established session with one peer: a send and a receive
// ChaCha20-Poly1305 key, the indexes both sides address it by, the send
// counter and the receive replay window.
type Keypair struct {
	Peer        identity.NodeID
	PeerRecord  *identity.NodeRecord
	PeerCert    *identity.Certificate // as presented (nil: none); the Trust judges it
	LocalIndex  uint32                // the index peers put in packets to us
	RemoteIndex uint32                // the index we put in packets to the peer
	Initiator   bool
	Created     time.Time

	send, recv  cipher.AEAD
	sendCounter atomic.Uint64
	fingerprint [32]byte

	mu     sync.Mutex
	replay ReplayFilter
}

// fingerprint is a one-way digest of both keys in a side-independent order
// (initiator->responder key first), so two ends of one session agree on it
// and tests can check a relay holds no copy of a session without ever
// exposing a key.
func fingerprint(send, recv [32]byte, initiator bool) [32]byte {
	i2r, r2i := send, recv
	if !initiator {
		i2r, r2i = recv, send
	}
	h, _ := blake2b.New256([]byte("deck-session-fingerprint"))
	h.Write(i2r[:])
	h.Write(r2i[:])
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Fingerprint identifies the session's keys without revealing them.
func (k *Keypair) Fingerprint() [32]byte { return k.fingerprint }

// Sent is how many packets have been sealed with this keypair.
func (k *Keypair) Sent() uint64 { return k.sendCounter.Load() }

// nonceOf is the AEAD nonce of an encoded packet: the 12 header bytes
// index||counter. The counter is unique per key and the index is fixed per
// key, so nonces never repeat; taking them from the header costs no copy
// and no allocation (a local array handed to the cipher.AEAD interface
// would escape to the heap on every packet).
func nonceOf(packet []byte) []byte { return packet[nonceOffset : nonceOffset+nonceSize] }

const (
	nonceOffset = 19 // wire header: index at 19, counter at 23
	nonceSize   = 12
)

// Seal encodes hdr (with Index and Counter filled in from the keypair) and
// the encrypted plaintext into dst, which must have room for
// HeaderSize+len(plaintext)+TagBytes. It returns the packet, a prefix of dst.
func (k *Keypair) Seal(dst []byte, hdr *wire.Header, plaintext []byte) ([]byte, error) {
	need := wire.HeaderSize + len(plaintext) + wire.TagBytes
	if cap(dst) < need {
		return nil, fmt.Errorf("%w: %d < %d", ErrBufferSize, cap(dst), need)
	}
	c := k.sendCounter.Add(1) - 1
	if c >= RejectAfterMessages {
		return nil, ErrExhausted
	}
	hdr.Index = k.RemoteIndex
	hdr.Counter = c
	dst = dst[:wire.HeaderSize]
	hdr.Encode(dst)
	return k.send.Seal(dst, nonceOf(dst), plaintext, wire.AssociatedData(dst)), nil
}

// Open authenticates and decrypts a packet whose header hdr was parsed from
// packet, appending the plaintext to dst. The replay window is checked
// before the AEAD (cheap rejection) and committed only after it verified, so
// a forged packet can never advance the window.
func (k *Keypair) Open(dst []byte, hdr *wire.Header, packet []byte) ([]byte, error) {
	k.mu.Lock()
	ok := k.replay.Check(hdr.Counter, RejectAfterMessages)
	k.mu.Unlock()
	if !ok {
		return nil, ErrReplay
	}
	if len(packet) < wire.HeaderSize+wire.TagBytes {
		return nil, fmt.Errorf("%w: %d-byte packet", ErrAuth, len(packet))
	}
	out, err := k.recv.Open(dst, nonceOf(packet), packet[wire.HeaderSize:], wire.AssociatedData(packet))
	if err != nil {
		return nil, ErrAuth
	}
	k.mu.Lock()
	ok = k.replay.Commit(hdr.Counter, RejectAfterMessages)
	k.mu.Unlock()
	if !ok {
		return nil, ErrReplay
	}
	return out, nil
}

// NeedsRekey reports whether the session is old or used enough that a
// fresh handshake should replace it.
func (k *Keypair) NeedsRekey(now time.Time, afterTime time.Duration, afterMessages uint64) bool {
	return now.Sub(k.Created) >= afterTime || k.sendCounter.Load() >= afterMessages
}

// Expired reports whether the keys must no longer be used to send.
func (k *Keypair) Expired(now time.Time, rejectAfter time.Duration) bool {
	return now.Sub(k.Created) >= rejectAfter || k.sendCounter.Load() >= RejectAfterMessages
}
