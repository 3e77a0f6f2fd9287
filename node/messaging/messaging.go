// Package messaging is the contract between the transport (which owns the UDP
// socket, the Noise sessions and routing) and the services that ride on it
// (gossip, chain anti-entropy, log subscriptions, migrations, commands).
//
// A service registers a handler for its Channel and sends whole messages to a
// NodeID; the transport encrypts end to end, routes through relays when the
// destination is not a neighbour, fragments and reassembles. Handlers must not
// block: they copy what they need and hand work to their own goroutine.
package messaging

import (
	"context"
	"errors"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Channel multiplexes services over one session (the header's stream field).
type Channel uint16

const (
	ChanControl   Channel = 1 // transport-internal: heartbeats, route announcements
	ChanGossip    Channel = 2 // signed node snapshots
	ChanLedger    Channel = 3 // admin ledger anti-entropy: digests and pulls
	ChanSubscribe Channel = 4 // log / failure subscriptions (leases) and pushes
	ChanMigration Channel = 5 // daemon state transfer
	ChanCommand   Channel = 6 // admin event submission and acks
	ChanBlob      Channel = 7 // datafort chunks, manifests and blob requests (bulk)
	ChanQuery     Channel = 8 // MeshDB: query fragments and their pulled batches
	ChanSubnet    Channel = 9 // subnet summaries and aggregator queries (always global)
)

// Channels lists every channel, for the checks that they stay distinct.
var Channels = []Channel{ChanControl, ChanGossip, ChanLedger, ChanSubscribe,
	ChanMigration, ChanCommand, ChanBlob, ChanQuery, ChanSubnet}

// Bulk reports whether ch carries bulk transfers (blob chunks). The
// transport queues their packets apart from every other channel's and
// sends them only while nothing else waits, and bulk messages may use only
// half of a peer's reassembly budget: a transfer never starves heartbeats,
// gossip or admin traffic. A Send on a bulk channel waits (bounded by its
// ctx) for room in the next hop's bulk queue instead of being dropped, so
// it must never be called from a handler.
func (c Channel) Bulk() bool { return c == ChanBlob }

// MaxMessageBytes is the largest message Send accepts; larger is an error,
// never a silent truncation.
const MaxMessageBytes = 256 << 10

// Errors every Messenger returns.
var (
	ErrNoRoute   = errors.New("mesh: no route to node")
	ErrTooLarge  = errors.New("mesh: message exceeds MaxMessageBytes")
	ErrClosed    = errors.New("mesh: transport closed")
	ErrHandshake = errors.New("mesh: handshake failed")
)

// Handler receives one whole, authenticated, decrypted message. from is the
// authenticated sender (the Noise session's verified identity), never a
// claim from the payload. msg is only valid for the duration of the call.
type Handler func(from identity.NodeID, msg []byte)

// PeerInfo is the transport's view of a peer.
type PeerInfo struct {
	ID          identity.NodeID
	Addr        string // UDP address when a direct neighbour, else ""
	Direct      bool
	NextHop     identity.NodeID // for relayed peers
	Health      snapshot.Health
	HealthSince time.Time
	RTT         time.Duration // smoothed
	RTTVar      time.Duration
	Flaps       int
	LastHeard   time.Time
	// Role is what the peer was admitted as (node or console; zero for a
	// peer known only from routes). Consoles never hold, lead or relay.
	Role identity.Role
	// Subnet is the peer's subnet from its certificate ("" the root, and
	// for a peer known only from routes).
	Subnet string
	// Session: this node holds an unexpired end-to-end data session with
	// the peer (direct or relayed).
	Session bool
}

// Stats are the transport's honest counters.
type Stats struct {
	PacketsIn, PacketsOut uint64
	BytesIn, BytesOut     uint64
	Drops                 uint64
	ReplaysRejected       uint64
	AuthFailures          uint64
	HandshakesRateLimited uint64
	Forwarded             uint64
	PendingDrops          uint64 // packets from peers that are not admitted members
	// Handshake flood defences (issue 12): handshake messages refused for
	// a bad mac1 (a sender without the cluster PSK), cookie replies sent
	// while under load, and half-open responders evicted to make room.
	HandshakeMAC1Failures uint64
	CookieRepliesSent     uint64
	RespondersEvicted     uint64
	// RoamsRefused counts authenticated direct packets from a peer that
	// arrived from the live address of another peer (a relay keeping the
	// TTL): they count as relayed and do not move the peer.
	RoamsRefused uint64
	// Heartbeats sent to and handled from peers (the liveness traffic a
	// bulk transfer must never starve).
	HeartbeatsOut, HeartbeatsIn uint64
	// BulkWaits counts bulk sends that waited for room in a next hop's
	// bulk queue (the transport's flow control at work).
	BulkWaits uint64
}

// Messenger is what services need from the transport.
type Messenger interface {
	Self() identity.NodeID
	// Send delivers msg to node to on channel ch, establishing a session if
	// needed (bounded by ctx). Delivery is best effort (datagrams); services
	// that need reliability retry on their own schedule.
	Send(ctx context.Context, to identity.NodeID, ch Channel, msg []byte) error
	// Handle registers the handler for ch, replacing any previous one.
	Handle(ch Channel, h Handler)
	// Peers lists every known peer (direct and relayed), sorted by id.
	Peers() []PeerInfo
	Stats() Stats
}
