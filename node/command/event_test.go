package command

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity/identitytest"
)

// allActions is one valid action per verb.
func allActions(t testing.TB) []api.Action {
	carol := identitytest.Key(t, "carol")
	return []api.Action{
		{Verb: api.VerbDrain, Node: 0x1001, Duration: 90 * time.Second},
		{Verb: api.VerbEnterMaintenance, Node: 0x1001},
		{Verb: api.VerbExitMaintenance, Node: 0x1001},
		{Verb: api.VerbCordon, Node: 0x1002},
		{Verb: api.VerbUncordon, Node: 0x1002},
		{Verb: api.VerbDropReplicas, Node: 0x1003, Chains: []string{"g000", "g001"}},
		{Verb: api.VerbInvalidatePlacement, Node: 0x1003},
		{Verb: api.VerbRestartAllDaemons, Node: 0x1004},
		{Verb: api.VerbClearAvoidList, Node: 0x1004},
		{Verb: api.VerbRestartDaemon, Daemon: "g000-1"},
		{Verb: api.VerbAddOperator, OperatorID: carol.ID, OperatorName: "carol", OperatorKey: carol.Public},
		{Verb: api.VerbRemoveOperator, OperatorID: carol.ID},
		{Verb: api.VerbRotateOperator, OperatorID: identitytest.Key(t, "alice").ID, OperatorKey: carol.Public},
		{Verb: api.VerbFreezeCluster, Reason: "incident 42 — hands off", Duration: 10 * time.Minute},
		{Verb: api.VerbThawCluster},
		{Verb: api.VerbFlushAvoidLists},
		{Verb: api.VerbForceEvictReplica, Chain: "g000", Peer: 0x1001},
		{Verb: api.VerbForceRestartDaemon, Daemon: "g001-0"},
		{Verb: api.VerbForceCutover, Chain: "g001", Peer: 0x1002},
		{Verb: api.VerbKillMigration, Migration: "mig-7"},
		{Verb: api.VerbForceDrain, Node: 0x1005},
	}
}

func TestEventRoundTrip(t *testing.T) {
	alice, bob := identitytest.Key(t, "alice"), identitytest.Key(t, "bob")
	for i, a := range allActions(t) {
		t.Run(string(a.Verb), func(t *testing.T) {
			e := ev(t, a, time.Duration(i)*time.Second, i+1, alice, bob)
			wire := e.Marshal()
			got, err := DecodeEvent(wire)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got.ID() != e.ID() {
				t.Fatalf("id changed: %s vs %s", got.ID(), e.ID())
			}
			if !bytes.Equal(got.Marshal(), wire) {
				t.Fatal("re-encoding differs: the encoding is not canonical")
			}
			if !reflect.DeepEqual(got.Body(), e.Body()) {
				t.Fatalf("body differs:\n%+v\n%+v", got.Body(), e.Body())
			}
			if !reflect.DeepEqual(got.Signatures(), e.Signatures()) {
				t.Fatal("signatures differ")
			}
			// The signing payload carries the kind's exact prefix.
			prefix := AdminPrefix
			if a.Verb.IsICE() {
				prefix = ICEPrefix
			}
			if !bytes.HasPrefix(got.SigningPayload(), []byte(prefix)) {
				t.Fatalf("payload prefix: %q", got.SigningPayload()[:16])
			}
			b, err := DecodeSigningPayload(got.SigningPayload())
			if err != nil || !reflect.DeepEqual(b, e.Body()) {
				t.Fatalf("payload round trip: %v", err)
			}
		})
	}
}

func TestEventIDIsBodyHash(t *testing.T) {
	alice, bob := identitytest.Key(t, "alice"), identitytest.Key(t, "bob")
	a := api.Action{Verb: api.VerbCordon, Node: 0x1001}
	one := ev(t, a, 0, 1, alice)
	two := ev(t, a, 0, 1, alice, bob)
	if one.ID() != two.ID() {
		t.Fatal("signatures changed the event id")
	}
	other := ev(t, a, 0, 2, alice)
	if other.ID() == one.ID() {
		t.Fatal("different nonce, same id")
	}
}

func TestDecodeEventRejects(t *testing.T) {
	alice := identitytest.Key(t, "alice")
	good := ev(t, api.Action{Verb: api.VerbCordon, Node: 0x1001}, 0, 1, alice).Marshal()
	bodyLen := len(good) - 1 - 72
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"trailing byte", append(append([]byte(nil), good...), 0)},
		{"truncated signature", good[:len(good)-1]},
		{"truncated body", good[:bodyLen-3]},
		{"bad version", mutate(func(b []byte) []byte { b[0] = 9; return b })},
		{"kind mismatch", mutate(func(b []byte) []byte { b[1] = byte(KindICE); return b })},
		{"no signatures", mutate(func(b []byte) []byte { return append(b[:bodyLen], 0) })},
		{"signature count beyond data", mutate(func(b []byte) []byte { b[bodyLen] = 5; return b })},
		{"signature count beyond cap", mutate(func(b []byte) []byte { b[bodyLen] = MaxEventSignatures + 1; return b })},
		{"cluster length beyond cap", mutate(func(b []byte) []byte { b[2] = 200; return b })},
		{"oversized", make([]byte, MaxEventBytes+1)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := DecodeEvent(c.in); err == nil {
				t.Fatal("decoded")
			} else if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("error %v does not wrap api.ErrInvalid", err)
			}
		})
	}
}

