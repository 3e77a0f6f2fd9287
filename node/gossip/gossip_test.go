package gossip

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging/messagingtest"
	"github.com/deck-mesh/deck/node/nodetest"
	"github.com/deck-mesh/deck/node/snapshot"
)

// rig is one Gossip on a hub of n nodes (keys 0..n-1; the Gossip is node 0),
// driven synchronously: tests call receive/maybePublish/onTick directly
// and read what it queued from g.out.
type rig struct {
	h     *messagingtest.Hub
	keys  []*identity.Key
	g     *Gossip
	clock *nodetest.Clock
}

func newRig(t testing.TB, n int, mutate func(*Config)) *rig {
	t.Helper()
	r := &rig{h: messagingtest.NewHub(t, messagingtest.Config{Ring: true}), clock: nodetest.NewClock(testNow)}
	for i := range n {
		k := testKey(t, i)
		r.keys = append(r.keys, k)
		r.h.Join(k.ID)
	}
	cfg := Config{Key: r.keys[0], Messenger: r.h.Node(r.keys[0].ID), Clock: r.clock.Now, Seed: 1}
	if mutate != nil {
		mutate(&cfg)
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.g = g
	return r
}

// envMsg is a gossip envelope message from key i.
func (r *rig) envMsg(t testing.TB, i int, gen, epoch, seq uint64, signedAt time.Time, hops uint8) []byte {
	t.Helper()
	raw, err := Seal(r.keys[i], nodeSnapshot(r.keys[i].ID, gen, 3, signedAt), epoch, seq, signedAt)
	if err != nil {
		t.Fatal(err)
	}
	return appendEnvelopeMsg(nil, hops, raw)
}

func (r *rig) deliver(from int, msg []byte) { r.g.receive(inMsg{from: r.keys[from].ID, data: msg}) }

// drain empties the outbox and returns what was queued.
func (r *rig) drain() []outMsg {
	var out []outMsg
	for {
		select {
		case m := <-r.g.out:
			out = append(out, m)
		default:
			return out
		}
	}
}

func (r *rig) latest(id identity.NodeID) *Verified {
	for _, v := range r.g.Latest() {
		if v.Snapshot.ID == id {
			return &v
		}
	}
	return nil
}

func changed(g *Gossip) bool {
	select {
	case <-g.Changes():
		return true
	default:
		return false
	}
}

func TestReceiveAcceptsVerifiesAndDedups(t *testing.T) {
	r := newRig(t, 8, nil)
	msg := r.envMsg(t, 1, 3, 100, 1, testNow, 0)
	r.deliver(2, msg)
	v := r.latest(r.keys[1].ID)
	if v == nil || v.Snapshot.Generation != 3 || v.Epoch != 100 || v.Seq != 1 || !v.ReceivedAt.Equal(testNow) {
		t.Fatalf("latest = %+v", v)
	}
	if !changed(r.g) {
		t.Fatal("no change signalled for a new node")
	}
	if out := r.drain(); len(out) != DefaultFanout {
		t.Fatalf("forwarded to %d peers, want %d", len(out), DefaultFanout)
	} else {
		for _, m := range out {
			if m.to == r.keys[1].ID || m.to == r.keys[2].ID || m.to == r.keys[0].ID {
				t.Fatalf("forwarded back to signer, sender or self (%s)", m.to)
			}
			if m.data[0] != msgEnvelope || m.data[1] != 1 {
				t.Fatalf("forward header % x", m.data[:2])
			}
		}
	}
	r.deliver(3, msg)
	r.deliver(4, msg)
	s := r.g.Stats()
	if s.Received != 3 || s.Accepted != 1 || s.Duplicates != 2 || s.Rejected != 0 || s.Nodes != 1 {
		t.Fatalf("stats %+v", s)
	}
	if len(r.drain()) != 0 || changed(r.g) {
		t.Fatal("a duplicate was forwarded or signalled")
	}
}

func TestHopLimit(t *testing.T) {
	tests := []struct {
		hops         uint8
		accepted     bool
		wantForwards int
	}{
		{0, true, DefaultFanout},
		{DefaultMaxHops - 2, true, DefaultFanout},
		{DefaultMaxHops - 1, true, 0},
		{DefaultMaxHops, true, 0},
		{HardMaxHops, true, 0},
		{HardMaxHops + 1, false, 0},
		{255, false, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.hops), func(t *testing.T) {
			r := newRig(t, 8, nil)
			r.deliver(2, r.envMsg(t, 1, 1, 1, 1, testNow, tt.hops))
			s := r.g.Stats()
			if got := s.Accepted == 1; got != tt.accepted {
				t.Fatalf("accepted %v, want %v (stats %+v)", got, tt.accepted, s)
			}
			if !tt.accepted && s.Rejected != 1 {
				t.Fatalf("not counted as rejected: %+v", s)
			}
			if out := r.drain(); len(out) != tt.wantForwards {
				t.Fatalf("%d forwards, want %d", len(out), tt.wantForwards)
			} else {
				for _, m := range out {
					if m.data[1] != tt.hops+1 {
						t.Fatalf("forwarded with hops %d", m.data[1])
					}
				}
			}
		})
	}
}

