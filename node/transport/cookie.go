package transport

import (
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"errors"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/deck-mesh/deck/node/wire"
)

// Handshake macs and cookies: WireGuard's mechanism (whitepaper §5.4.4 and
// §5.4.7, wireguard-go's device/cookie.go), adapted to Noise XX.
//
// mac1 is on every handshake message, keyed by HASH("deck-mac1-v1" ||
// PSK). WireGuard keys it with the responder's static key; an XX initiator
// on a bootstrap address does not know that key yet, so the cluster PSK
// stands in: a sender without the PSK is refused after one BLAKE2s, before
// any rate-limiter bucket, handshake state or Diffie-Hellman. (The PSK
// itself is only checked by Noise at message 3, after the responder has
// done its DH work and held state for a round trip.)
//
// mac2 answers spoofed sources. A responder under load (see
// underLoadLocked) answers a message 1 without a valid mac2 with a cookie
// reply instead of state: the cookie is a keyed BLAKE2s of the source
// address under a random secret that rotates every CookieSecretRotation,
// sealed with XChaCha20-Poly1305 under HASH("deck-cookie-v1" || PSK) and
// the message's mac1 as associated data, so nobody who did not see that
// message 1 can make a reply its sender accepts. The initiator resends
// message 1 with mac2 = MAC(cookie, message); only such messages get state
// under load, and only then is the per-source rate limit charged, to a
// source that proved it receives at its address.

var (
	mac1Label   = []byte("deck-mac1-v1")
	cookieLabel = []byte("deck-cookie-v1")
)

// errCookie is a cookie reply that does not open: forged, for another
// message 1, or not under this cluster's PSK.
var errCookie = errors.New("transport: cookie reply does not authenticate")

// handshakeMACs holds the keys both sides of a handshake derive from the
// cluster PSK. Immutable after newHandshakeMACs; safe for concurrent use.
type handshakeMACs struct {
	mac1Key   [blake2s.Size]byte
	cookieKey cipher.AEAD // XChaCha20-Poly1305
}

func newHandshakeMACs(psk [32]byte) *handshakeMACs {
	m := &handshakeMACs{mac1Key: labelledKey(mac1Label, psk)}
	ck := labelledKey(cookieLabel, psk)
	aead, err := chacha20poly1305.NewX(ck[:])
	if err != nil {
		panic("transport: XChaCha20-Poly1305 refused a 32-byte key: " + err.Error())
	}
	m.cookieKey = aead
	return m
}

// labelledKey is HASH(label || psk), WireGuard's key derivation for mac1.
func labelledKey(label []byte, psk [32]byte) [blake2s.Size]byte {
	h, _ := blake2s.New256(nil)
	h.Write(label)
	h.Write(psk[:])
	var k [blake2s.Size]byte
	h.Sum(k[:0])
	return k
}

// keyedMAC is WireGuard's MAC: keyed BLAKE2s with a 128-bit output.
func keyedMAC(key []byte, parts ...[]byte) [wire.MACBytes]byte {
	h, err := blake2s.New128(key)
	if err != nil {
		panic("transport: blake2s mac key: " + err.Error()) // keys here are 16 or 32 bytes, never from the wire
	}
	for _, p := range parts {
		h.Write(p)
	}
	var out [wire.MACBytes]byte
	h.Sum(out[:0])
	return out
}

// seal writes the macs of an encoded handshake packet in place: mac1
// always, mac2 with cookie when the sender holds one (else zeros). It
// returns mac1, which a cookie reply to this packet must carry as
// associated data.
func (m *handshakeMACs) seal(pkt []byte, cookie *[wire.CookieBytes]byte) [wire.MACBytes]byte {
	ad, to1, to2, ok := wire.HandshakeMACed(pkt)
	if !ok {
		return [wire.MACBytes]byte{} // cannot happen: callers encode a whole handshake
	}
	mac1Field, mac2Field := wire.HandshakeMACs(pkt)
	mac1 := keyedMAC(m.mac1Key[:], ad, to1)
	copy(mac1Field, mac1[:])
	clear(mac2Field)
	if cookie != nil {
		mac2 := keyedMAC(cookie[:], ad, to2)
		copy(mac2Field, mac2[:])
	}
	return mac1
}

