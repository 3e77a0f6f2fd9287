package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

// These tests drive the CLI in-process (Main) against real meshes started
// in the test: every exit code of DESIGN §7, the JSON shapes, every admin
// verb's effect and audit record, logs, and the ICE co-signing flow.

// must runs the CLI and fails the test unless it exits want.
func (m *testMesh) must(t *testing.T, want int, args ...string) result {
	t.Helper()
	r := m.deck(t, args...)
	if r.code != want {
		t.Fatalf("deck %s: want exit %d\n%s", strings.Join(args, " "), want, r)
	}
	return r
}

func decodeJSON[T any](t *testing.T, r result) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.out), &v); err != nil {
		t.Fatalf("stdout is not the expected JSON: %v\n%s", err, r)
	}
	return v
}

func (m *testMesh) status(t *testing.T) statusDoc {
	t.Helper()
	return decodeJSON[statusDoc](t, m.must(t, api.ExitOK, "status", "-o", "json"))
}

func (m *testMesh) audit(t *testing.T, args ...string) []auditDoc {
	t.Helper()
	return decodeJSON[[]auditDoc](t, m.must(t, api.ExitOK, append([]string{"audit", "-o", "json"}, args...)...))
}

// eventually retries check (each try is a whole CLI run) until it returns
// "" or timeout passes; the last complaint is the failure message.
func eventually(t *testing.T, timeout time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		why := check()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, why)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func nodeByLabel(d statusDoc, label string) *nodeDoc {
	for i := range d.Nodes {
		if d.Nodes[i].Label == label && !d.Nodes[i].Observer {
			return &d.Nodes[i]
		}
	}
	return nil
}

func auditHas(recs []auditDoc, eventID string) *auditDoc {
	for i := range recs {
		if recs[i].EventID == eventID {
			return &recs[i]
		}
	}
	return nil
}

// TestSharedMesh runs the tests that can share one 3-node mesh, in order:
// the JSON goldens first (on a quiet cluster), then exit codes, every admin
// verb, every ICE verb, the operator registry, logs and audit filters.
func TestSharedMesh(t *testing.T) {
	t.Parallel()
	m := sharedMesh(t)
	t.Run("goldens", func(t *testing.T) { testGoldens(t, m) })
	t.Run("exit-codes", func(t *testing.T) { testExitCodes(t, m) })
	t.Run("admin-verbs", func(t *testing.T) { testAdminVerbs(t, m) })
	t.Run("ice-verbs", func(t *testing.T) { testICEVerbs(t, m) })
	t.Run("operators", func(t *testing.T) { testOperators(t, m) })
	t.Run("logs", func(t *testing.T) { testLogs(t, m) })
	t.Run("audit-filters", func(t *testing.T) { testAuditFilters(t, m) })
	t.Run("verify-data-dir", func(t *testing.T) { testVerifyDataDir(t, m) })
}

// testVerifyDataDir stops a node and checks its own copy of the admin chain
// on disk: intact first, then with one stored event's byte flipped, which
// --verify must name. It runs last: the mesh loses a node.
func testVerifyDataDir(t *testing.T, m *testMesh) {
	nd := m.nodes[len(m.nodes)-1]
	dir := filepath.Join(m.dir, fmt.Sprintf("n%d", len(m.nodes)))
	eventually(t, 20*time.Second, func() string {
		if nd.Cluster().AdminHead.Count < 5 {
			return "node has not pulled the ledger yet"
		}
		return ""
	})
	nd.Close()
	if r := m.must(t, api.ExitOK, "audit", "--verify", "--data", dir); !strings.Contains(r.out, "intact") {
		t.Fatalf("clean data dir:\n%s", r)
	}
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "chain")).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	flipped := false
	err = db.Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid() && !flipped; it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			// A stored admin event carries the cluster name; flip a byte
			// of its operator signature at the end.
			if bytes.Contains(v, []byte(m.cluster.Name)) && len(v) > 80 {
				v[len(v)-5] ^= 0x40
				k := it.Item().KeyCopy(nil)
				flipped = true
				return txn.Set(k, v)
			}
		}
		return nil
	})
	db.Close()
	if err != nil || !flipped {
		t.Fatalf("tamper: flipped=%v err=%v", flipped, err)
	}
	r := m.deck(t, "audit", "--verify", "--data", dir)
	if r.code == api.ExitOK || !strings.Contains(strings.ToLower(r.out+r.err), "tamper") {
		t.Fatalf("tampered data dir passed --verify (exit %d):\n%s", r.code, r)
	}
}

func testGoldens(t *testing.T, m *testMesh) {
	r := m.must(t, api.ExitOK, "status", "-o", "json")
	// Migrations, lockouts, the freeze and which nodes hold what come and go
	// with cluster state; TestStatusRendering pins their shape on a fixture.
	checkShapeGolden(t, "status", []byte(r.out), "migrations", "lockouts", "freeze", "capabilities", "replica_chains", "avoid", "pending")
	d := decodeJSON[statusDoc](t, r)
	if len(d.Nodes) != 3 {
		t.Errorf("status shows %d nodes, want the 3 mesh nodes (no consoles):\n%s", len(d.Nodes), r.out)
	}
	if d.Cluster != "cli-test" || len(d.Operators) != 1 || d.Operators[0].Name != "alice" {
		t.Errorf("status: cluster %q operators %+v", d.Cluster, d.Operators)
	}

	r = m.must(t, api.ExitOK, "admin", "cordon", "--node", "n1", "--preview", "-o", "json")
	// Which moves, warnings and hot nodes a preview lists depends on load
	// and placement; TestPreviewAndReceiptRendering pins their shape.
	checkShapeGolden(t, "preview", []byte(r.out), "affected_daemons", "replica_moves", "restarted", "migrated",
		"leader_moves", "hot_nodes", "warnings")
	if p := decodeJSON[previewDoc](t, r); p.Verb != "cordon" || p.ICE || len(p.Hash) != 64 {
		t.Errorf("preview: %+v", p)
	}

	r = m.must(t, api.ExitOK, "admin", "cordon", "--node", "n1", "--yes", "--identity", "alice", "-o", "json")
	checkShapeGolden(t, "receipt", []byte(r.out))
	rc := decodeJSON[receiptDoc](t, r)
	if rc.Verb != "cordon" || rc.Signatures != 1 || rc.Operator.ID != uint64(m.ops["alice"].ID) || len(rc.EventID) != 64 {
		t.Errorf("receipt: %+v", rc)
	}

	var a result
	eventually(t, 20*time.Second, func() string {
		a = m.must(t, api.ExitOK, "audit", "-o", "json", "--recent", "1")
		if recs := decodeJSON[[]auditDoc](t, a); len(recs) != 1 || recs[0].EventID != rc.EventID {
			return "audit --recent 1 does not show the cordon:\n" + a.out
		}
		return ""
	})
	checkShapeGolden(t, "audit", []byte(a.out))
	m.must(t, api.ExitOK, "admin", "uncordon", "--node", "n1", "--yes", "--identity", "alice")
}

