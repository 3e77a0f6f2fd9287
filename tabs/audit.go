package tabs

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/deck/store"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/widgets"
)

// Audit is the AUDIT tab: the admin ledger plus local rejections.
type Audit struct {
	tableTab
	gen     uint64
	last    *snapshot.ClusterSnapshot
	iceOnly bool
	limit   int // 0: all held
}

// NewAudit makes the AUDIT tab.
func NewAudit(c *common.Context) *Audit {
	a := &Audit{tableTab: tableTab{c: c, table: widgets.NewTable(
		widgets.Column{Title: "SEQ", Width: 4, Align: widgets.AlignRight},
		widgets.Column{Title: "WHEN", Width: 8},
		widgets.Column{Title: "OUTCOME", Width: 8},
		widgets.Column{Title: "OPERATOR", Width: 8},
		widgets.Column{Title: "COMMAND", Width: 20},
		widgets.Column{Title: "SIGS", Width: 4, Align: widgets.AlignRight, HideBelow: 100},
		widgets.Column{Title: "TARGET", Width: 10, Flex: true},
	)}, gen: ^uint64(0)}
	a.table.StickTop = true
	return a
}

func (t *Audit) Name() string { return "AUDIT" }

// AuditTarget renders an action's target with node labels.
func AuditTarget(s *snapshot.ClusterSnapshot, a api.Action) string {
	switch a.Verb {
	case api.VerbRestartDaemon, api.VerbForceRestartDaemon:
		return "daemon " + a.Daemon
	case api.VerbForceEvictReplica:
		return fmt.Sprintf("%s @ %s", a.Chain, NodeName(s, a.Peer))
	case api.VerbForceCutover:
		return fmt.Sprintf("%s → %s", a.Chain, NodeName(s, a.Peer))
	case api.VerbKillMigration:
		return "migration " + a.Migration
	case api.VerbFreezeCluster:
		return "cluster: " + a.Reason
	case api.VerbThawCluster, api.VerbFlushAvoidLists:
		return "cluster"
	case api.VerbPinBlob, api.VerbUnpinBlob:
		return "blob " + BlobName(s, a.Blob)
	case api.VerbSetBlobReplicas:
		return fmt.Sprintf("blob %s to %d replicas", BlobName(s, a.Blob), a.Replicas)
	}
	t := "node " + NodeName(s, a.Node)
	if a.Duration > 0 {
		t += " for " + widgets.Age(a.Duration)
	}
	return t
}

// AuditWhen is when a record happened: the local recording time, or the
// issue time when the record carries none (a zero or epoch time).
func AuditWhen(r *api.AuditRecord) time.Time {
	if r.At.Unix() > 0 {
		return r.At
	}
	return r.IssuedAt
}

// AuditKey identifies an audit record: the event id (unique per event)
// plus the seq, because a rejected replay of an event shares its id.
func AuditKey(r *api.AuditRecord) string {
	return r.EventID + "/" + strconv.FormatUint(r.Seq, 10)
}

// AuditWho is the OPERATOR cell: the operator of a ledger event, or, for an
// event this node refused at ingestion (it only names an operator, whose
// signature may be forged), "from" and the node that sent it.
func AuditWho(s *snapshot.ClusterSnapshot, r *api.AuditRecord) string {
	if r.From.Valid() {
		return "from " + NodeName(s, r.From)
	}
	return OperatorName(s, r.Operator)
}

// auditSeq is the SEQ cell: the local ledger seq, or — when unknown.
func auditSeq(r *api.AuditRecord) string {
	if r.Seq == 0 {
		return "—"
	}
	return strconv.FormatUint(r.Seq, 10)
}

// AuditRows turns audit records (oldest first) into rows, newest first
// (pure; unit tested). limit 0 keeps all.
func AuditRows(s *snapshot.ClusterSnapshot, recs []api.AuditRecord, iceOnly bool, limit int) []widgets.Row {
	rows := make([]widgets.Row, 0, len(recs))
	for i := len(recs) - 1; i >= 0; i-- {
		r := &recs[i]
		if iceOnly && !r.ICE {
			continue
		}
		if limit > 0 && len(rows) >= limit {
			break
		}
		cmd, cmdTone := string(r.Action.Verb), common.ToneNormal
		if r.ICE {
			cmd, cmdTone = "ICE "+cmd, common.ToneWarn
		}
		out, outTone := r.Outcome.String(), common.ToneOK
		if r.Outcome == api.Rejected {
			outTone = common.ToneDanger
		}
		target := AuditTarget(s, r.Action)
		if r.Reason != "" {
			target += " (" + r.Reason + ")"
		}
		who, whoTone := AuditWho(s, r), common.ToneAccent
		if r.From.Valid() {
			whoTone = common.ToneWarn
		}
		rows = append(rows, widgets.Row{
			Key:   AuditKey(r),
			Cells: []string{auditSeq(r), widgets.Clock(AuditWhen(r)), out, who, cmd, strconv.Itoa(len(r.Signatures)), target},
			Tones: []common.Tone{common.ToneDim, common.ToneDim, outTone, whoTone, cmdTone, common.ToneDim, common.ToneNormal},
		})
	}
	return rows
}

