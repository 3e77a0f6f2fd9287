package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deck-mesh/deck/demo/faultconn"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/command/chainfold"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/nodetest"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/node/transport"
)

// ingestMesh is real nodes on loopback UDP (each socket in the demo's
// fault wrapper, to cut links) sharing one cluster whose genesis registers
// alice and bob (thresholds 1), and a clock the test moves: the nodes'
// ledgers judge freshness by it and stamp receipts with it.
type ingestMesh struct {
	cluster    *config.Cluster
	alice, bob *identity.Key
	clock      *nodetest.Clock
	nodes      []*Node
	opts       []Options
	faults     map[identity.NodeID]*faultconn.Conn
}

func newIngestMesh(t *testing.T) *ingestMesh {
	t.Helper()
	alice, bob := mustKey(t), mustKey(t)
	cl, err := config.NewCluster("ingest", nil, []config.Operator{config.NewOperator("alice", alice.Public), config.NewOperator("bob", bob.Public)}, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	return &ingestMesh{cluster: cl, alice: alice, bob: bob, clock: nodetest.NewClock(time.Now()), faults: map[identity.NodeID]*faultconn.Conn{}}
}

func mustKey(t testing.TB) *identity.Key {
	t.Helper()
	k, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// certBytes is a certificate of role for k issued by op, encoded.
func certBytes(t *testing.T, op *identity.Key, cluster string, k *identity.Key, role identity.Role, now time.Time) []byte {
	t.Helper()
	c, err := identity.NewNodeCertificate(identity.KeySigner{K: op}, cluster, k.Public, role, now, identity.NodeCertificateLifetime)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// meshNode says how to start one node of an ingestMesh. Every node is a
// member certified by alice, so it attests the events it accepts fresh.
type meshNode struct {
	clock func() time.Time        // nil: the mesh's clock
	check chainfold.AttesterCheck // nil: the node's registry
}

// start starts a node (bootstrapping from the first) and returns it.
func (m *ingestMesh) start(t *testing.T, mn meshNode) *Node {
	t.Helper()
	k := mustKey(t)
	o := Options{Cluster: m.cluster, Key: k, DataDir: t.TempDir(), Label: fmt.Sprintf("n%d", len(m.nodes)+1),
		Version: "test", Clock: m.clock.Now, AttesterCheck: mn.check}
	if mn.clock != nil {
		o.Clock = mn.clock
	}
	o.CertifyWith = identity.KeySigner{K: m.alice}
	m.opts = append(m.opts, o)
	m.nodes = append(m.nodes, nil)
	return m.run(t, len(m.nodes)-1)
}

// run starts (or restarts, on its data dir and key) node i.
func (m *ingestMesh) run(t *testing.T, i int) *Node {
	t.Helper()
	o := m.opts[i]
	if i > 0 {
		o.Bootstrap = []string{m.nodes[0].Addr()}
	}
	udp, err := transport.ListenUDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fc := faultconn.New(udp)
	o.Conn = fc
	nd, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nd.Close() })
	m.nodes[i] = nd
	m.faults[nd.ID()] = fc
	return nd
}

// partition cuts (or heals) every link between the two sides.
func (m *ingestMesh) partition(a, b []*Node, cut bool) {
	for _, x := range a {
		for _, y := range b {
			m.faults[x.ID()].Block(y.ID(), cut)
			m.faults[y.ID()].Block(x.ID(), cut)
		}
	}
}

// waitHealthy waits until nd sees want nodes healthy (itself included).
func waitHealthy(t *testing.T, nd *Node, want int) {
	t.Helper()
	nodetest.Eventually(t, fmt.Sprintf("%s to see %d healthy nodes", nd.opts.Label, want), func() bool {
		c := 0
		for _, nv := range nd.Cluster().Nodes {
			if nv.Health == snapshot.Healthy && !nv.Stale {
				c++
			}
		}
		return c == want
	})
}

// waitFolded waits until nd's fold holds every event its ledger stored.
func waitFolded(t *testing.T, nd *Node) {
	t.Helper()
	nodetest.Eventually(t, "fold caught up with the ledger", func() bool { return nd.fold.LocalSeq() >= nd.ledger.Head().LastSeq })
}

func holds(t *testing.T, nd *Node, ev *command.Event) bool {
	t.Helper()
	ok, err := nd.ledger.Has(ev.LedgerKey())
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// signedEvent is an event for a, issued at at, proposed by the first key
// and signed by every key, as a console (or a `--sign-only` proposal file)
// makes it.
func signedEvent(t *testing.T, cluster string, a api.Action, at time.Time, keys ...*identity.Key) *command.Event {
	t.Helper()
	kind, ok := command.KindOf(a.Verb)
	if !ok {
		t.Fatalf("verb %q", a.Verb)
	}
	b := command.Body{Kind: kind, Cluster: cluster, Action: a, Proposer: keys[0].ID, IssuedAtMs: at.UnixMilli()}
	if _, err := rand.Read(b.Nonce[:]); err != nil {
		t.Fatal(err)
	}
	if kind == command.KindICE {
		b.BlastHash = [32]byte{1}
	}
	p, err := b.SigningPayload()
	if err != nil {
		t.Fatal(err)
	}
	var sigs []api.Signature
	for _, k := range keys {
		sigs = append(sigs, api.Signature{Operator: k.ID, Sig: k.Sign(p)})
	}
	ev, err := command.NewEvent(b, sigs)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// commitLocal commits ev through nd's own commit path (its console).
func commitLocal(t *testing.T, nd *Node, ev *command.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := nd.commit.Commit(ctx, ev); err != nil {
		t.Fatalf("commit %s: %v", ev.Verb(), err)
	}
	waitFolded(t, nd)
}

// attacker is a member gone bad — a node that holds the cluster PSK and a
// certificate (a compromised node, or one a removed operator certified
// before the removal) — running a modified console: it pushes events to its
// victim with the real commit protocol, storing in its own ledger whatever
// decodes.
type attacker struct {
	id identity.NodeID
	c  *chainfold.Committer
}

func newAttacker(t *testing.T, m *ingestMesh, victim *Node) *attacker {
	t.Helper()
	k := mustKey(t)
	psk, err := m.cluster.PSKBytes()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := identity.NewNodeCertificate(identity.KeySigner{K: m.alice}, m.cluster.Name, k.Public, identity.RoleNode, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := transport.New(transport.Config{Key: k, PSK: psk, ListenAddr: "127.0.0.1:0", Bootstrap: []string{victim.Addr()}, Certificate: cert})
	if err != nil {
		t.Fatal(err)
	}
	db, err := chain.Open(chain.Config{Dir: t.TempDir(), RetentionInterval: -1, ValueLogGCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &attacker{id: k.ID, c: chainfold.NewCommitter(chainfold.CommitConfig{
		Context: ctx, Ledger: db.Ledger(chainfold.Validator(m.cluster.Name, nil)), Messenger: tr,
		Peers: func() []identity.NodeID { return []identity.NodeID{victim.ID()} }, WaitForAck: true,
	})}
	tr.Handle(messaging.ChanCommand, a.c.Handle)
	tr.Start(ctx)
	t.Cleanup(func() { cancel(); tr.Close(); db.Close() })
	nodetest.Eventually(t, "the attacker to reach its victim", func() bool {
		for _, p := range tr.Peers() {
			if p.ID == victim.ID() && p.Health == snapshot.Healthy {
				return true
			}
		}
		return false
	})
	return a
}

// push sends ev to the victim and returns the victim's answer (nil: it
// acknowledged, so it holds the event).
func (a *attacker) push(t *testing.T, ev *command.Event) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := a.c.Commit(ctx, ev)
	return err
}

// refusedFrom checks nd's AUDIT lists ev as refused, from the node that sent
// it, attributed to no operator, with a reason containing why.
func refusedFrom(t *testing.T, nd *Node, ev *command.Event, from identity.NodeID, why string) {
	t.Helper()
	c, err := nd.NewClient(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := c.Audit().Collect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.EventID != ev.ID().String() {
			continue
		}
		if r.Outcome != api.Rejected || r.From != from || r.Operator.Valid() || !strings.Contains(r.Reason, why) ||
			!strings.Contains(r.Reason, ev.Proposer().String()) {
			t.Fatalf("AUDIT record %+v: want refused from %s, no operator, reason with %q and the named operator", r, from, why)
		}
		return
	}
	t.Fatalf("AUDIT does not list the refused event %s", ev.ID().Short())
}

// TestAttackRemovedOperatorBackdatesEvent: bob, removed by alice, signs a
// removal of alice dated just before his own removal, where the registry
// still lists him, and pushes it ten minutes later. Stored, the fold
// would accept it there, and reject alice's removal of bob that follows: bob
// would own the registry. The node refuses it (its window closed by the
// node's clock, and no certified node received it in time) and shows the
// refusal as the pushing node's.
func TestAttackRemovedOperatorBackdatesEvent(t *testing.T) {
	m := newIngestMesh(t)
	victim := m.start(t, meshNode{})
	atk := newAttacker(t, m, victim)
	removal := signedEvent(t, m.cluster.Name, api.Action{Verb: api.VerbRemoveOperator, OperatorID: m.bob.ID}, m.clock.Now(), m.alice)
	commitLocal(t, victim, removal)
	if _, ok := victim.AdminState().Operator(m.bob.ID); ok {
		t.Fatal("bob's removal was not applied")
	}
	m.clock.Advance(10 * time.Minute)
	retake := signedEvent(t, m.cluster.Name, api.Action{Verb: api.VerbRemoveOperator, OperatorID: m.alice.ID}, removal.IssuedAt().Add(-time.Second), m.bob)
	err := atk.push(t, retake)
	waitFolded(t, victim)
	st := victim.AdminState()
	if _, ok := st.Operator(m.alice.ID); !ok {
		t.Fatalf("bob's backdated event removed alice: bob retook the registry (push answered %v)", err)
	}
	if _, ok := st.Operator(m.bob.ID); ok {
		t.Fatal("bob is an operator again")
	}
	if holds(t, victim, retake) {
		t.Fatal("the backdated event was stored")
	}
	if err == nil || !strings.Contains(err.Error(), "commit window") {
		t.Fatalf("push answered %v, want the refusal's reason", err)
	}
	refusedFrom(t, victim, retake, atk.id, "commit window")
}

// TestAttackLeakedProposalCommittedLate: a proposal alice signed (a
// `--sign-only` file) and never committed is pushed by whoever got hold of
// it a day later. The node refuses it: its window closed a day ago.
func TestAttackLeakedProposalCommittedLate(t *testing.T) {
	m := newIngestMesh(t)
	victim := m.start(t, meshNode{})
	atk := newAttacker(t, m, victim)
	target := identity.NodeID(0x77)
	leaked := signedEvent(t, m.cluster.Name, api.Action{Verb: api.VerbCordon, Node: target}, m.clock.Now(), m.alice)
	m.clock.Advance(24 * time.Hour)
	err := atk.push(t, leaked)
	waitFolded(t, victim)
	if victim.AdminState().NodeIntent(target).Cordoned {
		t.Fatalf("a proposal signed a day ago was committed (push answered %v)", err)
	}
	if holds(t, victim, leaked) {
		t.Fatal("the leaked proposal was stored")
	}
	refusedFrom(t, victim, leaked, atk.id, "commit window")
}

// TestAttackBackdatedEventSlipsPastFreeze: a drain alice signed a moment
// before she froze the cluster, held back and pushed ten minutes into the
// freeze, sits before the freeze in the ledger's order: stored, the fold
// would accept it and the node would drain during the freeze. The node
// refuses it.
func TestAttackBackdatedEventSlipsPastFreeze(t *testing.T) {
	m := newIngestMesh(t)
	victim := m.start(t, meshNode{})
	atk := newAttacker(t, m, victim)
	target := identity.NodeID(0x78)
	heldBack := signedEvent(t, m.cluster.Name, api.Action{Verb: api.VerbDrain, Node: target, Duration: 10 * time.Minute}, m.clock.Now(), m.alice)
	m.clock.Advance(time.Second)
	freeze := signedEvent(t, m.cluster.Name, api.Action{Verb: api.VerbFreezeCluster, Reason: "incident", Duration: 30 * time.Minute}, m.clock.Now(), m.alice)
	commitLocal(t, victim, freeze)
	m.clock.Advance(10 * time.Minute)
	if !victim.AdminState().FreezeAt(m.clock.Now()).Active {
		t.Fatal("the cluster is not frozen")
	}
	err := atk.push(t, heldBack)
	waitFolded(t, victim)
	if in := victim.AdminState().NodeIntent(target); in.Maintenance != 0 {
		t.Fatalf("a drain slipped past the freeze: intent %+v (push answered %v)", in, err)
	}
	if holds(t, victim, heldBack) {
		t.Fatal("the held-back drain was stored")
	}
	refusedFrom(t, victim, heldBack, atk.id, "commit window")
}

// TestAttackGarbageSignatureNotStored: an event naming alice with a
// signature that does not verify is refused, never stored (so it is not
// kept by every node forever), and AUDIT shows it as refused from the node
// that pushed it, not as alice's attempt.
func TestAttackGarbageSignatureNotStored(t *testing.T) {
	m := newIngestMesh(t)
	victim := m.start(t, meshNode{})
	atk := newAttacker(t, m, victim)
	good := signedEvent(t, m.cluster.Name, api.Action{Verb: api.VerbCordon, Node: 0x79}, m.clock.Now(), m.alice)
	junk, err := good.WithSignatures([]api.Signature{{Operator: m.alice.ID, Sig: make([]byte, ed25519.SignatureSize)}})
	if err != nil {
		t.Fatal(err)
	}
	err = atk.push(t, junk)
	waitFolded(t, victim)
	if holds(t, victim, junk) {
		t.Fatalf("an event with a garbage signature was stored (push answered %v)", err)
	}
	c, cerr := victim.NewClient(nil, "")
	if cerr != nil {
		t.Fatal(cerr)
	}
	recs, cerr := c.Audit().ByOperator(m.alice.ID).Collect(t.Context())
	if cerr != nil {
		t.Fatal(cerr)
	}
	for _, r := range recs {
		if r.EventID == junk.ID().String() {
			t.Fatalf("AUDIT lists the forged event as alice's attempt: %+v", r)
		}
	}
	refusedFrom(t, victim, junk, atk.id, "bad signature")
}

// TestAttackEpochDatedEventForcesRefold: an event dated near the epoch would
// sit before everything in the ledger's order, and each one stored would
// make every node refold its whole ledger. The node refuses it, so its fold
// does not move.
func TestAttackEpochDatedEventForcesRefold(t *testing.T) {
	m := newIngestMesh(t)
	victim := m.start(t, meshNode{})
	atk := newAttacker(t, m, victim)
	for i := range 3 {
		commitLocal(t, victim, signedEvent(t, m.cluster.Name, api.Action{Verb: api.VerbCordon, Node: identity.NodeID(0x80 + i)}, m.clock.Now(), m.alice))
	}
	before := victim.fold.Stats()
	epoch := signedEvent(t, m.cluster.Name, api.Action{Verb: api.VerbCordon, Node: 0x90}, time.UnixMilli(1000), m.alice)
	err := atk.push(t, epoch)
	waitFolded(t, victim)
	if after := victim.fold.Stats(); after.Refolds != before.Refolds {
		t.Fatalf("an epoch-dated event forced %d refolds (push answered %v)", after.Refolds-before.Refolds, err)
	}
	if holds(t, victim, epoch) {
		t.Fatal("the epoch-dated event was stored")
	}
	refusedFrom(t, victim, epoch, atk.id, "commit window")
}

// receiptsHeld decodes the receipts nd stored beside ev.
func receiptsHeld(t *testing.T, nd *Node, ev *command.Event) []chainfold.Receipt {
	t.Helper()
	att, err := nd.ledger.Attachment(ev.LedgerKey())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := chainfold.DecodeReceipts(att)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestPartitionHealCarriesEventsWithReceipts: events committed on one side
// of a partition reach the other side after the heal, long after their
// commit window by every clock, because the nodes that received them in
// time attested them and the receipts travel with them.
func TestPartitionHealCarriesEventsWithReceipts(t *testing.T) {
	m := newIngestMesh(t)
	for range 4 {
		m.start(t, meshNode{})
	}
	for _, nd := range m.nodes {
		waitHealthy(t, nd, 4)
	}
	left, right := m.nodes[:2], m.nodes[2:]
	m.partition(left, right, true)
	for _, nd := range m.nodes {
		waitHealthy(t, nd, 2)
	}
	ev := signedEvent(t, m.cluster.Name, api.Action{Verb: api.VerbCordon, Node: right[1].ID()}, m.clock.Now(), m.alice)
	commitLocal(t, left[0], ev)
	nodetest.Eventually(t, "both left nodes to hold and attest the event", func() bool {
		return holds(t, left[1], ev) && len(receiptsHeld(t, left[1], ev)) >= 1
	})
	if holds(t, right[0], ev) || holds(t, right[1], ev) {
		t.Fatal("the event crossed the partition")
	}
	m.clock.Advance(10 * time.Minute)
	m.partition(left, right, false)
	for _, nd := range right {
		nodetest.Eventually(t, "the right side to accept the late event", func() bool { return holds(t, nd, ev) })
		if s := nd.ingest.Stats(); s.Late == 0 {
			t.Fatalf("%s took the event without a receipt: %+v", nd.opts.Label, s)
		}
		rs := receiptsHeld(t, nd, ev)
		if len(rs) == 0 || (rs[0].Node != left[0].ID() && rs[0].Node != left[1].ID()) {
			t.Fatalf("%s holds receipts %+v, want the left side's", nd.opts.Label, rs)
		}
		nodetest.Eventually(t, "the cordon folded", func() bool { return nd.AdminState().NodeIntent(right[1].ID()).Cordoned })
	}
}

// TestRestartedNodeCatchesUpWithReceipts: a node that was down while an
// event was committed, and comes back after its window, accepts it from
// its peers on their receipts.
func TestRestartedNodeCatchesUpWithReceipts(t *testing.T) {
	m := newIngestMesh(t)
	for range 3 {
		m.start(t, meshNode{})
	}
	for _, nd := range m.nodes {
		waitHealthy(t, nd, 3)
	}
	down := m.nodes[2]
	if err := down.Close(); err != nil {
		t.Fatal(err)
	}
	ev := signedEvent(t, m.cluster.Name, api.Action{Verb: api.VerbCordon, Node: 0x99}, m.clock.Now(), m.alice)
	commitLocal(t, m.nodes[0], ev)
	nodetest.Eventually(t, "the other node to attest the event", func() bool { return holds(t, m.nodes[1], ev) })
	m.clock.Advance(10 * time.Minute)
	back := m.run(t, 2)
	if back.ID() != down.ID() {
		t.Fatal("the restarted node has another identity")
	}
	nodetest.Eventually(t, "the restarted node to catch up", func() bool { return holds(t, back, ev) })
	if s := back.ingest.Stats(); s.Late == 0 {
		t.Fatalf("caught up without receipts: %+v", s)
	}
}

// revocableCheck is an AttesterCheck over real certificates issued by the
// cluster's operators, with a revocation set the test edits.
type revocableCheck struct {
	cluster string
	issuers []*identity.Key
	mu      sync.Mutex
	revoked map[identity.NodeID]bool
}

func (r *revocableCheck) set(id identity.NodeID, revoked bool) {
	r.mu.Lock()
	r.revoked[id] = revoked
	r.mu.Unlock()
}

func (r *revocableCheck) check(id identity.NodeID, key ed25519.PublicKey, certBytes []byte, at time.Time) error {
	r.mu.Lock()
	revoked := r.revoked[id]
	r.mu.Unlock()
	if revoked {
		return errors.New("revoked")
	}
	c, err := identity.UnmarshalCertificate(certBytes)
	if err != nil {
		return err
	}
	if err := c.VerifySignature(); err != nil {
		return err
	}
	trusted := false
	for _, k := range r.issuers {
		trusted = trusted || k.Public.Equal(c.Issuer)
	}
	if !trusted || c.Role != identity.RoleNode || c.Cluster != r.cluster || c.Node != id || !key.Equal(ed25519.PublicKey(c.SigningKey)) {
		return errors.New("not a certified node")
	}
	if ms := at.UnixMilli(); ms < c.NotBeforeMs || ms >= c.NotAfterMs {
		return identity.ErrCertificateExpired
	}
	return nil
}

// TestRevokedNodeCannotCarryLateEvent: once the nodes that attested an event
// are revoked, their receipts no longer let it into a node that missed it;
// the refusal says so, and the same receipts count again when a revocation
// is lifted (so it is the revocation that refused them).
func TestRevokedNodeCannotCarryLateEvent(t *testing.T) {
	m := newIngestMesh(t)
	rc := &revocableCheck{cluster: m.cluster.Name, issuers: []*identity.Key{m.alice, m.bob}, revoked: map[identity.NodeID]bool{}}
	for range 3 {
		m.start(t, meshNode{check: rc.check})
	}
	for _, nd := range m.nodes {
		waitHealthy(t, nd, 3)
	}
	a, b, late := m.nodes[0], m.nodes[1], m.nodes[2]
	m.partition([]*Node{a, b}, []*Node{late}, true)
	waitHealthy(t, late, 1)
	ev := signedEvent(t, m.cluster.Name, api.Action{Verb: api.VerbCordon, Node: 0x9a}, m.clock.Now(), m.alice)
	commitLocal(t, a, ev)
	nodetest.Eventually(t, "b to attest the event", func() bool { return holds(t, b, ev) })
	rc.set(a.ID(), true)
	rc.set(b.ID(), true)
	m.clock.Advance(10 * time.Minute)
	m.partition([]*Node{a, b}, []*Node{late}, false)
	nodetest.Eventually(t, "the late node to refuse the event on revoked receipts", func() bool {
		for _, r := range late.rejects.list() {
			if r.EventID == ev.ID().String() && strings.Contains(r.Reason, "revoked") {
				return true
			}
		}
		return false
	})
	if holds(t, late, ev) {
		t.Fatal("a revoked node's receipt carried the event")
	}
	rc.set(b.ID(), false)
	nodetest.Eventually(t, "the event accepted on b's receipt once b is trusted again", func() bool { return holds(t, late, ev) })
}

// TestNodeClockSkew: the commit window is judged by each receiver's own
// clock, within the mesh's allowance (10 s). Nodes 5 s ahead and 5 s behind
// accept a console's fresh event and attest it; one 2 min ahead refuses the
// push (its window closed, by that clock) and says why in its reject ring,
// then takes the event on its peers' receipts; one 2 min behind refuses it
// as from the future, whatever the receipts, and says why.
func TestNodeClockSkew(t *testing.T) {
	m := newIngestMesh(t)
	off := func(d time.Duration) func() time.Time { return func() time.Time { return time.Now().Add(d) } }
	proposer := m.start(t, meshNode{clock: time.Now})
	ahead5 := m.start(t, meshNode{clock: off(5 * time.Second)})
	behind5 := m.start(t, meshNode{clock: off(-5 * time.Second)})
	ahead2m := m.start(t, meshNode{clock: off(2 * time.Minute)})
	behind2m := m.start(t, meshNode{clock: off(-2 * time.Minute)})
	for _, nd := range m.nodes {
		waitHealthy(t, nd, 5)
		if nd.ingest.Skew() != command.DefaultClockSkewAllowance {
			t.Fatalf("skew allowance %v", nd.ingest.Skew())
		}
	}
	ev := signedEvent(t, m.cluster.Name, api.Action{Verb: api.VerbCordon, Node: 0x9b}, time.Now(), m.alice)
	commitLocal(t, proposer, ev)
	for _, nd := range []*Node{ahead5, behind5} {
		nodetest.Eventually(t, nd.opts.Label+" to accept and attest", func() bool {
			if !holds(t, nd, ev) {
				return false
			}
			for _, r := range receiptsHeld(t, nd, ev) {
				if r.Node == nd.ID() {
					return true
				}
			}
			return false
		})
	}
	refusal := func(nd *Node, why string) func() bool {
		return func() bool {
			for _, r := range nd.rejects.list() {
				if r.EventID == ev.ID().String() && strings.Contains(r.Reason, why) {
					return true
				}
			}
			return false
		}
	}
	// The node 2 min ahead refuses the bare event (the window closed by
	// its clock) and takes it once receipts of attesting nodes come with
	// it. Which reaches it first is a race of the push and anti-entropy:
	// if the event comes with receipts already, there is nothing to refuse.
	nodetest.Eventually(t, "the node 2 min ahead to take the event on receipts", func() bool { return holds(t, ahead2m, ev) })
	if !refusal(ahead2m, "commit window")() {
		attested := false
		for _, r := range receiptsHeld(t, ahead2m, ev) {
			attested = attested || r.Node != ahead2m.ID()
		}
		if !attested {
			t.Fatal("the node 2 min ahead holds the event with neither a refusal of the bare event nor another node's receipt")
		}
	}
	for _, r := range receiptsHeld(t, ahead2m, ev) {
		if r.Node == ahead2m.ID() {
			t.Fatal("the node 2 min ahead attested an event it received late by its clock")
		}
	}
	nodetest.Eventually(t, "the node 2 min behind to say the event is from its future", refusal(behind2m, "ahead of this node's clock"))
	if holds(t, behind2m, ev) {
		t.Fatal("the node 2 min behind stored an event from its future")
	}
}

// TestRejectRingBoundedPerSender: one sender flooding refusals keeps at most
// its share of the ring and cannot push another sender's record out; the
// same event refused again from the same sender replaces its record.
func TestRejectRingBoundedPerSender(t *testing.T) {
	r := newRejectRing(8, 3)
	op := mustKey(t)
	ev := func(i int) *command.Event {
		return signedEvent(t, "ring", api.Action{Verb: api.VerbCordon, Node: identity.NodeID(i + 1)}, time.Unix(1_700_000_000, 0), op)
	}
	now := time.Unix(1_700_000_100, 0)
	quiet := ev(0)
	r.add(1, quiet, command.ErrBadSignature, now)
	for i := range 100 {
		r.add(2, ev(i+1), command.ErrExpired, now)
	}
	again := ev(100)
	r.add(2, again, command.ErrExpired, now)
	recs := r.list()
	from := map[identity.NodeID]int{}
	for _, rec := range recs {
		from[rec.From]++
		if rec.Operator.Valid() {
			t.Fatalf("a ring record is attributed to operator %s", rec.Operator)
		}
	}
	if from[1] != 1 || from[2] != 3 || len(recs) != 4 {
		t.Fatalf("ring holds %v (%d records): want the quiet sender's 1 and the flooder's 3", from, len(recs))
	}
	if recs[0].EventID != quiet.ID().String() {
		t.Fatal("the quiet sender's record was pushed out")
	}
	n := 0
	for _, rec := range recs {
		if rec.EventID == again.ID().String() {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("the repeated refusal is listed %d times", n)
	}
}

// TestAttesterCheckIsTheRegistry: a receipt's attester counts when the
// node's registry admits it as a node at the receipt's time: a role-node
// certificate for its id and key in this cluster, valid then, issued by a
// current operator; never once revoked, and not after its issuer was
// removed.
func TestAttesterCheckIsTheRegistry(t *testing.T) {
	m := newIngestMesh(t)
	nd := m.start(t, meshNode{})
	k, other := mustKey(t), mustKey(t)
	now := time.Now()
	good := certBytes(t, m.bob, m.cluster.Name, k, identity.RoleNode, now)
	if err := nd.attesterCheck(k.ID, k.Public, good, now); err != nil {
		t.Fatalf("a certified node refused: %v", err)
	}
	for name, err := range map[string]error{
		"no certificate":      nd.attesterCheck(k.ID, k.Public, nil, now),
		"console":             nd.attesterCheck(k.ID, k.Public, certBytes(t, m.alice, m.cluster.Name, k, identity.RoleConsole, now), now),
		"another cluster":     nd.attesterCheck(k.ID, k.Public, certBytes(t, m.alice, "elsewhere", k, identity.RoleNode, now), now),
		"not an operator":     nd.attesterCheck(k.ID, k.Public, certBytes(t, other, m.cluster.Name, k, identity.RoleNode, now), now),
		"another node's key":  nd.attesterCheck(other.ID, other.Public, good, now),
		"before its validity": nd.attesterCheck(k.ID, k.Public, good, now.Add(-time.Hour)),
		"garbage":             nd.attesterCheck(k.ID, k.Public, []byte{1, 2, 3}, now),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	commitLocal(t, nd, signedEvent(t, m.cluster.Name, api.Action{Verb: api.VerbRemoveOperator, OperatorID: m.bob.ID}, m.clock.Now(), m.alice))
	nodetest.Eventually(t, "bob's certificates to stop vouching once bob is removed", func() bool {
		return nd.attesterCheck(k.ID, k.Public, good, now) != nil
	})
	byAlice := certBytes(t, m.alice, m.cluster.Name, k, identity.RoleNode, now)
	if err := nd.attesterCheck(k.ID, k.Public, byAlice, now); err != nil {
		t.Fatalf("alice's certificate refused: %v", err)
	}
	commitLocal(t, nd, signedEvent(t, m.cluster.Name, api.Action{Verb: api.VerbRevokeNode, Node: k.ID}, m.clock.Now().Add(time.Millisecond), m.alice))
	nodetest.Eventually(t, "a revoked node's receipts to stop counting, whenever dated", func() bool {
		return nd.attesterCheck(k.ID, k.Public, byAlice, now.Add(-time.Minute)) != nil
	})
}
