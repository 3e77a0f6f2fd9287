package command

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
)

// SignaturePrefix starts a signature line.
const SignaturePrefix = "deck-sig:"

// FormatSignature is the text form operators pass around when co-signing:
// "deck-sig:<16 hex digits of the operator id>:<base64 signature>".
func FormatSignature(s api.Signature) string {
	return fmt.Sprintf("%s%016x:%s", SignaturePrefix, uint64(s.Operator), base64.StdEncoding.EncodeToString(s.Sig))
}

// ParseSignature reads one signature line (surrounding white space
// ignored). It checks the form only; Check verifies it.
func ParseSignature(text string) (api.Signature, error) {
	if len(text) > MaxSignatureTextBytes {
		return api.Signature{}, reject(ErrMalformed, "signature line is %d bytes, at most %d", len(text), MaxSignatureTextBytes)
	}
	text = strings.TrimSpace(text)
	rest, ok := strings.CutPrefix(text, SignaturePrefix)
	if !ok {
		return api.Signature{}, reject(ErrMalformed, "signature line does not start with %q", SignaturePrefix)
	}
	idHex, sig64, ok := strings.Cut(rest, ":")
	if !ok {
		return api.Signature{}, reject(ErrMalformed, "signature line has no ':' between id and signature")
	}
	if len(idHex) != 16 {
		return api.Signature{}, reject(ErrMalformed, "operator id must be 16 hex digits")
	}
	v, err := strconv.ParseUint(idHex, 16, 64)
	if err != nil {
		return api.Signature{}, fmt.Errorf("%w: operator id: %w", ErrMalformed, err)
	}
	if !identity.NodeID(v).Valid() {
		return api.Signature{}, reject(ErrMalformed, "operator id 0")
	}
	if base64.StdEncoding.DecodedLen(len(sig64)) > ed25519.SignatureSize+3 {
		return api.Signature{}, reject(ErrMalformed, "signature too long")
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(sig64)
	if err != nil {
		return api.Signature{}, fmt.Errorf("%w: signature: %w", ErrMalformed, err)
	}
	if len(sig) != ed25519.SignatureSize {
		return api.Signature{}, reject(ErrMalformed, "signature is %d bytes, want %d", len(sig), ed25519.SignatureSize)
	}
	return api.Signature{Operator: identity.NodeID(v), Sig: sig}, nil
}
