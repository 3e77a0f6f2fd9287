package command

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/identity/identitytest"
	"github.com/deck-mesh/deck/node/placement"
)

// TestMofNFlow is the co-signing flow with two operators and an ICE
// threshold of 2: alice proposes and exports the payload, bob loads it,
// checks alice's signature and signs, alice commits with both.
func TestMofNFlow(t *testing.T) {
	cs, spec := buildCluster(t, 6, 4, 3, 3, 0.1)
	r := newRig(t, genesisOf(t, 1, 2, "alice", "bob"), cs, spec)
	alice := r.console(t, identitytest.Key(t, "alice"))
	bob := r.console(t, identitytest.Key(t, "bob"))
	if got := alice.ICE().Threshold(); got != 2 {
		t.Fatalf("threshold %d", got)
	}
	victim := cs.Chains[0].Holders[0]
	p, err := alice.ICE().ForceEvictReplica(t.Context(), cs.Chains[0].Name, victim)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := p.Simulate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	br := sp.BlastRadius()
	if br.Hash == ([32]byte{}) || len(br.Replicas) == 0 {
		t.Fatalf("radius %+v", br)
	}
	aliceSig, err := sp.Sign()
	if err != nil {
		t.Fatal(err)
	}
	// The payload travels as a file, the signature as a text line.
	payload := sp.SigningPayload()
	if !bytes.HasPrefix(payload, []byte(ICEPrefix)) {
		t.Fatal("payload prefix")
	}
	line := FormatSignature(aliceSig)

	r.clk.Add(20 * time.Second) // bob takes a while
	loaded, err := bob.ICE().Load(t.Context(), payload)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.IssuedAt().Equal(sp.IssuedAt()) || loaded.Action().Target() != sp.Action().Target() {
		t.Fatal("loaded proposal differs")
	}
	if lb := loaded.BlastRadius(); lb.Hash != br.Hash {
		t.Fatalf("same cluster, different projection: %v", lb.Warnings)
	}
	parsed, err := ParseSignature(line)
	if err != nil {
		t.Fatal(err)
	}
	if err := loaded.Check(parsed); err != nil {
		t.Fatalf("bob checks alice: %v", err)
	}
	bobSig, err := loaded.Sign()
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Check(bobSig); err != nil {
		t.Fatalf("alice checks bob: %v", err)
	}
	// A tampered co-signature is caught by Check before the commit.
	bad := api.Signature{Operator: bobSig.Operator, Sig: bytes.Clone(bobSig.Sig)}
	bad.Sig[5] ^= 1
	if err := sp.Check(bad); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered: %v", err)
	}
	rec, err := sp.Commit(t.Context(), []api.Signature{aliceSig, bobSig})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Seq != 1 || rec.Operator != identitytest.Key(t, "alice").ID || rec.Verb != api.VerbForceEvictReplica {
		t.Fatalf("receipt %+v", rec)
	}
	if err := r.led.errs[0]; err != nil {
		t.Fatalf("the ledger's fold rejected it: %v", err)
	}
	in := r.src.AdminState().Intent()
	if len(in.Evictions) != 1 || in.Evictions[0].Node != victim {
		t.Fatalf("evictions %+v", in.Evictions)
	}
	// Bob's loaded copy cannot commit the same payload again.
	if _, err := loaded.Commit(t.Context(), []api.Signature{aliceSig, bobSig}); !errors.Is(err, api.ErrConsumed) {
		t.Fatalf("second commit of the nonce: %v", err)
	}
	if _, err := bob.ICE().Load(t.Context(), payload); !errors.Is(err, ErrReplayedNonce) {
		t.Fatalf("load after commit: %v", err)
	}
}

