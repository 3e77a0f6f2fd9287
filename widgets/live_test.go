package widgets

import (
	"strings"
	"testing"
	"time"

	"charm.land/bubbles/v2/key"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"
	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/api"
)

// TestTableSlackGoesAfterTheLastColumn: on a wide terminal no column grows
// past its widest cell, so the table stays dense and aligned.
func TestTableSlackGoesAfterTheLastColumn(t *testing.T) {
	th := common.NewTheme(colorprofile.NoTTY)
	tb := NewTable(Column{Title: "NODE", Width: 6, Flex: true}, Column{Title: "KIND", Width: 4}, Column{Title: "N", Width: 3, Align: AlignRight})
	tb.SetRows([]Row{{Key: "a", Cells: []string{"node-1", "inference", "7"}}, {Key: "b", Cells: []string{"a-much-longer-node", "x", "12"}}})
	out := strings.Split(tb.View(th, 160, 3), "\n")
	if got := strings.Fields(out[1]); len(got) != 4 || got[1] != "node-1" || got[2] != "inference" {
		t.Fatalf("row %q", out[1])
	}
	// NODE is as wide as its widest cell (18), KIND as "inference" (9).
	if i := strings.Index(out[0], "KIND"); i != 2+18+1 {
		t.Errorf("KIND at %d: %q", i, out[0])
	}
	if i := strings.LastIndex(out[0], "N"); i != 2+18+1+9+1+2 {
		t.Errorf("N at %d: %q", i, out[0])
	}
	// Narrow: the flex column gets the slack first, the rest truncates.
	out = strings.Split(tb.View(th, 24, 3), "\n")
	for _, l := range out {
		if ansi.StringWidth(l) != 24 {
			t.Errorf("width %d: %q", ansi.StringWidth(l), l)
		}
	}
}

func TestTableStickTop(t *testing.T) {
	tb := NewTable(Column{Title: "X", Width: 4})
	tb.StickTop = true
	tb.SetRows([]Row{{Key: "2"}, {Key: "1"}})
	tb.SetRows([]Row{{Key: "3"}, {Key: "2"}, {Key: "1"}})
	if tb.SelectedKey() != "3" {
		t.Fatalf("at the top the cursor follows new rows: %q", tb.SelectedKey())
	}
	tb.Move(1)
	tb.SetRows([]Row{{Key: "4"}, {Key: "3"}, {Key: "2"}, {Key: "1"}})
	if tb.SelectedKey() != "2" {
		t.Fatalf("off the top the cursor stays on its row: %q", tb.SelectedKey())
	}
}

// TestProposalFileFormat pins the CLI's format (deck/cli/ice.go
// writeProposal/readProposal): header, base64 payload, one deck-sig line per
// signature, so `deck ice sign FILE` reads what the TUI exports.
func TestProposalFileFormat(t *testing.T) {
	payload := []byte("net-deck-ice:\x00\x01payload")
	sig := api.Signature{Operator: 0x1122334455667788, Sig: make([]byte, 64)}
	got := string(ProposalFile(payload, []api.Signature{sig}))
	want := "deck-ice-proposal-v1\nbmV0LWRlY2staWNlOgABcGF5bG9hZA==\n" + FormatSignature(sig) + "\n"
	if !strings.HasPrefix(FormatSignature(sig), SignaturePrefix) {
		t.Fatalf("signature line %q", FormatSignature(sig))
	}
	if got != want {
		t.Fatalf("file:\n%q\nwant\n%q", got, want)
	}
	p, sigs, err := ParseProposalFile([]byte("\n  " + strings.ReplaceAll(got, "\n", "  \n\n")))
	if err != nil || string(p) != string(payload) || len(sigs) != 1 || sigs[0].Operator != sig.Operator {
		t.Fatalf("round trip: %q %+v %v", p, sigs, err)
	}
	for _, bad := range []string{"", "deck-ice-proposal-v1\n", "nope\nAAAA\n", "deck-ice-proposal-v1\n!!!\n", "deck-ice-proposal-v1\nAAAA\ndeck-sig:zz\n"} {
		if _, _, err := ParseProposalFile([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestChipsPinnedKeepsHelp(t *testing.T) {
	th := common.NewTheme(colorprofile.NoTTY)
	var many []key.Binding
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		many = append(many, key.NewBinding(key.WithKeys(k), key.WithHelp(k, "some long action")))
	}
	help := key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help"))
	out := ChipsPinned(th, many, []key.Binding{help}, 60)
	if ansi.StringWidth(out) != 60 || !strings.HasSuffix(strings.TrimRight(out, " "), "?  help") {
		t.Fatalf("%q", out)
	}
}

func TestBlastLinesWrapInsteadOfTruncating(t *testing.T) {
	th := common.NewTheme(colorprofile.NoTTY)
	br := api.BlastRadius{Nodes: []api.NodeID{1}, Daemons: []string{"a", "b", "c"}}
	for i := 0; i < 5; i++ {
		br.Migrated = append(br.Migrated, api.DaemonMove{Daemon: "inference-" + string(rune('0'+i)), From: 1, To: 2})
	}
	lines := BlastLines(th, br, func(api.NodeID) string { return "node-x" }, 40)
	all := strings.Join(lines, "\n")
	for i := 0; i < 5; i++ {
		if !strings.Contains(all, "inference-"+string(rune('0'+i))) {
			t.Errorf("move %d hidden:\n%s", i, all)
		}
	}
	if !strings.Contains(all, "1 node,") || strings.Contains(all, "drain time") {
		t.Errorf("counts/drain line:\n%s", all)
	}
	for _, l := range lines {
		if Width(l) > 40 {
			t.Errorf("too wide: %q", l)
		}
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{24 * time.Hour: "24h", time.Second: "1s", 10 * time.Second: "10s", 90 * time.Minute: "1h30m", 30 * time.Minute: "30m"} {
		if got := ShortDuration(d); got != want {
			t.Errorf("%v: %q want %q", d, got, want)
		}
	}
}