func TestAnnouncementOrdering(t *testing.T) {
	const epoch = 1000
	stale := DefaultStaleAfter + time.Second
	tests := []struct {
		name                string
		gen, epoch, seq     uint64
		signedAt, receiveAt time.Duration // offsets from testNow
		wantAccepted        bool
		wantGen             uint64
	}{
		{"newer seq, same generation (re-announce)", 7, epoch, 6, time.Second, time.Second, true, 7},
		{"newer seq, newer generation", 8, epoch, 6, time.Second, time.Second, true, 8},
		{"older seq", 6, epoch, 4, 0, time.Second, false, 7},
		{"restarted node: generation reset, later epoch", 0, epoch + 1, 1, time.Second, time.Second, true, 0},
		{"earlier epoch while the node is live", 9, epoch - 1, 99, time.Second, time.Second, false, 7},
		{"earlier epoch, node silent, signed later (clock stepped back across a restart)",
			1, epoch - 1, 1, stale, stale, true, 1},
		{"earlier epoch, node silent, signed earlier (a replay)", 9, epoch - 1, 99, -time.Second, stale, false, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, 4, nil)
			r.deliver(1, r.envMsg(t, 1, 7, epoch, 5, testNow, 0))
			r.clock.Set(testNow.Add(tt.receiveAt))
			r.deliver(2, r.envMsg(t, 1, tt.gen, tt.epoch, tt.seq, testNow.Add(tt.signedAt), 0))
			s := r.g.Stats()
			if got := s.Accepted == 2; got != tt.wantAccepted {
				t.Fatalf("accepted %v, want %v (stats %+v)", got, tt.wantAccepted, s)
			}
			if !tt.wantAccepted && s.Outdated != 1 {
				t.Fatalf("refusal not counted as outdated: %+v", s)
			}
			if v := r.latest(r.keys[1].ID); v.Snapshot.Generation != tt.wantGen {
				t.Fatalf("generation %d, want %d", v.Snapshot.Generation, tt.wantGen)
			}
		})
	}
}

