package chainfold

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
)

// Commit fan-out: the submitting node inserts the event in its own ledger
// and pushes it to every peer it can reach; anti-entropy repairs the rest.
// A console's node (observer) waits for one peer's acknowledgement, because
// it may exit right after; it re-pushes every CommitRepushInterval until
// then, since a datagram can be lost or a session still be handshaking.
// A peer acknowledges an event it already holds (anti-entropy may deliver
// it before the push does) and answers a refusal with the reason, so the
// console reports the rejection instead of a bare timeout.
const (
	CommitAckTimeout     = 5 * time.Second
	CommitRepushInterval = 700 * time.Millisecond
	// commitReplyBuffer is how many peers' replies a waiting commit holds;
	// more are dropped (one acknowledgement is enough).
	commitReplyBuffer = 16
	// CommitPushesPerSecondPerPeer and CommitPushBurstPerPeer budget the
	// pushed events one peer may have this node validate and insert (a
	// signature check and a ledger write each); CommitPushesInflightMax
	// bounds the pushes being inserted at once, all peers together. Beyond
	// either a push is dropped and counted (CommitStats.PushesRefused): an
	// honest pusher re-pushes every CommitRepushInterval, and anti-entropy
	// carries the event anyway.
	CommitPushesPerSecondPerPeer = 20
	CommitPushBurstPerPeer       = 20
	CommitPushesInflightMax      = 64
	// commitMaxPushPeers caps the push budget's table of peers.
	commitMaxPushPeers = 1024
)

// CommitConfig wires a Committer to its node.
type CommitConfig struct {
	// Context bounds the pushes and replies the Committer sends on its own
	// goroutines: cancel it when the node closes.
	Context   context.Context
	Ledger    *chain.Ledger
	Messenger messaging.Messenger
	// Peers lists the peers to push to (the reachable ones).
	Peers func() []identity.NodeID
	// WaitForAck makes Commit wait until one peer acknowledges (a
	// console's node, which may exit right after).
	WaitForAck bool
	// Inserted runs after a local commit is in the ledger (the node
	// refolds its view); nil for none.
	Inserted func()
	// Refused hears every event this node refused at ingestion, its own
	// commits (from is 0) and peers' pushes (from is the authenticated
	// sender): they never enter the ledger, so AUDIT shows them from
	// here; nil for none. It must not block.
	Refused func(from identity.NodeID, ev *command.Event, err error)
	// Now is the clock of the per-peer push budget; nil means time.Now.
	Now func() time.Time
}

// commitReply is one peer's answer to a pushed event: err is nil for an
// acknowledgement, the peer's reason for a refusal.
type commitReply struct {
	from identity.NodeID
	err  error
}

// Committer is the commit push protocol. It implements command.Committer;
// register Handle on messaging.ChanCommand.
type Committer struct {
	cfg CommitConfig
	mu  sync.Mutex
	// waiting maps an event id to the channel its replies arrive on.
	waiting map[[32]byte]chan commitReply

	pushes pushBudget
}

