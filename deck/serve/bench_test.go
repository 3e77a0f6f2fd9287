package serve

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/nodetest"
)

const benchConsoles = 20

// rssBytes is the process's resident set size.
func rssBytes(tb testing.TB) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	tb.Skip("no VmRSS")
	return 0
}

func settleMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}

func heapInuse() int64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// BenchmarkConsoles20 runs 20 SSH consoles (in-process x/crypto/ssh
// clients with a pty) on one node of a 3-node mesh. Each iteration cordons
// a node and measures, per console, the time from the serving node
// publishing the changed snapshot to the console's redraw (the row's
// "cordoned") arriving at the client; then uncordons. It reports the
// latency percentiles and the resident memory per console.
//
//	go test ./deck/serve -run '^$' -bench Consoles20 -benchtime 10x
func BenchmarkConsoles20(b *testing.B) {
	m := startMesh(b, 3)
	bob := newSSHKey(b, b.TempDir(), "bob", nil)
	srv, addr := startServer(b, m.nodes[0], Config{
		AuthorizedKeysPath: writeAuthorizedKeys(b, bob), ConnAttemptsBurstPerSource: 4 * benchConsoles,
		Logf: func(string, ...any) {},
	})
	op, err := m.nodes[0].NewClient(identity.KeySigner{K: m.alice}, "alice")
	if err != nil {
		b.Fatal(err)
	}
	target := m.nodes[2].ID()

	time.Sleep(2 * time.Second) // let the mesh's own allocations settle
	settleMemory()
	rss0, heap0 := rssBytes(b), heapInuse()

	terms := make([]*goTerm, benchConsoles)
	for i := range terms {
		c, err := dialGo(b, srv, addr, gossh.PublicKeys(bob.signer(b)))
		if err != nil {
			b.Fatal(err)
		}
		terms[i] = openGoTerm(b, c, 120, 40, "")
	}
	for _, g := range terms {
		g.WaitText(b, "LIVE")
		g.WaitText(b, "DISK%")
	}
	nodetest.Eventually(b, "20 consoles", func() bool { return srv.Sessions() == benchConsoles })
	time.Sleep(3 * time.Second)
	settleMemory()
	rss1, heap1 := rssBytes(b), heapInuse()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch := op.WatchSnapshots(ctx)
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		marks := make([]int, len(terms))
		for j, g := range terms {
			marks[j] = g.RawLen()
		}
		if _, err := op.Admin().Cordon(ctx, target); err != nil {
			b.Fatal(err)
		}
		var t0 time.Time
		for t0.IsZero() {
			select {
			case cs := <-watch:
				if nv := cs.Node(target); nv != nil && nv.Cordoned {
					t0 = time.Now()
				}
			case <-time.After(termTimeout):
				b.Fatal("the cordon never reached the serving node's snapshot")
			}
		}
		for j, g := range terms {
			var at time.Time
			nodetest.Eventually(b, fmt.Sprintf("console %d to redraw", j), func() bool {
				var ok bool
				at, ok = g.Arrival(marks[j], "cordoned")
				return ok
			})
			lat = append(lat, at.Sub(t0))
		}
		b.StopTimer()
		if _, err := op.Admin().Uncordon(ctx, target); err != nil {
			b.Fatal(err)
		}
		nodetest.Eventually(b, "uncordon", func() bool {
			nv := op.Snapshot().Node(target)
			return nv != nil && !nv.Cordoned
		})
		time.Sleep(1500 * time.Millisecond) // every console redraws the row back
		b.StartTimer()
	}
	b.StopTimer()

	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	within := 0
	for _, d := range lat {
		if d <= 100*time.Millisecond {
			within++
		}
	}
	b.ReportMetric(float64(pct(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(0.95).Microseconds())/1000, "p95-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(100*float64(within)/float64(len(lat)), "%≤100ms")
	b.ReportMetric(float64(rss1-rss0)/benchConsoles/(1<<20), "RSS-MB/console")
	b.ReportMetric(float64(heap1-heap0)/benchConsoles/(1<<20), "heap-MB/console")
	b.Logf("%d consoles, %d redraws: p50 %v p95 %v max %v, %d/%d within 100ms; RSS %.1f→%.1f MB (%.2f MB/console), heap %.1f→%.1f MB",
		benchConsoles, len(lat), pct(0.5), pct(0.95), lat[len(lat)-1], within, len(lat),
		float64(rss0)/(1<<20), float64(rss1)/(1<<20), float64(rss1-rss0)/benchConsoles/(1<<20),
		float64(heap0)/(1<<20), float64(heap1)/(1<<20))
}
