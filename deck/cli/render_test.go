package cli

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
)

// fixtureNow is the fixed "now" of the rendering fixtures.
var fixtureNow = time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC)

// fixtureCluster is a cluster view with every optional part present: a
// freeze, a lockout, migrations (one rolled back, one reported by both
// ends), an avoid list, pending actions (one held), a cordoned node in
// maintenance, a stale
// node, an attached console, a departed console and this console itself.
func fixtureCluster() *snapshot.ClusterSnapshot {
	now := fixtureNow
	const (
		n1, n2, n3        = snapshot.NodeID(0x1111111111111111), snapshot.NodeID(0x2222222222222222), snapshot.NodeID(0x3333333333333333)
		live, ghost, self = snapshot.NodeID(0xc0c0c0c0c0c0c0c0), snapshot.NodeID(0xdeaddeaddeaddead), snapshot.NodeID(0xf0f0f0f0f0f0f0f0)
		alice, bob        = snapshot.NodeID(0xa11ce00000000001), snapshot.NodeID(0xb0b0000000000002)
	)
	node := func(id snapshot.NodeID, label string, sat float64, rtt time.Duration) snapshot.NodeView {
		nv := snapshot.NodeView{Health: snapshot.Healthy, RTT: rtt}
		nv.ID, nv.Label, nv.Addr, nv.Version = id, label, "127.0.0.1:7946", "test"
		nv.StartedAt, nv.BuiltAt = now.Add(-time.Hour), now.Add(-time.Second)
		nv.Resources.Saturation = sat
		return nv
	}
	a := node(n1, "n1", 0.42, 1200*time.Microsecond)
	a.Capabilities = []string{"gpu"}
	a.Daemons = []snapshot.Daemon{
		{ID: "inference-0", Kind: "inference", Lineage: snapshot.Lineage{Kind: snapshot.GroupReplica, Group: "inference", Index: 0},
			Lifecycle: snapshot.LifecycleRunning, Saturation: 0.5, Restarts: 1},
		{ID: "trainer-0", Kind: "trainer", Lineage: snapshot.Lineage{Kind: snapshot.GroupStandby, Group: "trainer", Active: true},
			Lifecycle: snapshot.LifecycleMigrating, Saturation: 0.3},
	}
	a.Replicas = []snapshot.Replica{{Chain: "inference", Role: snapshot.Leader, Seq: 12}}
	a.Migrations = []snapshot.Migration{
		{ID: "m-0", Daemon: "stage-ctl-0", Source: n1, Target: n2, Phase: snapshot.PhaseRolledBack, Progress: 0.5, Retries: 1,
			Error: "replay: migration killed: killed by operator"},
		{ID: "m-1", Daemon: "trainer-0", Source: n1, Target: n2, Phase: snapshot.PhaseTransfer, Progress: 0.25},
	}
	a.Avoid = []snapshot.AvoidEntry{{Peer: n2, Reason: "rtt 300ms above 250ms", Until: now.Add(4 * time.Minute)}}
	a.Pending = []snapshot.PendingAction{{ID: "migrate:trainer-0", Kind: "migrate", Target: "trainer-0", Since: now.Add(-5 * time.Second)}}
	b := node(n2, "n2", 0.9, 14*time.Millisecond)
	b.Cordoned = true
	b.Maintenance = snapshot.Maintenance{State: snapshot.MaintEntering, Deadline: now.Add(time.Minute)}
	b.Daemons = []snapshot.Daemon{{ID: "forge-0", Kind: "forge", Lineage: snapshot.Lineage{Kind: snapshot.GroupFork, Group: "forge", Index: 0, ForkAt: 1200},
		Lifecycle: snapshot.LifecycleCrashed, Health: snapshot.DaemonUnhealthy, Restart: snapshot.RestartBackingOff, Restarts: 3}}
	b.Replicas = []snapshot.Replica{{Chain: "inference", Seq: 11}}
	// The target reports the same migration (its own, older view): status
	// lists it once, as the source reports it.
	b.Migrations = []snapshot.Migration{{ID: "m-1", Daemon: "trainer-0", Source: n1, Target: n2, Phase: snapshot.PhaseSnapshot}}
	b.Pending = []snapshot.PendingAction{{ID: "place:stage-ctl-0", Kind: "place", Target: "stage-ctl-0", Since: now.Add(-12 * time.Second),
		Blocked: "waiting for 0x1111111111111111 to hand it over"}}
	c := node(n3, "n3", 0, 0)
	c.Health, c.Stale = snapshot.Unreachable, true
	con := node(live, "cli", 0, 900*time.Microsecond)
	con.Observer = true
	gh := node(ghost, "cli", 0, 0)
	gh.Observer, gh.Health = true, snapshot.Unreachable
	me := node(self, "cli", 0, 0)
	me.Observer = true
	return &snapshot.ClusterSnapshot{
		Cluster: "lab", Self: self, BuiltAt: now,
		Nodes:     []snapshot.NodeView{a, b, c, con, gh, me},
		Chains:    []snapshot.Chain{{Name: "inference", Group: "inference", Desired: 3, Holders: []snapshot.NodeID{n1, n2}, Leader: n1}},
		Freeze:    snapshot.Freeze{Active: true, Reason: "incident 42", Operator: alice, Until: now.Add(90 * time.Second)},
		Operators: []snapshot.Operator{{ID: alice, Name: "alice"}, {ID: bob, Name: "bob"}},
		Lockouts:  []snapshot.Lockout{{Verb: "force-drain", Target: "node:0x2222222222222222", Until: now.Add(2 * time.Minute)}},
		AdminHead: snapshot.AdminHead{Count: 7}, AdminThreshold: 1, ICEThreshold: 2,
	}
}