func testExitCodes(t *testing.T, m *testMesh) {
	iceFile := filepath.Join(t.TempDir(), "restart.ice")
	for _, tc := range []struct {
		name   string
		args   []string
		stdin  string
		tty    bool
		want   int
		stderr string // a substring the error must contain
	}{
		{"ok", []string{"status"}, "", false, api.ExitOK, ""},
		{"bad flag", []string{"status", "--bogus"}, "", false, api.ExitInvalid, "unknown flag: --bogus"},
		{"bad output", []string{"status", "-o", "yaml"}, "", false, api.ExitInvalid, "--output must be pretty or json"},
		{"preview and yes", []string{"admin", "cordon", "--node", "n1", "--preview", "--yes"}, "", false, api.ExitInvalid, "exclusive"},
		{"bad level", []string{"logs", "--level", "loud"}, "", false, api.ExitInvalid, "--level"},
		{"bad between", []string{"audit", "--between", "yesterday"}, "", false, api.ExitInvalid, "--between"},
		{"ttl out of range", []string{"ice", "freeze-cluster", "--reason", "x", "--ttl", "1s", "--identity", "alice", "--yes"}, "", false, api.ExitInvalid, "--ttl 1s"},
		{"missing node", []string{"admin", "cordon", "--preview"}, "", false, api.ExitInvalid, "--node is required"},
		{"missing reason", []string{"ice", "freeze-cluster", "--ttl", "1m", "--identity", "alice", "--yes"}, "", false, api.ExitInvalid, "--reason is required"},
		{"id prefix", []string{"admin", "cordon", "--node", m.nodes[1].ID().Short(), "--preview"}, "", false, api.ExitOK, ""},
		{"full id", []string{"admin", "cordon", "--node", m.nodes[1].ID().String(), "--preview"}, "", false, api.ExitOK, ""},
		{"unknown node", []string{"admin", "cordon", "--node", "unknown", "--preview"}, "", false, api.ExitNotFound, `no node "unknown"`},
		{"unknown node id", []string{"admin", "cordon", "--node", "0x00000000000000ff", "--preview"}, "", false, api.ExitNotFound, "no node"},
		{"unknown daemon", []string{"admin", "restart-daemon", "--daemon", "nope-9", "--preview"}, "", false, api.ExitNotFound, "nope-9"},
		{"no cluster file", []string{"--cluster", filepath.Join(t.TempDir(), "none.toml"), "status"}, "", false, api.ExitNotFound, "none.toml"},
		{"no identity", []string{"admin", "cordon", "--node", "n1", "--yes"}, "", false, api.ExitPermission, "no operator identity"},
		{"unknown identity", []string{"admin", "cordon", "--node", "n1", "--yes", "--identity", "zed"}, "", false, api.ExitPermission, `"zed" not found`},
		{"unregistered operator", []string{"admin", "cordon", "--node", "n1", "--yes", "--identity", "mallory"}, "", false, api.ExitPermission, "mallory"},
		{"non-tty without yes", []string{"admin", "cordon", "--node", "n1", "--identity", "alice"}, "", false, api.ExitRefused, "pass --yes"},
		{"tty answers no", []string{"admin", "cordon", "--node", "n1", "--identity", "alice"}, "no\n", true, api.ExitRefused, `you typed "no"`},
		{"tty hits enter", []string{"admin", "cordon", "--node", "n1", "--identity", "alice"}, "\n", true, api.ExitRefused, "nothing committed"},
		{"tty end of input", []string{"admin", "cordon", "--node", "n1", "--identity", "alice"}, "", true, api.ExitRefused, "nothing committed"},
		{"ice preview without identity", []string{"ice", "flush-avoid-lists", "--preview"}, "", false, api.ExitOK, ""},
		{"unknown migration", []string{"ice", "kill-migration", "--migration", "nope", "--preview"}, "", false, api.ExitNotFound, `migration "nope"`},
		{"unknown operator", []string{"operator", "remove", "nobody", "--preview"}, "", false, api.ExitNotFound, `no operator "nobody"`},
		{"operator exists", []string{"operator", "add", "alice", filepath.Join(m.dir, "operators", "alice.pub"), "--yes", "--identity", "alice"}, "", false, api.ExitExists, "already registered"},
		// testICEVerbs skips stage-ctl-0: the commit below locks it out.
		{"ice sign-only", []string{"ice", "force-restart-daemon", "--daemon", "stage-ctl-0", "--sign-only", "--out", iceFile, "--identity", "alice"}, "", false, api.ExitOK, ""},
		{"sign-only onto a proposal", []string{"ice", "force-restart-daemon", "--daemon", "stage-ctl-0", "--sign-only", "--out", iceFile, "--identity", "alice"}, "", false, api.ExitExists, "never overwritten"},
		{"ice file to admin commit", []string{"admin", "commit", iceFile}, "", false, api.ExitInvalid, "deck ice commit"},
		{"ice commit", []string{"ice", "commit", iceFile}, "", false, api.ExitOK, ""},
		{"ice commit again", []string{"ice", "commit", iceFile}, "", false, api.ExitFailure, "nonce"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := m.deckIO(t, IO{In: strings.NewReader(tc.stdin), IsTTY: tc.tty}, tc.args...)
			if r.code != tc.want {
				t.Fatalf("want exit %d\n%s", tc.want, r)
			}
			if tc.want != api.ExitOK && !strings.Contains(r.err, tc.stderr) {
				t.Errorf("stderr does not name the problem (%q)\n%s", tc.stderr, r)
			}
			if tc.want == api.ExitRefused && tc.tty && !strings.Contains(r.err, "Type YES to confirm: ") {
				t.Errorf("no %q prompt\n%s", "Type YES to confirm:", r)
			}
		})
	}
	// Nothing above that was refused may have committed: n1 stays uncordoned.
	if n1 := nodeByLabel(m.status(t), "n1"); n1 == nil || n1.Cordoned {
		t.Errorf("a refused cordon committed: %+v", n1)
	}
}

