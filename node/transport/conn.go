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
// Implementations must not allocate per datagram: ReadFrom and WriteTo
// are the relay's hot path.
type Conn interface {
	// ReadFrom blocks until a datagram arrives and copies it into buf,
	// returning its length and sender. A datagram longer than buf is
	// truncated to len(buf) (the read loop's buffer has a spare byte to
	// see it). After Close it returns an error wrapping net.ErrClosed.
	// Only one goroutine reads.
	ReadFrom(buf []byte) (n int, from netip.AddrPort, err error)
	// WriteTo sends one datagram to addr; pkt stays the caller's. Several
	// goroutines (one writer per link) call it concurrently.
	WriteTo(pkt []byte, addr netip.AddrPort) error
	// LocalAddr is the address peers reach this Conn at.
	LocalAddr() netip.AddrPort
	// Close unblocks a pending ReadFrom and makes later calls fail. It
	// may be called again (the later calls may return an error).
	Close() error
}

// UDPConn is the production Conn: one UDP socket.
type UDPConn struct {
	c     *net.UDPConn
	local netip.AddrPort
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
	return &UDPConn{c: c, local: netip.AddrPortFrom(local.Addr().Unmap(), local.Port())}, nil
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

// ReadFrom reads one datagram; IPv4-mapped senders are unmapped so a peer
// has one address whichever socket family carried it.
func (u *UDPConn) ReadFrom(buf []byte) (int, netip.AddrPort, error) {
	n, from, err := u.c.ReadFromUDPAddrPort(buf)
	if err != nil {
		return 0, netip.AddrPort{}, err
	}
	return n, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), nil
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
