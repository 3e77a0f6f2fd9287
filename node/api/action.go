package api

import (
	"context"
	"fmt"
	"time"
)

// Verb is an admin or ICE verb in its kebab-case wire/JSON form.
type Verb string

// Admin verbs.
const (
	VerbDrain               Verb = "drain"
	VerbEnterMaintenance    Verb = "enter-maintenance"
	VerbExitMaintenance     Verb = "exit-maintenance"
	VerbCordon              Verb = "cordon"
	VerbUncordon            Verb = "uncordon"
	VerbDropReplicas        Verb = "drop-replicas"
	VerbInvalidatePlacement Verb = "invalidate-placement"
	VerbRestartAllDaemons   Verb = "restart-all-daemons"
	VerbClearAvoidList      Verb = "clear-avoid-list"
	VerbRestartDaemon       Verb = "restart-daemon"
	VerbAddOperator         Verb = "add-operator"
	VerbRemoveOperator      Verb = "remove-operator"
	VerbRotateOperator      Verb = "rotate-operator"
	// Membership: admit a pending node (its key) into the cluster, or
	// revoke a node for good. Registry events: the admin threshold signs.
	VerbAdmitNode  Verb = "admit-node"
	VerbRevokeNode Verb = "revoke-node"
)

// ICE verbs.
const (
	VerbFreezeCluster      Verb = "freeze-cluster"
	VerbThawCluster        Verb = "thaw-cluster"
	VerbFlushAvoidLists    Verb = "flush-avoid-lists"
	VerbForceEvictReplica  Verb = "force-evict-replica"
	VerbForceRestartDaemon Verb = "force-restart-daemon"
	VerbForceCutover       Verb = "force-cutover"
	VerbKillMigration      Verb = "kill-migration"
	VerbForceDrain         Verb = "force-drain"
)

// Blob verbs: an operator's signed word on one blob (its intent: pin,
// desired replicas). They are not admin-ledger events (see "Dataforts" in
// ARCHITECTURE.md): they take the same preview and typed YES, and commit
// through Blobs().Commit, which signs a new intent for the blob's holders.
const (
	VerbPinBlob         Verb = "pin-blob"
	VerbUnpinBlob       Verb = "unpin-blob"
	VerbSetBlobReplicas Verb = "set-blob-replicas"
)

// BlobVerbs list the blob verbs in display order.
var BlobVerbs = []Verb{VerbPinBlob, VerbUnpinBlob, VerbSetBlobReplicas}

// IsBlob reports whether v is a blob verb.
func (v Verb) IsBlob() bool {
	for _, x := range BlobVerbs {
		if x == v {
			return true
		}
	}
	return false
}

// AdminVerbs and ICEVerbs list the operator verbs in display order.
var (
	AdminVerbs = []Verb{VerbDrain, VerbEnterMaintenance, VerbExitMaintenance, VerbCordon, VerbUncordon,
		VerbDropReplicas, VerbInvalidatePlacement, VerbRestartAllDaemons, VerbClearAvoidList, VerbRestartDaemon}
	ICEVerbs = []Verb{VerbFreezeCluster, VerbThawCluster, VerbFlushAvoidLists, VerbForceEvictReplica,
		VerbForceRestartDaemon, VerbForceCutover, VerbKillMigration, VerbForceDrain}
)

// IsICE reports whether v is a break-glass verb.
func (v Verb) IsICE() bool {
	for _, x := range ICEVerbs {
		if x == v {
			return true
		}
	}
	return false
}

// RegistryVerbs change the operator registry; they need the admin threshold.
var RegistryVerbs = []Verb{VerbAddOperator, VerbRemoveOperator, VerbRotateOperator, VerbAdmitNode, VerbRevokeNode}

// IsRegistry reports whether v changes the operator registry.
func (v Verb) IsRegistry() bool {
	for _, x := range RegistryVerbs {
		if x == v {
			return true
		}
	}
	return false
}

