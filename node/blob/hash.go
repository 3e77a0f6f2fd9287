package blob

import (
	"encoding/hex"
	"fmt"

	"lukechampine.com/blake3"
)

// Hash is a BLAKE3-256 digest: of a chunk's bytes (the chunk's address), or
// of a manifest's encoding (the blob's address, its handle everywhere).
type Hash [HashBytes]byte

// Sum is the BLAKE3-256 digest of b.
func Sum(b []byte) Hash { return Hash(blake3.Sum256(b)) }

// String is the 64-digit lowercase hex form operators type and see.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Short is the first 12 hex digits, for tables.
func (h Hash) Short() string { return hex.EncodeToString(h[:6]) }

// IsZero reports whether h is the zero hash (no blob: an unset parent).
func (h Hash) IsZero() bool { return h == Hash{} }

// ParseHash reads the 64-digit hex form.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*HashBytes {
		return h, fmt.Errorf("%w: a blob hash is %d hex digits, got %d", ErrInvalid, 2*HashBytes, len(s))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("%w: blob hash %q is not hex", ErrInvalid, s)
	}
	return h, nil
}
