package faultconn

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/transport/memnet"
	"github.com/deck-mesh/deck/node/wire"
)

const (
	idA, idB, idRelay identity.NodeID = 0xa, 0xb, 0xc
	quiet                             = 150 * time.Millisecond // how long "nothing arrives" is watched
)

// packet is a datagram with a wire header from src; ttl below
// wire.DefaultTTL marks it relayed.
func packet(src identity.NodeID, ttl uint8, tag byte) []byte {
	b := make([]byte, wire.HeaderSize+1)
	h := wire.Header{Version: wire.Version, Type: wire.TypeData, Src: src, Dst: idB, TTL: ttl}
	h.Encode(b)
	b[wire.HeaderSize] = tag
	return b
}

type reader struct {
	got chan []byte
}

// readAll drains c into a channel of datagrams, reading in batches as the
// transport does.
func readAll(c interface {
	ReadBatch([][]byte, []int, []netip.AddrPort) (int, error)
}) *reader {
	r := &reader{got: make(chan []byte, 1024)}
	go func() {
		bufs := make([][]byte, 4)
		for i := range bufs {
			bufs[i] = make([]byte, 2048)
		}
		sizes, from := make([]int, len(bufs)), make([]netip.AddrPort, len(bufs))
		for {
			n, err := c.ReadBatch(bufs, sizes, from)
			if err != nil {
				close(r.got)
				return
			}
			for i := range n {
				r.got <- bytes.Clone(bufs[i][:sizes[i]])
			}
		}
	}()
	return r
}

func (r *reader) expect(t *testing.T, tag byte) time.Time {
	t.Helper()
	select {
	case b := <-r.got:
		if b[len(b)-1] != tag {
			t.Fatalf("got datagram %d, want %d", b[len(b)-1], tag)
		}
		return time.Now()
	case <-time.After(5 * time.Second):
		t.Fatalf("datagram %d never arrived", tag)
		return time.Time{}
	}
}

func (r *reader) expectNothing(t *testing.T) {
	t.Helper()
	select {
	case b := <-r.got:
		t.Fatalf("datagram %d arrived through a fault", b[len(b)-1])
	case <-time.After(quiet):
	}
}

// setup is A and a relay on a plain network socket, and B wrapped.
func setup(t *testing.T) (a, relay *memnet.Conn, b *Conn, atA, atB *reader) {
	t.Helper()
	n := memnet.New(memnet.Link{})
	t.Cleanup(n.Close)
	a, _ = n.Listen()
	relay, _ = n.Listen()
	inner, _ := n.Listen()
	b = New(inner)
	t.Cleanup(func() { b.Close() })
	return a, relay, b, readAll(a), readAll(b)
}

func TestBlockDropsBothWaysOnceLearned(t *testing.T) {
	a, relay, b, atA, atB := setup(t)
	a.WriteTo(packet(idA, wire.DefaultTTL, 1), b.LocalAddr())
	atB.expect(t, 1) // learns A's address
	b.Block(idA, true)
	a.WriteTo(packet(idA, wire.DefaultTTL, 2), b.LocalAddr())
	atB.expectNothing(t)
	b.WriteTo(packet(idB, wire.DefaultTTL, 3), a.LocalAddr())
	atA.expectNothing(t)
	// A's packets relayed by another node still arrive: the block is of
	// the direct link only, and a relayed packet teaches nothing.
	relay.WriteTo(packet(idA, wire.DefaultTTL-1, 4), b.LocalAddr())
	atB.expect(t, 4)
	b.Block(idA, false)
	a.WriteTo(packet(idA, wire.DefaultTTL, 5), b.LocalAddr())
	atB.expect(t, 5)
	b.WriteTo(packet(idB, wire.DefaultTTL, 6), a.LocalAddr())
	atA.expect(t, 6)
}

// TestBlockBeforeFirstContact: a direct packet from a blocked peer is
// dropped on its header alone, so a bootstrap through a cut link fails.
func TestBlockBeforeFirstContact(t *testing.T) {
	a, _, b, _, atB := setup(t)
	b.Block(idA, true)
	a.WriteTo(packet(idA, wire.DefaultTTL, 1), b.LocalAddr())
	atB.expectNothing(t)
}

