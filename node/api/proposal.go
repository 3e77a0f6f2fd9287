package api

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// The co-signing text formats, in one place for every console: the
// signature line operators pass around ("deck-sig:<16 hex digits of the
// operator id>:<base64 signature>") and the proposal file (`deck ice|admin
// VERB --sign-only --out F`, `deck ice|admin sign F`, `… commit F`, the TUI
// collector's export): a header line naming the group, the signing payload
// in base64 on one line, then one signature line per signature collected.
// Blank lines and surrounding spaces are ignored when reading.
const (
	SignaturePrefix = "deck-sig:"
	// MaxSignatureTextBytes bounds one signature line.
	MaxSignatureTextBytes = 256
	// ICEProposalHeader and AdminProposalHeader start a proposal file.
	ICEProposalHeader   = "deck-ice-proposal-v1"
	AdminProposalHeader = "deck-admin-proposal-v1"
	// ICEPayloadPrefix and AdminPayloadPrefix start the signing payloads
	// (DESIGN §5); a file's header must match its payload's prefix.
	ICEPayloadPrefix   = "net-deck-ice:"
	AdminPayloadPrefix = "deck-admin-v1:"
	// MaxProposalFileBytes bounds a proposal file; MaxProposalSignatures
	// bounds the signature lines in it.
	MaxProposalFileBytes  = 1 << 20
	MaxProposalSignatures = 256
)

// ParseError is a malformed signature line or proposal file. It matches
// ErrInvalid (exit 2).
type ParseError struct{ What string }

func (e *ParseError) Error() string        { return e.What }
func (e *ParseError) Is(target error) bool { return target == ErrInvalid }

func parseErr(format string, args ...any) error {
	return &ParseError{What: fmt.Sprintf(format, args...)}
}

// FormatSignature is the signature line of s.
func FormatSignature(s Signature) string {
	return fmt.Sprintf("%s%016x:%s", SignaturePrefix, uint64(s.Operator), base64.StdEncoding.EncodeToString(s.Sig))
}

// ParseSignature reads one signature line (surrounding white space
// ignored). It checks the form only; SimulatedProposal.Check verifies it.
func ParseSignature(text string) (Signature, error) {
	if len(text) > MaxSignatureTextBytes {
		return Signature{}, parseErr("signature line is %d bytes, at most %d", len(text), MaxSignatureTextBytes)
	}
	text = strings.TrimSpace(text)
	rest, ok := strings.CutPrefix(text, SignaturePrefix)
	if !ok {
		return Signature{}, parseErr("signature line does not start with %q", SignaturePrefix)
	}
	idHex, sig64, ok := strings.Cut(rest, ":")
	if !ok {
		return Signature{}, parseErr("signature line has no ':' between id and signature")
	}
	if len(idHex) != 16 {
		return Signature{}, parseErr("operator id must be 16 hex digits")
	}
	v, err := strconv.ParseUint(idHex, 16, 64)
	if err != nil {
		return Signature{}, parseErr("operator id: %v", err)
	}
	if !NodeID(v).Valid() {
		return Signature{}, parseErr("operator id 0")
	}
	if base64.StdEncoding.DecodedLen(len(sig64)) > ed25519.SignatureSize+3 {
		return Signature{}, parseErr("signature too long")
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(sig64)
	if err != nil {
		return Signature{}, parseErr("signature: %v", err)
	}
	if len(sig) != ed25519.SignatureSize {
		return Signature{}, parseErr("signature is %d bytes, want %d", len(sig), ed25519.SignatureSize)
	}
	return Signature{Operator: NodeID(v), Sig: sig}, nil
}

// ProposalFile is an exported proposal: its signing payload and the
// signatures collected so far.
type ProposalFile struct {
	Payload []byte
	Sigs    []Signature
}

// ICE reports whether the payload is an ICE proposal's (else admin or
// registry).
func (p ProposalFile) ICE() bool { return bytes.HasPrefix(p.Payload, []byte(ICEPayloadPrefix)) }

// Group is the CLI group that signs and commits the file: "ice" or "admin".
func (p ProposalFile) Group() string {
	if p.ICE() {
		return "ice"
	}
	return "admin"
}

// Marshal renders the file; the header follows the payload's prefix.
func (p ProposalFile) Marshal() []byte {
	var b strings.Builder
	header := AdminProposalHeader
	if p.ICE() {
		header = ICEProposalHeader
	}
	b.WriteString(header + "\n")
	b.WriteString(base64.StdEncoding.EncodeToString(p.Payload) + "\n")
	for _, s := range p.Sigs {
		b.WriteString(FormatSignature(s) + "\n")
	}
	return []byte(b.String())
}

// ParseProposalFile reads a proposal file written by any deck console (the
// CLI's writer and the TUI's, old and new: they wrote the same lines). The
// header must be one of the two and agree with the payload's prefix, so an
// ICE proposal is never co-signed believing it is routine.
func ParseProposalFile(data []byte) (ProposalFile, error) {
	if len(data) > MaxProposalFileBytes {
		return ProposalFile{}, parseErr("proposal file is %d bytes, at most %d", len(data), MaxProposalFileBytes)
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) < 2 || (lines[0] != ICEProposalHeader && lines[0] != AdminProposalHeader) {
		return ProposalFile{}, parseErr("not a deck proposal file (want %q or %q on the first line)", ICEProposalHeader, AdminProposalHeader)
	}
	if n := len(lines) - 2; n > MaxProposalSignatures {
		return ProposalFile{}, parseErr("proposal file has %d signature lines, at most %d", n, MaxProposalSignatures)
	}
	payload, err := base64.StdEncoding.DecodeString(lines[1])
	if err != nil {
		return ProposalFile{}, parseErr("proposal payload: %v", err)
	}
	p := ProposalFile{Payload: payload}
	headerICE := lines[0] == ICEProposalHeader
	if !p.ICE() && !bytes.HasPrefix(payload, []byte(AdminPayloadPrefix)) {
		return ProposalFile{}, parseErr("proposal payload is neither an ICE nor an admin signing payload")
	}
	if headerICE != p.ICE() {
		return ProposalFile{}, parseErr("proposal header %q does not match its payload", lines[0])
	}
	for _, l := range lines[2:] {
		s, err := ParseSignature(l)
		if err != nil {
			return ProposalFile{}, parseErr("proposal signature: %v", err)
		}
		p.Sigs = append(p.Sigs, s)
	}
	return p, nil
}
