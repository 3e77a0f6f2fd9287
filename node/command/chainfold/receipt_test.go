package chainfold

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/codec"
	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/identity/identitytest"
)

func testReceipts(t testing.TB) []Receipt {
	t.Helper()
	op, a, b := identitytest.Key(t, "alice"), identitytest.Key(t, "node-a"), identitytest.Key(t, "node-b")
	var out []Receipt
	for i, k := range []*identity.Key{a, b} {
		var cert []byte
		if i == 0 {
			c, err := identity.NewNodeCertificate(identity.KeySigner{K: op}, cluster, k.Public, identity.RoleNode, t0, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if cert, err = c.Marshal(); err != nil {
				t.Fatal(err)
			}
		}
		r, err := SignReceipt(k, cert, [32]byte{byte(i + 1)}, t0.Add(time.Duration(i)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func TestReceiptsRoundTripAndVerify(t *testing.T) {
	rs := testReceipts(t)
	b, err := AppendReceipts(nil, rs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeReceipts(b)
	if err != nil || !reflect.DeepEqual(got, rs) {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	if err := got[0].VerifySignature([32]byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := got[0].VerifySignature([32]byte{2}); !errors.Is(err, ErrReceipt) {
		t.Fatalf("receipt verified for another event: %v", err)
	}
	// Every signed field is covered: changing one breaks the signature.
	for name, mutate := range map[string]func(r *Receipt){
		"time":        func(r *Receipt) { r.ReceivedAtMs++ },
		"certificate": func(r *Receipt) { r.Cert = append(bytes.Clone(r.Cert[:len(r.Cert)-1]), r.Cert[len(r.Cert)-1]^1) },
		"node":        func(r *Receipt) { r.Node++ },
		"key":         func(r *Receipt) { r.Key = identitytest.Key(t, "node-b").Public },
	} {
		r := got[0]
		mutate(&r)
		if err := r.VerifySignature([32]byte{1}); !errors.Is(err, ErrReceipt) {
			t.Errorf("%s changed, receipt still verifies: %v", name, err)
		}
	}
	if b, err := DecodeReceipts(nil); b != nil || err != nil {
		t.Fatalf("empty attachment: %v %v", b, err)
	}
}

func TestReceiptsRefused(t *testing.T) {
	rs := testReceipts(t)
	good, err := AppendReceipts(nil, rs)
	if err != nil {
		t.Fatal(err)
	}
	five := append(append(append([]Receipt{}, rs...), rs...), rs[0])
	if _, err := AppendReceipts(nil, five); !errors.Is(err, codec.ErrTooLarge) {
		t.Fatalf("encoded %d receipts: %v", len(five), err)
	}
	tooMany := bytes.Clone(good)
	tooMany[1] = MaxReceiptsPerEvent + 1
	for name, b := range map[string][]byte{
		"version":   append([]byte{2}, good[1:]...),
		"count":     tooMany,
		"truncated": good[:len(good)-1],
		"trailing":  append(bytes.Clone(good), 0),
		"huge":      make([]byte, MaxReceiptsBytes+1),
		"short":     {1},
	} {
		if got, err := DecodeReceipts(b); !errors.Is(err, ErrReceipt) {
			t.Errorf("%s: decoded %+v, %v", name, got, err)
		}
	}
}

// FuzzDecodeReceipts: any bytes decode or are refused without a panic, and
// what decodes re-encodes to exactly the same bytes.
func FuzzDecodeReceipts(f *testing.F) {
	rs := testReceipts(f)
	one, err := AppendReceipts(nil, rs[:1])
	if err != nil {
		f.Fatal(err)
	}
	two, err := AppendReceipts(nil, rs)
	if err != nil {
		f.Fatal(err)
	}
	empty, _ := AppendReceipts(nil, nil)
	for _, seed := range [][]byte{one, two, empty, {1}, {1, 5}, {2, 0}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := DecodeReceipts(b)
		if err != nil || len(b) == 0 {
			return
		}
		again, err := AppendReceipts(nil, rs)
		if err != nil {
			t.Fatalf("decoded receipts do not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoded %x from %x", again, b)
		}
	})
}

// TestRegistryHistory: the fold keeps one registry version per accepted
// registry change, looked up by position (a registry event itself is
// checked against the version before it), bounded by MaxRegistryVersions.
func TestRegistryHistory(t *testing.T) {
	alice, bob := identitytest.Key(t, "alice"), identitytest.Key(t, "bob")
	f, err := NewFolder(command.Genesis{Cluster: cluster, Operators: []command.GenesisOperator{{Name: "alice", PublicKey: alice.Public}}})
	if err != nil {
		t.Fatal(err)
	}
	s := f.Init()
	apply := func(ev *command.Event) chain.Position {
		pos := chain.Position{IssuedAtMs: ev.IssuedAtMs(), ID: ev.LedgerKey()}
		s = f.Apply(s, chain.Event{Meta: chain.EventMeta{ID: pos.ID, IssuedAt: pos.IssuedAtMs, Decoded: ev}})
		return pos
	}
	has := func(pos chain.Position, id identity.NodeID) bool {
		reg, err := s.RegistryAt(pos)
		if err != nil {
			t.Fatalf("registry at %d: %v", pos.IssuedAtMs, err)
		}
		_, ok := reg.Operator(id)
		return ok
	}
	var adds, removes []chain.Position
	n := byte(0)
	for i := range MaxRegistryVersions {
		at := time.Duration(i) * time.Minute
		n++
		adds = append(adds, apply(event(t, api.Action{Verb: api.VerbAddOperator, OperatorID: bob.ID, OperatorName: "bob", OperatorKey: bob.Public}, at, n, alice)))
		n++
		removes = append(removes, apply(event(t, api.Action{Verb: api.VerbRemoveOperator, OperatorID: bob.ID}, at+time.Second, n, alice)))
		n++
		apply(event(t, api.Action{Verb: api.VerbCordon, Node: 1}, at+2*time.Second, n, alice)) // not a registry change
	}
	if len(s.Registry) != MaxRegistryVersions {
		t.Fatalf("%d versions kept, want %d", len(s.Registry), MaxRegistryVersions)
	}
	last := len(adds) - 1
	if has(adds[last], bob.ID) || !has(removes[last], bob.ID) {
		t.Fatal("a registry event is checked against the registry after itself")
	}
	between := chain.Position{IssuedAtMs: adds[last].IssuedAtMs + 500}
	if !has(between, bob.ID) || has(chain.Position{IssuedAtMs: removes[last].IssuedAtMs + 500}, bob.ID) {
		t.Fatal("wrong version between the last add and remove")
	}
	// The oldest versions were dropped: an event placed there cannot be
	// checked any more.
	if _, err := s.RegistryAt(chain.Position{IssuedAtMs: adds[0].IssuedAtMs + 500}); !errors.Is(err, ErrRegistryHistory) {
		t.Fatalf("registry at a dropped version: %v", err)
	}
	// A clone taken now is not disturbed by later changes.
	c := f.Clone(s)
	apply(event(t, api.Action{Verb: api.VerbAddOperator, OperatorID: bob.ID, OperatorName: "bob", OperatorKey: bob.Public}, time.Duration(MaxRegistryVersions)*time.Minute, 0xff, alice))
	if len(c.Registry) != MaxRegistryVersions || c.Registry[len(c.Registry)-1].From != removes[last] {
		t.Fatal("a clone's registry history changed")
	}
}