// TestFaultsJudgeEachDatagramOfABatch: in one batch read, the datagrams of
// a blocked link are dropped and the others move up, in order, into the
// caller's buffers.
func TestFaultsJudgeEachDatagramOfABatch(t *testing.T) {
	n := memnet.New(memnet.Link{})
	t.Cleanup(n.Close)
	a, _ := n.Listen()
	relay, _ := n.Listen()
	inner, _ := n.Listen()
	b := New(inner)
	t.Cleanup(func() { b.Close() })
	b.Block(idA, true)
	for tag := byte(1); tag <= 6; tag++ { // a plain link delivers at once
		if tag%2 == 1 {
			a.WriteTo(packet(idA, wire.DefaultTTL, tag), b.LocalAddr())
		} else {
			relay.WriteTo(packet(idA, wire.DefaultTTL-1, tag), b.LocalAddr())
		}
	}
	bufs := make([][]byte, 8)
	for i := range bufs {
		bufs[i] = make([]byte, 64)
	}
	sizes, from := make([]int, 8), make([]netip.AddrPort, 8)
	got, err := b.ReadBatch(bufs, sizes, from)
	if err != nil || got != 3 {
		t.Fatalf("batch of %d, %v; want the 3 relayed datagrams", got, err)
	}
	for i, tag := range []byte{2, 4, 6} {
		if sizes[i] != wire.HeaderSize+1 || bufs[i][sizes[i]-1] != tag || from[i] != relay.LocalAddr() {
			t.Fatalf("datagram %d: % x from %v, want tag %d from %v", i, bufs[i][:sizes[i]], from[i], tag, relay.LocalAddr())
		}
	}
}

func TestPauseDropsEverything(t *testing.T) {
	a, _, b, atA, atB := setup(t)
	b.Pause(true)
	a.WriteTo(packet(idA, wire.DefaultTTL, 1), b.LocalAddr())
	b.WriteTo(packet(idB, wire.DefaultTTL, 2), a.LocalAddr())
	atB.expectNothing(t)
	atA.expectNothing(t)
	b.Pause(false)
	a.WriteTo(packet(idA, wire.DefaultTTL, 3), b.LocalAddr())
	atB.expect(t, 3)
}

func TestImpairDelaysInOrderAndLoses(t *testing.T) {
	a, _, b, atA, atB := setup(t)
	a.WriteTo(packet(idA, wire.DefaultTTL, 1), b.LocalAddr())
	atB.expect(t, 1)
	const delay = 100 * time.Millisecond
	b.Impair(idA, delay, 0)
	start := time.Now()
	for tag := byte(10); tag < 20; tag++ {
		b.WriteTo(packet(idB, wire.DefaultTTL, tag), a.LocalAddr())
	}
	for tag := byte(10); tag < 20; tag++ {
		if at := atA.expect(t, tag); at.Sub(start) < delay {
			t.Fatalf("datagram %d arrived after %v, delay %v", tag, at.Sub(start), delay)
		}
	}
	// Delay is on what this end sends; what it receives is not held.
	start = time.Now()
	a.WriteTo(packet(idA, wire.DefaultTTL, 30), b.LocalAddr())
	if at := atB.expect(t, 30); at.Sub(start) >= delay {
		t.Fatalf("incoming datagram held %v", at.Sub(start))
	}
	b.Impair(idA, 0, 1)
	a.WriteTo(packet(idA, wire.DefaultTTL, 31), b.LocalAddr())
	b.WriteTo(packet(idB, wire.DefaultTTL, 32), a.LocalAddr())
	atB.expectNothing(t)
	atA.expectNothing(t)
	b.Impair(idA, 0, 0)
	a.WriteTo(packet(idA, wire.DefaultTTL, 33), b.LocalAddr())
	atB.expect(t, 33)
}

func TestLearnedAddressesBounded(t *testing.T) {
	_, _, b, _, _ := setup(t)
	for i := range 3 * MaxLearnedAddrs {
		b.learn(netip.AddrPortFrom(netip.MustParseAddr("198.18.9.9"), uint16(i+1)), packet(identity.NodeID(i+1), wire.DefaultTTL, 0))
		if len(b.addrIDs) > MaxLearnedAddrs {
			t.Fatalf("%d learned addresses, max %d", len(b.addrIDs), MaxLearnedAddrs)
		}
	}
	// Garbage teaches nothing.
	before := len(b.addrIDs)
	b.learn(netip.MustParseAddrPort("198.18.9.8:1"), []byte("not a packet"))
	if len(b.addrIDs) != before {
		t.Fatal("learned an address from a malformed packet")
	}
}

func TestCloseClosesInner(t *testing.T) {
	_, _, b, _, atB := setup(t)
	b.Impair(idA, time.Hour, 0)
	b.Close()
	if _, ok := <-atB.got; ok {
		t.Fatal("datagram after close")
	}
	if _, err := b.ReadBatch([][]byte{make([]byte, 10)}, make([]int, 1), make([]netip.AddrPort, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
}
