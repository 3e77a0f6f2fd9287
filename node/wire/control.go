package wire

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/deck-mesh/deck/node/identity"
)

// ControlKind is the first byte of a message on the control channel.
type ControlKind uint8

const (
	ControlHeartbeat    ControlKind = 1
	ControlAnnouncement ControlKind = 2
	// ControlConfirm is the responder's first message on a new session: the
	// initiator of an XXpsk3 handshake cannot know the responder accepted its
	// final message (the PSK is only checked there) until it hears this.
	ControlConfirm ControlKind = 3
)

// ControlKindOf returns the kind of a control message.
func ControlKindOf(b []byte) (ControlKind, error) {
	if len(b) == 0 {
		return 0, fmt.Errorf("%w: empty control message", ErrShort)
	}
	k := ControlKind(b[0])
	if k < ControlHeartbeat || k > ControlObserved {
		return 0, fmt.Errorf("%w: control kind %d", ErrType, b[0])
	}
	return k, nil
}

// HeartbeatSize is the exact encoded size of a heartbeat.
const HeartbeatSize = 1 + 8 + 8 + 8 + 8

// Heartbeat carries the sender's clock (monotonic nanoseconds in its own
// domain) and echoes the last timestamp it received from the peer plus how
// long it held it, so the peer gets an RTT sample from every heartbeat
// without extra packets (TCP timestamps, with the hold time subtracted).
type Heartbeat struct {
	Seq        uint64
	SentNanos  int64
	EchoNanos  int64 // 0 when nothing to echo yet
	EchoHeldNs int64 // time between receiving EchoNanos and sending this
}

// AppendHeartbeat appends the encoded heartbeat (kind byte included).
func AppendHeartbeat(b []byte, h *Heartbeat) []byte {
	b = append(b, byte(ControlHeartbeat))
	b = binary.BigEndian.AppendUint64(b, h.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(h.SentNanos))
	b = binary.BigEndian.AppendUint64(b, uint64(h.EchoNanos))
	return binary.BigEndian.AppendUint64(b, uint64(h.EchoHeldNs))
}

// ParseHeartbeat decodes exactly one heartbeat.
func ParseHeartbeat(b []byte, h *Heartbeat) error {
	if len(b) != HeartbeatSize {
		return fmt.Errorf("%w: heartbeat of %d bytes, want %d", ErrLength, len(b), HeartbeatSize)
	}
	if ControlKind(b[0]) != ControlHeartbeat {
		return fmt.Errorf("%w: not a heartbeat", ErrType)
	}
	h.Seq = binary.BigEndian.Uint64(b[1:])
	h.SentNanos = int64(binary.BigEndian.Uint64(b[9:]))
	h.EchoNanos = int64(binary.BigEndian.Uint64(b[17:]))
	h.EchoHeldNs = int64(binary.BigEndian.Uint64(b[25:]))
	if h.SentNanos < 0 || h.EchoNanos < 0 || h.EchoHeldNs < 0 {
		return fmt.Errorf("%w: negative heartbeat timestamp", ErrValue)
	}
	return nil
}

// MetricInfinity marks a withdrawn route (poisoned reverse, broken link).
const MetricInfinity = ^uint32(0)

// AnnouncementVersion is the announcement format this build speaks, the
// byte after the kind. Version 2 (issue 12) added origin tokens; the first
// format had no version byte and is not read (all nodes ship together).
const AnnouncementVersion = 2

// RouteOriginPrefix separates route origin signatures from every other
// kind of signature a node key makes.
const RouteOriginPrefix = "deck-route-origin-v1:"

// OriginToken is a destination's own word on one of its sequence numbers:
// an ed25519 signature by the destination's key over
// RouteOriginPrefix || node id || seq (AppendOriginSigned). A route's
// freshness is the destination's to give: with the token a neighbour can
// prove a sequence number, and without one it cannot claim more than the
// receiver has already seen proven. Seq 0 means no token.
type OriginToken struct {
	Seq       uint64
	PublicKey [32]byte // the route's Dest must derive from it
	Signature [64]byte
}

