package chainfold

import (
	"sync/atomic"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/ratelimit"
)

// pushBudget bounds the work peers' pushes cause: each admitted push runs
// on its own goroutine (the handler runs on the transport's read loop and
// must not block) to validate and insert one event, so without a bound a
// peer firing pushes raised goroutines, signature checks and ledger writes
// as fast as it could send. Admission is per peer (a token bucket) and in
// total (a semaphore of CommitPushesInflightMax); the rest is refused and
// counted, before the event is copied.
type pushBudget struct {
	perPeer  *ratelimit.Table[identity.NodeID]
	inflight chan struct{}
	refused  atomic.Uint64
}

func newPushBudget() pushBudget {
	return pushBudget{
		perPeer:  ratelimit.New[identity.NodeID](CommitPushesPerSecondPerPeer, CommitPushBurstPerPeer, commitMaxPushPeers),
		inflight: make(chan struct{}, CommitPushesInflightMax),
	}
}

// admit takes a slot for one push from peer; call done when it finishes.
func (b *pushBudget) admit(peer identity.NodeID, now time.Time) bool {
	select {
	case b.inflight <- struct{}{}:
	default:
		b.refused.Add(1)
		return false
	}
	if !b.perPeer.Allow(peer, now) {
		<-b.inflight
		b.refused.Add(1)
		return false
	}
	return true
}

func (b *pushBudget) done() { <-b.inflight }

// CommitStats are the Committer's counters.
type CommitStats struct {
	// PushesRefused counts peers' pushes dropped by the push budget.
	PushesRefused uint64
}

// Stats returns the counters.
func (c *Committer) Stats() CommitStats {
	return CommitStats{PushesRefused: c.pushes.refused.Load()}
}
