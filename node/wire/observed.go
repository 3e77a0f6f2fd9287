package wire

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// ControlObserved tells a direct neighbour the address its packets arrive
// from, as this node sees it: how a node listening on a wildcard address
// (0.0.0.0, [::]) or behind a NAT learns the address its peers reach it
// at, the one it publishes in its snapshot (STUN's mapped address, between
// members). It is the sender's claim: the receiver believes the address
// most of its direct neighbours report, never one of them alone.
const ControlObserved ControlKind = 5

// Observed layout: kind u8, alen u8 (6: IPv4, 18: IPv6), the address
// bytes, then the port u16, big-endian (the announcement's address form).

// AppendObserved appends an observed-address message (kind byte included).
// An invalid address appends nothing: there is nothing to tell.
func AppendObserved(b []byte, addr netip.AddrPort) []byte {
	if !addr.IsValid() {
		return b
	}
	return appendAddr(append(b, byte(ControlObserved)), addr)
}

// ParseObserved decodes exactly one observed-address message. Port 0, an
// unspecified address and an IPv4-mapped IPv6 address (IPv4 is sent as
// IPv4) are refused.
func ParseObserved(b []byte) (netip.AddrPort, error) {
	if len(b) < 2 || ControlKind(b[0]) != ControlObserved {
		return netip.AddrPort{}, fmt.Errorf("%w: not an observed-address message", ErrType)
	}
	alen := int(b[1])
	if (alen != 6 && alen != 18) || len(b) != 2+alen {
		return netip.AddrPort{}, fmt.Errorf("%w: observed-address message of %d bytes with a %d-byte address", ErrLength, len(b), alen)
	}
	ip, _ := netip.AddrFromSlice(b[2 : 2+alen-2])
	port := binary.BigEndian.Uint16(b[len(b)-2:])
	if port == 0 || !ip.IsValid() || ip.IsUnspecified() || ip.Is4In6() {
		return netip.AddrPort{}, fmt.Errorf("%w: observed address %v:%d", ErrValue, ip, port)
	}
	return netip.AddrPortFrom(ip, port), nil
}
