package node

import (
	"context"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/command/chainfold"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/nodetest"
	"github.com/deck-mesh/deck/node/snapshot"
)

// recordingCommitter remembers the last event the command plane committed,
// so a test can push the very same bytes again.
type recordingCommitter struct {
	inner command.Committer
	last  *command.Event
}

func (r *recordingCommitter) Commit(ctx context.Context, ev *command.Event) (uint64, error) {
	r.last = ev
	return r.inner.Commit(ctx, ev)
}

// startCommitMesh starts two full nodes and one console (observer) node.
func startCommitMesh(t *testing.T) (full []*Node, console *Node, op *identity.Key) {
	t.Helper()
	op, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := config.NewCluster("commit", nil, []config.Operator{config.NewOperator("alice", op.Public)}, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	start := func(label string, observer bool, bootstrap []string) *Node {
		nd, err := Start(context.Background(), Options{
			Cluster: cl, DataDir: t.TempDir(), Label: label, Observer: observer,
			Bootstrap: bootstrap, Version: "test", CertifyWith: identity.KeySigner{K: op},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nd.Close() })
		return nd
	}
	a := start("a", false, nil)
	b := start("b", false, []string{a.Addr()})
	c := start("console", true, []string{a.Addr()})
	nodetest.Eventually(t, "the console to see both full nodes", func() bool {
		nv := c.Cluster().Node(b.ID())
		return len(c.peerIDs()) >= 2 && nv != nil && nv.Health == snapshot.Healthy
	})
	return []*Node{a, b}, c, op
}

// TestConsoleCommitAcknowledgedWhenPeersAlreadyHoldEvent: a peer that
// already holds a pushed event (anti-entropy got there first) must still
// acknowledge it, or a console waits out its timeout for an event the
// whole mesh has.
func TestConsoleCommitAcknowledgedWhenPeersAlreadyHoldEvent(t *testing.T) {
	full, console, op := startCommitMesh(t)
	rec := &recordingCommitter{inner: console.commit}
	cmds, err := command.New(command.Config{Signer: identity.KeySigner{K: op}, Source: source{console}, Committer: rec})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := cmds.Admin().Cordon(ctx, full[1].ID()); err != nil {
		t.Fatalf("first commit: %v", err)
	}
	if rec.last == nil {
		t.Fatal("command plane committed nothing")
	}
	id := rec.last.LedgerKey()
	for _, nd := range full {
		nd := nd
		nodetest.Eventually(t, "event on every full node", func() bool {
			held, err := nd.ledger.Has(id)
			return err == nil && held
		})
	}
	// Every peer now holds the event: pushing it again is a duplicate
	// everywhere, and still has to be acknowledged.
	began := time.Now()
	if _, err := console.commit.Commit(ctx, rec.last); err != nil {
		t.Fatalf("re-commit of a held event: %v", err)
	}
	if took := time.Since(began); took >= chainfold.CommitAckTimeout {
		t.Fatalf("acknowledged only after %v", took)
	}
}
