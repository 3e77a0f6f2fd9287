package tabs

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/widgets"
)

// Daemons is the DAEMONS tab: every daemon instance in the cluster.
type Daemons struct {
	tableTab
	last    *snapshot.ClusterSnapshot
	lastNow time.Time
	summary string
}

// NewDaemons makes the DAEMONS tab.
func NewDaemons(c *common.Context) *Daemons {
	return &Daemons{tableTab: tableTab{c: c, table: widgets.NewTable(
		widgets.Column{Title: "DAEMON", Width: 11, Flex: true},
		widgets.Column{Title: "KIND", Width: 7},
		widgets.Column{Title: "LINEAGE", Width: 14},
		widgets.Column{Title: "NODE", Width: 11},
		widgets.Column{Title: "STATE", Width: 12},
		widgets.Column{Title: "HEALTH", Width: 9},
		widgets.Column{Title: "SAT", Width: 4, Align: widgets.AlignRight},
		widgets.Column{Title: "AGE", Width: 6, Align: widgets.AlignRight, HideBelow: 90},
		widgets.Column{Title: "RST", Width: 3, Align: widgets.AlignRight, HideBelow: 110},
		// The node's subnet: shown when wide, matched by `/` at any width.
		widgets.Column{Title: "SUBNET", Width: 8, HideBelow: 150},
		widgets.Column{Title: "REASON", Width: 16, HideBelow: 130},
	)}}
}

func (t *Daemons) Name() string { return "DAEMONS" }

// LineageLabel renders a daemon's role: SOLO, REP m[i], STBY active/warm,
// FORK f[i]@seq.
func LineageLabel(l snapshot.Lineage) string { return l.Label() }

// DaemonState is the lifecycle with the restart state folded in, and its tone.
func DaemonState(d *snapshot.Daemon, now time.Time) (string, common.Tone) {
	switch d.Restart {
	case snapshot.RestartCrashLooping:
		return fmt.Sprintf("crashloop×%d", d.Restarts), common.ToneDanger
	case snapshot.RestartBackingOff:
		return "backoff " + widgets.Countdown(now, d.RestartUntil), common.ToneWarn
	}
	switch d.Lifecycle {
	case snapshot.LifecycleRunning:
		return "running", common.ToneOK
	case snapshot.LifecycleCrashed:
		return "crashed", common.ToneDanger
	case snapshot.LifecycleStopped:
		return "stopped", common.ToneDim
	}
	return d.Lifecycle.String(), common.ToneWarn
}

// DaemonHealthTone maps daemon health to a tone.
func DaemonHealthTone(h snapshot.DaemonHealthState) common.Tone {
	switch h {
	case snapshot.DaemonDegraded:
		return common.ToneWarn
	case snapshot.DaemonUnhealthy:
		return common.ToneDanger
	}
	return common.ToneOK
}

// UniqueDaemons returns each daemon once, in natural id order. When a node is
// unreachable its last report may still list daemons that were re-placed
// elsewhere since; the instance on a reachable node wins, and a daemon only
// known from an unreachable node is returned with unseen set.
func UniqueDaemons(s *snapshot.ClusterSnapshot) (ds []*snapshot.Daemon, unseen map[string]bool) {
	idx := map[string]int{}
	unseen = map[string]bool{}
	for pass := 0; pass < 2; pass++ {
		for i := range s.Nodes {
			n := &s.Nodes[i]
			if reachable(n) != (pass == 0) {
				continue
			}
			for j := range n.Daemons {
				d := &n.Daemons[j]
				if _, dup := idx[d.ID]; dup {
					continue
				}
				idx[d.ID] = len(ds)
				ds = append(ds, d)
				if pass == 1 {
					unseen[d.ID] = true
				}
			}
		}
	}
	sort.SliceStable(ds, func(i, j int) bool { return NaturalLess(ds[i].ID, ds[j].ID) })
	return ds, unseen
}

// DaemonCounts are the cluster's daemon figures: running, backing off,
// crashed (or crash-looping) and unseen (only known from an unreachable
// node's last report), each daemon counted once.
type DaemonCounts struct{ Running, Backoff, Crashed, Unseen, Total int }

// CountDaemons computes DaemonCounts.
func CountDaemons(s *snapshot.ClusterSnapshot) DaemonCounts {
	ds, unseen := UniqueDaemons(s)
	c := DaemonCounts{Total: len(ds)}
	for _, d := range ds {
		switch {
		case unseen[d.ID]:
			c.Unseen++
		case d.Restart == snapshot.RestartCrashLooping || d.Lifecycle == snapshot.LifecycleCrashed:
			c.Crashed++
		case d.Restart == snapshot.RestartBackingOff:
			c.Backoff++
		case d.Lifecycle == snapshot.LifecycleRunning:
			c.Running++
		}
	}
	return c
}