// TestStatusRendering pins the full status JSON document and the pretty
// view on a fixture that has every optional part.
func TestStatusRendering(t *testing.T) {
	cs := fixtureCluster()
	var js bytes.Buffer
	if err := writeJSON(&js, statusJSON(cs, fixtureNow)); err != nil {
		t.Fatal(err)
	}
	compareGolden(t, filepath.Join("testdata", "render", "status.json.golden"), js.Bytes())
	var pretty bytes.Buffer
	printStatus(&pretty, cs, fixtureNow)
	compareGolden(t, filepath.Join("testdata", "render", "status.golden"), pretty.Bytes())
}

func TestPreviewAndReceiptRendering(t *testing.T) {
	cs := fixtureCluster()
	n1, n2 := cs.Nodes[0].ID, cs.Nodes[1].ID
	br := api.BlastRadius{
		Action:    api.Action{Verb: api.VerbDrain, Node: n1, Duration: time.Minute},
		Nodes:     []api.NodeID{n1, n2},
		Replicas:  []api.ReplicaMove{{Chain: "inference", From: n1, To: n2}, {Chain: "trainer", From: n1}},
		Daemons:   []string{"inference-0", "trainer-0"},
		Restarted: []string{"inference-0"},
		Migrated:  []api.DaemonMove{{Daemon: "trainer-0", From: n1, To: n2}},
		Leaders:   []api.LeaderMove{{Chain: "inference", From: n1, To: n2}},
		HotNodes:  []api.HotNode{{Node: n2, Projected: 0.95}},
		DrainTime: 7 * time.Second, StabilityBefore: 1, StabilityAfter: 0.62,
		Warnings: []string{"chain \"trainer\": no node can take the replica leaving 0x1111111111111111"},
	}
	var out bytes.Buffer
	printPreview(&out, br, namesOf(cs))
	out.WriteString("---\n")
	if err := writeJSON(&out, previewJSON(br)); err != nil {
		t.Fatal(err)
	}
	out.WriteString("---\n")
	rcpt := api.Receipt{EventID: "5d2e8d3cba46565839b5d2fec5c2aa0a90e118e422148256594d89ad0cf14b8a", Verb: api.VerbFreezeCluster,
		Target: "cluster", Operator: cs.Operators[0].ID, CommittedAt: fixtureNow, Seq: 3}
	a := api.Action{Verb: api.VerbFreezeCluster, Reason: "incident 42", Duration: time.Minute}
	if err := printReceipt(&out, OutputPretty, rcpt, a, 2, cs); err != nil {
		t.Fatal(err)
	}
	if err := printReceipt(&out, OutputJSON, rcpt, a, 2, cs); err != nil {
		t.Fatal(err)
	}
	out.WriteString("---\n")
	recs := []api.AuditRecord{
		{Seq: 4, EventID: rcpt.EventID, IssuedAt: fixtureNow, At: fixtureNow, Operator: cs.Operators[0].ID, Action: a, ICE: true,
			Signatures: []api.Signature{{Operator: cs.Operators[0].ID}, {Operator: cs.Operators[1].ID}}},
		{Seq: localRejection | 1, EventID: "99", IssuedAt: fixtureNow.Add(time.Second), Outcome: api.Rejected,
			Reason: "signer is not a registered operator (names operator 0x4242424242424242)", From: n2,
			Action: api.Action{Verb: api.VerbCordon, Node: n2}},
	}
	printAudit(&out, recs, namesOf(cs))
	out.WriteString("---\n")
	if err := writeJSON(&out, []auditDoc{auditJSON(recs[0], namesOf(cs)), auditJSON(recs[1], namesOf(cs))}); err != nil {
		t.Fatal(err)
	}
	compareGolden(t, filepath.Join("testdata", "render", "preview_receipt_audit.golden"), out.Bytes())
}
