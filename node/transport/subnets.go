package transport

import (
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
)

// Scope is a node's subnet policy as the transport asks it (the node's
// gateway rules implement it; see ARCHITECTURE.md "Subnets, gateways,
// aggregators"). Both methods run on the read loop and the tick loop: they
// must be cheap (a map lookup or two, no lock the transport holds, no
// call back into the Transport) and safe for concurrent use.
type Scope interface {
	// Wanted reports whether this node keeps a session of its own making
	// with id (learned from routes): members of its own subnet, and the
	// gateways its own subnet's gateways link with.
	Wanted(id identity.NodeID) bool
	// Allow reports whether a data packet of channel ch from src to dst may
	// pass this node (relaying it, or delivering it when dst is this
	// node), under the channel's visibility rule; it counts what crosses a
	// subnet boundary and what it refuses.
	Allow(ch messaging.Channel, src, dst identity.NodeID) bool
}
