package decktest

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/placement"
)

// quietClient is a client on the routine ledger of a cluster born with an
// ICE threshold of 1 (ICE commits on the operator's own signature).
func quietClient(t *testing.T) *Client {
	t.Helper()
	c := New(0)
	g := Genesis()
	g.ICEThreshold = 1
	if err := c.SetLedger(g, QuietLedger()); err != nil {
		t.Fatal(err)
	}
	return c
}

// commitICE proposes, simulates, signs and commits a as the client's
// operator.
func commitICE(t *testing.T, c *Client, a api.Action) (api.Receipt, error) {
	t.Helper()
	ctx := context.Background()
	p, err := c.ICE().Propose(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := p.Simulate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := sp.Sign()
	if err != nil {
		t.Fatal(err)
	}
	return sp.Commit(ctx, []api.Signature{sig})
}

// TestSnapshotAdminFieldsComeFromTheLedger: the freeze, lockout, registry,
// thresholds and ledger head the fixture shows are the node's fold of the
// fixture ledger, and a snapshot handed to SetSnapshot cannot overrule them.
func TestSnapshotAdminFieldsComeFromTheLedger(t *testing.T) {
	s := Snapshot()
	if !s.Freeze.Active || !s.Freeze.Until.Equal(T0.Add(7*time.Minute+30*time.Second)) || s.Freeze.Operator != OperatorKey("alice").ID {
		t.Fatalf("freeze %+v, want alice's 10-minute freeze issued at T0-2m30s", s.Freeze)
	}
	if len(s.Lockouts) != 1 || !s.Lockouts[0].Until.Equal(T0.Add(-55*time.Second+command.ICECooldown)) {
		t.Fatalf("lockouts %+v, want the force-evict's cooldown", s.Lockouts)
	}
	if len(s.Operators) != 3 || s.AdminThreshold != 1 || s.ICEThreshold != 2 || s.AdminHead.Count != uint64(len(Ledger())) {
		t.Fatalf("registry %d operators, thresholds %d/%d, head %+v", len(s.Operators), s.AdminThreshold, s.ICEThreshold, s.AdminHead)
	}
	recs := Audit()
	var mallorys *api.AuditRecord
	for i := range recs {
		if recs[i].Operator == OperatorKey("mallory").ID {
			mallorys = &recs[i]
		}
	}
	if len(recs) != len(Ledger()) || mallorys == nil || mallorys.Outcome != api.Rejected || !strings.Contains(mallorys.Reason, "not a registered operator") {
		t.Fatalf("audit %d records, mallory's %+v", len(recs), mallorys)
	}
	if len(s.Revoked) != 1 || s.Revoked[0].Node != Molly || s.Revoked[0].By != OperatorKey("carol").ID || !s.Revoked[0].At.Equal(T0.Add(-MollyRevokedAgo)) {
		t.Fatalf("revoked %+v, want carol's revocation of molly", s.Revoked)
	}
	if q := Quiet(); q.Freeze.Active || len(q.Lockouts) != 0 {
		t.Fatalf("quiet: freeze %+v, lockouts %+v", q.Freeze, q.Lockouts)
	}

	c := New(0)
	forged := Quiet() // unfrozen, as if a snapshot could thaw the cluster
	c.SetSnapshot(forged)
	if !c.Snapshot().Freeze.Active {
		t.Fatal("SetSnapshot overruled the ledger's freeze")
	}
	if _, err := c.Admin().Cordon(context.Background(), Zion); !errors.Is(err, api.ErrFrozen) {
		t.Fatalf("cordon on a frozen ledger: %v, want ErrFrozen", err)
	}
}

// TestCommitFoldsIntoTheFixtureLedger: an ICE freeze committed through the
// client is folded by the node's fold: the snapshot shows the freeze, AUDIT
// the accepted record (also offered to a subscriber), and the next routine
// commit is refused as frozen.
func TestCommitFoldsIntoTheFixtureLedger(t *testing.T) {
	c := quietClient(t)
	ctx := context.Background()
	sub, err := c.Audit().Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	backlog := len(QuietLedger())
	for i := 0; i < backlog; i++ {
		<-sub.C()
	}
	watch := c.WatchSnapshots(ctx)
	freeze := api.Action{Verb: api.VerbFreezeCluster, Reason: "drill", Duration: 10 * time.Minute}
	r, err := commitICE(t, c, freeze)
	if err != nil {
		t.Fatal(err)
	}
	if r.Seq != uint64(backlog+1) || r.Verb != api.VerbFreezeCluster {
		t.Fatalf("receipt %+v", r)
	}
	if s := <-watch; !s.Freeze.Active || s.Freeze.Reason != "drill" || !s.Freeze.Until.Equal(T0.Add(10*time.Minute)) {
		t.Fatalf("published freeze %+v", s.Freeze)
	}
	if rec := <-sub.C(); rec.Outcome != api.Accepted || rec.Seq != r.Seq || rec.EventID != r.EventID || rec.Action.Verb != api.VerbFreezeCluster {
		t.Fatalf("audit record %+v", rec)
	}
	if got := c.ICECommitted(); len(got) != 1 || got[0].Action.Reason != "drill" || len(got[0].Sigs) != 1 {
		t.Fatalf("ICE commits %+v", got)
	}
	if _, err := c.Admin().Cordon(ctx, Gibson); !errors.Is(err, api.ErrFrozen) {
		t.Fatalf("cordon after the freeze: %v, want ErrFrozen", err)
	}
	if got := c.Committed(); len(got) != 0 {
		t.Fatalf("a refused cordon was recorded: %+v", got)
	}
}

// TestFailCommitRefusesAtTheLedger: with FailCommit set, a commit that the
// command plane accepts is refused by the ledger with that error, and
// nothing is recorded, folded or published.
func TestFailCommitRefusesAtTheLedger(t *testing.T) {
	c := quietClient(t)
	c.FailCommit = ErrFixture
	before := c.Snapshot()
	if _, err := c.Admin().Cordon(context.Background(), Gibson); !errors.Is(err, ErrFixture) {
		t.Fatalf("cordon: %v, want the injected failure", err)
	}
	if _, err := commitICE(t, c, api.Action{Verb: api.VerbFlushAvoidLists}); !errors.Is(err, ErrFixture) {
		t.Fatalf("ICE flush: %v, want the injected failure", err)
	}
	recs, err := c.Audit().Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Committed())+len(c.ICECommitted()) != 0 || len(recs) != len(QuietLedger()) || c.Snapshot() != before {
		t.Fatalf("a refused commit left a trace: %d commits, %d audit records", len(c.Committed())+len(c.ICECommitted()), len(recs))
	}
}

