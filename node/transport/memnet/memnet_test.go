package memnet_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/transport"
	"github.com/deck-mesh/deck/node/transport/memnet"
)

var _ transport.Conn = (*memnet.Conn)(nil)

func listen(t *testing.T, n *memnet.Network) *memnet.Conn {
	t.Helper()
	c, err := n.Listen()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newNet(t *testing.T, def memnet.Link) *memnet.Network {
	n := memnet.New(def)
	t.Cleanup(n.Close)
	return n
}

// readOne reads one datagram: a batch of one.
func readOne(c *memnet.Conn, buf []byte) (int, netip.AddrPort, error) {
	var size [1]int
	var from [1]netip.AddrPort
	_, err := c.ReadBatch([][]byte{buf}, size[:], from[:])
	return size[0], from[0], err
}

// read returns the next datagram, failing the test after timeout.
func read(t *testing.T, c *memnet.Conn, timeout time.Duration) ([]byte, netip.AddrPort) {
	t.Helper()
	type got struct {
		b    []byte
		from netip.AddrPort
		err  error
	}
	ch := make(chan got, 1)
	go func() {
		buf := make([]byte, 2048)
		n, from, err := readOne(c, buf)
		ch <- got{buf[:n], from, err}
	}()
	select {
	case g := <-ch:
		if g.err != nil {
			t.Fatal(g.err)
		}
		return g.b, g.from
	case <-time.After(timeout):
		t.Fatalf("nothing read after %v", timeout)
		return nil, netip.AddrPort{}
	}
}

func TestDeliveryInOrderWithSender(t *testing.T) {
	n := newNet(t, memnet.Link{})
	a, b := listen(t, n), listen(t, n)
	if a.LocalAddr() == b.LocalAddr() || !a.LocalAddr().IsValid() {
		t.Fatalf("addresses %v %v", a.LocalAddr(), b.LocalAddr())
	}
	if !netip.MustParsePrefix("198.18.0.0/15").Contains(a.LocalAddr().Addr()) {
		t.Fatalf("address %v outside the reserved range", a.LocalAddr())
	}
	for i := range 100 {
		if err := a.WriteTo(fmt.Appendf(nil, "m%d", i), b.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		got, from := read(t, b, time.Second)
		if want := fmt.Appendf(nil, "m%d", i); !bytes.Equal(got, want) || from != a.LocalAddr() {
			t.Fatalf("datagram %d: %q from %v, want %q from %v", i, got, from, want, a.LocalAddr())
		}
	}
	// A datagram to nobody vanishes, as UDP's does.
	if err := a.WriteTo([]byte("x"), netip.MustParseAddrPort("198.19.255.1:4000")); err != nil {
		t.Fatal(err)
	}
	if s := n.Stats(); s.Delivered != 100 || s.NoListener != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestTruncatesToReadBuffer(t *testing.T) {
	n := newNet(t, memnet.Link{})
	a, b := listen(t, n), listen(t, n)
	a.WriteTo(bytes.Repeat([]byte{7}, 100), b.LocalAddr())
	buf := make([]byte, 10)
	got, _, err := readOne(b, buf)
	if err != nil || got != 10 {
		t.Fatalf("read %d, %v; want 10 bytes", got, err)
	}
}

// TestReadBatchTakesWhatWaits: a batch read returns every datagram already
// in the inbox, in order, up to the batch's size, without waiting to fill
// it; the next read takes the rest.
func TestReadBatchTakesWhatWaits(t *testing.T) {
	n := newNet(t, memnet.Link{})
	a, b := listen(t, n), listen(t, n)
	for i := range 5 {
		a.WriteTo([]byte{byte(i)}, b.LocalAddr()) // a plain link delivers at once
	}
	bufs := make([][]byte, 3)
	for i := range bufs {
		bufs[i] = make([]byte, 16)
	}
	sizes, from := make([]int, 3), make([]netip.AddrPort, 3)
	next := 0
	for _, want := range []int{3, 2} {
		got, err := b.ReadBatch(bufs, sizes, from)
		if err != nil || got != want {
			t.Fatalf("batch of %d, %v; want %d", got, err, want)
		}
		for i := range got {
			if sizes[i] != 1 || bufs[i][0] != byte(next) || from[i] != a.LocalAddr() {
				t.Fatalf("datagram %d: % x from %v", next, bufs[i][:sizes[i]], from[i])
			}
			next++
		}
	}
}

func TestLatencyDelaysEachPacket(t *testing.T) {
	const lat = 60 * time.Millisecond
	n := newNet(t, memnet.Link{})
	a, b := listen(t, n), listen(t, n)
	n.SetOneWay(a.LocalAddr(), b.LocalAddr(), memnet.Link{Latency: lat})
	start := time.Now()
	a.WriteTo([]byte("slow"), b.LocalAddr())
	read(t, b, 5*time.Second)
	if took := time.Since(start); took < lat {
		t.Fatalf("arrived after %v, latency %v", took, lat)
	}
	// The other direction is untouched.
	start = time.Now()
	b.WriteTo([]byte("fast"), a.LocalAddr())
	read(t, a, 5*time.Second)
	if took := time.Since(start); took >= lat {
		t.Fatalf("reverse direction took %v", took)
	}
}

func TestLossDropsItsFraction(t *testing.T) {
	const sent, loss = 20000, 0.3
	n := newNet(t, memnet.Link{Loss: loss})
	a, b := listen(t, n), listen(t, n)
	go func() {
		buf := make([]byte, 64)
		for {
			if _, _, err := readOne(b, buf); err != nil {
				return
			}
		}
	}()
	for range sent {
		a.WriteTo([]byte("p"), b.LocalAddr())
	}
	s := n.Stats()
	// Binomial: sd = sqrt(n p (1-p)) ≈ 65; 6 sd either side never fails
	// by chance in practice.
	if got, want := float64(s.Lost), float64(sent)*loss; got < want-400 || got > want+400 {
		t.Fatalf("lost %d of %d, want about %.0f", s.Lost, sent, want)
	}
	if s.Lost+s.Delivered+s.QueueDrops != sent {
		t.Fatalf("stats do not add up: %+v", s)
	}
}

func TestPartitionAndHeal(t *testing.T) {
	n := newNet(t, memnet.Link{Latency: time.Millisecond})
	a, b, c := listen(t, n), listen(t, n), listen(t, n)
	n.Partition(a.LocalAddr(), b.LocalAddr(), true)
	a.WriteTo([]byte("cut"), b.LocalAddr())
	b.WriteTo([]byte("cut"), a.LocalAddr())
	a.WriteTo([]byte("to c"), c.LocalAddr()) // other links still work
	if got, _ := read(t, c, time.Second); string(got) != "to c" {
		t.Fatalf("c read %q", got)
	}
	if s := n.Stats(); s.Partitioned != 2 {
		t.Fatalf("partitioned %d, want 2", s.Partitioned)
	}
	n.Partition(a.LocalAddr(), b.LocalAddr(), false)
	a.WriteTo([]byte("healed"), b.LocalAddr())
	if got, _ := read(t, b, time.Second); string(got) != "healed" {
		t.Fatalf("b read %q after heal (the cut packet must not arrive)", got)
	}
	if s := n.Stats(); s.Delivered != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestBandwidthSerialisesAndTailDrops(t *testing.T) {
	const rate = 200_000 // bytes per second
	n := newNet(t, memnet.Link{})
	a, b := listen(t, n), listen(t, n)
	n.SetOneWay(a.LocalAddr(), b.LocalAddr(), memnet.Link{BytesPerSecond: rate})
	pkt := make([]byte, 1000)
	const count = 40 // 40 kB: 200 ms at the rate
	start := time.Now()
	for range count {
		a.WriteTo(pkt, b.LocalAddr())
	}
	for range count {
		read(t, b, 5*time.Second)
	}
	if took, want := time.Since(start), time.Duration(count*len(pkt))*time.Second/rate; took < want*9/10 {
		t.Fatalf("%d bytes crossed in %v, the rate allows no less than %v", count*len(pkt), took, want)
	}
	// Far more than the link queue holds: the excess is tail-dropped.
	for range 2 * memnet.LinkQueueBytes / len(pkt) {
		a.WriteTo(pkt, b.LocalAddr())
	}
	if s := n.Stats(); s.QueueDrops == 0 {
		t.Fatalf("no tail drops past the link queue: %+v", s)
	}
}

func TestCloseUnblocksReader(t *testing.T) {
	n := newNet(t, memnet.Link{})
	a := listen(t, n)
	errc := make(chan error, 1)
	go func() {
		_, _, err := readOne(a, make([]byte, 10))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond) // let the reader block
	a.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("err %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock ReadBatch")
	}
	if err := a.WriteTo([]byte("x"), a.LocalAddr()); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	// The address is free again for a restart.
	if _, err := n.ListenAt(a.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if _, err := n.ListenAt(a.LocalAddr()); err == nil {
		t.Fatal("ListenAt on an address in use succeeded")
	}
}

func TestNetworkCloseClosesConns(t *testing.T) {
	n := memnet.New(memnet.Link{Latency: time.Hour})
	a, b := listen(t, n), listen(t, n)
	a.WriteTo([]byte("never"), b.LocalAddr()) // parked in the heap
	n.Close()
	if _, _, err := readOne(b, make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after network close: %v", err)
	}
	if _, err := n.Listen(); err == nil {
		t.Fatal("Listen on a closed network succeeded")
	}
}

// BenchmarkWriteRead is one datagram through the switch, per packet of a
// burst of 64 written then read: straight into the inbox on a plain link,
// through the delivery heap and its timer on a link with latency.
func BenchmarkWriteRead(b *testing.B) {
	const burst = 64
	for _, lat := range []time.Duration{0, time.Microsecond} {
		b.Run(fmt.Sprint("latency=", lat), func(b *testing.B) {
			n := memnet.New(memnet.Link{Latency: lat})
			defer n.Close()
			x, _ := n.Listen()
			y, _ := n.Listen()
			pkt := make([]byte, 1200)
			bufs := make([][]byte, burst)
			for i := range bufs {
				bufs[i] = make([]byte, 2048)
			}
			sizes, from := make([]int, burst), make([]netip.AddrPort, burst)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				x.WriteTo(pkt, y.LocalAddr())
				if i%burst == burst-1 {
					for got := 0; got < burst; {
						n, _ := y.ReadBatch(bufs, sizes, from)
						got += n
					}
				}
			}
			b.StopTimer()
			if s := n.Stats(); s.QueueDrops != 0 {
				b.Fatalf("drops: %+v", s)
			}
		})
	}
}

// TestInboxDropsCountedPerConn: datagrams to a reader that does not read
// are dropped past InboxPackets and counted on that Conn, not another.
func TestInboxDropsCountedPerConn(t *testing.T) {
	n := newNet(t, memnet.Link{})
	a, b, c := listen(t, n), listen(t, n), listen(t, n)
	const extra = 10
	for range memnet.InboxPackets + extra {
		a.WriteTo([]byte{1}, b.LocalAddr())
	}
	a.WriteTo([]byte{2}, c.LocalAddr())
	if got := b.InboxDrops(); got != extra {
		t.Fatalf("b dropped %d, want %d", got, extra)
	}
	if got := c.InboxDrops(); got != 0 {
		t.Fatalf("c dropped %d, want 0", got)
	}
	if got := n.Stats().QueueDrops; got != extra {
		t.Fatalf("network queue drops %d, want %d", got, extra)
	}
}