// DaemonRows turns a snapshot into DAEMONS rows (pure; unit tested).
func DaemonRows(s *snapshot.ClusterSnapshot, now time.Time) []widgets.Row {
	ds, unseen := UniqueDaemons(s)
	rows := make([]widgets.Row, 0, len(ds))
	// Each daemon's node, found once per node (s.Node scans the nodes:
	// per daemon that is quadratic at a thousand nodes).
	nodes := make(map[api.NodeID]*snapshot.NodeView, len(s.Nodes))
	for i := range s.Nodes {
		nodes[s.Nodes[i].ID] = &s.Nodes[i]
	}
	for _, d := range ds {
		node, subnet := NodeName(nil, d.Node), ""
		if n := nodes[d.Node]; n != nil {
			node, subnet = displayName(n), n.Subnet
		}
		state, stTone := DaemonState(d, now)
		health, hTone := d.Health.String(), DaemonHealthTone(d.Health)
		reason := d.HealthReason
		if unseen[d.ID] {
			state, stTone = "unseen", common.ToneDim
			health, hTone = "—", common.ToneDim
			reason = "node unreachable: last report"
		}
		name := d.Name
		if name == "" {
			name = d.ID
		}
		rows = append(rows, widgets.Row{
			Key: d.ID,
			Cells: []string{name, d.Kind, LineageLabel(d.Lineage), node, state, health,
				widgets.Pct(d.Saturation), widgets.Since(now, d.StartedAt), strconv.Itoa(d.Restarts), SubnetLabel(subnet), reason},
			Tones: []common.Tone{common.ToneNormal, common.ToneDim, common.ToneAccent, common.ToneNormal, stTone,
				hTone, widgets.LoadTone(d.Saturation), common.ToneDim, common.ToneDim, subnetTone(s, subnet), common.ToneDim},
		})
	}
	return rows
}

func (t *Daemons) Sync() {
	s := t.c.Snap
	// Ages and backoff countdowns move with the clock, so rows are rebuilt
	// on the 1 Hz tick as well as on a new snapshot.
	if s == t.last && sameSecond(t.c.Now, t.lastNow) {
		return
	}
	t.last, t.lastNow = s, t.c.Now
	rows := DaemonRows(s, t.c.Now)
	t.table.SetRows(rows)
	c := CountDaemons(s)
	t.summary = fmt.Sprintf("%d daemons · %d running · %d backing off · %d crashed", c.Total, c.Running, c.Backoff, c.Crashed)
	if c.Unseen > 0 {
		t.summary += fmt.Sprintf(" · %d unseen (node unreachable)", c.Unseen)
	}
}

func (t *Daemons) Selection() common.Selection {
	id := t.table.SelectedKey()
	sel := common.Selection{Daemon: id, Label: id}
	if r, ok := t.table.Selected(); ok {
		sel.Node = nodeOfDaemon(t.c.Snap, r.Key)
	}
	return sel
}

func nodeOfDaemon(s *snapshot.ClusterSnapshot, id string) api.NodeID {
	if d := FindDaemon(s, id); d != nil {
		return d.Node
	}
	return 0
}

// FindDaemon finds a daemon instance by id, preferring one on a reachable
// node (an unreachable node's last report may list daemons placed elsewhere
// since).
func FindDaemon(s *snapshot.ClusterSnapshot, id string) *snapshot.Daemon {
	var stale *snapshot.Daemon
	for i := range s.Nodes {
		for j := range s.Nodes[i].Daemons {
			if s.Nodes[i].Daemons[j].ID == id {
				if reachable(&s.Nodes[i]) {
					return &s.Nodes[i].Daemons[j]
				}
				if stale == nil {
					stale = &s.Nodes[i].Daemons[j]
				}
			}
		}
	}
	return stale
}

// daemonActions maps the daemon keys to actions (DAEMONS, GROUPS, page).
func daemonActions(k *common.KeyMap, msg tea.KeyPressMsg, id string) (tea.Cmd, bool) {
	if id == "" {
		return nil, false
	}
	switch {
	case key.Matches(msg, k.Enter):
		return openDaemon(id), true
	case key.Matches(msg, k.Restart):
		return act(common.ActionMsg{Action: api.Action{Verb: api.VerbRestartDaemon, Daemon: id}}), true
	case key.Matches(msg, k.ForceRestart):
		return act(common.ActionMsg{Action: api.Action{Verb: api.VerbForceRestartDaemon, Daemon: id}}), true
	}
	return nil, false
}

func (t *Daemons) HandleKey(msg tea.KeyPressMsg) tea.Cmd {
	if t.table.HandleKey(msg, t.c.Keys) {
		return nil
	}
	cmd, _ := daemonActions(t.c.Keys, msg, t.table.SelectedKey())
	return cmd
}

func (t *Daemons) View(w, h int) string {
	return t.render(t.summary, w, h, "no daemons placed")
}

func (t *Daemons) Bindings() []key.Binding {
	k := t.c.Keys
	return []key.Binding{k.Enter, k.Logs, k.Restart, k.ForceRestart, k.Filter}
}
