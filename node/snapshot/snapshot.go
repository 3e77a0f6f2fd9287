// Package snapshot defines the immutable views of the cluster that the node
// publishes and the deck renders: one NodeSnapshot per node (built, signed and
// gossiped by that node) and the ClusterSnapshot each node folds from all of
// them plus the admin-ledger state. It is a leaf package of plain data so that
// every layer (meshos, command, gossip, the TUI) can share it without cycles.
//
// Values reachable from a published *ClusterSnapshot are never mutated; a new
// snapshot is built instead. Times are absolute (time.Time) so a reader can
// compute ages and countdowns at render time without a new snapshot.
package snapshot

import (
	"strconv"
	"time"

	"github.com/deck-mesh/deck/node/identity"
)

// NodeID re-exports identity.NodeID for readability in this package's users.
type NodeID = identity.NodeID

// Health is a node's liveness as seen from the observing node.
type Health uint8

const (
	Healthy Health = iota
	Suspect
	Unreachable
)

func (h Health) String() string {
	switch h {
	case Healthy:
		return "healthy"
	case Suspect:
		return "suspect"
	case Unreachable:
		return "unreachable"
	}
	return "unknown"
}

// MaintState is the maintenance state machine of one node.
type MaintState uint8

const (
	MaintActive MaintState = iota
	MaintEntering
	MaintMaintenance
	MaintExiting
	MaintRecovery
	MaintDrainFailed
)

func (m MaintState) String() string {
	switch m {
	case MaintActive:
		return "active"
	case MaintEntering:
		return "entering-maintenance"
	case MaintMaintenance:
		return "maintenance"
	case MaintExiting:
		return "exiting-maintenance"
	case MaintRecovery:
		return "recovery"
	case MaintDrainFailed:
		return "drain-failed"
	}
	return "unknown"
}

// Maintenance is a node's maintenance state with its parameters.
type Maintenance struct {
	State    MaintState
	Since    time.Time
	Deadline time.Time // EnteringMaintenance: when the drain must be done
	Reason   string    // DrainFailed: why
	// Drain progress: what is still on the node and what was there at the start.
	DaemonsLeft, DaemonsTotal   int
	ReplicasLeft, ReplicasTotal int
}

// Lifecycle of a daemon instance.
type Lifecycle uint8

const (
	LifecyclePending Lifecycle = iota
	LifecycleStarting
	LifecycleRunning
	LifecycleDraining
	LifecycleMigrating
	LifecycleStopped
	LifecycleCrashed
)

func (l Lifecycle) String() string {
	return [...]string{"pending", "starting", "running", "draining", "migrating", "stopped", "crashed"}[l%7]
}

// DaemonHealth is a daemon's self-reported health.
type DaemonHealthState uint8

const (
	DaemonHealthy DaemonHealthState = iota
	DaemonDegraded
	DaemonUnhealthy
)

func (h DaemonHealthState) String() string {
	return [...]string{"healthy", "degraded", "unhealthy"}[h%3]
}

// RestartKind is a daemon's restart state.
type RestartKind uint8

const (
	RestartIdle RestartKind = iota
	RestartBackingOff
	RestartCrashLooping
)

func (r RestartKind) String() string {
	return [...]string{"idle", "backing-off", "crash-looping"}[r%3]
}

// GroupKind is the kind of a workload group.
type GroupKind uint8

const (
	GroupSolo GroupKind = iota
	GroupReplica
	GroupStandby
	GroupFork
)

func (g GroupKind) String() string {
	return [...]string{"solo", "replica", "standby", "fork"}[g%4]
}

// Lineage is a daemon's role in its group (SOLO, REP m[i], STBY active/warm, FORK f[i]@seq).
type Lineage struct {
	Kind   GroupKind
	Group  string
	Index  int    // member index in a replica or fork group
	Active bool   // standby groups: the active member
	ForkAt uint64 // fork groups: the parent seq forked from
	// ForkSentinel (fork groups) is the first 8 bytes of the BLAKE2b-256
	// digest of the parent chain's checkpoints at ForkAt: the link back to
	// the parent at the fork point (0: not forked yet, or no parent chain).
	ForkSentinel uint64
	Synced       uint64 // standby groups: synced_through
	Term         uint64 // standby groups: promotion fencing term
}

