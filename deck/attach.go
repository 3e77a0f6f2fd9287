package deck

import (
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"

	tea "charm.land/bubbletea/v2"

	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/widgets"
)

// Attaching the running deck to another cluster (`:`).
//
// The deck never reaches a cluster itself: the caller (the CLI) gives it
// Options.Targets, which lists bookmarks and recent clusters, and
// Options.Attach, which joins one (a new embedded console node) and returns
// its Client. Both run in commands. When an attach succeeds, Update swaps
// the whole model for a fresh one over the new Client — tabs, store,
// selections, filters, dialogs, toasts — keeping only the terminal (size,
// theme) and the options; the old cluster's subscriptions end and its node
// closes in a command.
//
// Every message of the deck's own commands is stamped with the attachment
// it was issued under (epoch); a message from an earlier attachment is
// dropped. A preview, a commit result or a stream batch of the old cluster
// that arrives after the swap can therefore never open a dialog, fill a
// store or re-arm a pump on the new one.

// Target is a cluster the deck can attach to: a bookmark or a cluster it
// attached to recently.
type Target struct {
	// Bookmark is the bookmark's name; "" for a recent cluster.
	Bookmark string
	// Cluster is the cluster's name as its file says ("" when unreadable).
	Cluster string
	// Path is the cluster file.
	Path string
	// Identity is the operator identity to attach as; "" for the deck's
	// own (--identity, $DECK_IDENTITY or config.toml).
	Identity string
	// Problem says, in a few words, why the file cannot be used as it is
	// ("missing", "not a cluster file"); "" when it reads fine.
	Problem string
}

// Name is what the deck calls the target: its bookmark, else its cluster,
// else its file's name.
func (t Target) Name() string {
	switch {
	case t.Bookmark != "":
		return t.Bookmark
	case t.Cluster != "":
		return t.Cluster
	}
	return filepath.Base(t.Path)
}

// same reports whether t and o attach to the same file as the same identity.
func (t Target) same(o Target) bool { return t.Path == o.Path && t.Identity == o.Identity }

// Attachment is a joined cluster: the Client the deck reads from, what to
// close when the deck leaves it (its console node), and notes for the
// operator (warnings of the join, e.g. a cluster file its group can read).
type Attachment struct {
	Client api.Client
	Closer io.Closer
	Notes  []string
}

// Messages of the attach flow.
type (
	// epochMsg is a message from a command issued under attachment epoch.
	epochMsg struct {
		epoch uint64
		msg   tea.Msg
	}
	targetsMsg struct {
		targets []Target
		err     error
	}
	attachedMsg struct {
		t   Target
		a   Attachment
		h   *handle // a's Closer, owned by the deck's holdings
		err error
	}
)

// attachState is the part of the model that outlives an attach.
type attachState struct {
	epoch   uint64
	current Target
	closer  *handle // the attached cluster's; nil when the caller owns it
	pending string  // the target being attached to; "" when none
	held    *holdings
}

func newAttachState(opts Options) *attachState {
	st := &attachState{current: opts.Attached, held: &holdings{}}
	if opts.Closer != nil {
		st.closer, _ = st.held.own(opts.Closer)
	}
	return st
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// handle is one owned Closer, closed at most once.
type handle struct {
	c    io.Closer
	once sync.Once
}

func (h *handle) close() {
	h.once.Do(func() { h.c.Close() })
}

// holdings are the cluster connections the deck owns — the attached
// cluster's and any attach made but not yet taken over by Update — so none
// leaks however the program ends: release closes what is left and waits for
// the attaches and closes running in commands.
type holdings struct {
	mu       sync.Mutex
	released bool
	owned    []*handle
	running  sync.WaitGroup
}

// begin marks a command that opens or closes a connection as running; false
// once released (the command then does nothing).
func (h *holdings) begin() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		return false
	}
	h.running.Add(1)
	return true
}

func (h *holdings) end() { h.running.Done() }

// own takes c over; false once released (the caller closes c itself).
func (h *holdings) own(c io.Closer) (*handle, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		return nil, false
	}
	x := &handle{c: c}
	h.owned = append(h.owned, x)
	return x, true
}

// drop closes x and forgets it.
func (h *holdings) drop(x *handle) {
	h.mu.Lock()
	for i, o := range h.owned {
		if o == x {
			h.owned = append(h.owned[:i], h.owned[i+1:]...)
			break
		}
	}
	h.mu.Unlock()
	x.close()
}

// release closes everything still owned and waits for running commands.
func (h *holdings) release() {
	h.mu.Lock()
	h.released = true
	owned := h.owned
	h.owned = nil
	h.mu.Unlock()
	for _, x := range owned {
		x.close()
	}
	h.running.Wait()
}

// dropCmd closes x in a command (a node takes a moment to close).
func (h *holdings) dropCmd(x *handle) tea.Cmd {
	if x == nil {
		return nil
	}
	return func() tea.Msg {
		if h.begin() {
			defer h.end()
			h.drop(x)
		}
		return nil
	}
}