// verbCase is one verb committed by testAdminVerbs or testICEVerbs. args
// and effect are fixed, or prep computes them right before the commit
// (reading the state the effect is compared with, or arranging one in which
// the effect is observable).
type verbCase struct {
	verb   api.Verb
	args   []string
	effect func(statusDoc) string // "" once the effect shows
	prep   func(t *testing.T) ([]string, func(statusDoc) string)
}

func (c verbCase) resolve(t *testing.T) ([]string, func(statusDoc) string) {
	if c.prep != nil {
		return c.prep(t)
	}
	return c.args, c.effect
}

// maintenanceIs checks a node's maintenance state is one of states.
func maintenanceIs(label string, states ...string) func(statusDoc) string {
	return func(d statusDoc) string {
		nd := nodeByLabel(d, label)
		if nd == nil {
			return "no node " + label
		}
		if slices.Contains(states, nd.Maintenance) {
			return ""
		}
		return fmt.Sprintf("%s maintenance %q, want one of %v", label, nd.Maintenance, states)
	}
}

// draining checks a drain took effect: the node is draining with the moves
// it still has to make listed as pending actions, or already drained. A
// failed drain (drain-failed) is not success.
func draining(label string) func(statusDoc) string {
	return func(d statusDoc) string {
		nd := nodeByLabel(d, label)
		switch {
		case nd == nil:
			return "no node " + label
		case nd.Maintenance == "maintenance":
			return ""
		case nd.Maintenance == "entering-maintenance" && len(nd.Pending) > 0:
			return ""
		}
		return fmt.Sprintf("%s maintenance %q with pending %+v, want entering-maintenance with its moves pending, or maintenance", label, nd.Maintenance, nd.Pending)
	}
}