// Label renders the role the way every console shows it: SOLO, REP m[i],
// STBY active / STBY warm, FORK f[i]@seq.
func (l Lineage) Label() string {
	switch l.Kind {
	case GroupReplica:
		return "REP m[" + strconv.Itoa(l.Index) + "]"
	case GroupStandby:
		if l.Active {
			return "STBY active"
		}
		return "STBY warm"
	case GroupFork:
		return "FORK f[" + strconv.Itoa(l.Index) + "]@" + strconv.FormatUint(l.ForkAt, 10)
	}
	return "SOLO"
}

// Daemon is one daemon instance on a node.
type Daemon struct {
	ID           string // stable daemon id; kept across migrations
	Name         string
	Kind         string // workload kind, e.g. "inference", "sensor"
	Lineage      Lineage
	Node         NodeID
	Lifecycle    Lifecycle
	Health       DaemonHealthState
	HealthReason string
	Saturation   float64 // 0..1
	Restart      RestartKind
	RestartUntil time.Time
	Restarts     int
	StartedAt    time.Time
}

// ReplicaRole is a chain replica's role.
type ReplicaRole uint8

const (
	Follower ReplicaRole = iota
	Leader
)

func (r ReplicaRole) String() string {
	if r == Leader {
		return "leader"
	}
	return "follower"
}

// Replica is one chain replica held by a node.
type Replica struct {
	Chain string
	Role  ReplicaRole
	Seq   uint64
	// Term is the leadership term the replica knows: a leader claims a term
	// above every term it has seen, which fences a deposed leader.
	Term uint64
}

// AvoidEntry is a peer this node avoids for placement.
type AvoidEntry struct {
	Peer   NodeID
	Reason string
	Until  time.Time
}

// PendingAction is an action MeshOS has decided on but not finished.
type PendingAction struct {
	ID      string
	Kind    string // e.g. "place", "migrate", "replicate", "evict", "restart"
	Target  string
	Since   time.Time
	Blocked string // non-empty when admit() is holding it back, with the reason
}

// Failure is one record on a node's failures chain.
type Failure struct {
	Seq    uint64
	At     time.Time
	Node   NodeID
	Source string // e.g. "admit", "migration", "daemon", "placement"
	Reason string
}

// MigrationPhase is a migration's current phase.
type MigrationPhase uint8

const (
	PhaseSnapshot MigrationPhase = iota
	PhaseTransfer
	PhaseRestore
	PhaseReplay
	PhaseCutover
	PhaseComplete
	PhaseFailed
	PhaseRolledBack
)

func (p MigrationPhase) String() string {
	return [...]string{"snapshot", "transfer", "restore", "replay", "cutover", "complete", "failed", "rolled-back"}[p%8]
}

// Migration is one daemon move in progress (or just finished).
type Migration struct {
	ID        string
	Daemon    string
	Source    NodeID
	Target    NodeID
	Phase     MigrationPhase
	Progress  float64 // 0..1
	Retries   int
	StartedAt time.Time
	Error     string
}

// Counters are the node's honest transport and stream counters.
type Counters struct {
	PacketsIn, PacketsOut uint64
	BytesIn, BytesOut     uint64
	Drops                 uint64
	ReplaysRejected       uint64
	AuthFailures          uint64
	HandshakesRateLimited uint64
	Forwarded             uint64
	LogsDropped           uint64
	Lag                   uint64
}

// Resources are a node's resource gauges.
type Resources struct {
	CPULoad    float64   // 0..1
	MemUsed    float64   // 0..1
	DiskUsed   float64   // 0..1
	Saturation float64   // 0..1, the placement-relevant aggregate
	Trend      []float64 // recent saturation samples, oldest first (bounded)
}

