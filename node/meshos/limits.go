package meshos

import (
	"time"

	"github.com/deck-mesh/deck/node/placement"
)

// Every number a reviewer cares about lives here, with its unit in its name.
// Config fields of the same name (without the Default prefix) override the
// timers for tests and demos; the bounds are fixed.

// Tick and snapshot.
const (
	// DefaultTickInterval is the reconcile cadence. The timer is reset after
	// the work, so a slow tick delays the next one instead of dropping it.
	DefaultTickInterval = 500 * time.Millisecond
	// TrendSamplesMax bounds Resources.Trend (at 500 ms, 30 s of history).
	TrendSamplesMax = 60
	// FailuresInSnapshotMax bounds the recent failures a NodeSnapshot carries.
	FailuresInSnapshotMax = 32
	// MigrationsRetainedMax bounds finished migrations kept for display.
	MigrationsRetainedMax = 16
	// DefaultMigrationRetainFor is how long a finished migration stays in the
	// snapshot so operators can see how it ended.
	DefaultMigrationRetainFor = 30 * time.Second
	// SaturationHashStep quantises saturation in the structural hash, so
	// jitter below a step does not count as a change worth gossiping.
	SaturationHashStep = 0.05
	// RTTHashFloor is the RTT the structural hash cannot tell from zero;
	// above it, a peer's RTT counts by powers of two of it. Counting whole
	// milliseconds made a loopback or LAN mesh (0–3 ms of jitter) re-sign
	// and re-gossip every node's snapshot about once a second for nothing;
	// the exact RTT still rides on every publish and on the re-announce.
	RTTHashFloor = 16 * time.Millisecond
	// ChainSeqHashStep: chain progress counts as a structural change every
	// this many entries. Every checkpoint moves a seq, so hashing it whole
	// made busy nodes re-sign and re-gossip on every tick; the exact seq
	// still rides on every publish and on the re-announce.
	ChainSeqHashStep = 16
	// ForkAskEvery is how often a fork member waiting for its fork point
	// asks the parent chain's holders (a few small messages each).
	ForkAskEvery = 250 * time.Millisecond
)

// Supervision.
const (
	DefaultBackoffInitial = 1 * time.Second
	DefaultBackoffMax     = 60 * time.Second
	// DefaultCrashLoopWindow and CrashLoopCrashes: this many crashes inside
	// the window gate the daemon as CrashLooping.
	DefaultCrashLoopWindow = 60 * time.Second
	CrashLoopCrashes       = 5
	// DefaultCrashLoopHold is how long a crash-looping daemon stays gated.
	DefaultCrashLoopHold = 60 * time.Second
	// DefaultStableRun resets the backoff: a run this long was not a loop.
	DefaultStableRun = 60 * time.Second
	// DefaultStopGrace is the Shutdown grace before the supervisor abandons
	// a daemon's Run (its context is cancelled at once, so a well-behaved
	// daemon returns long before).
	DefaultStopGrace = 5 * time.Second
	// ControlQueueLen bounds a daemon's control channel; a daemon that does
	// not read it loses backpressure hints, never blocks the supervisor.
	ControlQueueLen = 8
	// LogTextBytesMax bounds one daemon log line.
	LogTextBytesMax = 1024
)

// Placement: the bounds live with the pure placement code (node/placement)
// and are repeated here so this file still lists every number.
const (
	PlacementSaturationMax = placement.PlacementSaturationMax
	GroupMembersMax        = placement.GroupMembersMax
	ChainReplicasMax       = placement.ChainReplicasMax
	GroupsMax              = placement.GroupsMax
	NameBytesMax           = placement.NameBytesMax
)

