package deck

import (
	"fmt"
	"testing"

	"github.com/deck-mesh/deck/deck/decktest"
	"github.com/deck-mesh/deck/node/api"
)

// screens are the golden scenarios: keys pressed from the NODES tab.
var screens = []struct {
	name   string
	keys   []string
	faults bool
	setup  func(testing.TB, *decktest.Client)
	// prep adjusts the model after it is built (e.g. a fixed export
	// directory, so the path prompt does not show a per-run temp dir).
	prep func(*Model)
}{
	{name: "netmap", keys: []string{"1"}},
	{name: "nodes", keys: []string{"2", "j", "j", "j", "j", "j"}},
	{name: "daemons", keys: []string{"3"}},
	{name: "groups", keys: []string{"4", "j", "right"}},
	{name: "chains", keys: []string{"5", "j", "j"}},
	{name: "migrations", keys: []string{"6"}},
	{name: "maintenance", keys: []string{"7", "j", "j", "j", "j", "j"}},
	{name: "behavior", keys: []string{"8"}},
	{name: "logs", keys: []string{"9"}},
	{name: "audit", keys: []string{"0"}},
	{name: "failures", keys: []string{"-"}},
	{name: "demo", keys: []string{"`"}, faults: true},
	{name: "meshdb", keys: []string{"="}},
	{name: "meshdb_run", keys: []string{"=", "type:between(logs, -1h, now) where level >= info | count by node | sort node", "enter"}},
	{name: "meshdb_error", keys: []string{"=", "type:between(logs, -5m now)", "enter"}},
	{name: "meshdb_plan", keys: []string{"=", "type:between(logs, -1h, now) | count by daemon | sort daemon", "enter", "esc", "p"}},
	{name: "page_node", keys: []string{"2", "j", "j", "j", "j", "j", "enter"}},
	{name: "page_daemon", keys: []string{"6", "enter"}},
	{name: "page_audit", keys: []string{"0", "j", "j", "enter"}},
	{name: "page_failure", keys: []string{"-", "enter"}},
	{name: "help", keys: []string{"?"}},
	{name: "filter", keys: []string{"/", "type:stray"}},
	{name: "logs_jump", keys: []string{"3", "j", "j", "j", "j", "j", "j", "j", "j", "l"}},
	{name: "modal_duration", keys: []string{"d", "type:5x", "enter"}},
	// neuromancer: its drain moves daemons and replicas (the cluster is
	// frozen, so the real projection also warns a routine commit is refused).
	{name: "modal_confirm", keys: []string{"j", "j", "j", "d", "type:5m", "enter", "type:YE"}},
	{name: "modal_picker", keys: []string{"5", "j", "j", "E"}},
	// Evicting the ledger's leader, wintermute: a replica and the
	// leadership move, and the chain's quorum is at risk.
	{name: "modal_ice_confirm", keys: []string{"5", "j", "j", "E", "enter"}},
	{name: "modal_signatures", keys: []string{"5", "j", "j", "E", "j", "enter", "type:YES", "enter"}},
	{name: "modal_export_logs", keys: []string{"9", "e"}, prep: fixedExportDir},
	{name: "modal_export_audit", keys: []string{"0", "e"}, prep: fixedExportDir},
	{name: "modal_export_failures", keys: []string{"-", "e"}, prep: fixedExportDir},
	{name: "modal_export_proposal", keys: []string{"5", "j", "j", "E", "j", "enter", "type:YES", "enter", "ctrl+e"}, prep: fixedExportDir},
	{name: "modal_cutover_picker", keys: []string{"5", "j", "j", "O"}},
	{name: "modal_freeze_reason", keys: []string{"F", "type:drill"}},
	{name: "modal_freeze_ttl", keys: []string{"F", "type:drill", "enter", "type:90m", "enter"}},
	{name: "modal_audit_limit", keys: []string{"0", "n", "type:x", "enter"}},
	{name: "read_only", keys: []string{"c"}, setup: func(_ testing.TB, c *decktest.Client) { c.SetReadOnly("no operator key in ~/.config/deck") }},
	{name: "quiet", keys: []string{"2"}, setup: quietLedger},
	// Membership: the cursor on the last pending node (hosaka), its page,
	// and the confirmations of admitting it and of revoking gibson (the
	// leader of two chains: its daemons and replicas move).
	{name: "nodes_pending", keys: []string{"2", "G"}},
	{name: "page_pending", keys: []string{"2", "G", "enter"}},
	{name: "modal_admit", keys: []string{"2", "G", "+", "type:YE"}, setup: quietLedger},
	{name: "modal_revoke", keys: []string{"2", "j", "j", "V", "type:YE"}, setup: quietLedger},
	// Subnets (issue 16): the tree, the drill into eu/fra (before and
	// after the view holds its members), its members in NODES and found
	// by `/` on the subnet, the gateways' rules and the aggregator registry.
	{name: "subnets", keys: []string{"#"}},
	{name: "subnet_fetching", keys: []string{"#", "j", "j", "j", "enter"}},
	{name: "subnet_focus", keys: []string{"#", "j", "j", "j", "enter", "snapshot"}},
	{name: "nodes_focused", keys: []string{"#", "j", "j", "j", "enter", "snapshot", "2"}},
	{name: "nodes_filter_subnet", keys: []string{"#", "j", "j", "j", "enter", "snapshot", "2", "/", "type:eu/fra"}},
	{name: "netmap_focused", keys: []string{"#", "j", "j", "j", "enter", "snapshot", "1"}},
	{name: "gateways", keys: []string{"$"}},
	{name: "aggregators", keys: []string{"%", "G"}},
	// At scale: 1,000 nodes over 32 subnets, all held (decktest.Large):
	// the map folds subnets into glyphs, SUBNETS and GATEWAYS list 32.
	{name: "netmap_scale", keys: []string{"1"}, setup: large},
	{name: "subnets_scale", keys: []string{"#"}, setup: large},
	{name: "gateways_scale", keys: []string{"$"}, setup: large},
}

// large puts the fixture on decktest.Large(1000) (a golden setup).
func large(_ testing.TB, c *decktest.Client) { c.SetSnapshot(decktest.Large(1000)) }

func TestGolden(t *testing.T) {
	for _, sz := range [][2]int{{80, 24}, {160, 48}} {
		for _, sc := range screens {
			name := fmt.Sprintf("%s_%dx%d", sc.name, sz[0], sz[1])
			t.Run(name, func(t *testing.T) {
				c := decktest.New(fixtureLogs)
				if sc.setup != nil {
					sc.setup(t, c)
				}
				var f api.FaultInjector
				if sc.faults {
					f = &decktest.Faults{}
				}
				m := newTestModel(t, c, sz[0], sz[1], f)
				if sc.prep != nil {
					sc.prep(m)
				}
				press(t, m, sc.keys...)
				golden(t, name, frame(t, m))
			})
		}
	}
}

// goldenExportDir is the export directory shown in the path prompts of the
// goldens; it is never written (the prompts are not submitted).
const goldenExportDir = "/srv/deck-exports"

func fixedExportDir(m *Model) { m.c.ExportDir = goldenExportDir }
