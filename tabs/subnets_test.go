package tabs

import (
	"strings"
	"testing"
	"time"

	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/deck/decktest"
	"github.com/deck-mesh/deck/node/snapshot"
)

func TestSubnetTreeOrderAndDepth(t *testing.T) {
	for _, c := range []struct {
		a, b string
		less bool
	}{{"eu", "eu/ams", true}, {"eu/ams", "eu-west", true}, {"eu-west", "eu/ams", false}, {"", "ap", true}, {"eu/fra", "eu/ams", false}} {
		if got := SubnetLess(c.a, c.b); got != c.less {
			t.Errorf("SubnetLess(%q, %q) = %v", c.a, c.b, got)
		}
	}
	s := &snapshot.ClusterSnapshot{}
	for _, p := range []string{"us/sfo/edge", "eu-west", "eu/ams", "eu", "ap/tyo", "us/sfo"} {
		s.Subnets = append(s.Subnets, snapshot.SubnetView{SubnetSummary: snapshot.SubnetSummary{Path: p}})
	}
	views, depth := SubnetTree(s)
	var got []string
	for i, v := range views {
		got = append(got, strings.Repeat(">", depth[i])+v.Path)
	}
	// eu-west is a sibling of eu, not its child; us/sfo/edge sits under
	// us/sfo, which has no known parent.
	if want := "ap/tyo eu >eu/ams eu-west us/sfo >us/sfo/edge"; strings.Join(got, " ") != want {
		t.Fatalf("tree %q, want %q", strings.Join(got, " "), want)
	}
}

func TestSubnetRowsRollupsAndMarkers(t *testing.T) {
	s := decktest.Snapshot()
	rows := SubnetRows(s, decktest.T0)
	byPath := map[string][]string{}
	tones := map[string][]common.Tone{}
	for _, r := range rows {
		p := strings.TrimPrefix(r.Key, subnetKeyPrefix)
		byPath[p], tones[p] = r.Cells, r.Tones
	}
	if c := byPath[decktest.LocalSubnet]; c[2] != "LOCAL" || c[3] != "7/1/1" || tones[decktest.LocalSubnet][3] != common.ToneDanger {
		t.Errorf("local row %v", c)
	}
	if c := byPath["us/sfo/edge"]; !strings.HasSuffix(c[8], StaleMarker) || tones["us/sfo/edge"][8] != common.ToneWarn || c[0] != "  us/sfo/edge" {
		t.Errorf("stale row %q", c)
	}
	if c := byPath["ap/tyo"]; c[3] != "3/2/0" || tones["ap/tyo"][3] != common.ToneWarn || c[2] != "summary" {
		t.Errorf("suspect row %v", c)
	}
	if got := SubnetsSummary(s); !strings.Contains(got, "6 subnets · local eu/ams") || !strings.Contains(got, "1 stale") {
		t.Errorf("summary %q", got)
	}
}

// TestGatewayDropsRise: a DROP cell turns amber when the gateway's drops
// rose since its previous snapshot, red when they rose by more than it
// forwarded; a snapshot of other nodes keeps the rise; the next snapshot
// of the gateway without new drops clears it.
func TestGatewayDropsRise(t *testing.T) {
	s := decktest.Snapshot()
	cell := func(s *snapshot.ClusterSnapshot, prev map[gatewayKey]GatewaySample, ch string) (string, common.Tone, map[gatewayKey]GatewaySample) {
		next := GatewaySamples(s, prev)
		for _, r := range GatewayRows(s, next) {
			if r.Key == decktest.Gibson.String()+"/"+ch {
				return r.Cells[7], r.Tones[6], next
			}
		}
		t.Fatalf("no gibson %s row", ch)
		return "", 0, nil
	}
	rise, tone, prev := cell(s, nil, snapshot.ChannelChains)
	if rise != "" || tone != common.ToneNormal {
		t.Fatalf("first sight: rise %q tone %v", rise, tone)
	}
	bump := func(s *snapshot.ClusterSnapshot, fwd, drop uint64) *snapshot.ClusterSnapshot {
		n := *s
		n.Nodes = append([]snapshot.NodeView(nil), s.Nodes...)
		for i := range n.Nodes {
			if n.Nodes[i].ID != decktest.Gibson {
				continue
			}
			g := &n.Nodes[i]
			g.BuiltAt = g.BuiltAt.Add(time.Second)
			g.Gateway = append([]snapshot.GatewayChannel(nil), g.Gateway...)
			for j := range g.Gateway {
				if g.Gateway[j].Channel == snapshot.ChannelChains {
					g.Gateway[j].Forwarded += fwd
					g.Gateway[j].Dropped += drop
				}
			}
		}
		return &n
	}
	s2 := bump(s, 100, 5)
	if rise, tone, prev = cell(s2, prev, snapshot.ChannelChains); rise != "+5" || tone != common.ToneWarn {
		t.Fatalf("rising drops: %q %v", rise, tone)
	}
	// Another node's news: the same gibson snapshot, the rise stays.
	other := *s2
	if rise, tone, prev = cell(&other, prev, snapshot.ChannelChains); rise != "+5" || tone != common.ToneWarn {
		t.Fatalf("rise lost on an unrelated snapshot: %q %v", rise, tone)
	}
	s3 := bump(s2, 10, 50)
	if rise, tone, prev = cell(s3, prev, snapshot.ChannelChains); rise != "+50" || tone != common.ToneDanger {
		t.Fatalf("drops outpacing forwards: %q %v", rise, tone)
	}
	s4 := bump(s3, 10, 0)
	if rise, tone, _ = cell(s4, prev, snapshot.ChannelChains); rise != "" || tone != common.ToneNormal {
		t.Fatalf("steady drops: %q %v", rise, tone)
	}
}

