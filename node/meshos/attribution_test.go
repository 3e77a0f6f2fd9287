package meshos

import (
	"context"
	"encoding/binary"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/gossip"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/identity/identitytest"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/snapshot"
)

// attackerSnapshot signs ns with key through gossip.Seal and returns it as
// a receiver holds it after gossip.Open: what any member can make every
// node believe it says about itself.
func attackerSnapshot(t *testing.T, key *identity.Key, ns *snapshot.NodeSnapshot) *snapshot.NodeSnapshot {
	t.Helper()
	ns.ID = key.ID
	raw, err := gossip.Seal(key, ns, 1, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	env, err := gossip.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	return env.Snapshot
}

// runningSince is when node id's snapshot says its copy of daemon started
// running (zero if it shows none running).
func (c *cluster) runningSince(id NodeID, daemon string) time.Time {
	for _, d := range c.node(id).Daemons {
		if d.ID == daemon && d.Lifecycle == snapshot.LifecycleRunning {
			return d.StartedAt
		}
	}
	return time.Time{}
}

// TestAttackSnapshotClaimsDaemonStopsPlacedCopy: a member publishes a
// signed snapshot saying it runs a daemon that really runs elsewhere.
// Placement counts a claimed copy as a location, so the claim can win
// placement's choice: by claiming an inbound migration (placement prefers
// the target of a move under way), by claiming to be mid-migration (which
// ranks its copy first to hand the daemon over), or simply by being the
// only other copy when the genuine host drains. Before, the genuine copy
// then stopped as a duplicate of a copy that does not exist, or migrated
// its state to the claimant. It must keep running and report the dispute.
func TestAttackSnapshotClaimsDaemonStopsPlacedCopy(t *testing.T) {
	const window = 100 * time.Millisecond
	shortWindow := func(_ NodeID, cfg *Config) { cfg.Timers.DuplicateRaceWindow = window }
	mallory := identitytest.Key(t, "mallory")
	lineage := snapshot.Lineage{Kind: snapshot.GroupSolo, Group: "solo"}
	claim := func(life snapshot.Lifecycle) snapshot.Daemon {
		return snapshot.Daemon{ID: "solo-0", Name: "solo-0", Kind: "counter", Lineage: lineage, Node: mallory.ID,
			Lifecycle: life, StartedAt: time.Now().Add(-time.Hour)}
	}
	drain := func(c *cluster, host NodeID) {
		c.editNode(host, func(ni *NodeIntent) { ni.Maintenance, ni.MaintGen = MaintIntentEnter, 1 })
	}
	for _, tc := range []struct {
		name  string
		claim func(now time.Time) *snapshot.NodeSnapshot
		// after runs once the claim is in every view (the hand-over case
		// drains the genuine host, which makes it hand the daemon over).
		after func(c *cluster, host NodeID)
	}{
		{"claimed inbound migration wins placement", func(now time.Time) *snapshot.NodeSnapshot {
			return &snapshot.NodeSnapshot{Label: "mallory", Generation: 1, BuiltAt: now, StartedAt: now, Capabilities: []string{"cpu"},
				Daemons:    []snapshot.Daemon{claim(snapshot.LifecycleRunning)},
				Migrations: []snapshot.Migration{{ID: "x", Daemon: "solo-0", Source: mallory.ID, Target: mallory.ID, Phase: snapshot.PhaseTransfer, StartedAt: now}},
			}
		}, nil},
		{"claimed outbound migration makes it the hand-over copy of a draining host", func(now time.Time) *snapshot.NodeSnapshot {
			// Mallory is draining too (so placement puts the daemon on a
			// third node), but says she is mid-migration, which ranks her
			// copy first to hand it over.
			return &snapshot.NodeSnapshot{Label: "mallory", Generation: 1, BuiltAt: now, StartedAt: now, Capabilities: []string{"cpu"},
				Maintenance: snapshot.Maintenance{State: snapshot.MaintEntering, Since: now},
				Daemons:     []snapshot.Daemon{claim(snapshot.LifecycleMigrating)},
			}
		}, drain},
		{"claimed copy draws a draining host's daemon to the claimant", func(now time.Time) *snapshot.NodeSnapshot {
			// The genuine host drains; placement keeps the daemon where
			// the only other copy is, mallory's, and the host would
			// migrate its state to her.
			return &snapshot.NodeSnapshot{Label: "mallory", Generation: 1, BuiltAt: now, StartedAt: now, Capabilities: []string{"cpu"},
				Daemons: []snapshot.Daemon{claim(snapshot.LifecycleMigrating)},
			}
		}, drain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 3, soloSpec(), shortWindow)
			// Mallory takes no placements of her own (so the only thing she
			// can win is by claim).
			c.editNode(mallory.ID, func(ni *NodeIntent) { ni.Cordoned = true })
			var host NodeID
			c.waitFor("solo-0 running", func() bool {
				_, n, ok := c.member("solo-0")
				host = n
				return ok
			})
			// The claim arrives well after the genuine copy started: no
			// race between two starts.
			c.waitFor("the genuine copy older than the race window", func() bool {
				at := c.runningSince(host, "solo-0")
				return !at.IsZero() && time.Since(at) > 2*window
			})
			before := c.count("solo-0")
			c.inject(attackerSnapshot(t, mallory, tc.claim(time.Now())))
			c.waitFor("the claim in the host's view", func() bool {
				rt := c.rts[host]
				rt.mu.Lock()
				defer rt.mu.Unlock()
				return rt.view != nil && rt.view.Node(mallory.ID) != nil
			})
			if tc.after != nil {
				tc.after(c, host)
			}
			c.waitFor("the host to decide on mallory's claim", func() bool {
				if _, n, ok := c.member("solo-0"); !ok || n != host {
					return true // stopped (the old behaviour)
				}
				for _, p := range c.node(host).Pending {
					if p.Target == "solo-0" && strings.Contains(p.Blocked, mallory.ID.String()) {
						return true
					}
				}
				return false
			})
			if _, n, ok := c.member("solo-0"); !ok || n != host {
				t.Fatalf("the genuine copy on %v stopped or moved for mallory's claim (running on %v: %v; assignment %+v)\n%s",
					host, n, ok, c.rts[host].Assignment().Daemons["solo-0"], c.dump())
			}
			if c.count("solo-0") < before {
				t.Fatal("the genuine copy restarted from zero")
			}
			c.waitFor("the dispute recorded as a failure", func() bool { return c.sinks[host].hasFailure("claims to run it") })
			if _, n, ok := c.member("solo-0"); !ok || n != host {
				t.Fatalf("the genuine copy on %v stopped or moved after the dispute (running on %v: %v)\n%s", host, n, ok, c.dump())
			}
		})
	}
}

