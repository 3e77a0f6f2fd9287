package api

import (
	"context"

	"github.com/deck-mesh/deck/node/snapshot"
)

// SubnetClient is a Client on a mesh carved into subnets (node.Client is
// one). The cluster view (Snapshot) holds full detail for the console's own
// subnet and the one it focuses, summaries for the rest.
type SubnetClient interface {
	// FocusSubnet asks for full detail of the subnet at path: its members'
	// snapshots are fetched, then followed, so Snapshot().Nodes holds them
	// (SubnetView.Detailed) until the focus moves. Path "" clears the focus
	// (back to the console's own subnet). An unknown path is ErrNotFound.
	FocusSubnet(ctx context.Context, path string) error
	// QuerySubnet asks the subnet's aggregator group for its newest signed
	// summary (deck aggregator query).
	QuerySubnet(ctx context.Context, path string) (snapshot.SubnetSummary, error)
}
