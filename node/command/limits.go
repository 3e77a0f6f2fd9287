package command

import "time"

// Every number a reviewer of the command plane cares about lives here.

// Wire bounds. Every length and count read from an event is checked against
// these before anything is allocated.
const (
	// MaxEventBytes bounds one encoded event (body plus signatures).
	MaxEventBytes = 16 << 10
	// MaxEventSignatures bounds the signatures carried by one event. It is
	// also the cap on a merged signature set (see Merge).
	MaxEventSignatures = 32
	// MaxClusterNameBytes bounds the cluster name bound into every event.
	MaxClusterNameBytes = 64
	// MaxNameBytes bounds daemon, chain, migration and operator names.
	MaxNameBytes = 128
	// MaxVerbBytes bounds the verb string on the wire.
	MaxVerbBytes = 32
	// MaxReasonBytes bounds a freeze reason.
	MaxReasonBytes = 512
	// MaxChainsPerEvent bounds drop-replicas' chain list.
	MaxChainsPerEvent = 64
	// MaxSignaturePayloadBytes bounds an exported ICE signing payload (the
	// co-signing file a second operator loads).
	MaxSignaturePayloadBytes = MaxEventBytes
	// MaxSignatureTextBytes bounds one "deck-sig:…" line.
	MaxSignatureTextBytes = 256
)

// Fold state caps. Maps keyed by data that arrives on signed events are
// capped; an event that would grow one past its cap is rejected (the same
// way on every node, so the fold stays deterministic).
const (
	// MaxOperators bounds the operator registry.
	MaxOperators = 32
	// MaxIntentNodes bounds per-node admin intents.
	MaxIntentNodes = 4096
	// MaxIntentDaemons bounds per-daemon admin intents.
	MaxIntentDaemons = 16384
	// MaxEvictions and MaxCutovers bound the remembered one-shot ICE
	// requests (one entry per chain+node or chain).
	MaxEvictions = 4096
	MaxCutovers  = 4096
	// MaxKilledMigrations bounds the remembered kill-migration requests.
	MaxKilledMigrations = 4096
	// MaxUsedNonces bounds the used-nonce set; the oldest (by issued_at,
	// id) are forgotten first once the set is full.
	MaxUsedNonces = 1 << 16
	// MaxLockouts bounds the live ICE lockouts.
	MaxLockouts = 1024
	// MaxAdmittedNodes and MaxRevokedNodes bound the ledger's membership
	// (admit-node, revoke-node); MaxRetiredOperatorKeys the rotated-away
	// operator keys whose certificates still count (oldest forgotten first).
	MaxAdmittedNodes       = 4096
	MaxRevokedNodes        = 4096
	MaxRetiredOperatorKeys = 64
)

// Time rules.
const (
	// DefaultClockSkewAllowance is how far apart the clocks of the mesh's
	// nodes may be: a node accepts an event without a receipt only if, by
	// its own clock, the event was issued at most this far in the future
	// and no longer ago than its commit window plus this (CheckFresh), and
	// a receipt counts only if dated inside the same window around the
	// issue time (InReceiptWindow). The cluster file's
	// [mesh] clock_skew_allowance_ms and `deck node run --clock-skew`
	// change it, within [MinClockSkewAllowance, MaxClockSkewAllowance].
	DefaultClockSkewAllowance = 10 * time.Second
	MinClockSkewAllowance     = 1 * time.Second
	// MaxClockSkewAllowance: more would let a proposal commit long after
	// its signers' window, which is what the window is there to stop.
	MaxClockSkewAllowance = 5 * time.Minute
	// MaxClockSkew is how far in the future a proposal's issued_at may be
	// when a console loads, signs or commits it (a co-signer's clock may
	// be ahead of the proposer's); further ahead is refused as a forgery
	// or a broken clock. Nodes ingesting events use the mesh's allowance
	// (DefaultClockSkewAllowance) instead.
	MaxClockSkew = 30 * time.Second
	// ICECommitWindow is how long after issue an ICE proposal may be
	// committed by the submitting node.
	ICECommitWindow = 60 * time.Second
	// AdminCommitWindow bounds how old a routine admin event may be when
	// the submitting node commits it (it is signed and committed at once).
	AdminCommitWindow = 60 * time.Second
	// ICECooldown locks out the same ICE verb on the same target after a
	// commit, counted from the event's issued_at so it is deterministic.
	ICECooldown = 2 * time.Minute
	// NonceRetention is how long (in ledger time) a used nonce is
	// remembered. A signed payload can only commit inside its commit
	// window and the ledger already dedups identical events, so a nonce
	// older than this can no longer be replayed in a way that matters.
	NonceRetention = 10 * time.Minute
	// MinFreezeTTL and MaxFreezeTTL bound a freeze.
	MinFreezeTTL = 5 * time.Second
	MaxFreezeTTL = 30 * time.Minute
	// MaxDrainDeadline bounds drain-for and enter-maintenance deadlines.
	MaxDrainDeadline = 7 * 24 * time.Hour
)

// Registry defaults (DESIGN §5).
const (
	DefaultAdminThreshold = 1
	DefaultICEThreshold   = 1
)

// Blast-radius model.
const (
	// DaemonMigrationTime is the expected time to migrate one daemon
	// (snapshot, transfer, restore, replay, cutover) on the demo mesh.
	DaemonMigrationTime = 3 * time.Second
	// ReplicaMoveTime is the expected time to pull one chain replica.
	ReplicaMoveTime = 2 * time.Second
	// DaemonRestartTime is the expected time for one daemon restart.
	DaemonRestartTime = 1 * time.Second
	// BlobMoveBytesPerSecond is the expected rate blob bytes leave a
	// draining datafort (its replicas fetched by others), for DrainTime: a
	// conservative fraction of the loopback figure in BENCHMARKS.md.
	BlobMoveBytesPerSecond = 50 << 20
	// DrainParallelism is how many moves a draining node runs at once.
	DrainParallelism = 2
	// OverloadedMeanSaturation: a projected mean at or above this warns
	// that the cluster is overloaded.
	OverloadedMeanSaturation = 0.8
	// MaxBlastWarnings bounds the warnings of one projection.
	MaxBlastWarnings = 64
)
