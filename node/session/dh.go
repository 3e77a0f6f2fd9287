package session

import (
	"crypto/ecdh"
	"crypto/subtle"
	"fmt"
	"io"

	"github.com/flynn/noise"
)

// cachedDH is Noise's DH25519 with one difference: it keeps the parsed
// *ecdh.PrivateKey of the handshake's static and ephemeral keys. The stock
// function re-parses the private key on every DH, and crypto/ecdh derives
// the public key (a full base-point multiplication) on each parse, so an XX
// handshake paid for seven scalar multiplications per side instead of four.
// One cache per handshake: it lives exactly as long as the HandshakeState
// that holds the same private keys.
type cachedDH struct{ c *dhCache }

type dhCache struct {
	staticPriv []byte
	static     *ecdh.PrivateKey
	ephPriv    []byte
	eph        *ecdh.PrivateKey
}

func (d cachedDH) GenerateKeypair(rng io.Reader) (noise.DHKey, error) {
	k, err := ecdh.X25519().GenerateKey(rng)
	if err != nil {
		return noise.DHKey{}, err
	}
	d.c.eph, d.c.ephPriv = k, k.Bytes()
	return noise.DHKey{Private: d.c.ephPriv, Public: k.PublicKey().Bytes()}, nil
}

func (d cachedDH) DH(priv, pub []byte) ([]byte, error) {
	var k *ecdh.PrivateKey
	switch {
	case d.c.eph != nil && subtle.ConstantTimeCompare(priv, d.c.ephPriv) == 1:
		k = d.c.eph
	case d.c.static != nil && subtle.ConstantTimeCompare(priv, d.c.staticPriv) == 1:
		k = d.c.static
	default:
		var err error
		if k, err = ecdh.X25519().NewPrivateKey(priv); err != nil {
			return nil, err
		}
	}
	p, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("session: peer public key: %w", err)
	}
	// ECDH refuses low-order points (an all-zero shared secret), as
	// x/crypto's X25519 does.
	return k.ECDH(p)
}

func (cachedDH) DHLen() int     { return 32 }
func (cachedDH) DHName() string { return "25519" }
