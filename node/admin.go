package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/command/chainfold"
	"github.com/deck-mesh/deck/node/config"
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
		WaitForAck: n.opts.Observer, Inserted: n.poke, Refused: n.rejects.add,
	})}
}

// Commit implements command.Committer.
func (c *committer) Commit(ctx context.Context, ev *command.Event) (uint64, error) {
	return c.push.Commit(ctx, ev)
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
