package tabs

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/widgets"
)

// GatewayReachMaxCells bounds the REACH cell: a global rule reaches every
// other subnet, which at 32 subnets would fill any screen.
const GatewayReachMaxCells = 48

// gatewayReachListed is how many reach paths REACH lists without their
// count in front.
const gatewayReachListed = 3

// Gateways is the GATEWAYS tab (rows keyed id/channel: the node tab's
// cursor, Enter and node keys act on the gateway node): every gateway node in the view and, per
// channel, its visibility rule, where it forwards, and what it forwarded
// and dropped (drops amber while rising, red when the rule refused more
// than it relayed since the gateway's previous snapshot).
type Gateways struct {
	nodeTab
	last    *snapshot.ClusterSnapshot
	summary string
	// prev is each (gateway, channel)'s counters as of that gateway's
	// previous snapshot, with the rise they showed then: a gateway's rows
	// keep their rise until it publishes again, so the tone does not
	// flicker with snapshots of other nodes.
	prev map[gatewayKey]GatewaySample
}

type gatewayKey struct {
	node    api.NodeID
	channel string
}

// GatewaySample is one gateway channel's counters as of one of the
// gateway's snapshots (BuiltAt), and how much they rose since the one
// before.
type GatewaySample struct {
	BuiltAt               time.Time
	Forwarded, Dropped    uint64
	ForwardRise, DropRise uint64
}

// NewGateways makes the GATEWAYS tab.
func NewGateways(c *common.Context) *Gateways {
	return &Gateways{nodeTab: nodeTab{tableTab{c: c, table: widgets.NewTable(
		widgets.Column{Title: "GATEWAY", Width: 11, Flex: true},
		widgets.Column{Title: "SUBNET", Width: 8, HideBelow: 100},
		widgets.Column{Title: "CHANNEL", Width: 9},
		widgets.Column{Title: "VIS", Width: 6},
		widgets.Column{Title: "REACH", Width: 12},
		widgets.Column{Title: "FWD", Width: 6, Align: widgets.AlignRight},
		widgets.Column{Title: "DROP", Width: 6, Align: widgets.AlignRight},
		widgets.Column{Title: "ΔDROP", Width: 6, Align: widgets.AlignRight, HideBelow: 100},
	)}}, prev: map[gatewayKey]GatewaySample{}}
}

func (t *Gateways) Name() string { return "GATEWAYS" }

// CompactCount writes a counter in at most five cells: 999, 12.3k, 4.56M.
func CompactCount(v uint64) string {
	switch {
	case v < 1000:
		return strconv.FormatUint(v, 10)
	case v < 100_000:
		return fmt.Sprintf("%.1fk", float64(v)/1e3)
	case v < 1_000_000:
		return fmt.Sprintf("%dk", v/1000)
	case v < 100_000_000:
		return fmt.Sprintf("%.1fM", float64(v)/1e6)
	case v < 1_000_000_000:
		return fmt.Sprintf("%dM", v/1_000_000)
	}
	return fmt.Sprintf("%.1fG", float64(v)/1e9)
}

// VisTone colours a visibility: the wider a channel travels, the more an
// operator wants to see it.
func VisTone(v snapshot.Visibility) common.Tone {
	switch v {
	case snapshot.VisGlobal:
		return common.ToneAccent
	case snapshot.VisParent:
		return common.ToneNormal
	}
	return common.ToneDim
}

// DropTone is a DROP cell's tone from its rise since the gateway's previous
// snapshot: red when the rule refused more than it relayed, amber while
// rising, dim at zero.
func DropTone(s GatewaySample) common.Tone {
	switch {
	case s.DropRise > 0 && s.DropRise > s.ForwardRise:
		return common.ToneDanger
	case s.DropRise > 0:
		return common.ToneWarn
	case s.Dropped == 0:
		return common.ToneDim
	}
	return common.ToneNormal
}

// reachLabel writes a rule's reach: "—" for none, "all N" when it reaches
// every other subnet the view knows, else the paths (with their count
// first when there are more than a few).
func reachLabel(s *snapshot.ClusterSnapshot, g *snapshot.GatewayChannel, subnet string) string {
	switch {
	case len(g.Reach) == 0:
		return "—"
	case len(s.Subnets) > 2 && len(g.Reach) >= len(s.Subnets)-1 && !containsPath(g.Reach, subnet):
		return "all " + strconv.Itoa(len(g.Reach))
	}
	parts := make([]string, len(g.Reach))
	for i, p := range g.Reach {
		parts[i] = SubnetLabel(p)
	}
	out := strings.Join(parts, ",")
	if len(parts) > gatewayReachListed {
		// A long list is cut: its size first, so the cut loses no count.
		out = strconv.Itoa(len(parts)) + ": " + out
	}
	return widgets.Truncate(out, GatewayReachMaxCells)
}

