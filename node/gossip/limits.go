package gossip

import (
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
)

// Wire bounds. Every length and count read from the network is checked
// against one of these before anything is allocated for it, and the encoder
// enforces the same numbers so a node never publishes what its peers refuse.
const (
	// MaxSnapshotBytes bounds one encoded NodeSnapshot. A 50-daemon node
	// encodes to ~6 KiB; 64 KiB leaves room for a busy node while keeping a
	// gossip message (envelope + this) at a quarter of messaging.MaxMessageBytes,
	// so fragmentation stays cheap and a full digest reply fits comfortably.
	MaxSnapshotBytes = 64 << 10
	// MaxStringBytes bounds every string field (labels, ids, reasons).
	MaxStringBytes = 256
	// MaxCapabilitiesPerSnapshot bounds NodeSnapshot.Capabilities.
	MaxCapabilitiesPerSnapshot = 32
	// MaxTrendSamplesPerSnapshot bounds Resources.Trend.
	MaxTrendSamplesPerSnapshot = 128
	// MaxDaemonsPerSnapshot bounds NodeSnapshot.Daemons.
	MaxDaemonsPerSnapshot = 256
	// MaxReplicasPerSnapshot bounds NodeSnapshot.Replicas.
	MaxReplicasPerSnapshot = 256
	// MaxAvoidPerSnapshot bounds NodeSnapshot.Avoid.
	MaxAvoidPerSnapshot = 64
	// MaxPendingPerSnapshot bounds NodeSnapshot.Pending.
	MaxPendingPerSnapshot = 64
	// MaxFailuresPerSnapshot bounds NodeSnapshot.Failures (the most recent).
	MaxFailuresPerSnapshot = 32
	// MaxMigrationsPerSnapshot bounds NodeSnapshot.Migrations.
	MaxMigrationsPerSnapshot = 64
	// MaxPeersPerSnapshot bounds NodeSnapshot.Peers (one node's edges).
	MaxPeersPerSnapshot = 1024
	// MaxPendingPeersPerSnapshot bounds NodeSnapshot.PendingPeers (peers
	// waiting for admission that this node reports).
	MaxPendingPeersPerSnapshot = 16
	// MaxBlobsPerSnapshot bounds NodeSnapshot.Blobs (a datafort's hottest
	// blobs; about 120 bytes each).
	MaxBlobsPerSnapshot = 64
	// MaxGatewayChannelsPerSnapshot bounds NodeSnapshot.Gateway (one rule
	// per channel, snapshot.GatewayChannels, with room to grow).
	MaxGatewayChannelsPerSnapshot = 16
	// MaxGatewayReachPerChannel bounds GatewayChannel.Reach (the subnets a
	// gateway joins; a gateway sits on a handful of boundaries).
	MaxGatewayReachPerChannel = 16

	// MaxEnvelopeBytes bounds one signed envelope: the fixed header fields
	// (at most 1+8+32+3*10+10+3 bytes of varints), the snapshot and the
	// signature.
	MaxEnvelopeBytes = envelopeMaxHeaderBytes + MaxSnapshotBytes + envelopeSigBytes

	// MaxNodes caps every map keyed by a node id learned from the wire (the
	// latest-snapshot table, the per-sender digest rate limiter) and the
	// entries of one digest. Beyond it new node ids are refused and counted.
	MaxNodes = 1024
	// MaxSeenEntries caps the (node, epoch, seq) duplicate cache; the oldest
	// entry is evicted first.
	MaxSeenEntries = 4096
	// MaxDigestBytes bounds a digest message: per entry an 8-byte id and two
	// varints of at most 10 bytes each, plus the 2-byte header and a count.
	MaxDigestBytes = 2 + 3 + MaxNodes*(8+10+10)
	// MaxPullEnvelopesPerDigest bounds how many envelopes one digest can make
	// this node send back, so a digest cannot be used as an amplifier.
	MaxPullEnvelopesPerDigest = 32

	// HardMaxHops is the largest hop count accepted on the wire; Config.MaxHops
	// is clamped to it.
	HardMaxHops = 16

	// InboxMessages is the handler → Run queue length; beyond it messages
	// are dropped (and counted) because mesh handlers must not block.
	InboxMessages = 512
	// OutboxMessages is the Run → sender queue length; beyond it sends are
	// dropped (and counted) rather than stalling the receive path.
	OutboxMessages = 1024
	// SendWorkers is how many sends may be in flight at once, so a peer
	// whose handshake hangs does not stall gossip to everyone else.
	SendWorkers = 4
)

