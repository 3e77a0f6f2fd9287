package session

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/flynn/noise"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/deck-mesh/deck/node/identity"
)

// Errors a handshake can fail with. They are distinct so tests (and logs)
// can name the attack that was refused.
var (
	ErrNoise          = errors.New("session: noise handshake failed")
	ErrStaticMismatch = errors.New("session: noise static does not match node record")
	ErrRecord         = errors.New("session: node record refused")
	ErrUnexpectedPeer = errors.New("session: peer is not the expected node")
	ErrSelf           = errors.New("session: handshake with self")
)

var cipherSuite = noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashBLAKE2b)

// Static is a node's long-term handshake material: its ed25519 key, a fresh
// X25519 Noise static, the record signed by the first binding the second,
// the certificate it presents (if any) and the cluster PSK.
type Static struct {
	Key     *identity.Key
	DH      noise.DHKey
	Record  *identity.NodeRecord
	payload atomic.Pointer[[]byte] // replaced when the certificate is
	psk     [32]byte
	ecdhKey *ecdh.PrivateKey // DH.Private parsed once
}

// NewStatic makes a Noise static keypair for k and signs its record.
func NewStatic(k *identity.Key, psk [32]byte) (*Static, error) {
	dh, err := cipherSuite.GenerateKeypair(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("session: noise static: %w", err)
	}
	var pub [32]byte
	copy(pub[:], dh.Public)
	rec := identity.NewNodeRecord(k, pub, time.Now().UnixMilli())
	return NewStaticWith(k, dh, rec, psk), nil
}

// NewStaticWith assembles a Static from parts. Tests use it to present a
// forged record; production code uses NewStatic.
func NewStaticWith(k *identity.Key, dh noise.DHKey, rec *identity.NodeRecord, psk [32]byte) *Static {
	s := &Static{Key: k, DH: dh, Record: rec, psk: psk}
	// Without a certificate the payload is the record alone, which always
	// encodes: the only bounded field is the (empty) certificate.
	_ = s.SetCertificate(nil)
	if ek, err := ecdh.X25519().NewPrivateKey(dh.Private); err == nil {
		s.ecdhKey = ek
	}
	return s
}

// SetCertificate makes cert (nil: none) the certificate every later
// handshake presents. A renewed or newly issued certificate takes effect at
// the next handshake; sessions already up keep the admission they had.
func (s *Static) SetCertificate(cert *identity.Certificate) error {
	p, err := MarshalPayload(s.Record, cert)
	if err != nil {
		return err
	}
	s.payload.Store(&p)
	return nil
}

func (s *Static) currentPayload() []byte { return *s.payload.Load() }

func (s *Static) config(initiator bool) noise.Config {
	dh := cachedDH{&dhCache{static: s.ecdhKey, staticPriv: s.DH.Private}}
	return noise.Config{
		CipherSuite:           noise.NewCipherSuite(dh, noise.CipherChaChaPoly, noise.HashBLAKE2b),
		Pattern:               noise.HandshakeXX,
		Initiator:             initiator,
		StaticKeypair:         s.DH,
		PresharedKey:          s.psk[:],
		PresharedKeyPlacement: 3,
	}
}

// verifyPeer checks a peer's handshake payload. The order is the point
// (nebula's): the Noise static the peer proved it holds must equal the one
// in the record before the record is believed at all; then the signature,
// then that the id derives from the signing key and is non-zero, then that
// it is who we meant to reach.
func (s *Static) verifyPeer(peerStatic, payload []byte, expect identity.NodeID) (*Payload, error) {
	p, err := UnmarshalPayload(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRecord, err)
	}
	rec := p.Record
	if len(peerStatic) != 32 || !bytes.Equal(peerStatic, rec.NoiseStatic[:]) {
		return nil, ErrStaticMismatch
	}
	if err := rec.Verify(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRecord, err)
	}
	if rec.ID == s.Key.ID {
		return nil, ErrSelf
	}
	if expect != 0 && rec.ID != expect {
		return nil, fmt.Errorf("%w: got %s, want %s", ErrUnexpectedPeer, rec.ID, expect)
	}
	if c := p.Certificate; c != nil && (c.Node != rec.ID || !c.SigningKey.Equal(rec.SigningKey)) {
		// A certificate for another key proves nothing about this peer;
		// refuse the handshake rather than let it look uncertified.
		return nil, fmt.Errorf("%w: certificate is for %s, not the record's key", ErrRecord, c.Node)
	}
	return p, nil
}

// Initiator is the initiating side of one handshake attempt.
type Initiator struct {
	s      *Static
	hs     *noise.HandshakeState
	expect identity.NodeID
	// Index is this side's session index for the attempt.
	Index uint32
}

