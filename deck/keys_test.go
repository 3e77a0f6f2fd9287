package deck

import (
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/deck-mesh/deck/deck/decktest"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/tabs"
	"github.com/deck-mesh/deck/widgets"
)

// TestPageKeysOnEveryList: PgDn moves the cursor off the first row and PgUp
// brings it back, the same on every list (FEATURES: cursor keys work the
// same on every list).
func TestPageKeysOnEveryList(t *testing.T) {
	for _, tc := range []struct{ name, key string }{
		{"NODES", "2"}, {"DAEMONS", "3"}, {"GROUPS", "4"}, {"CHAINS", "5"}, {"MIGRATIONS", "6"},
		{"MAINTENANCE", "7"}, {"AUDIT", "0"}, {"FAILURES", "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestModel(t, quiet(t), 80, 24, nil)
			press(t, m, tc.key, "g")
			if got := m.screen().Name(); got != tc.name {
				t.Fatalf("key %s opened %s", tc.key, got)
			}
			frame(t, m) // lays the list out: a page is what the last frame showed
			first := m.screen().Selection()
			press(t, m, "pgdown")
			if got := m.screen().Selection(); got == first {
				t.Fatalf("pgdown did not move the cursor from %+v", first)
			}
			press(t, m, "pgup")
			if got := m.screen().Selection(); got != first {
				t.Fatalf("pgup moved to %+v, want back on %+v", got, first)
			}
		})
	}
}

