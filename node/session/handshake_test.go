package session

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flynn/noise"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/wire"
)

var psk = [32]byte{9, 9, 9}

func mustStatic(t testing.TB, p [32]byte) *Static {
	t.Helper()
	k, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewStatic(k, p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// handshake runs a full XXpsk3 exchange in memory and returns both
// keypairs, or the first error on either side.
func handshake(t testing.TB, ini, resp *Static, expect identity.NodeID) (*Keypair, *Keypair, error) {
	t.Helper()
	now := time.Now()
	i, msg1, err := ini.Initiate(1, expect)
	if err != nil {
		return nil, nil, err
	}
	r, msg2, err := resp.Respond(msg1, 2, 1)
	if err != nil {
		return nil, nil, err
	}
	msg3, ikp, err := i.Finish(msg2, 2, now)
	if err != nil {
		return nil, nil, err
	}
	rkp, err := r.Finish(msg3, now)
	if err != nil {
		return nil, nil, err
	}
	return ikp, rkp, nil
}

func TestHandshakeEstablishesMatchingSession(t *testing.T) {
	a, b := mustStatic(t, psk), mustStatic(t, psk)
	ak, bk, err := handshake(t, a, b, b.Key.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ak.Peer != b.Key.ID || bk.Peer != a.Key.ID {
		t.Fatalf("peers = %s/%s", ak.Peer, bk.Peer)
	}
	if ak.Fingerprint() != bk.Fingerprint() {
		t.Fatal("the two ends disagree on the session keys")
	}
	if ak.RemoteIndex != bk.LocalIndex || bk.RemoteIndex != ak.LocalIndex {
		t.Fatal("indexes do not pair up")
	}
	roundTrip(t, ak, bk, []byte("a to b"))
	roundTrip(t, bk, ak, []byte("b to a"))
}

func roundTrip(t *testing.T, from, to *Keypair, msg []byte) {
	t.Helper()
	h := wire.Header{Version: wire.Version, Type: wire.TypeData, Src: to.Peer, Dst: from.Peer, TTL: wire.DefaultTTL}
	pkt, err := from.Seal(make([]byte, 0, wire.MaxPacketBytes), &h, msg)
	if err != nil {
		t.Fatal(err)
	}
	var got wire.Header
	if err := got.Parse(pkt); err != nil {
		t.Fatal(err)
	}
	out, err := to.Open(nil, &got, pkt)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, msg) {
		t.Fatalf("got %q want %q", out, msg)
	}
}

// forgedStatic is an attacker's Static presenting rec with its own Noise
// static keypair dh.
func forgedStatic(t *testing.T, k *identity.Key, dh noise.DHKey, rec *identity.NodeRecord, p [32]byte) *Static {
	t.Helper()
	return NewStaticWith(k, dh, rec, p)
}

func newDH(t *testing.T) (noise.DHKey, [32]byte) {
	dh, err := cipherSuite.GenerateKeypair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var pub [32]byte
	copy(pub[:], dh.Public)
	return dh, pub
}

// TestHandshakeRefusesSignatureByAnotherKey: the record names the
// attacker's own key and id, but the signature was made by another key.
func TestHandshakeRefusesSignatureByAnotherKey(t *testing.T) {
	victim, honest := mustStatic(t, psk), mustStatic(t, psk)
	attacker, _ := identity.Generate()
	dh, pub := newDH(t)
	rec := identity.NewNodeRecord(victim.Key, pub, time.Now().UnixMilli()) // signed by victim's key
	rec.ID, rec.SigningKey = attacker.ID, attacker.Public                  // …claimed as attacker's
	evil := forgedStatic(t, attacker, dh, rec, psk)
	for _, dir := range []string{"as initiator", "as responder"} {
		var err error
		if dir == "as initiator" {
			_, _, err = handshake(t, evil, honest, 0)
		} else {
			_, _, err = handshake(t, honest, evil, 0)
		}
		if !errors.Is(err, ErrRecord) || !strings.Contains(err.Error(), "bad signature") {
			t.Fatalf("%s: err = %v, want ErrRecord (bad signature)", dir, err)
		}
	}
}

// TestHandshakeRefusesNoiseStaticMismatch: a genuinely signed record whose
// NoiseStatic is not the key the peer used in the handshake. It must fail
// the first check, before the signature is even looked at.
func TestHandshakeRefusesNoiseStaticMismatch(t *testing.T) {
	victim, honest := mustStatic(t, psk), mustStatic(t, psk)
	dh, _ := newDH(t)
	// The victim's own valid record, replayed with the attacker's Noise key.
	evil := forgedStatic(t, victim.Key, dh, victim.Record, psk)
	if _, _, err := handshake(t, evil, honest, 0); !errors.Is(err, ErrStaticMismatch) {
		t.Fatalf("as initiator: err = %v, want ErrStaticMismatch", err)
	}
	if _, _, err := handshake(t, honest, evil, 0); !errors.Is(err, ErrStaticMismatch) {
		t.Fatalf("as responder: err = %v, want ErrStaticMismatch", err)
	}
	// And the check is first: even a record with a garbage signature fails
	// on the static, not on the signature.
	bad := *victim.Record
	bad.Signature = make([]byte, 64)
	evil = forgedStatic(t, victim.Key, dh, &bad, psk)
	if _, _, err := handshake(t, evil, honest, 0); !errors.Is(err, ErrStaticMismatch) {
		t.Fatalf("static must be checked before the signature: err = %v", err)
	}
}

// TestHandshakeRefusesVictimNodeID: the attacker signs, with its own key, a
// record claiming a live victim's node id. The id does not derive from the
// signing key, so it is refused.
func TestHandshakeRefusesVictimNodeID(t *testing.T) {
	victim, honest := mustStatic(t, psk), mustStatic(t, psk)
	attacker, _ := identity.Generate()
	dh, pub := newDH(t)
	rec := identity.NewNodeRecord(attacker, pub, time.Now().UnixMilli())
	rec.ID = victim.Key.ID
	// Re-sign so the signature is valid over the forged fields.
	rec = resign(attacker, rec)
	evil := forgedStatic(t, attacker, dh, rec, psk)
	_, _, err := handshake(t, evil, honest, 0)
	if !errors.Is(err, ErrRecord) || !strings.Contains(err.Error(), "not derived") {
		t.Fatalf("err = %v, want ErrRecord (id not derived from key)", err)
	}
	// Asking for the victim by id, we must not get the attacker either.
	_, _, err = handshake(t, honest, evil, victim.Key.ID)
	if err == nil {
		t.Fatal("handshake to the victim's id completed with the attacker")
	}
}

// TestHandshakeRefusesNodeIDZero covers the zero id with a valid signature.
func TestHandshakeRefusesNodeIDZero(t *testing.T) {
	honest := mustStatic(t, psk)
	attacker, _ := identity.Generate()
	dh, pub := newDH(t)
	rec := identity.NewNodeRecord(attacker, pub, time.Now().UnixMilli())
	rec.ID = 0
	rec = resign(attacker, rec)
	if _, _, err := handshake(t, forgedStatic(t, attacker, dh, rec, psk), honest, 0); !errors.Is(err, ErrRecord) {
		t.Fatalf("err = %v, want ErrRecord", err)
	}
}

// resign signs rec's fields as they are now with k (identity's signed layout).
func resign(k *identity.Key, rec *identity.NodeRecord) *identity.NodeRecord {
	signed := append([]byte(identity.NodeRecordPrefix), rec.Marshal()[:identity.NodeRecordSize-64]...)
	out := *rec
	out.Signature = k.Sign(signed)
	return &out
}

// TestHandshakeRefusesWrongPSK: with psk3 the responder detects the wrong
// PSK on message 3, and the initiator never gets a confirmed session.
func TestHandshakeRefusesWrongPSK(t *testing.T) {
	a := mustStatic(t, psk)
	b := mustStatic(t, [32]byte{7})
	if _, _, err := handshake(t, a, b, 0); !errors.Is(err, ErrNoise) {
		t.Fatalf("err = %v, want ErrNoise", err)
	}
}

func TestHandshakeRefusesUnexpectedPeer(t *testing.T) {
	a, b, c := mustStatic(t, psk), mustStatic(t, psk), mustStatic(t, psk)
	if _, _, err := handshake(t, a, b, c.Key.ID); !errors.Is(err, ErrUnexpectedPeer) {
		t.Fatalf("err = %v, want ErrUnexpectedPeer", err)
	}
}

// TestReplayedMessage3IsRefused: message 3 is bound to the responder's
// fresh ephemeral, so replaying it against a new responder state fails.
func TestReplayedMessage3IsRefused(t *testing.T) {
	a, b := mustStatic(t, psk), mustStatic(t, psk)
	i, msg1, _ := a.Initiate(1, 0)
	r, msg2, _ := b.Respond(msg1, 2, 1)
	msg3, _, err := i.Finish(msg2, 2, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Finish(msg3, time.Now()); err != nil {
		t.Fatal(err)
	}
	r2, _, _ := b.Respond(msg1, 3, 1) // replayed message 1
	if _, err := r2.Finish(msg3, time.Now()); err == nil {
		t.Fatal("replayed message 3 completed a second session")
	}
}

func TestOpenRejectsReplayAndTamper(t *testing.T) {
	a, b := mustStatic(t, psk), mustStatic(t, psk)
	ak, bk, err := handshake(t, a, b, 0)
	if err != nil {
		t.Fatal(err)
	}
	h := wire.Header{Version: wire.Version, Type: wire.TypeData, Src: a.Key.ID, Dst: b.Key.ID, TTL: wire.DefaultTTL, Channel: 2}
	pkt, _ := ak.Seal(make([]byte, 0, 256), &h, []byte("payload"))
	open := func(p []byte) error {
		var g wire.Header
		if err := g.Parse(p); err != nil {
			return err
		}
		_, err := bk.Open(nil, &g, bytes.Clone(p))
		return err
	}
	tests := []struct {
		name   string
		mutate func([]byte)
		want   error
	}{
		{"flipped channel", func(p []byte) { p[31] ^= 1 }, ErrAuth},
		{"flipped src", func(p []byte) { p[5] ^= 1 }, ErrAuth},
		{"flipped ciphertext", func(p []byte) { p[wire.HeaderSize] ^= 1 }, ErrAuth},
		{"flipped tag", func(p []byte) { p[len(p)-1] ^= 1 }, ErrAuth},
		{"ttl changed by a relay", func(p []byte) { p[wire.HeaderSize-1] = 3 }, nil},
		{"replay of the same packet", func(p []byte) {}, ErrReplay},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := bytes.Clone(pkt)
			tc.mutate(p)
			if err := open(p); !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestTamperedPacketDoesNotConsumeCounter: a forged packet with a valid
// counter fails the AEAD and must leave the window alone, so the genuine
// packet with that counter is still accepted.
func TestTamperedPacketDoesNotConsumeCounter(t *testing.T) {
	a, b := mustStatic(t, psk), mustStatic(t, psk)
	ak, bk, _ := handshake(t, a, b, 0)
	h := wire.Header{Version: wire.Version, Type: wire.TypeData, Src: a.Key.ID, Dst: b.Key.ID, TTL: wire.DefaultTTL}
	pkt, _ := ak.Seal(make([]byte, 0, 256), &h, []byte("x"))
	bad := bytes.Clone(pkt)
	bad[len(bad)-1] ^= 0xff
	var g wire.Header
	g.Parse(bad)
	if _, err := bk.Open(nil, &g, bad); !errors.Is(err, ErrAuth) {
		t.Fatalf("tampered: %v", err)
	}
	g.Parse(pkt)
	if _, err := bk.Open(nil, &g, pkt); err != nil {
		t.Fatalf("genuine packet after a forgery: %v", err)
	}
}

func TestPayloadRejectsWrongLengthAndVersion(t *testing.T) {
	s := mustStatic(t, psk)
	cert := testCert(t, s.Key, identity.RoleNode)
	for _, c := range []*identity.Certificate{nil, cert} {
		good, err := MarshalPayload(s.Record, c)
		if err != nil {
			t.Fatal(err)
		}
		cases := map[string][]byte{
			"empty":    nil,
			"short":    good[:len(good)-1],
			"trailing": append(bytes.Clone(good), 0),
			"version":  append([]byte{PayloadVersion + 1}, good[1:]...),
			"oversize": make([]byte, MaxPayloadSize+1),
		}
		for name, b := range cases {
			if _, err := UnmarshalPayload(b); !errors.Is(err, ErrPayload) {
				t.Errorf("%s: err = %v, want ErrPayload", name, err)
			}
		}
		p, err := UnmarshalPayload(good)
		if err != nil || p.Record.ID != s.Key.ID || (p.Certificate == nil) != (c == nil) {
			t.Fatalf("good payload: %+v %v", p, err)
		}
		if c != nil && p.Certificate.Fingerprint() != c.Fingerprint() {
			t.Fatal("certificate changed in transit")
		}
	}
}

func testCert(t testing.TB, k *identity.Key, role identity.Role) *identity.Certificate {
	t.Helper()
	op, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	c, err := identity.NewNodeCertificate(identity.KeySigner{K: op}, "test", k.Public, role, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestHandshakeCarriesCertificates: each side's certificate reaches the
// other inside the encrypted handshake, and one set after start-up is
// presented from the next handshake on.
func TestHandshakeCarriesCertificates(t *testing.T) {
	a, b := mustStatic(t, psk), mustStatic(t, psk)
	ca := testCert(t, a.Key, identity.RoleConsole)
	if err := a.SetCertificate(ca); err != nil {
		t.Fatal(err)
	}
	ikp, rkp, err := handshake(t, a, b, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rkp.PeerCert == nil || rkp.PeerCert.Fingerprint() != ca.Fingerprint() {
		t.Fatalf("responder saw certificate %+v", rkp.PeerCert)
	}
	if ikp.PeerCert != nil {
		t.Fatal("initiator saw a certificate the responder does not have")
	}
	cb := testCert(t, b.Key, identity.RoleNode)
	if err := b.SetCertificate(cb); err != nil {
		t.Fatal(err)
	}
	if ikp, _, err = handshake(t, a, b, 0); err != nil || ikp.PeerCert == nil || ikp.PeerCert.Node != b.Key.ID {
		t.Fatalf("initiator saw certificate %+v after the responder got one", ikp.PeerCert)
	}
}

// TestAttackCertificateForAnotherKeyRefused: a peer presenting another
// node's (valid) certificate beside its own record is refused at the
// handshake, before any Trust sees it.
func TestAttackCertificateForAnotherKeyRefused(t *testing.T) {
	a, b, victim := mustStatic(t, psk), mustStatic(t, psk), mustStatic(t, psk)
	if err := a.SetCertificate(testCert(t, victim.Key, identity.RoleNode)); err != nil {
		t.Fatal(err)
	}
	i, msg1, err := a.Initiate(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, msg2, err := b.Respond(msg1, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	msg3, _, err := i.Finish(msg2, 2, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Finish(msg3, time.Now()); !errors.Is(err, ErrRecord) {
		t.Fatalf("borrowed certificate: err = %v, want ErrRecord", err)
	}
}

// TestCachedDHInteroperatesWithStockNoise: a handshake between our cached
// DH and flynn/noise's stock DH25519 must agree, so the optimisation is
// wire-compatible with any XXpsk3_25519_ChaChaPoly_BLAKE2b peer.
func TestCachedDHInteroperatesWithStockNoise(t *testing.T) {
	ours := mustStatic(t, psk)
	peerKey, _ := identity.Generate()
	stock, pub := newDH(t)
	peerRec := identity.NewNodeRecord(peerKey, pub, time.Now().UnixMilli())
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite: cipherSuite, Pattern: noise.HandshakeXX, Initiator: true,
		StaticKeypair: stock, PresharedKey: psk[:], PresharedKeyPlacement: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	msg1, _, _, _ := hs.WriteMessage(nil, nil)
	r, msg2, err := ours.Respond(msg1, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := hs.ReadMessage(nil, msg2); err != nil {
		t.Fatalf("stock initiator cannot read our message 2: %v", err)
	}
	peerPayload, err := MarshalPayload(peerRec, nil)
	if err != nil {
		t.Fatal(err)
	}
	msg3, c1, _, err := hs.WriteMessage(nil, peerPayload)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := r.Finish(msg3, time.Now())
	if err != nil {
		t.Fatalf("our responder refuses the stock initiator: %v", err)
	}
	k := c1.UnsafeKey()
	if kp.Peer != peerKey.ID {
		t.Fatalf("session peer %s, want %s", kp.Peer, peerKey.ID)
	}
	// Data sealed by the stock side's key decrypts on ours.
	h := wire.Header{Version: wire.Version, Type: wire.TypeData, Src: peerKey.ID, Dst: ours.Key.ID, Index: kp.LocalIndex, TTL: wire.DefaultTTL}
	pkt := make([]byte, wire.HeaderSize)
	h.Encode(pkt)
	aead, _ := chacha20poly1305.New(k[:])
	pkt = aead.Seal(pkt, pkt[19:31], []byte("interop"), pkt[:wire.AssociatedDataSize])
	out, err := kp.Open(nil, &h, pkt)
	if err != nil || string(out) != "interop" {
		t.Fatalf("open: %v %q", err, out)
	}
}