func containsPath(ps []string, p string) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// GatewaySamples advances prev to s's gateways (pure but for prev, which
// it updates): a channel whose gateway published since its last sample
// gets a fresh rise, the others keep theirs. Gateways gone from the view
// are forgotten.
func GatewaySamples(s *snapshot.ClusterSnapshot, prev map[gatewayKey]GatewaySample) map[gatewayKey]GatewaySample {
	next := make(map[gatewayKey]GatewaySample, len(prev))
	for i := range s.Nodes {
		n := &s.Nodes[i]
		for j := range n.Gateway {
			g := &n.Gateway[j]
			k := gatewayKey{n.ID, g.Channel}
			old, seen := prev[k]
			cur := GatewaySample{BuiltAt: n.BuiltAt, Forwarded: g.Forwarded, Dropped: g.Dropped}
			switch {
			case seen && old.BuiltAt.Equal(n.BuiltAt):
				cur = old
			case seen:
				// Counters only grow; a restarted gateway starts again at
				// zero, which is no rise.
				if g.Forwarded > old.Forwarded {
					cur.ForwardRise = g.Forwarded - old.Forwarded
				}
				if g.Dropped > old.Dropped {
					cur.DropRise = g.Dropped - old.Dropped
				}
			}
			next[k] = cur
		}
	}
	return next
}

// GatewayRows lists every gateway node's channels, gateways by name and
// channels in snapshot.GatewayChannels order (pure; unit tested). The
// gateway's name repeats on each of its rows (dim after the first) so `/`
// on a name keeps all of them.
func GatewayRows(s *snapshot.ClusterSnapshot, samples map[gatewayKey]GatewaySample) []widgets.Row {
	var rows []widgets.Row
	order := make(map[string]int, len(snapshot.GatewayChannels))
	for i, ch := range snapshot.GatewayChannels {
		order[ch] = i
	}
	for _, n := range SortedNodes(s) {
		if len(n.Gateway) == 0 {
			continue
		}
		chans := make([]*snapshot.GatewayChannel, len(n.Gateway))
		for i := range n.Gateway {
			chans[i] = &n.Gateway[i]
		}
		rank := func(c string) int {
			if r, ok := order[c]; ok {
				return r
			}
			return len(order)
		}
		sort.SliceStable(chans, func(i, j int) bool {
			ri, rj := rank(chans[i].Channel), rank(chans[j].Channel)
			if ri != rj {
				return ri < rj
			}
			return chans[i].Channel < chans[j].Channel
		})
		for i, g := range chans {
			sm := samples[gatewayKey{n.ID, g.Channel}]
			nameTone := common.ToneNormal
			if i > 0 {
				nameTone = common.ToneDim
			}
			if n.Health == snapshot.Unreachable {
				nameTone = common.ToneDanger
			}
			rise, riseTone := "", common.ToneDim
			if sm.DropRise > 0 {
				rise, riseTone = "+"+CompactCount(sm.DropRise), DropTone(sm)
			}
			fwdTone := common.ToneNormal
			if g.Forwarded == 0 {
				fwdTone = common.ToneDim
			}
			rows = append(rows, widgets.Row{
				Key: n.ID.String() + "/" + g.Channel,
				Cells: []string{NodeLabel(s, n), SubnetLabel(n.Subnet), widgets.Printable(g.Channel), g.Visibility.String(),
					reachLabel(s, g, n.Subnet), CompactCount(g.Forwarded), CompactCount(g.Dropped), rise},
				Tones: []common.Tone{nameTone, subnetTone(s, n.Subnet), common.ToneNormal, VisTone(g.Visibility),
					common.ToneDim, fwdTone, DropTone(sm), riseTone},
			})
		}
	}
	return rows
}

// GatewaysSummary is the GATEWAYS header.
func GatewaysSummary(s *snapshot.ClusterSnapshot, samples map[gatewayKey]GatewaySample) string {
	nodes := map[api.NodeID]bool{}
	var fwd, drop uint64
	rising := 0
	for k, sm := range samples {
		nodes[k.node] = true
		fwd += sm.Forwarded
		drop += sm.Dropped
		if sm.DropRise > 0 {
			rising++
		}
	}
	out := fmt.Sprintf("%d gateways · %d channel rules · forwarded %s · dropped %s", len(nodes), len(samples),
		CompactCount(fwd), CompactCount(drop))
	if rising > 0 {
		out += fmt.Sprintf(" · %d dropping now", rising)
	}
	return out
}

func (t *Gateways) Sync() {
	s := t.c.Snap
	if s == t.last {
		return
	}
	t.last = s
	t.prev = GatewaySamples(s, t.prev)
	t.table.SetRows(GatewayRows(s, t.prev))
	t.summary = GatewaysSummary(s, t.prev)
}

func (t *Gateways) View(w, h int) string {
	return t.render(t.summary, w, h, "no gateway nodes in the view (focus a subnet to see its gateways)")
}

func (t *Gateways) Bindings() []key.Binding {
	return append(nodeBindings(t.c.Keys), t.c.Keys.Filter)
}
