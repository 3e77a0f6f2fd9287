package tabs

import (
	"fmt"
	"strconv"

	"charm.land/bubbles/v2/key"
	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/widgets"
)

// Dataforts is the DATAFORTS tab: each datafort node's blob store —
// capacity, use, chunks, reads and writes, transfer in and out, overflow
// state, errors — the local one (this console's own node, when it keeps a
// store) first, then the remote ones. Rows are nodes: Enter, `l` and the
// node verbs (a drain moves a store's replicas) act on them.
type Dataforts struct {
	nodeTab
	last    *snapshot.ClusterSnapshot
	summary string
}

// NewDataforts makes the DATAFORTS tab.
func NewDataforts(c *common.Context) *Dataforts {
	return &Dataforts{nodeTab: nodeTab{tableTab{c: c, table: widgets.NewTable(
		widgets.Column{Title: "NODE", Width: 10, Flex: true},
		widgets.Column{Title: "STATE", Width: 11},
		widgets.Column{Title: "USED/CAP", Width: 11, Align: widgets.AlignRight},
		widgets.Column{Title: "FILL", Width: 4, Align: widgets.AlignRight},
		widgets.Column{Title: "CHUNKS", Width: 7, Align: widgets.AlignRight, HideBelow: 100},
		widgets.Column{Title: "BLOBS", Width: 5, Align: widgets.AlignRight, HideBelow: 120},
		widgets.Column{Title: "RD/s", Width: 5, Align: widgets.AlignRight},
		widgets.Column{Title: "WR/s", Width: 5, Align: widgets.AlignRight},
		widgets.Column{Title: "IN/s", Width: 5, Align: widgets.AlignRight},
		widgets.Column{Title: "OUT/s", Width: 5, Align: widgets.AlignRight},
		widgets.Column{Title: "FETCH", Width: 5, Align: widgets.AlignRight, HideBelow: 140},
		widgets.Column{Title: "ERR", Width: 3, Align: widgets.AlignRight},
		widgets.Column{Title: "FIXED", Width: 5, Align: widgets.AlignRight, HideBelow: 140},
	)}}}
}

func (t *Dataforts) Name() string { return "DATAFORTS" }

// DatafortState is a store's state word and tone: unreachable (its last
// report), draining (replicas left to move), full, overflowing, or ok.
func DatafortState(n *snapshot.NodeView) (string, common.Tone) {
	d := &n.Datafort
	switch {
	case n.Health == snapshot.Unreachable:
		return "unreachable", common.ToneDanger
	case d.DrainLeft > 0:
		return "draining " + strconv.Itoa(d.DrainLeft), common.ToneWarn
	case d.Overflow == snapshot.OverflowFull:
		return "full", common.ToneDanger
	case d.Overflow == snapshot.OverflowHigh:
		return "overflowing", common.ToneWarn
	}
	return "ok", common.ToneOK
}

// count is a per-second rate with one decimal ("0" when idle).
func count(perSec float64) string {
	if perSec < 0.05 {
		return "0"
	}
	return strconv.FormatFloat(perSec, 'f', 1, 64)
}

// DatafortRows turns a snapshot into DATAFORTS rows (pure; unit tested):
// a LOCAL section (this console's own node, or why it has none) and a
// REMOTE one, by label. An unreachable node's figures are its last report,
// dimmed.
func DatafortRows(s *snapshot.ClusterSnapshot) []widgets.Row {
	var local *snapshot.NodeView
	var remote []*snapshot.NodeView
	for _, n := range SortedNodes(s) {
		if !n.Datafort.Enabled {
			continue
		}
		if n.ID == s.Self {
			local = n
			continue
		}
		remote = append(remote, n)
	}
	rows := make([]widgets.Row, 0, len(remote)+3)
	if local != nil {
		rows = append(rows, widgets.Row{Key: "local", Heading: true, Cells: []string{"LOCAL · this node's own store"}, Tone: common.ToneHeader})
		rows = append(rows, datafortRow(local))
	} else {
		rows = append(rows, widgets.Row{Key: "local", Heading: true, Tone: common.ToneHeader,
			Cells: []string{"LOCAL · none: this console's node is an observer and keeps no store"}})
	}
	rows = append(rows, widgets.Row{Key: "remote", Heading: true, Tone: common.ToneHeader,
		Cells: []string{fmt.Sprintf("REMOTE · %d datafort nodes", len(remote))}})
	for _, n := range remote {
		rows = append(rows, datafortRow(n))
	}
	return rows
}

