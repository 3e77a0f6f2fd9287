// Package node assembles the bundled mesh node: the transport on its Conn
// with its Noise sessions (node/transport), the Badger chains (node/chain)
// and the command plane on them (node/command, node/command/chainfold),
// snapshot gossip (node/gossip) and the cluster fold (node/clusterview),
// the MeshOS runtime (node/meshos). A Node serves the Client API (node/api)
// that the TUI, the CLI and SSH consoles use.
//
// node never imports a UI package.
package node
