package tabs

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/widgets"
)

// Aggregators is the AGGREGATORS tab: the aggregator registry, one row per
// subnet, its ages live (rebuilt on the 1 Hz tick).
type Aggregators struct{ subnetTab }

// NewAggregators makes the AGGREGATORS tab.
func NewAggregators(c *common.Context) *Aggregators {
	return &Aggregators{subnetTab{rows: AggregatorRows, summarize: AggregatorsSummary,
		empty: "no aggregator groups in the registry", tableTab: tableTab{c: c, table: widgets.NewTable(
			widgets.Column{Title: "SUBNET", Width: 14, Flex: true},
			widgets.Column{Title: "MEMBERS", Width: 7, Align: widgets.AlignRight},
			widgets.Column{Title: "LEADER", Width: 11},
			widgets.Column{Title: "GEN", Width: 6, Align: widgets.AlignRight},
			widgets.Column{Title: "UPDATED", Width: 7, Align: widgets.AlignRight},
			widgets.Column{Title: "STATE", Width: 11},
			widgets.Column{Title: "GROUP", Width: 20, HideBelow: 120},
		)}}}
}

func (t *Aggregators) Name() string { return "AGGREGATORS" }

// AggregatorRows lists the registry in tree order of its subnets (pure;
// unit tested). MEMBERS is held/desired (amber short, red empty); STATE
// says whether the view's summary of the subnet is stale.
func AggregatorRows(s *snapshot.ClusterSnapshot, now time.Time) []widgets.Row {
	aggs := make([]*snapshot.Aggregator, len(s.Aggregators))
	for i := range s.Aggregators {
		aggs[i] = &s.Aggregators[i]
	}
	// Tree order, as SUBNETS lists them.
	sort.SliceStable(aggs, func(i, j int) bool { return SubnetLess(aggs[i].Subnet, aggs[j].Subnet) })
	rows := make([]widgets.Row, 0, len(aggs))
	for _, a := range aggs {
		held, hTone := fmt.Sprintf("%d/%d", len(a.Members), a.Desired), common.ToneOK
		switch {
		case len(a.Members) == 0:
			hTone = common.ToneDanger
		case len(a.Members) < a.Desired:
			hTone = common.ToneWarn
		}
		state, sTone := "live", common.ToneOK
		if v := subnetView(s, a.Subnet); v != nil {
			switch {
			case v.Stale:
				state, sTone = StaleMarker, common.ToneWarn
			case v.Local:
				state, sTone = "live·local", common.ToneAccent
			}
		}
		if a.Leader == 0 {
			state, sTone = "no leader", common.ToneDanger
		}
		updated := "—"
		if !a.UpdatedAt.IsZero() {
			updated = widgets.Since(now, a.UpdatedAt)
		}
		group := make([]string, len(a.Members))
		for i, id := range a.Members {
			group[i] = NodeName(s, id)
		}
		pathTone := common.ToneNormal
		if a.Subnet == s.LocalSubnet {
			pathTone = common.ToneAccent
		}
		rows = append(rows, widgets.Row{
			Key:   subnetKeyPrefix + a.Subnet,
			Cells: []string{SubnetLabel(a.Subnet), held, NodeName(s, a.Leader), strconv.FormatUint(a.Generation, 10), updated, state, strings.Join(group, ",")},
			Tones: []common.Tone{pathTone, hTone, common.ToneNormal, common.ToneDim, common.ToneDim, sTone, common.ToneDim},
		})
	}
	return rows
}

// AggregatorsSummary is the AGGREGATORS header.
func AggregatorsSummary(s *snapshot.ClusterSnapshot) string {
	short, leaderless := 0, 0
	for i := range s.Aggregators {
		a := &s.Aggregators[i]
		if len(a.Members) < a.Desired {
			short++
		}
		if a.Leader == 0 {
			leaderless++
		}
	}
	out := fmt.Sprintf("%d aggregator groups · %d short of members", len(s.Aggregators), short)
	if leaderless > 0 {
		out += fmt.Sprintf(" · %d without a leader", leaderless)
	}
	return out
}