// CloseClusters ends the deck's subscriptions and closes the cluster
// connections it owns (Options.Closer, or the node of its last attach, and
// any attach still under way), waiting for them. Call it once the program
// has stopped; Run does.
func (m *Model) CloseClusters() {
	m.Close()
	m.att.held.release()
}

// Update routes one message (see update). A message stamped with an earlier
// attachment is dropped; every command returned is stamped with the current
// one.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if em, ok := msg.(epochMsg); ok {
		if em.epoch != m.att.epoch {
			return m, m.discard(em.msg)
		}
		msg = em.msg
	}
	var cmd tea.Cmd
	switch msg := msg.(type) {
	case targetsMsg:
		cmd = m.pickTarget(msg)
	case attachedMsg:
		cmd = m.attached(msg)
	case common.ActionMsg:
		if m.att.pending != "" {
			// The flow would outlive the cluster it was started on.
			cmd = m.toast(fmt.Sprintf("attaching to %s… %s waits until it is done", m.att.pending, msg.Action.Verb), true)
			break
		}
		_, cmd = m.update(msg)
	default:
		_, cmd = m.update(msg)
	}
	return m, stamp(m.att.epoch, cmd)
}

// teaPackage is Bubble Tea's import path: its messages (quit, batch, …)
// are for the program, not for a cluster, and are never stamped.
var teaPackage = reflect.TypeOf(tea.QuitMsg{}).PkgPath()

// stamp wraps cmd so that its message carries epoch.
func stamp(epoch uint64, cmd tea.Cmd) tea.Cmd {
	if cmd == nil {
		return nil
	}
	return func() tea.Msg {
		msg := cmd()
		switch msg := msg.(type) {
		case nil:
			return nil
		case tea.BatchMsg:
			out := make(tea.BatchMsg, len(msg))
			for i, c := range msg {
				out[i] = stamp(epoch, c)
			}
			return out
		}
		if reflect.TypeOf(msg).PkgPath() == teaPackage {
			return msg
		}
		return epochMsg{epoch: epoch, msg: msg}
	}
}

// discard releases what a dropped message of an earlier attachment holds:
// a stream it subscribed, a connection it opened.
func (m *Model) discard(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case logSubMsg:
		if msg.s != nil {
			msg.s.Close()
		}
	case failSubMsg:
		if msg.s != nil {
			msg.s.Close()
		}
	case auditSubMsg:
		if msg.s != nil {
			msg.s.Close()
		}
	case attachedMsg:
		return m.att.held.dropCmd(msg.h)
	}
	return nil
}

// openAttach lists the targets (files: in a command) for the picker.
func (m *Model) openAttach() tea.Cmd {
	switch {
	case m.opts.Targets == nil || m.opts.Attach == nil:
		return m.toast("this deck cannot attach to another cluster (only a deck started with `deck` can)", true)
	case m.att.pending != "":
		return m.toast("already attaching to "+m.att.pending+"…", false)
	case m.inflight > 0:
		return m.toast(fmt.Sprintf("%d commit(s) in flight on %s: attach once they are done", m.inflight, m.c.Snap.Cluster), true)
	}
	list := m.opts.Targets
	return func() tea.Msg {
		ts, err := list()
		return targetsMsg{targets: ts, err: err}
	}
}

// pickTarget opens the picker over the listed targets.
func (m *Model) pickTarget(msg targetsMsg) tea.Cmd {
	if msg.err != nil {
		m.toasts.Push("attach: "+sanitize(msg.err.Error()), true, m.c.Now)
		if len(msg.targets) == 0 {
			return nil
		}
	}
	ts := msg.targets
	if len(ts) > MaxAttachTargets {
		ts = ts[:MaxAttachTargets]
	}
	header, labels := targetRows(ts, m.att.current)
	opts := make([]widgets.PickOption, len(ts))
	for i := range ts {
		opts[i] = widgets.PickOption{Label: labels[i], Value: strconv.Itoa(i)}
	}
	prompt := header
	if len(ts) == 0 {
		prompt = "no bookmarks yet: `deck bookmark add NAME --cluster FILE`"
	}
	p := &widgets.Picker{Title: "ATTACH · bookmarks, then recent clusters", Prompt: prompt, Options: opts}
	p.OnPick = func(o []widgets.PickOption) tea.Cmd {
		i, err := strconv.Atoi(o[0].Value)
		if err != nil || i < 0 || i >= len(ts) {
			return nil
		}
		return m.startAttach(ts[i])
	}
	m.push(p)
	return nil
}

// MaxAttachTargets bounds the picker (bookmarks and recent clusters are
// bounded by their files; this keeps a caller's list from growing the
// frame without end).
const MaxAttachTargets = 512

// Column widths of the picker (cells); longer values are cut.
const (
	attachNameCells     = 16
	attachClusterCells  = 20
	attachIdentityCells = 12
)

