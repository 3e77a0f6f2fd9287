package chainfold

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/identity/identitytest"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/messaging/messagingtest"
	"github.com/deck-mesh/deck/node/nodetest"
)

// certRegistry is the tests' AttesterCheck: a real certificate check
// against a set of trusted issuer keys (the operators), plus a revocation
// set, as node/trust will do it.
type certRegistry struct {
	cluster string
	mu      sync.Mutex
	issuers map[identity.NodeID]ed25519.PublicKey
	revoked map[identity.NodeID]bool
}

func newCertRegistry(cluster string, issuers ...*identity.Key) *certRegistry {
	r := &certRegistry{cluster: cluster, issuers: map[identity.NodeID]ed25519.PublicKey{}, revoked: map[identity.NodeID]bool{}}
	for _, k := range issuers {
		r.issuers[k.ID] = k.Public
	}
	return r
}

func (r *certRegistry) revoke(id identity.NodeID, yes bool) {
	r.mu.Lock()
	r.revoked[id] = yes
	r.mu.Unlock()
}

var errRevoked = errors.New("node certificate revoked")

func (r *certRegistry) check(id identity.NodeID, key ed25519.PublicKey, certBytes []byte, at time.Time) error {
	r.mu.Lock()
	revoked := r.revoked[id]
	r.mu.Unlock()
	if revoked {
		return fmt.Errorf("%w: %s", errRevoked, id)
	}
	if len(certBytes) == 0 {
		return errors.New("no certificate and no admission")
	}
	c, err := identity.UnmarshalCertificate(certBytes)
	if err != nil {
		return err
	}
	if err := c.VerifySignature(); err != nil {
		return err
	}
	if pub, ok := r.issuers[c.IssuerID()]; !ok || !pub.Equal(c.Issuer) {
		return fmt.Errorf("certificate issued by %s, not a trusted operator", c.IssuerID())
	}
	if c.Role != identity.RoleNode {
		return fmt.Errorf("certificate role %s, want node", c.Role)
	}
	if c.Cluster != r.cluster || c.Node != id || !ed25519.PublicKey(c.SigningKey).Equal(key) {
		return identity.ErrCertificateSubject
	}
	if ms := at.UnixMilli(); ms < c.NotBeforeMs || ms >= c.NotAfterMs {
		return identity.ErrCertificateExpired
	}
	return nil
}

