package meshos

import (
	"testing"

	"github.com/deck-mesh/deck/node/messaging/messagingtest"
)

// TestAttackMigrationFloodCannotFillInbox: one peer fires migration-channel
// messages faster than the runtime's loop takes them (here the loop is not
// running at all, the extreme of a slow reconcile pass) and then an honest
// peer sends one. The flood fills only the flooder's share of the inbox:
// the honest message is queued, not dropped.
func TestAttackMigrationFloodCannotFillInbox(t *testing.T) {
	rt, err := New(Config{Self: 1, Messenger: messagingtest.NewHub(t, messagingtest.Config{}).Join(1)})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := (&message{Kind: msgWarmReq, Chain: "rep", Daemon: "rep-0", Seq: 1}).encode()
	if err != nil {
		t.Fatal(err)
	}
	const greedy, honest = NodeID(66), NodeID(2)
	for range 2 * InboxLen {
		rt.handle(greedy, msg) // as the transport's read loop calls it
	}
	rt.handle(honest, msg)
	counts := map[NodeID]int{}
	for len(rt.inbox) > 0 {
		counts[(<-rt.inbox).from]++
	}
	if counts[honest] != 1 {
		t.Fatalf("the honest peer's message was dropped behind %d queued from the flooder", counts[greedy])
	}
	if counts[greedy] > InboxPerPeerMax {
		t.Fatalf("%d of the flooder's messages queued, share %d", counts[greedy], InboxPerPeerMax)
	}
	if got, want := rt.inboxDropped.Load(), uint64(2*InboxLen-counts[greedy]); got != want {
		t.Fatalf("dropped %d, want %d counted", got, want)
	}
}
