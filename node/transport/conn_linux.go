//go:build linux

package transport

import (
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchReader is UDPConn.ReadBatch on Linux: one recvmmsg(2) fills the
// whole batch with what the socket holds. Its message headers, iovecs and
// address buffers live as long as the socket and the syscall closure is
// bound once, so a read allocates nothing.
//
// golang.org/x/net/ipv4's PacketConn.ReadBatch (what wireguard-go and
// quic-go use) makes the same syscall, but returns each sender as a
// net.Addr: a *net.UDPAddr and its IP slice, two allocations per datagram
// on the path Conn promises keeps none. Forty lines over golang.org/x/sys
// (already in the module graph) keep the promise without the dependency.
type batchReader struct {
	rc    syscall.RawConn
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // large enough for either family
	vlen  int                     // messages offered to this call
	n     int                     // messages the call filled
	errno syscall.Errno
	recv  func(fd uintptr) bool // r.recvmmsg, bound once (a method value per read allocates)
	zones map[uint32]string     // IPv6 scope id -> interface name, at most maxCachedZones
}

// maxCachedZones bounds batchReader.zones; interfaces are few, and past it
// a name is looked up each time.
const maxCachedZones = 64

func (r *batchReader) init(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	r.rc = rc
	r.recv = r.recvmmsg
	r.grow(ReadBatchPackets)
	return nil
}

// grow makes room for n messages (only a caller passing more than
// ReadBatchPackets pays for it, once).
func (r *batchReader) grow(n int) {
	if len(r.hdrs) >= n {
		return
	}
	r.hdrs = make([]unix.Mmsghdr, n)
	r.iovs = make([]unix.Iovec, n)
	r.names = make([]unix.RawSockaddrInet6, n)
	for i := range r.hdrs {
		h := &r.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
	}
}

// ReadBatch reads every datagram waiting, up to len(bufs), in one
// recvmmsg; it blocks (in the runtime's poller) only while there is none.
// IPv4-mapped senders are unmapped so a peer has one address whichever
// socket family carried it.
func (u *UDPConn) ReadBatch(bufs [][]byte, sizes []int, from []netip.AddrPort) (int, error) {
	r := &u.batch
	n := min(len(bufs), len(sizes), len(from))
	if n == 0 {
		return 0, nil
	}
	r.grow(n)
	for i, b := range bufs[:n] {
		r.iovs[i].Base = unsafe.SliceData(b)
		r.iovs[i].SetLen(len(b))
		r.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		r.hdrs[i].Len = 0
	}
	r.vlen, r.n, r.errno = n, 0, 0
	err := r.rc.Read(r.recv)
	for i := range r.iovs[:n] {
		r.iovs[i].Base = nil // the buffers are the caller's again
	}
	if err != nil {
		return 0, err
	}
	if r.errno != 0 {
		return 0, os.NewSyscallError("recvmmsg", r.errno)
	}
	for i := range r.n {
		sizes[i] = int(r.hdrs[i].Len)
		from[i] = r.sender(i)
	}
	return r.n, nil
}

// recvmmsg is the RawConn.Read callback: false asks the poller to wait
// until the socket is readable.
func (r *batchReader) recvmmsg(fd uintptr) bool {
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(r.vlen), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		case 0:
			r.n = int(n)
		default:
			r.errno = e
		}
		return true
	}
}

// sender decodes message i's source address.
func (r *batchReader) sender(i int) netip.AddrPort {
	sa := &r.names[i]
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), networkOrder(sa4.Port))
	case unix.AF_INET6:
		a := netip.AddrFrom16(sa.Addr).Unmap()
		if sa.Scope_id != 0 && a.Is6() {
			a = a.WithZone(r.zone(sa.Scope_id))
		}
		return netip.AddrPortFrom(a, networkOrder(sa.Port))
	}
	return netip.AddrPort{}
}

// networkOrder reads a sockaddr's port, stored big-endian.
func networkOrder(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// zone names an IPv6 scope (a link-local sender), as the net package does.
func (r *batchReader) zone(id uint32) string {
	if z, ok := r.zones[id]; ok {
		return z
	}
	z := strconv.FormatUint(uint64(id), 10)
	if ifi, err := net.InterfaceByIndex(int(id)); err == nil {
		z = ifi.Name
	}
	if r.zones == nil {
		r.zones = make(map[uint32]string)
	}
	if len(r.zones) < maxCachedZones {
		r.zones[id] = z
	}
	return z
}
