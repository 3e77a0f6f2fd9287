package tabs

import (
	"cmp"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/widgets"
)

// Ancestry drawing bounds: a chain of checkpoints each derived from the
// one before nests one level per checkpoint, so the indent stops growing
// at MaxAncestryIndent levels, and a page walks at most MaxAncestryShown
// ancestors.
const (
	MaxAncestryIndent = 4
	MaxAncestryShown  = 8
)

// Blobs is the BLOBS tab: the blobs the datafort nodes report, as an
// ancestry forest (each blob under the blob it was derived from: a
// trainer's checkpoints, the rollouts of the forks started from one).
type Blobs struct {
	tableTab
	last    *snapshot.ClusterSnapshot
	lastNow time.Time
	summary string
}

// NewBlobs makes the BLOBS tab.
func NewBlobs(c *common.Context) *Blobs {
	return &Blobs{tableTab: tableTab{c: c, table: widgets.NewTable(
		widgets.Column{Title: "BLOB", Width: 22, Flex: true},
		widgets.Column{Title: "HASH", Width: 12, HideBelow: 120},
		widgets.Column{Title: "SIZE", Width: 9, Align: widgets.AlignRight},
		widgets.Column{Title: "HELD", Width: 4, Align: widgets.AlignRight},
		widgets.Column{Title: "HOLDERS", Width: 16},
		widgets.Column{Title: "HEAT", Width: 5, Align: widgets.AlignRight},
		widgets.Column{Title: "PIN", Width: 3},
		widgets.Column{Title: "AGE", Width: 6, Align: widgets.AlignRight},
		widgets.Column{Title: "PARENT", Width: 18, HideBelow: 140},
	)}}
}

func (t *Blobs) Name() string { return "BLOBS" }

// BlobLabel is how screens name a blob: its name, or its short hash.
func BlobLabel(b *snapshot.BlobView) string {
	if b.Name != "" {
		return widgets.Printable(b.Name)
	}
	return api.BlobHash(b.Hash).Short()
}

// BlobName names blob h as the view knows it (its label), or by short hash.
func BlobName(s *snapshot.ClusterSnapshot, h api.BlobHash) string {
	if b := FindBlob(s, h); b != nil {
		return BlobLabel(b)
	}
	return h.Short()
}

// FindBlob is the view's blob h, or nil.
func FindBlob(s *snapshot.ClusterSnapshot, h api.BlobHash) *snapshot.BlobView {
	if s == nil {
		return nil
	}
	for i := range s.Blobs {
		if s.Blobs[i].Hash == h {
			return &s.Blobs[i]
		}
	}
	return nil
}

// HeldTone is the tone of a blob's held/desired count.
func HeldTone(held, desired int) common.Tone {
	switch {
	case held < desired:
		return common.ToneDanger
	case held > desired:
		return common.ToneWarn
	}
	return common.ToneOK
}

// HeatTone marks blobs hot enough to draw gravity replicas.
func HeatTone(readsPerSec float64) common.Tone {
	switch {
	case readsPerSec >= 5*api.BlobHotReadsPerSecond:
		return common.ToneWarn
	case readsPerSec >= api.BlobHotReadsPerSecond:
		return common.ToneAccent
	}
	return common.ToneDim
}

// Heat is reads per second with one decimal.
func Heat(readsPerSec float64) string { return strconv.FormatFloat(readsPerSec, 'f', 1, 64) }

// ancestryEntry is one blob in ancestry order with its depth.
type ancestryEntry struct {
	b     *snapshot.BlobView
	depth int
}

