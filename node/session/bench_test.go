package session

import (
	"crypto/rand"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/wire"
)

// BenchmarkSealOpen compares a session's seal+open of a 1 KiB payload
// (header encode, counter, replay check and commit included) with raw
// ChaCha20-Poly1305 seal+open of the same payload, in the same run.
func BenchmarkSealOpen(b *testing.B) {
	payload := make([]byte, 1024)
	rand.Read(payload)
	b.Run("session-1KiB", func(b *testing.B) {
		a, c := mustStatic(b, psk), mustStatic(b, psk)
		ak, ck, err := handshake(b, a, c, 0)
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 0, wire.MaxPacketBytes)
		h := wire.Header{Version: wire.Version, Type: wire.TypeData, Src: a.Key.ID, Dst: c.Key.ID, TTL: wire.DefaultTTL}
		var got wire.Header
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		for b.Loop() {
			pkt, err := ak.Seal(buf, &h, payload)
			if err != nil {
				b.Fatal(err)
			}
			if err := got.Parse(pkt); err != nil {
				b.Fatal(err)
			}
			if _, err := ck.Open(pkt[wire.HeaderSize:wire.HeaderSize], &got, pkt); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw-chacha20poly1305-1KiB", func(b *testing.B) {
		var key [32]byte
		rand.Read(key[:])
		aead, _ := chacha20poly1305.New(key[:])
		nonce := make([]byte, 12)
		ad := make([]byte, wire.AssociatedDataSize)
		buf := make([]byte, 0, wire.MaxPacketBytes)
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		var n uint64
		for b.Loop() {
			n++
			nonce[11] = byte(n)
			ct := aead.Seal(buf, nonce, payload, ad)
			if _, err := aead.Open(ct[:0], nonce, ct, ad); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkHandshake is a full XXpsk3 handshake, both sides, in process,
// including record signature checks. handshakes/s is per core.
func BenchmarkHandshake(b *testing.B) {
	a, c := mustStatic(b, psk), mustStatic(b, psk)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := handshake(b, a, c, c.Key.ID); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
}

// BenchmarkHandshakeCertified is BenchmarkHandshake with both sides
// presenting a certificate in messages 2 and 3 (parsing only: the Trust
// judges it, see node/trust's BenchmarkCheck), beside the plain one.
func BenchmarkHandshakeCertified(b *testing.B) {
	for _, certified := range []bool{false, true} {
		name := "no-certificate"
		if certified {
			name = "certificates"
		}
		b.Run(name, func(b *testing.B) {
			a, c := mustStatic(b, psk), mustStatic(b, psk)
			if certified {
				if err := a.SetCertificate(testCert(b, a.Key, identity.RoleNode)); err != nil {
					b.Fatal(err)
				}
				if err := c.SetCertificate(testCert(b, c.Key, identity.RoleNode)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := handshake(b, a, c, c.Key.ID); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