// AppendOriginSigned appends the bytes an origin token signs.
func AppendOriginSigned(b []byte, dest identity.NodeID, seq uint64) []byte {
	b = append(b, RouteOriginPrefix...)
	b = binary.BigEndian.AppendUint64(b, uint64(dest))
	return binary.BigEndian.AppendUint64(b, seq)
}

// Route is one destination in a distance-vector announcement.
type Route struct {
	Dest         identity.NodeID
	Seq          uint64 // destination-originated sequence: higher is fresher
	MetricMicros uint32 // announcer's cost to Dest; MetricInfinity = withdrawn
	Hops         uint8
	// Addr is Dest's UDP address as the announcer sees it, set only when
	// Dest is the announcer's direct neighbour (or the announcer itself,
	// whose address the receiver already knows: left invalid then).
	Addr netip.AddrPort
	// Origin is the freshest token of Dest the announcer holds (Seq 0:
	// none). Its Seq may be above the route's: the announcer's route can
	// lag what it has heard from Dest by other paths.
	Origin OriginToken
}

// Announcement is a node's routing table as sent to one neighbour.
type Announcement struct {
	Routes []Route
}

// Announcement layout (big-endian):
//
//	kind     u8   ControlAnnouncement
//	version  u8   AnnouncementVersion
//	count    u16  routes, ≤ MaxAnnouncementEntries
//	count × route:
//	  dest    u64
//	  seq     u64
//	  metric  u32
//	  hops    u8
//	  flags   u8   routeHasOrigin; other bits are an error
//	  alen    u8   0, 6 (IPv4) or 18 (IPv6): address bytes that follow
//	  addr    alen bytes: IP, then port u16
//	  origin  (when routeHasOrigin) seq u64, public key 32, signature 64
//
// At most MaxOriginTokensPerAnnouncement routes carry an origin token.
const (
	announcementHeaderBytes = 1 + 1 + 2
	// routeFixedBytes is a route's size without its address and token.
	routeFixedBytes = 8 + 8 + 4 + 1 + 1 + 1
	routeHasOrigin  = 1 << 0
)

// AppendAnnouncement appends the encoded announcement (kind byte included).
// It refuses more than MaxAnnouncementEntries routes or more than
// MaxOriginTokensPerAnnouncement tokens.
func AppendAnnouncement(b []byte, a *Announcement) ([]byte, error) {
	if len(a.Routes) > MaxAnnouncementEntries {
		return b, fmt.Errorf("%w: %d routes", ErrLength, len(a.Routes))
	}
	tokens := 0
	for i := range a.Routes {
		if a.Routes[i].Origin.Seq != 0 {
			tokens++
		}
	}
	if tokens > MaxOriginTokensPerAnnouncement {
		return b, fmt.Errorf("%w: %d origin tokens", ErrLength, tokens)
	}
	b = append(b, byte(ControlAnnouncement), AnnouncementVersion)
	b = binary.BigEndian.AppendUint16(b, uint16(len(a.Routes)))
	for i := range a.Routes {
		r := &a.Routes[i]
		b = binary.BigEndian.AppendUint64(b, uint64(r.Dest))
		b = binary.BigEndian.AppendUint64(b, r.Seq)
		b = binary.BigEndian.AppendUint32(b, r.MetricMicros)
		var flags byte
		if r.Origin.Seq != 0 {
			flags |= routeHasOrigin
		}
		b = append(b, r.Hops, flags)
		b = appendAddr(b, r.Addr)
		if r.Origin.Seq != 0 {
			b = binary.BigEndian.AppendUint64(b, r.Origin.Seq)
			b = append(b, r.Origin.PublicKey[:]...)
			b = append(b, r.Origin.Signature[:]...)
		}
	}
	return b, nil
}

func appendAddr(b []byte, ap netip.AddrPort) []byte {
	if !ap.IsValid() {
		return append(b, 0)
	}
	a := ap.Addr().Unmap()
	if a.Is4() {
		b = append(b, 6)
		v := a.As4()
		b = append(b, v[:]...)
	} else {
		b = append(b, 18)
		v := a.As16()
		b = append(b, v[:]...)
	}
	return binary.BigEndian.AppendUint16(b, ap.Port())
}

