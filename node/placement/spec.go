package placement

import (
	"errors"
	"fmt"
	"math"

	"github.com/deck-mesh/deck/node/snapshot"
)

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

// Spec validation errors.
var ErrBadSpec = errors.New("placement: invalid spec")

// Validate checks a Spec's bounds and references. Specs come from files
// operators edit, so every problem is an error, never a panic later.
func (s Spec) Validate() error {
	if len(s.Groups) > GroupsMax {
		return fmt.Errorf("%w: %d groups exceeds %d", ErrBadSpec, len(s.Groups), GroupsMax)
	}
	names := map[string]GroupSpec{}
	for _, g := range s.Groups {
		switch {
		case g.Name == "" || len(g.Name) > NameBytesMax:
			return fmt.Errorf("%w: group name %q must be 1..%d bytes", ErrBadSpec, g.Name, NameBytesMax)
		case g.DaemonKind == "" || len(g.DaemonKind) > NameBytesMax:
			return fmt.Errorf("%w: group %q: daemon kind must be 1..%d bytes", ErrBadSpec, g.Name, NameBytesMax)
		case g.Members < 0 || g.Members > GroupMembersMax:
			return fmt.Errorf("%w: group %q: members %d outside 0..%d", ErrBadSpec, g.Name, g.Members, GroupMembersMax)
		case g.ChainReplicas < 0 || g.ChainReplicas > ChainReplicasMax:
			return fmt.Errorf("%w: group %q: chain replicas %d outside 0..%d", ErrBadSpec, g.Name, g.ChainReplicas, ChainReplicasMax)
		case g.Load < 0 || g.Load > 1 || math.IsNaN(g.Load):
			return fmt.Errorf("%w: group %q: load %v outside 0..1", ErrBadSpec, g.Name, g.Load)
		case g.Kind > snapshot.GroupFork:
			return fmt.Errorf("%w: group %q: unknown kind %d", ErrBadSpec, g.Name, g.Kind)
		}
		if _, dup := names[g.Name]; dup {
			return fmt.Errorf("%w: duplicate group %q", ErrBadSpec, g.Name)
		}
		names[g.Name] = g
	}
	for _, g := range s.Groups {
		if g.Kind == snapshot.GroupFork {
			if _, ok := names[g.Parent]; !ok || g.Parent == g.Name {
				return fmt.Errorf("%w: fork group %q: parent %q is not another group", ErrBadSpec, g.Name, g.Parent)
			}
		}
	}
	return nil
}
