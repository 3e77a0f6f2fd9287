// Package deck is the Bubble Tea root of the Deck TUI: it owns the app
// state (current snapshot, stream-fed stores, toasts, modals), routes keys
// to the active tab or page, runs the admin/ICE flows (preview → typed YES
// → commit; propose → simulate → sign → collect → commit), turns the
// Client's streams into messages with commands that wait on channels, and
// on `:` attaches to another cluster through the caller's Attach
// (attach.go). It holds no globals, so one process can run one Model per
// SSH session.
package deck

import (
	"context"
	"io"
	"os"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"

	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/deck/store"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/tabs"
	"github.com/deck-mesh/deck/widgets"
)

// Timing of the deck.
const (
	// IdleTick is the redraw period when nothing changes (ages, countdowns).
	IdleTick = time.Second
	// StaleAfter is the snapshot age from which the status line says STALE.
	StaleAfter = 5 * time.Second
	// PumpBatchMaxRecords bounds how many queued records one message folds,
	// so a flood is absorbed in few Updates yet keys interleave.
	PumpBatchMaxRecords = 8192
	// DefaultWidth/DefaultHeight are assumed until the first WindowSizeMsg.
	DefaultWidth  = 80
	DefaultHeight = 24
	// MinWidth/MinHeight: below this the deck asks for a bigger terminal.
	MinWidth  = 40
	MinHeight = 10
)

// Options configure a deck.
type Options struct {
	// Version is shown on the status line.
	Version string
	// Faults enables the DEMO panel (nil outside `deck demo`).
	Faults api.FaultInjector
	// AttachHint is shown on the DEMO panel: how a second terminal attaches.
	AttachHint string
	// Now is the clock (tests pass a fixed one); nil means time.Now.
	Now func() time.Time
	// Profile picks the colour profile of the theme. Unknown (zero) builds
	// the truecolor theme and lets Bubble Tea downsample to what the
	// terminal supports; the deck rebuilds it on tea.ColorProfileMsg
	// (NO_COLOR gives ASCII: bold/reverse only).
	Profile colorprofile.Profile
	// LogCapacity bounds the log ring (0: store.LogCapacityRecords).
	LogCapacity int
	// ExportDir is the default directory of exports (default: cwd).
	ExportDir string
	// Context bounds the deck's subscriptions (default: Background).
	Context context.Context
	// Targets lists what `:` offers to attach to: bookmarks, then recent
	// clusters. It reads files, so it runs in a command. Attach joins one
	// (a new embedded console node) and returns its Client; it runs in a
	// command, never in Update, and must give up when ctx ends (the deck
	// quits). Either nil: the deck cannot attach elsewhere (an SSH
	// console, the demo). See attach.go.
	Targets func() ([]Target, error)
	Attach  func(ctx context.Context, t Target) (Attachment, error)
	// Attached is the cluster the deck starts on (for the picker).
	Attached Target
	// Closer, if set, is the connection to the starting cluster: the deck
	// owns it and closes it when it attaches elsewhere or in
	// CloseClusters.
	Closer io.Closer
}

// tabSpec is a top-level tab and its direct switch key (from the keymap).
type tabSpec struct {
	key key.Binding
	tab tabs.Tab
}

// location is where `l` came from, for Esc.
type location struct{ tab int }

// Model is the root model. Use New; the zero value is not usable.
type Model struct {
	c      *common.Context
	opts   Options
	cancel context.CancelFunc

	tabs   []tabSpec
	active int
	pages  [][]tabs.Tab // drill-down stack per tab
	logs   *tabs.Logs
	ret    *location

	modals     []widgets.Modal
	toasts     widgets.Toasts
	help       bool
	helpScroll int

	filtering  bool
	filterIn   widgets.Input
	filterPrev string
	filterOn   tabs.Filterable

	snapCh      <-chan *snapshot.ClusterSnapshot
	logStream   *api.Stream[api.LogRecord]
	failStream  *api.Stream[api.FailureRecord]
	auditStream *api.Stream[api.AuditRecord]

	counts   statusCounts
	countsOf *snapshot.ClusterSnapshot
	inflight int
	quitting bool

	att *attachState // survives an attach (attach.go)

	// focus is the subnet the deck last asked the client to hold in full
	// ("" none; subnets.go).
	focus string
}

// New builds a deck over client. It does no I/O: subscriptions start from
// Init's commands.
func New(client api.Client, opts Options) *Model {
	return newModel(client, opts, newAttachState(opts))
}

