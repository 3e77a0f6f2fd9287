package deck

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
)

// e2eBlobTimeout bounds a wait on a blob's intent reaching the view: the
// holders publish their blob lists with their snapshots, and gossip carries
// them to the console.
const e2eBlobTimeout = time.Minute

// TestEndToEndBlobPinAndDropThroughTheDeck: the real deck on a real 3-node
// mesh (every node a datafort) pins a blob and drops one of its replicas
// through the BLOBS tab's keys, each through the preview and a typed YES;
// the holders take the signed intents (Stat asks them) and the view shows
// them.
func TestEndToEndBlobPinAndDropThroughTheDeck(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real 3-node mesh")
	}
	e := startE2E(t, 1, newE2EOperator(t, "alice"))
	e.waitFor("3 healthy nodes in NODES", func(f string) bool { return strings.Contains(f, "3 nodes · 3 healthy") })

	ctx, cancel := context.WithTimeout(context.Background(), e2eBlobTimeout)
	defer cancel()
	data := bytes.Repeat([]byte("rollout "), 40_000) // 320 KB: three chunks
	info, err := e.client.Blobs().Put(ctx, bytes.NewReader(data), api.BlobPutOptions{Replicas: 2, Name: "e2e/rollouts"})
	if err != nil {
		t.Fatalf("put: %v", err)
	}

	e.type_("!")
	e.waitForWithin("the blob in BLOBS, held by its two replicas", e2eBlobTimeout, func(f string) bool {
		return strings.Contains(e2eRow(f, "e2e/rollouts"), "2/2")
	})
	e.type_("g")
	e.waitFor("cursor on the blob", func(f string) bool { return strings.HasPrefix(strings.TrimSpace(e2eRow(f, "e2e/rollouts")), "▸") })

	e.type_("p")
	e.waitFor("the pin's confirm modal", func(f string) bool {
		return strings.Contains(f, "CONFIRM pin-blob blob e2e/rollouts") && strings.Contains(f, "Type YES")
	})
	e.confirmYES("the blob pinned in BLOBS", func(f string) bool {
		return strings.Contains(e2eRow(f, "e2e/rollouts"), " pin ")
	})

	e.type_("D")
	e.waitFor("the drop's confirm modal", func(f string) bool {
		return strings.Contains(f, "CONFIRM set-blob-replicas blob e2e/rollouts to 1 replicas") && strings.Contains(f, "dropped:")
	})
	e.confirmYES("one replica desired in BLOBS", func(f string) bool {
		return strings.Contains(e2eRow(f, "e2e/rollouts"), "/1")
	})

	st, err := e.client.Blobs().Stat(ctx, info.Hash)
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	op, _, _ := e.client.Operator()
	if !st.Pinned || st.Replicas != 1 || st.Operator != op.ID {
		t.Fatalf("holders report pinned %v, replicas %d, signed by %s", st.Pinned, st.Replicas, st.Operator)
	}
}
