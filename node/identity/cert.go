package identity

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/deck-mesh/deck/node/codec"
)

// Certificates follow nebula's CA model, adapted to a mesh whose authority is
// its operator registry rather than one CA key: a certificate binds a node id
// and its ed25519 identity key to a role, a cluster and a validity window, and
// is signed by an operator. The Noise static is not in it: a node makes a
// fresh X25519 static every start, and its signed NodeRecord binds that static
// to the same ed25519 key, so the chain operator → certificate → record →
// Noise proof holds without re-issuing a certificate per start. Whether the
// signer is an operator the mesh trusts, and whether the certificate was
// revoked, is the registry's question (node/trust); this file only encodes and
// checks the signature and the fields.

// CertificatePrefix separates certificate signatures from every other kind of
// signature an operator key makes.
const CertificatePrefix = "deck-node-cert-v1:"

// CertificateVersion is the encoding of a certificate without a subnet;
// CertificateVersionSubnet adds the subnet path after the issuer key. A
// certificate for the root subnet is written in version 1, so certificates
// issued before subnets existed keep their bytes and fingerprints.
const (
	CertificateVersion       = 1
	CertificateVersionSubnet = 2
)

// Bounds of a certificate.
const (
	// MaxCertificateClusterBytes bounds the cluster name carried.
	MaxCertificateClusterBytes = 64
	// MaxCertificateSize is an upper bound on an encoded certificate: version,
	// cluster, id, key, role, two times, issuer key, signature.
	MaxCertificateSize = 1 + 1 + MaxCertificateClusterBytes + 8 + 32 + 1 + 8 + 8 + 32 + 1 + MaxSubnetBytes + 64
	// ConsoleCertificateLifetime is how long a console's certificate, issued
	// by its operator's own key when the console starts, stays valid. Short,
	// so a removed operator's consoles lapse on their own.
	ConsoleCertificateLifetime = 12 * time.Hour
	// NodeCertificateLifetime is the default validity of a node certificate
	// (deck node init, the demo, deck node admit).
	NodeCertificateLifetime = 365 * 24 * time.Hour
	// NodeCertificateRenewBefore: a node re-certifies (when it can) a
	// certificate that expires within this long.
	NodeCertificateRenewBefore = 30 * 24 * time.Hour
)

// Role is what a certified member may be used for.
type Role uint8

const (
	// RoleNode is a full member: it may hold chains and daemons, lead, relay.
	RoleNode Role = 1
	// RoleConsole is an operator's console: it reads the mesh and submits
	// signed commands, and is never a holder, a leader or a relay target.
	RoleConsole Role = 2
)

