package meshtest

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/mesh"
)

// waitTimeout is generous: these waits are for delivery goroutines on a
// loaded machine, never speed assertions.
const waitTimeout = 30 * time.Second

type got struct {
	from identity.NodeID
	msg  string
}

// listen registers a handler on n that forwards what arrives on ch.
func listen(n *Node, ch mesh.Channel) <-chan got {
	out := make(chan got, 64)
	n.Handle(ch, func(from identity.NodeID, msg []byte) { out <- got{from, string(msg)} })
	return out
}

func recv(t *testing.T, c <-chan got) got {
	t.Helper()
	select {
	case g := <-c:
		return g
	case <-time.After(waitTimeout):
		t.Fatal("nothing delivered")
		return got{}
	}
}

// quiet asserts nothing arrives while a marker sent after it does: the hub
// delivers in order per node, so the marker proves the earlier message is
// not merely late.
func quiet(t *testing.T, from *Node, to identity.NodeID, c <-chan got) {
	t.Helper()
	if err := from.Send(context.Background(), to, mesh.ChanGossip, []byte("marker")); err != nil {
		t.Fatal(err)
	}
	if g := recv(t, c); g.msg != "marker" {
		t.Fatalf("got %q, want only the marker", g.msg)
	}
}

func send(t *testing.T, n *Node, to identity.NodeID, msg string) error {
	t.Helper()
	return n.Send(context.Background(), to, mesh.ChanGossip, []byte(msg))
}

func TestDeliversACopyOffTheSendersGoroutine(t *testing.T) {
	h := NewHub(t, Config{})
	a, b := h.Join(1), h.Join(2)
	release := make(chan struct{})
	arrived := make(chan string, 1)
	b.Handle(mesh.ChanGossip, func(from identity.NodeID, msg []byte) {
		<-release // a blocked handler must not block the sender
		arrived <- string(msg)
	})
	buf := []byte("hello")
	if err := a.Send(context.Background(), 2, mesh.ChanGossip, buf); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXX") // the sender reuses its buffer at once
	close(release)
	select {
	case m := <-arrived:
		if m != "hello" {
			t.Fatalf("delivered %q, want the bytes as sent", m)
		}
	case <-time.After(waitTimeout):
		t.Fatal("nothing delivered")
	}
	if s := a.Stats(); s.PacketsOut != 1 || s.BytesOut != 5 {
		t.Fatalf("sender stats %+v", s)
	}
}