// testAdminVerbs commits every admin verb with --yes and checks its effect
// in `deck status` and its record in `deck audit`.
func testAdminVerbs(t *testing.T, m *testMesh) {
	before := m.status(t)
	n1 := nodeByLabel(before, "n1")
	if n1 == nil {
		t.Fatalf("no n1 in status")
	}
	daemon := ""
	for _, dm := range before.Daemons {
		if dm.Node.ID != n1.ID {
			daemon = dm.ID
			break
		}
	}
	if daemon == "" {
		t.Fatalf("no daemon outside n1 to restart: %+v", before.Daemons)
	}
	var avoidN2 []avoidDoc // n2's entries, left alone by clear-avoid-list on n1
	cordoned := ""         // the node invalidate-placement cordons
	cases := []verbCase{
		{verb: api.VerbCordon, args: []string{"--node", "n2"}, effect: func(d statusDoc) string {
			if nd := nodeByLabel(d, "n2"); nd == nil || !nd.Cordoned {
				return "n2 not cordoned"
			}
			return ""
		}},
		{verb: api.VerbUncordon, args: []string{"--node", "n2"}, effect: func(d statusDoc) string {
			if nd := nodeByLabel(d, "n2"); nd == nil || nd.Cordoned {
				return "n2 still cordoned"
			}
			return ""
		}},
		{verb: api.VerbRestartDaemon, prep: func(t *testing.T) ([]string, func(statusDoc) string) {
			was := daemonRestarts(m.status(t), daemon)
			if was < 0 {
				t.Fatalf("daemon %s is gone from status", daemon)
			}
			return []string{"--daemon", daemon}, func(d statusDoc) string {
				if got := daemonRestarts(d, daemon); got <= was {
					return fmt.Sprintf("%s restarts %d, was %d before the restart", daemon, got, was)
				}
				return ""
			}
		}},
		{verb: api.VerbRestartAllDaemons, prep: func(t *testing.T) ([]string, func(statusDoc) string) {
			// Placement decides which node runs what (load and timing move
			// daemons around), so restart the node running the most
			// daemons now rather than a fixed one.
			d := m.status(t)
			host, was := busiestNode(d)
			if host == nil {
				t.Fatalf("no node runs a daemon to restart: %+v", d.Daemons)
			}
			label, id := host.Label, host.ID
			return []string{"--node", label}, func(d statusDoc) string {
				for _, dm := range d.Daemons {
					if n, ok := was[dm.ID]; ok && dm.Node.ID == id && dm.Restarts <= n {
						return fmt.Sprintf("%s on %s: restarts %d, was %d", dm.ID, label, dm.Restarts, n)
					}
				}
				return ""
			}
		}},
		{verb: api.VerbClearAvoidList, prep: func(t *testing.T) ([]string, func(statusDoc) string) {
			// Slow the n1–n2 link until each avoids the other, heal it
			// and let the RTT settle (else the entry comes straight back).
			heal := m.slowLinks(t, [][2]int{{0, 1}}, 600*time.Millisecond)
			m.waitAvoiding(t, 0, 1)
			m.waitAvoiding(t, 1, 0)
			heal()
			m.waitRTTSettled(t)
			d := m.status(t)
			old := nodeByLabel(d, "n1").Avoid
			avoidN2 = nodeByLabel(d, "n2").Avoid
			if len(old) == 0 || len(avoidN2) == 0 {
				t.Fatalf("status does not show the avoid entries the slow link made: n1 %+v, n2 %+v", old, avoidN2)
			}
			return []string{"--node", "n1"}, func(d statusDoc) string {
				if left := sameAvoid(nodeByLabel(d, "n1").Avoid, old); len(left) > 0 {
					return fmt.Sprintf("n1 still avoids %+v", left)
				}
				if kept := sameAvoid(nodeByLabel(d, "n2").Avoid, avoidN2); len(kept) != len(avoidN2) {
					return fmt.Sprintf("clearing n1's avoid list touched n2's: %+v, was %+v", nodeByLabel(d, "n2").Avoid, avoidN2)
				}
				return ""
			}
		}},
		// n2's list too, so the rest of the suite runs without avoid entries.
		{verb: api.VerbClearAvoidList, prep: func(t *testing.T) ([]string, func(statusDoc) string) {
			return []string{"--node", "n2"}, func(d statusDoc) string {
				if left := sameAvoid(nodeByLabel(d, "n2").Avoid, avoidN2); len(left) > 0 {
					return fmt.Sprintf("n2 still avoids %+v", left)
				}
				return ""
			}
		}},
		{verb: api.VerbDropReplicas, prep: func(t *testing.T) ([]string, func(statusDoc) string) {
			return m.dropPlan(t)
		}},
		{verb: api.VerbDrain, args: []string{"--node", "n3", "--drain-for", "1m"}, effect: draining("n3")},
		{verb: api.VerbExitMaintenance, args: []string{"--node", "n3"},
			effect: maintenanceIs("n3", "exiting-maintenance", "recovery", "active")},
		{verb: api.VerbEnterMaintenance, args: []string{"--node", "n3", "--deadline", "1m"}, effect: draining("n3")},
		{verb: api.VerbExitMaintenance, args: []string{"--node", "n3"},
			effect: maintenanceIs("n3", "exiting-maintenance", "recovery", "active")},
		{verb: api.VerbInvalidatePlacement, prep: func(t *testing.T) ([]string, func(statusDoc) string) {
			return m.invalidatePlan(t, &cordoned)
		}},
		{verb: api.VerbUncordon, prep: func(t *testing.T) ([]string, func(statusDoc) string) {
			label := cordoned
			if label == "" {
				t.Fatal("invalidate-placement cordoned no node")
			}
			return []string{"--node", label}, func(d statusDoc) string {
				if nd := nodeByLabel(d, label); nd == nil || nd.Cordoned {
					return label + " still cordoned"
				}
				return ""
			}
		}},
	}
	covered := map[api.Verb]bool{}
	var receipts []receiptDoc
	for _, tc := range cases {
		covered[tc.verb] = true
		t.Run(string(tc.verb), func(t *testing.T) {
			args, effect := tc.resolve(t)
			args = append([]string{"admin", string(tc.verb), "--yes", "--identity", "alice", "-o", "json"}, args...)
			rc := decodeJSON[receiptDoc](t, m.must(t, api.ExitOK, args...))
			if rc.Verb != string(tc.verb) || rc.ICE {
				t.Fatalf("receipt %+v", rc)
			}
			receipts = append(receipts, rc)
			eventually(t, 45*time.Second, func() string { return effect(m.status(t)) })
		})
	}
	for _, v := range api.AdminVerbs {
		if !covered[v] {
			t.Errorf("admin verb %s is not tested", v)
		}
	}
	// Every commit's record, in one read of the ledger.
	eventually(t, 20*time.Second, func() string {
		recs := m.audit(t, "--recent", "0")
		for _, rc := range receipts {
			rec := auditHas(recs, rc.EventID)
			switch {
			case rec == nil:
				return fmt.Sprintf("audit lacks %s %s", rc.Verb, rc.EventID)
			case rec.Outcome != "accepted" || rec.Command != rc.Verb || rec.OperatorName != "alice" || rec.ICE:
				return fmt.Sprintf("audit record %+v", *rec)
			}
		}
		return ""
	})
	// The pretty audit names the operator and the node labels.
	r := m.must(t, api.ExitOK, "audit", "--recent", "0")
	for _, want := range []string{"alice", "cordon", "node:n2", "daemon:" + daemon, "restart-all-daemons"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("pretty audit lacks %q:\n%s", want, r.out)
		}
	}
}

// busiestNode is the mesh node running the most daemons in d (nil if none
// runs any) with each of its daemons' restart count.
func busiestNode(d statusDoc) (*nodeDoc, map[string]int) {
	var best *nodeDoc
	var bestRuns map[string]int
	for i := range d.Nodes {
		nd := &d.Nodes[i]
		if nd.Observer {
			continue
		}
		runs := map[string]int{}
		for _, dm := range d.Daemons {
			if dm.Node.ID == nd.ID {
				runs[dm.ID] = dm.Restarts
			}
		}
		if len(runs) > len(bestRuns) {
			best, bestRuns = nd, runs
		}
	}
	return best, bestRuns
}