func (r Role) String() string {
	switch r {
	case RoleNode:
		return "node"
	case RoleConsole:
		return "console"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// Certificate errors. Decode errors also wrap codec's class.
var (
	ErrCertificate        = errors.New("identity: bad certificate")
	ErrCertificateExpired = errors.New("identity: certificate outside its validity window")
	ErrCertificateSubject = errors.New("identity: certificate is for another key or cluster")
)

// Certificate is a signed membership statement for one node.
type Certificate struct {
	Cluster     string
	Node        NodeID
	SigningKey  ed25519.PublicKey // the node's ed25519 key; Node derives from it
	Role        Role
	NotBeforeMs int64
	NotAfterMs  int64
	Issuer      ed25519.PublicKey // the operator key that signed
	// Subnet is the node's subnet path ("" the root; see ValidateSubnet):
	// signed with the rest, so a node cannot claim another subnet to escape
	// its gateway rules or to speak for another subnet's summary.
	Subnet    string
	Signature []byte // 64 bytes over CertificatePrefix || body
}

// IssuerID is the operator id of the issuing key.
func (c *Certificate) IssuerID() NodeID { return IDFromPublicKey(c.Issuer) }

func (c *Certificate) appendBody(w *codec.Writer) {
	version := uint8(CertificateVersion)
	if c.Subnet != "" {
		version = CertificateVersionSubnet
	}
	w.U8(version)
	w.String(codec.PrefixU8, MaxCertificateClusterBytes, "cluster", c.Cluster)
	w.U64(uint64(c.Node))
	w.Raw(c.SigningKey)
	w.U8(uint8(c.Role))
	w.U64(uint64(c.NotBeforeMs))
	w.U64(uint64(c.NotAfterMs))
	w.Raw(c.Issuer)
	if version == CertificateVersionSubnet {
		w.String(codec.PrefixU8, MaxSubnetBytes, "subnet", c.Subnet)
	}
}

func (c *Certificate) body() ([]byte, error) {
	if len(c.SigningKey) != ed25519.PublicKeySize || len(c.Issuer) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: key sizes", ErrCertificate)
	}
	w := codec.NewWriter(make([]byte, 0, MaxCertificateSize), ErrCertificate)
	c.appendBody(&w)
	if err := w.Err(); err != nil {
		return nil, err
	}
	return w.B, nil
}

func (c *Certificate) signedBytes() ([]byte, error) {
	body, err := c.body()
	if err != nil {
		return nil, err
	}
	return append([]byte(CertificatePrefix), body...), nil
}

// IssueCertificate fills in Issuer and Signature of c with the issuer's key.
// The caller sets every other field.
func IssueCertificate(issuer Signer, c Certificate) (*Certificate, error) {
	c.Issuer = issuer.PublicKey()
	c.Signature = nil
	if err := c.checkFields(); err != nil {
		return nil, err
	}
	msg, err := c.signedBytes()
	if err != nil {
		return nil, err
	}
	sig, err := issuer.Sign(msg)
	if err != nil {
		return nil, fmt.Errorf("identity: signing certificate: %w", err)
	}
	c.Signature = sig
	return &c, nil
}

// NewNodeCertificate is the usual certificate for the node key pub, valid
// from now for lifetime.
func NewNodeCertificate(issuer Signer, cluster string, pub ed25519.PublicKey, role Role, now time.Time, lifetime time.Duration) (*Certificate, error) {
	return NewSubnetCertificate(issuer, cluster, "", pub, role, now, lifetime)
}

// NewSubnetCertificate is NewNodeCertificate for a node of subnet (a path
// ValidateSubnet accepts; "" is the root).
func NewSubnetCertificate(issuer Signer, cluster, subnet string, pub ed25519.PublicKey, role Role, now time.Time, lifetime time.Duration) (*Certificate, error) {
	return IssueCertificate(issuer, Certificate{
		Cluster: cluster, Node: IDFromPublicKey(pub), SigningKey: pub, Role: role, Subnet: subnet,
		// A minute of slack before now, so a peer whose clock runs a little
		// behind does not see a certificate from the future.
		NotBeforeMs: now.Add(-time.Minute).UnixMilli(),
		NotAfterMs:  now.Add(lifetime).UnixMilli(),
	})
}

func (c *Certificate) checkFields() error {
	switch {
	case c.Role != RoleNode && c.Role != RoleConsole:
		return fmt.Errorf("%w: role %d", ErrCertificate, c.Role)
	case len(c.SigningKey) != ed25519.PublicKeySize || len(c.Issuer) != ed25519.PublicKeySize:
		return fmt.Errorf("%w: key sizes", ErrCertificate)
	case !c.Node.Valid() || IDFromPublicKey(c.SigningKey) != c.Node:
		return fmt.Errorf("%w: node id %s is not derived from its key", ErrCertificate, c.Node)
	case c.NotAfterMs <= c.NotBeforeMs:
		return fmt.Errorf("%w: empty validity window", ErrCertificate)
	case c.Cluster == "":
		return fmt.Errorf("%w: no cluster", ErrCertificate)
	}
	if err := ValidateSubnet(c.Subnet); err != nil {
		return fmt.Errorf("%w: %w", ErrCertificate, err)
	}
	return nil
}

// VerifySignature checks the fields are well formed and the signature is the
// issuer's. It does not say whether the issuer is trusted: see node/trust.
func (c *Certificate) VerifySignature() error {
	if err := c.checkFields(); err != nil {
		return err
	}
	msg, err := c.signedBytes()
	if err != nil {
		return err
	}
	if len(c.Signature) != ed25519.SignatureSize || !ed25519.Verify(c.Issuer, msg, c.Signature) {
		return fmt.Errorf("%w: signature does not verify", ErrCertificate)
	}
	return nil
}

// CheckSubject checks c names this cluster and exactly this node and key,
// and that at is inside its validity window.
func (c *Certificate) CheckSubject(cluster string, id NodeID, signing ed25519.PublicKey, at time.Time) error {
	if c.Cluster != cluster || c.Node != id || !ed25519.PublicKey(c.SigningKey).Equal(signing) {
		return ErrCertificateSubject
	}
	ms := at.UnixMilli()
	if ms < c.NotBeforeMs || ms >= c.NotAfterMs {
		return fmt.Errorf("%w: valid %s to %s", ErrCertificateExpired,
			time.UnixMilli(c.NotBeforeMs).UTC().Format(time.RFC3339), time.UnixMilli(c.NotAfterMs).UTC().Format(time.RFC3339))
	}
	return nil
}

// Marshal encodes the certificate: its body, then the 64-byte signature.
func (c *Certificate) Marshal() ([]byte, error) {
	body, err := c.body()
	if err != nil {
		return nil, err
	}
	if len(c.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: unsigned", ErrCertificate)
	}
	return append(body, c.Signature...), nil
}

// Fingerprint is BLAKE2b-256 of the encoded certificate: the handle a
// revocation or an admission names.
func (c *Certificate) Fingerprint() [32]byte {
	b, err := c.Marshal()
	if err != nil {
		return [32]byte{}
	}
	return blake2b.Sum256(b)
}

// UnmarshalCertificate decodes a certificate. It parses and bounds only;
// VerifySignature and the registry decide whether it is believed.
func UnmarshalCertificate(b []byte) (*Certificate, error) {
	if len(b) > MaxCertificateSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrCertificate, len(b), MaxCertificateSize)
	}
	r := codec.NewReader(b, ErrCertificate)
	v := r.U8()
	if r.Err() == nil && v != CertificateVersion && v != CertificateVersionSubnet {
		r.Failf(codec.ErrMalformed, "version %d", v)
	}
	c := &Certificate{}
	c.Cluster = r.String(codec.PrefixU8, MaxCertificateClusterBytes, "cluster")
	c.Node = NodeID(r.U64())
	c.SigningKey = ed25519.PublicKey(append([]byte(nil), r.Take(ed25519.PublicKeySize)...))
	c.Role = Role(r.U8())
	c.NotBeforeMs = int64(r.U64())
	c.NotAfterMs = int64(r.U64())
	c.Issuer = ed25519.PublicKey(append([]byte(nil), r.Take(ed25519.PublicKeySize)...))
	if v == CertificateVersionSubnet {
		c.Subnet = r.String(codec.PrefixU8, MaxSubnetBytes, "subnet")
		if r.Err() == nil && c.Subnet == "" {
			// The root is written as version 1: one certificate, one encoding.
			r.Failf(codec.ErrMalformed, "version 2 with the root subnet")
		}
	}
	c.Signature = append([]byte(nil), r.Take(ed25519.SignatureSize)...)
	if err := r.Finish(); err != nil {
		return nil, err
	}
	if err := c.checkFields(); err != nil {
		return nil, err
	}
	return c, nil
}