func datafortRow(n *snapshot.NodeView) widgets.Row {
	d := &n.Datafort
	state, stTone := DatafortState(n)
	fill := 0.0
	if d.Capacity > 0 {
		fill = float64(d.Used) / float64(d.Capacity)
	}
	name := n.Label
	if name == "" {
		name = n.ID.Short()
	}
	tones := []common.Tone{common.ToneNormal, stTone, common.ToneNormal, widgets.LoadTone(fill),
		common.ToneNormal, common.ToneNormal, common.ToneNormal, common.ToneNormal, common.ToneNormal, common.ToneNormal,
		common.ToneAccent, common.ToneOK, common.ToneOK}
	const errCol = 11
	if d.Errors > d.Repaired {
		tones[errCol] = common.ToneDanger
	} else if d.Errors > 0 {
		tones[errCol] = common.ToneWarn
	}
	if n.Health == snapshot.Unreachable || n.Stale {
		for i := range tones {
			if i != 1 {
				tones[i] = common.ToneDim
			}
		}
	}
	return widgets.Row{
		Key: n.ID.String(),
		Cells: []string{name, state, widgets.ShortBytes(d.Used) + "/" + widgets.ShortBytes(d.Capacity), widgets.Pct(fill),
			strconv.FormatUint(d.Chunks, 10), strconv.FormatUint(d.Blobs, 10), count(d.ReadsPerSec), count(d.WritesPerSec),
			widgets.ShortBytes(uint64(d.BytesInPerSec)), widgets.ShortBytes(uint64(d.BytesOutPerSec)), strconv.Itoa(d.Incoming),
			strconv.FormatUint(d.Errors, 10), strconv.FormatUint(d.Repaired, 10)},
		Tones: tones,
	}
}

// DatafortSummary is the DATAFORTS header: stores, bytes, attention.
func DatafortSummary(s *snapshot.ClusterSnapshot) string {
	var n, over, errs int
	var used, capacity uint64
	var in, out float64
	for i := range s.Nodes {
		v := &s.Nodes[i]
		d := &v.Datafort
		if !d.Enabled {
			continue
		}
		n++
		if v.Health == snapshot.Unreachable {
			continue // its figures are a last report
		}
		used += d.Used
		capacity += d.Capacity
		in += d.BytesInPerSec
		out += d.BytesOutPerSec
		if d.Overflow != snapshot.OverflowNone {
			over++
		}
		if d.Errors > d.Repaired {
			errs++
		}
	}
	fill := 0.0
	if capacity > 0 {
		fill = float64(used) / float64(capacity)
	}
	return fmt.Sprintf("%d dataforts · %s of %s (%s) · %d overflowing · %d with unrepaired errors · in %s · out %s",
		n, widgets.Bytes(used), widgets.Bytes(capacity), widgets.Pct(fill), over, errs, widgets.Rate(in), widgets.Rate(out))
}

func (t *Dataforts) Sync() {
	s := t.c.Snap
	if s == t.last {
		return
	}
	t.last = s
	t.table.SetRows(DatafortRows(s))
	t.summary = DatafortSummary(s)
}

func (t *Dataforts) View(w, h int) string {
	return t.render(t.summary, w, h, "no datafort nodes: a node with capability datafort keeps blobs")
}

func (t *Dataforts) Bindings() []key.Binding {
	k := t.c.Keys
	return append(nodeBindings(k), k.Filter)
}
