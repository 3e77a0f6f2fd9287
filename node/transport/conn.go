package transport

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Conn is the datagram socket a Transport runs on (after wireguard-go's
// conn.Bind and nebula's udp.Conn): UDP in production, a wrapped socket
// that injects faults in the demo, an in-process network (package memnet)
// in tests and simulations. The Transport owns the Conn it is given and
// closes it on Close, or in New when New fails.
//
// Reading is by batch only, with wireguard-go's ReceiveFunc shape (plain
// slices, so memnet implements it without importing this package): the
// read loop handles a batch, hands each next hop its relayed packets once,
// and only then reads again. One shape serves a quiet link (a batch of
// one) and a busy relay (ReadBatchPackets at a time).
//
// Implementations must not allocate per datagram: ReadBatch and WriteTo
// are the relay's hot path.
type Conn interface {
	// ReadBatch blocks until a datagram arrives, then returns it and the
	// ones already waiting behind it, up to len(bufs), without blocking
	// for more: datagram i is copied into bufs[i], its length stored in
	// sizes[i] and its sender in from[i] (sizes and from are at least as
	// long as bufs). The buffers are the caller's and are filled in
	// place, never replaced: the read loop hands the buffer behind
	// bufs[i] on to a next hop by identity. A datagram longer than its
	// buffer is truncated to it (the read loop's buffers have a spare
	// byte to see that). n ≥ 1 when err is nil. After Close it returns
	// an error wrapping net.ErrClosed. Only one goroutine reads.
	ReadBatch(bufs [][]byte, sizes []int, from []netip.AddrPort) (n int, err error)
	// WriteTo sends one datagram to addr; pkt stays the caller's. Several
	// goroutines (one writer per link) call it concurrently.
	WriteTo(pkt []byte, addr netip.AddrPort) error
	// LocalAddr is the address peers reach this Conn at.
	LocalAddr() netip.AddrPort
	// Close unblocks a pending ReadBatch and makes later calls fail. It
	// may be called again (the later calls may return an error).
	Close() error
}

// UDPConn is the production Conn: one UDP socket. On Linux ReadBatch is
// one recvmmsg(2) (conn_linux.go); elsewhere it reads one datagram.
type UDPConn struct {
	c     *net.UDPConn
	local netip.AddrPort
	batch batchReader // the reader's state; only the read loop uses it
}

var _ Conn = (*UDPConn)(nil)

// ListenUDP binds a UDP socket on addr (e.g. "127.0.0.1:0") with
// SocketBufferBytes of kernel buffer each way where the kernel allows it.
// An IPv4 address (0.0.0.0 included) binds an IPv4 socket, an IPv6 one
// other than [::] an IPv6 socket; [::] and an empty host bind both
// families where the system allows.
func ListenUDP(addr string) (*UDPConn, error) {
	network := listenNetwork(addr)
	la, err := net.ResolveUDPAddr(network, addr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen address %q: %w", addr, err)
	}
	c, err := net.ListenUDP(network, la)
	if err != nil {
		return nil, fmt.Errorf("transport: listen: %w", err)
	}
	// Best effort: the kernel caps it at rmem_max/wmem_max.
	_ = c.SetReadBuffer(SocketBufferBytes)
	_ = c.SetWriteBuffer(SocketBufferBytes)
	ua, ok := c.LocalAddr().(*net.UDPAddr)
	if !ok {
		c.Close()
		return nil, errors.New("transport: listen: socket has no UDP address")
	}
	local := ua.AddrPort()
	u := &UDPConn{c: c, local: netip.AddrPortFrom(local.Addr().Unmap(), local.Port())}
	if err := u.batch.init(c); err != nil {
		c.Close()
		return nil, fmt.Errorf("transport: listen: %w", err)
	}
	return u, nil
}

// listenNetwork is the socket family addr asks for (see ListenUDP). Go's
// "udp" would make 0.0.0.0 a dual-stack socket reporting itself as [::].
func listenNetwork(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "udp"
	}
	ip, err := netip.ParseAddr(host)
	switch {
	case err != nil || (ip.Is6() && ip.IsUnspecified()):
		return "udp"
	case ip.Unmap().Is4():
		return "udp4"
	}
	return "udp6"
}

// WriteTo sends one datagram.
func (u *UDPConn) WriteTo(pkt []byte, addr netip.AddrPort) error {
	_, err := u.c.WriteToUDPAddrPort(pkt, addr)
	return err
}

// LocalAddr is the bound address.
func (u *UDPConn) LocalAddr() netip.AddrPort { return u.local }

// Close closes the socket.
func (u *UDPConn) Close() error { return u.c.Close() }
