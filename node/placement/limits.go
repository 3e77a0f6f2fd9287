package placement

// Placement bounds and preferences. meshos re-exports them beside its own
// timers, so an operator reading meshos/limits.go still sees every number.
const (
	// PlacementSaturationMax is the projected saturation a new placement
	// tries not to exceed; when no node fits, the least loaded still gets it
	// (running hot beats not running).
	PlacementSaturationMax = 1.0
	// GroupMembersMax, ChainReplicasMax and GroupsMax bound a Spec.
	GroupMembersMax  = 1024
	ChainReplicasMax = 16
	GroupsMax        = 4096
	// NameBytesMax bounds group, daemon-kind and chain names.
	NameBytesMax = 64
)
