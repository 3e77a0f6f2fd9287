package snapshot

import "time"

// This file is the contract for subnets, gateways and aggregators (issue
// 16): the node side fills these types, the deck renders them. A subnet
// path is slash-separated, most general first ("eu/ams/rack-3"); the empty
// path is the root subnet every node without a --subnet belongs to.

// Visibility is how far one channel's traffic may travel from the subnet it
// starts in; gateway nodes enforce it when they relay.
type Visibility uint8

const (
	// VisLocal: the channel stays inside its subnet.
	VisLocal Visibility = iota
	// VisParent: it may cross into the parent subnet (and no further).
	VisParent
	// VisGlobal: it may travel anywhere in the mesh.
	VisGlobal
)

func (v Visibility) String() string {
	return [...]string{"local", "parent", "global"}[v%3]
}

// Gateway channel names, in the order the GATEWAYS tab lists them.
const (
	ChannelLogs      = "logs"
	ChannelFailures  = "failures"
	ChannelSnapshots = "snapshots"
	ChannelLedger    = "ledger" // always global
	ChannelChains    = "chains"
	ChannelBlobs     = "blobs"
	ChannelQueries   = "queries"
)

// GatewayChannels lists every channel a gateway rules on.
var GatewayChannels = []string{ChannelLogs, ChannelFailures, ChannelSnapshots,
	ChannelLedger, ChannelChains, ChannelBlobs, ChannelQueries}

// GatewayChannel is one channel's rule and counters on one gateway node.
type GatewayChannel struct {
	Channel    string
	Visibility Visibility
	// Reach lists the subnets this gateway forwards the channel into
	// (sorted paths); empty when the rule keeps it local.
	Reach     []string
	Forwarded uint64 // packets relayed across the boundary
	Dropped   uint64 // packets the rule refused
}

// SubnetSummary is a subnet folded by its aggregator group from its
// members' own snapshots, signed by the aggregator member that built it.
// Consoles outside the subnet see the subnet only through its summary.
type SubnetSummary struct {
	Path       string
	Generation uint64 // grows with every summary; a replacement aggregator continues it
	Aggregator NodeID // the member that built and signed this generation
	BuiltAt    time.Time
	// Nodes counts members by health (index: Health).
	Nodes [3]int
	// Daemons counts daemons by health (index: DaemonHealthState).
	Daemons       [3]int
	Capacity      float64 // summed free placement capacity, in node units (0..members)
	Saturation    float64 // mean member saturation, 0..1
	ChainsHeld    int
	ChainsDesired int
	Blobs         int
	BlobBytes     uint64
	Children      []string // direct sub-subnet paths, sorted
	Gateways      []NodeID // members that gateway this subnet, sorted
	Signature     []byte   // ed25519 by Aggregator over the summary's encoding
}

// Parent is the path of the subnet above p ("" for a top-level subnet and
// for the root itself).
func Parent(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return ""
}

// SubnetView is one subnet as a console's cluster view holds it.
type SubnetView struct {
	SubnetSummary
	Local bool // the console's own subnet
	// Detailed: the view holds every member's full snapshot (the console's
	// own subnet, or one it drilled into); otherwise only the summary.
	Detailed bool
	Stale    bool // the newest summary is older than the staleness bound
}

// Aggregator is one subnet's aggregator group as the registry shows it.
type Aggregator struct {
	Subnet     string
	Members    []NodeID // placed across failure domains, sorted
	Desired    int
	Leader     NodeID // the member building summaries now
	Generation uint64
	UpdatedAt  time.Time
}
