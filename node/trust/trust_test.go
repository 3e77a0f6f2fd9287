package trust_test

import (
	"errors"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/identity/identitytest"
	"github.com/deck-mesh/deck/node/trust"
)

const cluster = "trust-test"

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func genesis(t testing.TB, names ...string) command.Genesis {
	g := command.Genesis{Cluster: cluster, AdminThreshold: 1, ICEThreshold: 1}
	for _, n := range names {
		g.Operators = append(g.Operators, command.GenesisOperator{Name: n, PublicKey: identitytest.Key(t, n).Public})
	}
	return g
}

// event is a registry or admin event a proposes (and extra co-signs) at at.
func event(t testing.TB, a api.Action, at time.Time, nonce byte, signers ...*identity.Key) *command.Event {
	t.Helper()
	kind, _ := command.KindOf(a.Verb)
	b := command.Body{Kind: kind, Cluster: cluster, Action: a, Proposer: signers[0].ID, Nonce: command.Nonce{nonce, 0xA5}, IssuedAtMs: at.UnixMilli()}
	payload, err := b.SigningPayload()
	if err != nil {
		t.Fatal(err)
	}
	var sigs []api.Signature
	for _, k := range signers {
		sigs = append(sigs, api.Signature{Operator: k.ID, Sig: k.Sign(payload)})
	}
	ev, err := command.NewEvent(b, sigs)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func fold(t testing.TB, g command.Genesis, evs ...*command.Event) *command.AdminState {
	t.Helper()
	st, audit, err := command.Fold(g, evs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range audit {
		if r.Outcome != api.Accepted {
			t.Fatalf("event %s refused: %s", r.Action.Verb, r.Reason)
		}
	}
	return st
}

func cert(t testing.TB, issuer *identity.Key, subject *identity.Key, role identity.Role, at time.Time, life time.Duration) *identity.Certificate {
	t.Helper()
	c, err := identity.NewNodeCertificate(identity.KeySigner{K: issuer}, cluster, subject.Public, role, at, life)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRegistryRules(t *testing.T) {
	alice, mallory, node := identitytest.Key(t, "alice"), identitytest.Key(t, "mallory"), identitytest.Key(t, "node")
	g := genesis(t, "alice")
	r := trust.New(cluster, fold(t, g))
	now := t0.Add(time.Hour)
	good := cert(t, alice, node, identity.RoleNode, t0, 24*time.Hour)

	if adm, err := r.Check(node.ID, node.Public, good, now); err != nil || adm.Role != identity.RoleNode {
		t.Fatalf("operator-issued certificate: %+v %v", adm, err)
	}
	if _, err := r.Check(node.ID, node.Public, nil, now); !errors.Is(err, trust.ErrNoCertificate) {
		t.Fatalf("no certificate: %v", err)
	}
	if _, err := r.Check(node.ID, node.Public, cert(t, mallory, node, identity.RoleNode, t0, time.Hour), now.Add(-30*time.Minute)); !errors.Is(err, trust.ErrUntrustedIssuer) {
		t.Fatalf("self-made issuer: %v", err)
	}
	if _, err := r.Check(node.ID, node.Public, good, t0.Add(25*time.Hour)); !errors.Is(err, identity.ErrCertificateExpired) {
		t.Fatalf("expired: %v", err)
	}
	other := identitytest.Key(t, "other")
	if _, err := r.Check(other.ID, other.Public, good, now); !errors.Is(err, identity.ErrCertificateSubject) {
		t.Fatalf("someone else's certificate: %v", err)
	}
	if _, err := r.Check(node.ID, other.Public, good, now); !errors.Is(err, identity.ErrCertificateSubject) {
		t.Fatalf("id not derived from key: %v", err)
	}
	wrongCluster, _ := identity.NewNodeCertificate(identity.KeySigner{K: alice}, "elsewhere", node.Public, identity.RoleNode, t0, time.Hour*24)
	if _, err := r.Check(node.ID, node.Public, wrongCluster, now); !errors.Is(err, identity.ErrCertificateSubject) {
		t.Fatalf("another cluster's certificate: %v", err)
	}
	forged := *good
	forged.Role = identity.RoleConsole // re-signed by nobody
	if _, err := r.Check(node.ID, node.Public, &forged, now); !errors.Is(err, identity.ErrCertificate) {
		t.Fatalf("tampered certificate: %v", err)
	}
	if _, ok := r.Known(node.ID, now); !ok {
		t.Fatal("a node that proved membership is not Known")
	}
}

// TestRegistryLedgerAdmissionAndRevocation: an admission stands in for a
// certificate (for the admitted key only); a revocation beats both.
func TestRegistryLedgerAdmissionAndRevocation(t *testing.T) {
	alice, node, imposter := identitytest.Key(t, "alice"), identitytest.Key(t, "node"), identitytest.Key(t, "imposter")
	g := genesis(t, "alice")
	admit := event(t, api.Action{Verb: api.VerbAdmitNode, Node: node.ID, OperatorKey: node.Public}, t0, 1, alice)
	r := trust.New(cluster, fold(t, g))
	now := t0.Add(time.Minute)
	if _, err := r.Check(node.ID, node.Public, nil, now); err == nil {
		t.Fatal("admitted before the admission")
	}
	gen := r.Generation()
	if !r.Update(fold(t, g, admit)) || r.Generation() == gen {
		t.Fatal("an admission did not change the registry")
	}
	if adm, err := r.Check(node.ID, node.Public, nil, now); err != nil || adm.Role != identity.RoleNode {
		t.Fatalf("ledger admission: %+v %v", adm, err)
	}
	if _, err := r.Check(imposter.ID, imposter.Public, nil, now); err == nil {
		t.Fatal("an unadmitted key admitted")
	}
	good := cert(t, alice, node, identity.RoleNode, t0, 24*time.Hour)
	revoke := event(t, api.Action{Verb: api.VerbRevokeNode, Node: node.ID}, t0.Add(time.Second), 2, alice)
	r.Update(fold(t, g, admit, revoke))
	if _, err := r.Check(node.ID, node.Public, good, now); !errors.Is(err, trust.ErrRevoked) {
		t.Fatalf("revoked node with a valid certificate: %v", err)
	}
	if _, ok := r.Known(node.ID, now); ok {
		t.Fatal("a revoked node is still Known")
	}
}

// TestAttackRemovedOperatorCertificatesLapse: a removed operator's
// certificates (its consoles, a node it minted after removal) stop counting
// the moment the removal is folded; a rotated operator's old key keeps the
// certificates it issued before the rotation, and none it issues after.
func TestAttackRemovedOperatorCertificatesLapse(t *testing.T) {
	alice, bob, bob2 := identitytest.Key(t, "alice"), identitytest.Key(t, "bob"), identitytest.Key(t, "bob-2")
	console, minted := identitytest.Key(t, "bob-console"), identitytest.Key(t, "minted")
	g := genesis(t, "alice", "bob")
	r := trust.New(cluster, fold(t, g))
	now := t0.Add(time.Hour)
	bobConsole := cert(t, bob, console, identity.RoleConsole, t0, identity.ConsoleCertificateLifetime)
	if _, err := r.Check(console.ID, console.Public, bobConsole, now); err != nil {
		t.Fatalf("bob's console before removal: %v", err)
	}
	remove := event(t, api.Action{Verb: api.VerbRemoveOperator, OperatorID: bob.ID}, t0.Add(time.Minute), 1, alice)
	r.Update(fold(t, g, remove))
	if _, err := r.Check(console.ID, console.Public, bobConsole, now); !errors.Is(err, trust.ErrUntrustedIssuer) {
		t.Fatalf("removed operator's console: %v", err)
	}
	backdated := cert(t, bob, minted, identity.RoleNode, t0.Add(-time.Hour), 24*time.Hour)
	if _, err := r.Check(minted.ID, minted.Public, backdated, now); !errors.Is(err, trust.ErrUntrustedIssuer) {
		t.Fatalf("removed operator's backdated node certificate: %v", err)
	}

	// Rotation instead of removal.
	rotate := event(t, api.Action{Verb: api.VerbRotateOperator, OperatorID: bob.ID, OperatorKey: bob2.Public}, t0.Add(time.Minute), 2, bob, bob2)
	r.Update(fold(t, g, rotate))
	if _, err := r.Check(console.ID, console.Public, bobConsole, now); err != nil {
		t.Fatalf("certificate issued before a rotation: %v", err)
	}
	after := cert(t, bob, minted, identity.RoleNode, t0.Add(2*time.Minute), time.Hour)
	if _, err := r.Check(minted.ID, minted.Public, after, t0.Add(3*time.Minute)); !errors.Is(err, trust.ErrUntrustedIssuer) {
		t.Fatalf("certificate issued by a rotated-away key after the rotation: %v", err)
	}
	if !r.Issuer(bob2.Public) || r.Issuer(bob.Public) {
		t.Fatal("Issuer: the current key issues, the retired one does not")
	}
}
