package wire

import (
	"fmt"
	"unicode/utf8"
)

// ControlPending tells a peer that completed a handshake that it is not a
// member here (no valid certificate, no ledger admission, revoked), and
// why, so it can say so to its operator instead of seeing a peer that
// never answers. It is advisory: a node never changes what it trusts
// because of it.
const ControlPending ControlKind = 4

// MaxPendingReasonBytes bounds the reason text.
const MaxPendingReasonBytes = 200

// AppendPending appends a pending notice (kind byte included); reason is
// cut to MaxPendingReasonBytes on a rune boundary.
func AppendPending(b []byte, reason string) []byte {
	if len(reason) > MaxPendingReasonBytes {
		cut := MaxPendingReasonBytes
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut]
	}
	b = append(b, byte(ControlPending), byte(len(reason)))
	return append(b, reason...)
}

// ParsePending decodes exactly one pending notice and returns its reason,
// with anything that could drive a terminal (control characters, invalid
// UTF-8) refused: the text ends up in an operator's log.
func ParsePending(b []byte) (string, error) {
	if len(b) < 2 || ControlKind(b[0]) != ControlPending {
		return "", fmt.Errorf("%w: not a pending notice", ErrType)
	}
	n := int(b[1])
	if n > MaxPendingReasonBytes || len(b) != 2+n {
		return "", fmt.Errorf("%w: pending notice of %d bytes with a %d-byte reason", ErrLength, len(b), n)
	}
	reason := string(b[2:])
	if !utf8.ValidString(reason) {
		return "", fmt.Errorf("%w: pending reason is not UTF-8", ErrValue)
	}
	for _, r := range reason {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return "", fmt.Errorf("%w: control character in pending reason", ErrValue)
		}
	}
	return reason, nil
}