// dropPlan picks a replica to drop, a chain a mesh node holds right now by
// its own account, and returns the drop-replicas args with the effect.
//
// Where the replicas sit is placement's choice and moves with load, so the
// node and chain are read at commit time, not fixed. The effect is the drop
// itself: the node lets the replica go. Placement may hand the same chain
// straight back to the same node (a chain with as many replicas as there are
// nodes must come back), so "status no longer lists it" can be a moment too
// short for any status read; the node's own snapshot (watched from the
// commit on) or its log of the drop shows it then.
func (m *testMesh) dropPlan(t *testing.T) ([]string, func(statusDoc) string) {
	t.Helper()
	d := m.status(t)
	label, chain := "", ""
	var nd *node.Node
	for i, mn := range m.nodes {
		sv := nodeByLabel(d, fmt.Sprintf("n%d", i+1))
		self := mn.Cluster().Node(mn.ID())
		if sv == nil || self == nil {
			continue
		}
		for _, r := range self.Replicas {
			// Status agrees: the console has heard the node hold it.
			if slices.Contains(sv.Chains, r.Chain) {
				label, chain, nd = sv.Label, r.Chain, mn
				break
			}
		}
		if nd != nil {
			break
		}
	}
	if nd == nil {
		t.Fatalf("no node holds a replica to drop: %+v", d.Nodes)
	}
	gone := m.watchReplicaGone(t, nd, chain)
	logged := false
	return []string{"--node", label, "--chains", chain}, func(d statusDoc) string {
		sv := nodeByLabel(d, label)
		if sv == nil {
			return "no node " + label
		}
		if !slices.Contains(sv.Chains, chain) || gone() {
			return ""
		}
		if !logged {
			r := m.must(t, api.ExitOK, "logs", "-o", "json", "--node", label, "--match", "dropped replica of "+chain+" by operator")
			logged = strings.Contains(r.out, "dropped replica of "+chain)
		}
		if logged {
			return ""
		}
		return fmt.Sprintf("%s still holds %s and never dropped it", label, chain)
	}
}

