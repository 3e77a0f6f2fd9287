package transport

import (
	"time"

	"github.com/deck-mesh/deck/node/wire"
)

// Timers and limits of the transport and membership. Config fields of the
// same name override the timers (tests run the failure detector in seconds);
// zero means the default here.
const (
	// HeartbeatInterval is how often every peer with a session gets a
	// heartbeat and every direct neighbour a route announcement.
	HeartbeatInterval = 1 * time.Second

	// SuspectAfterMissedHeartbeats heartbeats missed in a row make a
	// Healthy peer Suspect.
	SuspectAfterMissedHeartbeats = 3

	// UnreachableAfter of silence makes a peer Unreachable. Silence counts
	// from the last heartbeat heard, up to one HeartbeatInterval before a
	// node dies, so a dead node is Unreachable 3–4 s after it dies plus a
	// check tick: inside the 5 s an operator is promised (issue 7), with
	// four heartbeats missed in a row before a live node is given up on.
	UnreachableAfter = 4 * time.Second

	// HandshakeTimeout abandons a handshake (and fails the Sends waiting
	// on it); it also bounds how long a responder keeps half-open state.
	HandshakeTimeout = 5 * time.Second

	// HandshakeRetryInitial is the first retransmit delay of a handshake;
	// each retry doubles it up to HandshakeRetryMax.
	HandshakeRetryInitial = 250 * time.Millisecond
	HandshakeRetryMax     = 2 * time.Second

	// ReconnectBackoffMax caps the delay between handshake attempts to a
	// peer (or bootstrap address) that keeps failing.
	ReconnectBackoffMax = 8 * time.Second

	// ProactiveConnectDelay is how long the higher of two node ids waits
	// for the lower one to initiate before it initiates itself, so two
	// nodes that discover each other at once rarely run two handshakes.
	ProactiveConnectDelay = 2 * time.Second

	// HandshakesPerSecondPerSource and HandshakeBurstPerSource bound how many
	// first handshake messages one source address:port may make us answer.
	// Answering costs X25519 operations, so this is the DoS guard. Keyed by
	// address and port: every node of a local demo shares 127.0.0.1.
	HandshakesPerSecondPerSource = 10
	HandshakeBurstPerSource      = 20

	// MaxPendingResponders caps half-open handshakes we answered.
	MaxPendingResponders = 1024

	// MaxRateLimiterEntries caps each per-source rate limiter's table.
	MaxRateLimiterEntries = 4096

	// ForwardPacketsPerSecondPerPeer and ForwardBurstPackets bound what one
	// previous hop may make us relay; the burst covers one 256 KiB message.
	ForwardPacketsPerSecondPerPeer = 20000
	ForwardBurstPackets            = 4096

	// LinkQueuePackets bounds each next hop's outbound queue; a full queue
	// drops (and counts) rather than blocking the reader.
	LinkQueuePackets = 1024

	// MaxLinks caps outbound queues (one per next-hop address).
	MaxLinks = 1024

	// LinkIdleTimeout retires the writer of a next hop that sent nothing.
	LinkIdleTimeout = 30 * time.Second

	// MaxPeers caps the peer table; peers arrive from announcements, i.e.
	// from the wire.
	MaxPeers = 4096

	// PeerForgetAfter drops a peer that has been Unreachable, with no route,
	// for this long.
	PeerForgetAfter = 10 * time.Minute

	// ReassemblyTimeout drops a partially received message.
	ReassemblyTimeout = 5 * time.Second

	// MaxReassemblyMessagesPerPeer and MaxReassemblyBytesPerPeer bound the
	// memory one peer can tie up in partial messages.
	MaxReassemblyMessagesPerPeer = 8
	MaxReassemblyBytesPerPeer    = 2 << 20

	// RouteExpiryAnnouncements: a route whose destination sequence has not
	// advanced for this many heartbeat intervals is stale (the destination
	// stopped announcing, or the route is a loop replaying old news).
	RouteExpiryAnnouncements = 5

	// RouteSeqSlack is how many destination sequence numbers a route may
	// lag the freshest one known before a fresher route replaces it.
	RouteSeqSlack = 3

	// OriginVerificationsPerSecondPerNeighbour and OriginVerificationBurst
	// bound the route origin tokens (ed25519 checks, ~50 µs each) one
	// neighbour can make us verify. A token is checked once per node per
	// round, whichever neighbour brings it first, so one neighbour alone
	// keeps every proof of a mesh of up to 512 nodes advancing each round;
	// in a larger mesh they advance every few rounds and more neighbours
	// share the work. The burst covers one full announcement (a node
	// joining learns every token at once).
	OriginVerificationsPerSecondPerNeighbour = 512
	OriginVerificationBurst                  = wire.MaxOriginTokensPerAnnouncement

	// HopPenaltyMicros is added to each link's RTT in the route metric, so
	// equal-RTT paths (loopback) prefer fewer hops.
	HopPenaltyMicros = 200

	// DefaultLinkMetricMicros is a link's metric before its RTT is measured.
	DefaultLinkMetricMicros = 1000

	// DedupSlots is the size of the relay's duplicate-packet filter.
	DedupSlots = 4096

	// SocketBufferBytes is the UDP socket buffer we ask for, so a burst of
	// fragments is not dropped by the kernel.
	SocketBufferBytes = 4 << 20

	// MaxBootstrapAddrs caps Config.Bootstrap.
	MaxBootstrapAddrs = 64
)
