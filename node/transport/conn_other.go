//go:build !linux

package transport

import (
	"net"
	"net/netip"
)

// batchReader is UDPConn.ReadBatch where recvmmsg(2) is not available:
// one datagram per call.
type batchReader struct{ c *net.UDPConn }

func (r *batchReader) init(c *net.UDPConn) error {
	r.c = c
	return nil
}

// ReadBatch reads one datagram; IPv4-mapped senders are unmapped so a
// peer has one address whichever socket family carried it.
func (u *UDPConn) ReadBatch(bufs [][]byte, sizes []int, from []netip.AddrPort) (int, error) {
	if len(bufs) == 0 || len(sizes) == 0 || len(from) == 0 {
		return 0, nil
	}
	n, addr, err := u.batch.c.ReadFromUDPAddrPort(bufs[0])
	if err != nil {
		return 0, err
	}
	sizes[0], from[0] = n, netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	return 1, nil
}