// sendFrom sends m on the migration channel from node from's endpoint: the
// receiver sees from as the authenticated sender.
func (c *cluster) sendFrom(t *testing.T, from, to NodeID, m *message) {
	t.Helper()
	b, err := m.encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.hub.Node(from).Send(context.Background(), to, messaging.ChanMigration, b); err != nil {
		t.Fatal(err)
	}
}

// TestAttackCheckpointFromNonHost: any member could push a checkpoint for
// any daemon to its chain's leader, which appended it; whichever node next
// placed the daemon restored from it. Here the daemon cannot be placed at
// all (nobody has the capability it needs), so a forged checkpoint would
// be the state its first host starts from. The leader takes checkpoints
// only from the daemon's host (its placed node or hand-over copy).
func TestAttackCheckpointFromNonHost(t *testing.T) {
	spec := Spec{Groups: []GroupSpec{{Name: "vault", Kind: snapshot.GroupSolo, DaemonKind: "counter", Members: 1,
		ChainReplicas: 2, Requires: []string{"gpu"}}}}
	c := newCluster(t, 3, spec)
	var leader NodeID
	c.waitFor("a leader for the vault chain", func() bool {
		for _, id := range c.live() {
			for _, r := range c.node(id).Replicas {
				if r.Chain == "vault" && r.Role == snapshot.Leader {
					leader = id
					return true
				}
			}
		}
		return false
	})
	if p := c.rts[leader].Assignment().Daemons["vault-0"]; p.Node != 0 {
		t.Fatalf("vault-0 placed on %v; the test needs it unplaced", p.Node)
	}
	var member NodeID // a member of the cluster that hosts nothing of vault's
	for _, id := range c.live() {
		if id != leader {
			member = id
		}
	}
	forged := binary.BigEndian.AppendUint64(nil, 0xbadbadbad)
	c.sendFrom(t, member, leader, &message{Kind: msgChainAppend, Chain: "vault", Daemon: "vault-0", State: forged})
	checkpoint := func() []byte {
		rt := c.rts[leader]
		rt.mu.Lock()
		defer rt.mu.Unlock()
		if r := rt.replicas["vault"]; r != nil {
			return r.checkpoints["vault-0"]
		}
		return nil
	}
	c.waitFor("the leader to handle the checkpoint", func() bool {
		return checkpoint() != nil || c.rts[leader].MisattributedMessages() > 0
	})
	if cp := checkpoint(); cp != nil {
		t.Fatalf("the leader stored a checkpoint of vault-0 sent by %v, which does not host it: %x", member, cp)
	}
}