func TestConsumedTypestate(t *testing.T) {
	cs, spec := buildCluster(t, 4, 2, 2, 2, 0.1)
	r := newRig(t, genesisOf(t, 1, 1, "alice"), cs, spec)
	c := r.console(t, identitytest.Key(t, "alice"))
	p, err := c.ICE().FreezeCluster(t.Context(), "maintenance window", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := p.Simulate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Simulate(t.Context()); !errors.Is(err, api.ErrConsumed) {
		t.Fatalf("second Simulate: %v", err)
	}
	sig, _ := sp.Sign()
	if _, err := sp.Commit(t.Context(), []api.Signature{sig}); err != nil {
		t.Fatal(err)
	}
	if _, err := sp.Commit(t.Context(), []api.Signature{sig}); !errors.Is(err, api.ErrConsumed) {
		t.Fatalf("second Commit: %v", err)
	}
	if !r.src.AdminState().FreezeAt(r.clk.Now()).Active {
		t.Fatal("freeze not applied")
	}
	// A failed commit consumes too: retrying means loading the payload.
	p2, _ := c.ICE().ThawCluster(t.Context())
	sp2, _ := p2.Simulate(t.Context())
	if _, err := sp2.Commit(t.Context(), nil); !errors.Is(err, api.ErrBelowThreshold) {
		t.Fatalf("no sigs: %v", err)
	}
	sig2, _ := sp2.Sign()
	if _, err := sp2.Commit(t.Context(), []api.Signature{sig2}); !errors.Is(err, api.ErrConsumed) {
		t.Fatalf("commit after a failed commit: %v", err)
	}
}

func TestUnknownTargetNotFound(t *testing.T) {
	cs, spec := buildCluster(t, 4, 2, 2, 2, 0.1)
	r := newRig(t, genesisOf(t, 1, 1, "alice"), cs, spec)
	c := r.console(t, identitytest.Key(t, "alice"))
	chain := cs.Chains[0]
	var nonHolder identity.NodeID
	for _, v := range cs.Nodes {
		if !holds(&v, chain.Name) {
			nonHolder = v.ID
		}
	}
	cases := []api.Action{
		{Verb: api.VerbDrain, Node: 0xdead},
		{Verb: api.VerbCordon, Node: 0xdead},
		{Verb: api.VerbForceDrain, Node: 0xdead},
		{Verb: api.VerbRestartDaemon, Daemon: "no-such-daemon"},
		{Verb: api.VerbForceRestartDaemon, Daemon: "no-such-daemon"},
		{Verb: api.VerbDropReplicas, Node: cs.Nodes[0].ID, Chains: []string{"no-such-chain"}},
		{Verb: api.VerbForceEvictReplica, Chain: "no-such-chain", Peer: cs.Nodes[0].ID},
		{Verb: api.VerbForceEvictReplica, Chain: chain.Name, Peer: nonHolder},
		{Verb: api.VerbForceCutover, Chain: chain.Name, Peer: 0xdead},
		{Verb: api.VerbKillMigration, Migration: "no-such-migration"},
	}
	for _, a := range cases {
		t.Run(string(a.Verb)+"/"+a.Target(), func(t *testing.T) {
			if _, err := c.Preview(t.Context(), a); !errors.Is(err, api.ErrNotFound) {
				t.Fatalf("preview: %v", err)
			}
			if a.Verb.IsICE() {
				p, err := c.ICE().Propose(t.Context(), a)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := p.Simulate(t.Context()); !errors.Is(err, api.ErrNotFound) {
					t.Fatalf("simulate: %v", err)
				}
			} else if _, err := c.Admin().Commit(t.Context(), a); !errors.Is(err, api.ErrNotFound) {
				t.Fatalf("commit: %v", err)
			}
		})
	}
	if len(r.led.events) != 0 {
		t.Fatal("something was committed")
	}
}

func TestNoSignerIsPermissionDenied(t *testing.T) {
	cs, spec := buildCluster(t, 4, 2, 2, 2, 0.1)
	r := newRig(t, genesisOf(t, 1, 1, "alice"), cs, spec)
	ro := r.console(t, nil)
	if _, err := ro.Admin().Cordon(t.Context(), cs.Nodes[0].ID); !errors.Is(err, api.ErrPermission) {
		t.Fatalf("admin: %v", err)
	}
	if _, err := ro.ICE().ThawCluster(t.Context()); !errors.Is(err, api.ErrPermission) {
		t.Fatalf("propose: %v", err)
	}
	// A read-only console can still load a payload and check it, but not
	// sign: there is no ephemeral fallback key.
	alice := r.console(t, identitytest.Key(t, "alice"))
	p, _ := alice.ICE().FlushAvoidLists(t.Context())
	sp, _ := p.Simulate(t.Context())
	loaded, err := ro.ICE().Load(t.Context(), sp.SigningPayload())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loaded.Sign(); !errors.Is(err, api.ErrPermission) {
		t.Fatalf("sign: %v", err)
	}
	sig, _ := sp.Sign()
	if err := loaded.Check(sig); err != nil {
		t.Fatal(err)
	}
	// And commit others' signatures.
	if _, err := loaded.Commit(t.Context(), []api.Signature{sig}); err != nil {
		t.Fatal(err)
	}
	// An operator key that is not registered signs nothing.
	mallory := r.console(t, identitytest.Key(t, "mallory"))
	p2, _ := mallory.ICE().ThawCluster(t.Context())
	sp2, _ := p2.Simulate(t.Context())
	if _, err := sp2.Sign(); !errors.Is(err, ErrUnknownOperator) {
		t.Fatalf("unregistered sign: %v", err)
	}
	if _, err := mallory.Admin().Cordon(t.Context(), cs.Nodes[0].ID); !errors.Is(err, api.ErrPermission) {
		t.Fatalf("unregistered admin: %v", err)
	}
}

func TestAdminCommands(t *testing.T) {
	cs, spec := buildCluster(t, 5, 3, 2, 2, 0.1)
	r := newRig(t, genesisOf(t, 1, 1, "alice"), cs, spec)
	c := r.console(t, identitytest.Key(t, "alice"))
	ac := c.Admin()
	n0, n1 := cs.Nodes[0].ID, cs.Nodes[1].ID
	calls := []func() (api.Receipt, error){
		func() (api.Receipt, error) { return ac.Cordon(t.Context(), n0) },
		func() (api.Receipt, error) { return ac.Uncordon(t.Context(), n0) },
		func() (api.Receipt, error) { return ac.Drain(t.Context(), n1, 90*time.Second) },
		func() (api.Receipt, error) { return ac.EnterMaintenance(t.Context(), n1, time.Minute) },
		func() (api.Receipt, error) { return ac.ExitMaintenance(t.Context(), n1) },
		func() (api.Receipt, error) { return ac.DropReplicas(t.Context(), n0, []string{"g001", "g000", "g001"}) },
		func() (api.Receipt, error) { return ac.InvalidatePlacement(t.Context(), n0) },
		func() (api.Receipt, error) { return ac.RestartAllDaemons(t.Context(), n0) },
		func() (api.Receipt, error) { return ac.ClearAvoidList(t.Context(), n0) },
		func() (api.Receipt, error) { return ac.RestartDaemon(t.Context(), "g000-0") },
	}
	for i, call := range calls {
		rec, err := call()
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if rec.Seq != uint64(i+1) || rec.EventID == "" {
			t.Fatalf("call %d: receipt %+v", i, rec)
		}
		if err := r.led.errs[i]; err != nil {
			t.Fatalf("call %d rejected by the fold: %v", i, err)
		}
		r.clk.Add(time.Second)
	}
	in := r.src.AdminState().Intent()
	if got := in.Nodes[n0].DropReplicas; len(got) != 2 || got[0] != "g000" {
		t.Fatalf("chains not normalised: %v", got)
	}
	if in.Nodes[n1].Maintenance != placement.MaintIntentExit {
		t.Fatal("maintenance intent")
	}
	// ICE verbs do not go through Admin, nor admin verbs through ICE.
	if _, err := ac.Commit(t.Context(), api.Action{Verb: api.VerbThawCluster}); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("ice through admin: %v", err)
	}
	if _, err := c.ICE().Propose(t.Context(), api.Action{Verb: api.VerbCordon, Node: n0}); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("admin through ice: %v", err)
	}
}

