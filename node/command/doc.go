// Package command is the operator command plane: signed admin, registry and
// ICE events with a canonical binary encoding, their verification against the
// operator registry, the deterministic fold of the admin ledger into an
// AdminState (which MeshOS obeys through placement.ClusterIntent and the deck
// shows through the snapshot), the ICE propose → simulate → commit typestate,
// and the blast-radius projection every admin and ICE verb is previewed with.
//
// The package touches no network and no disk. Committing an event is handed
// to a Committer (the node inserts it into its ledger and spreads it); the
// current cluster view comes from a Source. Everything an event changes is
// decided by AdminState.Apply, which every node runs over the same events in
// (issued_at, id) order, so every node converges whatever the arrival order.
package command
