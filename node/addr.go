package node

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/deck-mesh/deck/node/api"
)

// DefaultListenAddr is where a node binds when nothing says otherwise (a
// console's embedded node, `deck serve` without --listen): an ephemeral
// port on the wildcard address of the bootstrap addresses' family, so it
// reaches them from any host: 0.0.0.0 for IPv4 bootstraps, [::] for IPv6
// ones, both families for a mix or for host names. When every bootstrap is
// a loopback address the whole cluster is on this host and the node binds
// loopback too (no socket open to the network for nothing); with no
// bootstrap at all it binds IPv4 loopback.
func DefaultListenAddr(bootstrap []string) string {
	var v4, v6, remote bool
	for _, b := range bootstrap {
		host, _, err := net.SplitHostPort(b)
		ip, perr := netip.ParseAddr(host)
		if err != nil || perr != nil {
			v4, v6, remote = true, true, true // a name: either family
			continue
		}
		ip = ip.Unmap()
		remote = remote || !ip.IsLoopback()
		if ip.Is4() {
			v4 = true
		} else {
			v6 = true
		}
	}
	switch {
	case !remote && v6 && !v4:
		return "[::1]:0"
	case !remote:
		return "127.0.0.1:0"
	case v4 && !v6:
		return "0.0.0.0:0"
	case v6 && !v4:
		return "[::]:0"
	}
	return ":0"
}

// CheckAdvertise validates an advertised address: host:port with a port,
// and not an address that means nothing to another host (a wildcard or
// loopback IP). "" is valid: nothing advertised.
func CheckAdvertise(addr string) error {
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" || port == "0" {
		return fmt.Errorf("%w: advertised address %q: want HOST:PORT, the address other hosts reach this node at", api.ErrInvalid, addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%w: advertised address %q: port %q is not a number from 1 to 65535", api.ErrInvalid, addr, port)
	}
	if ip, err := netip.ParseAddr(host); err == nil && (ip.IsUnspecified() || ip.IsLoopback() || ip.IsMulticast()) {
		return fmt.Errorf("%w: advertised address %q: a wildcard, loopback or multicast address means nothing to other hosts", api.ErrInvalid, addr)
	}
	return nil
}