// Action is one operator intent with its parameters; which fields matter
// depends on Verb.
type Action struct {
	Verb      Verb
	Node      NodeID        // drain, maintenance, cordon, …, force-drain
	Daemon    string        // restart-daemon, force-restart-daemon
	Chain     string        // force-evict-replica, force-cutover
	Chains    []string      // drop-replicas (empty: all)
	Peer      NodeID        // force-evict-replica victim, force-cutover target
	Migration string        // kill-migration
	Duration  time.Duration // drain-for, enter-maintenance deadline, freeze TTL
	Reason    string        // freeze-cluster
	// Registry verbs (add-, remove-, rotate-operator). OperatorID is the
	// operator concerned (for rotate: the old key's id; for add: the id
	// derived from OperatorKey); OperatorKey is the new ed25519 public key
	// (add, rotate) and OperatorName the display name (add). admit-node
	// names the node in Node and its ed25519 key in OperatorKey (the one
	// key field of the canonical body; Node must derive from it).
	OperatorID   NodeID
	OperatorName string
	OperatorKey  []byte
	// Blob verbs: the blob, and for set-blob-replicas the desired number
	// of datafort nodes holding it (1..MaxBlobReplicas).
	Blob     BlobHash
	Replicas int
}

// Target is the action's target in one string, for audit and lockouts.
func (a Action) Target() string {
	switch a.Verb {
	case VerbRestartDaemon, VerbForceRestartDaemon:
		return "daemon:" + a.Daemon
	case VerbForceEvictReplica:
		return fmt.Sprintf("chain:%s@%s", a.Chain, a.Peer)
	case VerbForceCutover:
		return fmt.Sprintf("chain:%s→%s", a.Chain, a.Peer)
	case VerbKillMigration:
		return "migration:" + a.Migration
	case VerbFreezeCluster, VerbThawCluster, VerbFlushAvoidLists:
		return "cluster"
	case VerbAddOperator, VerbRemoveOperator, VerbRotateOperator:
		return "operator:" + a.OperatorID.String()
	case VerbPinBlob, VerbUnpinBlob, VerbSetBlobReplicas:
		return "blob:" + a.Blob.String()
	}
	return "node:" + a.Node.String()
}

// ReplicaMove is one replica that moves.
type ReplicaMove struct {
	Chain    string
	From, To NodeID // To 0: no placement found (the replica is lost)
}

// DaemonMove is one daemon that migrates.
type DaemonMove struct {
	Daemon   string
	From, To NodeID
}

// LeaderMove is a chain whose leader changes (To 0: the chain is left
// without a leader).
type LeaderMove struct {
	Chain    string
	From, To NodeID
}

// BlobMove is one copy of a blob that a blob verb adds or sheds: From 0 is
// a new copy fetched by To; To 0 is From's copy dropped.
type BlobMove struct {
	Blob     BlobHash
	From, To NodeID
}

// HotNode is a node whose projected saturation crosses HotSaturation.
type HotNode struct {
	Node      NodeID
	Projected float64
}

// HotSaturation is the projected saturation from which a node counts as hot.
const HotSaturation = 0.8

// BlastRadius is the projected effect of an action, computed by running the
// placement and reconcile logic on a copy of the snapshot with the action
// applied.
type BlastRadius struct {
	Action    Action
	Nodes     []NodeID // nodes whose assignment changes
	Replicas  []ReplicaMove
	Daemons   []string // daemons affected (restarted or migrated)
	Restarted []string
	Migrated  []DaemonMove
	Leaders   []LeaderMove // chain leadership changes (force-cutover, drains of leaders)
	HotNodes  []HotNode
	// BlobReplicas and BlobBytes are the blob replicas and chunk bytes the
	// action moves off datafort nodes (a drain, maintenance, a revoke):
	// each leaving node's whole store.
	BlobReplicas int
	BlobBytes    uint64
	// BlobMoves are the copies a blob verb adds or sheds (placement run
	// with the blob's new intent against its placement now), and
	// BlobCopyBytes what the new copies fetch.
	BlobMoves       []BlobMove
	BlobCopyBytes   uint64
	DrainTime       time.Duration
	StabilityBefore float64 // fraction of assignments unchanged, 0..1
	StabilityAfter  float64
	Warnings        []string
	Hash            [32]byte // binds an ICE proposal to this projection (admin events bind what moves)
	SnapshotGen     uint64
}

