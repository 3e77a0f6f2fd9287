// Package node assembles the bundled mesh node: the UDP transport with its
// Noise sessions (node/transport), the Badger chains (node/chain), snapshot
// gossip and the cluster fold (node/gossip), the MeshOS runtime
// (node/meshos) and the command plane (node/command). A Node serves the
// Client API (node/api) that the TUI, the CLI and SSH consoles use.
//
// node never imports a UI package.
package node