// checkMAC1 reports whether pkt's mac1 was made with this cluster's PSK.
// Constant time in the mac.
func (m *handshakeMACs) checkMAC1(pkt []byte) bool {
	ad, to1, _, ok := wire.HandshakeMACed(pkt)
	if !ok {
		return false
	}
	want := keyedMAC(m.mac1Key[:], ad, to1)
	got, _ := wire.HandshakeMACs(pkt)
	return hmac.Equal(got, want[:])
}

// sealCookie fills a cookie reply's nonce and encrypted cookie for the
// message 1 whose mac1 is given.
func (m *handshakeMACs) sealCookie(cr *wire.CookieReply, cookie *[wire.CookieBytes]byte, mac1 []byte) {
	rand.Read(cr.Nonce[:])
	m.cookieKey.Seal(cr.EncryptedCookie[:0], cr.Nonce[:], cookie[:], mac1)
}

// openCookie returns the cookie of a reply to the message 1 whose mac1 is
// given.
func (m *handshakeMACs) openCookie(cr *wire.CookieReply, mac1 []byte) ([wire.CookieBytes]byte, error) {
	var cookie [wire.CookieBytes]byte
	if _, err := m.cookieKey.Open(cookie[:0], cr.Nonce[:], cr.EncryptedCookie[:], mac1); err != nil {
		return cookie, errCookie
	}
	return cookie, nil
}

// cookieSecret is the responder's rotating secret, from which the cookie
// of every source address is derived: MAC(secret, address). Nothing is
// stored per source, so a flood of addresses costs no memory.
type cookieSecret struct {
	mu     sync.Mutex
	secret [blake2s.Size]byte
	made   time.Time // zero: no secret yet
}

// cookie returns src's cookie, replacing the secret first when it is
// older than CookieSecretRotation (the only place it is replaced, as in
// wireguard-go: checks never rotate).
func (c *cookieSecret) cookie(src netip.AddrPort, now time.Time) [wire.CookieBytes]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.made.IsZero() || now.Sub(c.made) >= CookieSecretRotation {
		rand.Read(c.secret[:])
		c.made = now
	}
	return addressCookie(&c.secret, src)
}

// checkMAC2 reports whether pkt's mac2 was made with src's cookie under
// the current secret. A cookie outlives its secret by nothing: once the
// secret is CookieSecretRotation old every mac2 fails until a new cookie
// is asked for, so a cookie seen on the wire is useless two minutes later.
func (c *cookieSecret) checkMAC2(pkt []byte, src netip.AddrPort, now time.Time) bool {
	ad, _, to2, ok := wire.HandshakeMACed(pkt)
	if !ok {
		return false
	}
	c.mu.Lock()
	if c.made.IsZero() || now.Sub(c.made) >= CookieSecretRotation {
		c.mu.Unlock()
		return false
	}
	cookie := addressCookie(&c.secret, src)
	c.mu.Unlock()
	want := keyedMAC(cookie[:], ad, to2)
	_, got := wire.HandshakeMACs(pkt)
	return hmac.Equal(got, want[:])
}

// addressCookie is MAC(secret, address || port), the address in its
// 16-byte form so an IPv4 source and its IPv4-mapped form share a cookie.
func addressCookie(secret *[blake2s.Size]byte, src netip.AddrPort) [wire.CookieBytes]byte {
	a := src.Addr().Unmap().As16()
	port := src.Port()
	return keyedMAC(secret[:], a[:], []byte{byte(port >> 8), byte(port)})
}

// initiatorCookie is an initiation's side of the mechanism: the cookie a
// responder gave it, and what a cookie reply to its last message 1 must
// match.
type initiatorCookie struct {
	value [wire.CookieBytes]byte
	at    time.Time // when value arrived; zero: none

	// The last message 1 sent: its Noise bytes and destination, for the
	// resend with mac2, and its mac1, a reply's associated data.
	noise    []byte
	to       netip.AddrPort
	lastMAC1 [wire.MACBytes]byte
	awaiting bool // a cookie reply to the last message 1 would be taken
	resent   bool // this attempt was resent on a cookie already
}

// fresh returns the cookie to key mac2 with, or nil when there is none
// young enough to still match the responder's secret.
func (c *initiatorCookie) fresh(now time.Time) *[wire.CookieBytes]byte {
	if c.at.IsZero() || now.Sub(c.at) >= CookieSecretRotation {
		return nil
	}
	return &c.value
}