func ringSlice[T any](r *store.Ring[T]) []T {
	out := make([]T, r.Len())
	for i := range out {
		out[i] = *r.Index(i)
	}
	return out
}

func (t *Audit) Sync() {
	if t.c.Store.AuditGen == t.gen && t.c.Snap == t.last {
		return
	}
	t.gen, t.last = t.c.Store.AuditGen, t.c.Snap
	t.rebuild()
}

func (t *Audit) rebuild() {
	t.table.SetRows(AuditRows(t.c.Snap, ringSlice(t.c.Store.Audit), t.iceOnly, t.limit))
}

func (t *Audit) record() *api.AuditRecord {
	k := t.table.SelectedKey()
	if k == "" {
		return nil
	}
	r := t.c.Store.Audit
	for i := r.Len() - 1; i >= 0; i-- {
		if rec := r.Index(i); AuditKey(rec) == k {
			cp := *rec
			return &cp
		}
	}
	return nil
}

func (t *Audit) Selection() common.Selection {
	if r := t.record(); r != nil {
		return common.Selection{Node: r.Action.Node, Daemon: r.Action.Daemon, Label: string(r.Action.Verb)}
	}
	return common.Selection{}
}

// AuditLimitMax bounds the `n` limit prompt.
const AuditLimitMax = store.AuditCapacityRecords

// SetLimit shows only the newest n records (0: all).
func (t *Audit) SetLimit(n int) { t.limit = n; t.rebuild() }

func (t *Audit) HandleKey(msg tea.KeyPressMsg) tea.Cmd {
	if t.table.HandleKey(msg, t.c.Keys) {
		return nil
	}
	k := t.c.Keys
	switch {
	case key.Matches(msg, k.ICEOnly):
		t.iceOnly = !t.iceOnly
		t.rebuild()
	case key.Matches(msg, k.Limit):
		return common.Emit(LimitPromptMsg{Current: t.limit, Apply: t.SetLimit})
	case key.Matches(msg, k.Export):
		rows := t.table.Shown() // what the screen lists, `/` filter applied
		return common.Emit(common.ExportMsg{What: "audit", Lines: func() []string { return rowLines(t.table.Cols, rows) }})
	case key.Matches(msg, k.Enter):
		if r := t.record(); r != nil {
			return common.Emit(common.OpenPageMsg{Kind: common.PageAudit, Audit: r})
		}
	}
	return nil
}

// LimitPromptMsg asks the root to prompt for AUDIT's `n` limit.
type LimitPromptMsg struct {
	Current int
	Apply   func(int)
}

// rowLines renders rows as tab-separated text for export.
func rowLines(cols []widgets.Column, rows []widgets.Row) []string {
	out := make([]string, 0, len(rows)+1)
	titles := make([]string, len(cols))
	for i, c := range cols {
		titles[i] = c.Title
	}
	out = append(out, strings.Join(titles, "\t"))
	for _, r := range rows {
		out = append(out, strings.Join(r.Cells, "\t"))
	}
	return out
}

func (t *Audit) View(w, h int) string {
	mode := "all events"
	if t.iceOnly {
		mode = "ICE only"
	}
	if t.limit > 0 {
		mode += fmt.Sprintf(" · newest %d", t.limit)
	}
	head := fmt.Sprintf("admin ledger · %s · head seq %d", mode, t.c.Snap.AdminHead.LastSeq)
	return t.render(head, w, h, "no audit records")
}

func (t *Audit) Bindings() []key.Binding {
	k := t.c.Keys
	return []key.Binding{k.Enter, k.ICEOnly, k.Limit, k.Filter, k.Export}
}

// AuditPage is the drill-down of one audit event, with its signatures.
type AuditPage struct {
	c      *common.Context
	rec    api.AuditRecord
	scroll int
}

