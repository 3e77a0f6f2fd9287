package command

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/identity/identitytest"
	"github.com/deck-mesh/deck/node/placement"
	"github.com/deck-mesh/deck/node/snapshot"
)

const testCluster = "test-cluster"

// t0 is a fixed ledger time so tests are reproducible.
var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func genesisOf(tb testing.TB, adminT, iceT int, names ...string) Genesis {
	tb.Helper()
	g := Genesis{Cluster: testCluster, AdminThreshold: adminT, ICEThreshold: iceT}
	for _, n := range names {
		g.Operators = append(g.Operators, GenesisOperator{Name: n, PublicKey: identitytest.Key(tb, n).Public})
	}
	return g
}

func mustState(tb testing.TB, g Genesis) *AdminState {
	tb.Helper()
	st, err := NewState(g)
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

// nonceN is a distinct, non-zero nonce per n.
func nonceN(n int) Nonce {
	var x Nonce
	x[0] = 0xA5
	x[8], x[9], x[10], x[11] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return x
}

// bodyFor builds a body for a with the kind its verb implies.
func bodyFor(tb testing.TB, a api.Action, proposer *identity.Key, at time.Time, n Nonce) Body {
	tb.Helper()
	k, ok := KindOf(a.Verb)
	if !ok {
		tb.Fatalf("unknown verb %q", a.Verb)
	}
	b := Body{Kind: k, Cluster: testCluster, Action: a, Proposer: proposer.ID, Nonce: n, IssuedAtMs: at.UnixMilli()}
	if k == KindICE {
		b.BlastHash = [32]byte{1, 2, 3}
	}
	return b
}

// signed seals b with signatures by each key over its real payload.
func signed(tb testing.TB, b Body, keys ...*identity.Key) *Event {
	tb.Helper()
	payload, err := b.SigningPayload()
	if err != nil {
		tb.Fatal(err)
	}
	var sigs []api.Signature
	for _, k := range keys {
		sigs = append(sigs, api.Signature{Operator: k.ID, Sig: k.Sign(payload)})
	}
	ev, err := NewEvent(b, sigs)
	if err != nil {
		tb.Fatal(err)
	}
	return ev
}

// ev is the short form: action by proposer (signing alone unless more keys
// are given) at t0+offset with nonce n.
func ev(tb testing.TB, a api.Action, offset time.Duration, n int, proposer *identity.Key, more ...*identity.Key) *Event {
	tb.Helper()
	return signed(tb, bodyFor(tb, a, proposer, t0.Add(offset), nonceN(n)), append([]*identity.Key{proposer}, more...)...)
}

// source is the node's view for the command plane in tests: a real
// snapshot, spec and AdminState behind a lock, as the node would hold them.
type source struct {
	mu   sync.Mutex
	cs   *snapshot.ClusterSnapshot
	spec placement.Spec
	st   *AdminState
}

func (s *source) Snapshot() *snapshot.ClusterSnapshot { s.mu.Lock(); defer s.mu.Unlock(); return s.cs }
func (s *source) Spec() placement.Spec                { s.mu.Lock(); defer s.mu.Unlock(); return s.spec }
func (s *source) AdminState() *AdminState             { s.mu.Lock(); defer s.mu.Unlock(); return s.st }

// ledger is an in-memory admin ledger: it folds every committed event into
// a clone of the state and publishes the clone, as the node does.
type ledger struct {
	src    *source
	mu     sync.Mutex
	events []*Event
	errs   []error
}

func (l *ledger) Commit(ctx context.Context, e *Event) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	next, err := Apply(l.src.AdminState(), e)
	l.events = append(l.events, e)
	l.errs = append(l.errs, err)
	l.src.mu.Lock()
	l.src.st = next
	l.src.mu.Unlock()
	return uint64(len(l.events)), nil
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// rig is one console wired to a shared source and ledger.
type rig struct {
	src *source
	led *ledger
	clk *clock
}

func newRig(tb testing.TB, g Genesis, cs *snapshot.ClusterSnapshot, spec placement.Spec) *rig {
	tb.Helper()
	src := &source{cs: cs, spec: spec, st: mustState(tb, g)}
	return &rig{src: src, led: &ledger{src: src}, clk: &clock{t: t0}}
}

// console is a Commands for signer k (nil: read-only) on the rig.
func (r *rig) console(tb testing.TB, k *identity.Key) *Commands {
	tb.Helper()
	cfg := Config{Source: r.src, Committer: r.led, Now: r.clk.Now}
	if k != nil {
		cfg.Signer = identity.KeySigner{K: k}
	}
	c, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// buildCluster makes a realistic snapshot: nodes healthy and active,
// groups of members with chains, placed by MeshOS's own placement and then
// materialised as running daemons and held replicas (leader included), so
// "before" is a settled cluster.
func buildCluster(tb testing.TB, nodes, groups, members, chainReplicas int, load float64) (*snapshot.ClusterSnapshot, placement.Spec) {
	tb.Helper()
	cs := &snapshot.ClusterSnapshot{Cluster: testCluster, BuiltAt: t0, Generation: 7}
	for i := 0; i < nodes; i++ {
		id := identity.NodeID(0x1000 + uint64(i))
		cs.Nodes = append(cs.Nodes, snapshot.NodeView{
			NodeSnapshot: snapshot.NodeSnapshot{ID: id, Label: fmt.Sprintf("n%02d", i), Capabilities: []string{"gpu"}},
			Health:       snapshot.Healthy,
		})
	}
	var spec placement.Spec
	for g := 0; g < groups; g++ {
		spec.Groups = append(spec.Groups, placement.GroupSpec{
			Name: fmt.Sprintf("g%03d", g), Kind: snapshot.GroupReplica, DaemonKind: "worker",
			Members: members, ChainReplicas: chainReplicas, Load: load,
		})
	}
	a := placement.Place(cs, spec, nil)
	byNode := map[identity.NodeID]int{}
	for i := range cs.Nodes {
		byNode[cs.Nodes[i].ID] = i
	}
	for _, id := range a.DaemonIDs() {
		p := a.Daemons[id]
		if p.Node == 0 {
			continue
		}
		v := &cs.Nodes[byNode[p.Node]]
		v.Daemons = append(v.Daemons, snapshot.Daemon{ID: id, Name: id, Kind: p.Kind, Lineage: p.Lineage,
			Node: p.Node, Lifecycle: snapshot.LifecycleRunning})
		v.Resources.Saturation += load
	}
	for g := 0; g < groups; g++ {
		name := placement.ChainName(spec.Groups[g].Name)
		cp := a.Chains[name]
		for _, h := range cp.Holders {
			v := &cs.Nodes[byNode[h]]
			role := snapshot.Follower
			if h == cp.Leader {
				role = snapshot.Leader
			}
			v.Replicas = append(v.Replicas, snapshot.Replica{Chain: name, Role: role, Seq: 10, Term: cp.Term})
		}
		cs.Chains = append(cs.Chains, snapshot.Chain{Name: name, Group: spec.Groups[g].Name, Desired: chainReplicas, Holders: cp.Holders, Leader: cp.Leader})
	}
	return cs, spec
}

// shuffled returns a permutation of evs.
func shuffled(evs []*Event, r *rand.Rand) []*Event {
	out := append([]*Event(nil), evs...)
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}
