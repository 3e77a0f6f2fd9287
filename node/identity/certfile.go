package identity

import (
	"encoding/base64"
	"fmt"
	"os"
	"strings"
)

// CertificateFileMode: a certificate is public (it binds a public key), but
// it names the cluster, so it is kept as private as the node's key.
const CertificateFileMode = KeyFileMode

const certFileHeader = "deck-node-cert-v1"

// CertificateFileName is where a node keeps its certificate in its data
// directory, beside node.key.
const CertificateFileName = "node.cert"

// SaveCertificate writes c to path ("deck-node-cert-v1 BASE64\n"),
// replacing any older certificate (a renewal).
func SaveCertificate(path string, c *Certificate) error {
	b, err := c.Marshal()
	if err != nil {
		return err
	}
	line := certFileHeader + " " + base64.StdEncoding.EncodeToString(b) + "\n"
	return WriteFileAtomic(path, []byte(line), CertificateFileMode, false)
}

// LoadCertificate reads a certificate file. It parses and bounds only: the
// caller checks subject, validity and issuer.
func LoadCertificate(path string) (*Certificate, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("identity: certificate %s: %w", path, err)
	}
	if len(raw) > 2*MaxCertificateSize+len(certFileHeader)+4 {
		return nil, fmt.Errorf("%w: %s is %d bytes", ErrCertificate, path, len(raw))
	}
	header, body, ok := strings.Cut(strings.TrimSpace(string(raw)), " ")
	if !ok || header != certFileHeader {
		return nil, fmt.Errorf("%w: %s is not a %s file", ErrCertificate, path, certFileHeader)
	}
	b, err := base64.StdEncoding.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCertificate, path, err)
	}
	c, err := UnmarshalCertificate(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