// certFor is a certificate for node key k issued by op at t0, valid a year.
func certFor(t testing.TB, op, k *identity.Key, role identity.Role) []byte {
	t.Helper()
	c, err := identity.NewNodeCertificate(identity.KeySigner{K: op}, cluster, k.Public, role, t0.Add(-time.Hour), 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ingestNode is one node's admin ledger as a node runs it: a real Badger
// ledger behind Ingest, its fold (the registry history), and a clock the
// test moves.
type ingestNode struct {
	key   *identity.Key
	clock *nodetest.Clock
	led   *chain.Ledger
	fold  *chain.Fold[*State]
	in    *Ingest
}

type ingestOpts struct {
	check  AttesterCheck
	attest []byte // certificate to attest with; nil: no attesting
	skew   time.Duration
}

func newIngestNode(t *testing.T, name string, g command.Genesis, now time.Time, o ingestOpts) *ingestNode {
	t.Helper()
	db, err := chain.Open(chain.Config{Dir: t.TempDir(), RetentionInterval: -1, ValueLogGCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	n := &ingestNode{key: identitytest.Key(t, name), clock: nodetest.NewClock(now)}
	var att *Attester
	if o.attest != nil {
		att = &Attester{Key: n.key, Cert: o.attest}
	}
	n.in, err = NewIngest(IngestConfig{
		Cluster: g.Cluster, Now: n.clock.Now, Skew: o.skew,
		Held: func(id [32]byte) (bool, error) { return n.led.Has(id) },
		Registry: func(pos chain.Position) (*command.Registry, error) {
			// As the node does: the registry as of every stored event.
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if err := n.fold.WaitLocalSeq(ctx, n.led.Head().LastSeq); err != nil {
				return nil, err
			}
			var reg *command.Registry
			var err error
			n.fold.View(func(s *State, _ chain.Position) { reg, err = s.RegistryAt(pos) })
			return reg, err
		},
		AttesterCheck: o.check, Attest: att,
	})
	if err != nil {
		t.Fatal(err)
	}
	n.led = db.LedgerAdmitting(n.in.Validator(), n.in.Admit)
	f, err := NewFolder(g)
	if err != nil {
		t.Fatal(err)
	}
	n.fold = chain.NewFold[*State](n.led, f, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = n.fold.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; db.Close() })
	return n
}

// offer hands ev to the node as peer 7 sends it, with att beside it.
func (n *ingestNode) offer(t *testing.T, ev *command.Event, att []byte) (chain.Event, error) {
	t.Helper()
	stored, _, err := n.led.InsertFrom(t.Context(), chain.Incoming{Raw: ev.Marshal(), Attachment: att, From: 7})
	return stored, err
}

func (n *ingestNode) held(t *testing.T, ev *command.Event) bool {
	t.Helper()
	ok, err := n.led.Has(ev.LedgerKey())
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// attachment is what n stored beside ev.
func (n *ingestNode) attachment(t *testing.T, ev *command.Event) []byte {
	t.Helper()
	att, err := n.led.Attachment(ev.LedgerKey())
	if err != nil {
		t.Fatal(err)
	}
	return att
}

// foldedThrough waits until n's fold holds every stored event.
func (n *ingestNode) folded(t *testing.T) *State {
	t.Helper()
	nodetest.Eventually(t, "fold caught up", func() bool { return n.fold.LocalSeq() >= n.led.Head().LastSeq })
	st, _ := n.fold.State()
	return st
}

func aliceGenesis(t testing.TB, names ...string) command.Genesis {
	g := command.Genesis{Cluster: cluster}
	for _, n := range names {
		g.Operators = append(g.Operators, command.GenesisOperator{Name: n, PublicKey: identitytest.Key(t, n).Public})
	}
	return g
}

// TestIngestFreshEventAttested: an event inside its window by the
// receiver's clock is stored with the receiver's own receipt beside it, and
// that receipt verifies.
func TestIngestFreshEventAttested(t *testing.T) {
	alice, op := identitytest.Key(t, "alice"), identitytest.Key(t, "alice")
	reg := newCertRegistry(cluster, op)
	n := newIngestNode(t, "node-a", aliceGenesis(t, "alice"), t0.Add(time.Second), ingestOpts{
		check: reg.check, attest: certFor(t, op, identitytest.Key(t, "node-a"), identity.RoleNode)})
	ev := event(t, api.Action{Verb: api.VerbCordon, Node: 1}, 0, 1, alice)
	if _, err := n.offer(t, ev, nil); err != nil {
		t.Fatalf("fresh event refused: %v", err)
	}
	rs, err := DecodeReceipts(n.attachment(t, ev))
	if err != nil || len(rs) != 1 {
		t.Fatalf("receipts %v, %v", rs, err)
	}
	r := rs[0]
	if r.Node != n.key.ID || r.ReceivedAtMs != t0.Add(time.Second).UnixMilli() {
		t.Fatalf("receipt %+v", r)
	}
	if err := r.VerifySignature(ev.LedgerKey()); err != nil {
		t.Fatal(err)
	}
	if err := reg.check(r.Node, r.Key, r.Cert, r.ReceivedAt()); err != nil {
		t.Fatal(err)
	}
	if s := n.in.Stats(); s.Fresh != 1 || s.Attested != 1 || s.Late != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestIngestLateEventAcceptedOnReceipt: a node whose clock says the event's
// window closed long ago refuses it bare and accepts it with a certified
// node's receipt dated in the window, storing that receipt (not one of its
// own) to pass on.
func TestIngestLateEventAcceptedOnReceipt(t *testing.T) {
	alice := identitytest.Key(t, "alice")
	reg := newCertRegistry(cluster, alice)
	g := aliceGenesis(t, "alice")
	a := newIngestNode(t, "node-a", g, t0.Add(2*time.Second), ingestOpts{check: reg.check, attest: certFor(t, alice, identitytest.Key(t, "node-a"), identity.RoleNode)})
	b := newIngestNode(t, "node-b", g, t0.Add(10*time.Minute), ingestOpts{check: reg.check, attest: certFor(t, alice, identitytest.Key(t, "node-b"), identity.RoleNode)})
	ev := event(t, api.Action{Verb: api.VerbCordon, Node: 1}, 0, 1, alice)
	if _, err := a.offer(t, ev, nil); err != nil {
		t.Fatal(err)
	}
	_, err := b.offer(t, ev, nil)
	if !errors.Is(err, command.ErrExpired) || !errors.Is(err, ErrNoReceipt) || b.held(t, ev) {
		t.Fatalf("late event without a receipt: %v (held %v)", err, b.held(t, ev))
	}
	if _, err := b.offer(t, ev, a.attachment(t, ev)); err != nil {
		t.Fatalf("late event with a valid receipt: %v", err)
	}
	if !bytes.Equal(b.attachment(t, ev), a.attachment(t, ev)) {
		t.Fatal("the late node did not keep the receipt it accepted on (or added its own)")
	}
	if s := b.in.Stats(); s.Late != 1 || s.Attested != 0 || s.Refused != 1 {
		t.Fatalf("stats %+v", s)
	}
	if st := b.folded(t); st.Admin.Accepted() != 1 {
		t.Fatalf("fold accepted %d", st.Admin.Accepted())
	}
}

// TestIngestLateReceiptRefused: a receipt that is forged, by a console, by
// a revoked node, dated outside the event's window, for another event, by
// a node certified by no trusted operator, or that does not parse, does not
// let a late event in; the refusal says why.
func TestIngestLateReceiptRefused(t *testing.T) {
	alice, mallory := identitytest.Key(t, "alice"), identitytest.Key(t, "mallory")
	reg := newCertRegistry(cluster, alice)
	nodeKey, consoleKey := identitytest.Key(t, "node-a"), identitytest.Key(t, "console-a")
	nodeCert := certFor(t, alice, nodeKey, identity.RoleNode)
	ev := event(t, api.Action{Verb: api.VerbCordon, Node: 1}, 0, 1, alice)
	other := event(t, api.Action{Verb: api.VerbCordon, Node: 2}, 0, 2, alice)
	sign := func(k *identity.Key, cert []byte, id [32]byte, at time.Time) Receipt {
		r, err := SignReceipt(k, cert, id, at)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	enc := func(rs ...Receipt) []byte {
		b, err := AppendReceipts(nil, rs)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := sign(nodeKey, nodeCert, ev.LedgerKey(), t0.Add(time.Second))
	forged := good
	forged.Sig = bytes.Clone(good.Sig)
	forged.Sig[5] ^= 1
	wrongKey := sign(identitytest.Key(t, "node-z"), nodeCert, ev.LedgerKey(), t0.Add(time.Second))
	for _, tt := range []struct {
		name   string
		att    []byte
		revoke bool
		want   string
	}{
		{"forged signature", enc(forged), false, "does not verify"},
		{"console", enc(sign(consoleKey, certFor(t, alice, consoleKey, identity.RoleConsole), ev.LedgerKey(), t0.Add(time.Second))), false, "role console"},
		{"revoked", enc(good), true, errRevoked.Error()},
		{"dated after the window", enc(sign(nodeKey, nodeCert, ev.LedgerKey(), t0.Add(5*time.Minute))), false, "outside the event's window"},
		{"dated before issue", enc(sign(nodeKey, nodeCert, ev.LedgerKey(), t0.Add(-time.Minute))), false, "outside the event's window"},
		{"for another event", enc(sign(nodeKey, nodeCert, other.LedgerKey(), t0.Add(time.Second))), false, "another event"},
		{"untrusted issuer", enc(sign(nodeKey, certFor(t, mallory, nodeKey, identity.RoleNode), ev.LedgerKey(), t0.Add(time.Second))), false, "not a trusted operator"},
		{"certificate of another node", enc(wrongKey), false, "another key"},
		{"no certificate", enc(sign(nodeKey, nil, ev.LedgerKey(), t0.Add(time.Second))), false, "no certificate"},
		{"malformed", []byte{1, 1, 2, 3}, false, "bad receipt"},
		{"none", nil, false, "none came with it"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reg.revoke(nodeKey.ID, tt.revoke)
			defer reg.revoke(nodeKey.ID, false)
			n := newIngestNode(t, "node-b", aliceGenesis(t, "alice"), t0.Add(time.Hour), ingestOpts{check: reg.check})
			_, err := n.offer(t, ev, tt.att)
			if !errors.Is(err, ErrNoReceipt) || !strings.Contains(err.Error(), tt.want) || n.held(t, ev) {
				t.Fatalf("err %v (want %q), held %v", err, tt.want, n.held(t, ev))
			}
		})
	}
	// The same receipt, not revoked, is enough: the cases above fail for
	// their own reason.
	n := newIngestNode(t, "node-b", aliceGenesis(t, "alice"), t0.Add(time.Hour), ingestOpts{check: reg.check})
	if _, err := n.offer(t, ev, enc(forged, good)); err != nil || !n.held(t, ev) {
		t.Fatalf("a valid receipt beside a forged one: %v", err)
	}
	if rs, err := DecodeReceipts(n.attachment(t, ev)); err != nil || len(rs) != 1 || !bytes.Equal(rs[0].Sig, good.Sig) {
		t.Fatalf("kept %v, %v: want the valid receipt only", rs, err)
	}
}

// TestIngestSignaturesCheckedAtPosition: bob's events verify against the
// registry at their own place in the order: before alice removed him, they
// are accepted; after it, refused and never stored.
func TestIngestSignaturesCheckedAtPosition(t *testing.T) {
	alice, bob := identitytest.Key(t, "alice"), identitytest.Key(t, "bob")
	n := newIngestNode(t, "node-a", aliceGenesis(t, "alice", "bob"), t0.Add(30*time.Second), ingestOpts{})
	removal := event(t, api.Action{Verb: api.VerbRemoveOperator, OperatorID: bob.ID}, 10*time.Second, 1, alice)
	if _, err := n.offer(t, removal, nil); err != nil {
		t.Fatal(err)
	}
	before := event(t, api.Action{Verb: api.VerbCordon, Node: 1}, 5*time.Second, 2, bob)
	after := event(t, api.Action{Verb: api.VerbCordon, Node: 2}, 20*time.Second, 3, bob)
	if _, err := n.offer(t, before, nil); err != nil {
		t.Fatalf("bob's event from before his removal: %v", err)
	}
	if _, err := n.offer(t, after, nil); !errors.Is(err, command.ErrUnknownOperator) || n.held(t, after) {
		t.Fatalf("bob's event from after his removal: %v", err)
	}
	st := n.folded(t)
	if st.Admin.Accepted() != 2 || !st.Admin.Intent().Nodes[1].Cordoned {
		t.Fatalf("fold: accepted %d, intent %+v", st.Admin.Accepted(), st.Admin.Intent().Nodes)
	}
}

// TestIngestRefusesGarbageSignatures: an event naming a registered operator
// with a signature that does not verify, or two signatures claiming one
// operator, is refused and never stored.
func TestIngestRefusesGarbageSignatures(t *testing.T) {
	alice := identitytest.Key(t, "alice")
	n := newIngestNode(t, "node-a", aliceGenesis(t, "alice"), t0.Add(time.Second), ingestOpts{})
	good := event(t, api.Action{Verb: api.VerbCordon, Node: 1}, 0, 1, alice)
	garbage, err := good.WithSignatures([]api.Signature{{Operator: alice.ID, Sig: bytes.Repeat([]byte{7}, 64)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.offer(t, garbage, nil); !errors.Is(err, command.ErrBadSignature) || n.held(t, garbage) {
		t.Fatalf("garbage signature: %v", err)
	}
	twice, err := good.WithSignatures(append(good.Signatures(), api.Signature{Operator: alice.ID, Sig: bytes.Repeat([]byte{8}, 64)}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.offer(t, twice, nil); !errors.Is(err, command.ErrMalformed) || n.held(t, twice) {
		t.Fatalf("two signatures claiming alice: %v", err)
	}
	if n.led.Head().Count != 0 {
		t.Fatalf("%d events stored", n.led.Head().Count)
	}
}

// TestIngestClockSkewAllowance: receivers whose clocks are 5 s ahead or
// behind the proposer's, inside the 10 s allowance, accept the event fresh
// and attest it; one 2 min ahead refuses it (its window closed) unless a
// receipt vouches for it, and one 2 min behind refuses it as from the
// future whatever receipts it carries.
func TestIngestClockSkewAllowance(t *testing.T) {
	alice := identitytest.Key(t, "alice")
	reg := newCertRegistry(cluster, alice)
	g := aliceGenesis(t, "alice")
	ev := event(t, api.Action{Verb: api.VerbCordon, Node: 1}, 0, 1, alice)
	proposer := newIngestNode(t, "node-p", g, t0, ingestOpts{check: reg.check, attest: certFor(t, alice, identitytest.Key(t, "node-p"), identity.RoleNode)})
	if _, err := proposer.offer(t, ev, nil); err != nil {
		t.Fatal(err)
	}
	receipts := proposer.attachment(t, ev)
	for _, tt := range []struct {
		name    string
		offset  time.Duration
		att     []byte
		want    error
		because string
	}{
		{"5s ahead", 5 * time.Second, nil, nil, ""},
		{"5s behind", -5 * time.Second, nil, nil, ""},
		{"2min ahead", 2 * time.Minute, nil, command.ErrExpired, "commit window"},
		{"2min ahead with a receipt", 2 * time.Minute, receipts, nil, ""},
		{"2min behind", -2 * time.Minute, nil, command.ErrClockSkew, "ahead of this node's clock"},
		{"2min behind with a receipt", -2 * time.Minute, receipts, command.ErrClockSkew, "ahead of this node's clock"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			name := "node-" + strings.ReplaceAll(tt.name, " ", "-")
			n := newIngestNode(t, name, g, t0.Add(tt.offset), ingestOpts{check: reg.check, skew: 10 * time.Second,
				attest: certFor(t, alice, identitytest.Key(t, name), identity.RoleNode)})
			_, err := n.offer(t, ev, tt.att)
			if tt.want == nil {
				if err != nil || !n.held(t, ev) {
					t.Fatalf("refused: %v", err)
				}
				if tt.att == nil && n.in.Stats().Attested != 1 {
					t.Fatal("accepted fresh but not attested")
				}
				return
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.because) || n.held(t, ev) {
				t.Fatalf("err %v, want %v (%q)", err, tt.want, tt.because)
			}
		})
	}
}

// TestIngestHeldEventNotJudgedAgain: an event already in the ledger is a
// duplicate however late it is offered again (a console re-pushing, a peer
// serving it): it passed when it came.
func TestIngestHeldEventNotJudgedAgain(t *testing.T) {
	alice := identitytest.Key(t, "alice")
	n := newIngestNode(t, "node-a", aliceGenesis(t, "alice"), t0.Add(time.Second), ingestOpts{})
	ev := event(t, api.Action{Verb: api.VerbCordon, Node: 1}, 0, 1, alice)
	if _, err := n.offer(t, ev, nil); err != nil {
		t.Fatal(err)
	}
	n.clock.Advance(time.Hour)
	stored, added, err := n.led.InsertFrom(t.Context(), chain.Incoming{Raw: ev.Marshal(), From: 9})
	if err != nil || added || EventOf(stored.Meta) == nil {
		t.Fatalf("held event offered again: added=%v err=%v", added, err)
	}
	if s := n.in.Stats(); s.Held != 1 || s.Refused != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestIngestEpochDatedEventNotStored: an event dated near the epoch (validly
// signed) is refused, so it cannot make every node refold its whole ledger.
func TestIngestEpochDatedEventNotStored(t *testing.T) {
	alice := identitytest.Key(t, "alice")
	reg := newCertRegistry(cluster, alice)
	n := newIngestNode(t, "node-a", aliceGenesis(t, "alice"), t0.Add(time.Second), ingestOpts{check: reg.check})
	ev := event(t, api.Action{Verb: api.VerbCordon, Node: 1}, -t0.Sub(time.UnixMilli(1000)), 1, alice)
	if ev.IssuedAtMs() != 1000 {
		t.Fatalf("issued at %d", ev.IssuedAtMs())
	}
	// Even a receipt dated then, by a node certified now, does not help:
	// its certificate was not valid in 1970.
	nodeKey := identitytest.Key(t, "node-z")
	r, err := SignReceipt(nodeKey, certFor(t, alice, nodeKey, identity.RoleNode), ev.LedgerKey(), time.UnixMilli(2000))
	if err != nil {
		t.Fatal(err)
	}
	att, err := AppendReceipts(nil, []Receipt{r})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range [][]byte{nil, att} {
		if _, err := n.offer(t, ev, a); !errors.Is(err, command.ErrExpired) || n.held(t, ev) {
			t.Fatalf("epoch-dated event: %v", err)
		}
	}
}

// TestIngestWaitsForRegistryChange: carol's event reaches this node (her
// console's push) before the add-operator that registers her does; it is
// refused then, and accepted when anti-entropy offers it again. In the pull
// both come in one answer, carol's refused again in that batch (the
// add-operator is not stored yet when the batch is judged), and the round
// asks for what is still missing once the batch made progress.
func TestIngestWaitsForRegistryChange(t *testing.T) {
	alice, carol := identitytest.Key(t, "alice"), identitytest.Key(t, "carol")
	g := aliceGenesis(t, "alice")
	src := newIngestNode(t, "node-a", g, t0.Add(5*time.Second), ingestOpts{})
	dst := newIngestNode(t, "node-b", g, t0.Add(5*time.Second), ingestOpts{})
	add := event(t, api.Action{Verb: api.VerbAddOperator, OperatorID: carol.ID, OperatorName: "carol", OperatorKey: carol.Public}, time.Second, 1, alice)
	byCarol := event(t, api.Action{Verb: api.VerbCordon, Node: 3}, 2*time.Second, 2, carol)
	if _, err := src.offer(t, add, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := src.offer(t, byCarol, nil); err != nil {
		t.Fatalf("the source node refused carol's event: %v", err)
	}
	if _, err := dst.offer(t, byCarol, nil); !errors.Is(err, command.ErrUnknownOperator) || dst.held(t, byCarol) {
		t.Fatalf("carol's event before her registration: %v", err)
	}

	h := messagingtest.NewHub(t, messagingtest.Config{})
	srcEP, dstEP := h.Join(1), h.Join(2)
	srcAE := chain.NewAntiEntropy(src.led, srcEP, h.IDs, chain.AntiEntropyConfig{Interval: time.Hour})
	var mu sync.Mutex
	var refused []chain.Rejection
	dstAE := chain.NewAntiEntropy(dst.led, dstEP, h.IDs, chain.AntiEntropyConfig{Interval: time.Hour, Refused: func(r chain.Rejection) {
		mu.Lock()
		refused = append(refused, r)
		mu.Unlock()
	}})
	dstEP.Handle(messaging.ChanLedger, dstAE.Handle)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = srcAE.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	nodetest.Eventually(t, "source serving", func() bool { return srcEP.HasHandler(messaging.ChanLedger) })

	added, err := dstAE.SyncWith(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if added != 2 || !dst.held(t, add) || !dst.held(t, byCarol) {
		t.Fatalf("after a round: %d added, add-operator held %v, carol's event held %v", added, dst.held(t, add), dst.held(t, byCarol))
	}
	mu.Lock()
	if len(refused) != 1 || refused[0].From != 1 || !errors.Is(refused[0].Err, command.ErrUnknownOperator) {
		t.Fatalf("refusals %+v: want carol's, once, from the peer that served it", refused)
	}
	mu.Unlock()
	if st := dst.folded(t); st.Admin.Accepted() != 2 || !st.Admin.Intent().Nodes[3].Cordoned {
		t.Fatalf("fold accepted %d", st.Admin.Accepted())
	}
}
