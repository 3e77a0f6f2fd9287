package gossip

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging/messagingtest"
	"github.com/deck-mesh/deck/node/nodetest"
)

// syncMesh is n Gossips (keys 0..n-1) on a hub, driven synchronously like
// rig: no Run goroutines, no ticks, one clock that moves only when told.
// The hub supplies each node's peer list; pump delivers every queued
// message by calling the receiver's receive, in FIFO order, until every
// outbox is empty, so a test counts exactly what was sent. The hub also
// holds the keys of nodes that run no Gossip (an attacker).
type syncMesh struct {
	h     *messagingtest.Hub
	keys  []*identity.Key
	gs    map[identity.NodeID]*Gossip
	clock *nodetest.Clock
	fifo  []outFrom
	// sends counts envelope messages sent, by the envelope's signer.
	sends map[identity.NodeID]int
}

type outFrom struct {
	from identity.NodeID
	outMsg
}

func newSyncMesh(t testing.TB, gossips, others int) *syncMesh {
	t.Helper()
	m := &syncMesh{h: messagingtest.NewHub(t, messagingtest.Config{}), gs: map[identity.NodeID]*Gossip{},
		clock: nodetest.NewClock(testNow), sends: map[identity.NodeID]int{}}
	for i := range gossips + others {
		k := testKey(t, i)
		m.keys = append(m.keys, k)
		m.h.Join(k.ID)
	}
	for _, k := range m.keys[:gossips] {
		g, err := New(Config{Key: k, Messenger: m.h.Node(k.ID), Clock: m.clock.Now, Seed: uint64(k.ID)})
		if err != nil {
			t.Fatal(err)
		}
		m.gs[k.ID] = g
	}
	return m
}

// send queues msg from node from to node to, as if sent on the mesh.
func (m *syncMesh) send(from, to identity.NodeID, msg []byte) {
	m.fifo = append(m.fifo, outFrom{from, outMsg{to: to, data: msg}})
}

// pump delivers until nothing is queued anywhere.
func (m *syncMesh) pump() {
	m.collect()
	for len(m.fifo) > 0 {
		o := m.fifo[0]
		m.fifo = m.fifo[1:]
		if o.data[0] == msgEnvelope && len(o.data) >= 2+9 {
			m.sends[identity.NodeID(binary.BigEndian.Uint64(o.data[3:11]))]++
		}
		if g := m.gs[o.to]; g != nil {
			g.receive(inMsg{from: o.from, data: o.data})
		}
		m.collect()
	}
}

// collect moves every Gossip's outbox into the FIFO.
func (m *syncMesh) collect() {
	for id, g := range m.gs {
		for {
			select {
			case o := <-g.out:
				m.fifo = append(m.fifo, outFrom{id, o})
				continue
			default:
			}
			break
		}
	}
}

func (m *syncMesh) total(f func(Stats) uint64) (sum uint64, most uint64) {
	for _, g := range m.gs {
		v := f(g.Stats())
		sum += v
		most = max(most, v)
	}
	return sum, most
}

// TestAttackGossipSignerAmplification: in an 11-node mesh, one member signs
// new announcements of itself as fast as it can and sends each straight to
// all ten others with a hop count of 0, asking every node to verify it and
// push it on to Fanout peers. Each node must accept (verify, store and
// forward) at most one burst of that signer's announcements on a clock that
// stands still, drop the rest before checking their signatures, and never
// forward an unchanged re-announcement: the sends the mesh makes for the
// attacker stay bounded however many envelopes it signs.
func TestAttackGossipSignerAmplification(t *testing.T) {
	const honest, envelopes = 10, 50
	for _, tc := range []struct {
		name       string
		generation func(k int) uint64
		maxFwd     int // forwards of the attacker's envelopes the whole mesh may make
	}{
		// Only the first is new content to anyone: one wave of forwards.
		{"unchanged re-announcements", func(int) uint64 { return 1 }, honest * DefaultFanout},
		// Every one is new: a burst of forwards per node.
		{"new content every time", func(k int) uint64 { return uint64(k + 1) }, honest * DefaultFanout * DefaultSignerAcceptBurst},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newSyncMesh(t, honest, 1)
			attacker := m.keys[honest]
			for k := range envelopes {
				raw, err := Seal(attacker, nodeSnapshot(attacker.ID, tc.generation(k), 3, testNow), 1, uint64(k+1), testNow)
				if err != nil {
					t.Fatal(err)
				}
				msg := appendEnvelopeMsg(nil, 0, raw)
				for _, k := range m.keys[:honest] {
					m.send(attacker.ID, k.ID, msg)
				}
			}
			m.pump()
			// Every send of the attacker's envelopes but its own.
			forwards := m.sends[attacker.ID] - honest*envelopes
			accepted, mostAccepted := m.total(func(s Stats) uint64 { return s.Accepted })
			limited, _ := m.total(func(s Stats) uint64 { return s.SignerLimited })
			t.Logf("%d envelopes from one signer to %d nodes: %d forwards (%.1f per envelope), %d accepted (at most %d on one node), %d dropped unverified",
				envelopes, honest, forwards, float64(forwards)/envelopes, accepted, mostAccepted, limited)
			if mostAccepted > DefaultSignerAcceptBurst {
				t.Fatalf("a node accepted %d of one signer's %d announcements on a clock that stands still; want at most the burst, %d",
					mostAccepted, envelopes, DefaultSignerAcceptBurst)
			}
			if forwards > tc.maxFwd {
				t.Fatalf("%d forwards of the attacker's %d envelopes, want at most %d", forwards, envelopes, tc.maxFwd)
			}
			if limited == 0 {
				t.Fatal("nothing counted as SignerLimited")
			}
			// The budget refills with time: the signer's next announcement
			// is accepted again.
			m.clock.Advance(time.Second)
			raw, err := Seal(attacker, nodeSnapshot(attacker.ID, envelopes+1, 3, testNow), 1, envelopes+1, testNow)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range m.keys[:honest] {
				m.send(attacker.ID, k.ID, appendEnvelopeMsg(nil, 0, raw))
			}
			m.pump()
			for id, g := range m.gs {
				if v := g.Latest(); len(v) != 1 || v[0].Seq != envelopes+1 {
					t.Fatalf("node %s holds %+v after the budget refilled", id, v)
				}
			}
		})
	}
}

