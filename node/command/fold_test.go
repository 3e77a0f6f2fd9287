package command

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/identity/identitytest"
	"github.com/deck-mesh/deck/node/placement"
	"github.com/deck-mesh/deck/node/snapshot"
)

// applyAll applies events in the given order and returns each verdict.
func applyAll(st *AdminState, evs ...*Event) []error {
	var out []error
	for _, e := range evs {
		out = append(out, st.Apply(e))
	}
	return out
}

// wantRejected checks err is the named rejection and wraps the api error the
// CLI maps to its exit code.
func wantRejected(t *testing.T, err, reason, apiErr error) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted, want %v", reason)
	}
	if !errors.Is(err, reason) || !errors.Is(err, apiErr) {
		t.Fatalf("got %v, want %v wrapping %v", err, reason, apiErr)
	}
	if !IsRejection(err) {
		t.Fatalf("%v is not classed as a rejection", err)
	}
}

func TestRejectUnregisteredOperator(t *testing.T) {
	st := mustState(t, genesisOf(t, 1, 1, "alice"))
	mallory := identitytest.Key(t, "mallory")
	err := st.Apply(ev(t, api.Action{Verb: api.VerbCordon, Node: 0x1001}, 0, 1, mallory))
	wantRejected(t, err, ErrUnknownOperator, api.ErrPermission)
	if st.NodeIntent(0x1001).Cordoned {
		t.Fatal("rejected event changed the state")
	}
	if st.Applied() != 1 || st.Accepted() != 0 {
		t.Fatalf("applied %d accepted %d", st.Applied(), st.Accepted())
	}
}

func TestRejectBadSignature(t *testing.T) {
	alice := identitytest.Key(t, "alice")
	st := mustState(t, genesisOf(t, 1, 1, "alice"))
	b := bodyFor(t, api.Action{Verb: api.VerbCordon, Node: 0x1001}, alice, t0, nonceN(1))
	payload, _ := b.SigningPayload()
	sig := alice.Sign(payload)
	sig[10] ^= 0x40
	e, err := NewEvent(b, []api.Signature{{Operator: alice.ID, Sig: sig}})
	if err != nil {
		t.Fatal(err)
	}
	wantRejected(t, st.Apply(e), ErrBadSignature, api.ErrPermission)

	// A valid signature by another key claiming alice's id: the forged-id
	// attack. The key does not derive to the id, so it cannot verify.
	mallory := identitytest.Key(t, "mallory")
	forged, _ := NewEvent(b, []api.Signature{{Operator: alice.ID, Sig: mallory.Sign(payload)}})
	wantRejected(t, st.Apply(forged), ErrBadSignature, api.ErrPermission)
}

