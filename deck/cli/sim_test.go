package cli

import (
	"encoding/json"
	"testing"
)

// TestDemoSimRefusesBadFlags: --sim is headless only, does not mix with the
// process demo's flags, and its own flags need it; each is a usage error
// (exit 2) before anything starts.
func TestDemoSimRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"demo", "--sim", "16"},
		{"demo", "--sim", "16", "--headless", "--procs"},
		{"demo", "--sim", "16", "--headless", "--nodes", "3"},
		{"demo", "--headless", "--subnets", "4"},
		{"demo", "--headless", "--link-loss", "0.1"},
		{"demo", "--sim", "1", "--headless"},
		{"demo", "--sim", "16", "--subnets", "17", "--headless"},
		{"demo", "--sim", "16", "--headless", "--link-loss", "1.5"},
	} {
		if r := run(t, IO{}, args...); r.code != 2 {
			t.Errorf("deck %v: exit %d, want 2 (usage)\n%s", args, r.code, r.err)
		}
	}
}

// TestDemoSimJSON runs a small simulation through the CLI and reads its
// report back.
func TestDemoSimJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 8 nodes and waits out failure detections")
	}
	r := run(t, IO{}, "demo", "--sim", "8", "--subnets", "2", "--headless", "--for", "2s", "--output", "json")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.err)
	}
	var doc simDoc
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, r.out)
	}
	if doc.Nodes != 8 || doc.Subnets != 2 || !doc.Formed || doc.PerNode.PacketsOut <= 0 || doc.Kill.Unreachable.Reached == 0 {
		t.Fatalf("report: %+v", doc)
	}
}