// TestAttackMigrationOfferFromNonHost: any member could offer any daemon
// to any node, which restored the offered state and, after replay and
// cutover, ran the daemon from it (stopping its own fresh copy if it had
// one). A node takes an offer only from the copy placement hands the
// daemon over from, and only when placement puts the daemon here.
func TestAttackMigrationOfferFromNonHost(t *testing.T) {
	c := newCluster(t, 3, soloSpec())
	c.waitFor("convergence", c.settled)
	_, host, _ := c.member("solo-0")
	var target, member NodeID
	for _, id := range c.live() {
		switch {
		case id == host:
		case target == 0:
			target = id
		default:
			member = id
		}
	}
	state := binary.BigEndian.AppendUint64(nil, 424242)
	c.sendFrom(t, member, target, &message{Kind: msgMigOffer, Mig: "evil", Daemon: "solo-0", Group: "solo", DKind: "counter",
		Lineage: snapshot.Lineage{Kind: snapshot.GroupSolo, Group: "solo"}, State: state})
	inbound := func() bool {
		rt := c.rts[target]
		rt.mu.Lock()
		defer rt.mu.Unlock()
		return rt.migIn["evil"] != nil
	}
	c.waitFor("the target to handle the offer", func() bool {
		return inbound() || c.rts[target].MisattributedMessages() > 0
	})
	if inbound() {
		t.Fatalf("%v took an offer of solo-0 from %v, which does not run it (it runs on %v)", target, member, host)
	}
}

// TestAttackForkPointFromNonHolder: a fork member waits for its parent
// chain's fork point and took the first answer from anyone; a member that
// holds no replica of the parent chain could hand it any state (and any
// sentinel) to start from. Fork points are taken only from the parent
// chain's holders.
func TestAttackForkPointFromNonHolder(t *testing.T) {
	const forkAt = 1 << 40 // never reached: only the forged point could start the fork
	spec := Spec{Groups: []GroupSpec{
		{Name: "rep", Kind: snapshot.GroupReplica, DaemonKind: "counter", Members: 2, ChainReplicas: 2},
		{Name: "fork", Kind: snapshot.GroupFork, DaemonKind: "counter", Members: 2, Parent: "rep", ForkAt: forkAt},
	}}
	c := newCluster(t, 4, spec)
	var forkHost NodeID
	c.waitFor("fork-0 awaiting its fork point", func() bool {
		for _, n := range c.live() {
			for _, p := range c.node(n).Pending {
				if p.ID == "place:fork-0" && strings.Contains(p.Blocked, "awaiting fork point") {
					forkHost = n
					return true
				}
			}
		}
		return false
	})
	holders := c.rts[forkHost].Assignment().Chains["rep"].Holders
	var member NodeID // a member holding no replica of rep
	for _, id := range c.live() {
		if id != forkHost && !slices.Contains(holders, id) {
			member = id
		}
	}
	if member == 0 {
		t.Fatalf("every other node holds rep (holders %v)", holders)
	}
	c.sendFrom(t, member, forkHost, &message{Kind: msgForkResp, Chain: "rep", Daemon: "rep-0", For: "rep-0", Seq: forkAt, OK: true,
		State: binary.BigEndian.AppendUint64(nil, 0xbad), Sentinel: 0xbad})
	taken := func() bool {
		rt := c.rts[forkHost]
		rt.mu.Lock()
		defer rt.mu.Unlock()
		_, ok := rt.forkStates["fork-0"]
		return ok
	}
	c.waitFor("the fork host to handle the fork point", func() bool {
		return taken() || c.rts[forkHost].MisattributedMessages() > 0
	})
	if taken() {
		t.Fatalf("%v took a fork point of rep from %v, which holds no replica of it (holders %v)", forkHost, member, holders)
	}
}

// TestPartitionCopyYieldsToTheHolderItCouldNotSee: a daemon runs on one
// node; that node is cut off and another starts a copy, knowing the first
// holder was there but out of reach. After the heal placement prefers the
// new copy (its node has the lower id), but the original's node has no
// reason to believe a claim that appeared long after its copy started, so
// it keeps its copy; the copy started in the dark is the one that gives
// way. Exactly one copy is left, the original, with its state.
func TestPartitionCopyYieldsToTheHolderItCouldNotSee(t *testing.T) {
	const window = 100 * time.Millisecond
	shortWindow := func(_ NodeID, cfg *Config) { cfg.Timers.DuplicateRaceWindow = window }
	c := newClusterIntent(t, 3, soloSpec(), func(ids []NodeID, in *ClusterIntent) {
		in.Nodes[ids[0]] = NodeIntent{Cordoned: true}
		in.Nodes[ids[1]] = NodeIntent{Cordoned: true}
	}, shortWindow)
	low, original := c.ids[0], c.ids[2]
	c.waitFor("solo-0 on the one uncordoned node", func() bool {
		_, n, ok := c.member("solo-0")
		return ok && n == original
	})
	c.waitFor("the original copy older than the race window", func() bool {
		at := c.runningSince(original, "solo-0")
		return !at.IsZero() && time.Since(at) > 2*window
	})
	c.isolate(original, true)
	c.editNode(low, func(ni *NodeIntent) { ni.Cordoned = false })
	c.waitFor("a second copy behind the partition", func() bool {
		_, n, ok := c.member("solo-0")
		return ok && n == low
	})
	c.isolate(original, false)
	c.waitFor("one copy left, the original", func() bool {
		w := c.where()["solo-0"]
		return len(w) == 1 && w[0] == original
	})
	if !c.sinks[low].hasLog("out of reach") {
		t.Fatal("the partition's copy stopped without saying why")
	}
}
