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

// Migrations is the MIGRATIONS tab: daemon moves in flight.
type Migrations struct {
	tableTab
	last    *snapshot.ClusterSnapshot
	lastNow time.Time
	summary string
}

// NewMigrations makes the MIGRATIONS tab.
func NewMigrations(c *common.Context) *Migrations {
	return &Migrations{tableTab: tableTab{c: c, table: widgets.NewTable(
		widgets.Column{Title: "DAEMON", Width: 11},
		widgets.Column{Title: "SOURCE", Width: 10},
		widgets.Column{Title: "TARGET", Width: 10},
		widgets.Column{Title: "PHASE", Width: 9},
		widgets.Column{Title: "PROG%", Width: 5, Align: widgets.AlignRight},
		widgets.Column{Title: "PROGRESS", Width: 10, HideBelow: 100},
		widgets.Column{Title: "RETRY", Width: 5, Align: widgets.AlignRight},
		widgets.Column{Title: "ELAPSED", Width: 7, Align: widgets.AlignRight},
		widgets.Column{Title: "ERROR", Width: 8, Flex: true},
	)}}
}

func (t *Migrations) Name() string { return "MIGRATIONS" }

// AllMigrations lists every migration in the snapshot once. A migration is
// reported by both ends under the same id, each leaving its own end blank
// (the source's record names only the target and vice versa): the two are
// merged, the blank ends filled with the reporting node, and the further
// phase and progress kept. Order: in flight first, then by start time.
func AllMigrations(s *snapshot.ClusterSnapshot) []*snapshot.Migration {
	byID := map[string]int{}
	var out []snapshot.Migration
	for i := range s.Nodes {
		n := &s.Nodes[i]
		for j := range n.Migrations {
			m := n.Migrations[j]
			if m.Source == 0 {
				m.Source = n.ID
			}
			if m.Target == 0 {
				m.Target = n.ID
			}
			k, ok := byID[m.ID]
			if !ok {
				byID[m.ID] = len(out)
				out = append(out, m)
				continue
			}
			out[k] = mergeMigration(out[k], m)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		ai, aj := out[i].Phase < snapshot.PhaseComplete, out[j].Phase < snapshot.PhaseComplete
		if ai != aj {
			return ai
		}
		if !out[i].StartedAt.Equal(out[j].StartedAt) {
			return out[i].StartedAt.After(out[j].StartedAt)
		}
		return out[i].ID < out[j].ID
	})
	ptrs := make([]*snapshot.Migration, len(out))
	for i := range out {
		ptrs[i] = &out[i]
	}
	return ptrs
}

// mergeMigration folds two ends' records of one migration.
func mergeMigration(a, b snapshot.Migration) snapshot.Migration {
	if b.Phase > a.Phase {
		a.Phase = b.Phase
	}
	a.Progress = max(a.Progress, b.Progress)
	a.Retries = max(a.Retries, b.Retries)
	if a.Error == "" {
		a.Error = b.Error
	}
	if a.StartedAt.IsZero() || (!b.StartedAt.IsZero() && b.StartedAt.Before(a.StartedAt)) {
		a.StartedAt = b.StartedAt
	}
	return a
}

// PhaseTone maps a migration phase to a tone.
func PhaseTone(p snapshot.MigrationPhase) common.Tone {
	switch p {
	case snapshot.PhaseFailed, snapshot.PhaseRolledBack:
		return common.ToneDanger
	case snapshot.PhaseComplete:
		return common.ToneOK
	}
	return common.ToneAccent
}

// MigrationRows turns a snapshot into MIGRATIONS rows (pure; unit tested).
func MigrationRows(s *snapshot.ClusterSnapshot, now time.Time) []widgets.Row {
	var rows []widgets.Row
	for _, m := range AllMigrations(s) {
		retryTone := common.ToneDim
		if m.Retries > 0 {
			retryTone = common.ToneWarn
		}
		bar := progressText(m.Progress, 10)
		rows = append(rows, widgets.Row{
			Key: m.ID,
			Cells: []string{m.Daemon, NodeName(s, m.Source), NodeName(s, m.Target), m.Phase.String(),
				widgets.Pct(m.Progress), bar, strconv.Itoa(m.Retries), widgets.Since(now, m.StartedAt), m.Error},
			Tones: []common.Tone{common.ToneNormal, common.ToneNormal, common.ToneAccent, PhaseTone(m.Phase),
				common.ToneNormal, common.ToneOK, retryTone, common.ToneDim, common.ToneDanger},
		})
	}
	return rows
}

// progressText is a plain w-cell progress bar (no escapes, table-safe).
func progressText(f float64, w int) string {
	full := int(f*float64(w) + 0.5)
	if full > w {
		full = w
	}
	if full < 0 {
		full = 0
	}
	b := make([]rune, w)
	for i := range b {
		if i < full {
			b[i] = '█'
		} else {
			b[i] = '░'
		}
	}
	return string(b)
}

func (t *Migrations) Sync() {
	if t.c.Snap == t.last && sameSecond(t.c.Now, t.lastNow) {
		return
	}
	t.last, t.lastNow = t.c.Snap, t.c.Now
	t.table.SetRows(MigrationRows(t.c.Snap, t.c.Now))
	active := 0
	for _, m := range AllMigrations(t.c.Snap) {
		if m.Phase < snapshot.PhaseComplete {
			active++
		}
	}
	t.summary = fmt.Sprintf("%d migration%s · %d in flight", t.table.Total(), pluralS(t.table.Total()), active)
}

func (t *Migrations) migration() *snapshot.Migration {
	id := t.table.SelectedKey()
	for _, m := range AllMigrations(t.c.Snap) {
		if m.ID == id {
			return m
		}
	}
	return nil
}

func (t *Migrations) Selection() common.Selection {
	if m := t.migration(); m != nil {
		return common.Selection{Daemon: m.Daemon, Node: m.Source, Label: m.Daemon}
	}
	return common.Selection{}
}

func (t *Migrations) HandleKey(msg tea.KeyPressMsg) tea.Cmd {
	if t.table.HandleKey(msg, t.c.Keys) {
		return nil
	}
	m := t.migration()
	if m == nil {
		return nil
	}
	switch {
	case key.Matches(msg, t.c.Keys.Enter):
		return openDaemon(m.Daemon)
	case key.Matches(msg, t.c.Keys.KillMigration):
		return act(common.ActionMsg{Action: api.Action{Verb: api.VerbKillMigration, Migration: m.ID}})
	}
	return nil
}

func (t *Migrations) View(w, h int) string {
	return t.render(t.summary, w, h, "no migrations in flight")
}

func (t *Migrations) Bindings() []key.Binding {
	k := t.c.Keys
	return []key.Binding{k.Enter, k.KillMigration, k.Logs, k.Filter}
}