func TestSendErrors(t *testing.T) {
	h := NewHub(t, Config{})
	a := h.Join(1)
	h.Join(2)
	if err := a.Send(context.Background(), 2, mesh.ChanGossip, make([]byte, mesh.MaxMessageBytes+1)); !errors.Is(err, mesh.ErrTooLarge) {
		t.Fatalf("oversize: %v", err)
	}
	if err := send(t, a, 99, "x"); !errors.Is(err, mesh.ErrNoRoute) {
		t.Fatalf("unknown node: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Send(ctx, 2, mesh.ChanGossip, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	h.Close()
	if err := send(t, a, 2, "x"); !errors.Is(err, mesh.ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}

func TestDownCutPartitionHeal(t *testing.T) {
	h := NewHub(t, Config{})
	a, b, c := h.Join(1), h.Join(2), h.Join(3)
	inB := listen(b, mesh.ChanGossip)
	health := func(n *Node, id identity.NodeID) mesh.HealthState {
		for _, p := range n.Peers() {
			if p.ID == id {
				return p.Health
			}
		}
		t.Fatalf("%v not among %v's peers", id, n.id)
		return 0
	}

	h.SetDown(2, true)
	if err := send(t, a, 2, "x"); !errors.Is(err, mesh.ErrNoRoute) {
		t.Fatalf("to a down node: %v", err)
	}
	if err := send(t, b, 1, "x"); !errors.Is(err, mesh.ErrNoRoute) {
		t.Fatalf("from a down node: %v", err)
	}
	if health(a, 2) != mesh.Unreachable || health(b, 1) != mesh.Unreachable || health(a, 3) != mesh.Healthy {
		t.Fatalf("peers while 2 is down: %+v / %+v", a.Peers(), b.Peers())
	}
	h.SetDown(2, false)

	h.Cut(1, 2)
	if err := send(t, a, 2, "x"); !errors.Is(err, mesh.ErrNoRoute) {
		t.Fatalf("over a cut link: %v", err)
	}
	if err := send(t, c, 2, "via c"); err != nil {
		t.Fatalf("an uncut link: %v", err)
	}
	if g := recv(t, inB); g.from != 3 || g.msg != "via c" {
		t.Fatalf("got %+v", g)
	}
	h.Heal()

	h.Partition(1)
	for _, l := range [][2]*Node{{a, b}, {b, a}, {a, c}, {c, a}} {
		if err := send(t, l[0], l[1].id, "x"); !errors.Is(err, mesh.ErrNoRoute) {
			t.Fatalf("across the partition %v→%v: %v", l[0].id, l[1].id, err)
		}
	}
	if err := send(t, c, 2, "same side"); err != nil {
		t.Fatalf("within a side: %v", err)
	}
	recv(t, inB)
	h.Heal()
	if err := send(t, a, 2, "healed"); err != nil {
		t.Fatal(err)
	}
	if g := recv(t, inB); g.msg != "healed" || health(a, 2) != mesh.Healthy {
		t.Fatalf("after heal: %+v, peers %+v", g, a.Peers())
	}
}

func TestDropNextAndLossRule(t *testing.T) {
	h := NewHub(t, Config{})
	a, b := h.Join(1), h.Join(2)
	inB := listen(b, mesh.ChanGossip)
	h.DropNext(2, mesh.ChanGossip, 2)
	for _, m := range []string{"lost 1", "lost 2", "kept"} {
		if err := send(t, a, 2, m); err != nil {
			t.Fatalf("a lost message still reports sent: %v", err)
		}
	}
	if g := recv(t, inB); g.msg != "kept" {
		t.Fatalf("got %q, want the first two lost", g.msg)
	}
	var seen atomic.Int64
	h.SetLoss(func(m Message) bool {
		seen.Add(1)
		return m.From == 1 && string(m.Data) == "drop me"
	})
	if err := send(t, a, 2, "drop me"); err != nil {
		t.Fatal(err)
	}
	quiet(t, a, 2, inB)
	if seen.Load() != 2 {
		t.Fatalf("rule saw %d messages, want 2", seen.Load())
	}
	h.SetLoss(nil)
	if err := send(t, a, 2, "drop me"); err != nil {
		t.Fatal(err)
	}
	if g := recv(t, inB); g.msg != "drop me" {
		t.Fatalf("after SetLoss(nil): %q", g.msg)
	}
}

func TestDropRateIsSeededAndNearItsRate(t *testing.T) {
	const n = 10000
	count := func(seed uint64) (lost int, pattern []bool) {
		rule := DropRate(0.3, seed)
		for range n {
			l := rule(Message{})
			pattern = append(pattern, l)
			if l {
				lost++
			}
		}
		return lost, pattern
	}
	lost, p1 := count(7)
	if lost < 2700 || lost > 3300 {
		t.Fatalf("lost %d of %d at rate 0.3", lost, n)
	}
	_, p2 := count(7)
	for i := range p1 {
		if p1[i] != p2[i] {
			t.Fatalf("same seed, different losses at message %d", i)
		}
	}
}

func TestDelayHoldsMessagesBack(t *testing.T) {
	const delay = 200 * time.Millisecond
	h := NewHub(t, Config{})
	a, b := h.Join(1), h.Join(2)
	inB := listen(b, mesh.ChanGossip)
	h.SetDelay(delay)
	start := time.Now()
	if err := send(t, a, 2, "late"); err != nil {
		t.Fatal(err)
	}
	recv(t, inB)
	if el := time.Since(start); el < delay {
		t.Fatalf("delivered after %v, before the %v delay", el, delay)
	}
	if p := a.Peers()[0]; p.RTT != 2*delay {
		t.Fatalf("RTT %v, want the round trip of the delay", p.RTT)
	}
}

func TestFullInboxDrops(t *testing.T) {
	h := NewHub(t, Config{InboxLen: 2})
	a, b := h.Join(1), h.Join(2)
	release := make(chan struct{})
	b.Handle(mesh.ChanGossip, func(identity.NodeID, []byte) { <-release })
	for range 10 {
		if err := send(t, a, 2, "x"); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	// One message is in the blocked handler, at most two wait in the
	// inbox: at least seven were dropped, and counted by the receiver.
	if d := b.Stats().Drops; d < 7 {
		t.Fatalf("drops %d, want at least 7", d)
	}
}

func TestRingTopology(t *testing.T) {
	h := NewHub(t, Config{Ring: true})
	for _, id := range []identity.NodeID{50, 10, 40, 20, 30} { // ring in join order
		h.Join(id)
	}
	peers := h.Node(10).Peers()
	var ids []identity.NodeID
	direct := map[identity.NodeID]bool{}
	for _, p := range peers {
		ids = append(ids, p.ID)
		direct[p.ID] = p.Direct
		if !p.Direct && p.NextHop != 40 {
			t.Fatalf("relayed peer %v via %v, want the next ring node 40", p.ID, p.NextHop)
		}
	}
	if want := []identity.NodeID{20, 30, 40, 50}; !slices.Equal(ids, want) {
		t.Fatalf("peers %v, want sorted %v", ids, want)
	}
	if !direct[50] || !direct[40] || direct[20] || direct[30] {
		t.Fatalf("direct %v, want only the ring neighbours 50 and 40", direct)
	}
	full := NewHub(t, Config{})
	full.Join(1)
	full.Join(2)
	full.Join(3)
	for _, p := range full.Node(1).Peers() {
		if !p.Direct {
			t.Fatalf("full mesh peer %v not direct", p.ID)
		}
	}
}

func TestHandlerRegistration(t *testing.T) {
	h := NewHub(t, Config{})
	a, b := h.Join(1), h.Join(2)
	if b.HasHandler(mesh.ChanLedger) {
		t.Fatal("handler before Handle")
	}
	inB := listen(b, mesh.ChanLedger)
	if !b.HasHandler(mesh.ChanLedger) {
		t.Fatal("no handler after Handle")
	}
	b.Handle(mesh.ChanLedger, nil)
	if b.HasHandler(mesh.ChanLedger) {
		t.Fatal("Handle(nil) kept the handler")
	}
	if err := a.Send(context.Background(), 2, mesh.ChanLedger, []byte("x")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitTimeout)
	for b.Stats().Drops != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("a message to a removed handler not counted as dropped: %+v", b.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	if len(inB) != 0 {
		t.Fatal("delivered to a removed handler")
	}
	if ids := h.IDs(); !slices.Equal(ids, []identity.NodeID{1, 2}) {
		t.Fatalf("IDs %v", ids)
	}
}
