package transport

import (
	"errors"
	"net"
	"testing"
)

// TestUDPConnRoundTripAndClose: a datagram to our own address comes back
// with our address as sender, and Close unblocks the reader with
// net.ErrClosed (what the read loop stops on).
func TestUDPConnRoundTripAndClose(t *testing.T) {
	c, err := ListenUDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if !c.LocalAddr().Addr().Is4() || c.LocalAddr().Port() == 0 {
		t.Fatalf("local address %v", c.LocalAddr())
	}
	if err := c.WriteTo([]byte("ping"), c.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, from, err := c.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "ping" || from != c.LocalAddr() {
		t.Fatalf("read %q from %v, %v", buf[:n], from, err)
	}
	errc := make(chan error, 1)
	go func() {
		_, _, err := c.ReadFrom(buf)
		errc <- err
	}()
	c.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if _, err := ListenUDP("not an address"); err == nil {
		t.Fatal("ListenUDP accepted a bad address")
	}
}

// BenchmarkUDPConnRoundTrip is one datagram written to and read from the
// same loopback socket: the Conn adds no allocation to the syscalls.
func BenchmarkUDPConnRoundTrip(b *testing.B) {
	c, err := ListenUDP("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	pkt, buf := make([]byte, 1200), make([]byte, 2048)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.WriteTo(pkt, c.LocalAddr()); err != nil {
			b.Fatal(err)
		}
		if _, _, err := c.ReadFrom(buf); err != nil {
			b.Fatal(err)
		}
	}
}
