package transport

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/node/transport/memnet"
)

// Test timers: a fast failure detector so membership tests take seconds.
const (
	testHeartbeat   = 100 * time.Millisecond
	testUnreachable = 1500 * time.Millisecond
	waitLong        = 20 * time.Second
	pollEvery       = 20 * time.Millisecond
)

var testPSK = [32]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}

func mustKey(t testing.TB) *identity.Key {
	t.Helper()
	k, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testConfig(t testing.TB, key *identity.Key, bootstrap ...string) Config {
	if key == nil {
		key = mustKey(t)
	}
	return Config{
		Key:               key,
		PSK:               testPSK,
		ListenAddr:        "127.0.0.1:0",
		Bootstrap:         bootstrap,
		HeartbeatInterval: testHeartbeat,
		UnreachableAfter:  testUnreachable,
		HandshakeTimeout:  3 * time.Second,
		Logf:              t.Logf,
	}
}

// startNode binds and starts a node; it is closed when the test ends.
func startNode(t testing.TB, cfg Config) *Transport {
	t.Helper()
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr.Start(context.Background())
	t.Cleanup(func() { tr.Close() })
	return tr
}

// eventually polls cond until it holds or waitLong passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitLong, what)
		}
		time.Sleep(pollEvery)
	}
}

// inbox collects messages delivered on one channel.
type inbox struct {
	mu   sync.Mutex
	msgs []received
}

type received struct {
	from identity.NodeID
	msg  []byte
}

func newInbox(tr *Transport, ch messaging.Channel) *inbox {
	in := &inbox{}
	tr.Handle(ch, func(from identity.NodeID, msg []byte) {
		in.mu.Lock()
		in.msgs = append(in.msgs, received{from, bytes.Clone(msg)})
		in.mu.Unlock()
	})
	return in
}

func (in *inbox) count(match []byte) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	n := 0
	for _, m := range in.msgs {
		if bytes.Equal(m.msg, match) {
			n++
		}
	}
	return n
}

func (in *inbox) len() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.msgs)
}

func peerInfo(tr *Transport, id identity.NodeID) (messaging.PeerInfo, bool) {
	for _, p := range tr.Peers() {
		if p.ID == id {
			return p, true
		}
	}
	return messaging.PeerInfo{}, false
}

func healthOf(tr *Transport, id identity.NodeID) snapshot.Health {
	p, ok := peerInfo(tr, id)
	if !ok {
		return snapshot.Unreachable
	}
	return p.Health
}

// sendUntil resends msg until the receiver has it: delivery is best effort
// and a loaded CI box may drop a datagram.
func sendUntil(t testing.TB, from *Transport, to identity.NodeID, ch messaging.Channel, msg []byte, in *inbox) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for in.count(msg) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("message of %d bytes from %s never arrived at %s", len(msg), from.Self(), to)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := from.Send(ctx, to, ch, msg)
		cancel()
		if err != nil {
			t.Logf("send: %v (retrying)", err)
		}
		wait := time.Now().Add(2 * time.Second)
		for in.count(msg) == 0 && time.Now().Before(wait) {
			time.Sleep(pollEvery)
		}
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// tapConn passes every datagram through unchanged, first showing each one
// read to onRead and each one written to onWrite (nil: not watched). It
// is how tests observe the wire without hooks in the transport.
type tapConn struct {
	Conn
	onRead  atomic.Pointer[func(from netip.AddrPort, pkt []byte)]
	onWrite atomic.Pointer[func(to netip.AddrPort, pkt []byte)]
}

func (c *tapConn) ReadBatch(bufs [][]byte, sizes []int, from []netip.AddrPort) (int, error) {
	n, err := c.Conn.ReadBatch(bufs, sizes, from)
	if f := c.onRead.Load(); err == nil && f != nil {
		for i := range n {
			if sizes[i] <= len(bufs[i]) {
				(*f)(from[i], bufs[i][:sizes[i]])
			}
		}
	}
	return n, err
}

func (c *tapConn) WriteTo(pkt []byte, to netip.AddrPort) error {
	if f := c.onWrite.Load(); f != nil {
		(*f)(to, pkt)
	}
	return c.Conn.WriteTo(pkt, to)
}

// tapped gives cfg a tapped UDP socket on cfg.ListenAddr.
func tapped(t testing.TB, cfg *Config) *tapConn {
	t.Helper()
	if cfg.Conn == nil {
		udp, err := ListenUDP(cfg.ListenAddr)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Conn = udp
	}
	tc := &tapConn{Conn: cfg.Conn}
	cfg.Conn = tc
	return tc
}

// newMemnet is an in-process network closed when the test ends.
func newMemnet(t testing.TB) *memnet.Network {
	n := memnet.New(memnet.Link{})
	t.Cleanup(n.Close)
	return n
}

// onMemnet gives cfg a socket on network n.
func onMemnet(t testing.TB, n *memnet.Network, cfg Config) Config {
	t.Helper()
	c, err := n.Listen()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Conn = c
	return cfg
}

// receive runs pkt from from through the read loop's batch handler, as a
// batch of one (tr must not be started: the handler is the read loop's).
func receive(tr *Transport, rb *readBatch, from netip.AddrPort, pkt []byte) {
	rb.sizes[0] = copy(rb.bufs[0], pkt)
	rb.from[0] = from
	tr.handleBatch(rb, 1)
}