// Receipt confirms a committed event.
type Receipt struct {
	EventID     string
	Verb        Verb
	Target      string
	Operator    NodeID
	CommittedAt time.Time
	Seq         uint64 // local ledger seq
}

// AdminCommands are the routine signed verbs. Each commits one signed event.
type AdminCommands interface {
	Drain(ctx context.Context, node NodeID, drainFor time.Duration) (Receipt, error)
	EnterMaintenance(ctx context.Context, node NodeID, deadline time.Duration) (Receipt, error)
	ExitMaintenance(ctx context.Context, node NodeID) (Receipt, error)
	Cordon(ctx context.Context, node NodeID) (Receipt, error)
	Uncordon(ctx context.Context, node NodeID) (Receipt, error)
	DropReplicas(ctx context.Context, node NodeID, chains []string) (Receipt, error)
	InvalidatePlacement(ctx context.Context, node NodeID) (Receipt, error)
	RestartAllDaemons(ctx context.Context, node NodeID) (Receipt, error)
	ClearAvoidList(ctx context.Context, node NodeID) (Receipt, error)
	RestartDaemon(ctx context.Context, daemon string) (Receipt, error)
	// Commit commits any admin Action (the verbs above route here) against
	// the projection it computes itself: for callers that showed none.
	Commit(ctx context.Context, a Action) (Receipt, error)
	// Prepare builds confirmed.Action ready to sign, bound to the projection
	// the operator confirmed: it recomputes the projection and, when that
	// moves anything differently, returns a *PreviewChangedError (wrapping
	// ErrPreviewChanged) with the new one instead. The proposal's Commit
	// checks again. This is the path of every console that shows a preview.
	Prepare(ctx context.Context, confirmed BlastRadius) (SimulatedProposal, error)
	// Threshold is the admin threshold: how many operators sign an event.
	Threshold() int
}

// IceCommands start break-glass proposals.
type IceCommands interface {
	FreezeCluster(ctx context.Context, reason string, ttl time.Duration) (Proposal, error)
	ThawCluster(ctx context.Context) (Proposal, error)
	FlushAvoidLists(ctx context.Context) (Proposal, error)
	ForceEvictReplica(ctx context.Context, chain string, victim NodeID) (Proposal, error)
	ForceRestartDaemon(ctx context.Context, daemon string) (Proposal, error)
	ForceCutover(ctx context.Context, chain string, target NodeID) (Proposal, error)
	KillMigration(ctx context.Context, id string) (Proposal, error)
	ForceDrain(ctx context.Context, node NodeID) (Proposal, error)
	// Propose starts a proposal for any ICE Action.
	Propose(ctx context.Context, a Action) (Proposal, error)
	// Load rebuilds a simulated proposal from an exported signing payload
	// (the co-signing flow); it is checked against the current state.
	Load(ctx context.Context, payload []byte) (SimulatedProposal, error)
	Threshold() int
}

// Proposal is an ICE action not yet simulated. Simulate consumes it: a
// second call returns ErrConsumed.
type Proposal interface {
	Action() Action
	Simulate(ctx context.Context) (SimulatedProposal, error)
}

// SimulatedProposal carries the blast radius and the exact bytes operators
// sign. Commit consumes it: a second call returns ErrConsumed.
type SimulatedProposal interface {
	Action() Action
	BlastRadius() BlastRadius
	SigningPayload() []byte
	IssuedAt() time.Time
	ExpiresAt() time.Time
	// Sign signs the payload with this client's operator key.
	Sign() (Signature, error)
	// Check verifies one co-signature against the payload and the registry.
	Check(sig Signature) error
	Commit(ctx context.Context, sigs []Signature) (Receipt, error)
}

// Signature is one operator's signature over a signing payload.
type Signature struct {
	Operator NodeID
	Sig      []byte
}