// Initiate starts a handshake towards expect (0 when the peer's id is not
// known yet, as on a bootstrap address) and returns Noise message 1.
func (s *Static) Initiate(index uint32, expect identity.NodeID) (*Initiator, []byte, error) {
	hs, err := noise.NewHandshakeState(s.config(true))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrNoise, err)
	}
	msg1, _, _, err := hs.WriteMessage(nil, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrNoise, err)
	}
	return &Initiator{s: s, hs: hs, expect: expect, Index: index}, msg1, nil
}

// Finish reads message 2, verifies the responder and returns message 3
// with the new keypair. The keypair is not yet confirmed: with psk3 the
// responder only checks the PSK on message 3, so the caller must wait for
// the responder's first packet before trusting the session.
func (i *Initiator) Finish(msg2 []byte, remoteIndex uint32, now time.Time) ([]byte, *Keypair, error) {
	payload, _, _, err := i.hs.ReadMessage(nil, msg2)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: message 2: %w", ErrNoise, err)
	}
	peer, err := i.s.verifyPeer(i.hs.PeerStatic(), payload, i.expect)
	if err != nil {
		return nil, nil, err
	}
	msg3, c1, c2, err := i.hs.WriteMessage(nil, i.s.currentPayload())
	if err != nil || c1 == nil {
		return nil, nil, fmt.Errorf("%w: message 3: %v", ErrNoise, err)
	}
	kp, err := newKeypair(peer, c1, c2, true, i.Index, remoteIndex, now)
	if err != nil {
		return nil, nil, err
	}
	return msg3, kp, nil
}

// Responder is the responding side of one handshake.
type Responder struct {
	s           *Static
	hs          *noise.HandshakeState
	Index       uint32
	RemoteIndex uint32
}

// Respond reads message 1 and returns message 2, which carries our record.
// Nothing about the initiator is known yet (XX hides it until message 3),
// so a Responder is cheap state the caller bounds and expires.
func (s *Static) Respond(msg1 []byte, index, remoteIndex uint32) (*Responder, []byte, error) {
	hs, err := noise.NewHandshakeState(s.config(false))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrNoise, err)
	}
	p, _, _, err := hs.ReadMessage(nil, msg1)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: message 1: %w", ErrNoise, err)
	}
	if len(p) != 0 {
		return nil, nil, fmt.Errorf("%w: message 1 carries %d payload bytes", ErrNoise, len(p))
	}
	msg2, _, _, err := hs.WriteMessage(nil, s.currentPayload())
	if err != nil {
		return nil, nil, fmt.Errorf("%w: message 2: %w", ErrNoise, err)
	}
	return &Responder{s: s, hs: hs, Index: index, RemoteIndex: remoteIndex}, msg2, nil
}

// Finish reads message 3 (which fails on a wrong PSK), verifies the
// initiator and returns the confirmed keypair.
func (r *Responder) Finish(msg3 []byte, now time.Time) (*Keypair, error) {
	payload, c1, c2, err := r.hs.ReadMessage(nil, msg3)
	if err != nil {
		return nil, fmt.Errorf("%w: message 3: %w", ErrNoise, err)
	}
	if c1 == nil {
		return nil, fmt.Errorf("%w: message 3 did not complete the handshake", ErrNoise)
	}
	peer, err := r.s.verifyPeer(r.hs.PeerStatic(), payload, 0)
	if err != nil {
		return nil, err
	}
	return newKeypair(peer, c1, c2, false, r.Index, r.RemoteIndex, now)
}

func newKeypair(peer *Payload, c1, c2 *noise.CipherState, initiator bool, local, remote uint32, now time.Time) (*Keypair, error) {
	// c1 carries initiator->responder traffic, c2 the other way.
	sendCS, recvCS := c1, c2
	if !initiator {
		sendCS, recvCS = c2, c1
	}
	sk, rk := sendCS.UnsafeKey(), recvCS.UnsafeKey()
	send, err := chacha20poly1305.New(sk[:])
	if err != nil {
		return nil, fmt.Errorf("session: send cipher: %w", err)
	}
	recv, err := chacha20poly1305.New(rk[:])
	if err != nil {
		return nil, fmt.Errorf("session: recv cipher: %w", err)
	}
	return &Keypair{
		Peer:        peer.Record.ID,
		PeerRecord:  peer.Record,
		PeerCert:    peer.Certificate,
		LocalIndex:  local,
		RemoteIndex: remote,
		Initiator:   initiator,
		Created:     now,
		send:        send,
		recv:        recv,
		fingerprint: fingerprint(sk, rk, initiator),
	}, nil
}