// NewCommitter makes a Committer; it does not register its handler.
func NewCommitter(cfg CommitConfig) *Committer {
	if cfg.Context == nil {
		cfg.Context = context.Background()
	}
	if cfg.Inserted == nil {
		cfg.Inserted = func() {}
	}
	if cfg.Refused == nil {
		cfg.Refused = func(identity.NodeID, *command.Event, error) {}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Committer{cfg: cfg, waiting: make(map[[32]byte]chan commitReply), pushes: newPushBudget()}
}

// Commit implements command.Committer.
func (c *Committer) Commit(ctx context.Context, ev *command.Event) (uint64, error) {
	raw := ev.Marshal()
	if len(raw) > chain.MaxEventBytes {
		return 0, fmt.Errorf("%w: event is %d bytes", api.ErrInvalid, len(raw))
	}
	id := ev.LedgerKey()
	replies := make(chan commitReply, commitReplyBuffer)
	c.mu.Lock()
	c.waiting[id] = replies
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiting, id)
		c.mu.Unlock()
	}()
	stored, _, err := c.cfg.Ledger.Insert(ctx, raw)
	if err != nil {
		c.cfg.Refused(0, ev, err)
		return 0, err
	}
	msg := appendPush(nil, raw)
	peers := c.cfg.Peers()
	c.push(peers, msg)
	c.cfg.Inserted()
	if !c.cfg.WaitForAck {
		return stored.Seq, nil
	}
	if len(peers) == 0 {
		return stored.Seq, fmt.Errorf("%w: committed locally but no peer to carry it", api.ErrNotConnected)
	}
	deadline := time.NewTimer(CommitAckTimeout)
	defer deadline.Stop()
	repush := time.NewTicker(CommitRepushInterval)
	defer repush.Stop()
	refused := make(map[identity.NodeID]error)
	for {
		select {
		case r := <-replies:
			if r.err == nil {
				return stored.Seq, nil
			}
			refused[r.from] = r.err
			if len(refused) >= len(peers) {
				return stored.Seq, fmt.Errorf("command: every peer refused the event: %w", r.err)
			}
		case <-repush.C:
			var pending []identity.NodeID
			for _, p := range c.cfg.Peers() {
				if _, no := refused[p]; !no {
					pending = append(pending, p)
				}
			}
			c.push(pending, msg)
		case <-deadline.C:
			for _, e := range refused {
				return stored.Seq, fmt.Errorf("%w: no peer acknowledged the event; refused: %v", api.ErrTimeout, e)
			}
			return stored.Seq, fmt.Errorf("%w: no peer acknowledged the event", api.ErrTimeout)
		case <-ctx.Done():
			return stored.Seq, fmt.Errorf("%w: %v", api.ErrTimeout, ctx.Err())
		}
	}
}

// push sends msg to each peer without waiting; Send may have to finish a
// handshake first, so each runs on its own bounded goroutine.
func (c *Committer) push(peers []identity.NodeID, msg []byte) {
	for _, p := range peers {
		go func(p identity.NodeID) {
			sctx, cancel := context.WithTimeout(c.cfg.Context, CommitAckTimeout)
			defer cancel()
			_ = c.cfg.Messenger.Send(sctx, p, messaging.ChanCommand, msg)
		}(p)
	}
}

// Handle receives pushed events, acknowledgements and refusals on
// ChanCommand. Bytes from the network that do not parse are dropped, and
// so is a push that is not an event at all, or one beyond the pusher's
// budget (pushbudget.go); a pushed event is decoded once, by the ledger's
// Validator.
func (c *Committer) Handle(from identity.NodeID, msg []byte) {
	m, err := parseCommitMessage(msg)
	if err != nil {
		return
	}
	switch m.kind {
	case msgPush:
		if !c.pushes.admit(from, c.cfg.Now()) {
			return
		}
		raw := bytes.Clone(m.event) // msg is only valid during the call
		go func() {
			defer c.pushes.done()
			ctx, cancel := context.WithTimeout(c.cfg.Context, CommitAckTimeout)
			defer cancel()
			// A duplicate is not an error: the event is held, so it is
			// acknowledged like a fresh insert. The ledger's Admitter
			// judges it as sent by from (a push carries no receipts: it
			// is fresh, or it is refused).
			stored, _, err := c.cfg.Ledger.InsertFrom(ctx, chain.Incoming{Raw: raw, From: from})
			ev := EventOf(stored.Meta)
			if ev == nil {
				return // not an event: nothing to name in a reply
			}
			var reply []byte
			if err != nil {
				c.cfg.Refused(from, ev, err)
				reply = appendNack(make([]byte, 0, 1+ledgerKeyBytes+MaxNackReasonBytes), stored.Meta.ID, err.Error())
			} else {
				reply = appendAck(make([]byte, 0, 1+ledgerKeyBytes), stored.Meta.ID)
			}
			_ = c.cfg.Messenger.Send(ctx, from, messaging.ChanCommand, reply)
		}()
	case msgAck, msgNack:
		r := commitReply{from: from}
		if m.kind == msgNack {
			r.err = fmt.Errorf("node %s: %s", from, strings.ToValidUTF8(string(m.reason), "?"))
		}
		c.mu.Lock()
		ch := c.waiting[m.id]
		c.mu.Unlock()
		if ch != nil {
			select {
			case ch <- r:
			default:
			}
		}
	}
}

var _ command.Committer = (*Committer)(nil)