// Timing defaults; Config may override each for tests.
const (
	// DefaultMinPublishInterval is the shortest gap between two publications
	// of this node's snapshot (DESIGN.md: at most every tick, 500 ms).
	DefaultMinPublishInterval = 500 * time.Millisecond
	// DefaultReannounceInterval re-signs and pushes the snapshot even when
	// nothing changed, so receivers can tell a quiet node from a dead one.
	DefaultReannounceInterval = 5 * time.Second
	// DefaultStaleAfter marks a node's snapshot stale when no announcement
	// arrived for this long: three missed re-announcements.
	DefaultStaleAfter = 15 * time.Second
	// DefaultForgetAfter drops a silent node's snapshot from the table.
	DefaultForgetAfter = 5 * time.Minute
	// DefaultDigestInterval is the anti-entropy period: each node sends its
	// digest to one random peer, which repairs what push gossip missed.
	DefaultDigestInterval = 500 * time.Millisecond
	// DefaultTick is the scheduler's resolution for re-announce, digest,
	// staleness and sweep deadlines. A change itself is pushed without
	// waiting for a tick (at once, or when MinPublishInterval ends), so the
	// tick can be coarse: every node wakes for it, and at 50 ms it was one
	// of an idle demo's largest wake-up sources.
	DefaultTick = 250 * time.Millisecond
	// DefaultFanout is how many random peers receive each new announcement
	// from each node that learns it.
	DefaultFanout = 4
	// DefaultOriginFanout is how many peers the publishing node itself sends
	// a new announcement to. Random push with fanout F misses a given node
	// with probability about e^-F, so in a 16-node cluster a fanout of 4
	// alone leaves some node waiting for anti-entropy on roughly a quarter of
	// the changes; the origin reaching up to 16 peers directly costs fewer
	// messages than the forwarding it makes redundant, and forwarding
	// (Fanout) still carries the change through larger clusters.
	DefaultOriginFanout = 16
	// DefaultMaxHops bounds how far one push travels; anti-entropy covers
	// whatever the push did not reach.
	DefaultMaxHops = 6
	// DefaultSignerAcceptsPerSecond and DefaultSignerAcceptBurst bound the
	// new announcements of one signer a node verifies, stores and forwards.
	// An honest node signs at most one change per MinPublishInterval (two a
	// second) plus a re-announce per ReannounceInterval; the budget is
	// twice that, with a burst for a restart's first announcements. Beyond
	// it, announcements are dropped before their signature is checked and
	// counted (Stats.SignerLimited); digests bring the signer's latest once
	// the bucket refills.
	DefaultSignerAcceptsPerSecond = 4
	DefaultSignerAcceptBurst      = 8
	// ForgedPerSecondPerSender and ForgedBurstPerSender bound the envelopes
	// failing their signature or snapshot checks that this node checks for
	// one sending peer. An honest peer forwards only envelopes it verified,
	// so only a forger (or a corrupting link, which the session AEAD rules
	// out) spends it; beyond it that peer's envelopes are dropped before
	// their signature is checked (Stats.SenderLimited).
	ForgedPerSecondPerSender = 1
	ForgedBurstPerSender     = 4
	// SendTimeout bounds one Messenger.Send (session setup included).
	SendTimeout = 2 * time.Second
	// MaxClockSkew is how far in the future an envelope's signing time may be
	// relative to the local clock.
	MaxClockSkew = time.Minute
	// MaxEnvelopeAge refuses envelopes signed longer ago than this, so an old
	// capture cannot be replayed after its node was forgotten.
	MaxEnvelopeAge = 2 * time.Minute
)

// Envelope layout sizes.
const (
	envelopeVersion        = 2 // 2: the signer's certificate rides in the header
	envelopeSigBytes       = 64
	envelopeMaxHeaderBytes = 1 + 8 + 32 + 10 + 10 + 10 + 10 + 2 + identity.MaxCertificateSize + 3

	// maxGossipMessageBytes is the largest message this package sends or
	// accepts: a 2-byte message header plus the largest envelope or digest.
	maxGossipMessageBytes = 2 + MaxEnvelopeBytes
)

// Compile-time check that a full gossip message fits the transport's bound
// with room to spare.
var _ = [messaging.MaxMessageBytes/2 - maxGossipMessageBytes]struct{}{}
var _ = [messaging.MaxMessageBytes - MaxDigestBytes]struct{}{}
