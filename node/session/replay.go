// Package session turns the Noise XXpsk3 handshake into authenticated
// end-to-end data sessions: it checks the signed node record a peer presents
// (its Noise static first, then the signature, then the id), and seals and
// opens data packets with ChaCha20-Poly1305 under a sliding anti-replay
// window.
package session

// ReplayFilter is a sliding-window anti-replay filter over 64-bit counters
// (RFC 6479, as in wireguard-go's replay package). It is not safe for
// concurrent use; Keypair serialises access.
//
// Check is read-only and runs before decryption, so forged packets cannot
// move the window; Commit runs only after the AEAD has verified the packet.
type ReplayFilter struct {
	last uint64 // highest committed counter + 1 (0: nothing seen)
	ring [ReplayRingBlocks]uint64
}

const (
	blockBits    = 64
	blockMask    = blockBits - 1
	ringMask     = ReplayRingBlocks - 1
	blockBitLog2 = 6
)

// Reset forgets every counter.
func (f *ReplayFilter) Reset() {
	f.last = 0
	f.ring = [ReplayRingBlocks]uint64{}
}

// Check reports whether counter may be accepted: below limit, not older
// than the window, and not seen before.
func (f *ReplayFilter) Check(counter, limit uint64) bool {
	if counter >= limit {
		return false
	}
	c := counter + 1 // so that 0 can mean "nothing seen"
	if c > f.last {
		return true
	}
	if f.last-c >= ReplayWindowPackets {
		return false
	}
	idx := (c >> blockBitLog2) & ringMask
	return f.ring[idx]&(1<<(c&blockMask)) == 0
}

// Commit records counter as received. It re-checks, so two goroutines that
// both passed Check cannot both commit the same counter; the loser gets false.
func (f *ReplayFilter) Commit(counter, limit uint64) bool {
	if !f.Check(counter, limit) {
		return false
	}
	c := counter + 1
	idx := c >> blockBitLog2
	if c > f.last {
		cur := f.last >> blockBitLog2
		diff := idx - cur
		if diff > ReplayRingBlocks {
			diff = ReplayRingBlocks
		}
		for i := uint64(1); i <= diff; i++ {
			f.ring[(cur+i)&ringMask] = 0
		}
		f.last = c
	}
	f.ring[idx&ringMask] |= 1 << (c & blockMask)
	return true
}
