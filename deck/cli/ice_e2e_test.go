package cli

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/snapshot"
)

// These tests drive every ICE verb, the operator registry and the admin
// co-signing flow through the CLI against real meshes.

// slowLinks delays the packets each link's first node sends to its second
// (links are indexes into m.nodes), stepping through ramp (a delay jump of
// more than a heartbeat interval or two would look like silence to the
// failure detector). The returned heal undoes it; it also runs at t's
// cleanup.
func (m *testMesh) slowLinks(t *testing.T, links [][2]int, ramp ...time.Duration) (heal func()) {
	t.Helper()
	heal = func() {
		for _, l := range links {
			m.faults[l[0]].Impair(m.nodes[l[1]].ID(), 0, 0)
		}
	}
	t.Cleanup(heal)
	for i, d := range ramp {
		if i > 0 {
			time.Sleep(1500 * time.Millisecond)
		}
		for _, l := range links {
			m.faults[l[0]].Impair(m.nodes[l[1]].ID(), d, 0)
		}
	}
	return heal
}

// waitAvoiding waits until node i lists node j on its own avoid list.
func (m *testMesh) waitAvoiding(t *testing.T, i, j int) {
	t.Helper()
	self, peer := m.nodes[i].ID(), m.nodes[j].ID()
	waitFor(t, fmt.Sprintf("n%d to avoid n%d", i+1, j+1), 30*time.Second, func() bool {
		nv := m.nodes[i].Cluster().Node(self)
		return nv != nil && slices.ContainsFunc(nv.Avoid, func(e snapshot.AvoidEntry) bool { return e.Peer == peer })
	})
}

// waitRTTSettled waits until every mesh node's smoothed RTT to every other
// is far below the avoid threshold (250 ms) again after a slowed link was
// healed, so a cleared avoid entry is not re-added.
func (m *testMesh) waitRTTSettled(t *testing.T) {
	t.Helper()
	mesh := map[snapshot.NodeID]bool{}
	for _, nd := range m.nodes {
		mesh[nd.ID()] = true
	}
	waitFor(t, "mesh RTTs to settle below 200ms", 60*time.Second, func() bool {
		for _, nd := range m.nodes {
			// The node's own view of each peer: its transport's RTT.
			for _, nv := range nd.Cluster().Nodes {
				if nv.ID != nd.ID() && mesh[nv.ID] && nv.RTT > 200*time.Millisecond {
					return false
				}
			}
		}
		return true
	})
}

