package identity_test

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/codec"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/identity/identitytest"
)

func testCert(t *testing.T) (*identity.Certificate, *identity.Key, *identity.Key) {
	t.Helper()
	op, node := identitytest.Key(t, "op"), identitytest.Key(t, "node")
	c, err := identity.NewNodeCertificate(identity.KeySigner{K: op}, "prod", node.Public, identity.RoleNode,
		time.UnixMilli(1_700_000_000_000), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return c, op, node
}

func TestCertificateRoundTripAndVerify(t *testing.T) {
	c, op, node := testCert(t)
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := identity.UnmarshalCertificate(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.VerifySignature(); err != nil {
		t.Fatal(err)
	}
	if got.IssuerID() != op.ID || got.Node != node.ID || got.Role != identity.RoleNode {
		t.Fatalf("fields: %+v", got)
	}
	b2, _ := got.Marshal()
	if !bytes.Equal(b, b2) || got.Fingerprint() != c.Fingerprint() {
		t.Fatal("re-encoding differs")
	}
	at := time.UnixMilli(1_700_000_000_000)
	if err := got.CheckSubject("prod", node.ID, node.Public, at); err != nil {
		t.Fatal(err)
	}
	if err := got.CheckSubject("other", node.ID, node.Public, at); !errors.Is(err, identity.ErrCertificateSubject) {
		t.Fatalf("other cluster: %v", err)
	}
	if err := got.CheckSubject("prod", node.ID, node.Public, at.Add(2*time.Hour)); !errors.Is(err, identity.ErrCertificateExpired) {
		t.Fatalf("expired: %v", err)
	}
}

func TestCertificateTamperedFieldFailsSignature(t *testing.T) {
	c, _, _ := testCert(t)
	b, _ := c.Marshal()
	for i := 0; i < len(b); i++ {
		m := bytes.Clone(b)
		m[i] ^= 0x01
		got, err := identity.UnmarshalCertificate(m)
		if err != nil {
			continue // refused at decode: fine
		}
		if got.VerifySignature() == nil {
			t.Fatalf("flip of byte %d still verifies", i)
		}
	}
}

func TestCertificateDecodeBounds(t *testing.T) {
	c, _, _ := testCert(t)
	b, _ := c.Marshal()
	if _, err := identity.UnmarshalCertificate(append(b, 0)); !errors.Is(err, codec.ErrTrailing) {
		t.Fatalf("trailing: %v", err)
	}
	if _, err := identity.UnmarshalCertificate(b[:len(b)-1]); !errors.Is(err, codec.ErrTruncated) {
		t.Fatalf("truncated: %v", err)
	}
	if _, err := identity.UnmarshalCertificate(make([]byte, identity.MaxCertificateSize+1)); !errors.Is(err, identity.ErrCertificate) {
		t.Fatalf("oversize: %v", err)
	}
}

func FuzzUnmarshalCertificate(f *testing.F) {
	op, node := identitytest.Key(f, "op"), identitytest.Key(f, "node")
	c, _ := identity.NewNodeCertificate(identity.KeySigner{K: op}, "prod", node.Public, identity.RoleConsole, time.Unix(0, 0), time.Hour)
	b, _ := c.Marshal()
	f.Add(b)
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := identity.UnmarshalCertificate(b)
		if err != nil {
			return
		}
		out, err := c.Marshal()
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("decoded certificate does not re-encode to its bytes: %v", err)
		}
	})
}

func TestCertificateFileRoundTripAndRefusals(t *testing.T) {
	c, _, _ := testCert(t)
	dir := t.TempDir()
	path := dir + "/node.cert"
	if err := identity.SaveCertificate(path, c); err != nil {
		t.Fatal(err)
	}
	got, err := identity.LoadCertificate(path)
	if err != nil || got.Fingerprint() != c.Fingerprint() {
		t.Fatalf("round trip: %v", err)
	}
	for name, body := range map[string]string{
		"header":  "ssh-ed25519 AAAA\n",
		"base64":  "deck-node-cert-v1 !!!\n",
		"garbage": "deck-node-cert-v1 AAAA\n",
		"empty":   "",
	} {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := identity.LoadCertificate(p); !errors.Is(err, identity.ErrCertificate) {
			t.Errorf("%s: err = %v, want ErrCertificate", name, err)
		}
	}
}
