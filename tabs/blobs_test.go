package tabs

import (
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/colorprofile"
	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
)

func blobView(name string, hash, parent byte, stored time.Duration) snapshot.BlobView {
	b := snapshot.BlobView{Hash: [32]byte{hash}, Name: name, Size: 3 * api.BlobChunkBytes, Replicas: 2,
		StoredAt: time.Unix(10_000, 0).Add(-stored)}
	if parent != 0 {
		b.Parent = [32]byte{parent}
	}
	return b
}

// Each blob comes after the one it was derived from, children oldest
// first; a parent the view does not list makes a root; a cycle of parents
// (an operator's word, not a proof) is listed once, not walked forever.
func TestAncestryOrder(t *testing.T) {
	s := &snapshot.ClusterSnapshot{Blobs: []snapshot.BlobView{
		blobView("ckpt-2", 2, 1, time.Minute),
		blobView("ckpt-1", 1, 0, time.Hour),
		blobView("rollouts-a", 3, 1, 30*time.Minute),
		blobView("orphan", 4, 99, 0),
		blobView("loop-a", 5, 6, 0),
		blobView("loop-b", 6, 5, 0),
		blobView("self", 7, 7, 0),
	}}
	var got []string
	for _, e := range AncestryOrder(s) {
		got = append(got, strings.Repeat(">", e.depth)+e.b.Name)
	}
	want := []string{"ckpt-1", ">rollouts-a", ">ckpt-2", "orphan", "self", "loop-a", ">loop-b"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("order %v, want %v", got, want)
	}
	rows := BlobRows(s, time.Unix(10_000, 0))
	if len(rows) != len(s.Blobs) || rows[1].Cells[0] != "└ rollouts-a" || rows[1].Cells[8] != "ckpt-1" {
		t.Fatalf("rows: %q", rows[1].Cells)
	}
}

// A fetch in flight is drawn from its bytes stored; a whole copy full.
func TestChunkMap(t *testing.T) {
	th := common.NewTheme(colorprofile.NoTTY)
	s := &snapshot.ClusterSnapshot{}
	lines := ChunkMap(th, s, []api.BlobCopy{
		{Node: 1, Stored: 100, Total: 100},
		{Node: 2, Fetching: true, Stored: 25, Total: 100},
	}, 40, 80)
	if len(lines) != 3 {
		t.Fatalf("lines %q", lines)
	}
	if strings.Count(lines[1], "█") != 40 || strings.Contains(lines[1], "░") {
		t.Errorf("whole copy: %q", lines[1])
	}
	if strings.Count(lines[2], "█") != 10 || strings.Count(lines[2], "░") != 30 || !strings.Contains(lines[2], "25%") {
		t.Errorf("a quarter fetched: %q", lines[2])
	}
}

// DATAFORTS: LOCAL is this node when it keeps a store, else why not;
// REMOTE the other datafort nodes; nodes without a store are not listed.
func TestDatafortRows(t *testing.T) {
	node := func(id api.NodeID, label string, enabled bool) snapshot.NodeView {
		return snapshot.NodeView{NodeSnapshot: snapshot.NodeSnapshot{ID: id, Label: label,
			Datafort: snapshot.Datafort{Enabled: enabled, Capacity: 100, Used: 95, Overflow: snapshot.OverflowHigh}}}
	}
	s := &snapshot.ClusterSnapshot{Self: 1, Nodes: []snapshot.NodeView{node(1, "self", true), node(2, "b", true), node(3, "c", false)}}
	rows := DatafortRows(s)
	var got []string
	for _, r := range rows {
		got = append(got, r.Cells[0])
	}
	if len(rows) != 4 || !rows[0].Heading || got[1] != "self" || !rows[2].Heading || got[3] != "b" {
		t.Fatalf("rows %q", got)
	}
	if rows[3].Cells[1] != "overflowing" || rows[3].Cells[3] != "95%" {
		t.Fatalf("remote row %q", rows[3].Cells)
	}
	s.Self = 3
	if rows := DatafortRows(s); !strings.Contains(rows[0].Cells[0], "keeps no store") || len(rows) != 4 {
		t.Fatalf("an observer's LOCAL: %q", rows[0].Cells)
	}
}