// ParseAnnouncement decodes an announcement into a, reusing a.Routes.
func ParseAnnouncement(b []byte, a *Announcement) error {
	if len(b) < announcementHeaderBytes {
		return fmt.Errorf("%w: announcement of %d bytes", ErrShort, len(b))
	}
	if ControlKind(b[0]) != ControlAnnouncement {
		return fmt.Errorf("%w: not an announcement", ErrType)
	}
	if b[1] != AnnouncementVersion {
		return fmt.Errorf("%w: announcement version %d", ErrVersion, b[1])
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	b = b[announcementHeaderBytes:]
	if n > MaxAnnouncementEntries {
		return fmt.Errorf("%w: %d routes", ErrLength, n)
	}
	// Bound the allocation by what the bytes could possibly hold.
	if n*routeFixedBytes > len(b) {
		return fmt.Errorf("%w: %d routes in %d bytes", ErrShort, n, len(b))
	}
	if cap(a.Routes) < n {
		a.Routes = make([]Route, n)
	}
	a.Routes = a.Routes[:n]
	tokens := 0
	for i := range n {
		if len(b) < routeFixedBytes {
			return fmt.Errorf("%w: route %d truncated", ErrShort, i)
		}
		r := &a.Routes[i]
		r.Dest = identity.NodeID(binary.BigEndian.Uint64(b[0:]))
		if !r.Dest.Valid() {
			return fmt.Errorf("%w: route %d to node 0", ErrValue, i)
		}
		r.Seq = binary.BigEndian.Uint64(b[8:])
		r.MetricMicros = binary.BigEndian.Uint32(b[16:])
		r.Hops = b[20]
		flags := b[21]
		alen := int(b[22])
		b = b[routeFixedBytes:]
		if flags&^routeHasOrigin != 0 {
			return fmt.Errorf("%w: route %d flags %#x", ErrFlags, i, flags)
		}
		switch alen {
		case 0:
			r.Addr = netip.AddrPort{}
		case 6, 18:
			if len(b) < alen {
				return fmt.Errorf("%w: route %d address truncated", ErrShort, i)
			}
			ip, _ := netip.AddrFromSlice(b[:alen-2])
			port := binary.BigEndian.Uint16(b[alen-2:])
			if port == 0 || !ip.IsValid() || ip.IsUnspecified() {
				return fmt.Errorf("%w: route %d address %v:%d", ErrValue, i, ip, port)
			}
			r.Addr = netip.AddrPortFrom(ip.Unmap(), port)
			b = b[alen:]
		default:
			return fmt.Errorf("%w: route %d address length %d", ErrLength, i, alen)
		}
		r.Origin = OriginToken{}
		if flags&routeHasOrigin == 0 {
			continue
		}
		if tokens++; tokens > MaxOriginTokensPerAnnouncement {
			return fmt.Errorf("%w: more than %d origin tokens", ErrLength, MaxOriginTokensPerAnnouncement)
		}
		if len(b) < OriginTokenBytes {
			return fmt.Errorf("%w: route %d origin token truncated", ErrShort, i)
		}
		r.Origin.Seq = binary.BigEndian.Uint64(b)
		if r.Origin.Seq == 0 {
			return fmt.Errorf("%w: route %d origin token for sequence 0", ErrValue, i)
		}
		copy(r.Origin.PublicKey[:], b[8:40])
		copy(r.Origin.Signature[:], b[40:OriginTokenBytes])
		b = b[OriginTokenBytes:]
	}
	if len(b) != 0 {
		return fmt.Errorf("%w: %d bytes after announcement", ErrTrailer, len(b))
	}
	return nil
}

// ConfirmSize is the exact size of a confirm message.
const ConfirmSize = 1

// ParseConfirm checks b is exactly a confirm message.
func ParseConfirm(b []byte) error {
	if len(b) != ConfirmSize || ControlKind(b[0]) != ControlConfirm {
		return fmt.Errorf("%w: bad confirm message", ErrLength)
	}
	return nil
}