func TestEnvelopeClockChecks(t *testing.T) {
	tests := []struct {
		name     string
		signedAt time.Duration
		check    func(Stats) bool
	}{
		{"slightly ahead", 30 * time.Second, func(s Stats) bool { return s.Accepted == 1 }},
		{"far in the future", MaxClockSkew + time.Second, func(s Stats) bool { return s.Rejected == 1 }},
		{"older than MaxEnvelopeAge", -MaxEnvelopeAge - time.Second, func(s Stats) bool { return s.Expired == 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, 3, nil)
			r.deliver(1, r.envMsg(t, 1, 1, 1, 1, testNow.Add(tt.signedAt), 0))
			if s := r.g.Stats(); !tt.check(s) {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func TestForgedEnvelopeNeitherStoredNorForwarded(t *testing.T) {
	r := newRig(t, 6, nil)
	attacker, victim := r.keys[1], r.keys[2]
	forged := craft(t, attacker.ID, attacker.Public, attacker, SnapshotDomain, victim.ID, 5)
	r.deliver(1, appendEnvelopeMsg(nil, 0, forged))
	if s := r.g.Stats(); s.Rejected != 1 || s.Accepted != 0 || s.LastReject == "" {
		t.Fatalf("stats %+v", s)
	}
	if len(r.g.Latest()) != 0 || len(r.drain()) != 0 {
		t.Fatal("forged envelope stored or forwarded")
	}
	// Our own id coming back is never accepted from anyone.
	raw, err := Seal(r.keys[0], nodeSnapshot(r.keys[0].ID, 1, 1, testNow), r.g.Epoch()+1, 1, testNow)
	if err != nil {
		t.Fatal(err)
	}
	r.deliver(1, appendEnvelopeMsg(nil, 0, raw))
	if s := r.g.Stats(); s.Duplicates != 1 || len(r.g.Latest()) != 0 {
		t.Fatalf("own id from the wire: %+v", s)
	}
}

func TestMalformedMessages(t *testing.T) {
	r := newRig(t, 3, nil)
	for _, msg := range [][]byte{
		{},
		{msgEnvelope},
		{9, 0, 1},
		{msgDigest, 0, 5},
		{msgEnvelope, 0, 1, 2, 3},
		make([]byte, maxGossipMessageBytes+1),
	} {
		r.g.handle(r.keys[1].ID, msg)
	}
	for len(r.g.inbox) > 0 {
		r.g.receive(<-r.g.inbox)
	}
	s := r.g.Stats()
	if s.MalformedMessages != 5 || s.Rejected != 1 || s.Accepted != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestNodeTableCapped(t *testing.T) {
	r := newRig(t, 4, nil)
	// Fill the table to one below the cap with placeholder entries, so the
	// test does not need MaxNodes real keys.
	r.g.mu.Lock()
	for i := range MaxNodes - 1 {
		id := identity.NodeID(1_000_000 + i)
		r.g.latest[id] = &entry{Verified: Verified{Snapshot: &snapshot.NodeSnapshot{ID: id}, ReceivedAt: testNow}}
	}
	r.g.mu.Unlock()
	r.deliver(1, r.envMsg(t, 1, 1, 1, 1, testNow, 0))
	r.deliver(1, r.envMsg(t, 2, 1, 1, 1, testNow, 0))
	// A known node still updates at the cap.
	r.deliver(1, r.envMsg(t, 1, 2, 1, 2, testNow, 0))
	s := r.g.Stats()
	if s.Accepted != 2 || s.Overflow != 1 || s.Nodes != MaxNodes {
		t.Fatalf("stats %+v", s)
	}
}

func TestSeenCacheEvictsOldest(t *testing.T) {
	c := newSeenCache(3)
	for i := range 5 {
		c.add(seenKey{node: identity.NodeID(i + 1)})
	}
	c.add(seenKey{node: 5}) // re-adding must not evict
	for i, want := range []bool{false, false, true, true, true} {
		if got := c.has(seenKey{node: identity.NodeID(i + 1)}); got != want {
			t.Fatalf("node %d present %v, want %v", i+1, got, want)
		}
	}
	if len(c.set) != 3 {
		t.Fatalf("%d entries", len(c.set))
	}
}

func TestPublishSchedule(t *testing.T) {
	r := newRig(t, 6, nil)
	id := r.keys[0].ID
	published := func() uint64 { return r.g.Stats().Published }
	at := func(d time.Duration) { r.clock.Set(testNow.Add(d)); r.g.maybePublish(r.clock.Now()) }

	if err := r.g.Publish(nodeSnapshot(id, 1, 3, testNow)); err != nil {
		t.Fatal(err)
	}
	if v := r.latest(id); v == nil || v.Snapshot.Generation != 1 {
		t.Fatal("own snapshot not in Latest before it is signed")
	}
	const noForward = DefaultMaxHops - 1
	steps := []struct {
		name     string
		publish  *snapshot.NodeSnapshot
		at       time.Duration
		want     uint64
		wantHops uint8 // of the messages sent, when one was published
	}{
		// Six nodes: the origin reaches all five peers itself, so nothing
		// it sends is forwarded (TestOriginForwardingOnlyWhenFanoutLimits).
		{"first publication goes to every peer (5 < OriginFanout)", nil, 0, 1, noForward},
		{"new generation inside the rate limit waits", nodeSnapshot(id, 2, 3, testNow), 100 * time.Millisecond, 1, noForward},
		{"and goes out when it expires", nil, DefaultMinPublishInterval, 2, noForward},
		{"same bytes again is no change", nodeSnapshot(id, 2, 3, testNow), 2 * DefaultMinPublishInterval, 2, noForward},
		{"same generation, new gauges: not urgent", func() *snapshot.NodeSnapshot {
			ns := nodeSnapshot(id, 2, 3, testNow)
			ns.Resources.CPULoad = 0.99
			return ns
		}(), 3 * DefaultMinPublishInterval, 2, noForward},
		{"re-announce carries it", nil, DefaultMinPublishInterval + DefaultReannounceInterval, 3, noForward},
		{"quiet before the next re-announce", nil, DefaultMinPublishInterval + 2*DefaultReannounceInterval - time.Millisecond, 3, noForward},
		{"re-announce without change", nil, DefaultMinPublishInterval + 2*DefaultReannounceInterval, 4, noForward},
	}
	var last outMsg
	for _, st := range steps {
		if st.publish != nil {
			if err := r.g.Publish(st.publish); err != nil {
				t.Fatal(err)
			}
		}
		before := published()
		at(st.at)
		if got := published(); got != st.want {
			t.Fatalf("%s: published %d, want %d", st.name, got, st.want)
		}
		out := r.drain()
		if st.want == before {
			if len(out) != 0 {
				t.Fatalf("%s: %d messages without a publication", st.name, len(out))
			}
			continue
		}
		if len(out) != len(r.keys)-1 {
			t.Fatalf("%s: sent to %d peers, want %d", st.name, len(out), len(r.keys)-1)
		}
		for _, m := range out {
			if m.data[1] != st.wantHops {
				t.Fatalf("%s: hops %d, want %d", st.name, m.data[1], st.wantHops)
			}
		}
		last = out[0]
	}
	v := r.latest(id)
	if v.Seq != 4 || v.Epoch != r.g.Epoch() || v.Snapshot.Resources.CPULoad != 0.99 {
		t.Fatalf("own entry %+v", v)
	}
	// What went out verifies and carries the latest content.
	env, err := Open(last.data[2:])
	if err != nil || env.Seq != 4 || env.Snapshot.Resources.CPULoad != 0.99 {
		t.Fatalf("sent envelope: %+v, %v", env, err)
	}
}

// TestOriginForwardingOnlyWhenFanoutLimits: a new announcement is marked
// for forwarding only when the origin could not send it to every peer it
// knows; a re-announcement of unchanged content never is.
func TestOriginForwardingOnlyWhenFanoutLimits(t *testing.T) {
	const noForward = DefaultMaxHops - 1
	for _, tc := range []struct {
		name     string
		fanout   int
		wantSent int
		wantHops uint8
	}{
		{"fanout below the peers: receivers forward", 3, 3, 0},
		{"fanout covers every peer: no forwarding", 5, 5, noForward},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, 6, func(c *Config) { c.OriginFanout = tc.fanout })
			id := r.keys[0].ID
			if err := r.g.Publish(nodeSnapshot(id, 1, 3, testNow)); err != nil {
				t.Fatal(err)
			}
			r.g.maybePublish(r.clock.Now())
			out := r.drain()
			if len(out) != tc.wantSent {
				t.Fatalf("sent to %d peers, want %d", len(out), tc.wantSent)
			}
			for _, m := range out {
				if m.data[1] != tc.wantHops {
					t.Fatalf("hops %d, want %d", m.data[1], tc.wantHops)
				}
			}
			// Unchanged content re-announced: never forwarded.
			r.clock.Set(testNow.Add(DefaultReannounceInterval))
			r.g.maybePublish(r.clock.Now())
			for _, m := range r.drain() {
				if m.data[1] != noForward {
					t.Fatalf("re-announce hops %d, want %d", m.data[1], noForward)
				}
			}
		})
	}
}

func TestPublishRefusesAnotherNodesSnapshot(t *testing.T) {
	r := newRig(t, 2, nil)
	if err := r.g.Publish(nodeSnapshot(r.keys[1].ID, 1, 1, testNow)); !errors.Is(err, ErrSnapshotIDMismatch) {
		t.Fatalf("Publish: %v", err)
	}
	ns := nodeSnapshot(r.keys[0].ID, 1, MaxDaemonsPerSnapshot+3, testNow)
	if err := r.g.Publish(ns); err != nil {
		t.Fatalf("oversized snapshot not fitted: %v", err)
	}
	if s := r.g.Stats(); s.Trimmed != 3 {
		t.Fatalf("trimmed %d", s.Trimmed)
	}
}

func TestStaleSignalAndForget(t *testing.T) {
	r := newRig(t, 3, nil)
	r.deliver(1, r.envMsg(t, 1, 1, 1, 1, testNow, 0))
	changed(r.g)
	steps := []struct {
		at         time.Duration
		wantSignal bool
		wantNodes  int
	}{
		{DefaultStaleAfter, false, 1},
		{DefaultStaleAfter + time.Millisecond, true, 1},
		{DefaultStaleAfter + time.Second, false, 1}, // signalled once
		{DefaultForgetAfter + time.Millisecond, true, 0},
	}
	for _, st := range steps {
		r.clock.Set(testNow.Add(st.at))
		r.g.lastSweep = time.Time{}
		r.g.onTick()
		if got := changed(r.g); got != st.wantSignal {
			t.Fatalf("at %v: signal %v, want %v", st.at, got, st.wantSignal)
		}
		if n := len(r.g.Latest()); n != st.wantNodes {
			t.Fatalf("at %v: %d nodes, want %d", st.at, n, st.wantNodes)
		}
	}
}

func TestDigestExchange(t *testing.T) {
	r := newRig(t, 4, nil)
	// g holds node 1's envelope; node 2 asks with an empty digest.
	r.deliver(1, r.envMsg(t, 1, 1, 1, 1, testNow, DefaultMaxHops))
	r.drain()
	r.deliver(2, appendDigestMsg(nil, 0, nil))
	out := r.drain()
	if len(out) != 1 || out[0].to != r.keys[2].ID || out[0].data[0] != msgEnvelope || out[0].data[1] != DefaultMaxHops {
		t.Fatalf("pull answer %+v", out)
	}
	if env, err := Open(out[0].data[2:]); err != nil || env.Signer != r.keys[1].ID {
		t.Fatalf("pulled envelope: %v", err)
	}
	// A second digest right away is rate limited.
	r.deliver(2, appendDigestMsg(nil, 0, nil))
	if s := r.g.Stats(); s.DigestsLimited != 1 || len(r.drain()) != 0 {
		t.Fatalf("stats %+v", s)
	}
	// A peer with something newer gets our digest back, flagged as a reply;
	// a reply never gets one.
	r.clock.Set(testNow.Add(time.Second))
	newer := []digestEntry{{node: r.keys[1].ID, epoch: 1, seq: 2}}
	r.deliver(3, appendDigestMsg(nil, 0, newer))
	out = r.drain()
	if len(out) != 1 || out[0].data[0] != msgDigest || out[0].data[1] != digestReply || out[0].to != r.keys[3].ID {
		t.Fatalf("digest reply %+v", out)
	}
	r.deliver(3, appendDigestMsg(nil, digestReply, newer))
	if out := r.drain(); len(out) != 0 {
		t.Fatalf("answered a reply with %d messages", len(out))
	}
	// Equal state: nothing to send.
	r.clock.Set(testNow.Add(2 * time.Second))
	r.deliver(3, appendDigestMsg(nil, 0, []digestEntry{{node: r.keys[1].ID, epoch: 1, seq: 1}}))
	if out := r.drain(); len(out) != 0 {
		t.Fatalf("in-sync digest answered with %d messages", len(out))
	}
}

// cluster runs n Gossips over a hub with the real clock.
type cluster struct {
	h      *messagingtest.Hub
	keys   []*identity.Key
	gs     []*Gossip
	stops  []func() // stop node i's Run and wait for it
	mutate func(*Config)
}

func startCluster(t testing.TB, n int, mutate func(*Config)) *cluster {
	t.Helper()
	c := &cluster{h: messagingtest.NewHub(t, messagingtest.Config{Ring: true}), mutate: mutate}
	for i := range n {
		k := testKey(t, i)
		c.keys = append(c.keys, k)
		c.h.Join(k.ID)
		c.gs = append(c.gs, nil)
		c.stops = append(c.stops, nil)
	}
	for i := range n {
		c.start(t, i)
	}
	return c
}

// start runs a fresh Gossip (a new incarnation) for node i on its hub
// messenger, stopping the previous one first.
func (c *cluster) start(t testing.TB, i int) {
	t.Helper()
	if c.stops[i] != nil {
		c.stops[i]()
	}
	cfg := Config{Key: c.keys[i], Messenger: c.h.Node(c.keys[i].ID), Seed: uint64(i + 1), Tick: 10 * time.Millisecond}
	if c.mutate != nil {
		c.mutate(&cfg)
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := g.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	c.gs[i], c.stops[i] = g, stop
}

// converged reports whether every node holds generation gen[i] of node i.
func (c *cluster) converged(gen []uint64) bool {
	want := make(map[identity.NodeID]uint64, len(c.keys))
	for i, k := range c.keys {
		want[k.ID] = gen[i]
	}
	for _, g := range c.gs {
		l := g.Latest()
		if len(l) != len(c.gs) {
			return false
		}
		for _, v := range l {
			if v.Snapshot.Generation != want[v.Snapshot.ID] {
				return false
			}
		}
	}
	return true
}

func TestConvergence16Nodes(t *testing.T) {
	const n = 16
	c := startCluster(t, n, nil)
	gen := make([]uint64, n)
	for i, g := range c.gs {
		gen[i] = 1
		if err := g.Publish(nodeSnapshot(c.keys[i].ID, 1, 10, time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	nodetest.Eventually(t, "all 16 nodes to hold all 16 snapshots", func() bool { return c.converged(gen) })

	// A change on one node reaches every other.
	gen[5] = 2
	if err := c.gs[5].Publish(nodeSnapshot(c.keys[5].ID, 2, 11, time.Now())); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, "generation 2 of node 5 everywhere", func() bool { return c.converged(gen) })

	var total Stats
	for _, g := range c.gs {
		s := g.Stats()
		total.Accepted += s.Accepted
		total.Rejected += s.Rejected
		total.Duplicates += s.Duplicates
		total.MalformedMessages += s.MalformedMessages
	}
	if total.Rejected != 0 || total.MalformedMessages != 0 {
		t.Fatalf("honest cluster rejected messages: %+v", total)
	}
	if total.Accepted < n*(n-1) {
		t.Fatalf("accepted %d < %d", total.Accepted, n*(n-1))
	}
}

// TestAntiEntropyHealsMissedPush: a node that was down when a snapshot was
// pushed gets it from a digest exchange, with re-announcement out of the
// picture.
func TestAntiEntropyHealsMissedPush(t *testing.T) {
	c := startCluster(t, 4, func(cfg *Config) {
		cfg.ReannounceInterval = time.Hour
		cfg.DigestInterval = 50 * time.Millisecond
	})
	late := c.keys[3].ID
	c.h.SetDown(late, true)
	for i := range 3 {
		if err := c.gs[i].Publish(nodeSnapshot(c.keys[i].ID, 1, 2, time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	nodetest.Eventually(t, "the three live nodes to converge", func() bool {
		for i := range 3 {
			if len(c.gs[i].Latest()) != 3 {
				return false
			}
		}
		return true
	})
	if n := len(c.gs[3].Latest()); n != 0 {
		t.Fatalf("down node holds %d snapshots", n)
	}
	c.h.SetDown(late, false)
	nodetest.Eventually(t, "the late node to pull all three", func() bool { return len(c.gs[3].Latest()) == 3 })
	var pulled uint64
	for _, g := range c.gs {
		pulled += g.Stats().Pulled
	}
	if pulled == 0 {
		t.Fatal("converged without a pull")
	}
}

func TestRunTwiceRefused(t *testing.T) {
	r := newRig(t, 2, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var done atomic.Bool
	go func() { _ = r.g.Run(ctx); done.Store(true) }()
	nodetest.Eventually(t, "Run to start", func() bool { return r.g.running.Load() })
	if err := r.g.Run(ctx); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run: %v", err)
	}
	cancel()
	nodetest.Eventually(t, "Run to return", done.Load)
}

// TestRestartedNodeAcceptedEverywhere: a node restarts (new process, new
// epoch) and its generation counter starts over at 1, below the 5 every
// peer holds; the new incarnation must still replace the old one.
func TestRestartedNodeAcceptedEverywhere(t *testing.T) {
	const n = 6
	c := startCluster(t, n, nil)
	gen := slices.Repeat([]uint64{5}, n)
	for i, g := range c.gs {
		if err := g.Publish(nodeSnapshot(c.keys[i].ID, 5, 2, time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	nodetest.Eventually(t, "initial convergence", func() bool { return c.converged(gen) })
	oldEpoch := c.gs[3].Epoch()
	nodetest.Eventually(t, "the clock to move past the old epoch", func() bool {
		return uint64(time.Now().UnixNano()) > oldEpoch
	})
	c.start(t, 3)
	if c.gs[3].Epoch() <= oldEpoch {
		t.Fatalf("new epoch %d not after %d", c.gs[3].Epoch(), oldEpoch)
	}
	gen[3] = 1
	if err := c.gs[3].Publish(nodeSnapshot(c.keys[3].ID, 1, 2, time.Now())); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, "generation 1 of the restarted node everywhere", func() bool {
		// The restarted node itself starts empty; it learns the others
		// from their pushes and digests.
		return c.converged(gen)
	})
}

// TestNewRefusesBadConfig: a missing key or messenger, or a messenger that
// is another node's, is an error from New, not a panic.
func TestNewRefusesBadConfig(t *testing.T) {
	h := messagingtest.NewHub(t, messagingtest.Config{Ring: true})
	k0, k1 := testKey(t, 0), testKey(t, 1)
	h.Join(k0.ID)
	h.Join(k1.ID)
	for name, cfg := range map[string]Config{
		"no key":       {Messenger: h.Node(k0.ID)},
		"no messenger": {Key: k0},
		"other node":   {Key: k0, Messenger: h.Node(k1.ID)},
	} {
		if g, err := New(cfg); !errors.Is(err, ErrConfig) || g != nil {
			t.Errorf("%s: New = %v, %v; want ErrConfig", name, g, err)
		}
	}
}

// TestAttackSnapshotAttributesEntriesToAnotherNode: a member signs, with its
// own key and its own id, a snapshot whose daemon list puts a daemon on
// another node (or whose failures are another node's). The console shows
// daemons and failures under the node their entry names, so the member
// would be speaking for the victim. Such an envelope is refused before it
// is stored or forwarded; Seal and Publish refuse to make one.
func TestAttackSnapshotAttributesEntriesToAnotherNode(t *testing.T) {
	r := newRig(t, 6, nil)
	attacker, victim := r.keys[1], r.keys[2]
	daemonElsewhere := nodeSnapshot(attacker.ID, 5, 3, testNow)
	daemonElsewhere.Daemons[1].Node = victim.ID
	failureElsewhere := nodeSnapshot(attacker.ID, 6, 3, testNow)
	failureElsewhere.Failures = []snapshot.Failure{{Seq: 1, At: testNow, Node: victim.ID, Source: "daemon", Reason: "victim crashed"}}
	for i, ns := range []*snapshot.NodeSnapshot{daemonElsewhere, failureElsewhere} {
		enc, err := EncodeSnapshot(ns)
		if err != nil {
			t.Fatal(err)
		}
		raw := sealEncoded(attacker, nil, enc, ns.Generation, 1, uint64(i+1), testNow)
		if _, err := Open(raw); !errors.Is(err, ErrSnapshotClaimsOtherNode) {
			t.Fatalf("snapshot %d: Open = %v, want ErrSnapshotClaimsOtherNode", i, err)
		}
		r.deliver(1, appendEnvelopeMsg(nil, 0, raw))
		if _, err := Seal(attacker, ns, 1, 9, testNow); !errors.Is(err, ErrSnapshotClaimsOtherNode) {
			t.Fatalf("snapshot %d: Seal = %v, want ErrSnapshotClaimsOtherNode", i, err)
		}
	}
	if s := r.g.Stats(); s.Rejected != 2 || s.Accepted != 0 {
		t.Fatalf("stats %+v", s)
	}
	if r.latest(attacker.ID) != nil || len(r.drain()) != 0 {
		t.Fatal("an envelope speaking for another node was stored or forwarded")
	}
	own := nodeSnapshot(r.keys[0].ID, 1, 2, testNow)
	own.Daemons[0].Node = victim.ID
	if err := r.g.Publish(own); !errors.Is(err, ErrSnapshotClaimsOtherNode) {
		t.Fatalf("Publish = %v, want ErrSnapshotClaimsOtherNode", err)
	}
	// Control: the same snapshot describing only its signer is accepted.
	daemonElsewhere.Daemons[1].Node = attacker.ID
	r.deliver(1, r.envFor(t, attacker, daemonElsewhere))
	if r.latest(attacker.ID) == nil {
		t.Fatalf("honest snapshot refused: %s", r.g.Stats().LastReject)
	}
}

// envFor seals ns with key as an envelope message.
func (r *rig) envFor(t testing.TB, key *identity.Key, ns *snapshot.NodeSnapshot) []byte {
	t.Helper()
	raw, err := Seal(key, ns, 2, 1, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return appendEnvelopeMsg(nil, 0, raw)
}