// watchReplicaGone watches nd's own published snapshot for up to a minute
// for a moment without a replica of chain; gone reports whether one showed.
func (m *testMesh) watchReplicaGone(t *testing.T, nd *node.Node, chain string) (gone func() bool) {
	var mu sync.Mutex
	seen := false
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		for end := time.Now().Add(time.Minute); time.Now().Before(end); {
			if nv := nd.Cluster().Node(nd.ID()); nv != nil &&
				!slices.ContainsFunc(nv.Replicas, func(r snapshot.Replica) bool { return r.Chain == chain }) {
				mu.Lock()
				seen = true
				mu.Unlock()
				return
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
}

// daemonRestarts is daemon's restart count in d, -1 if status lacks it.
func daemonRestarts(d statusDoc, daemon string) int {
	for _, dm := range d.Daemons {
		if dm.ID == daemon {
			return dm.Restarts
		}
	}
	return -1
}

// sameAvoid returns the entries of now that are entries of was (same peer,
// same expiry): an entry cleared and re-added has a new expiry.
func sameAvoid(now, was []avoidDoc) []avoidDoc {
	var out []avoidDoc
	for _, e := range now {
		for _, w := range was {
			if e.Peer.ID == w.Peer.ID && e.Until == w.Until {
				out = append(out, e)
			}
		}
	}
	return out
}

// invalidatePlan cordons the busiest active node and returns the args of
// invalidate-placement on it with the effect. Recomputing a node's
// assignment from scratch changes nothing when the fresh placement equals
// the sticky one; on a cordoned node (which takes no new placements) it
// moves every daemon the preview can place elsewhere. The effect: each
// daemon predicted to move leaves the node, or MeshOS on the node decides
// the move (a pending migration) and a gate such as cluster backpressure
// holds it; the node also logs that it re-placed its work. *cordoned is set
// to the node's label, for the uncordon that follows.
//
// Every node places the invalidated node's work as if new for
// meshos.InvalidateHold; a move a gate holds shows as a pending migration
// on the node meanwhile. `deck status` can miss a short pending entry, so a
// watcher reads the node's own published snapshot (what status renders once
// gossiped) from the commit on.
func (m *testMesh) invalidatePlan(t *testing.T, cordoned *string) ([]string, func(statusDoc) string) {
	t.Helper()
	d := m.status(t)
	// The busiest active node now: placement decides who runs what, so a
	// fixed node may run nothing. (A node still recovering from the
	// maintenance steps before is left alone.)
	label, most := "", 0
	for i := range m.nodes {
		l := fmt.Sprintf("n%d", i+1)
		if nd := nodeByLabel(d, l); nd != nil && nd.Maintenance == "active" && nd.Daemons > most {
			label, most = l, nd.Daemons
		}
	}
	if label == "" {
		t.Fatalf("no active node runs a daemon to re-place: %+v", d.Nodes)
	}
	m.must(t, api.ExitOK, "admin", "cordon", "--node", label, "--yes", "--identity", "alice")
	*cordoned = label
	eventually(t, 20*time.Second, func() string {
		if nd := nodeByLabel(m.status(t), label); nd == nil || !nd.Cordoned {
			return label + " is not cordoned yet"
		}
		return ""
	})
	r := m.must(t, api.ExitOK, "admin", "invalidate-placement", "--node", label, "--preview", "-o", "json")
	d = m.status(t)
	nd := nodeByLabel(d, label)
	var moving []string
	for _, mv := range decodeJSON[previewDoc](t, r).Migrated {
		if mv.From.ID == nd.ID && mv.To != nil {
			moving = append(moving, mv.Daemon)
		}
	}
	if len(moving) == 0 {
		t.Fatalf("the invalidate-placement preview of cordoned %s predicts no move, so its effect cannot be observed:\n%s", label, r.out)
	}
	for _, p := range nd.Pending {
		for _, dm := range moving {
			if p.ID == "migrate:"+dm {
				t.Fatalf("%s already had a pending migration of %s before invalidate-placement: %+v", label, dm, nd.Pending)
			}
		}
	}
	id := nd.ID
	decided := m.watchPending(t, label, moving)
	logged := false
	return []string{"--node", label}, func(d statusDoc) string {
		nd := nodeByLabel(d, label)
		if nd == nil {
			return "no node " + label
		}
		if !logged {
			r := m.must(t, api.ExitOK, "logs", "-o", "json", "--node", label, "--match", "placement invalidated by operator")
			if logged = strings.Contains(r.out, "placement invalidated"); !logged {
				return label + " has not logged that it re-placed its work"
			}
		}
		for _, dm := range moving {
			pending := slices.ContainsFunc(nd.Pending, func(p pendingDoc) bool { return p.ID == "migrate:"+dm })
			for _, x := range d.Daemons {
				if x.ID == dm && x.Node.ID == id && !pending && !decided(dm) {
					return fmt.Sprintf("%s still runs %s and never decided to move it (predicted to move)", label, dm)
				}
			}
		}
		return ""
	}
}

// watchPending watches node label's own snapshot for a pending migration
// of each daemon for up to a minute; decided reports whether one showed.
func (m *testMesh) watchPending(t *testing.T, label string, daemons []string) (decided func(string) bool) {
	var i int
	if _, err := fmt.Sscanf(label, "n%d", &i); err != nil || i < 1 || i > len(m.nodes) {
		t.Fatalf("no mesh node %q", label)
	}
	nd := m.nodes[i-1]
	var mu sync.Mutex
	seen := map[string]bool{}
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		for end := time.Now().Add(time.Minute); time.Now().Before(end); {
			if nv := nd.Cluster().Node(nd.ID()); nv != nil {
				mu.Lock()
				for _, p := range nv.Pending {
					for _, dm := range daemons {
						if p.ID == "migrate:"+dm {
							seen[dm] = true
						}
					}
				}
				mu.Unlock()
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func(dm string) bool {
		mu.Lock()
		defer mu.Unlock()
		return seen[dm]
	}
}

func testLogs(t *testing.T, m *testMesh) {
	type logDoc struct {
		Node   jsonID `json:"node"`
		Label  string `json:"label"`
		Daemon string `json:"daemon"`
		Level  string `json:"level"`
		Text   string `json:"text"`
		At     string `json:"at"`
	}
	decode := func(r result) []logDoc {
		var out []logDoc
		dec := json.NewDecoder(strings.NewReader(r.out))
		for {
			var d logDoc
			if err := dec.Decode(&d); err == io.EOF {
				return out
			} else if err != nil {
				t.Fatalf("logs -o json: %v\n%s", err, r)
			}
			out = append(out, d)
		}
	}
	all := decode(m.must(t, api.ExitOK, "logs", "-o", "json"))
	labels := map[string]bool{}
	for i, l := range all {
		labels[l.Label] = true
		if i > 0 && l.At < all[i-1].At {
			t.Errorf("logs out of time order: %s after %s", l.At, all[i-1].At)
		}
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		if !labels[n] {
			t.Errorf("logs has no record from %s (labels %v)", n, labels)
		}
	}
	for _, l := range decode(m.must(t, api.ExitOK, "logs", "-o", "json", "--node", "n2")) {
		if l.Label != "n2" {
			t.Errorf("--node n2 printed a record of %s: %+v", l.Label, l)
		}
	}
	warn := decode(m.must(t, api.ExitOK, "logs", "-o", "json", "--level", "warn"))
	for _, l := range warn {
		if l.Level != "WARN" && l.Level != "ERROR" {
			t.Errorf("--level warn printed %+v", l)
		}
	}
	// A node backfills its most recent records only: restart a daemon now
	// so its log line is recent.
	daemon := m.status(t).Daemons[0].ID
	m.must(t, api.ExitOK, "admin", "restart-daemon", "--daemon", daemon, "--yes", "--identity", "alice")
	var restarted []logDoc
	eventually(t, 30*time.Second, func() string {
		restarted = decode(m.must(t, api.ExitOK, "logs", "-o", "json", "--match", "RESTARTED BY OPERATOR"))
		if len(restarted) == 0 {
			return "--match found no operator restart"
		}
		return ""
	})
	for _, l := range restarted {
		if !strings.Contains(strings.ToLower(l.Text), "restarted by operator") {
			t.Errorf("--match printed %+v", l)
		}
	}
	if len(restarted) > 0 {
		d := restarted[0].Daemon
		for _, l := range decode(m.must(t, api.ExitOK, "logs", "-o", "json", "--daemon", d)) {
			if l.Daemon != d {
				t.Errorf("--daemon %s printed %+v", d, l)
			}
		}
	}
	// --follow prints records newer than the command until it is stopped.
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	var fout, ferr strings.Builder
	start := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	code := MainContext(ctx, []string{"--cluster", m.clusterPath, "logs", "--follow", "-o", "json"},
		IO{In: strings.NewReader(""), Out: &fout, Err: &ferr})
	if code != api.ExitOK {
		t.Fatalf("logs --follow stopped by its context: exit %d\n%s", code, ferr.String())
	}
	live := 0
	for _, l := range decode(result{out: fout.String()}) {
		if l.At > start {
			live++
		}
	}
	if live == 0 {
		t.Errorf("logs --follow printed no record newer than its start in 6 s:\n%s", fout.String())
	}
	pretty := m.must(t, api.ExitOK, "logs", "--node", "n1", "--level", "info")
	if !strings.Contains(pretty.out, " n1 ") {
		t.Errorf("pretty logs do not name the node:\n%s", pretty.out)
	}
}

func testAuditFilters(t *testing.T, m *testMesh) {
	all := m.audit(t, "--recent", "0")
	if len(all) < 5 {
		t.Fatalf("audit has %d events, the tests before committed more", len(all))
	}
	if got := m.audit(t, "--recent", "2"); len(got) != 2 || got[1].EventID != all[len(all)-1].EventID {
		t.Errorf("--recent 2: %+v", got)
	}
	if got := m.audit(t, "--recent", "0", "--operator", "alice"); len(got) != len(all) {
		t.Errorf("--operator alice: %d of %d", len(got), len(all))
	}
	if got := m.audit(t, "--operator", m.ops["mallory"].ID.String()); len(got) != 0 {
		t.Errorf("--operator mallory's id: %+v", got)
	}
	force := m.audit(t, "--recent", "0", "--force-only")
	for _, r := range force {
		if !r.ICE {
			t.Errorf("--force-only printed %+v", r)
		}
	}
	if len(force) == 0 {
		t.Errorf("--force-only: the flush-avoid-lists commit is missing")
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if got := m.audit(t, "--between", future+","+time.Now().Add(2*time.Hour).UTC().Format(time.RFC3339)); len(got) != 0 {
		t.Errorf("--between in the future: %+v", got)
	}

	// --since SEQ and --between T0 T1 over windows that hold events and
	// leave some out. Ledger records only: this console's local
	// rejections (if any) have no ledger position.
	var ledger []auditDoc
	for _, r := range all {
		if !r.Local {
			ledger = append(ledger, r)
		}
	}
	ids := func(recs []auditDoc) []string {
		var out []string
		for _, r := range recs {
			if !r.Local {
				out = append(out, r.EventID)
			}
		}
		return out
	}
	mid := ledger[len(ledger)/2].Seq
	var after []auditDoc
	for _, r := range ledger {
		if r.Seq > mid {
			after = append(after, r)
		}
	}
	if got := m.audit(t, "--recent", "0", "--since", fmt.Sprint(mid)); !slices.Equal(ids(got), ids(after)) || len(after) == 0 {
		t.Errorf("--since %d: got %v, want the %d events after it %v", mid, ids(got), len(after), ids(after))
	}
	t0, t1 := ledger[1].IssuedAt, ledger[len(ledger)-2].IssuedAt
	var inside []auditDoc
	for _, r := range ledger {
		if r.IssuedAt >= t0 && r.IssuedAt <= t1 { // ISO 8601 UTC, one format: ordered as strings
			inside = append(inside, r)
		}
	}
	if len(inside) == 0 || len(inside) == len(ledger) {
		t.Fatalf("window %s..%s holds %d of %d events: the test needs one that holds some and leaves some out", t0, t1, len(inside), len(ledger))
	}
	for _, spelling := range [][]string{
		{"--between", t0, t1},
		{"--between", t0 + "," + t1},
		{"--between", t0, "--between", t1},
	} {
		got := m.audit(t, append([]string{"--recent", "0"}, spelling...)...)
		if !slices.Equal(ids(got), ids(inside)) {
			t.Errorf("%v: got %v, want %v", spelling, ids(got), ids(inside))
		}
	}
	m.must(t, api.ExitInvalid, "audit", "--between", t0, t1, "extra")
	m.must(t, api.ExitInvalid, "audit", "--between", t1, t0)
	if r := m.must(t, api.ExitOK, "audit", "--verify"); !strings.Contains(r.out, "intact") {
		t.Errorf("--verify:\n%s", r)
	}
}

// TestICECoSigning is the M-of-N flow: alice proposes and signs, bob
// co-signs, anyone commits; one operator's signature twice counts once.
func TestICECoSigning(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{nodes: 3, iceThreshold: 2, operators: []string{"alice", "bob"}})
	p := filepath.Join(t.TempDir(), "p.ice")

	r := m.must(t, api.ExitPermission, "ice", "freeze-cluster", "--reason", "x", "--ttl", "30s", "--yes", "--identity", "alice")
	if !strings.Contains(r.err, "--sign-only") {
		t.Errorf("a lone ICE commit below threshold should point at --sign-only:\n%s", r)
	}

	r = m.must(t, api.ExitOK, "ice", "freeze-cluster", "--reason", "x", "--ttl", "30s", "--sign-only", "--out", p, "--identity", "alice")
	if !strings.Contains(r.out, "1 of 2 signatures") || !strings.Contains(r.out, "deck ice sign") {
		t.Errorf("sign-only does not say what comes next:\n%s", r)
	}
	bob := strings.TrimSpace(m.must(t, api.ExitOK, "ice", "sign", p, "--identity", "bob").out)
	if !strings.HasPrefix(bob, "deck-sig:") || strings.Contains(bob, "\n") {
		t.Fatalf("ice sign printed %q, want one signature line", bob)
	}
	r = m.must(t, api.ExitOK, "ice", "sign", p, "--identity", "alice")
	alice := strings.TrimSpace(r.out)
	if !strings.Contains(r.err, "already signed") {
		t.Errorf("signing twice should warn:\n%s", r)
	}

	r = m.must(t, api.ExitPermission, "ice", "commit", p, "--sig", alice)
	if !strings.Contains(r.err, "1 operator (alice)") {
		t.Errorf("below-threshold error should name who signed:\n%s", r)
	}
	m.must(t, api.ExitInvalid, "ice", "commit", p, "--sig", "deck-sig:garbage")

	rc := decodeJSON[receiptDoc](t, m.must(t, api.ExitOK, "ice", "commit", p, "--sig", bob, "-o", "json"))
	if rc.Verb != "freeze-cluster" || !rc.ICE || rc.Signatures != 2 {
		t.Errorf("receipt %+v", rc)
	}

	eventually(t, 20*time.Second, func() string {
		d := m.status(t)
		if d.Freeze == nil || d.Freeze.Reason != "x" || d.Freeze.RemainingMs <= 0 {
			return fmt.Sprintf("status shows no freeze: %+v", d.Freeze)
		}
		return ""
	})
	if r := m.must(t, api.ExitOK, "status"); !strings.Contains(r.out, "FROZEN by alice: x") {
		t.Errorf("pretty status lacks the freeze banner:\n%s", r.out)
	}
	// A frozen cluster refuses routine admin commands (exit 1) and says why.
	if r := m.must(t, api.ExitFailure, "admin", "cordon", "--node", "n1", "--yes", "--identity", "bob"); !strings.Contains(r.err, "frozen") || !strings.Contains(r.err, "thaw-cluster") {
		t.Errorf("cordon while frozen: the error should say the cluster is frozen and how to thaw it:\n%s", r)
	}
	eventually(t, 20*time.Second, func() string {
		recs := m.audit(t, "--force-only")
		rec := auditHas(recs, rc.EventID)
		if rec == nil {
			return fmt.Sprintf("audit --force-only lacks %s: %+v", rc.EventID, recs)
		}
		if !rec.ICE || rec.Command != "freeze-cluster" || rec.Outcome != "accepted" || len(rec.Signatures) != 2 {
			return fmt.Sprintf("audit record %+v", *rec)
		}
		ids := map[uint64]bool{rec.Signatures[0].ID: true, rec.Signatures[1].ID: true}
		if !ids[uint64(m.ops["alice"].ID)] || !ids[uint64(m.ops["bob"].ID)] {
			return fmt.Sprintf("signatures %+v are not alice's and bob's", rec.Signatures)
		}
		return ""
	})
	m.must(t, api.ExitFailure, "ice", "commit", p, "--sig", bob) // the nonce is spent
}

// TestNotConnected: a cluster file whose bootstrap answers nothing exits 6
// within the join bound, and says where it looked.
func TestNotConnected(t *testing.T) {
	t.Parallel()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := pc.LocalAddr().String()
	pc.Close()
	op, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.NewCluster("ghost", []string{dead}, []config.Operator{config.NewOperator("alice", op.Public)}, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cluster.toml")
	if err := config.WriteCluster(path, c, false); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := run(t, IO{}, "--cluster", path, "status")
	if r.code != api.ExitNotConnected {
		t.Fatalf("want exit 6\n%s", r)
	}
	if took := time.Since(start); took > joinTimeout+10*time.Second {
		t.Errorf("took %v to give up, the bound is %v", took, joinTimeout)
	}
	if !strings.Contains(r.err, dead) {
		t.Errorf("error does not say where it looked (%s):\n%s", dead, r)
	}
}

// TestCommitTimeout: the console joins, shows the preview and asks for
// YES; while it waits, every node of the mesh stops answering. The commit
// gets no acknowledgement and exits 7.
func TestCommitTimeout(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{nodes: 3, iceThreshold: 1, operators: []string{"alice"}})
	inR, inW := io.Pipe()
	defer inW.Close()
	stderr := &promptWatch{prompt: "Type YES", seen: make(chan struct{})}
	var out strings.Builder
	done := make(chan int, 1)
	go func() {
		done <- Main([]string{"--cluster", m.clusterPath, "admin", "cordon", "--node", "n2", "--identity", "alice"},
			IO{In: inR, Out: &out, Err: stderr, IsTTY: true})
	}()
	select {
	case <-stderr.seen:
	case code := <-done:
		t.Fatalf("exited %d before asking for YES:\n%s", code, stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("no YES prompt:\n%s", stderr.String())
	}
	for _, fc := range m.faults {
		fc.Pause(true)
	}
	defer func() {
		for _, fc := range m.faults {
			fc.Pause(false)
		}
	}()
	fmt.Fprintln(inW, "YES")
	select {
	case code := <-done:
		if code != api.ExitTimeout {
			t.Fatalf("exit %d, want 7\nstdout %s\nstderr %s", code, out.String(), stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the commit never gave up:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "timed out") {
		t.Errorf("stderr does not say it timed out:\n%s", stderr.String())
	}
}

// promptWatch is a concurrency-safe stderr that signals when prompt shows.
type promptWatch struct {
	mu     sync.Mutex
	buf    strings.Builder
	prompt string
	seen   chan struct{}
	once   sync.Once
}

func (p *promptWatch) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf.Write(b)
	if strings.Contains(p.buf.String(), p.prompt) {
		p.once.Do(func() { close(p.seen) })
	}
	return len(b), nil
}

func (p *promptWatch) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.String()
}

// TestIdentity covers the identity store through the CLI: generate, the
// exit 4 of a second generate, ls, show and the exit 3 of an unknown name.
func TestIdentity(t *testing.T) {
	t.Setenv(config.XDGConfigEnv, t.TempDir())
	r := run(t, IO{}, "identity", "generate", "carol")
	if r.code != api.ExitOK || !strings.Contains(r.out, "carol") {
		t.Fatalf("generate:\n%s", r)
	}
	r = run(t, IO{}, "identity", "generate", "carol")
	if r.code != api.ExitExists || !strings.Contains(r.err, "carol") {
		t.Fatalf("second generate: want exit 4 naming carol\n%s", r)
	}
	if r := run(t, IO{}, "identity", "generate", "../evil"); r.code != api.ExitInvalid {
		t.Errorf("generate ../evil: want exit 2\n%s", r)
	}
	r = run(t, IO{}, "identity", "ls", "-o", "json")
	var rows []struct {
		Name      string `json:"name"`
		PublicKey string `json:"public_key"`
	}
	if err := json.Unmarshal([]byte(r.out), &rows); err != nil || len(rows) != 1 || rows[0].Name != "carol" {
		t.Fatalf("ls: %v\n%s", err, r)
	}
	show := run(t, IO{}, "identity", "show", "carol")
	if show.code != api.ExitOK || !strings.Contains(show.out, rows[0].PublicKey) {
		t.Errorf("show:\n%s", show)
	}
	if r := run(t, IO{}, "identity", "show", "dave"); r.code != api.ExitNotFound {
		t.Errorf("show dave: want exit 3\n%s", r)
	}
	ops := filepath.Join(os.Getenv(config.XDGConfigEnv), "deck", "operators")
	st, err := os.Stat(filepath.Join(ops, "carol.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v", st, err)
	}

	// The new operator creates a cluster; a second init on the same file
	// exits 4, and a cluster without operators is refused up front.
	file := filepath.Join(t.TempDir(), "lab.toml")
	initArgs := []string{"node", "init", "--cluster", "lab", "--out", file, "--bootstrap", "127.0.0.1:7946",
		"--operator", filepath.Join(ops, "carol.pub"), "--demo-workload"}
	if r := run(t, IO{}, initArgs...); r.code != api.ExitOK || !strings.Contains(r.out, file) {
		t.Fatalf("node init:\n%s", r)
	}
	c, _, err := config.LoadCluster(file)
	if err != nil || len(c.Genesis.Operators) != 1 || c.Genesis.Operators[0].Name != "carol" || len(c.Workload) == 0 {
		t.Fatalf("cluster file: %+v %v", c, err)
	}
	if r := run(t, IO{}, initArgs...); r.code != api.ExitExists {
		t.Errorf("second node init: want exit 4\n%s", r)
	}
	if r := run(t, IO{}, "node", "init", "--cluster", "lab", "--out", file+".2"); r.code != api.ExitInvalid || !strings.Contains(r.err, "--operator") {
		t.Errorf("node init without operators: want exit 2 naming --operator\n%s", r)
	}
}