func TestRejectWrongPrefix(t *testing.T) {
	alice := identitytest.Key(t, "alice")
	st := mustState(t, genesisOf(t, 1, 1, "alice"))
	// An ICE body signed under the admin prefix: a signature made for one
	// purpose must not verify for another.
	b := bodyFor(t, api.Action{Verb: api.VerbThawCluster}, alice, t0, nonceN(1))
	raw, _ := b.Marshal()
	wrong := append([]byte(AdminPrefix), raw...)
	e, _ := NewEvent(b, []api.Signature{{Operator: alice.ID, Sig: alice.Sign(wrong)}})
	wantRejected(t, st.Apply(e), ErrBadSignature, api.ErrPermission)

	// The payload decoder refuses a wrong or missing prefix outright.
	for name, p := range map[string][]byte{
		"admin prefix on ice body": wrong,
		"no prefix":                raw,
		"near miss":                append([]byte("net-deck-ice-v2:"), raw...),
	} {
		if _, err := DecodeSigningPayload(p); !errors.Is(err, ErrWrongPrefix) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestRejectExpiredWindow(t *testing.T) {
	cs, spec := buildCluster(t, 6, 3, 3, 3, 0.1)
	r := newRig(t, genesisOf(t, 1, 1, "alice"), cs, spec)
	alice := r.console(t, identitytest.Key(t, "alice"))
	p, err := alice.ICE().FlushAvoidLists(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sp, err := p.Simulate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sig, err := sp.Sign()
	if err != nil {
		t.Fatal(err)
	}
	if got := sp.ExpiresAt().Sub(sp.IssuedAt()); got != ICECommitWindow {
		t.Fatalf("window %v", got)
	}
	r.clk.Add(ICECommitWindow + time.Second)
	_, err = sp.Commit(t.Context(), []api.Signature{sig})
	wantRejected(t, err, ErrExpired, api.ErrExpired)
	if _, err := sp.Sign(); !errors.Is(err, api.ErrExpired) {
		t.Fatalf("sign after expiry: %v", err)
	}
	// A co-signer loading the stale payload is told the same.
	if _, err := alice.ICE().Load(t.Context(), sp.SigningPayload()); !errors.Is(err, api.ErrExpired) {
		t.Fatalf("load after expiry: %v", err)
	}
	// Ingestion refuses events from too far in the future.
	e := ev(t, api.Action{Verb: api.VerbCordon, Node: 0x1001}, MaxClockSkew+time.Second, 9, identitytest.Key(t, "alice"))
	if err := CheckIngest(e, testCluster, t0); !errors.Is(err, ErrClockSkew) || !errors.Is(err, api.ErrExpired) {
		t.Fatalf("future event: %v", err)
	}
	if err := CheckIngest(e, testCluster, t0.Add(2*time.Second)); err != nil {
		t.Fatalf("within skew: %v", err)
	}
	if err := CheckIngest(e, "other", t0.Add(2*time.Second)); !errors.Is(err, ErrWrongCluster) {
		t.Fatalf("other cluster: %v", err)
	}
}

func TestRejectReplayedNonce(t *testing.T) {
	alice := identitytest.Key(t, "alice")
	first := ev(t, api.Action{Verb: api.VerbCordon, Node: 0x1001}, 0, 7, alice)
	// A different body reusing the nonce, later in ledger order.
	replay := ev(t, api.Action{Verb: api.VerbCordon, Node: 0x1002}, time.Second, 7, alice)
	for _, order := range [][]*Event{{first, replay}, {replay, first}} {
		st, recs, err := Fold(genesisOf(t, 1, 1, "alice"), order)
		if err != nil {
			t.Fatal(err)
		}
		if recs[0].Outcome != api.Accepted || recs[1].Outcome != api.Rejected {
			t.Fatalf("outcomes %v %v", recs[0].Outcome, recs[1].Outcome)
		}
		if !st.NodeIntent(0x1001).Cordoned || st.NodeIntent(0x1002).Cordoned {
			t.Fatal("the later duplicate won")
		}
	}
	st := mustState(t, genesisOf(t, 1, 1, "alice"))
	errs := applyAll(st, first, replay)
	wantRejected(t, errs[1], ErrReplayedNonce, api.ErrConsumed)
}

func TestSameOperatorTwiceCountsOnce(t *testing.T) {
	alice := identitytest.Key(t, "alice")
	st := mustState(t, genesisOf(t, 2, 2, "alice", "bob"))
	b := bodyFor(t, api.Action{Verb: api.VerbCordon, Node: 0x1001}, alice, t0, nonceN(1))
	payload, _ := b.SigningPayload()
	good := alice.Sign(payload)
	junk := append([]byte(nil), good...)
	junk[0] ^= 1
	// The same signature twice, and alice's id on a second, different
	// signature: either way alice signed once.
	for name, sigs := range map[string][]api.Signature{
		"identical":    {{Operator: alice.ID, Sig: good}, {Operator: alice.ID, Sig: good}},
		"second bytes": {{Operator: alice.ID, Sig: good}, {Operator: alice.ID, Sig: junk}},
	} {
		t.Run(name, func(t *testing.T) {
			e, err := NewEvent(b, sigs)
			if err != nil {
				t.Fatal(err)
			}
			wantRejected(t, st.Clone().Apply(e), ErrBelowThreshold, api.ErrBelowThreshold)
		})
	}
	// Through the ICE commit path too.
	cs, spec := buildCluster(t, 4, 2, 2, 2, 0.1)
	r := newRig(t, genesisOf(t, 1, 2, "alice", "bob"), cs, spec)
	c := r.console(t, alice)
	p, _ := c.ICE().FlushAvoidLists(t.Context())
	sp, err := p.Simulate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := sp.Sign()
	_, err = sp.Commit(t.Context(), []api.Signature{sig, sig})
	wantRejected(t, err, ErrBelowThreshold, api.ErrBelowThreshold)
}

func TestRejectBelowThreshold(t *testing.T) {
	alice, bob, mallory := identitytest.Key(t, "alice"), identitytest.Key(t, "bob"), identitytest.Key(t, "mallory")
	st := mustState(t, genesisOf(t, 2, 3, "alice", "bob", "carol"))
	admin := api.Action{Verb: api.VerbCordon, Node: 0x1001}
	// An unregistered co-signer does not count.
	wantRejected(t, st.Apply(ev(t, admin, 0, 1, alice, mallory)), ErrBelowThreshold, api.ErrBelowThreshold)
	if err := st.Apply(ev(t, admin, time.Second, 2, alice, bob)); err != nil {
		t.Fatalf("2 of 2: %v", err)
	}
	// ICE counts against the ICE threshold (3 here), not the admin one.
	wantRejected(t, st.Apply(ev(t, api.Action{Verb: api.VerbFlushAvoidLists}, 2*time.Second, 3, alice, bob)),
		ErrBelowThreshold, api.ErrBelowThreshold)
}

func TestRejectLockout(t *testing.T) {
	alice := identitytest.Key(t, "alice")
	st := mustState(t, genesisOf(t, 1, 1, "alice"))
	evict := api.Action{Verb: api.VerbForceEvictReplica, Chain: "g000", Peer: 0x1001}
	if err := st.Apply(ev(t, evict, 0, 1, alice)); err != nil {
		t.Fatal(err)
	}
	until, locked := st.LockedOut(evict, t0.Add(time.Second))
	if !locked || !until.Equal(t0.Add(ICECooldown)) {
		t.Fatalf("lockout %v %v", until, locked)
	}
	err := st.Apply(ev(t, evict, ICECooldown-time.Millisecond, 2, alice))
	wantRejected(t, err, ErrLockedOut, api.ErrLockedOut)
	// Another target is not locked out; the same target after the cooldown
	// is not either.
	other := evict
	other.Peer = 0x1002
	if err := st.Apply(ev(t, other, ICECooldown, 3, alice)); err != nil {
		t.Fatalf("other target: %v", err)
	}
	if err := st.Apply(ev(t, evict, ICECooldown, 4, alice)); err != nil {
		t.Fatalf("after cooldown: %v", err)
	}
	if n := len(st.Lockouts(t0.Add(ICECooldown))); n != 2 {
		t.Fatalf("%d live lockouts, want 2", n)
	}
}

func TestRejectFrozen(t *testing.T) {
	alice := identitytest.Key(t, "alice")
	st := mustState(t, genesisOf(t, 1, 1, "alice"))
	freeze := api.Action{Verb: api.VerbFreezeCluster, Reason: "incident", Duration: time.Minute}
	cordon := api.Action{Verb: api.VerbCordon, Node: 0x1001}
	errs := applyAll(st,
		ev(t, freeze, 0, 1, alice),
		ev(t, cordon, 30*time.Second, 2, alice),
		ev(t, api.Action{Verb: api.VerbForceDrain, Node: 0x1002}, 31*time.Second, 3, alice), // ICE still works
		ev(t, cordon, 61*time.Second, 4, alice),                                             // TTL over
	)
	if errs[0] != nil || errs[2] != nil || errs[3] != nil {
		t.Fatalf("verdicts %v", errs)
	}
	wantRejected(t, errs[1], ErrFrozen, api.ErrFrozen)
	f := st.FreezeAt(t0.Add(10 * time.Second))
	if !f.Active || f.Reason != "incident" || f.Operator != alice.ID || !f.Until.Equal(t0.Add(time.Minute)) {
		t.Fatalf("freeze %+v", f)
	}
	if st.FreezeAt(t0.Add(time.Minute)).Active {
		t.Fatal("freeze outlived its TTL")
	}
	// Thaw ends it early.
	st2 := mustState(t, genesisOf(t, 1, 1, "alice"))
	applyAll(st2, ev(t, freeze, 0, 1, alice), ev(t, api.Action{Verb: api.VerbThawCluster}, time.Second, 2, alice))
	if err := st2.Apply(ev(t, cordon, 2*time.Second, 3, alice)); err != nil {
		t.Fatalf("after thaw: %v", err)
	}
}

func TestRegistryChanges(t *testing.T) {
	alice, bob, carol, dave := identitytest.Key(t, "alice"), identitytest.Key(t, "bob"), identitytest.Key(t, "carol"), identitytest.Key(t, "dave")
	add := func(k *identity.Key, name string) api.Action {
		return api.Action{Verb: api.VerbAddOperator, OperatorID: k.ID, OperatorName: name, OperatorKey: k.Public}
	}
	st := mustState(t, genesisOf(t, 1, 1, "alice"))
	steps := []struct {
		name string
		e    *Event
		want error
	}{
		{"add bob", ev(t, add(bob, "bob"), 0, 1, alice), nil},
		{"bob can now sign", ev(t, api.Action{Verb: api.VerbCordon, Node: 1}, time.Second, 2, bob), nil},
		{"add bob again", ev(t, add(bob, "bob"), 2*time.Second, 3, alice), ErrOperatorExists},
		{"carol cannot add herself", ev(t, add(carol, "carol"), 3*time.Second, 4, carol), ErrUnknownOperator},
		{"rotate alice without the new key", ev(t, api.Action{Verb: api.VerbRotateOperator, OperatorID: alice.ID, OperatorKey: carol.Public}, 4*time.Second, 5, alice), ErrRotateUnsigned},
		{"rotate alice by bob and the new key only", ev(t, api.Action{Verb: api.VerbRotateOperator, OperatorID: alice.ID, OperatorKey: carol.Public}, 5*time.Second, 6, bob, carol), ErrRotateUnsigned},
		{"rotate alice to carol's key", ev(t, api.Action{Verb: api.VerbRotateOperator, OperatorID: alice.ID, OperatorKey: carol.Public}, 6*time.Second, 7, alice, carol), nil},
		{"alice's old key is gone", ev(t, api.Action{Verb: api.VerbCordon, Node: 2}, 7*time.Second, 8, alice), ErrUnknownOperator},
		{"remove unknown", ev(t, api.Action{Verb: api.VerbRemoveOperator, OperatorID: dave.ID}, 8*time.Second, 9, bob), ErrNotFound},
		{"remove bob", ev(t, api.Action{Verb: api.VerbRemoveOperator, OperatorID: bob.ID}, 9*time.Second, 10, carol), nil},
		{"remove the last operator", ev(t, api.Action{Verb: api.VerbRemoveOperator, OperatorID: carol.ID}, 10*time.Second, 11, carol), ErrRegistryFloor},
	}
	for _, s := range steps {
		err := st.Apply(s.e)
		switch {
		case s.want == nil && err != nil:
			t.Fatalf("%s: %v", s.name, err)
		case s.want != nil && !errors.Is(err, s.want):
			t.Fatalf("%s: got %v, want %v", s.name, err, s.want)
		}
	}
	ops := st.Operators()
	if len(ops) != 1 || ops[0].ID != carol.ID || ops[0].Name != "alice" {
		t.Fatalf("registry %+v", ops)
	}
	if !ops[0].AddedAt.Equal(t0.Add(6 * time.Second)) {
		t.Fatalf("added at %v", ops[0].AddedAt)
	}
}

func TestGenesisRejects(t *testing.T) {
	alice := identitytest.Key(t, "alice")
	cases := map[string]Genesis{
		"no cluster":         {Operators: []GenesisOperator{{Name: "a", PublicKey: alice.Public}}},
		"no operators":       {Cluster: "c"},
		"short key":          {Cluster: "c", Operators: []GenesisOperator{{Name: "a", PublicKey: alice.Public[:5]}}},
		"duplicate":          {Cluster: "c", Operators: []GenesisOperator{{Name: "a", PublicKey: alice.Public}, {Name: "b", PublicKey: alice.Public}}},
		"threshold > ops":    {Cluster: "c", Operators: []GenesisOperator{{Name: "a", PublicKey: alice.Public}}, ICEThreshold: 2},
		"negative":           {Cluster: "c", Operators: []GenesisOperator{{Name: "a", PublicKey: alice.Public}}, AdminThreshold: -1},
		"control in name":    {Cluster: "c", Operators: []GenesisOperator{{Name: "a\x07", PublicKey: alice.Public}}},
		"control in cluster": {Cluster: "c\n", Operators: []GenesisOperator{{Name: "a", PublicKey: alice.Public}}},
	}
	for name, g := range cases {
		if _, err := NewState(g); !errors.Is(err, ErrBadGenesis) {
			t.Errorf("%s: %v", name, err)
		}
	}
	st := mustState(t, Genesis{Cluster: "c", Operators: []GenesisOperator{{Name: "a", PublicKey: alice.Public}}})
	if a, i := st.Thresholds(); a != DefaultAdminThreshold || i != DefaultICEThreshold {
		t.Fatalf("defaults %d %d", a, i)
	}
}

func TestIntentFromFold(t *testing.T) {
	alice := identitytest.Key(t, "alice")
	st := mustState(t, genesisOf(t, 1, 1, "alice"))
	errs := applyAll(st,
		ev(t, api.Action{Verb: api.VerbCordon, Node: 0x1001}, 0, 1, alice),
		ev(t, api.Action{Verb: api.VerbDrain, Node: 0x1002, Duration: 5 * time.Minute}, time.Second, 2, alice),
		ev(t, api.Action{Verb: api.VerbDropReplicas, Node: 0x1003, Chains: []string{"g000"}}, 2*time.Second, 3, alice),
		ev(t, api.Action{Verb: api.VerbRestartDaemon, Daemon: "g001-0"}, 3*time.Second, 4, alice),
		ev(t, api.Action{Verb: api.VerbForceCutover, Chain: "g001", Peer: 0x1004}, 4*time.Second, 5, alice),
		ev(t, api.Action{Verb: api.VerbForceEvictReplica, Chain: "g002", Peer: 0x1005}, 5*time.Second, 6, alice),
		ev(t, api.Action{Verb: api.VerbKillMigration, Migration: "m1"}, 6*time.Second, 7, alice),
		ev(t, api.Action{Verb: api.VerbFlushAvoidLists}, 7*time.Second, 8, alice),
		ev(t, api.Action{Verb: api.VerbForceDrain, Node: 0x1006}, 8*time.Second, 9, alice),
		ev(t, api.Action{Verb: api.VerbExitMaintenance, Node: 0x1002}, 9*time.Second, 10, alice),
		ev(t, api.Action{Verb: api.VerbRestartDaemon, Daemon: "g001-0"}, 10*time.Second, 11, alice),
	)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	in := st.Intent()
	if !in.Nodes[0x1001].Cordoned {
		t.Error("cordon")
	}
	n2 := in.Nodes[0x1002]
	if n2.Maintenance != placement.MaintIntentExit || n2.MaintGen != 10 || !n2.DrainDeadline.IsZero() {
		t.Errorf("drain then exit: %+v", n2)
	}
	if n3 := in.Nodes[0x1003]; n3.DropReplicasGen != 3 || !reflect.DeepEqual(n3.DropReplicas, []string{"g000"}) {
		t.Errorf("drop replicas: %+v", n3)
	}
	if d := in.Daemons["g001-0"]; d.RestartGen != 11 {
		t.Errorf("restart gen %d: a repeat must take a new generation", d.RestartGen)
	}
	if !reflect.DeepEqual(in.Cutovers, []placement.Cutover{{Chain: "g001", Target: 0x1004, Gen: 5}}) {
		t.Errorf("cutovers %+v", in.Cutovers)
	}
	if !reflect.DeepEqual(in.Evictions, []placement.ReplicaEviction{{Chain: "g002", Node: 0x1005, Gen: 6}}) {
		t.Errorf("evictions %+v", in.Evictions)
	}
	if in.KilledMigrations["m1"] != 7 || in.FlushAvoidGen != 8 {
		t.Errorf("kill %d flush %d", in.KilledMigrations["m1"], in.FlushAvoidGen)
	}
	if n6 := in.Nodes[0x1006]; !n6.ForceDrain || n6.Maintenance != placement.MaintIntentEnter {
		t.Errorf("force drain %+v", n6)
	}
	// The drain deadline is issued_at + drain-for, deterministic.
	st2 := mustState(t, genesisOf(t, 1, 1, "alice"))
	st2.Apply(ev(t, api.Action{Verb: api.VerbDrain, Node: 0x1002, Duration: 5 * time.Minute}, 0, 1, alice))
	if got := st2.NodeIntent(0x1002).DrainDeadline; !got.Equal(t0.Add(5 * time.Minute)) {
		t.Errorf("deadline %v", got)
	}
	// Intent is a copy.
	in.Nodes[0x1003] = placement.NodeIntent{}
	if st.NodeIntent(0x1003).DropReplicasGen == 0 {
		t.Error("Intent aliases the state")
	}
}

func TestSnapshotFieldsAndAudit(t *testing.T) {
	alice, mallory := identitytest.Key(t, "alice"), identitytest.Key(t, "mallory")
	evs := []*Event{
		ev(t, api.Action{Verb: api.VerbFreezeCluster, Reason: "r", Duration: time.Minute}, 0, 1, alice),
		ev(t, api.Action{Verb: api.VerbCordon, Node: 1}, time.Second, 2, mallory),
	}
	st, recs, err := Fold(genesisOf(t, 1, 1, "alice", "bob"), evs)
	if err != nil {
		t.Fatal(err)
	}
	if recs[0].Outcome != api.Accepted || !recs[0].ICE || recs[0].Operator != alice.ID || recs[0].Seq != 1 {
		t.Fatalf("accepted record %+v", recs[0])
	}
	if recs[1].Outcome != api.Rejected || recs[1].Reason == "" || recs[1].EventID != evs[1].ID().String() {
		t.Fatalf("rejected record %+v", recs[1])
	}
	cs := &snapshot.ClusterSnapshot{}
	st.FillSnapshot(cs, t0.Add(time.Second))
	if !cs.Freeze.Active || len(cs.Operators) != 2 || cs.AdminThreshold != 1 || len(cs.Lockouts) != 1 {
		t.Fatalf("snapshot fields %+v", cs)
	}
}

// TestFoldDeterminism is the convergence property: any arrival order of the
// same events (accepted and rejected mixed, ties on issued_at, replays,
// lockouts, freezes, registry changes) folds to the identical state and
// audit trail.
func TestFoldDeterminism(t *testing.T) {
	alice, bob, carol, mallory := identitytest.Key(t, "alice"), identitytest.Key(t, "bob"), identitytest.Key(t, "carol"), identitytest.Key(t, "mallory")
	g := genesisOf(t, 1, 2, "alice", "bob")
	r := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 20; trial++ {
		var evs []*Event
		signers := [][]*identity.Key{{alice}, {bob}, {alice, bob}, {mallory}, {carol}, {bob, carol}}
		for i := 0; i < 60; i++ {
			// Coarse times so many events tie on issued_at and the id
			// decides.
			at := time.Duration(r.IntN(30)) * 10 * time.Second
			n := r.IntN(50) + 1 // nonces collide on purpose
			var a api.Action
			switch r.IntN(9) {
			case 0:
				a = api.Action{Verb: api.VerbCordon, Node: identity.NodeID(r.IntN(4) + 1)}
			case 1:
				a = api.Action{Verb: api.VerbUncordon, Node: identity.NodeID(r.IntN(4) + 1)}
			case 2:
				a = api.Action{Verb: api.VerbDrain, Node: identity.NodeID(r.IntN(4) + 1), Duration: time.Minute}
			case 3:
				a = api.Action{Verb: api.VerbFreezeCluster, Reason: fmt.Sprint("f", i), Duration: time.Duration(r.IntN(60)+5) * time.Second}
			case 4:
				a = api.Action{Verb: api.VerbThawCluster}
			case 5:
				a = api.Action{Verb: api.VerbForceEvictReplica, Chain: "c", Peer: identity.NodeID(r.IntN(2) + 1)}
			case 6:
				a = api.Action{Verb: api.VerbAddOperator, OperatorID: carol.ID, OperatorName: "carol", OperatorKey: carol.Public}
			case 7:
				a = api.Action{Verb: api.VerbRemoveOperator, OperatorID: carol.ID}
			case 8:
				a = api.Action{Verb: api.VerbRestartDaemon, Daemon: fmt.Sprint("d", r.IntN(3))}
			}
			ks := signers[r.IntN(len(signers))]
			evs = append(evs, signed(t, bodyFor(t, a, ks[0], t0.Add(at), nonceN(n)), ks...))
		}
		ref, refRecs, err := Fold(g, evs)
		if err != nil {
			t.Fatal(err)
		}
		accepted := 0
		for _, rec := range refRecs {
			if rec.Outcome == api.Accepted {
				accepted++
			}
		}
		if accepted == 0 || accepted == len(refRecs) {
			t.Fatalf("trial %d: %d of %d accepted: the mix does not exercise both outcomes", trial, accepted, len(refRecs))
		}
		for k := 0; k < 5; k++ {
			st, recs, err := Fold(g, shuffled(evs, r))
			if err != nil {
				t.Fatal(err)
			}
			if !st.Equal(ref) {
				t.Fatalf("trial %d order %d: state differs", trial, k)
			}
			if !reflect.DeepEqual(recs, refRecs) {
				t.Fatalf("trial %d order %d: audit differs", trial, k)
			}
			if !reflect.DeepEqual(st.Intent(), ref.Intent()) {
				t.Fatalf("trial %d order %d: intent differs", trial, k)
			}
		}
	}
}

// TestFoldCopiesWithDifferentSignatures: a ledger keyed by LedgerKey holds
// both copies of one body when they carry different signature sets; every
// node accepts the one that meets the threshold and rejects the other, in
// any arrival order.
func TestFoldCopiesWithDifferentSignatures(t *testing.T) {
	alice, bob := identitytest.Key(t, "alice"), identitytest.Key(t, "bob")
	g := genesisOf(t, 2, 2, "alice", "bob")
	b := bodyFor(t, api.Action{Verb: api.VerbCordon, Node: 1}, alice, t0, nonceN(1))
	weak, strong := signed(t, b, alice), signed(t, b, alice, bob)
	if weak.LedgerKey() == strong.LedgerKey() || weak.ID() != strong.ID() {
		t.Fatal("copies must share the body id and differ in ledger key")
	}
	var ref *AdminState
	for _, order := range [][]*Event{{weak, strong}, {strong, weak}, {strong, weak, strong}} {
		st, recs, err := Fold(g, order)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 2 || !st.NodeIntent(1).Cordoned || st.Accepted() != 1 {
			t.Fatalf("records %+v accepted %d", recs, st.Accepted())
		}
		if ref != nil && !st.Equal(ref) {
			t.Fatal("arrival order changed the state")
		}
		ref = st
	}
}

func TestNoncesAreForgottenDeterministically(t *testing.T) {
	alice := identitytest.Key(t, "alice")
	st := mustState(t, genesisOf(t, 1, 1, "alice"))
	st.Apply(ev(t, api.Action{Verb: api.VerbCordon, Node: 1}, 0, 1, alice))
	if !st.NonceUsed(nonceN(1)) {
		t.Fatal("nonce not remembered")
	}
	st.Apply(ev(t, api.Action{Verb: api.VerbCordon, Node: 2}, NonceRetention+time.Second, 2, alice))
	if st.NonceUsed(nonceN(1)) {
		t.Fatal("nonce outlived its retention")
	}
}
