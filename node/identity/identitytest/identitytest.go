// Package identitytest derives reproducible node and operator keys for
// tests, so every package names its test keys the same way and every run
// uses the same keys.
package identitytest

import (
	"crypto/sha256"
	"testing"

	"github.com/deck-mesh/deck/node/identity"
)

// seedDomain separates test seeds from any other use of SHA-256 seeds.
const seedDomain = "deck-test-key:"

// Key returns the real ed25519 key whose seed is SHA-256 of name (in the
// test-key domain): the same name gives the same key in every package and
// every run, and distinct names give distinct keys.
func Key(tb testing.TB, name string) *identity.Key {
	tb.Helper()
	seed := sha256.Sum256([]byte(seedDomain + name))
	k, err := identity.FromSeed(seed[:])
	if err != nil {
		tb.Fatalf("identitytest: key %q: %v", name, err)
	}
	return k
}