// admit() gates.
const (
	DefaultPullCooldown         = 250 * time.Millisecond
	DefaultChainStabilization   = 60 * time.Second
	DefaultDropStabilization    = 3 * time.Second
	DefaultDrainRatePerSec      = 10
	DefaultBackpressureHigh     = 0.9
	DefaultBackpressureLow      = 0.7
	DefaultGateReportEvery      = 30 * time.Second
	PendingActionsMax           = 256
	FailuresRingMax             = 256
	GateMemoMax                 = 1024
	DefaultAvoidRTT             = 250 * time.Millisecond
	DefaultAvoidTTL             = 5 * time.Minute
	AvoidEntriesMax             = 256
	DefaultRecoveryWindow       = 30 * time.Second
	DefaultMigrationStepTimeout = 3 * time.Second
	MigrationRetriesMax         = 3
	// MigrationsInflightMax bounds concurrent migrations per node (both
	// directions); inbound offers past it are refused.
	MigrationsInflightMax = 64
	// DefaultMigrationRetryAfter spaces attempts to move a daemon whose
	// last migration failed, so a broken target is not hammered each tick.
	DefaultMigrationRetryAfter = 5 * time.Second
	// DefaultQuorumHeardWithin: a node counts toward a leadership claim's
	// majority only if heard this recently — two transport heartbeats.
	// Health turns Suspect after three missed heartbeats, so when one node
	// of a group cut off together looks Suspect (its leadership claim no
	// longer seen), none of the others counts: a node on the small side
	// of a fresh partition never sees a majority mid-transition.
	DefaultQuorumHeardWithin = 2 * time.Second
	// DefaultDuplicateRaceWindow: a claim to run a daemon that runs here,
	// first seen within this of the local copy's start, is a race between
	// two starts (each before it saw the other; gossip takes a second or
	// two to show a new copy) and placement's hand-over rule settles it.
	// A later claim cannot stop the local copy (attribution.go). Short,
	// because it is also how long after a start a member's false claim
	// could still win a daemon.
	DefaultDuplicateRaceWindow = 5 * time.Second
	// DuplicateClaimantsTrackedMax bounds the other nodes one local copy
	// remembers (blind holders, first sightings, disputes).
	DuplicateClaimantsTrackedMax = 64
	// DefaultSendTimeout bounds one Messenger.Send (session setup included).
	DefaultSendTimeout = 2 * time.Second
	// SendsInflightMax bounds concurrent sends; past it a send is dropped
	// and counted (every protocol here retries on its own schedule).
	SendsInflightMax = 64
)

// Wire bounds (messages on messaging.ChanMigration).
const (
	// DaemonStateBytesMax bounds one daemon's serialised state; a daemon
	// whose Snapshot is larger cannot migrate (the failure says so).
	DaemonStateBytesMax = 192 << 10
	// IDBytesMax bounds daemon, migration and chain ids on the wire.
	IDBytesMax = 128
	// ChainEntriesPerSyncMax bounds one sync reply; a follower further
	// behind catches up over several ticks.
	ChainEntriesPerSyncMax = 16
	// ChainEntryBytesMax bounds one chain entry (a member's checkpoint).
	ChainEntryBytesMax = 8 << 10
	// ChainEntriesKeptMax is how many recent entries a replica keeps to
	// serve followers; older ones are summarised by the checkpoints.
	ChainEntriesKeptMax = 64
	// CheckpointsPerChainMax caps the per-daemon checkpoint map a replica
	// keeps (keyed by wire data).
	CheckpointsPerChainMax = GroupMembersMax
	// InboxLen bounds decoded messages queued for the loop.
	InboxLen = 1024
	// InboxPerPeerMax bounds one peer's share of the inbox: beyond it that
	// peer's messages are dropped (counted with the inbox's) and the rest
	// of the queue stays open to everyone else.
	InboxPerPeerMax = InboxLen / 8
)

// Chain replication.
const (
	// DefaultCheckpointEvery is how often a member's host pushes its state
	// to the chain leader (only when the state changed).
	DefaultCheckpointEvery = 1 * time.Second
)

// Invalidate-placement.
const (
	// InvalidateHold is how long every node places an invalidated node's
	// daemons and replicas as if new (no stickiness). Every node applies
	// it, so a new replica holder agrees to take the replica and the
	// target of a move agrees to run it; a move a gate holds back is
	// admitted on a later pass inside the window instead of forgotten.
	// After it, stickiness returns wherever the work now runs.
	InvalidateHold = 15 * time.Second
)
