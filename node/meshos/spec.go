package meshos

import (
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/placement"
	"github.com/deck-mesh/deck/node/snapshot"
)

// The workload Spec, the admin intent and the placement function live in
// node/placement, which has no runtime in it, so node/command and
// node/config can use them without linking MeshOS. The names below are the
// same types (aliases, not copies), kept so the runtime's API reads as
// before: meshos.Config{Spec: …}, rt.SetCluster(cs, intent).

// NodeID is the mesh node id.
type NodeID = identity.NodeID

// Spec and GroupSpec: the declarative workload (placement.Spec).
type (
	Spec      = placement.Spec
	GroupSpec = placement.GroupSpec
)

// Placement results and options.
type (
	Assignment      = placement.Assignment
	DaemonPlacement = placement.DaemonPlacement
	ChainPlacement  = placement.ChainPlacement
	GroupPlacement  = placement.GroupPlacement
	Options         = placement.Options
)

// Admin intent (placement.ClusterIntent and its parts).
type (
	ClusterIntent   = placement.ClusterIntent
	NodeIntent      = placement.NodeIntent
	DaemonIntent    = placement.DaemonIntent
	ReplicaEviction = placement.ReplicaEviction
	Cutover         = placement.Cutover
	MaintIntent     = placement.MaintIntent
)

// Maintenance intents.
const (
	MaintIntentNone  = placement.MaintIntentNone
	MaintIntentEnter = placement.MaintIntentEnter
	MaintIntentExit  = placement.MaintIntentExit
)

// DaemonID is placement.DaemonID: the stable id of member index of group.
func DaemonID(group string, index int) string { return placement.DaemonID(group, index) }

// ChainName is placement.ChainName: the name of a group's chain.
func ChainName(group string) string { return placement.ChainName(group) }

// ApplyIntent is placement.ApplyIntent, the intent overlay both the runtime
// and the blast radius plan on.
func ApplyIntent(cs *snapshot.ClusterSnapshot, intent ClusterIntent) *snapshot.ClusterSnapshot {
	return placement.ApplyIntent(cs, intent)
}

// groupMembers is how many daemons group g declares.
func groupMembers(g GroupSpec) int { return g.MemberCount() }

// Diff is placement.Diff: what changes from one assignment to another.
func Diff(from, to *Assignment) placement.AssignmentDiff { return placement.Diff(from, to) }