// NodeSnapshot is what one node publishes about itself. It is signed by the
// node and gossiped; Generation increases on every structural change.
type NodeSnapshot struct {
	ID           NodeID
	Label        string
	Addr         string
	Version      string
	Generation   uint64
	BuiltAt      time.Time
	StartedAt    time.Time
	Capabilities []string
	// Observer marks a console's embedded node (the TUI's or the CLI's): it
	// joins the mesh and gossips but never hosts daemons or replicas.
	Observer    bool
	Resources   Resources
	Maintenance Maintenance
	Cordoned    bool
	Daemons     []Daemon
	Replicas    []Replica
	Avoid       []AvoidEntry
	Pending     []PendingAction
	Failures    []Failure // most recent, bounded
	Migrations  []Migration
	Counters    Counters
	// Peers is this node's view of its neighbours: the mesh edges.
	Peers []PeerView
	// PendingPeers are peers that completed a handshake here without being
	// admitted (most recently seen first, bounded).
	PendingPeers []PendingPeer
	// Datafort is the node's blob store telemetry (Enabled false: the node
	// offers no datafort).
	Datafort Datafort
	// Blobs are blobs this node holds, hottest first, pinned and newest
	// next (bounded: a node holding more publishes the first ones; the
	// rest are found by asking it, `deck blob ls`).
	Blobs []BlobHolding
	// Subnet is the node's subnet path (subnet.go); "" is the root.
	Subnet string
	// Gateway holds the node's per-channel rules and counters when it
	// gateways its subnet; empty otherwise.
	Gateway []GatewayChannel
}

// OverflowState is where a datafort node stands against its disk budget.
type OverflowState uint8

const (
	// OverflowNone: below the high-water mark.
	OverflowNone OverflowState = iota
	// OverflowHigh: past the high-water mark: it takes no new replicas and
	// pushes its coldest blobs to peers with room.
	OverflowHigh
	// OverflowFull: at its budget: new chunks are refused.
	OverflowFull
)

func (o OverflowState) String() string {
	return [...]string{"ok", "overflowing", "full"}[o%3]
}

// Datafort is one node's blob store telemetry: what the DATAFORTS tab shows
// per node and what blob placement reads (free capacity, overflow).
type Datafort struct {
	Enabled  bool
	Capacity uint64 // disk budget for chunks, bytes
	Used     uint64 // bytes of chunks held
	Chunks   uint64
	Blobs    uint64 // blobs held (records)
	// Rates are decaying per-second averages (about a minute).
	ReadsPerSec    float64 // chunks read (served to peers and read locally)
	WritesPerSec   float64 // chunks written
	BytesInPerSec  float64 // blob bytes received
	BytesOutPerSec float64 // blob bytes served
	Overflow       OverflowState
	// Errors counts corrupt chunks found on this node's disk, chunks peers
	// served that did not match their hash, and failed transfers.
	Errors uint64
	// Repaired counts corrupt chunks replaced from another holder.
	Repaired uint64
	// Incoming is how many blobs the node is fetching now (replications,
	// re-replications, gravity and overflow copies).
	Incoming int
	// DrainLeft is how many blob replicas a draining node still holds
	// that must move before its drain is done.
	DrainLeft int
}

// BlobRole is why a node holds a blob.
type BlobRole uint8

const (
	BlobPlaced   BlobRole = iota // placement chose it (or the put landed here)
	BlobGravity                  // a copy near the nodes reading it
	BlobOverflow                 // taken from a node past its budget
	BlobStaging                  // a console's copy while its put replicates
)

func (r BlobRole) String() string {
	return [...]string{"placed", "gravity", "overflow", "staging"}[r%4]
}

// BlobHolding is one blob one node holds, as that node reports it.
type BlobHolding struct {
	Hash     [32]byte
	Size     uint64
	Replicas int // desired holders, from the blob's newest signed intent
	Role     BlobRole
	Pinned   bool
	Heat     float64 // chunk reads per second here, decaying
	Name     string
	Parent   [32]byte // the blob it was derived from; zero: none
	Operator NodeID   // who signed its newest intent
	StoredAt time.Time
}

// BlobView is one blob as the cluster view shows it: every holder's report
// merged.
type BlobView struct {
	Hash     [32]byte
	Size     uint64
	Replicas int      // desired (the newest intent any holder reports)
	Holders  []NodeID // sorted
	Heat     float64  // summed over holders
	Pinned   bool
	Name     string
	Parent   [32]byte
	Operator NodeID
	StoredAt time.Time // the earliest holder's
}

// Held is the number of holders.
func (b BlobView) Held() int { return len(b.Holders) }

// PeerView is one node's view of one peer.
type PeerView struct {
	Peer   NodeID
	Health Health
	RTT    time.Duration
	Direct bool // a direct neighbour (not via relay)
}

// NodeView is a node as the observing node sees it: its latest NodeSnapshot
// plus the observer's own liveness view of it.
type NodeView struct {
	NodeSnapshot
	Health      Health
	HealthSince time.Time
	RTT         time.Duration
	Flaps       int
	Stale       bool // the latest snapshot from it is older than the staleness bound
	ReceivedAt  time.Time
	// HeardAt is when the observing node last heard the node itself (its
	// last heartbeat or handshake); zero when it never had a session with it.
	// Health lags silence by seconds; a leadership claim counts only
	// nodes heard more recently than that (meshos quorum).
	HeardAt time.Time
}

