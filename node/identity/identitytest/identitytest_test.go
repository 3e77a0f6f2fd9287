package identitytest

import (
	"bytes"
	"testing"

	"github.com/deck-mesh/deck/node/identity"
)

func TestKeyIsReproducibleAndDistinct(t *testing.T) {
	a1, a2, b := Key(t, "alice"), Key(t, "alice"), Key(t, "bob")
	if a1.ID != a2.ID || !bytes.Equal(a1.Public, a2.Public) {
		t.Fatal("the same name gave different keys")
	}
	if a1.ID == b.ID {
		t.Fatal("different names gave the same key")
	}
	if identity.IDFromPublicKey(a1.Public) != a1.ID {
		t.Fatal("id is not derived from the public key")
	}
}
