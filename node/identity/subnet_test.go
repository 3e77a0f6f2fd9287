package identity_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/identity/identitytest"
)

func TestValidateSubnet(t *testing.T) {
	for _, ok := range []string{"", "eu", "eu/ams/rack-3", "a.b_c-d/0"} {
		if err := identity.ValidateSubnet(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"/", "eu/", "/eu", "eu//ams", "EU", "eu ams", "eu/\x1b[2J", "a/b/c/d/e/f/g/h/i",
		string(bytes.Repeat([]byte("a"), identity.MaxSubnetSegmentBytes+1))} {
		if err := identity.ValidateSubnet(bad); !errors.Is(err, identity.ErrSubnet) {
			t.Errorf("%q: %v, want ErrSubnet", bad, err)
		}
	}
}

// TestCertificateCarriesSubnet: a subnet certificate round-trips in
// version 2 and its subnet is under the signature; a root certificate is
// still version 1, byte for byte what it was before subnets.
func TestCertificateCarriesSubnet(t *testing.T) {
	op, nd := identitytest.Key(t, "op"), identitytest.Key(t, "node")
	at := time.UnixMilli(1_700_000_000_000)
	c, err := identity.NewSubnetCertificate(identity.KeySigner{K: op}, "prod", "eu/ams", nd.Public, identity.RoleNode, at, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != identity.CertificateVersionSubnet {
		t.Fatalf("version %d", b[0])
	}
	got, err := identity.UnmarshalCertificate(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.VerifySignature(); err != nil || got.Subnet != "eu/ams" {
		t.Fatalf("%v, subnet %q", err, got.Subnet)
	}
	// The subnet is signed: moving the node to another subnet of the same
	// length breaks the signature.
	moved := bytes.Replace(b, []byte("eu/ams"), []byte("eu/fra"), 1)
	if m, err := identity.UnmarshalCertificate(moved); err != nil || m.VerifySignature() == nil {
		t.Fatalf("a certificate moved to another subnet verifies (%v)", err)
	}
	root, err := identity.NewNodeCertificate(identity.KeySigner{K: op}, "prod", nd.Public, identity.RoleNode, at, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := root.Marshal()
	if rb[0] != identity.CertificateVersion {
		t.Fatalf("root certificate in version %d", rb[0])
	}
	if _, err := identity.NewSubnetCertificate(identity.KeySigner{K: op}, "prod", "Bad Path", nd.Public, identity.RoleNode, at, time.Hour); !errors.Is(err, identity.ErrCertificate) {
		t.Fatalf("invalid subnet issued: %v", err)
	}
}
