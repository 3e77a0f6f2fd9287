package gossip

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deck-mesh/deck/demo/faultconn"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/nodetest"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/node/transport"
)

var udpTestPSK = [32]byte{'d', 'e', 'c', 'k', '-', 'g', 'o', 's', 's', 'i', 'p', '-', 't', 'e', 's', 't'}

// startUDPMesh starts n real transports on 127.0.0.1 (Noise sessions, UDP)
// and a Gossip on each. With ring set, node i joins through node i-1 (the
// last node also through node 0) and its socket (wrapped in the demo's
// fault wrapper) blocks every node but its two ring neighbours, so all
// other traffic is relayed around the ring. It returns once every node sees every other as
// Healthy.
func startUDPMesh(t testing.TB, n int, ring bool, mutate func(*Config)) *cluster {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	c := &cluster{}
	var trs []*transport.Transport
	for i := range n {
		k := testKey(t, 100+i)
		c.keys = append(c.keys, k)
	}
	for i, k := range c.keys {
		cfg := transport.Config{Key: k, PSK: udpTestPSK, ListenAddr: "127.0.0.1:0", HandshakeTimeout: 5 * time.Second,
			Logf: func(string, ...any) {}}
		if i > 0 {
			join := 0
			if ring {
				join = i - 1
			}
			cfg.Bootstrap = []string{trs[join].LocalAddr()}
			if ring && i == n-1 {
				// Close the ring: the transport only makes a link direct
				// through a bootstrap or a verified address, not for a
				// peer it reaches through relays.
				cfg.Bootstrap = append(cfg.Bootstrap, trs[0].LocalAddr())
			}
		}
		if ring {
			udp, err := transport.ListenUDP(cfg.ListenAddr)
			if err != nil {
				t.Fatal(err)
			}
			fc := faultconn.New(udp)
			for j, other := range c.keys {
				if d := (i - j + n) % n; d != 0 && d != 1 && d != n-1 {
					fc.Block(other.ID, true)
				}
			}
			cfg.Conn = fc
		}
		tr, err := transport.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		tr.Start(ctx)
		t.Cleanup(func() { tr.Close() })
		trs = append(trs, tr)
	}
	nodetest.Eventually(t, "every transport to see every peer healthy (in a ring: two of them direct)", func() bool {
		for _, tr := range trs {
			peers := tr.Peers()
			if len(peers) != n-1 {
				return false
			}
			direct := 0
			for _, p := range peers {
				if p.Health != snapshot.Healthy {
					return false
				}
				if p.Direct {
					direct++
				}
			}
			if ring && direct != 2 {
				return false // not a ring (yet): relays not in place
			}
		}
		return true
	})
	for i, tr := range trs {
		cfg := Config{Key: c.keys[i], Messenger: tr, Seed: uint64(i + 1)}
		if mutate != nil {
			mutate(&cfg)
		}
		g, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.gs = append(c.gs, g)
	}
	for _, g := range c.gs {
		wg.Go(func() { _ = g.Run(ctx) })
	}
	return c
}

// TestConvergenceOverUDPTransport runs gossip over the real transport: five
// nodes on 127.0.0.1 with Noise sessions; every snapshot reaches every node
// and a change follows.
func TestConvergenceOverUDPTransport(t *testing.T) {
	if testing.Short() {
		t.Skip("real UDP mesh")
	}
	const n = 5
	c := startUDPMesh(t, n, false, nil)
	gen := slices.Repeat([]uint64{1}, n)
	for i, g := range c.gs {
		if err := g.Publish(nodeSnapshot(c.keys[i].ID, 1, 50, time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	nodetest.Eventually(t, "5 nodes to hold 5 snapshots over UDP", func() bool { return c.converged(gen) })
	gen[2] = 2
	if err := c.gs[2].Publish(nodeSnapshot(c.keys[2].ID, 2, 50, time.Now())); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, "the change to reach every node", func() bool { return c.converged(gen) })
	for i, g := range c.gs {
		if s := g.Stats(); s.Rejected != 0 || s.MalformedMessages != 0 {
			t.Fatalf("node %d rejected honest traffic: %+v", i, s)
		}
	}
	// What the cluster view folds (node/clusterview): a fresh snapshot of
	// every node and every peer healthy in the real transport's view.
	self := c.gs[0]
	if latest := self.Latest(); len(latest) != n {
		t.Fatalf("node 0 holds %d snapshots", len(latest))
	}
	peers := self.cfg.Messenger.Peers()
	if len(peers) != n-1 {
		t.Fatalf("node 0's transport knows %d peers", len(peers))
	}
	for _, p := range peers {
		if p.Health != snapshot.Healthy {
			t.Fatalf("peer %s: health %s", p.ID, p.Health)
		}
	}
}

// BenchmarkConvergence16RingUDP is BenchmarkConvergence16Ring over the real
// transport: 16 nodes on 127.0.0.1 in a ring (each blocks all but its two
// neighbours, so most sends are relayed), Noise sessions, fragmentation of
// the ~2 KiB envelopes. Reports p50/p90/p99 in ms.
func BenchmarkConvergence16RingUDP(b *testing.B) {
	c := startUDPMesh(b, 16, true, benchPublishFast)
	measureConvergence(b, c)
}

// measureConvergence publishes one change per iteration (round robin over
// the nodes) and records when the last other node holds it.
func measureConvergence(b *testing.B, c *cluster) {
	n := len(c.gs)
	for i, g := range c.gs {
		if err := g.Publish(nodeSnapshot(c.keys[i].ID, 1, 10, time.Now())); err != nil {
			b.Fatal(err)
		}
	}
	gen := slices.Repeat([]uint64{1}, n)
	nodetest.Eventually(b, "initial convergence", func() bool { return c.converged(gen) })

	type target struct {
		id  identity.NodeID
		gen uint64
	}
	var cur atomic.Pointer[target]
	cur.Store(&target{})
	arrived := make(chan time.Time, n*4)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for _, g := range c.gs {
		wg.Go(func() {
			var reported *target
			for {
				select {
				case <-ctx.Done():
					return
				case <-g.Changes():
				}
				tg := cur.Load()
				if tg == reported || tg.id == g.self {
					continue
				}
				for _, v := range g.Latest() {
					if v.Snapshot.ID == tg.id && v.Snapshot.Generation >= tg.gen {
						reported = tg
						arrived <- time.Now()
						break
					}
				}
			}
		})
	}

	var lat []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		o := i % n
		gen[o]++
		ns := nodeSnapshot(c.keys[o].ID, gen[o], 10, time.Now())
		cur.Store(&target{c.keys[o].ID, gen[o]})
		start := time.Now()
		if err := c.gs[o].Publish(ns); err != nil {
			b.Fatal(err)
		}
		var last time.Time
		timeout := time.After(30 * time.Second)
		for range n - 1 {
			select {
			case last = <-arrived:
			case <-timeout:
				b.Fatalf("change %d did not converge in 30 s", i)
			}
		}
		lat = append(lat, last.Sub(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.90), "p90-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
