package transport

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/node/transport/memnet"
)

func TestStoppedNodeGoesSuspectThenUnreachableAndRecovers(t *testing.T) {
	a := startNode(t, testConfig(t, nil))
	kb := mustKey(t)
	b := startNode(t, testConfig(t, kb, a.LocalAddr()))
	eventually(t, "A sees B healthy", func() bool { return healthOf(a, kb.ID) == snapshot.Healthy })

	b.Close()
	sawSuspect := false
	eventually(t, "A sees B unreachable", func() bool {
		h := healthOf(a, kb.ID)
		sawSuspect = sawSuspect || h == snapshot.Suspect
		return h == snapshot.Unreachable
	})
	if !sawSuspect {
		t.Fatal("B went Unreachable without passing through Suspect")
	}
	p, _ := peerInfo(a, kb.ID)
	if p.Flaps < 1 {
		t.Fatalf("flaps = %d, want >= 1", p.Flaps)
	}
	if silence := p.HealthSince.Sub(p.LastHeard); silence < testUnreachable {
		t.Fatalf("Unreachable after %v of silence, want >= %v", silence, testUnreachable)
	}

	// Same key, new socket (new port): B comes back and is Healthy again.
	b2 := startNode(t, testConfig(t, kb, a.LocalAddr()))
	eventually(t, "A sees restarted B healthy", func() bool {
		p, _ := peerInfo(a, kb.ID)
		return p.Health == snapshot.Healthy && p.Addr == b2.LocalAddr()
	})
	in := newInbox(b2, messaging.ChanGossip)
	sendUntil(t, a, kb.ID, messaging.ChanGossip, []byte("welcome back"), in)
}

func TestFailureDetectorTransitions(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const s, u = 3 * time.Second, 5 * time.Second
	d := newDetector(t0)
	steps := []struct {
		at    time.Duration
		heard bool
		want  snapshot.Health
		flaps int
	}{
		{0, false, snapshot.Unreachable, 0}, // known, never heard
		{time.Second, true, snapshot.Healthy, 0},
		{time.Second + s - 1, false, snapshot.Healthy, 0},
		{time.Second + s, false, snapshot.Suspect, 1},
		{time.Second + u - 1, false, snapshot.Suspect, 1},
		{time.Second + u, false, snapshot.Unreachable, 1},
		{10 * time.Second, true, snapshot.Healthy, 1},
		{10*time.Second + u, false, snapshot.Unreachable, 2}, // straight to Unreachable on a long gap
		{20 * time.Second, true, snapshot.Healthy, 2},
		{20*time.Second + s, false, snapshot.Suspect, 3},
		{20*time.Second + s + 1, true, snapshot.Healthy, 3},
	}
	for i, st := range steps {
		now := t0.Add(st.at)
		if st.heard {
			d.heard(now)
		} else {
			d.tick(now, s, u)
		}
		if d.state != st.want || d.flaps != st.flaps {
			t.Fatalf("step %d (%v): state %v flaps %d, want %v %d", i, st.at, d.state, d.flaps, st.want, st.flaps)
		}
	}
}

func TestRTTEstimatorFollowsRFC6298(t *testing.T) {
	var e rttEstimator
	e.sample(100 * time.Millisecond)
	if e.srtt != 100*time.Millisecond || e.rttvar != 50*time.Millisecond {
		t.Fatalf("first sample: %v/%v", e.srtt, e.rttvar)
	}
	e.sample(200 * time.Millisecond)
	if e.srtt != 112500*time.Microsecond || e.rttvar != 62500*time.Microsecond {
		t.Fatalf("second sample: %v/%v", e.srtt, e.rttvar)
	}
	e.sample(0) // ignored
	if e.samples != 2 {
		t.Fatal("a zero sample was counted")
	}
}

// TestRelayRemovedReroutes builds two disjoint two-hop paths A–B–D and
// A–C–D (the B–C and A–D links partitioned), kills the relay in use and
// checks traffic moves to the other.
func TestRelayRemovedReroutes(t *testing.T) {
	kb, kc := mustKey(t), mustKey(t)
	ka, kd := mustKey(t), mustKey(t)
	n := newMemnet(t)
	cb := onMemnet(t, n, testConfig(t, kb))
	cc := onMemnet(t, n, testConfig(t, kc))
	boot := []string{cb.Conn.LocalAddr().String(), cc.Conn.LocalAddr().String()}
	ca := onMemnet(t, n, testConfig(t, ka, boot...))
	cd := onMemnet(t, n, testConfig(t, kd, boot...))
	n.Partition(cb.Conn.LocalAddr(), cc.Conn.LocalAddr(), true)
	n.Partition(ca.Conn.LocalAddr(), cd.Conn.LocalAddr(), true)
	b, c := startNode(t, cb), startNode(t, cc)
	a, d := startNode(t, ca), startNode(t, cd)
	in := newInbox(d, messaging.ChanGossip)
	var relay identity.NodeID
	eventually(t, "A routes to D through a relay", func() bool {
		r, ok := a.routes.lookup(kd.ID)
		relay = r.NextHop
		return ok && (relay == kb.ID || relay == kc.ID)
	})
	sendUntil(t, a, kd.ID, messaging.ChanGossip, []byte("first"), in)

	other := kc.ID
	if relay == kb.ID {
		b.Close()
	} else {
		c.Close()
		other = kb.ID
	}
	eventually(t, "A reroutes to D through the other relay", func() bool {
		r, ok := a.routes.lookup(kd.ID)
		return ok && r.NextHop == other
	})
	sendUntil(t, a, kd.ID, messaging.ChanGossip, []byte("after reroute"), in)
}