// newModel is New with the attach state st (a fresh one, or the one an
// attach carries over).
func newModel(client api.Client, opts Options, st *attachState) *Model {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	parent := opts.Context
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithCancel(parent)
	profile := opts.Profile
	if profile == colorprofile.Unknown {
		profile = colorprofile.TrueColor
	}
	if opts.ExportDir == "" {
		if wd, err := os.Getwd(); err == nil {
			opts.ExportDir = wd
		}
	}
	snap := client.Snapshot()
	if snap == nil {
		snap = &snapshot.ClusterSnapshot{Cluster: client.Cluster()}
	}
	c := &common.Context{
		Ctx: ctx, Theme: common.NewTheme(profile), Keys: common.DefaultKeyMap(), Client: client, Faults: opts.Faults, AttachHint: opts.AttachHint,
		Store: store.New(opts.LogCapacity), Snap: snap, Clock: opts.Now, Now: opts.Now(),
		Width: DefaultWidth, Height: DefaultHeight, ExportDir: opts.ExportDir,
	}
	op, ok, why := client.Operator()
	c.Operator, c.ReadOnly, c.ReadOnlyReason = op, !ok, why
	m := &Model{c: c, opts: opts, cancel: cancel, att: st}
	m.logs = tabs.NewLogs(c)
	nodes := tabs.NewNodes(c)
	top := []tabs.Tab{
		tabs.NewNetMap(c), nodes, tabs.NewDaemons(c), tabs.NewGroups(c),
		tabs.NewChains(c), tabs.NewMigrations(c), tabs.NewMaintenance(c), tabs.NewBehavior(c),
		m.logs, tabs.NewAudit(c), tabs.NewFailures(c), tabs.NewMeshDB(c),
	}
	for i, t := range top {
		if t == nil {
			continue
		}
		m.tabs = append(m.tabs, tabSpec{key: c.Keys.TabKey(i), tab: t})
	}
	// The tabs past the first row keep their slot's key whether or not
	// the tabs before them are there (DEMO only in a demo).
	if opts.Faults != nil {
		m.tabs = append(m.tabs, tabSpec{key: c.Keys.TabKey(common.TabSlotDemo), tab: tabs.NewDemo(c)})
	}
	m.tabs = append(m.tabs,
		tabSpec{key: c.Keys.TabKey(common.TabSlotBlobs), tab: tabs.NewBlobs(c)},
		tabSpec{key: c.Keys.TabKey(common.TabSlotDataforts), tab: tabs.NewDataforts(c)},
		tabSpec{key: c.Keys.TabKey(common.TabSlotSubnets), tab: tabs.NewSubnets(c)},
		tabSpec{key: c.Keys.TabKey(common.TabSlotGateways), tab: tabs.NewGateways(c)},
		tabSpec{key: c.Keys.TabKey(common.TabSlotAggregators), tab: tabs.NewAggregators(c)})
	m.pages = make([][]tabs.Tab, len(m.tabs))
	m.active = m.tabIndex(nodes) // NODES: the operator's home screen
	m.screen().Sync()
	return m
}

// tabIndex is the position of top-level tab t (tabs are found by identity,
// so reordering the tab list cannot break a jump to LOGS or the home tab).
func (m *Model) tabIndex(t tabs.Tab) int {
	for i, s := range m.tabs {
		if s.tab == t {
			return i
		}
	}
	return 0
}

// onLogs reports whether the LOGS tab is the active tab.
func (m *Model) onLogs() bool { return m.tabs[m.active].tab == tabs.Tab(m.logs) }

// Context exposes the shared context (tests and the lead's SSH glue).
func (m *Model) Context() *common.Context { return m.c }

// Close cancels the subscriptions and closes the streams.
func (m *Model) Close() {
	m.cancel()
	if m.logStream != nil {
		m.logStream.Close()
	}
	if m.failStream != nil {
		m.failStream.Close()
	}
	if m.auditStream != nil {
		m.auditStream.Close()
	}
}

// NewProgram builds the Bubble Tea program for a deck: alt screen comes
// from the view. Extra options let an SSH server give each session its own
// input, output, size and colour profile (tea.WithInput, tea.WithOutput,
// tea.WithWindowSize, tea.WithColorProfile, tea.WithEnvironment).
func NewProgram(client api.Client, opts Options, progOpts ...tea.ProgramOption) (*tea.Program, *Model) {
	m := New(client, opts)
	all := []tea.ProgramOption{}
	if opts.Context != nil {
		all = append(all, tea.WithContext(opts.Context))
	}
	all = append(all, progOpts...)
	return tea.NewProgram(m, all...), m
}

// Run runs the deck on the process's terminal until the operator quits or
// ctx ends.
func Run(ctx context.Context, client api.Client, opts Options) error {
	opts.Context = ctx
	p, m := NewProgram(client, opts)
	defer m.CloseClusters()
	_, err := p.Run()
	if ctx.Err() != nil && err != nil {
		// Cancellation by the caller is a normal way to stop.
		return nil
	}
	return err
}

// Init starts the clock and the stream subscriptions.
func (m *Model) Init() tea.Cmd {
	return tea.Batch(tick(), m.watchSnapshots(), m.subscribeLogs(), m.subscribeFailures(), m.subscribeAudit())
}

// screen is the top page of the active tab, or the tab itself.
func (m *Model) screen() tabs.Tab {
	if st := m.pages[m.active]; len(st) > 0 {
		return st[len(st)-1]
	}
	return m.tabs[m.active].tab
}

func (m *Model) switchTab(i int) {
	if i < 0 || i >= len(m.tabs) {
		return
	}
	m.active = i
	m.screen().Sync()
}
