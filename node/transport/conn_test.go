package transport

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/deck-mesh/deck/node/wire"
)

// readOne reads one datagram from c: a batch of one.
func readOne(c Conn, buf []byte) (int, netip.AddrPort, error) {
	var size [1]int
	var from [1]netip.AddrPort
	_, err := c.ReadBatch([][]byte{buf}, size[:], from[:])
	return size[0], from[0], err
}

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
	n, from, err := readOne(c, buf)
	if err != nil || string(buf[:n]) != "ping" || from != c.LocalAddr() {
		t.Fatalf("read %q from %v, %v", buf[:n], from, err)
	}
	errc := make(chan error, 1)
	go func() {
		_, _, err := readOne(c, buf)
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

// TestUDPConnReadBatch: datagrams waiting on the socket come back in
// order, each with its own length and sender, several per read where the
// platform batches (recvmmsg on Linux); one longer than its buffer is
// truncated to it, as the read loop's spare byte expects.
func TestUDPConnReadBatch(t *testing.T) {
	c, err := ListenUDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	other, err := ListenUDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	const count, bufBytes = 6, 8
	bufs := make([][]byte, 4)
	for i := range bufs {
		bufs[i] = make([]byte, bufBytes)
	}
	sizes, from := make([]int, len(bufs)), make([]netip.AddrPort, len(bufs))
	batched := false
	// Loopback delivers before the write returns, so the datagrams are
	// all waiting when the reads start; a round is repeated only in case
	// the kernel deferred one.
	for round := 0; round < 5 && !batched; round++ {
		for i := range count {
			sender := c
			if i%2 == 1 {
				sender = other
			}
			if err := sender.WriteTo(bytes.Repeat([]byte{byte(i)}, i+5), c.LocalAddr()); err != nil {
				t.Fatal(err)
			}
		}
		for got := 0; got < count; {
			n, err := c.ReadBatch(bufs, sizes, from)
			if err != nil || n < 1 || n > len(bufs) {
				t.Fatalf("batch of %d, %v", n, err)
			}
			batched = batched || n > 1
			for i := range n {
				want := bytes.Repeat([]byte{byte(got)}, min(got+5, bufBytes))
				sender := c.LocalAddr()
				if got%2 == 1 {
					sender = other.LocalAddr()
				}
				if !bytes.Equal(bufs[i][:sizes[i]], want) || from[i] != sender {
					t.Fatalf("datagram %d: % x from %v, want % x from %v", got, bufs[i][:sizes[i]], from[i], want, sender)
				}
				got++
			}
		}
	}
	if !batched && recvmmsgAvailable {
		t.Fatal("every read returned one datagram with several waiting")
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
	pkt := make([]byte, 1200)
	bufs, sizes, from := [][]byte{make([]byte, 2048)}, make([]int, 1), make([]netip.AddrPort, 1)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.WriteTo(pkt, c.LocalAddr()); err != nil {
			b.Fatal(err)
		}
		if _, err := c.ReadBatch(bufs, sizes, from); err != nil {
			b.Fatal(err)
		}
	}
}

// TestOversizedDatagramDropped: a datagram longer than any packet is
// truncated to the read buffer, whose spare byte shows it was longer
// (wire.MaxPacketBytes+1 bytes counted in), and dropped; one of the
// largest size is read whole (and dropped for its zero header).
func TestOversizedDatagramDropped(t *testing.T) {
	tr := startNode(t, testConfig(t, nil))
	c, err := ListenUDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	to := netip.MustParseAddrPort(tr.LocalAddr())
	if err := c.WriteTo(make([]byte, wire.MaxPacketBytes+200), to); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteTo(make([]byte, wire.MaxPacketBytes), to); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both datagrams read, whole bytes counted", func() bool {
		s := tr.Stats()
		return s.PacketsIn == 2 && s.BytesIn == 2*wire.MaxPacketBytes+1 && s.Drops == 2
	})
}

// BenchmarkUDPConnReadBatch is one 1,031-byte datagram written to a
// loopback socket and read back, reads taking up to batch datagrams at a
// time: batch=1 is one syscall per datagram read (what ReadFrom cost),
// batch=32 one recvmmsg per 32. The writes, one syscall each, are in both.
func BenchmarkUDPConnReadBatch(b *testing.B) {
	for _, batch := range []int{1, ReadBatchPackets} {
		b.Run(fmt.Sprint("batch=", batch), func(b *testing.B) {
			c, err := ListenUDP("127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			pkt := make([]byte, wire.HeaderSize+1000)
			rb := newReadBatch(batch)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := c.WriteTo(pkt, c.LocalAddr()); err != nil {
					b.Fatal(err)
				}
				if i%batch == batch-1 {
					for got := 0; got < batch; {
						n, err := c.ReadBatch(rb.bufs, rb.sizes, rb.from)
						if err != nil {
							b.Fatal(err)
						}
						got += n
					}
				}
			}
		})
	}
}