// NewAuditPage makes the page for rec.
func NewAuditPage(c *common.Context, rec api.AuditRecord) *AuditPage {
	return &AuditPage{c: c, rec: rec}
}

func (p *AuditPage) Name() string {
	if p.rec.Seq == 0 {
		return "AUDIT " + widgets.Truncate(p.rec.EventID, 12)
	}
	return fmt.Sprintf("AUDIT #%d", p.rec.Seq)
}
func (p *AuditPage) Sync() {}
func (p *AuditPage) Selection() common.Selection {
	return common.Selection{Node: p.rec.Action.Node, Daemon: p.rec.Action.Daemon}
}
func (p *AuditPage) Bindings() []key.Binding {
	return []key.Binding{p.c.Keys.Back, p.c.Keys.Up, p.c.Keys.Down}
}

func (p *AuditPage) HandleKey(msg tea.KeyPressMsg) tea.Cmd {
	p.scroll = scrollKey(msg, p.c.Keys, p.scroll)
	return nil
}

// AuditDetail renders one record's facts and signatures (pure).
func AuditDetail(th *common.Theme, s *snapshot.ClusterSnapshot, r api.AuditRecord) []string {
	kv := func(k, v string, tone common.Tone) string {
		return th.Paint(common.ToneDim, widgets.Fit(k, 10)) + " " + th.Paint(tone, v)
	}
	outTone := common.ToneOK
	if r.Outcome == api.Rejected {
		outTone = common.ToneDanger
	}
	cmdTone := common.ToneNormal
	kind := "admin"
	if r.ICE {
		cmdTone, kind = common.ToneWarn, "ICE"
	}
	recorded := "— (not recorded by this node's ledger)"
	if r.At.Unix() > 0 {
		recorded = r.At.UTC().Format(time.RFC3339)
	}
	lines := []string{
		kv("event", auditSeq(&r)+" "+r.EventID, common.ToneTitle),
		kv("outcome", r.Outcome.String(), outTone),
	}
	if r.Reason != "" {
		lines = append(lines, kv("reason", r.Reason, common.ToneDanger))
	}
	lines = append(lines,
		kv("command", kind+" "+string(r.Action.Verb), cmdTone),
		kv("target", AuditTarget(s, r.Action), common.ToneNormal),
	)
	if r.From.Valid() {
		// Refused at ingestion: the event only names an operator (see the
		// reason); the node that sent it is the fact.
		lines = append(lines, kv("from", NodeName(s, r.From)+" "+r.From.String()+" sent it; refused by this node", common.ToneWarn))
	} else {
		lines = append(lines, kv("operator", OperatorName(s, r.Operator)+" "+r.Operator.String(), common.ToneAccent))
	}
	lines = append(lines,
		kv("issued", r.IssuedAt.UTC().Format(time.RFC3339), common.ToneNormal),
		kv("recorded", recorded, common.ToneNormal),
		kv("nonce", r.Nonce, common.ToneDim),
		"",
		th.Paint(common.ToneHeader, fmt.Sprintf("SIGNATURES (%d)", len(r.Signatures))),
	)
	for _, sig := range r.Signatures {
		lines = append(lines, "  "+th.Paint(common.ToneAccent, widgets.Fit(OperatorName(s, sig.Operator), 8))+" "+
			sig.Operator.String()+" "+th.Paint(common.ToneDim, widgets.Truncate(widgets.FormatSignature(sig), 40)))
	}
	return lines
}

func (p *AuditPage) View(w, h int) string {
	return scrolled(AuditDetail(p.c.Theme, p.c.Snap, p.rec), &p.scroll, w, h)
}

// scrollKey applies up/down/top/bottom to a page scroll offset.
func scrollKey(msg tea.KeyPressMsg, k *common.KeyMap, off int) int {
	switch {
	case key.Matches(msg, k.Up):
		off--
	case key.Matches(msg, k.Down):
		off++
	case key.Matches(msg, k.Top):
		off = 0
	case key.Matches(msg, k.PageUp):
		off -= 10
	case key.Matches(msg, k.PageDown):
		off += 10
	case key.Matches(msg, k.Bottom):
		off = 1 << 20
	}
	if off < 0 {
		off = 0
	}
	return off
}

// scrolled shows lines from *off (clamped) in w×h.
func scrolled(lines []string, off *int, w, h int) string {
	if max := len(lines) - h; *off > max {
		*off = max
	}
	if *off < 0 {
		*off = 0
	}
	return widgets.Lines(lines[*off:], w, h)
}