func TestGatewayRowsReach(t *testing.T) {
	s := decktest.Snapshot()
	rows := GatewayRows(s, GatewaySamples(s, nil))
	if len(rows) != 2*len(snapshot.GatewayChannels) {
		t.Fatalf("%d rows", len(rows))
	}
	for _, r := range rows[:len(snapshot.GatewayChannels)] {
		switch r.Cells[2] {
		case snapshot.ChannelLedger:
			if r.Cells[3] != "global" || r.Cells[4] != "all 5" {
				t.Errorf("ledger %v", r.Cells)
			}
		case snapshot.ChannelFailures:
			if r.Cells[3] != "parent" || r.Cells[4] != "eu" {
				t.Errorf("failures %v", r.Cells)
			}
		case snapshot.ChannelLogs:
			if r.Cells[3] != "local" || r.Cells[4] != "—" || r.Cells[5] != "0" {
				t.Errorf("logs %v", r.Cells)
			}
		}
	}
	for v, want := range map[uint64]string{999: "999", 12_345: "12.3k", 456_789: "456k", 4_560_000: "4.6M", 3_000_000_000: "3.0G"} {
		if got := CompactCount(v); got != want {
			t.Errorf("CompactCount(%d) = %q, want %q", v, got, want)
		}
	}
}

func TestAggregatorRows(t *testing.T) {
	s := decktest.Snapshot()
	rows := AggregatorRows(s, decktest.T0)
	if len(rows) != 6 {
		t.Fatalf("%d rows", len(rows))
	}
	last := rows[len(rows)-1]
	if last.Cells[0] != "us/sfo/edge" || last.Cells[1] != "1/2" || last.Tones[1] != common.ToneWarn || last.Cells[5] != StaleMarker || last.Cells[4] != "3m10s" {
		t.Errorf("edge row %v", last.Cells)
	}
	for _, r := range rows {
		if r.Cells[0] == decktest.LocalSubnet && (r.Cells[2] != "gibson" || r.Cells[5] != "live·local") {
			t.Errorf("local row %v", r.Cells)
		}
	}
	// A group without members or leader is red.
	s.Aggregators = append(s.Aggregators, snapshot.Aggregator{Subnet: "zz", Desired: 3})
	rows = AggregatorRows(s, decktest.T0)
	if r := rows[len(rows)-1]; r.Tones[1] != common.ToneDanger || r.Cells[5] != "no leader" {
		t.Errorf("empty group %v", r.Cells)
	}
	if got := AggregatorsSummary(s); !strings.Contains(got, "2 short") || !strings.Contains(got, "1 without a leader") {
		t.Errorf("summary %q", got)
	}
}

// TestLogsFilterMatchesSubnet: `/` on LOGS keeps the records of nodes in a
// subnet, by its path.
func TestLogsFilterMatchesSubnet(t *testing.T) {
	c := testCtx(100)
	s := *c.Snap
	s.Nodes = append([]snapshot.NodeView(nil), s.Nodes...)
	for i := range s.Nodes {
		if s.Nodes[i].ID == decktest.Chiba {
			s.Nodes[i].Subnet = "eu/fra"
		}
	}
	c.Snap = &s
	for _, r := range decktest.Logs(60) {
		c.Store.Logs.Push(r)
	}
	l := NewLogs(c)
	l.SetFilter("eu/fra")
	l.Sync()
	if l.Shown() == 0 {
		t.Fatal("no record matches the subnet")
	}
	for p := c.Store.Logs.First(); p < c.Store.Logs.Total(); p++ {
		r, _ := c.Store.Logs.At(p)
		if l.Matches(r) != (r.Node == decktest.Chiba) {
			t.Fatalf("record of %s: match %v", NodeName(&s, r.Node), l.Matches(r))
		}
	}
}

// TestMapPlanFoldsSubnetsAtScale: summary-only subnets are one glyph each;
// a view holding more nodes than the canvas shows legibly folds held
// subnets (never the console's own) into glyphs until the rest fit.
func TestMapPlanFoldsSubnetsAtScale(t *testing.T) {
	s := decktest.Snapshot()
	drawn, clusters := MapPlan(s, ByRTT(s), 119, 46)
	if len(drawn) != len(s.Nodes) || len(clusters) != 5 {
		t.Fatalf("fixture: %d drawn of %d, %d clusters", len(drawn), len(s.Nodes), len(clusters))
	}
	big := decktest.Large(1000)
	const w, h = 119, 46
	drawn, clusters = MapPlan(big, ByRTT(big), w, h)
	if len(drawn) > w*h/mapCellsPerNode || len(drawn) == 0 {
		t.Fatalf("%d nodes drawn on a %d×%d map", len(drawn), w, h)
	}
	local := 0
	for i := range big.Nodes {
		if big.Nodes[i].Subnet == big.LocalSubnet {
			local++
		}
	}
	inDrawn := 0
	for _, id := range drawn {
		if n := big.Node(id); n.Subnet == big.LocalSubnet {
			inDrawn++
		}
	}
	if inDrawn != local {
		t.Fatalf("%d of the local subnet's %d nodes drawn", inDrawn, local)
	}
	folded := 0
	for _, c := range clusters {
		if c.path == big.LocalSubnet {
			t.Fatal("the local subnet folded")
		}
		folded += c.nodes[0] + c.nodes[1] + c.nodes[2]
	}
	if folded+len(drawn) != len(big.Nodes) {
		t.Fatalf("%d folded + %d drawn != %d", folded, len(drawn), len(big.Nodes))
	}
	if l := Layout(big, ByRTT(big), w, h); len(l.pos) != len(drawn) || len(l.clusters) != len(clusters) {
		t.Fatalf("layout placed %d nodes, %d clusters", len(l.pos), len(l.clusters))
	}
}
