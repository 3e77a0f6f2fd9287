package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/command/chainfold"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
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

// committer is the node's command.Committer: chainfold's commit push
// protocol (push to peers, acks and refusals, re-push until one peer
// acknowledges) wired to this node's ledger, transport and audit ring.
type committer struct {
	push *chainfold.Committer
}

func newCommitter(n *Node) *committer {
	return &committer{push: chainfold.NewCommitter(chainfold.CommitConfig{
		Context: n.ctx, Ledger: n.ledger, Messenger: n.tr, Peers: n.peerIDs,
		WaitForAck: n.opts.Observer, Inserted: n.poke, Refused: n.refused,
	})}
}

// Commit implements command.Committer.
func (c *committer) Commit(ctx context.Context, ev *command.Event) (uint64, error) {
	return c.push.Commit(ctx, ev)
}

// refused records an event this node refused at ingestion, sent by from
// (0: this node's own console).
func (n *Node) refused(from identity.NodeID, ev *command.Event, err error) {
	if !from.Valid() {
		from = n.key.ID
	}
	n.rejects.add(from, ev, err, n.now())
}

// refusedPull records an event anti-entropy pulled and the ledger refused.
func (n *Node) refusedPull(r chain.Rejection) {
	if ev := chainfold.EventOf(r.Meta); ev != nil {
		n.refused(r.From, ev, r.Err)
	}
}

// The reject ring keeps the events this node refused at ingestion (they
// never enter the ledger), so AUDIT shows them as refused, named by the
// node that sent them. It is bounded, and so is each sender's share, so a
// peer that floods refusals (or serves the same junk every anti-entropy
// round) cannot push everyone else's out: a sender over its share loses its
// own oldest record, and the same event refused again from the same sender
// replaces its record instead of adding one.
const (
	rejectRingSize      = 256
	rejectRingPerSender = 32
)

type rejectRing struct {
	mu        sync.Mutex
	recs      []api.AuditRecord
	next      uint64
	max       int
	perSender int
}

func newRejectRing(max, perSender int) *rejectRing {
	return &rejectRing{max: max, perSender: perSender}
}

func (r *rejectRing) add(from identity.NodeID, ev *command.Event, err error, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next++
	rec := command.AuditRecordFor(ev, err, 0)
	rec.Outcome = api.Rejected
	// The event names its proposer; whether the proposer signed it is what
	// this node could not establish, so the record is the sender's, not
	// the operator's.
	rec.Reason = fmt.Sprintf("%v (names operator %s)", err, ev.Proposer())
	rec.Operator = 0
	rec.From = from
	rec.At = at.UTC()
	// Local rejections are numbered after the ledger's seqs in their own
	// space: the high bit marks them so they never collide.
	rec.Seq = 1<<63 | r.next
	mine := 0
	for i := 0; i < len(r.recs); i++ {
		if r.recs[i].From != from {
			continue
		}
		if r.recs[i].EventID == rec.EventID {
			r.recs = slices.Delete(r.recs, i, i+1)
			i--
			continue
		}
		mine++
	}
	if mine >= r.perSender {
		for i := range r.recs {
			if r.recs[i].From == from {
				r.recs = slices.Delete(r.recs, i, i+1)
				break
			}
		}
	}
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