func TestDecodeRejectsNonCanonicalSignatureOrder(t *testing.T) {
	alice, bob := identitytest.Key(t, "alice"), identitytest.Key(t, "bob")
	e := ev(t, api.Action{Verb: api.VerbCordon, Node: 0x1001}, 0, 1, alice, bob)
	wire := e.Marshal()
	n := len(wire)
	// Swap the two (id, sig) records.
	swapped := append([]byte(nil), wire[:n-144]...)
	swapped = append(swapped, wire[n-72:]...)
	swapped = append(swapped, wire[n-144:n-72]...)
	if _, err := DecodeEvent(swapped); !errors.Is(err, ErrMalformed) {
		t.Fatalf("unsorted signatures: %v", err)
	}
}

func TestValidateAction(t *testing.T) {
	cases := []struct {
		name string
		a    api.Action
	}{
		{"unknown verb", api.Action{Verb: "explode", Node: 1}},
		{"missing node", api.Action{Verb: api.VerbCordon}},
		{"extra field", api.Action{Verb: api.VerbCordon, Node: 1, Daemon: "x"}},
		{"freeze ttl too short", api.Action{Verb: api.VerbFreezeCluster, Duration: time.Second}},
		{"freeze ttl too long", api.Action{Verb: api.VerbFreezeCluster, Duration: time.Hour}},
		{"negative drain", api.Action{Verb: api.VerbDrain, Node: 1, Duration: -time.Second}},
		{"sub-millisecond", api.Action{Verb: api.VerbDrain, Node: 1, Duration: time.Microsecond}},
		{"escape in reason", api.Action{Verb: api.VerbFreezeCluster, Duration: time.Minute, Reason: "\x1b[2Jgotcha"}},
		{"invalid utf-8", api.Action{Verb: api.VerbRestartDaemon, Daemon: "\xff"}},
		{"long daemon", api.Action{Verb: api.VerbRestartDaemon, Daemon: strings.Repeat("d", MaxNameBytes+1)}},
		{"unsorted chains", api.Action{Verb: api.VerbDropReplicas, Node: 1, Chains: []string{"b", "a"}}},
		{"duplicate chains", api.Action{Verb: api.VerbDropReplicas, Node: 1, Chains: []string{"a", "a"}}},
		{"add with wrong id", api.Action{Verb: api.VerbAddOperator, OperatorID: 5, OperatorName: "x", OperatorKey: make([]byte, 32)}},
		{"short key", api.Action{Verb: api.VerbRotateOperator, OperatorID: 5, OperatorKey: make([]byte, 31)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := ValidateAction(&c.a); !errors.Is(err, ErrBadAction) {
				t.Fatalf("got %v, want ErrBadAction", err)
			}
		})
	}
	for _, a := range allActions(t) {
		if err := ValidateAction(&a); err != nil {
			t.Errorf("%s: %v", a.Verb, err)
		}
	}
}

func TestSignatureText(t *testing.T) {
	alice := identitytest.Key(t, "alice")
	sig := api.Signature{Operator: alice.ID, Sig: alice.Sign([]byte("x"))}
	text := FormatSignature(sig)
	if !strings.HasPrefix(text, "deck-sig:") {
		t.Fatal(text)
	}
	got, err := ParseSignature("  " + text + "\n")
	if err != nil || !reflect.DeepEqual(got, sig) {
		t.Fatalf("round trip: %v %+v", err, got)
	}
	bad := []string{
		"",
		"deck-sig:",
		"sig:0000000000000001:" + strings.Repeat("A", 86) + "==",
		"deck-sig:0000000000000000:" + strings.Repeat("A", 86) + "==",
		"deck-sig:zz00000000000001:" + strings.Repeat("A", 86) + "==",
		"deck-sig:01:" + strings.Repeat("A", 86) + "==",
		"deck-sig:0000000000000001:AAAA",
		"deck-sig:0000000000000001:" + strings.Repeat("A", 200),
		"deck-sig:0000000000000001:" + strings.Repeat("!", 88),
		"deck-sig:0000000000000001" + strings.Repeat("A", 88),
		strings.Repeat("x", MaxSignatureTextBytes+1),
	}
	for _, s := range bad {
		if _, err := ParseSignature(s); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%q: %v", s, err)
		}
	}
}

func TestMergeUnionsSignatures(t *testing.T) {
	alice, bob, carol := identitytest.Key(t, "alice"), identitytest.Key(t, "bob"), identitytest.Key(t, "carol")
	b := bodyFor(t, api.Action{Verb: api.VerbCordon, Node: 1}, alice, t0, nonceN(1))
	ab := signed(t, b, alice, bob)
	ac := signed(t, b, alice, carol)
	m1, err := Merge(ab, ac)
	if err != nil {
		t.Fatal(err)
	}
	m2, _ := Merge(ac, ab)
	if !bytes.Equal(m1.Marshal(), m2.Marshal()) {
		t.Fatal("merge is not commutative")
	}
	if n := len(m1.Signatures()); n != 3 {
		t.Fatalf("%d signatures, want 3", n)
	}
	other := ev(t, api.Action{Verb: api.VerbCordon, Node: 2}, 0, 2, alice)
	if _, err := Merge(ab, other); err == nil {
		t.Fatal("merged different events")
	}
}
