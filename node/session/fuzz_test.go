package session

import (
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/identity"
)

func FuzzPayload(f *testing.F) {
	s := mustStatic(f, psk)
	plain, _ := MarshalPayload(s.Record, nil)
	certified, _ := MarshalPayload(s.Record, testCert(f, s.Key, identity.RoleNode))
	f.Add(plain)
	f.Add(certified)
	f.Add([]byte{PayloadVersion})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := UnmarshalPayload(data)
		if err != nil {
			return
		}
		_ = p.Record.Verify() // must not panic on any record
		if p.Certificate != nil {
			_ = p.Certificate.VerifySignature()
		}
		out, err := MarshalPayload(p.Record, p.Certificate)
		if err != nil || string(out) != string(data) {
			t.Fatalf("re-encode mismatch: %v", err)
		}
	})
}

// FuzzHandshakeMessages feeds arbitrary bytes as message 1 to a responder
// and as message 2 to an initiator: Noise and our payload checks must
// reject them without panicking.
func FuzzHandshakeMessages(f *testing.F) {
	a, b := mustStatic(f, psk), mustStatic(f, psk)
	_, msg1, _ := a.Initiate(1, 0)
	_, msg2, _ := b.Respond(msg1, 2, 1)
	f.Add(msg1, msg2)
	f.Add([]byte{}, []byte{1})
	f.Fuzz(func(t *testing.T, m1, m2 []byte) {
		if _, _, err := b.Respond(m1, 2, 1); err != nil {
			_ = err
		}
		i, _, err := a.Initiate(1, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, kp, err := i.Finish(m2, 2, time.Now()); err == nil && kp == nil {
			t.Fatal("no error and no keypair")
		}
	})
}