func TestAdminRefusedWhileFrozen(t *testing.T) {
	cs, spec := buildCluster(t, 4, 2, 2, 2, 0.1)
	r := newRig(t, genesisOf(t, 1, 1, "alice"), cs, spec)
	c := r.console(t, identitytest.Key(t, "alice"))
	p, _ := c.ICE().FreezeCluster(t.Context(), "incident", time.Minute)
	sp, _ := p.Simulate(t.Context())
	sig, _ := sp.Sign()
	if _, err := sp.Commit(t.Context(), []api.Signature{sig}); err != nil {
		t.Fatal(err)
	}
	r.clk.Add(time.Second)
	br, err := c.Preview(t.Context(), api.Action{Verb: api.VerbCordon, Node: cs.Nodes[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	if !containsText(br.Warnings, "frozen") {
		t.Fatalf("preview does not warn: %v", br.Warnings)
	}
	if _, err := c.Admin().Cordon(t.Context(), cs.Nodes[0].ID); !errors.Is(err, api.ErrFrozen) {
		t.Fatalf("admin while frozen: %v", err)
	}
	// The lockout shows before the operator tries a second freeze.
	p2, _ := c.ICE().FreezeCluster(t.Context(), "again", time.Minute)
	if _, err := p2.Simulate(t.Context()); !errors.Is(err, api.ErrLockedOut) {
		t.Fatalf("second freeze: %v", err)
	}
}

func TestRegistryCommands(t *testing.T) {
	cs, spec := buildCluster(t, 3, 1, 1, 1, 0.1)
	r := newRig(t, genesisOf(t, 1, 1, "alice"), cs, spec)
	alice := r.console(t, identitytest.Key(t, "alice"))
	bob := identitytest.Key(t, "bob")
	if _, err := alice.AddOperator(t.Context(), "bob", bob.Public); err != nil {
		t.Fatal(err)
	}
	r.clk.Add(time.Second)
	next := identitytest.Key(t, "alice-2026")
	if _, err := alice.RotateOperator(t.Context(), identity.KeySigner{K: next}); err != nil {
		t.Fatal(err)
	}
	for i, err := range r.led.errs {
		if err != nil {
			t.Fatalf("event %d rejected: %v", i, err)
		}
	}
	st := r.src.AdminState()
	if _, ok := st.Operator(next.ID); !ok {
		t.Fatal("rotated key not registered")
	}
	if _, ok := st.Operator(identitytest.Key(t, "alice").ID); ok {
		t.Fatal("old key still registered")
	}
	r.clk.Add(time.Second)
	// The old console's key is no longer an operator.
	if _, err := alice.Admin().Cordon(t.Context(), cs.Nodes[0].ID); !errors.Is(err, api.ErrPermission) {
		t.Fatalf("old key: %v", err)
	}
}

func containsText(ss []string, sub string) bool {
	for _, s := range ss {
		if bytes.Contains([]byte(s), []byte(sub)) {
			return true
		}
	}
	return false
}
