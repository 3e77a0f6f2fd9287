package node

import (
	"time"

	"github.com/deck-mesh/deck/node/blob"
	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/command/chainfold"
	"github.com/deck-mesh/deck/node/gossip"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/query"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/node/subnet"
)

// Stats are what the node's services already count, for metrics. Reading
// them takes none of the services' locks: counters kept in atomics are
// read at the call; what lives under a service's lock (the peer table,
// pending peers, gossip and subscription figures, the ledger head and the
// fold's progress) is as the node's loop last read it for its own refresh,
// at most refreshInterval old (ObservedAt says when; zero before the
// first refresh). Slices and pointers are shared and read-only.
type Stats struct {
	Transport     messaging.Stats
	AntiEntropy   chain.AntiEntropyStats
	Chains        chain.Stats
	CommitPushes  chainfold.CommitStats
	Gossip        gossip.Stats
	Subscriptions chain.SubscriptionStats
	// Blobs are the datafort service's counters (node/blob).
	Blobs blob.Stats
	// MisattributedMessages counts MeshOS messages refused because their
	// sender may not say what they said (meshos/attribution.go).
	MisattributedMessages uint64
	// Query is MeshDB's: the queries this node coordinated and the
	// fragments it served for its peers (atomics, read at the call).
	Query query.Stats
	// Summaries counts what this node decided about subnet summaries.
	Summaries subnet.Stats
	// Own is this node's latest own snapshot (its daemons); never nil.
	Own *snapshot.NodeSnapshot

	ObservedAt   time.Time
	Peers        []messaging.PeerInfo // the transport's peer table, sorted by id
	PendingPeers int                  // peers held pending admission here
	Ledger       chain.Head           // the admin ledger's head
	FoldedSeq    uint64               // the last local ledger seq the fold consumed
}

// FoldLag is how many ledger events are stored but not yet folded.
func (s Stats) FoldLag() uint64 {
	if s.FoldedSeq >= s.Ledger.LastSeq {
		return 0
	}
	return s.Ledger.LastSeq - s.FoldedSeq
}

// observed is what the loop read on its last refresh (immutable).
type observed struct {
	at            time.Time
	peers         []messaging.PeerInfo
	pendingPeers  int
	gossip        gossip.Stats
	subscriptions chain.SubscriptionStats
	ledger        chain.Head
	foldedSeq     uint64
}

// Stats reads the node's counters (see Stats).
func (n *Node) Stats() Stats {
	s := Stats{
		Transport:             n.tr.Stats(),
		AntiEntropy:           n.ae.Stats(),
		Chains:                n.db.Stats(),
		CommitPushes:          n.commit.push.Stats(),
		MisattributedMessages: n.rt.MisattributedMessages(),
		Blobs:                 n.blobs.Stats(),
		Query:                 n.query.Stats(),
		Summaries:             n.summaries.Stats(),
		Own:                   n.rt.Latest(),
	}
	if o := n.observed.Load(); o != nil {
		s.ObservedAt, s.Peers, s.PendingPeers = o.at, o.peers, o.pendingPeers
		s.Gossip, s.Subscriptions = o.gossip, o.subscriptions
		s.Ledger, s.FoldedSeq = o.ledger, o.foldedSeq
	}
	return s
}
