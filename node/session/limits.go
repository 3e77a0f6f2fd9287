package session

import "time"

// Timers and limits of sessions. wireguard-go's constants.go is the model:
// every number a reviewer cares about is here, with its unit in its name.
const (
	// ReplayRingBlocks is the anti-replay bitmap size in 64-bit blocks; one
	// block is kept as slack for the ring, so the usable window is below.
	ReplayRingBlocks = 1 << 6

	// ReplayWindowPackets is how far behind the highest counter seen a packet
	// may arrive and still be accepted (once). Reordering on a mesh of relays
	// and a 256 KiB burst of fragments both need this to be large.
	ReplayWindowPackets = (ReplayRingBlocks - 1) * 64

	// RekeyAfterTime is the age after which the initiator of a session starts
	// a fresh handshake to replace it.
	RekeyAfterTime = 2 * time.Minute

	// RejectAfterTime is the age after which a session's keys are no longer
	// used to send: by then a rekey has had a minute to succeed.
	RejectAfterTime = 3 * time.Minute

	// RekeyAfterMessages is the send count after which a rekey is started.
	RekeyAfterMessages = uint64(1) << 32

	// RejectAfterMessages is the last counter a session may use, far below
	// the 2^64 nonce space, so the counter can never wrap and repeat a nonce.
	RejectAfterMessages = ^uint64(0) - (1 << 13)

	// PreviousKeyOverlap is how long the keys a rekey replaced still decrypt,
	// so packets in flight during the switch are not lost.
	PreviousKeyOverlap = 15 * time.Second

	// PayloadVersion is the handshake payload format version (2: the
	// record is followed by the sender's certificate).
	PayloadVersion = 2
)
