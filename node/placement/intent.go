package placement

import (
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

// ClusterIntent is what the admin ledger's fold says the cluster should do.
// node/command produces it (deterministically, the same on every node);
// meshos obeys it. One-shot requests (restart, invalidate, clear avoid list,
// evict, cutover) are generation counters: MeshOS acts once when it sees a
// generation higher than the one it last acted on, so replaying the ledger is
// idempotent.
type ClusterIntent struct {
	Nodes   map[identity.NodeID]NodeIntent
	Daemons map[string]DaemonIntent // by daemon id
	Freeze  snapshot.Freeze
	// FlushAvoidGen: every node clears its avoid list when this grows.
	FlushAvoidGen uint64
	Evictions     []ReplicaEviction
	Cutovers      []Cutover
	// KilledMigrations are migrations an operator aborted (by migration id).
	KilledMigrations map[string]uint64
}

// MaintIntent is the operator's wish for a node's maintenance state.
type MaintIntent uint8

const (
	MaintIntentNone  MaintIntent = iota // stay / return Active
	MaintIntentEnter                    // drain and enter Maintenance
	MaintIntentExit                     // leave Maintenance through Recovery
)

// NodeIntent is the admin state for one node.
type NodeIntent struct {
	Cordoned    bool
	Maintenance MaintIntent
	// MaintGen grows with every enter/exit event, so a repeated enter after an
	// exit starts a fresh drain.
	MaintGen uint64
	// DrainDeadline is when the drain must be finished (enter-maintenance,
	// drain); zero means no deadline.
	DrainDeadline time.Time
	// ForceDrain (ICE force-drain) bypasses admit()'s drain rate limit and
	// stabilization window, but not freeze.
	ForceDrain      bool
	RestartAllGen   uint64
	InvalidateGen   uint64
	ClearAvoidGen   uint64
	DropReplicasGen uint64
	DropReplicas    []string // chains to drop on the node (empty with gen>0: all)
}

// DaemonIntent is the admin state for one daemon.
type DaemonIntent struct {
	RestartGen      uint64
	ForceRestartGen uint64 // ICE: restart even if gated by crash-loop backoff
}

// ReplicaEviction is an ICE force-evict-replica.
type ReplicaEviction struct {
	Chain string
	Node  identity.NodeID
	Gen   uint64
}

// Cutover is an ICE force-cutover: make Target the chain's leader.
type Cutover struct {
	Chain  string
	Target identity.NodeID
	Gen    uint64
}
