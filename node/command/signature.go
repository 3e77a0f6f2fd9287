package command

import (
	"fmt"

	"github.com/deck-mesh/deck/node/api"
)

// SignaturePrefix starts a signature line.
const SignaturePrefix = api.SignaturePrefix

// FormatSignature is the text form operators pass around when co-signing:
// "deck-sig:<16 hex digits of the operator id>:<base64 signature>". The
// codec is node/api's (api.FormatSignature), shared with the TUI.
func FormatSignature(s api.Signature) string { return api.FormatSignature(s) }

// ParseSignature reads one signature line (surrounding white space
// ignored). It checks the form only; Check verifies it. Errors wrap
// ErrMalformed.
func ParseSignature(text string) (api.Signature, error) {
	s, err := api.ParseSignature(text)
	if err != nil {
		return api.Signature{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return s, nil
}
