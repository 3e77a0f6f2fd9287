package sim

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
)

// smokeWindow is the smoke test's traffic window: long enough for a few
// heartbeats per peer.
const smokeWindow = 3 * time.Second

// TestSimMeasures runs the whole scenario on a small mesh and checks the
// harness measures something real at every step: traffic and CPU, a
// change reaching every subnet peer and the console, a kill detected as
// Suspect then Unreachable by every subnet peer, the 5% kill, and a
// partition seen and healed. Figures are checked for presence, never for
// speed (BenchmarkSim measures).
func TestSimMeasures(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 16 nodes and waits out several failure detections")
	}
	rep, err := Run(t.Context(), Options{Nodes: 16, Subnets: 4, Latency: DefaultLinkLatency}, smokeWindow, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	rep.Print(&out)
	t.Log("\n" + out.String())
	if !rep.Formed {
		t.Fatalf("the mesh did not form: %s", rep.Unformed)
	}
	tr := rep.Traffic
	if tr.Nodes != 16 || tr.PacketsOutPerNode <= 0 || tr.BytesInPerNode <= 0 || tr.HeapPerNode == 0 || tr.Goroutines == 0 {
		t.Errorf("traffic not measured: %+v", tr)
	}
	c := rep.Convergence
	if !c.OwnSeen || c.InSubnet.Observers != 3 || c.InSubnet.Reached != 3 || c.InSubnet.P99 <= 0 || !c.ConsoleSeen {
		t.Errorf("change spread not measured: %+v", c)
	}
	for name, d := range map[string]Detection{"kill": rep.Kill, "kill 5%": rep.MassKill} {
		if d.Suspect.Reached == 0 || d.Unreachable.Reached != d.Unreachable.Observers || d.Unreachable.P50 < d.Suspect.P50 {
			t.Errorf("%s: detection not measured: %+v", name, d)
		}
	}
	if p := rep.Partition; !p.CutSeen || !p.HealedSeen || p.Nodes == 0 {
		t.Errorf("partition not measured: %+v", p)
	}
}

func TestOptionsRefuseNonsense(t *testing.T) {
	for _, o := range []Options{
		{Nodes: 1, Subnets: 1},
		{Nodes: MaxNodes + 1, Subnets: 1},
		{Nodes: 10, Subnets: 0},
		{Nodes: 10, Subnets: 11},
		{Nodes: 10, Subnets: 2, Loss: 1},
		{Nodes: 10, Subnets: 2, Latency: -time.Millisecond},
		{Nodes: 10, Subnets: 2, UDP: true, Latency: time.Millisecond},
		{Nodes: 10, Subnets: 2, BootstrapPeers: -1},
		{Nodes: 10, Subnets: 2, StartEvery: time.Hour},
	} {
		if err := o.Validate(); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", o, err)
		}
	}
	if _, err := Start(t.Context(), Options{Nodes: 0}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("Start with no nodes: %v", err)
	}
}

func TestSpreadPercentiles(t *testing.T) {
	ms := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	var times []time.Duration
	for i := 100; i >= 1; i-- {
		times = append(times, ms(i))
	}
	times = append(times, -1) // one observer never saw it
	sp := spreadOf(times)
	if sp.Observers != 101 || sp.Reached != 100 || sp.P50 != ms(50) || sp.P99 != ms(99) || sp.Max != ms(100) {
		t.Fatalf("spread %+v", sp)
	}
	if sp := spreadOf([]time.Duration{-1}); sp.Reached != 0 || sp.P99 != 0 {
		t.Fatalf("nobody reached: %+v", sp)
	}
}