// Chain is a replicated chain's cluster-wide state.
type Chain struct {
	Name    string
	Group   string
	Desired int
	Holders []NodeID
	Leader  NodeID
	HeadSeq uint64
}

// Held is the number of holders.
func (c Chain) Held() int { return len(c.Holders) }

// Status is ok / under / over.
func (c Chain) Status() string {
	switch {
	case len(c.Holders) < c.Desired:
		return "under"
	case len(c.Holders) > c.Desired:
		return "over"
	}
	return "ok"
}

// Group is a workload group's cluster-wide state.
type Group struct {
	Name    string
	Kind    GroupKind
	Desired int
	Parent  string // fork groups: the parent group
	ForkAt  uint64
	Term    uint64   // standby groups
	Members []string // daemon ids
	Chain   string
}

// Freeze is the cluster freeze set by ICE.
type Freeze struct {
	Active   bool
	Reason   string
	Operator NodeID
	Until    time.Time
}

// Operator is a registered operator.
type Operator struct {
	ID        NodeID
	Name      string
	PublicKey []byte
	AddedAt   time.Time
}

// Lockout is an ICE cooldown on a verb+target.
type Lockout struct {
	Verb   string
	Target string
	Until  time.Time
}

// PendingPeer is a peer that completed a handshake with the reporting node
// (it holds the PSK) without a certificate the mesh accepts: nothing it
// sends reaches a service until an operator admits it (deck node admit) or
// it presents a valid certificate. Each node publishes the ones it sees.
type PendingPeer struct {
	ID        NodeID
	Key       []byte // its ed25519 key, as its signed node record binds it
	Addr      string // where its packets came from, as the reporter saw them
	Reason    string // why it is not a member
	FirstSeen time.Time
	LastSeen  time.Time
}

// PendingNode is a pending peer as the cluster view shows it: every
// member's report of it merged.
type PendingNode struct {
	PendingPeer
	SeenBy []NodeID // members reporting it, sorted
}

// Admitted is a node the admin ledger admitted (admit-node).
type Admitted struct {
	Node     NodeID
	Key      []byte
	By       NodeID // proposing operator
	At       time.Time
	NotAfter time.Time
}

// Revoked is a node the admin ledger revoked (revoke-node).
type Revoked struct {
	Node NodeID
	By   NodeID
	At   time.Time
}

// Edge is a mesh link with its RTT.
type Edge struct {
	A, B NodeID
	RTT  time.Duration
}

// ClusterSnapshot is the whole cluster as folded by one node. Immutable.
type ClusterSnapshot struct {
	Cluster        string
	Self           NodeID
	BuiltAt        time.Time
	Generation     uint64
	Nodes          []NodeView // sorted by id
	Chains         []Chain    // sorted by name
	Groups         []Group    // sorted by name
	Freeze         Freeze
	Operators      []Operator
	AdminThreshold int
	ICEThreshold   int
	Lockouts       []Lockout
	AdminHead      AdminHead
	Edges          []Edge
	PendingNodes   []PendingNode // sorted by id
	Admitted       []Admitted    // sorted by node
	Revoked        []Revoked     // sorted by node
	// Blobs are the blobs the nodes report holding, sorted by hash
	// (bounded: each node reports at most its hottest few).
	Blobs []BlobView
	// LocalSubnet is the observing node's subnet path.
	LocalSubnet string
	// Subnets are every subnet the view knows, sorted by path: full detail
	// (Nodes holds their members) for the local subnet and any drilled
	// into, the aggregator's summary for the rest.
	Subnets []SubnetView
	// Aggregators is the aggregator registry, sorted by subnet.
	Aggregators []Aggregator
}

// AdminHead is the admin ledger's head as seen locally.
type AdminHead struct {
	Count          uint64
	LastSeq        uint64
	Hash           [32]byte
	AppliedThrough time.Time
}

// Node returns the view of id, or nil.
func (c *ClusterSnapshot) Node(id NodeID) *NodeView {
	for i := range c.Nodes {
		if c.Nodes[i].ID == id {
			return &c.Nodes[i]
		}
	}
	return nil
}