func TestFragmentedMaxMessageRoundTrip(t *testing.T) {
	a, b := pair(t)
	in := newInbox(b, messaging.ChanMigration)
	msg := make([]byte, messaging.MaxMessageBytes)
	rand.Read(msg)
	sendUntil(t, a, b.Self(), messaging.ChanMigration, msg, in)

	err := a.Send(context.Background(), b.Self(), messaging.ChanMigration, make([]byte, messaging.MaxMessageBytes+1))
	if !errors.Is(err, messaging.ErrTooLarge) {
		t.Fatalf("MaxMessageBytes+1: err = %v, want ErrTooLarge", err)
	}
}

// TestRekeyWithoutLosingTraffic runs steady traffic across several rekeys
// (by time on one pair, by message count on another) and checks every
// message arrives and the session really rotated.
func TestRekeyWithoutLosingTraffic(t *testing.T) {
	for _, mode := range []string{"time", "messages"} {
		t.Run(mode, func(t *testing.T) {
			cb := testConfig(t, nil)
			if mode == "time" {
				cb.RekeyAfterTime = 700 * time.Millisecond
			} else {
				cb.RekeyAfterMessages = 40
			}
			b := startNode(t, cb)
			ca := cb
			ca.Key = mustKey(t)
			ca.Bootstrap = []string{b.LocalAddr()}
			a := startNode(t, ca)
			ctx, cancel := context.WithTimeout(context.Background(), waitLong)
			defer cancel()
			if err := a.WaitForPeers(ctx, 1); err != nil {
				t.Fatal(err)
			}
			in := newInbox(b, messaging.ChanGossip)
			seen := map[[32]byte]bool{currentFingerprint(b, a.Self()): true}
			const n = 150
			for i := range n {
				if err := a.Send(ctx, b.Self(), messaging.ChanGossip, fmt.Appendf(nil, "m%d", i)); err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
				seen[currentFingerprint(b, a.Self())] = true
				time.Sleep(15 * time.Millisecond) // pacing the traffic, not an assertion
			}
			eventually(t, "all messages delivered", func() bool { return in.len() >= n })
			for i := range n {
				if in.count(fmt.Appendf(nil, "m%d", i)) != 1 {
					t.Fatalf("message %d delivered %d times", i, in.count(fmt.Appendf(nil, "m%d", i)))
				}
			}
			if len(seen) < 3 {
				t.Fatalf("session rotated %d times, want >= 2", len(seen)-1)
			}
		})
	}
}

// memPair is pair on an in-process network, whose links tests can cut
// and slow.
func memPair(t *testing.T) (a, b *Transport, n *memnet.Network) {
	t.Helper()
	n = newMemnet(t)
	b = startNode(t, onMemnet(t, n, testConfig(t, nil)))
	a = startNode(t, onMemnet(t, n, testConfig(t, nil, b.LocalAddr())))
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := a.WaitForPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitForPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	return a, b, n
}

func addrOf(tr *Transport) netip.AddrPort { return tr.local }

// TestSilentPeerGoesSuspectAndRecovers: a peer whose link goes silent both
// ways (a paused node, a cut cable) stops being Healthy, and is Healthy
// again once packets flow.
func TestSilentPeerGoesSuspectAndRecovers(t *testing.T) {
	a, b, n := memPair(t)
	n.Partition(addrOf(a), addrOf(b), true)
	eventually(t, "B sees silent A suspect", func() bool { return healthOf(b, a.Self()) != snapshot.Healthy })
	n.Partition(addrOf(a), addrOf(b), false)
	eventually(t, "B sees A healthy again", func() bool { return healthOf(b, a.Self()) == snapshot.Healthy })
}

// TestLinkDelayAndLoss: one-way delay shows in the RTT, total loss makes
// the peer Unreachable, and the link recovers when it clears.
func TestLinkDelayAndLoss(t *testing.T) {
	a, b, n := memPair(t)
	const delay = 80 * time.Millisecond
	n.SetOneWay(addrOf(a), addrOf(b), memnet.Link{Latency: delay})
	eventually(t, "RTT reflects the added delay", func() bool {
		p, _ := peerInfo(a, b.Self())
		return p.RTT >= delay*3/4
	})
	n.SetLink(addrOf(a), addrOf(b), memnet.Link{Loss: 1}) // total loss, both directions
	eventually(t, "B unreachable over a 100% lossy link", func() bool { return healthOf(a, b.Self()) == snapshot.Unreachable })
	n.SetLink(addrOf(a), addrOf(b), memnet.Link{})
	eventually(t, "link recovers", func() bool { return healthOf(a, b.Self()) == snapshot.Healthy })
}

// TestHandshakeCompletesOverPathSlowerThanRetry: on a path whose round
// trip (2.4 s) is longer than the longest retry interval (2 s), every
// message 2 arrives after the initiator's next retry. A retry that built a
// fresh message 1 stranded each of them (the index they answer was gone)
// and no handshake ever completed; a retry that resends message 1
// unchanged completes on the first answer.
func TestHandshakeCompletesOverPathSlowerThanRetry(t *testing.T) {
	n := newMemnet(t)
	slow := func(cfg Config) Config {
		cfg.HandshakeTimeout = 30 * time.Second
		cfg.HeartbeatInterval = time.Second
		cfg.UnreachableAfter = 10 * time.Second
		return cfg
	}
	b := startNode(t, slow(onMemnet(t, n, testConfig(t, nil))))
	acfg := slow(onMemnet(t, n, testConfig(t, nil, b.LocalAddr())))
	n.SetLink(acfg.Conn.LocalAddr(), netip.MustParseAddrPort(b.LocalAddr()), memnet.Link{Latency: 1200 * time.Millisecond})
	a := startNode(t, acfg)
	eventually(t, "a session from a to b over the slow path", func() bool {
		p, ok := peerInfo(a, b.Self())
		return ok && p.Session
	})
}