// TestActionKeysCommitTheirVerb drives every action key FEATURES.md lists
// for NODES, DAEMONS, GROUPS, CHAINS and MIGRATIONS on a selected row: the
// key opens its flow (parameter prompt, picker, or the confirm with the
// blast radius, titled with the verb), and answering it and typing YES
// commits exactly the action for the selection through the Client API.
func TestActionKeysCommitTheirVerb(t *testing.T) {
	stray := func(v api.Verb) api.Action { return api.Action{Verb: v, Node: decktest.Straylight} }
	nodes := []string{"2", "j", "j", "j", "j", "j"} // straylight (NODES sorts by label)
	chain := []string{"5", "j", "j"}                // ledger
	firstMig := tabs.AllMigrations(decktest.Quiet())[0].ID
	tests := []struct {
		name   string
		sel    []string // tab and row
		key    string
		modal  string   // the flow's first modal: prompt, picker or confirm
		params []string // answers to prompts and pickers, before YES
		want   api.Action
	}{
		{"NODES c cordon", nodes, "c", "confirm", nil, stray(api.VerbCordon)},
		{"NODES C uncordon", nodes, "C", "confirm", nil, stray(api.VerbUncordon)},
		{"NODES d drain", nodes, "d", "prompt", []string{"type:5m", "enter"}, api.Action{Verb: api.VerbDrain, Node: decktest.Straylight, Duration: 5 * time.Minute}},
		{"NODES m enter maintenance", nodes, "m", "prompt", []string{"type:10m", "enter"}, api.Action{Verb: api.VerbEnterMaintenance, Node: decktest.Straylight, Duration: 10 * time.Minute}},
		{"NODES M exit maintenance", nodes, "M", "confirm", nil, stray(api.VerbExitMaintenance)},
		{"NODES a clear avoid", nodes, "a", "confirm", nil, stray(api.VerbClearAvoidList)},
		{"NODES i invalidate placement", nodes, "i", "confirm", nil, stray(api.VerbInvalidatePlacement)},
		{"NODES D drop replicas", nodes, "D", "confirm", nil, stray(api.VerbDropReplicas)},
		{"NODES X restart all daemons", nodes, "X", "confirm", nil, stray(api.VerbRestartAllDaemons)},
		{"NODES ctrl+d force-drain", nodes, "ctrl+d", "confirm", nil, stray(api.VerbForceDrain)},
		{"NODES F freeze", nodes, "F", "prompt", []string{"type:drill", "enter", "type:10m", "enter"}, api.Action{Verb: api.VerbFreezeCluster, Reason: "drill", Duration: 10 * time.Minute}},
		{"NODES T thaw", nodes, "T", "confirm", nil, api.Action{Verb: api.VerbThawCluster}},
		{"NODES A flush avoid lists", nodes, "A", "confirm", nil, api.Action{Verb: api.VerbFlushAvoidLists}},
		{"NODES V revoke node", nodes, "V", "confirm", nil, stray(api.VerbRevokeNode)},
		// G: the last pending row, hosaka; admit-node carries the key it presented.
		{"NODES + admit node", []string{"2", "G"}, "+", "confirm", nil,
			api.Action{Verb: api.VerbAdmitNode, Node: decktest.Hosaka, OperatorKey: []byte(decktest.NodeKey("hosaka").Public)}},
		{"DAEMONS r restart", []string{"3", "j", "j", "j", "j", "j"}, "r", "confirm", nil, api.Action{Verb: api.VerbRestartDaemon, Daemon: "ingest-2"}},
		{"DAEMONS R force-restart", []string{"3", "j", "j", "j", "j", "j"}, "R", "confirm", nil, api.Action{Verb: api.VerbForceRestartDaemon, Daemon: "ingest-2"}},
		{"GROUPS r restart", []string{"4", "j", "right"}, "r", "confirm", nil, api.Action{Verb: api.VerbRestartDaemon, Daemon: "oracle-1"}},
		{"GROUPS R force-restart", []string{"4", "j", "right"}, "R", "confirm", nil, api.Action{Verb: api.VerbForceRestartDaemon, Daemon: "oracle-1"}},
		// The holder picker lists wintermute (leader), straylight: j picks straylight.
		{"CHAINS E force-evict", chain, "E", "picker", []string{"j", "enter"}, api.Action{Verb: api.VerbForceEvictReplica, Chain: "ledger", Peer: decktest.Straylight}},
		// The node picker lists every hosting node but the leader (gibson,
		// neuromancer, straylight …); the command plane takes a holder only:
		// j j picks straylight.
		{"CHAINS O force-cutover", chain, "O", "picker", []string{"j", "j", "enter"}, api.Action{Verb: api.VerbForceCutover, Chain: "ledger", Peer: decktest.Straylight}},
		{"MIGRATIONS K kill migration", []string{"6", "g"}, "K", "confirm", nil, api.Action{Verb: api.VerbKillMigration, Migration: firstMig}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := quietWith(t, 0, 1) // ICE verbs commit on the operator's own signature
			m := newTestModel(t, c, 80, 24, nil)
			press(t, m, tc.sel...)
			press(t, m, tc.key)
			if len(m.modals) != 1 {
				t.Fatalf("%s opened %d modals (toasts: %q)", tc.key, len(m.modals), allToasts(m))
			}
			var kind string
			switch m.modals[0].(type) {
			case *widgets.Prompt:
				kind = "prompt"
			case *widgets.Picker:
				kind = "picker"
			case *widgets.Confirm:
				kind = "confirm"
			}
			if kind != tc.modal {
				t.Fatalf("%s opened %T, want a %s", tc.key, m.modals[0], tc.modal)
			}
			if title, _ := m.modals[0].View(m.c.Theme, m.c.Now, 60); !strings.Contains(title, string(tc.want.Verb)) {
				t.Fatalf("modal title %q does not name %s", title, tc.want.Verb)
			}
			press(t, m, tc.params...)
			if _, ok := m.modals[len(m.modals)-1].(*widgets.Confirm); !ok || len(m.modals) != 1 {
				t.Fatalf("after the parameters the confirm should be up alone, have %T", m.modals)
			}
			if len(c.Committed())+len(c.ICECommitted()) != 0 {
				t.Fatal("committed before YES")
			}
			press(t, m, "type:YES", "enter")
			var got []api.Action
			if tc.want.Verb.IsICE() {
				for _, ic := range c.ICECommitted() {
					got = append(got, ic.Action)
				}
				if len(c.Committed()) != 0 {
					t.Fatalf("ICE verb committed as admin: %+v", c.Committed())
				}
			} else {
				got = c.Committed()
				if len(c.ICECommitted()) != 0 {
					t.Fatalf("admin verb committed as ICE: %+v", c.ICECommitted())
				}
			}
			if len(got) != 1 || !reflect.DeepEqual(got[0], tc.want) {
				t.Fatalf("committed %+v, want %+v (toasts: %q)", got, tc.want, allToasts(m))
			}
			if len(m.modals) != 0 {
				t.Fatalf("modals left open: %T", m.modals)
			}
		})
	}
}