// targetRows lays the targets out in columns: attached mark, name (the
// bookmark, or "recent"), cluster (or the file's problem), identity, file.
func targetRows(ts []Target, current Target) (header string, rows []string) {
	nameW, clusterW, idW := len("NAME"), len("CLUSTER"), len("IDENTITY")
	cells := make([][4]string, len(ts))
	for i, t := range ts {
		name := t.Bookmark
		if name == "" {
			name = "recent"
		}
		cluster := t.Cluster
		if t.Problem != "" {
			cluster = "✗ " + t.Problem
		} else if cluster == "" {
			cluster = "?"
		}
		id := t.Identity
		if id == "" {
			id = "default"
		}
		c := [4]string{sanitize(name), sanitize(cluster), sanitize(id), sanitize(t.Path)}
		nameW = max(nameW, min(widgets.Width(c[0]), attachNameCells))
		clusterW = max(clusterW, min(widgets.Width(c[1]), attachClusterCells))
		idW = max(idW, min(widgets.Width(c[2]), attachIdentityCells))
		cells[i] = c
	}
	line := func(mark string, c [4]string) string {
		return mark + " " + widgets.Fit(c[0], nameW) + "  " + widgets.Fit(c[1], clusterW) + "  " + widgets.Fit(c[2], idW) + "  " + c[3]
	}
	// The picker indents options by its cursor marker and mark column.
	header = strings.Repeat(" ", widgets.Width(widgets.CursorMarker)+3) + line(" ", [4]string{"NAME", "CLUSTER", "IDENTITY", "FILE"})
	rows = make([]string, len(ts))
	for i, t := range ts {
		mark := " "
		if t.same(current) {
			mark = "●"
		}
		rows[i] = line(mark, cells[i])
	}
	return header, rows
}

// sanitize is text from files and errors made printable, so nothing a file
// says can move the cursor or retitle the terminal.
func sanitize(s string) string { return widgets.Printable(s) }

// startAttach joins t in a command; the status line says so meanwhile.
func (m *Model) startAttach(t Target) tea.Cmd {
	if t.same(m.att.current) {
		return m.toast("already attached to "+sanitize(t.Name()), false)
	}
	if m.att.pending != "" {
		return m.toast("already attaching to "+m.att.pending+"…", false)
	}
	m.att.pending = sanitize(t.Name())
	attach, held, ctx := m.opts.Attach, m.att.held, m.c.Ctx
	return func() tea.Msg {
		if !held.begin() {
			return nil
		}
		defer held.end()
		a, err := attach(ctx, t)
		if err == nil && a.Client == nil {
			err = fmt.Errorf("%w: attach returned no client", api.ErrNotConnected)
		}
		if err != nil {
			if a.Closer != nil {
				a.Closer.Close()
			}
			return attachedMsg{t: t, err: err}
		}
		closer := a.Closer
		if closer == nil {
			closer = nopCloser{}
		}
		h, ok := held.own(closer)
		if !ok {
			closer.Close()
			return nil
		}
		return attachedMsg{t: t, a: a, h: h}
	}
}

// attached swaps the deck onto the new cluster, or reports the failure and
// stays where it is.
func (m *Model) attached(msg attachedMsg) tea.Cmd {
	st := m.att
	st.pending = ""
	if msg.err != nil {
		return m.toast(fmt.Sprintf("attach to %s failed: %s — still on %s", sanitize(msg.t.Name()), sanitize(errText(msg.err)), m.c.Snap.Cluster), true)
	}
	old, prev := st.closer, m.c
	m.Close()
	st.epoch++ // from here on, what the old cluster's commands return is dropped
	st.current, st.closer = msg.t, msg.h
	opts := m.opts
	// The demo's fault injector and its attach hint belong to its cluster.
	opts.Faults, opts.AttachHint = nil, ""
	fresh := newModel(msg.a.Client, opts, st)
	fresh.c.Theme, fresh.c.Width, fresh.c.Height = prev.Theme, prev.Width, prev.Height
	*m = *fresh
	m.screen().Sync()
	m.toasts.Push("attached to "+m.c.Snap.Cluster+" ("+sanitize(msg.t.Name())+")", false, m.c.Now)
	for _, n := range msg.a.Notes {
		m.toasts.Push(sanitize(n), true, m.c.Now)
	}
	return tea.Batch(m.Init(), st.held.dropCmd(old))
}

// attachSegment is the status line's "attaching to X…" while an attach runs.
func (m *Model) attachSegment(segs []widgets.Segment) []widgets.Segment {
	if m.att.pending == "" {
		return segs
	}
	seg := widgets.Segment{Text: "attaching to " + m.att.pending + "…", Tone: common.ToneWarn, Priority: 1}
	if len(segs) < 2 {
		return append(segs, seg)
	}
	return append(segs[:2], append([]widgets.Segment{seg}, segs[2:]...)...)
}
