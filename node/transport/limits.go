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

	// MaxPendingPeers caps the peers that completed a handshake without
	// being admitted (no certificate the Trust accepts); the least recently
	// seen is evicted when it is full. Kept apart from the peer table, so
	// minted identities cannot crowd out members.
	MaxPendingPeers = 64
	// PendingPeerExpiry forgets a pending peer not heard from for this long.
	PendingPeerExpiry = 5 * time.Minute
	// PendingNoticeInterval is how often a pending peer is told why.
	PendingNoticeInterval = 10 * time.Second
	// ReassessInterval is how often every peer's admission is checked again
	// (certificates expire); a registry change reassesses at once.
	ReassessInterval = 5 * time.Second

	// MaxPendingResponders caps half-open handshakes we answered. When it
	// is full the oldest is evicted for the new one (see addResponderLocked
	// for why the oldest).
	MaxPendingResponders = 1024

	// ResponderFairShareSlots is what the sources holding half-open
	// handshakes share: with n of them each may hold
	// ResponderFairShareSlots/n, never fewer than ResponderMinShare; a
	// source at its share that sends another message 1 evicts its own
	// oldest. Half the table, so that while few sources hold slots the
	// table never fills and nobody's handshake is evicted by another's.
	ResponderFairShareSlots = MaxPendingResponders / 2

	// ResponderMinShare is the least a source may hold, however many there
	// are: a relay's address carries the handshakes of every node routed
	// through it, several at once while a mesh forms. Beyond
	// MaxPendingResponders/ResponderMinShare flooding sources the table
	// fills and the oldest slot goes (see addResponderLocked).
	ResponderMinShare = 8

	// ResponderEvictScan bounds how many of the oldest slots a full table
	// looks through for one whose source holds others (a source's only
	// slot goes last); past it the oldest goes.
	ResponderEvictScan = 64

	// ResponderLoadThreshold half-open handshakes put the responder under
	// load (WireGuard: an eighth of its handshake queue): message 1 then
	// needs a valid mac2, i.e. a cookie proving its source address, before
	// it is rate-limited or given state. A quarter of the table, so a flood
	// from spoofed addresses is stopped with three quarters still free.
	ResponderLoadThreshold = MaxPendingResponders / 4

	// UnderLoadHold keeps the responder under load this long after the
	// table last reached ResponderLoadThreshold (WireGuard's
	// UnderLoadAfterTime), so the mode does not flap with each expiry.
	UnderLoadHold = 1 * time.Second

	// CookieSecretRotation is the age at which the responder replaces the
	// secret cookies are made from (WireGuard's CookieRefreshTime): a cookie
	// makes valid mac2s for at most this long, and an initiator stops using
	// one after it.
	CookieSecretRotation = 2 * time.Minute

	// MaxRateLimiterEntries caps each per-source rate limiter's table.
	MaxRateLimiterEntries = 4096

	// ForwardPacketsPerSecondPerPeer and ForwardBurstPackets bound what one
	// previous hop may make us relay; the burst covers one 256 KiB message.
	ForwardPacketsPerSecondPerPeer = 20000
	ForwardBurstPackets            = 4096

	// LinkQueuePackets bounds each next hop's outbound queue; a full queue
	// drops (and counts) rather than blocking the reader.
	LinkQueuePackets = 1024

	// LinkBulkQueuePackets is each next hop's queue for bulk messages
	// (blob chunks): about 5 messages of 256 KiB, 1.4 MiB of buffers. A
	// bulk sender waits for room rather than being dropped; the queue is
	// apart from LinkQueuePackets, so a transfer never crowds out control.
	LinkBulkQueuePackets = 1024

	// LinkBulkSlicePackets is the most bulk packets the writer sends
	// before it looks at the control queue again: ~90 KiB, well under a
	// millisecond of loopback writes, so a heartbeat queued behind a bulk
	// transfer waits at most that long.
	LinkBulkSlicePackets = 64

	// ReadBatchPackets is how many datagrams the read loop takes from its
	// Conn at once (one recvmmsg on Linux). A batch's relayed packets go
	// to each next hop under one lock when the batch ends, so this also
	// bounds how long one waits: the time to handle the rest of its
	// batch, a few microseconds. 32 read buffers are 45 KiB; wireguard-go
	// reads 128 at a time, quic-go 8.
	ReadBatchPackets = 32

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
	// memory one peer can tie up in partial messages. Bulk messages
	// (messaging.Channel.Bulk) may take half of each, so a peer's gossip
	// and control messages always have room while its chunks arrive.
	MaxReassemblyMessagesPerPeer = 8
	MaxReassemblyBytesPerPeer    = 2 << 20

	// RouteExpiryAnnouncements: a route whose destination sequence has not
	// advanced for this many heartbeat intervals is stale (the destination
	// stopped announcing, or the route is a loop replaying old news).
	RouteExpiryAnnouncements = 5

	// AnnounceEveryHeartbeats: a node sends each direct neighbour its
	// routing table every this many heartbeats (the heartbeats themselves
	// go every round). An announcement lists every destination with its
	// origin token (~150 bytes a route): at 128 nodes in 4 subnets it was
	// most of a node's 700 KB/s, and each one costs its receiver a parse
	// and a merge of the whole table. 2 (every second round) was measured
	// in the simulation (BENCHMARKS.md); it stays 1, every round, the
	// behaviour before it, until it is measured on its own.
	AnnounceEveryHeartbeats = 1

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

	// OriginReverifyAnnouncements: a destination's proven sequence number
	// advances (one ed25519 check) at most once per this many heartbeat
	// intervals. Each node signs a new token every round, so checking each
	// one cost every node one verification per distant destination per
	// round, O(N) a second per node (8% of a 128-node simulation's CPU,
	// a core's worth per 20 nodes at 1,000). Routes expire only after
	// RouteExpiryAnnouncements rounds without an advance, so every second
	// round keeps them fresh with rounds to spare.
	OriginReverifyAnnouncements = 2

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

	// ObservedAddrRefresh is how often a direct neighbour is told again
	// the address its packets come from (wire.ControlObserved); it is also
	// told at once on first contact and whenever that address changes.
	ObservedAddrRefresh = 30 * time.Second
	// ObservedAddrMaxAge: a neighbour's report of where it sees this node
	// counts towards PublicAddr for this long (three refreshes).
	ObservedAddrMaxAge = 3 * ObservedAddrRefresh

	// MaxBootstrapAddrs caps Config.Bootstrap.
	MaxBootstrapAddrs = 64
)