// exportFile opens the export prompt with keys, submits the prefilled path
// and returns the written lines.
func exportFile(t *testing.T, m *Model, keys ...string) []string {
	t.Helper()
	press(t, m, keys...)
	p, ok := m.modals[len(m.modals)-1].(*widgets.Prompt)
	if !ok {
		t.Fatalf("%v did not open the path prompt: %T", keys, m.modals)
	}
	path := p.In.String()
	if !strings.HasPrefix(path, m.c.ExportDir) {
		t.Fatalf("path %q is not in the export directory %s", path, m.c.ExportDir)
	}
	press(t, m, "enter")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if toast := currentToast(m); !strings.Contains(toast, path) {
		t.Fatalf("toast %q does not name the path", toast)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != ExportFileMode {
		t.Fatalf("export mode %v %v, want %v", st.Mode().Perm(), err, os.FileMode(ExportFileMode))
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

func TestExportAudit(t *testing.T) {
	m := newTestModel(t, decktest.New(fixtureLogs), 80, 24, nil) // the whole ledger, ICE included
	lines := exportFile(t, m, "0", "e")
	recs := decktest.Audit()
	if len(lines) != len(recs)+1 || !strings.HasPrefix(lines[0], "SEQ\tWHEN\tOUTCOME") {
		t.Fatalf("exported %d lines (header %q), want a header and %d records", len(lines), lines[0], len(recs))
	}
	if !strings.HasPrefix(lines[1], strconv.Itoa(len(recs))+"\t") || !strings.Contains(lines[1], "ICE force-evict-replica") {
		t.Fatalf("newest record first: %q", lines[1])
	}
	// What the screen lists is what the file holds: f (ICE only) and `/`.
	lines = exportFile(t, m, "f", "e")
	if len(lines) != 1+3 {
		t.Fatalf("ICE-only export has %d lines:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for _, l := range lines[1:] {
		if !strings.Contains(l, "\tICE ") {
			t.Fatalf("non-ICE record in the ICE-only export: %q", l)
		}
	}
	lines = exportFile(t, m, "f", "/", "type:zion", "enter", "e")
	if len(lines) != 1+2 || !strings.Contains(lines[1], "node zion") || !strings.Contains(lines[2], "node zion") {
		t.Fatalf("filtered export:\n%s", strings.Join(lines, "\n"))
	}
}

func TestExportFailures(t *testing.T) {
	m := newTestModel(t, quiet(t), 80, 24, nil)
	lines := exportFile(t, m, "-", "e")
	fs := decktest.Failures()
	if len(lines) != len(fs)+1 || !strings.HasPrefix(lines[0], "SEQ\tWHEN\tNODE\tSOURCE\tREASON") {
		t.Fatalf("exported %d lines (header %q), want a header and %d failures", len(lines), lines[0], len(fs))
	}
	if !strings.Contains(lines[1], "ice-breaker-0 exited") {
		t.Fatalf("newest failure first: %q", lines[1])
	}
	lines = exportFile(t, m, "/", "type:straylight", "enter", "e")
	if len(lines) != 1+2 {
		t.Fatalf("filtered export:\n%s", strings.Join(lines, "\n"))
	}
	for _, l := range lines[1:] {
		if !strings.Contains(l, "straylight") {
			t.Fatalf("record outside the filter: %q", l)
		}
	}
}

// TestICEPasteOfSeveralCoSignatures: with a 3-of-N threshold, the two
// co-signers' deck-sig lines pasted at once are each checked and counted,
// and Enter commits with all three signatures.
func TestICEPasteOfSeveralCoSignatures(t *testing.T) {
	c := quietWith(t, 0, 3)
	m := newTestModel(t, c, 80, 24, nil)
	press(t, m, "5", "j", "j", "E", "j", "enter", "type:YES", "enter")
	sc, ok := m.modals[len(m.modals)-1].(*widgets.SigCollector)
	if !ok {
		t.Fatalf("threshold 3 did not open the signature collector: %T", m.modals)
	}
	run(t, m, tea.PasteMsg{Content: widgets.FormatSignature(decktest.SignAs("bob", sc.Payload)) + "\n" +
		widgets.FormatSignature(decktest.SignAs("carol", sc.Payload)) + "\n"})
	if !sc.Ready() || sc.In.Err != "" || !strings.Contains(frame(t, m), "signatures 3/3") {
		t.Fatalf("pasted co-signatures not counted: %d, err %q", len(sc.Sigs), sc.In.Err)
	}
	if len(c.ICECommitted()) != 0 {
		t.Fatal("a paste committed")
	}
	press(t, m, "enter")
	got := c.ICECommitted()
	if len(got) != 1 || len(got[0].Sigs) != 3 || got[0].Action.Verb != api.VerbForceEvictReplica {
		t.Fatalf("ICE commit %+v", got)
	}
}

// TestClusterKeysWithNothingSelected: F, T and A act on the cluster, so they
// work on NODES even when no row is selected; the node verbs do nothing.
func TestClusterKeysWithNothingSelected(t *testing.T) {
	for _, tc := range []struct {
		key  string
		verb api.Verb
	}{{"F", api.VerbFreezeCluster}, {"T", api.VerbThawCluster}, {"A", api.VerbFlushAvoidLists}} {
		t.Run(tc.key, func(t *testing.T) {
			c := quiet(t)
			m := newTestModel(t, c, 80, 24, nil)
			press(t, m, "/", "type:no-such-node", "enter")
			if sel := m.screen().Selection(); sel.Node != 0 {
				t.Fatalf("the filter left %v selected", sel)
			}
			press(t, m, "c", "d", "X")
			if len(m.modals) != 0 {
				t.Fatalf("a node verb opened %T with nothing selected", m.modals[0])
			}
			press(t, m, tc.key)
			if len(m.modals) != 1 {
				t.Fatalf("%s opened no flow with nothing selected (toasts %q)", tc.key, allToasts(m))
			}
			if title, _ := m.modals[0].View(m.c.Theme, m.c.Now, 60); !strings.Contains(title, string(tc.verb)) {
				t.Fatalf("modal %q, want %s", title, tc.verb)
			}
		})
	}
}
