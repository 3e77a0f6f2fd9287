package transport

import (
	"context"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/messaging"
)

func TestJoinDiscoverAndSend(t *testing.T) {
	a := startNode(t, testConfig(t, nil))
	b := startNode(t, testConfig(t, nil, a.LocalAddr()))
	c := startNode(t, testConfig(t, nil, a.LocalAddr()))
	inC := newInbox(c, messaging.ChanGossip)

	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	for _, n := range []*Transport{a, b, c} {
		if err := n.WaitForPeers(ctx, 2); err != nil {
			t.Fatalf("%s: %v", n.Self(), err)
		}
	}
	// b learned c from a's announcements, never from config.
	sendUntil(t, b, c.Self(), messaging.ChanGossip, []byte("hello c"), inC)
	if got := inC.msgs[0].from; got != b.Self() {
		t.Fatalf("from = %s, want %s", got, b.Self())
	}
	eventually(t, "RTT measured", func() bool {
		p, _ := peerInfo(a, b.Self())
		return p.RTT > 0 && p.Direct
	})
}

func TestSendToSelfDeliversLocally(t *testing.T) {
	a := startNode(t, testConfig(t, nil))
	in := newInbox(a, messaging.ChanCommand)
	if err := a.Send(context.Background(), a.Self(), messaging.ChanCommand, []byte("me")); err != nil {
		t.Fatal(err)
	}
	if in.count([]byte("me")) != 1 {
		t.Fatal("not delivered to self")
	}
}

func TestSendUnknownPeerIsNoRoute(t *testing.T) {
	a := startNode(t, testConfig(t, nil))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := a.Send(ctx, mustKey(t).ID, messaging.ChanGossip, []byte("x"))
	if err == nil {
		t.Fatal("send to unknown node succeeded")
	}
	if !errorsIs(err, messaging.ErrNoRoute) {
		t.Fatalf("err = %v, want ErrNoRoute", err)
	}
}
