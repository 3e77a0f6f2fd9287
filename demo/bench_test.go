package demo

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node"
)

// Figures for BENCHMARKS.md. Each benchmark starts whole demos in this
// process, as `deck demo --headless` does (nodes, console, detector), so
// run them one at a time (-bench 'DemoStart$', …) on an otherwise idle
// machine, and the memory ones in a process of their own.
//
//	go test ./demo -run '^$' -bench 'DemoStart$' -benchtime 5x
//	go test ./demo -run '^$' -bench 'DemoResident/nodes=9$' -benchtime 1x
//	go test ./demo -run '^$' -bench 'DemoResident/nodes=32$' -benchtime 1x
//	go test ./demo -run '^$' -bench 'DemoIdleCPU$' -benchtime 1x

// cliConvergeTimeout is how long `deck demo` waits for convergence.
const cliConvergeTimeout = 15 * time.Second

// BenchmarkDemoStart measures, per demo of 9 nodes from nothing: ready
// (every node Healthy on the console), placed (every daemon on exactly one
// live node) and converged (Demo.Converged: placed and every chain at its
// desired count), each from the call to Start. A demo not converged within
// the CLI's 15 s counts as a timeout and is left out of the converged
// figures.
func BenchmarkDemoStart(b *testing.B) {
	var ready, placed, conv []time.Duration
	timeouts := 0
	for i := 0; i < b.N; i++ {
		r, p, c, err := startOnce(9)
		if err != nil {
			b.Fatal(err)
		}
		ready, placed = append(ready, r), append(placed, p)
		if c > 0 {
			conv = append(conv, c)
		} else {
			timeouts++
		}
	}
	report := func(name string, ds []time.Duration) {
		if len(ds) == 0 {
			return
		}
		slices.Sort(ds)
		b.ReportMetric(float64(ds[len(ds)/2].Milliseconds()), name+"-p50-ms")
		b.ReportMetric(float64(ds[len(ds)-1].Milliseconds()), name+"-max-ms")
	}
	report("ready", ready)
	report("placed", placed)
	report("converged", conv)
	b.ReportMetric(float64(timeouts), "not-converged-in-15s")
	b.ReportMetric(0, "ns/op")
}

func startOnce(n int) (ready, placed, converged time.Duration, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	d, err := Start(ctx, Options{Nodes: n, Version: "bench"})
	if err != nil {
		return 0, 0, 0, err
	}
	defer d.Close()
	console, err := d.Console(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	if err := d.WaitReady(ctx); err != nil {
		return 0, 0, 0, err
	}
	ready = time.Since(start)
	for len(placementProblems(console.Cluster())) > 0 {
		if ctx.Err() != nil {
			return 0, 0, 0, fmt.Errorf("not placed: %v", placementProblems(console.Cluster()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	placed = time.Since(start)
	cctx, ccancel := context.WithDeadline(ctx, start.Add(cliConvergeTimeout))
	defer ccancel()
	if d.WaitConverged(cctx) == nil {
		converged = time.Since(start)
	}
	return ready, placed, converged, nil
}

// BenchmarkDemoResident reports the process's VmRSS with a demo of n nodes
// running: after every node is Healthy and every daemon placed, plus
// residentSettle of running. Run each size in its own process: the Go
// runtime keeps memory it once used.
func BenchmarkDemoResident(b *testing.B) {
	for _, n := range []int{9, 32} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			var rss uint64
			for i := 0; i < b.N; i++ {
				d, stop := runningDemo(b, n)
				time.Sleep(residentSettle)
				rss = max(rss, ResidentBytes())
				_ = d
				stop()
			}
			b.ReportMetric(float64(rss)/(1<<20), "rss-MiB")
			b.ReportMetric(0, "ns/op")
		})
	}
}

const (
	residentSettle = 5 * time.Second
	cpuSettle      = 5 * time.Second
	cpuWindow      = 25 * time.Second
)

// BenchmarkDemoIdleCPU reports the CPU the whole process (9 nodes, their
// daemons, the console and the detector) uses while the demo idles: user +
// system time over cpuWindow, starting cpuSettle after placement, as a
// percentage of one core.
func BenchmarkDemoIdleCPU(b *testing.B) {
	var worst, sum float64
	var traffic idleTraffic
	for i := 0; i < b.N; i++ {
		d, stop := runningDemo(b, 9)
		time.Sleep(cpuSettle)
		c0, t0, m0 := cpuTime(), time.Now(), d.idleTraffic()
		time.Sleep(cpuWindow)
		pct := 100 * float64(cpuTime()-c0) / float64(time.Since(t0))
		traffic = traffic.plus(d.idleTraffic().minus(m0))
		worst, sum = max(worst, pct), sum+pct
		stop()
	}
	// The CPU figure moves by more than a percentage point between runs of
	// the same binary; what the mesh sends in the window is steadier, and
	// is what a change to the idle traffic moves first.
	secs := cpuWindow.Seconds() * float64(b.N)
	b.ReportMetric(float64(traffic.packetsOut)/secs, "datagrams-out/s")
	b.ReportMetric(float64(traffic.published)/secs, "snapshots-signed/s")
	b.ReportMetric(float64(traffic.blobServed)/secs, "blob-requests/s")
	// The worst window is the figure held to the target; the mean shows
	// how much of it is one window's periodic work (a demo migration, a
	// Badger compaction) rather than the steady cost.
	b.ReportMetric(worst, "cpu-%-of-core")
	b.ReportMetric(sum/float64(b.N), "mean-cpu-%-of-core")
	b.ReportMetric(0, "ns/op")
}

func runningDemo(b testing.TB, n int) (*Demo, func()) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := Start(ctx, Options{Nodes: n, Version: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	console, err := d.Console(ctx)
	if err != nil {
		d.Close()
		b.Fatal(err)
	}
	if err := d.WaitReady(ctx); err != nil {
		d.Close()
		b.Fatal(err)
	}
	for len(placementProblems(console.Cluster())) > 0 && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	if p := placementProblems(console.Cluster()); len(p) > 0 {
		b.Logf("%d nodes: still not placed: %v", n, p)
	}
	return d, func() { d.Close() }
}

// idleTraffic sums what every node of the demo (and its console) counted.
type idleTraffic struct{ packetsOut, published, blobServed uint64 }

func (d *Demo) idleTraffic() idleTraffic {
	d.mu.Lock()
	nodes := []*node.Node{d.console}
	for _, m := range d.members {
		nodes = append(nodes, m.node)
	}
	d.mu.Unlock()
	var t idleTraffic
	for _, n := range nodes {
		if n == nil {
			continue
		}
		st := n.Stats()
		t.packetsOut += st.Transport.PacketsOut
		t.published += st.Gossip.Published
		t.blobServed += st.Blobs.Served
	}
	return t
}

func (t idleTraffic) minus(o idleTraffic) idleTraffic {
	return idleTraffic{t.packetsOut - o.packetsOut, t.published - o.published, t.blobServed - o.blobServed}
}

func (t idleTraffic) plus(o idleTraffic) idleTraffic {
	return idleTraffic{t.packetsOut + o.packetsOut, t.published + o.published, t.blobServed + o.blobServed}
}

// cpuTime is this process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
