package sim

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkSim's flags: its node counts, and where to write profiles of
// the formed, idle mesh (taken right after the traffic window).
var (
	simSizes   = flag.String("sim.sizes", "250,500,1000", "BenchmarkSim: comma-separated node counts")
	simProfile = flag.String("sim.profile", "", "BenchmarkSim: write PREFIX-n=N.{heap,goroutine} profiles of the idle mesh")
)

// simCPUProfileWindow is how long the idle mesh's CPU profile runs.
const simCPUProfileWindow = 10 * time.Second

// writeProfiles writes the idle mesh's CPU (over simCPUProfileWindow),
// heap and goroutine profiles as prefix-n=N.*.
func writeProfiles(tb testing.TB, prefix string, n int) {
	if f, err := os.Create(fmt.Sprintf("%s-n=%d.cpu", prefix, n)); err != nil {
		tb.Error(err)
	} else {
		if err := pprof.StartCPUProfile(f); err != nil {
			tb.Error(err) // -test.cpuprofile holds the profiler
		} else {
			time.Sleep(simCPUProfileWindow)
			pprof.StopCPUProfile()
		}
		f.Close()
	}
	for _, name := range []string{"heap", "goroutine"} {
		f, err := os.Create(fmt.Sprintf("%s-n=%d.%s", prefix, n, name))
		if err != nil {
			tb.Error(err)
			return
		}
		if name == "heap" {
			runtime.GC()
		}
		if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
			tb.Error(err)
		}
		f.Close()
	}
}

// benchSubnetSize is how many nodes BenchmarkSim puts in one subnet:
// issue 16's 1,000 nodes in 32 subnets. Holding it fixed while N grows
// shows whether per-node traffic follows the subnet or the mesh.
const benchSubnetSize = 1000 / 32

// BenchmarkSim runs the scenario (Run) at each of -sim.sizes and reports
// its figures per node. One iteration is minutes at 1,000 nodes: run it
// with -benchtime 1x.
//
//	go test -run '^$' -bench 'Sim$' -benchtime 1x -timeout 60m ./demo/sim/
//	go test -run '^$' -bench 'Sim$' -benchtime 1x -sim.sizes 64,128 ./demo/sim/
func BenchmarkSim(b *testing.B) {
	if testing.Short() {
		b.Skip("minutes per size")
	}
	for _, f := range strings.Split(*simSizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			b.Fatalf("-sim.sizes: %v", err)
		}
		k := max(1, (n+benchSubnetSize/2)/benchSubnetSize)
		b.Run(fmt.Sprintf("n=%d/k=%d", n, k), func(b *testing.B) {
			for range b.N {
				opts := Options{Nodes: n, Subnets: k, Latency: DefaultLinkLatency}
				if *simProfile != "" {
					opts.afterTraffic = func() { writeProfiles(b, *simProfile, n) }
				}
				rep, err := Run(b.Context(), opts, DefaultTrafficWindow, os.Stderr)
				if err != nil {
					b.Fatal(err)
				}
				rep.Print(os.Stderr)
				ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
				t := rep.Traffic
				b.ReportMetric(t.PacketsOutPerNode, "pkts/s/node")
				b.ReportMetric(t.BytesOutPerNode, "bytes/s/node")
				b.ReportMetric(100*t.CPUPerNode, "cpu%/node")
				b.ReportMetric(float64(t.HeapPerNode)/(1<<20), "heapMiB/node")
				b.ReportMetric(ms(rep.Convergence.InSubnet.P99), "change_p99_ms")
				b.ReportMetric(ms(rep.Convergence.Console), "console_ms")
				b.ReportMetric(ms(rep.Kill.Suspect.P99), "suspect_p99_ms")
				b.ReportMetric(ms(rep.Kill.Unreachable.P99), "unreach_p99_ms")
				b.ReportMetric(ms(rep.MassKill.Unreachable.P99), "kill5_unreach_p99_ms")
				formed := 0.0
				if rep.Formed {
					formed = 1
				}
				b.ReportMetric(formed, "formed")
			}
		})
	}
}
