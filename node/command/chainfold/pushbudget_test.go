package chainfold

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/identity/identitytest"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/messaging/messagingtest"
	"github.com/deck-mesh/deck/node/nodetest"
)

// TestAttackCommitPushFlood: a peer pushes the same signed event over and
// over. Each push the node takes on costs a goroutine, a signature check
// and a ledger insert, and earns the peer an acknowledgement. On a clock
// that stands still the node takes on one burst of that peer's pushes and
// refuses (and counts) the rest; another peer's push is still taken.
func TestAttackCommitPushFlood(t *testing.T) {
	clock := nodetest.NewClock(t0.Add(time.Minute))
	db, err := chain.Open(chain.Config{Dir: t.TempDir(), RetentionInterval: -1, ValueLogGCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h := messagingtest.NewHub(t, messagingtest.Config{})
	srv := h.Join(1)
	c := NewCommitter(CommitConfig{Context: t.Context(), Ledger: db.Ledger(Validator(cluster, clock.Now)), Messenger: srv, Now: clock.Now})
	srv.Handle(messaging.ChanCommand, c.Handle)

	acks := func(id identity.NodeID) *atomic.Uint64 {
		var n atomic.Uint64
		h.Join(id).Handle(messaging.ChanCommand, func(_ identity.NodeID, msg []byte) {
			if m, err := parseCommitMessage(msg); err == nil && m.kind == msgAck {
				n.Add(1)
			}
		})
		return &n
	}
	attacker, honest := acks(66), acks(2)
	ev := event(t, api.Action{Verb: api.VerbCordon, Node: 1}, 0, 1, identitytest.Key(t, "alice"))
	push := appendPush(nil, ev.Marshal())
	const flood = 200
	for range flood {
		if err := h.Node(66).Send(t.Context(), 1, messaging.ChanCommand, push); err != nil {
			t.Fatal(err)
		}
	}
	nodetest.Eventually(t, "every push acknowledged or refused", func() bool {
		return attacker.Load()+c.Stats().PushesRefused == flood
	}, func() string { return fmt.Sprintf("acks %d, stats %+v", attacker.Load(), c.Stats()) })
	if got := attacker.Load(); got > CommitPushBurstPerPeer {
		t.Fatalf("%d of %d pushes from one peer validated, inserted and acknowledged on a clock that stands still; want at most the burst, %d",
			got, flood, CommitPushBurstPerPeer)
	}
	if err := h.Node(2).Send(t.Context(), 1, messaging.ChanCommand, push); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, "the other peer's push acknowledged", func() bool { return honest.Load() == 1 })
}