// TestProposalPayloadsAreDeterministic: two fresh clients produce the same
// signing payload for the same proposal (fixed clock, seeded nonces), and it
// is the node's payload format.
func TestProposalPayloadsAreDeterministic(t *testing.T) {
	payload := func() []byte {
		ctx := context.Background()
		p, err := New(0).ICE().FlushAvoidLists(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sp, err := p.Simulate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return sp.SigningPayload()
	}
	a, b := payload(), payload()
	if !bytes.Equal(a, b) {
		t.Fatal("two fixture clients signed different payloads for the same proposal")
	}
	body, err := command.DecodeSigningPayload(a)
	if err != nil {
		t.Fatal(err)
	}
	if body.Cluster != ClusterName || body.Nonce == (command.Nonce{}) || !body.IssuedAt().Equal(T0) {
		t.Fatalf("payload body %+v", body)
	}
}

// TestPreviewIsTheNodesProjection: the fixture's preview is command's
// projection over the fixture spec and fold, on the view placement sees:
// the console (an observer, the idlest node) is out of it, so draining
// neuromancer moves its daemons but never onto the console, as it would
// on the raw view.
func TestPreviewIsTheNodesProjection(t *testing.T) {
	c := quietClient(t)
	a := api.Action{Verb: api.VerbDrain, Node: Neuromancer, Duration: 5 * time.Minute}
	got, err := c.Preview(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := command.Fold(Genesis(), QuietLedger())
	if err != nil {
		t.Fatal(err)
	}
	want, err := command.PreviewWith(placement.HostingView(c.Snapshot()), Spec(), st, a)
	if err != nil {
		t.Fatal(err)
	}
	if got.Hash != want.Hash || len(got.Migrated) == 0 {
		t.Fatalf("preview %+v, want the node's %+v", got, want)
	}
	onto := func(br api.BlastRadius) bool {
		for _, m := range br.Migrated {
			if m.To == Console {
				return true
			}
		}
		for _, r := range br.Replicas {
			if r.To == Console {
				return true
			}
		}
		return false
	}
	if onto(got) {
		t.Fatalf("projected onto the console: %+v", got)
	}
	raw, err := command.PreviewWith(c.Snapshot(), Spec(), st, a)
	if err != nil {
		t.Fatal(err)
	}
	if !onto(raw) {
		t.Fatal("the raw view puts nothing on the console either: the check above shows nothing")
	}
}
