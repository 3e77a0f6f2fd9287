package meshos

import (
	"sync"

	"github.com/deck-mesh/deck/node/identity"
)

// inboxShare caps each peer's messages waiting in the runtime's inbox at
// InboxPerPeerMax, so one peer flooding ChanMigration fills its own share
// and not the queue every other peer's migrations and chain replication
// wait in. The handler checks it before decoding (on the transport's read
// loop); Run gives the slot back as it takes each message.
type inboxShare struct {
	mu     sync.Mutex
	queued map[identity.NodeID]int
}

// take reserves a slot for one message from peer; false when its share is
// full.
func (s *inboxShare) take(peer identity.NodeID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queued == nil {
		s.queued = make(map[identity.NodeID]int)
	}
	if s.queued[peer] >= InboxPerPeerMax {
		return false
	}
	s.queued[peer]++
	return true
}

// give returns a slot taken for peer.
func (s *inboxShare) give(peer identity.NodeID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queued[peer]--; s.queued[peer] <= 0 {
		delete(s.queued, peer)
	}
}
