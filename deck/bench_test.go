package deck

import (
	"fmt"
	"testing"
	"time"

	"github.com/charmbracelet/colorprofile"

	"github.com/deck-mesh/deck/deck/decktest"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"

	tea "charm.land/bubbletea/v2"
)

// benchModel is a roomy truecolor deck (the real frame cost, escapes
// included) over a fixture.
func benchModel(b *testing.B, c *decktest.Client, logCap int) *Model {
	m := New(c, Options{Version: "0.4.0", Now: func() time.Time { return decktest.T0 }, Profile: colorprofile.TrueColor, LogCapacity: logCap})
	b.Cleanup(m.Close)
	m.Update(tea.WindowSizeMsg{Width: 160, Height: 48})
	return m
}

func syntheticLogs(n int) []api.LogRecord {
	base := decktest.Logs(12)
	out := make([]api.LogRecord, n)
	for i := range out {
		out[i] = base[i%len(base)]
		out[i].Seq = uint64(i + 1)
		out[i].At = decktest.T0.Add(time.Duration(i-n) * time.Millisecond)
	}
	return out
}

// BenchmarkViewNodes: a NODES frame must cost the same for 100 and 10,000
// nodes (virtualized rows, per-snapshot derivations).
func BenchmarkViewNodes(b *testing.B) {
	for _, n := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			c := decktest.New(0)
			c.SetSnapshot(decktest.Scaled(n))
			m := benchModel(b, c, 0)
			m.switchTab(1)
			press(b, m, "j", "j", "j")
			_ = m.View()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				_ = m.View()
			}
		})
	}
}

// BenchmarkViewLogs: a LOGS frame must cost the same for 1,000 and 100,000
// buffered records, following or scrolled back.
func BenchmarkViewLogs(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		for _, mode := range []string{"follow", "scrolled"} {
			b.Run(fmt.Sprintf("records=%d/%s", n, mode), func(b *testing.B) {
				m := benchModel(b, decktest.New(0), n)
				m.foldLogs(syntheticLogs(n))
				m.switchTab(m.tabIndex(m.logs))
				_ = m.View()
				if mode == "scrolled" {
					press(b, m, "pgup", "pgup")
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					_ = m.View()
				}
			})
		}
	}
}

// BenchmarkFoldLogs feeds log batches through Update with LOGS open and a
// filter active, interleaving a key press after every batch, and reports
// the sustained records per second the model absorbs.
func BenchmarkFoldLogs(b *testing.B) {
	const batch = 1000
	m := benchModel(b, decktest.New(0), 0)
	m.switchTab(m.tabIndex(m.logs))
	m.logs.SetFilter("replay")
	recs := syntheticLogs(batch)
	keys := []tea.KeyPressMsg{keyMsg("k"), keyMsg("j")}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Update(logBatchMsg{recs})
		m.Update(keys[i%2])
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
}

// tabNamed is the index of the top-level tab called name.
func tabNamed(b *testing.B, m *Model, name string) int {
	for i, t := range m.tabs {
		if t.tab.Name() == name {
			return i
		}
	}
	b.Fatalf("no tab %s", name)
	return 0
}

// scaleTabs are the screens the deck must keep usable at a thousand nodes
// (issue 16): their frame cost must stay within 1.5× of 100 nodes'.
var scaleTabs = []string{"NET.MAP", "NODES", "DAEMONS", "LOGS", "SUBNETS", "GATEWAYS", "AGGREGATORS"}

// BenchmarkFrameAtScale renders one frame (View) of each scale tab over
// decktest.Large: 100 and 1,000 nodes across 32 subnets, every subnet held
// in full (the upper bound of a console's view), the cursor a few rows
// down. NODES, DAEMONS and LOGS also run with a `/` filter on one region
// ("r1/": 8 of the 32 subnets), which shows fewer rows than a screen at
// 100 nodes and a full screen at 1,000: that pair differs by what it
// draws, the unfiltered pairs only by what the tables hold.
func BenchmarkFrameAtScale(b *testing.B) {
	for _, tab := range scaleTabs {
		filters := []string{""}
		if tab == "NODES" || tab == "DAEMONS" || tab == "LOGS" {
			filters = append(filters, "r1/")
		}
		for _, filter := range filters {
			for _, n := range []int{100, 1_000} {
				name := fmt.Sprintf("%s/nodes=%d", tab, n)
				if filter != "" {
					name = fmt.Sprintf("%s/filter=%s/nodes=%d", tab, filter, n)
				}
				b.Run(name, func(b *testing.B) { benchFrame(b, tab, filter, n) })
			}
		}
	}
}