// inflightFrom waits up to timeout for a migration out of node i that is
// still in flight and not in tried, as node i itself reports it.
func (m *testMesh) inflightFrom(i int, tried map[string]bool, timeout time.Duration) string {
	self := m.nodes[i].ID()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if nv := m.nodes[i].Cluster().Node(self); nv != nil {
			for _, mg := range nv.Migrations {
				if mg.Source == self && mg.Phase < snapshot.PhaseComplete && !tried[mg.ID] {
					return mg.ID
				}
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	return ""
}

func chainByName(d statusDoc, name string) *chainDoc {
	for i := range d.Chains {
		if d.Chains[i].Name == name {
			return &d.Chains[i]
		}
	}
	return nil
}

func labelOf(d statusDoc, id uint64) string {
	for _, nd := range d.Nodes {
		if nd.ID == id && !nd.Observer {
			return nd.Label
		}
	}
	return ""
}

func locked(d statusDoc, verb api.Verb, target string) bool {
	return slices.ContainsFunc(d.Lockouts, func(l lockoutDoc) bool {
		return l.Verb == string(verb) && l.Target == target && l.RemainingMs > 0
	})
}

// testICEVerbs commits every ICE verb on the shared mesh (ICE threshold 1)
// with --yes, checks each one's effect in `deck status` and its record in
// `deck audit --force-only`, and restores what it changed: the drained node
// comes back, the freeze is thawed, the slowed links are healed and the
// avoid entries they caused are flushed. One ICE verb on one target is
// locked out for two minutes after its commit, so each runs once here
// (testExitCodes uses force-restart-daemon on stage-ctl-0, which is
// skipped). The eviction is permanent: the chain never returns to that node.
func testICEVerbs(t *testing.T, m *testMesh) {
	var receipts []receiptDoc
	commit := func(t *testing.T, verb api.Verb, args ...string) receiptDoc {
		t.Helper()
		args = append([]string{"ice", string(verb), "--yes", "--identity", "alice", "-o", "json"}, args...)
		rc := decodeJSON[receiptDoc](t, m.must(t, api.ExitOK, args...))
		if rc.Verb != string(verb) || !rc.ICE || rc.Signatures != 1 || len(rc.EventID) != 64 {
			t.Fatalf("receipt %+v", rc)
		}
		receipts = append(receipts, rc)
		return rc
	}
	covered := map[api.Verb]bool{}
	step := func(verb api.Verb, f func(t *testing.T)) bool {
		covered[verb] = true
		return t.Run(string(verb), f)
	}

	// force-drain the busiest node with the acks towards it slowed (each
	// migration step then takes seconds), catch one of its migrations in
	// flight and kill it.
	drained, drainedIdx := "", -1
	var heal func()
	parent := t // the slowed links outlive the force-drain subtest
	step(api.VerbForceDrain, func(t *testing.T) {
		d := m.status(t)
		most := -1
		for i := range m.nodes {
			label := fmt.Sprintf("n%d", i+1)
			nd := nodeByLabel(d, label)
			if nd != nil && nd.Maintenance == "active" && nd.Daemons > most {
				most, drained, drainedIdx = nd.Daemons, label, i
			}
		}
		if most <= 0 {
			t.Fatalf("no active node runs a daemon to drain: %+v", d.Nodes)
		}
		var links [][2]int
		for i := range m.nodes {
			if i != drainedIdx {
				links = append(links, [2]int{i, drainedIdx})
			}
		}
		heal = m.slowLinks(parent, links, 1200*time.Millisecond, 2500*time.Millisecond)
		commit(t, api.VerbForceDrain, "--node", drained)
		// The effect is checked after kill-migration, which must catch
		// the drain's first migrations while they are still in flight.
	})
	step(api.VerbKillMigration, func(t *testing.T) {
		if drainedIdx < 0 {
			t.Fatal("force-drain failed: no migration to kill")
		}
		tried := map[string]bool{}
		deadline := time.Now().Add(90 * time.Second)
		for {
			id := m.inflightFrom(drainedIdx, tried, time.Until(deadline))
			if id == "" {
				t.Fatalf("no migration out of %s was caught in flight and killed within 90 s (tried %v)", drained, tried)
			}
			tried[id] = true
			r := m.deck(t, "ice", "kill-migration", "--migration", id, "--yes", "--identity", "alice", "-o", "json")
			if r.code == api.ExitNotFound {
				t.Logf("migration %s ended before the console saw it; trying the next one\n%s", id, r)
				continue
			}
			if r.code != api.ExitOK {
				t.Fatalf("kill-migration %s: %s", id, r)
			}
			rc := decodeJSON[receiptDoc](t, r)
			if rc.Verb != string(api.VerbKillMigration) || !rc.ICE || rc.Target != "migration:"+id {
				t.Fatalf("receipt %+v", rc)
			}
			receipts = append(receipts, rc)
			// Unknown migrations are not found (checked once one is
			// caught: every second counts while the drain runs).
			defer m.must(t, api.ExitNotFound, "ice", "kill-migration", "--migration", "no-such-migration", "--yes", "--identity", "alice")
			outcome, last := "", ""
			for end := time.Now().Add(20 * time.Second); outcome == "" && time.Now().Before(end); {
				d := m.status(t)
				i := slices.IndexFunc(d.Migrations, func(mg migDoc) bool { return mg.ID == id })
				switch {
				case i < 0:
					last = fmt.Sprintf("status lists no migration %s: %+v", id, d.Migrations)
				case d.Migrations[i].Phase == "rolled-back" && strings.Contains(d.Migrations[i].Error, "killed by operator"):
					outcome = "killed"
				case d.Migrations[i].Phase == "complete":
					outcome = "complete"
				default:
					last = fmt.Sprintf("migration %+v", d.Migrations[i])
				}
			}
			switch outcome {
			case "killed":
				return
			case "complete":
				t.Logf("migration %s completed before the kill reached its node; trying the next one", id)
			default:
				t.Fatalf("after kill-migration %s: %s", id, last)
			}
		}
	})
	if drainedIdx >= 0 {
		t.Run(string(api.VerbForceDrain)+"-effect", func(t *testing.T) {
			eventually(t, 30*time.Second, func() string { return draining(drained)(m.status(t)) })
		})
	}
	if heal != nil {
		heal()
	}
	if drainedIdx >= 0 {
		m.must(t, api.ExitOK, "admin", "exit-maintenance", "--node", drained, "--yes", "--identity", "alice")
		eventually(t, 30*time.Second, func() string {
			return maintenanceIs(drained, "exiting-maintenance", "recovery", "active")(m.status(t))
		})
	}

	step(api.VerbFreezeCluster, func(t *testing.T) {
		commit(t, api.VerbFreezeCluster, "--reason", "ice-verbs test", "--ttl", "30s")
		eventually(t, 20*time.Second, func() string {
			d := m.status(t)
			switch {
			case d.Freeze == nil || d.Freeze.Reason != "ice-verbs test" || d.Freeze.RemainingMs <= 0:
				return fmt.Sprintf("status shows no freeze: %+v", d.Freeze)
			case !locked(d, api.VerbFreezeCluster, "cluster"):
				return fmt.Sprintf("status shows no freeze-cluster lockout: %+v", d.Lockouts)
			}
			return ""
		})
	})
	step(api.VerbThawCluster, func(t *testing.T) {
		commit(t, api.VerbThawCluster)
		eventually(t, 20*time.Second, func() string {
			if d := m.status(t); d.Freeze != nil {
				return fmt.Sprintf("still frozen: %+v", d.Freeze)
			}
			return ""
		})
	})
	step(api.VerbForceRestartDaemon, func(t *testing.T) {
		d := m.status(t)
		daemon, was := "", 0
		for _, dm := range d.Daemons {
			if dm.Lifecycle == "running" && !locked(d, api.VerbForceRestartDaemon, "daemon:"+dm.ID) {
				daemon, was = dm.ID, dm.Restarts
				break
			}
		}
		if daemon == "" {
			t.Fatalf("no running daemon to force-restart: %+v", d.Daemons)
		}
		commit(t, api.VerbForceRestartDaemon, "--daemon", daemon)
		eventually(t, 30*time.Second, func() string {
			if got := daemonRestarts(m.status(t), daemon); got <= was {
				return fmt.Sprintf("%s restarts %d, was %d", daemon, got, was)
			}
			return ""
		})
	})
	cutChain := ""
	step(api.VerbForceCutover, func(t *testing.T) {
		// After the force-drain a chain may be short of holders, its only
		// follower on the drained node, until placement re-replicates it:
		// wait for a follower elsewhere rather than expect one at once.
		peer := ""
		eventually(t, 45*time.Second, func() string {
			d := m.status(t)
			for _, c := range d.Chains {
				for _, h := range c.Holders {
					if l := labelOf(d, h.ID); h.ID != c.Leader.ID && l != "" && l != drained {
						cutChain, peer = c.Name, l
					}
				}
				if peer != "" {
					return ""
				}
			}
			return fmt.Sprintf("no chain with a follower outside drained %s to promote: %+v", drained, d.Chains)
		})
		commit(t, api.VerbForceCutover, "--chain", cutChain, "--peer", peer)
		eventually(t, 30*time.Second, func() string {
			d := m.status(t)
			if c := chainByName(d, cutChain); c == nil || labelOf(d, c.Leader.ID) != peer {
				return fmt.Sprintf("%s is not the leader of %s: %+v", peer, cutChain, c)
			}
			return ""
		})
	})
	step(api.VerbForceEvictReplica, func(t *testing.T) {
		d := m.status(t)
		// A chain with a second holder (another chain than the one just cut
		// over, if there is one), evicted from a node that did not drain.
		chain, victim := "", ""
		for _, other := range []bool{true, false} {
			for _, c := range d.Chains {
				if victim != "" || len(c.Holders) < 2 || (other && c.Name == cutChain) {
					continue
				}
				for _, h := range c.Holders {
					if l := labelOf(d, h.ID); l != "" && l != drained {
						chain, victim = c.Name, l
					}
				}
			}
		}
		if victim == "" {
			t.Fatalf("no chain with two holders to evict a replica from: %+v", d.Chains)
		}
		commit(t, api.VerbForceEvictReplica, "--chain", chain, "--peer", victim)
		eventually(t, 30*time.Second, func() string {
			d := m.status(t)
			c, nd := chainByName(d, chain), nodeByLabel(d, victim)
			if c == nil || nd == nil {
				return fmt.Sprintf("status lacks chain %s or node %s", chain, victim)
			}
			if slices.Contains(nd.Chains, chain) || slices.ContainsFunc(c.Holders, func(h jsonID) bool { return h.ID == nd.ID }) {
				return fmt.Sprintf("%s still holds %s: %+v", victim, chain, c)
			}
			return ""
		})
	})
	// The slowed links made the drained node and its peers avoid each
	// other; with the links healed, flushing clears those entries for good.
	step(api.VerbFlushAvoidLists, func(t *testing.T) {
		m.waitRTTSettled(t)
		d := m.status(t)
		old := map[string][]avoidDoc{}
		for _, nd := range d.Nodes {
			if len(nd.Avoid) > 0 {
				old[nd.Label] = nd.Avoid
			}
		}
		if len(old) == 0 {
			t.Fatalf("no avoid entries to flush: the slowed links of force-drain should have left some: %+v", d.Nodes)
		}
		commit(t, api.VerbFlushAvoidLists)
		eventually(t, 30*time.Second, func() string {
			d := m.status(t)
			for label, was := range old {
				if left := sameAvoid(nodeByLabel(d, label).Avoid, was); len(left) > 0 {
					return fmt.Sprintf("%s still avoids %+v", label, left)
				}
			}
			return ""
		})
		// The same verb on the same target is locked out for the cooldown.
		r := m.must(t, api.ExitFailure, "ice", "flush-avoid-lists", "--yes", "--identity", "alice")
		if !strings.Contains(r.err, "locked out") {
			t.Errorf("a second flush inside the cooldown should say it is locked out:\n%s", r)
		}
		if d := m.status(t); !locked(d, api.VerbFlushAvoidLists, "cluster") {
			t.Errorf("status shows no flush-avoid-lists lockout: %+v", d.Lockouts)
		}
	})
	for _, v := range api.ICEVerbs {
		if !covered[v] {
			t.Errorf("ICE verb %s is not tested", v)
		}
	}
	eventually(t, 20*time.Second, func() string {
		recs := m.audit(t, "--recent", "0", "--force-only")
		for _, rc := range receipts {
			rec := auditHas(recs, rc.EventID)
			switch {
			case rec == nil:
				return fmt.Sprintf("audit --force-only lacks %s %s", rc.Verb, rc.EventID)
			case !rec.ICE || rec.Command != rc.Verb || rec.Outcome != "accepted" || rec.OperatorName != "alice" || len(rec.Signatures) != 1:
				return fmt.Sprintf("audit record %+v", *rec)
			}
		}
		return ""
	})
}

// testOperators adds and removes an operator on the shared mesh (admin
// threshold 1, so one signature commits) and checks the registry in
// status, operator ls and audit.
func testOperators(t *testing.T, m *testMesh) {
	store := &config.OperatorStore{Dir: t.TempDir()}
	dave, err := store.Generate("dave")
	if err != nil {
		t.Fatal(err)
	}
	pub := store.PubPath("dave")
	hasDave := func(d statusDoc) bool {
		return slices.ContainsFunc(d.Operators, func(o operatorDoc) bool { return o.Name == "dave" && o.ID == uint64(dave.ID) })
	}
	add := decodeJSON[receiptDoc](t, m.must(t, api.ExitOK, "operator", "add", "dave", pub, "--yes", "--identity", "alice", "-o", "json"))
	if add.Verb != string(api.VerbAddOperator) || add.Target != "operator:"+dave.ID.String() {
		t.Errorf("receipt %+v", add)
	}
	eventually(t, 20*time.Second, func() string {
		if d := m.status(t); !hasDave(d) {
			return fmt.Sprintf("status operators lack dave: %+v", d.Operators)
		}
		return ""
	})
	rows := decodeJSON[[]operatorRow](t, m.must(t, api.ExitOK, "operator", "ls", "-o", "json"))
	if !slices.ContainsFunc(rows, func(r operatorRow) bool {
		return r.Name == "dave" && r.AddedAt != "" && strings.HasPrefix(r.PublicKey, "ed25519:")
	}) {
		t.Errorf("operator ls lacks dave: %+v", rows)
	}
	if r := m.must(t, api.ExitOK, "operator", "ls"); !strings.Contains(r.out, "dave") || !strings.Contains(r.out, "genesis") {
		t.Errorf("pretty operator ls:\n%s", r)
	}
	m.must(t, api.ExitExists, "operator", "add", "dave", pub, "--yes", "--identity", "alice")

	rm := decodeJSON[receiptDoc](t, m.must(t, api.ExitOK, "operator", "remove", "dave", "--yes", "--identity", "alice", "-o", "json"))
	if rm.Verb != string(api.VerbRemoveOperator) {
		t.Errorf("receipt %+v", rm)
	}
	eventually(t, 20*time.Second, func() string {
		if d := m.status(t); hasDave(d) {
			return fmt.Sprintf("dave is still registered: %+v", d.Operators)
		}
		return ""
	})
	m.must(t, api.ExitNotFound, "operator", "remove", "dave", "--preview")
	// Removing the last operator would leave nobody to sign: refused.
	if r := m.must(t, api.ExitInvalid, "operator", "remove", "alice", "--yes", "--identity", "alice"); !strings.Contains(r.err, "fewer operators") {
		t.Errorf("removing the last operator:\n%s", r)
	}
	recs := m.audit(t, "--recent", "0")
	for _, rc := range []receiptDoc{add, rm} {
		if rec := auditHas(recs, rc.EventID); rec == nil || rec.Outcome != "accepted" || rec.Command != rc.Verb {
			t.Errorf("audit record of %s: %+v", rc.Verb, rec)
		}
	}
}

// TestAdminCoSigning: on a mesh whose admin threshold is 2, one operator's
// signature commits nothing (exit 5); two operators' signatures add a third
// operator, who then proposes a cordon that a second operator co-signs.
func TestAdminCoSigning(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{nodes: 2, iceThreshold: 1, adminThreshold: 2, operators: []string{"alice", "bob"}, strangers: []string{"carol"}})
	dir := t.TempDir()
	carolPub := filepath.Join(m.dir, "operators", "carol.pub")

	d := m.status(t)
	if d.AdminThreshold != 2 || len(d.Operators) != 2 {
		t.Fatalf("status: admin threshold %d, operators %+v", d.AdminThreshold, d.Operators)
	}
	events := d.AdminEvents

	// One signature: refused before anything is signed, with the way out.
	for _, args := range [][]string{
		{"admin", "cordon", "--node", "n1", "--yes", "--identity", "alice"},
		{"operator", "add", "carol", carolPub, "--yes", "--identity", "alice"},
	} {
		if r := m.must(t, api.ExitPermission, args...); !strings.Contains(r.err, "--sign-only") || !strings.Contains(r.err, "deck admin sign") {
			t.Errorf("%v below the admin threshold should point at the co-signing flow:\n%s", args, r)
		}
	}
	add := filepath.Join(dir, "add-carol.adm")
	r := m.must(t, api.ExitOK, "operator", "add", "carol", carolPub, "--sign-only", "--out", add, "--identity", "alice")
	if !strings.Contains(r.out, "1 of 2 signatures") || !strings.Contains(r.out, "deck admin sign") {
		t.Errorf("sign-only does not say what comes next:\n%s", r)
	}
	m.must(t, api.ExitExists, "operator", "add", "carol", carolPub, "--sign-only", "--out", add, "--identity", "alice")
	m.must(t, api.ExitInvalid, "ice", "commit", add) // an admin proposal is not an ICE one
	if r := m.must(t, api.ExitPermission, "admin", "commit", add); !strings.Contains(r.err, "1 operator (alice)") {
		t.Errorf("below-threshold commit should name who signed:\n%s", r)
	}
	// Nothing of the refused attempts took effect.
	d = m.status(t)
	if n1 := nodeByLabel(d, "n1"); n1 == nil || n1.Cordoned || len(d.Operators) != 2 || d.AdminEvents != events {
		t.Fatalf("a refused attempt took effect: n1 %+v, operators %+v, admin events %d (were %d)", n1, d.Operators, d.AdminEvents, events)
	}
	for _, rec := range m.audit(t, "--recent", "0") {
		if rec.Outcome == "accepted" {
			t.Errorf("audit has an accepted event after refused attempts: %+v", rec)
		}
	}

	bob := strings.TrimSpace(m.must(t, api.ExitOK, "admin", "sign", add, "--identity", "bob").out)
	if !strings.HasPrefix(bob, "deck-sig:") || strings.Contains(bob, "\n") {
		t.Fatalf("admin sign printed %q, want one signature line", bob)
	}
	rc := decodeJSON[receiptDoc](t, m.must(t, api.ExitOK, "admin", "commit", add, "--sig", bob, "-o", "json"))
	if rc.Verb != string(api.VerbAddOperator) || rc.ICE || rc.Signatures != 2 {
		t.Errorf("receipt %+v", rc)
	}
	eventually(t, 20*time.Second, func() string {
		d := m.status(t)
		if !slices.ContainsFunc(d.Operators, func(o operatorDoc) bool { return o.Name == "carol" && o.ID == uint64(m.ops["carol"].ID) }) {
			return fmt.Sprintf("carol is not registered: %+v", d.Operators)
		}
		return ""
	})

	// The new operator proposes a cordon; bob co-signs; anyone commits.
	cordon := filepath.Join(dir, "cordon.adm")
	m.must(t, api.ExitOK, "admin", "cordon", "--node", "n1", "--sign-only", "--out", cordon, "--identity", "carol")
	bob = strings.TrimSpace(m.must(t, api.ExitOK, "admin", "sign", cordon, "--identity", "bob").out)
	rc2 := decodeJSON[receiptDoc](t, m.must(t, api.ExitOK, "admin", "commit", cordon, "--sig", bob, "-o", "json"))
	if rc2.Verb != string(api.VerbCordon) || rc2.Signatures != 2 || rc2.Operator.ID != uint64(m.ops["carol"].ID) {
		t.Errorf("receipt %+v", rc2)
	}
	eventually(t, 20*time.Second, func() string {
		if n1 := nodeByLabel(m.status(t), "n1"); n1 == nil || !n1.Cordoned {
			return "n1 is not cordoned"
		}
		return ""
	})
	m.must(t, api.ExitFailure, "admin", "commit", cordon, "--sig", bob) // the nonce is spent
	recs := m.audit(t, "--recent", "0")
	for _, want := range []receiptDoc{rc, rc2} {
		rec := auditHas(recs, want.EventID)
		if rec == nil || rec.Outcome != "accepted" || rec.Command != want.Verb || rec.ICE || len(rec.Signatures) != 2 {
			t.Errorf("audit record of %s: %+v", want.Verb, rec)
		}
	}
}
