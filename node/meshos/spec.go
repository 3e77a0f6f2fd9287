package meshos

import "github.com/deck-mesh/deck/node/snapshot"

// Spec is the declarative workload the whole cluster shares; every node
// derives the same placement from it and the ClusterSnapshot.
type Spec struct {
	Groups []GroupSpec
}

// GroupSpec declares one group of daemons. A solo daemon is a group of kind
// GroupSolo with one member.
type GroupSpec struct {
	Name       string
	Kind       snapshot.GroupKind
	DaemonKind string // Factory key
	Members    int    // replica: N members; standby: 1 active + Members-1 warm; fork: forks
	Parent     string // fork groups: the parent group
	ForkAt     uint64 // fork groups: the parent seq forked from
	// ChainReplicas is the desired number of holders of the group's chain of
	// state (0: the group has no chain).
	ChainReplicas int
	// Requires lists capabilities a node must have to host a member.
	Requires []string
	// Load is the expected saturation one member adds to its node (0..1),
	// used by placement and the blast-radius projection.
	Load float64
}