// TestGossipSendsPerEnvelope11Nodes: what one honest announcement costs an
// 11-node mesh, counted: the origin reaches all ten peers itself, so a
// change and a re-announcement each take ten sends and no node forwards.
func TestGossipSendsPerEnvelope11Nodes(t *testing.T) {
	const n = 11
	m := newSyncMesh(t, n, 0)
	origin := m.keys[0]
	g := m.gs[origin.ID]
	for i, step := range []struct {
		name    string
		gen     uint64
		advance time.Duration
	}{
		{"change", 1, 0},
		{"change", 2, DefaultMinPublishInterval},
		{"re-announce", 2, DefaultReannounceInterval},
	} {
		if err := g.Publish(nodeSnapshot(origin.ID, step.gen, 3, testNow)); err != nil {
			t.Fatal(err)
		}
		m.clock.Advance(step.advance)
		before := m.sends[origin.ID]
		g.maybePublish(m.clock.Now())
		m.pump()
		sends := m.sends[origin.ID] - before
		t.Logf("%s %d: %d sends for one envelope in an %d-node mesh", step.name, i, sends, n)
		if sends != n-1 {
			t.Fatalf("%s: %d sends, want %d (the origin to each peer, no forwarding)", step.name, sends, n-1)
		}
		for id, other := range m.gs {
			if id == origin.ID {
				continue
			}
			if v := other.Latest(); len(v) != 1 || v[0].Snapshot.Generation != step.gen {
				t.Fatalf("node %s after the %s: %s", id, step.name, fmt.Sprint(v))
			}
		}
	}
}

// TestAttackGossipForgedFloodUnchecked: a peer sends envelopes whose
// signatures do not hold, each with a new seq so the duplicate cache never
// catches one, to make this node run an ed25519 verification per message.
// On a clock that stands still it checks one burst of them and drops the
// rest unchecked (SenderLimited); another peer's valid envelope still goes
// through.
func TestAttackGossipForgedFloodUnchecked(t *testing.T) {
	r := newRig(t, 4, nil)
	const flood = 50
	for i := range flood {
		raw, err := Seal(r.keys[2], nodeSnapshot(r.keys[2].ID, 1, 3, testNow), 1, uint64(i+1), testNow)
		if err != nil {
			t.Fatal(err)
		}
		raw[len(raw)-1] ^= 1 // the signature no longer holds
		r.deliver(1, appendEnvelopeMsg(nil, 0, raw))
	}
	s := r.g.Stats()
	if s.Rejected > ForgedBurstPerSender {
		t.Fatalf("%d of %d forged envelopes from one peer had their signature checked on a clock that stands still; want at most %d",
			s.Rejected, flood, ForgedBurstPerSender)
	}
	if s.Rejected+s.SenderLimited != flood {
		t.Fatalf("stats %+v: every forged envelope must be rejected or counted as limited", s)
	}
	r.deliver(3, r.envMsg(t, 2, 1, 1, 1, testNow, 0))
	if s := r.g.Stats(); s.Accepted != 1 {
		t.Fatalf("another peer's valid envelope refused: %+v", s)
	}
}
