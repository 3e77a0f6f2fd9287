package node

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/mesh"
)

// genesisOf turns the cluster file's genesis into the command plane's.
func genesisOf(c *config.Cluster) (command.Genesis, error) {
	keys, err := c.OperatorKeys()
	if err != nil {
		return command.Genesis{}, fmt.Errorf("node: cluster operators: %w", err)
	}
	g := command.Genesis{Cluster: c.Name, AdminThreshold: c.Genesis.AdminThreshold, ICEThreshold: c.Genesis.ICEThreshold}
	for _, k := range keys {
		g.Operators = append(g.Operators, command.GenesisOperator{Name: k.Name, PublicKey: k.Public})
	}
	// The fold starts from this genesis on every node; refuse one it cannot
	// start from here, with the reason, rather than deep inside a goroutine.
	if _, err := command.NewState(g); err != nil {
		return command.Genesis{}, fmt.Errorf("node: %w: cluster genesis: %v", api.ErrInvalid, err)
	}
	return g, nil
}

// Commit fan-out: the submitting node inserts the event in its own ledger
// and pushes it to every peer it can reach; anti-entropy repairs the rest.
// A console's node (observer) waits for one peer's acknowledgement, because
// it may exit right after; it re-pushes every commitRepushInterval until
// then, since a datagram can be lost or a session still be handshaking.
// A peer acknowledges an event it already holds (anti-entropy may deliver
// it before the push does) and answers a refusal with the reason, so the
// console reports the rejection instead of a bare timeout.
const (
	commitAckTimeout     = 5 * time.Second
	commitRepushInterval = 700 * time.Millisecond
	cmdPush              = 1
	cmdAck               = 2
	cmdNack              = 3
	maxCommitEvent       = 64 << 10
	maxNackReasonBytes   = 512
)

// commitReply is one peer's answer to a pushed event: err is nil for an
// acknowledgement, the peer's reason for a refusal.
type commitReply struct {
	from identity.NodeID
	err  error
}

type committer struct {
	n  *Node
	mu sync.Mutex
	// waiting maps an event id to the channel its replies arrive on.
	waiting map[[32]byte]chan commitReply
}

func newCommitter(n *Node) *committer {
	return &committer{n: n, waiting: make(map[[32]byte]chan commitReply)}
}

// Commit implements command.Committer.
func (c *committer) Commit(ctx context.Context, ev *command.Event) (uint64, error) {
	raw := ev.Marshal()
	if len(raw) > maxCommitEvent {
		return 0, fmt.Errorf("%w: event is %d bytes", api.ErrInvalid, len(raw))
	}
	id := ev.LedgerKey()
	replies := make(chan commitReply, 16)
	c.mu.Lock()
	c.waiting[id] = replies
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiting, id)
		c.mu.Unlock()
	}()
	stored, _, err := c.n.ledger.Insert(ctx, raw)
	if err != nil {
		c.n.rejects.add(ev, err)
		return 0, err
	}
	msg := append([]byte{cmdPush}, raw...)
	peers := c.n.peerIDs()
	c.push(peers, msg)
	c.n.poke()
	if !c.n.opts.Observer {
		return stored.Seq, nil
	}
	if len(peers) == 0 {
		return stored.Seq, fmt.Errorf("%w: committed locally but no peer to carry it", api.ErrNotConnected)
	}
	deadline := time.NewTimer(commitAckTimeout)
	defer deadline.Stop()
	repush := time.NewTicker(commitRepushInterval)
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
			for _, p := range c.n.peerIDs() {
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
func (c *committer) push(peers []identity.NodeID, msg []byte) {
	for _, p := range peers {
		go func(p identity.NodeID) {
			sctx, cancel := context.WithTimeout(c.n.ctx, commitAckTimeout)
			defer cancel()
			_ = c.n.tr.Send(sctx, p, mesh.ChanCommand, msg)
		}(p)
	}
}

// handle receives pushed events, acknowledgements and refusals on
// ChanCommand. Bytes from the network that do not parse are dropped.
func (c *committer) handle(from identity.NodeID, msg []byte) {
	if len(msg) < 1 {
		return
	}
	switch msg[0] {
	case cmdPush:
		if len(msg) > 1+maxCommitEvent {
			return
		}
		raw := append([]byte(nil), msg[1:]...)
		dec, derr := command.DecodeEvent(raw)
		if derr != nil {
			return
		}
		id := dec.LedgerKey()
		go func() {
			ctx, cancel := context.WithTimeout(c.n.ctx, commitAckTimeout)
			defer cancel()
			// A duplicate is not an error: the event is held, so it is
			// acknowledged like a fresh insert.
			_, _, err := c.n.ledger.Insert(ctx, raw)
			var reply []byte
			if err != nil {
				c.n.rejects.add(dec, err)
				reason := err.Error()
				if len(reason) > maxNackReasonBytes {
					reason = reason[:maxNackReasonBytes]
				}
				reply = make([]byte, 0, 1+32+len(reason))
				reply = append(reply, cmdNack)
				reply = append(reply, id[:]...)
				reply = append(reply, reason...)
			} else {
				reply = make([]byte, 0, 1+32)
				reply = append(reply, cmdAck)
				reply = append(reply, id[:]...)
			}
			_ = c.n.tr.Send(ctx, from, mesh.ChanCommand, reply)
		}()
	case cmdAck, cmdNack:
		if len(msg) < 1+32 || (msg[0] == cmdAck && len(msg) != 1+32) || len(msg) > 1+32+maxNackReasonBytes {
			return
		}
		var id [32]byte
		copy(id[:], msg[1:33])
		r := commitReply{from: from}
		if msg[0] == cmdNack {
			r.err = fmt.Errorf("node %s: %s", from, strings.ToValidUTF8(string(msg[33:]), "?"))
		}
		c.mu.Lock()
		ch := c.waiting[id]
		c.mu.Unlock()
		if ch != nil {
			select {
			case ch <- r:
			default:
			}
		}
	}
}

// rejectRing keeps the events this node refused at ingestion (they never
// enter the ledger), so AUDIT shows them as Rejected.
const rejectRingSize = 256

type rejectRing struct {
	mu   sync.Mutex
	recs []api.AuditRecord
	next uint64
	max  int
}

func newRejectRing(max int) *rejectRing { return &rejectRing{max: max} }

func (r *rejectRing) add(ev *command.Event, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next++
	rec := command.AuditRecordFor(ev, err, 0)
	rec.Outcome = api.Rejected
	rec.Reason = err.Error()
	rec.At = time.Now().UTC()
	// Local rejections are numbered after the ledger's seqs in their own
	// space: the high bit marks them so they never collide.
	rec.Seq = 1<<63 | r.next
	r.recs = append(r.recs, rec)
	if len(r.recs) > r.max {
		r.recs = slices.Delete(r.recs, 0, len(r.recs)-r.max)
	}
}

func (r *rejectRing) list() []api.AuditRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.recs)
}
