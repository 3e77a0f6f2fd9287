package subnet_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/identity/identitytest"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/node/subnet"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// fixture: an operator certifying nodes into subnets, and the store's
// membership check, which believes exactly the operator's certificates.
type fixture struct {
	op    *identity.Key
	certs map[identity.NodeID][]byte
}

func newFixture(t testing.TB) *fixture {
	return &fixture{op: identitytest.Key(t, "operator"), certs: map[identity.NodeID][]byte{}}
}

// node is a key named name certified into subnet path.
func (f *fixture) node(t testing.TB, name, path string) *identity.Key {
	t.Helper()
	k := identitytest.Key(t, name)
	c, err := identity.NewSubnetCertificate(identity.KeySigner{K: f.op}, "test", path, k.Public, identity.RoleNode, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	f.certs[k.ID] = b
	return k
}

func (f *fixture) member(id identity.NodeID, key ed25519.PublicKey, cert []byte, now time.Time) (identity.Role, string, error) {
	c, err := identity.UnmarshalCertificate(cert)
	if err != nil {
		return 0, "", err
	}
	if err := c.VerifySignature(); err != nil {
		return 0, "", err
	}
	if !c.Issuer.Equal(f.op.Public) {
		return 0, "", errors.New("untrusted issuer")
	}
	if err := c.CheckSubject("test", id, key, now); err != nil {
		return 0, "", err
	}
	return c.Role, c.Subnet, nil
}

// summary is a signed summary of path by k for group, generation gen.
func (f *fixture) summary(t testing.TB, k *identity.Key, path string, gen uint64, group ...*identity.Key) *subnet.Signed {
	t.Helper()
	s := &subnet.Signed{Summary: snapshot.SubnetSummary{Path: path, Generation: gen, BuiltAt: t0, Nodes: [3]int{3, 0, 0}}, Desired: len(group)}
	for _, g := range group {
		s.Group = append(s.Group, g.ID)
	}
	sortIDs(s.Group)
	if err := subnet.Sign(k, f.certs[k.ID], s); err != nil {
		t.Fatal(err)
	}
	// Through the wire form, as a receiver gets it.
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	out, err := subnet.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sortIDs(ids []identity.NodeID) {
	for i := 1; i < len(ids); i++ {
		for j := i; j > 0 && ids[j] < ids[j-1]; j-- {
			ids[j], ids[j-1] = ids[j-1], ids[j]
		}
	}
}

func accept(t *testing.T, st *subnet.Store, s *subnet.Signed, now time.Time) {
	t.Helper()
	if ok, err := st.Accept(s, now); !ok || err != nil {
		t.Fatalf("Accept = %v, %v; want accepted", ok, err)
	}
}

func TestSummaryRoundTrip(t *testing.T) {
	f := newFixture(t)
	a := f.node(t, "a", "eu/ams")
	s := f.summary(t, a, "eu/ams", 7, a)
	s.Summary.Children = []string{"eu/ams/r1", "eu/ams/r2"}
	s.Members = []identity.NodeID{a.ID}
	if err := subnet.Sign(a, f.certs[a.ID], s); err != nil {
		t.Fatal(err)
	}
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := subnet.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got.Summary) != fmt.Sprint(s.Summary) || fmt.Sprint(got.Members) != fmt.Sprint(s.Members) {
		t.Fatalf("round trip\n got %+v\nwant %+v", got, s)
	}
	for cut := range len(b) {
		if _, err := subnet.Decode(b[:cut]); err == nil {
			t.Fatalf("a summary cut at %d of %d bytes decoded", cut, len(b))
		}
	}
	if _, err := subnet.Decode(append(b, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
}

// TestAttackForgedOrUnsignedSummary: a summary whose figures were changed
// after signing, one signed by another key than the aggregator it names,
// and one with no signature are all refused; the honest one is held.
func TestAttackForgedOrUnsignedSummary(t *testing.T) {
	f := newFixture(t)
	a := f.node(t, "a", "eu")
	mallory := f.node(t, "mallory", "eu")
	st := subnet.NewStore(f.member, nil)

	tampered := f.summary(t, a, "eu", 1, a)
	tampered.Summary.Nodes[snapshot.Unreachable] = 40 // "the subnet is down"
	if ok, err := st.Accept(tampered, t0); ok || !errors.Is(err, subnet.ErrSignature) {
		t.Fatalf("tampered: %v, %v; want ErrSignature", ok, err)
	}
	borrowed := f.summary(t, mallory, "eu", 1, mallory)
	borrowed.Summary.Aggregator, borrowed.Group = a.ID, []identity.NodeID{a.ID} // names a, signed by mallory
	borrowed.Cert, borrowed.Key = f.certs[a.ID], a.Public
	if ok, err := st.Accept(borrowed, t0); ok || !errors.Is(err, subnet.ErrSignature) {
		t.Fatalf("signed by another key: %v, %v; want ErrSignature", ok, err)
	}
	unsigned := f.summary(t, a, "eu", 1, a)
	unsigned.Summary.Signature = nil
	if ok, err := st.Accept(unsigned, t0); ok || !errors.Is(err, subnet.ErrSignature) {
		t.Fatalf("unsigned: %v, %v; want ErrSignature", ok, err)
	}
	if _, err := unsigned.Encode(); err == nil {
		t.Fatal("an unsigned summary encodes")
	}
	if _, ok := st.Get("eu"); ok {
		t.Fatal("a forged summary was stored")
	}
	accept(t, st, f.summary(t, a, "eu", 1, a), t0)
	if s := st.Stats(); s.BadSignature != 3 || s.Accepted != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestAttackSummaryFromAnotherSubnetsMember: a certified node of "us"
// signs a summary for "eu" (poisoning a subnet it is not in): refused,
// whatever group it claims.
func TestAttackSummaryFromAnotherSubnetsMember(t *testing.T) {
	f := newFixture(t)
	outsider := f.node(t, "outsider", "us")
	st := subnet.NewStore(f.member, nil)
	if ok, err := st.Accept(f.summary(t, outsider, "eu", 1, outsider), t0); ok || !errors.Is(err, subnet.ErrNotMember) {
		t.Fatalf("Accept = %v, %v; want ErrNotMember", ok, err)
	}
	uncertified := identitytest.Key(t, "uncertified")
	s := f.summary(t, uncertified, "eu", 1, uncertified)
	if ok, err := st.Accept(s, t0); ok || !errors.Is(err, subnet.ErrNotMember) {
		t.Fatalf("uncertified: Accept = %v, %v; want ErrNotMember", ok, err)
	}
}

// TestAttackSummaryFromNonAggregator: while the subnet's aggregator group
// (a, b, c) publishes, another certified member of the subnet (mallory,
// not in the group) signs a newer summary naming herself the group: it is
// refused while the held summary is fresh, and also by a node that places
// the group itself, however stale.
func TestAttackSummaryFromNonAggregator(t *testing.T) {
	f := newFixture(t)
	a, b, c := f.node(t, "a", "eu"), f.node(t, "b", "eu"), f.node(t, "c", "eu")
	mallory := f.node(t, "mallory", "eu")
	st := subnet.NewStore(f.member, nil)
	accept(t, st, f.summary(t, a, "eu", 5, a, b, c), t0)
	if ok, err := st.Accept(f.summary(t, mallory, "eu", 6, mallory), t0.Add(time.Second)); ok || !errors.Is(err, subnet.ErrNotAggregator) {
		t.Fatalf("Accept = %v, %v; want ErrNotAggregator", ok, err)
	}
	// A replacement leader from the old group continues.
	accept(t, st, f.summary(t, b, "eu", 6, b, c, f.node(t, "d", "eu")), t0.Add(2*time.Second))

	local := subnet.NewStore(f.member, func(path string) ([]identity.NodeID, bool) {
		return []identity.NodeID{a.ID, b.ID, c.ID}, path == "eu"
	})
	if ok, err := local.Accept(f.summary(t, mallory, "eu", 1, mallory), t0); ok || !errors.Is(err, subnet.ErrNotAggregator) {
		t.Fatalf("member of the subnet: Accept = %v, %v; want ErrNotAggregator", ok, err)
	}
	// A signer outside its own claimed group is malformed at the source.
	s := &subnet.Signed{Summary: snapshot.SubnetSummary{Path: "eu", Generation: 9, BuiltAt: t0}, Group: []identity.NodeID{a.ID}}
	if err := subnet.Sign(mallory, f.certs[mallory.ID], s); !errors.Is(err, subnet.ErrNotAggregator) {
		t.Fatalf("Sign outside the group = %v, want ErrNotAggregator", err)
	}
}

// TestAttackReplayedOlderGeneration: a summary of a generation the store
// already passed (a captured old one, replayed) is refused; the same
// generation again is a duplicate, not an error.
func TestAttackReplayedOlderGeneration(t *testing.T) {
	f := newFixture(t)
	a := f.node(t, "a", "eu")
	st := subnet.NewStore(f.member, nil)
	old := f.summary(t, a, "eu", 3, a)
	accept(t, st, old, t0)
	accept(t, st, f.summary(t, a, "eu", 4, a), t0.Add(time.Second))
	if ok, err := st.Accept(old, t0.Add(2*time.Second)); ok || !errors.Is(err, subnet.ErrReplay) {
		t.Fatalf("replay: Accept = %v, %v; want ErrReplay", ok, err)
	}
	if ok, err := st.Accept(f.summary(t, a, "eu", 4, a), t0.Add(2*time.Second)); ok || err != nil {
		t.Fatalf("duplicate: Accept = %v, %v; want false, nil", ok, err)
	}
	if e, _ := st.Get("eu"); e.Summary.Generation != 4 {
		t.Fatalf("held generation %d, want 4", e.Summary.Generation)
	}
	if s := st.Stats(); s.Replays != 1 || s.Duplicates != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestSummaryTimeWindow: built too far ahead or too long ago: refused.
func TestSummaryTimeWindow(t *testing.T) {
	f := newFixture(t)
	a := f.node(t, "a", "eu")
	st := subnet.NewStore(f.member, nil)
	s := f.summary(t, a, "eu", 1, a)
	if ok, err := st.Accept(s, t0.Add(-time.Minute)); ok || !errors.Is(err, subnet.ErrTime) {
		t.Fatalf("future: %v, %v", ok, err)
	}
	if ok, err := st.Accept(s, t0.Add(2*subnet.MaxAge)); ok || !errors.Is(err, subnet.ErrTime) {
		t.Fatalf("old: %v, %v", ok, err)
	}
}

// TestSummaryWithoutRosterKeepsTheLast: the roster rides only when it
// changed; a summary without one keeps the roster held.
func TestSummaryWithoutRosterKeepsTheLast(t *testing.T) {
	f := newFixture(t)
	a := f.node(t, "a", "eu")
	st := subnet.NewStore(f.member, nil)
	s := f.summary(t, a, "eu", 1, a)
	s.Members = []identity.NodeID{a.ID, a.ID + 1}
	if err := subnet.Sign(a, f.certs[a.ID], s); err != nil {
		t.Fatal(err)
	}
	accept(t, st, s, t0)
	accept(t, st, f.summary(t, a, "eu", 2, a), t0.Add(time.Second))
	if e, _ := st.Get("eu"); e.Summary.Generation != 2 || len(e.Roster) != 2 || len(e.Members) != 0 || e.Verify() != nil {
		t.Fatalf("held %+v, want generation 2 with the roster of 1", e)
	}
}
