package trust_test

import (
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/identity/identitytest"
	"github.com/deck-mesh/deck/node/trust"
)

// BenchmarkCheck is the cost of one membership decision, the way each
// layer meets it: a certificate seen for the first time (its signature
// verified: a handshake with a new peer, a new signer's first snapshot), the
// same certificate again (every later snapshot and handshake of that peer),
// a ledger admission (no certificate), and raw ed25519 verification beside
// them for scale.
func BenchmarkCheck(b *testing.B) {
	alice, node := identitytest.Key(b, "alice"), identitytest.Key(b, "node")
	g := genesis(b, "alice")
	now := t0.Add(time.Hour)
	c := cert(b, alice, node, identity.RoleNode, t0, 24*time.Hour)
	b.Run("certificate-first-seen", func(b *testing.B) {
		st := fold(b, g)
		b.ReportAllocs()
		for b.Loop() {
			r := trust.New(cluster, st) // an empty signature cache each time
			if _, err := r.Check(node.ID, node.Public, c, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("certificate-cached", func(b *testing.B) {
		r := trust.New(cluster, fold(b, g))
		if _, err := r.Check(node.ID, node.Public, c, now); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Check(node.ID, node.Public, c, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("certificate-bytes-cached", func(b *testing.B) {
		r := trust.New(cluster, fold(b, g))
		raw, _ := c.Marshal()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.CheckBytes(node.ID, node.Public, raw, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ledger-admission", func(b *testing.B) {
		admit := event(b, api.Action{Verb: api.VerbAdmitNode, Node: node.ID, OperatorKey: node.Public}, t0, 1, alice)
		r := trust.New(cluster, fold(b, g, admit))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Check(node.ID, node.Public, nil, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw-ed25519-verify", func(b *testing.B) {
		msg := []byte("deck-node-cert-v1: a certificate body of about two hundred bytes ..........................................................................................")
		sig := alice.Sign(msg)
		b.ReportAllocs()
		for b.Loop() {
			if identity.Verify(alice.ID, alice.Public, msg, sig) != nil {
				b.Fatal("verify")
			}
		}
	})
}