func benchFrame(b *testing.B, tab, filter string, n int) {
	c := decktest.New(0)
	view := decktest.Large(n)
	c.SetSnapshot(view)
	m := benchModel(b, c, 0)
	// Logs from the large view's nodes, so `/` on a subnet finds some.
	logs := syntheticLogs(10_000)
	for i := range logs {
		logs[i].Node = view.Nodes[i%n].ID
	}
	m.foldLogs(logs)
	m.switchTab(tabNamed(b, m, tab))
	press(b, m, "j", "j", "j")
	if filter != "" {
		press(b, m, "/", "type:"+filter, "enter")
	}
	_ = m.View()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = m.View()
	}
}

// BenchmarkSnapshotAtScale is the per-snapshot side (not per frame): a new
// view of the same cluster arrives and the active tab rebuilds its rows,
// then draws one frame. Snapshots come at most every 500 ms.
func BenchmarkSnapshotAtScale(b *testing.B) {
	for _, tab := range scaleTabs {
		for _, n := range []int{100, 1_000} {
			b.Run(fmt.Sprintf("%s/nodes=%d", tab, n), func(b *testing.B) {
				c := decktest.New(0)
				views := [2]*snapshot.ClusterSnapshot{decktest.Large(n), decktest.Large(n)}
				c.SetSnapshot(views[0])
				m := benchModel(b, c, 0)
				m.switchTab(tabNamed(b, m, tab))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					m.Update(snapMsg{views[i%2]})
					_ = m.View()
				}
			})
		}
	}
}

// blobsSnapshot is the fixture with n blobs in ancestry chains of eight
// (a checkpoint series), as the view's bound allows (MaxClusterBlobs).
func blobsSnapshot(n int) *snapshot.ClusterSnapshot {
	s := *decktest.Quiet()
	s.Blobs = make([]snapshot.BlobView, n)
	for i := range s.Blobs {
		b := &s.Blobs[i]
		b.Hash = [32]byte{byte(i >> 8), byte(i), 1}
		if i%8 != 0 {
			b.Parent = [32]byte{byte((i - 1) >> 8), byte(i - 1), 1}
		}
		b.Name = fmt.Sprintf("trainer-%03d/ckpt-%06d", i/8, i%8*500)
		b.Size, b.Replicas, b.Heat = 2<<20, 2, float64(i%7)
		b.Holders = []api.NodeID{decktest.Gibson, decktest.Wintermute}
		b.StoredAt = decktest.T0.Add(-time.Duration(i) * time.Second)
	}
	return &s
}

// BenchmarkViewBlobs: a BLOBS frame costs the same for 64 and 1,024 blobs
// (the view's bound); Sync, which lays the ancestry forest out again, runs
// once per snapshot and per second.
func BenchmarkViewBlobs(b *testing.B) {
	for _, n := range []int{64, 1024} {
		for _, what := range []string{"view", "sync"} {
			b.Run(fmt.Sprintf("blobs=%d/%s", n, what), func(b *testing.B) {
				c := decktest.New(0)
				c.SetSnapshot(blobsSnapshot(n))
				m := benchModel(b, c, 0)
				m.c.Snap = c.Snapshot()
				press(b, m, "!", "j", "j")
				_ = m.View()
				blobs := m.screen()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if what == "sync" {
						cp := *c.Snapshot() // a new snapshot each time
						m.c.Snap = &cp
						blobs.Sync()
						continue
					}
					_ = m.View()
				}
			})
		}
	}
}
