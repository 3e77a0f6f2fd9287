package command

import (
	"errors"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity/identitytest"
)

func TestAdmitAndRevokeNodeFold(t *testing.T) {
	alice := identitytest.Key(t, "alice")
	nodeKey := identitytest.Key(t, "pending-node")
	st := mustState(t, genesisOf(t, 1, 1, "alice"))
	admit := signed(t, bodyFor(t, api.Action{Verb: api.VerbAdmitNode, Node: nodeKey.ID, OperatorKey: nodeKey.Public}, alice, t0, nonceN(1)), alice)
	if err := st.Apply(admit); err != nil {
		t.Fatalf("admit: %v", err)
	}
	a, ok := st.Admission(nodeKey.ID)
	if !ok || !a.Key.Equal(nodeKey.Public) || a.AdmittedBy != alice.ID || !a.NotAfter.After(t0) {
		t.Fatalf("admission %+v %v", a, ok)
	}
	before := st.Clone()
	if !before.Equal(st) {
		t.Fatal("clone differs")
	}
	revoke := signed(t, bodyFor(t, api.Action{Verb: api.VerbRevokeNode, Node: nodeKey.ID}, alice, t0.Add(time.Second), nonceN(2)), alice)
	if err := st.Apply(revoke); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if _, ok := st.Admission(nodeKey.ID); ok {
		t.Fatal("a revoked node keeps its admission")
	}
	if r, ok := st.Revocation(nodeKey.ID); !ok || r.RevokedBy != alice.ID {
		t.Fatalf("revocation %+v %v", r, ok)
	}
	if before.Equal(st) {
		t.Fatal("Equal ignores membership")
	}
	again := signed(t, bodyFor(t, api.Action{Verb: api.VerbAdmitNode, Node: nodeKey.ID, OperatorKey: nodeKey.Public}, alice, t0.Add(2*time.Second), nonceN(3)), alice)
	if err := st.Apply(again); !errors.Is(err, ErrRevoked) {
		t.Fatalf("re-admitting a revoked node: %v, want ErrRevoked", err)
	}
	twice := signed(t, bodyFor(t, api.Action{Verb: api.VerbRevokeNode, Node: nodeKey.ID}, alice, t0.Add(3*time.Second), nonceN(4)), alice)
	if err := st.Apply(twice); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoking twice: %v, want ErrRevoked", err)
	}
}

func TestAdmitNodeKeyMustDeriveToNode(t *testing.T) {
	other := identitytest.Key(t, "other")
	a := api.Action{Verb: api.VerbAdmitNode, Node: identitytest.Key(t, "n").ID, OperatorKey: other.Public}
	if err := ValidateAction(&a); !errors.Is(err, ErrBadAction) {
		t.Fatalf("mismatched key: %v", err)
	}
	a.OperatorKey = other.Public[:31]
	if err := ValidateAction(&a); !errors.Is(err, ErrBadAction) {
		t.Fatalf("short key: %v", err)
	}
}

// TestIssuerKeysFollowRotationAndRemoval: a rotated operator's old key
// still counts for certificates it issued before the rotation; a removed
// operator's keys stop counting.
func TestIssuerKeysFollowRotationAndRemoval(t *testing.T) {
	alice, bob, alice2 := identitytest.Key(t, "alice"), identitytest.Key(t, "bob"), identitytest.Key(t, "alice-2")
	st := mustState(t, genesisOf(t, 1, 1, "alice", "bob"))
	rot := signed(t, bodyFor(t, api.Action{Verb: api.VerbRotateOperator, OperatorID: alice.ID, OperatorKey: alice2.Public}, alice, t0, nonceN(1)), alice, alice2)
	if err := st.Apply(rot); err != nil {
		t.Fatal(err)
	}
	keys := st.IssuerKeys()
	if k, ok := keys[alice.ID]; !ok || k.Retired.IsZero() || !k.Key.Equal(alice.Public) {
		t.Fatalf("retired alice key: %+v %v", k, ok)
	}
	if k, ok := keys[alice2.ID]; !ok || !k.Retired.IsZero() {
		t.Fatalf("alice's new key: %+v %v", k, ok)
	}
	rm := signed(t, bodyFor(t, api.Action{Verb: api.VerbRemoveOperator, OperatorID: alice2.ID}, bob, t0.Add(time.Second), nonceN(2)), bob)
	if err := st.Apply(rm); err != nil {
		t.Fatal(err)
	}
	keys = st.IssuerKeys()
	if _, ok := keys[alice2.ID]; ok {
		t.Fatal("removed operator's key still issues")
	}
	if _, ok := keys[alice.ID]; ok {
		t.Fatal("removed operator's earlier (rotated) key still issues")
	}
	if _, ok := keys[bob.ID]; !ok {
		t.Fatal("bob lost")
	}
}