// AncestryOrder lays the view's blobs out as a forest: each blob after the
// blob it was derived from (children oldest first), roots (no parent, or a
// parent the view does not list) by name then hash. A cycle of parents
// (intents are operators' words, not proofs) is broken where it is met.
func AncestryOrder(s *snapshot.ClusterSnapshot) []ancestryEntry {
	byHash := blobIndex(s)
	children := map[[32]byte][]*snapshot.BlobView{}
	var roots []*snapshot.BlobView
	for i := range s.Blobs {
		b := &s.Blobs[i]
		if b.Parent != ([32]byte{}) && b.Parent != b.Hash && byHash[b.Parent] != nil {
			children[b.Parent] = append(children[b.Parent], b)
			continue
		}
		roots = append(roots, b)
	}
	byName := func(a, b *snapshot.BlobView) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), slices.Compare(a.Hash[:], b.Hash[:]))
	}
	slices.SortFunc(roots, byName)
	for _, kids := range children {
		slices.SortFunc(kids, func(a, b *snapshot.BlobView) int { return cmp.Or(a.StoredAt.Compare(b.StoredAt), byName(a, b)) })
	}
	out := make([]ancestryEntry, 0, len(s.Blobs))
	seen := map[[32]byte]bool{}
	var walk func(b *snapshot.BlobView, depth int)
	walk = func(b *snapshot.BlobView, depth int) {
		if seen[b.Hash] {
			return
		}
		seen[b.Hash] = true
		out = append(out, ancestryEntry{b: b, depth: depth})
		for _, k := range children[b.Hash] {
			walk(k, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	// Blobs only reachable through a cycle: listed as roots.
	for i := range s.Blobs {
		walk(&s.Blobs[i], 0)
	}
	return out
}

// blobIndex maps the view's blobs by hash.
func blobIndex(s *snapshot.ClusterSnapshot) map[[32]byte]*snapshot.BlobView {
	out := make(map[[32]byte]*snapshot.BlobView, len(s.Blobs))
	for i := range s.Blobs {
		out[s.Blobs[i].Hash] = &s.Blobs[i]
	}
	return out
}

// treeLabel indents a blob's label under its parent.
func treeLabel(label string, depth int) string {
	if depth == 0 {
		return label
	}
	return strings.Repeat(" ", min(depth, MaxAncestryIndent)-1) + "└ " + label
}

// BlobRows turns a snapshot into BLOBS rows (pure; unit tested).
func BlobRows(s *snapshot.ClusterSnapshot, now time.Time) []widgets.Row {
	order := AncestryOrder(s)
	byHash := blobIndex(s)
	rows := make([]widgets.Row, 0, len(order))
	for _, e := range order {
		b := e.b
		holders := make([]string, len(b.Holders))
		for i, h := range b.Holders {
			holders[i] = NodeName(s, h)
		}
		pin, parent := "", "—"
		if b.Pinned {
			pin = "pin"
		}
		if b.Parent != ([32]byte{}) {
			parent = api.BlobHash(b.Parent).Short()
			if p := byHash[b.Parent]; p != nil {
				parent = BlobLabel(p)
			}
		}
		rows = append(rows, widgets.Row{
			Key: hex.EncodeToString(b.Hash[:]),
			Cells: []string{treeLabel(BlobLabel(b), e.depth), api.BlobHash(b.Hash).Short(), widgets.Bytes(b.Size),
				fmt.Sprintf("%d/%d", b.Held(), b.Replicas), strings.Join(holders, " "), Heat(b.Heat), pin,
				widgets.Since(now, b.StoredAt), parent},
			Tones: []common.Tone{common.ToneNormal, common.ToneDim, common.ToneNormal, HeldTone(b.Held(), b.Replicas),
				common.ToneNormal, HeatTone(b.Heat), common.ToneAccent, common.ToneDim, common.ToneDim},
		})
	}
	return rows
}

// BlobSummary is the BLOBS header: counts, bytes, what needs attention.
func BlobSummary(s *snapshot.ClusterSnapshot) string {
	var bytes uint64
	var under, pinned int
	var hottest *snapshot.BlobView
	for i := range s.Blobs {
		b := &s.Blobs[i]
		bytes += b.Size * uint64(b.Held())
		if b.Held() < b.Replicas {
			under++
		}
		if b.Pinned {
			pinned++
		}
		if b.Heat > 0 && (hottest == nil || b.Heat > hottest.Heat) {
			hottest = b
		}
	}
	out := fmt.Sprintf("%d blobs · %s stored · %d under-replicated · %d pinned", len(s.Blobs), widgets.Bytes(bytes), under, pinned)
	if hottest != nil {
		out += fmt.Sprintf(" · hottest %s %s r/s", BlobLabel(hottest), Heat(hottest.Heat))
	}
	return out
}

func (t *Blobs) Sync() {
	s := t.c.Snap
	if s == t.last && sameSecond(t.lastNow, t.c.Now) {
		return
	}
	t.last, t.lastNow = s, t.c.Now
	t.table.SetRows(BlobRows(s, t.c.Now))
	t.summary = BlobSummary(s)
}

func (t *Blobs) blob() *snapshot.BlobView {
	k := t.table.SelectedKey()
	if k == "" {
		return nil
	}
	var h api.BlobHash
	if n, err := hex.Decode(h[:], []byte(k)); err != nil || n != len(h) {
		return nil
	}
	return FindBlob(t.c.Snap, h)
}

func (t *Blobs) Selection() common.Selection { return blobSelection(t.c.Snap, t.blob()) }

// blobSelection points `l` at a blob's first holder.
func blobSelection(s *snapshot.ClusterSnapshot, b *snapshot.BlobView) common.Selection {
	if b == nil {
		return common.Selection{}
	}
	sel := common.Selection{Label: BlobLabel(b)}
	if len(b.Holders) > 0 {
		sel.Node = b.Holders[0]
	}
	return sel
}

func (t *Blobs) HandleKey(msg tea.KeyPressMsg) tea.Cmd {
	if t.table.HandleKey(msg, t.c.Keys) {
		return nil
	}
	b := t.blob()
	if b == nil {
		return nil
	}
	if key.Matches(msg, t.c.Keys.Enter) {
		return common.Emit(common.OpenPageMsg{Kind: common.PageBlob, Blob: b.Hash})
	}
	cmd, _ := blobActions(t.c.Keys, msg, b)
	return cmd
}

// blobActions maps the blob keys to blob verbs on b (BLOBS and the blob
// page): pin, unpin, one replica fewer, one more.
func blobActions(k *common.KeyMap, msg tea.KeyPressMsg, b *snapshot.BlobView) (tea.Cmd, bool) {
	h := api.BlobHash(b.Hash)
	label := BlobLabel(b)
	switch {
	case key.Matches(msg, k.BlobPin):
		return act(common.ActionMsg{Action: api.Action{Verb: api.VerbPinBlob, Blob: h}}), true
	case key.Matches(msg, k.BlobUnpin):
		return act(common.ActionMsg{Action: api.Action{Verb: api.VerbUnpinBlob, Blob: h}}), true
	case key.Matches(msg, k.BlobDropReplica):
		if b.Replicas <= 1 {
			return common.Toast(label+" wants one replica already: `deck blob rm` removes it", true), true
		}
		return act(common.ActionMsg{Action: api.Action{Verb: api.VerbSetBlobReplicas, Blob: h, Replicas: b.Replicas - 1}}), true
	case key.Matches(msg, k.BlobAddReplica):
		if b.Replicas >= api.MaxBlobReplicas {
			return common.Toast(fmt.Sprintf("%s wants %d replicas, the most a blob may", label, api.MaxBlobReplicas), true), true
		}
		return act(common.ActionMsg{Action: api.Action{Verb: api.VerbSetBlobReplicas, Blob: h, Replicas: b.Replicas + 1}}), true
	}
	return nil, false
}

func blobBindings(k *common.KeyMap) []key.Binding {
	return []key.Binding{k.BlobPin, k.BlobUnpin, k.BlobDropReplica, k.BlobAddReplica}
}

func (t *Blobs) View(w, h int) string {
	return t.render(t.summary, w, h, "no blobs: `deck blob put FILE` stores one on the datafort nodes")
}

func (t *Blobs) Bindings() []key.Binding {
	k := t.c.Keys
	return append(append([]key.Binding{k.Enter}, blobBindings(k)...), k.Logs, k.Filter)
}

// BlobStatMsg carries a blob page's Stat answer.
type BlobStatMsg struct {
	Blob api.BlobHash
	Info api.BlobInfo
	Err  error
}

// BlobPage is the drill-down of one blob: its facts, its ancestry, its
// holders and a chunk map of each copy.
type BlobPage struct {
	c      *common.Context
	h      api.BlobHash
	scroll int
	// stat is the latest Stat answer (the copies each node reports,
	// replications in flight included); statErr why there is none.
	stat     *api.BlobInfo
	statErr  error
	statAt   time.Time
	inFlight bool
}

// BlobStatRefresh is how often an open blob page asks the holders again.
const BlobStatRefresh = 3 * time.Second

// NewBlobPage makes the page for blob h.
func NewBlobPage(c *common.Context, h api.BlobHash) *BlobPage { return &BlobPage{c: c, h: h} }

func (p *BlobPage) blob() *snapshot.BlobView { return FindBlob(p.c.Snap, p.h) }

func (p *BlobPage) Name() string { return "BLOB " + BlobName(p.c.Snap, p.h) }
func (p *BlobPage) Sync()        {}
func (p *BlobPage) Selection() common.Selection {
	return blobSelection(p.c.Snap, p.blob())
}

// Refresh asks the holders about the blob (Blobs().Stat) when the last
// answer is older than BlobStatRefresh and none is on its way; the root
// calls it on open and on every tick.
func (p *BlobPage) Refresh() tea.Cmd {
	bc, ok := p.c.Client.(api.BlobClient)
	if !ok || p.inFlight || (!p.statAt.IsZero() && p.c.Now.Sub(p.statAt) < BlobStatRefresh) {
		return nil
	}
	p.inFlight = true
	ctx, h := p.c.Ctx, p.h
	return func() tea.Msg {
		bi, err := bc.Blobs().Stat(ctx, h)
		return BlobStatMsg{Blob: h, Info: bi, Err: err}
	}
}

// Receive takes the page's Stat answers.
func (p *BlobPage) Receive(msg tea.Msg) tea.Cmd {
	m, ok := msg.(BlobStatMsg)
	if !ok || m.Blob != p.h {
		return nil
	}
	p.inFlight, p.statAt = false, p.c.Now
	if m.Err != nil {
		p.statErr = m.Err
		return nil
	}
	info := m.Info
	p.stat, p.statErr = &info, nil
	return nil
}

func (p *BlobPage) HandleKey(msg tea.KeyPressMsg) tea.Cmd {
	if b := p.blob(); b != nil {
		if cmd, ok := blobActions(p.c.Keys, msg, b); ok {
			return cmd
		}
	}
	p.scroll = scrollKey(msg, p.c.Keys, p.scroll)
	return nil
}

func (p *BlobPage) Bindings() []key.Binding {
	k := p.c.Keys
	return append(append([]key.Binding{k.Back}, blobBindings(k)...), k.Logs)
}

func (p *BlobPage) View(w, h int) string {
	b := p.blob()
	if b == nil {
		return widgets.Empty(p.c.Theme, "blob "+p.h.Short()+" is no longer reported by any holder (esc back)", w, h)
	}
	return scrolled(BlobDetail(p.c.Theme, p.c.Snap, b, p.stat, p.statErr, p.c.Now, w), &p.scroll, w, h)
}

// blobCopies are the copies a page draws: the holders' own answers when
// stat has them (with replications in flight), else the view's holders,
// each a whole copy.
func blobCopies(s *snapshot.ClusterSnapshot, b *snapshot.BlobView, stat *api.BlobInfo) []api.BlobCopy {
	if stat != nil && len(stat.Copies) > 0 {
		return stat.Copies
	}
	var out []api.BlobCopy
	for _, id := range b.Holders {
		c := api.BlobCopy{Node: id, Stored: b.Size, Total: b.Size}
		if n := s.Node(id); n != nil {
			for _, bh := range n.Blobs {
				if bh.Hash == b.Hash {
					c.Role, c.Heat = bh.Role.String(), bh.Heat
				}
			}
		}
		out = append(out, c)
	}
	return out
}

// BlobDetail renders the blob page's lines (pure).
func BlobDetail(th *common.Theme, s *snapshot.ClusterSnapshot, b *snapshot.BlobView, stat *api.BlobInfo, statErr error, now time.Time, w int) []string {
	chunks := api.BlobChunks(b.Size)
	pinned := "no"
	if b.Pinned {
		pinned = "yes · never shed, its chunks never collected"
	}
	state := "ok"
	switch {
	case b.Held() < b.Replicas:
		state = "under-replicated"
	case b.Held() > b.Replicas:
		state = "over (a copy is being shed)"
	}
	parent := "— (an original)"
	if b.Parent != ([32]byte{}) {
		parent = BlobName(s, b.Parent) + " " + api.BlobHash(b.Parent).Short()
	}
	facts := []string{
		section(th, "FACTS"),
		kvLine(th, "hash", api.BlobHash(b.Hash).String(), common.ToneTitle),
		kvLine(th, "name", orDash(widgets.Printable(b.Name)), common.ToneNormal),
		kvLine(th, "size", fmt.Sprintf("%s · %d chunks of %s", widgets.Bytes(b.Size), chunks, widgets.Bytes(api.BlobChunkBytes)), common.ToneNormal),
		kvLine(th, "replicas", fmt.Sprintf("%d held / %d desired · %s", b.Held(), b.Replicas, state), HeldTone(b.Held(), b.Replicas)),
		kvLine(th, "pinned", pinned, common.ToneAccent),
		kvLine(th, "heat", Heat(b.Heat)+" chunk reads/s over its holders", HeatTone(b.Heat)),
		kvLine(th, "stored", widgets.Since(now, b.StoredAt)+" ago", common.ToneNormal),
		kvLine(th, "intent", "signed by "+OperatorName(s, b.Operator), common.ToneNormal),
		kvLine(th, "parent", parent, common.ToneAccent),
	}
	ancestry := blobAncestry(th, s, b)
	lines := facts
	if w >= 100 {
		lines = columns(facts, ancestry, w)
	}
	copies := blobCopies(s, b, stat)
	lines = append(lines, "", section(th, fmt.Sprintf("HOLDERS (%d held · %d desired)", b.Held(), b.Replicas)))
	for _, c := range copies {
		lines = append(lines, holderLine(th, s, c))
	}
	if statErr != nil {
		lines = append(lines, th.Paint(common.ToneWarn, widgets.Truncate("  holders not asked: "+statErr.Error()+" (the view's holders shown)", w)))
	}
	lines = append(lines, "", section(th, "CHUNK MAP"))
	lines = append(lines, ChunkMap(th, s, copies, chunks, w)...)
	if w < 100 {
		// Narrow: the holders and the map first, the ancestry below them.
		lines = append(append(lines, ""), ancestry...)
	}
	return lines
}

func holderLine(th *common.Theme, s *snapshot.ClusterSnapshot, c api.BlobCopy) string {
	role, tone := c.Role, common.ToneNormal
	if c.Fetching {
		role, tone = "fetching", common.ToneWarn
	}
	var health, store string
	htone := common.ToneDim
	if n := s.Node(c.Node); n != nil {
		health, htone = n.Health.String(), HealthTone(n.Health)
		if d := n.Datafort; d.Capacity > 0 {
			store = fmt.Sprintf("store %s of %s · %s", widgets.Pct(float64(d.Used)/float64(d.Capacity)), widgets.Bytes(d.Capacity), d.Overflow)
		}
	}
	return "  " + widgets.Fit(NodeName(s, c.Node), 12) + " " + th.Paint(tone, widgets.Fit(role, 9)) + " " +
		th.Paint(HeatTone(c.Heat), widgets.FitRight(Heat(c.Heat), 6)) + th.Paint(common.ToneDim, " r/s ") +
		th.Paint(htone, widgets.Fit(health, 11)) + " " + th.Paint(common.ToneDim, store)
}

// ChunkMap draws one row per copy: the blob's chunks in order, each cell
// standing for an equal run of them, full where the copy holds them. A
// whole copy holds every chunk (a holder commits a blob only once it has
// them all); a replication in flight is drawn from its bytes stored,
// filled from the start (the fetch asks for chunks in order, a window of
// them at a time).
func ChunkMap(th *common.Theme, s *snapshot.ClusterSnapshot, copies []api.BlobCopy, chunks, w int) []string {
	const labelCells = 14
	cells := max(8, min(chunks, w-labelCells-12))
	per := max(1, (chunks+cells-1)/cells)
	cells = max(1, (chunks+per-1)/per)
	head := fmt.Sprintf("%d chunks · a cell is %d chunk", chunks, per)
	if per != 1 {
		head += "s"
	}
	out := []string{th.Paint(common.ToneDim, "  "+widgets.Truncate(head+" · █ held  ░ missing", w-2))}
	for _, c := range copies {
		held := chunks
		if c.Total > 0 && c.Stored < c.Total {
			held = int(uint64(chunks) * c.Stored / c.Total)
		}
		full := held / per
		if held == chunks {
			full = cells
		}
		tone := common.ToneOK
		if held < chunks {
			tone = common.ToneWarn
		}
		row := "  " + widgets.Fit(NodeName(s, c.Node), labelCells-2) + th.Paint(tone, strings.Repeat("█", full)) +
			th.Paint(common.ToneDim, strings.Repeat("░", cells-full)) + " " + widgets.FitRight(widgets.Pct(float64(held)/float64(max(chunks, 1))), 4)
		out = append(out, row)
	}
	if len(copies) == 0 {
		out = append(out, th.Paint(common.ToneDanger, "  no holder reports a copy"))
	}
	return out
}

// blobAncestry is the page's ANCESTRY block: the blobs b was derived
// from, oldest first, b itself, and the blobs derived from it.
func blobAncestry(th *common.Theme, s *snapshot.ClusterSnapshot, b *snapshot.BlobView) []string {
	out := []string{section(th, "ANCESTRY")}
	var up []*snapshot.BlobView
	seen := map[[32]byte]bool{b.Hash: true}
	missing := ""
	for p := b.Parent; p != ([32]byte{}) && len(up) < MaxAncestryShown; {
		pb := FindBlob(s, p)
		if pb == nil {
			missing = api.BlobHash(p).Short() + " (not in the view)"
			break
		}
		if seen[pb.Hash] {
			break
		}
		seen[pb.Hash] = true
		up = append(up, pb)
		p = pb.Parent
	}
	depth := 0
	if missing != "" {
		out = append(out, th.Paint(common.ToneDim, "  "+missing))
		depth++
	}
	for i := len(up) - 1; i >= 0; i-- {
		out = append(out, "  "+treeLabel(BlobLabel(up[i]), depth)+th.Paint(common.ToneDim, " "+widgets.Bytes(up[i].Size)))
		depth++
	}
	out = append(out, "  "+th.Paint(common.ToneTitle, treeLabel(BlobLabel(b), depth)+" ◀"))
	var kids []*snapshot.BlobView
	for i := range s.Blobs {
		if c := &s.Blobs[i]; c.Parent == b.Hash && c.Hash != b.Hash {
			kids = append(kids, c)
		}
	}
	slices.SortFunc(kids, func(x, y *snapshot.BlobView) int { return x.StoredAt.Compare(y.StoredAt) })
	for _, k := range kids {
		out = append(out, "  "+treeLabel(BlobLabel(k), depth+1)+th.Paint(common.ToneDim, " "+widgets.Bytes(k.Size)))
	}
	if len(up) == 0 && missing == "" && len(kids) == 0 {
		out = append(out, th.Paint(common.ToneDim, "  no parent, nothing derived from it"))
	}
	return out
}
