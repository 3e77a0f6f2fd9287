// Package placement is the pure half of MeshOS: the shared workload Spec,
// the admin ClusterIntent, and Place, which turns a ClusterSnapshot and the
// Spec into an Assignment. It has no clock, no I/O and no state, so every
// node (node/meshos, each tick) and the blast-radius preview
// (node/command) compute the same answer from the same inputs.
//
// Place (and PlaceWith) is deterministic: it reads only its arguments and
// iterates in sorted order. Daemon ids are DaemonID(group, index) and never
// change when a daemon moves; a group's chain is ChainName(group). Only
// Healthy, fresh nodes in Active or Recovery keep work; cordoned nodes keep
// what they run but take nothing new; capabilities are rules, spreading
// and saturation are preferences; what is placed stays placed. ApplyIntent
// overlays admin intent on a snapshot, OptionsFor turns evictions into
// exclusions, and ProjectedSaturation, CurrentAssignment and Diff feed the
// blast radius.
package placement
