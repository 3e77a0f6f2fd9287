package deck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"

	"github.com/deck-mesh/deck/deck/decktest"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/nodetest"
	"github.com/deck-mesh/deck/tabs"
)

// closeRecorder is a cluster connection that remembers being closed.
type closeRecorder struct{ closed atomic.Int32 }

func (c *closeRecorder) Close() error { c.closed.Add(1); return nil }

// The targets of the attach tests and goldens: the fixture cluster the deck
// starts on is nightcity (attached, so marked), lab is a second cluster.
var (
	nightcityTarget = Target{Bookmark: "nightcity", Cluster: decktest.ClusterName, Path: "/home/op/clusters/nightcity.toml"}
	labTarget       = Target{Bookmark: "lab", Cluster: "lab", Path: "/home/op/clusters/lab.toml", Identity: "alice"}
	attachTargets   = []Target{
		labTarget,
		nightcityTarget,
		{Bookmark: "prod-eu", Path: "/home/op/clusters/prod-eu.toml", Problem: "missing"},
		{Cluster: "staging", Path: "/srv/deck/staging.toml", Identity: "bob"},
	}
)

// withTargets gives m the attach targets above, attaching to lab with
// attach.
func withTargets(m *Model, attach func(context.Context, Target) (Attachment, error)) {
	m.opts.Targets = func() ([]Target, error) { return attachTargets, nil }
	m.opts.Attach = attach
	m.att.current = nightcityTarget
}

func TestGoldenAttachPicker(t *testing.T) {
	for _, sz := range [][2]int{{80, 24}, {160, 48}} {
		name := fmt.Sprintf("modal_attach_picker_%dx%d", sz[0], sz[1])
		t.Run(name, func(t *testing.T) {
			m := newTestModel(t, decktest.New(fixtureLogs), sz[0], sz[1], nil)
			withTargets(m, func(context.Context, Target) (Attachment, error) {
				return Attachment{}, errors.New("not in this test")
			})
			press(t, m, ":")
			golden(t, name, frame(t, m))
		})
	}
}

// step feeds one message through Update and returns its command unrun (the
// attach tests run commands one by one, as the program would).
func step(m *Model, msg tea.Msg) tea.Cmd {
	_, cmd := m.Update(msg)
	return cmd
}

// attachTo presses `:` and picks the first target (lab), running the attach
// command and feeding its result back; it returns what Update returned for
// the result, unrun (the new cluster's subscriptions and the old node's
// close).
func attachTo(t *testing.T, m *Model) tea.Cmd {
	t.Helper()
	list := step(m, keyMsg(":"))
	if list == nil {
		t.Fatalf("`:` did nothing; toast %q", currentToast(m))
	}
	step(m, list())
	if len(m.modals) != 1 {
		t.Fatalf("no picker after `:` (%d modals); toast %q", len(m.modals), currentToast(m))
	}
	attach := step(m, keyMsg("enter"))
	if attach == nil {
		t.Fatalf("picking lab started nothing; toast %q", currentToast(m))
	}
	if !strings.Contains(ansi.Strip(m.statusLine(160)), "attaching to lab…") {
		t.Errorf("status line while attaching: %q", ansi.Strip(m.statusLine(160)))
	}
	return step(m, attach())
}

// TestAttackOldClusterPreviewCannotConfirmOnAttachedCluster: a drain's
// preview is asked of the old cluster; the operator attaches to another
// cluster, and the answer is delivered after the swap (a slow or hostile
// node answers late; the answer queues behind the attach). The late
// preview must not open a confirmation on the new cluster, whose
// command plane would sign and commit the old cluster's action there (here
// the two clusters share node ids, so the drain would commit on lab).
func TestAttackOldClusterPreviewCannotConfirmOnAttachedCluster(t *testing.T) {
	a, b := quiet(t), decktest.NewCluster("lab", fixtureLogs)
	quietLedger(t, b)
	m := newTestModel(t, a, 120, 40, nil)
	withTargets(m, func(context.Context, Target) (Attachment, error) { return Attachment{Client: b}, nil })

	press(t, m, "j", "j", "j", "d", "type:5m")
	preview := step(m, keyMsg("enter"))
	if preview == nil {
		t.Fatal("the drain asked for no preview")
	}
	// The old cluster answered, but its answer is still queued behind the
	// attach when the deck swaps clusters.
	latePreview := preview()
	attachTo(t, m)
	if m.c.Client != api.Client(b) {
		t.Fatal("not attached to lab")
	}
	run(t, m, latePreview)
	if len(m.modals) != 0 {
		t.Fatalf("the old cluster's preview opened a dialog on lab:\n%s", ansi.Strip(frame(t, m)))
	}
	press(t, m, "type:YES", "enter")
	if got := b.Committed(); len(got) != 0 {
		t.Fatalf("lab committed the old cluster's drain: %+v", got)
	}
	if got := a.Committed(); len(got) != 0 {
		t.Fatalf("the old cluster committed after the deck left it: %+v", got)
	}
}

func TestAttachStaleSubscriptionIsClosed(t *testing.T) {
	a, b := decktest.New(fixtureLogs), decktest.NewCluster("lab", fixtureLogs)
	m := newTestModel(t, a, 120, 40, nil)
	withTargets(m, func(context.Context, Target) (Attachment, error) { return Attachment{Client: b}, nil })
	lateLogs := stamp(m.att.epoch, m.subscribeLogs())() // subscribed, queued behind the attach
	attachTo(t, m)
	step(m, lateLogs)
	if m.logStream != nil {
		t.Fatal("the old cluster's log stream was taken as the new one's")
	}
	if n := a.Subscribed(); n != 0 {
		t.Fatalf("%d subscriptions to the old cluster left open", n)
	}
}

func TestAttachFailureStaysOnCluster(t *testing.T) {
	a := decktest.New(fixtureLogs)
	m := newTestModel(t, a, 120, 40, nil)
	withTargets(m, func(context.Context, Target) (Attachment, error) {
		return Attachment{}, fmt.Errorf("%w: no node of cluster lab answered", api.ErrNotConnected)
	})
	press(t, m, "/", "type:stray", "enter")
	attachTo(t, m)
	if m.c.Client != api.Client(a) || m.att.current != nightcityTarget || m.att.pending != "" {
		t.Fatalf("a failed attach moved the deck: client %v current %+v pending %q", m.c.Client.Cluster(), m.att.current, m.att.pending)
	}
	if got := allToasts(m); !strings.Contains(got, "attach to lab failed: not connected") || !strings.Contains(got, "still on nightcity") {
		t.Errorf("toasts %q", got)
	}
	if f := m.screen().(tabs.Filterable).Filter(); f != "stray" {
		t.Errorf("a failed attach cleared the filter: %q", f)
	}
	if strings.Contains(ansi.Strip(m.statusLine(160)), "attaching") {
		t.Errorf("status line still attaching: %q", ansi.Strip(m.statusLine(160)))
	}
}

func TestAttachKeyWithoutTargets(t *testing.T) {
	m := newTestModel(t, decktest.New(fixtureLogs), 120, 40, nil)
	press(t, m, ":")
	if len(m.modals) != 0 || !strings.Contains(currentToast(m), "cannot attach") {
		t.Fatalf("`:` on a deck without targets: %d modals, toast %q", len(m.modals), currentToast(m))
	}
}

func TestAttachTargetsErrorIsShown(t *testing.T) {
	m := newTestModel(t, decktest.New(fixtureLogs), 120, 40, nil)
	withTargets(m, func(context.Context, Target) (Attachment, error) { return Attachment{}, errors.New("not in this test") })
	m.opts.Targets = func() ([]Target, error) {
		return nil, errors.New("config: bookmarks /home/op/.config/deck/bookmarks.toml: bookmarks.prod: want a string or a table, got an integer")
	}
	press(t, m, ":")
	if len(m.modals) != 0 || !strings.Contains(currentToast(m), "bookmarks.prod") {
		t.Fatalf("an unreadable bookmarks file: %d modals, toast %q", len(m.modals), currentToast(m))
	}
}

func TestAttachPickingCurrentClusterDoesNothing(t *testing.T) {
	m := newTestModel(t, decktest.New(fixtureLogs), 120, 40, nil)
	called := false
	withTargets(m, func(context.Context, Target) (Attachment, error) { called = true; return Attachment{}, nil })
	press(t, m, ":", "j", "enter")
	if called || m.att.pending != "" || !strings.Contains(currentToast(m), "already attached to nightcity") {
		t.Fatalf("picking the attached cluster: attach called %v, pending %q, toast %q", called, m.att.pending, currentToast(m))
	}
}

// TestAttachFinishingAfterQuitIsClosed: an attach still joining when the
// deck stops has nobody to hand its node to. CloseClusters waits for it,
// and its node is closed, not leaked, whichever finishes first.
func TestAttachFinishingAfterQuitIsClosed(t *testing.T) {
	b := decktest.NewCluster("lab", fixtureLogs)
	bNode := &closeRecorder{}
	entered, release := make(chan struct{}), make(chan struct{})
	m := newTestModel(t, decktest.New(fixtureLogs), 120, 40, nil)
	withTargets(m, func(context.Context, Target) (Attachment, error) {
		close(entered)
		<-release // a join that ignores the deck quitting, the worst case
		return Attachment{Client: b, Closer: bNode}, nil
	})
	step(m, step(m, keyMsg(":"))())
	attach := step(m, keyMsg("enter"))
	attached := make(chan tea.Msg, 1)
	go func() { attached <- attach() }()
	<-entered
	closed := make(chan struct{})
	go func() { m.CloseClusters(); close(closed) }()
	close(release)
	<-closed
	<-attached
	if n := bNode.closed.Load(); n != 1 {
		t.Fatalf("the node of an attach that finished as the deck stopped closed %d times, want 1", n)
	}
}

// inspected wraps the deck so the test can read its state from the
// program's own goroutine.
type inspected struct{ m *Model }

type inspectMsg struct {
	f    func(*Model)
	done chan struct{}
}

func (p inspected) Init() tea.Cmd { return p.m.Init() }

func (p inspected) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if im, ok := msg.(inspectMsg); ok {
		im.f(p.m)
		close(im.done)
		return p, nil
	}
	_, cmd := p.m.Update(msg)
	return p, cmd
}

func (p inspected) View() tea.View { return p.m.View() }

// attachProgram is a real Bubble Tea program over the fixture nightcity,
// with lab as the attach target, driven by keystrokes through a pipe.
type attachProgram struct {
	t    *testing.T
	p    *tea.Program
	m    *Model
	keys *io.PipeWriter
}

func (ap *attachProgram) inspect(f func(*Model)) {
	ap.t.Helper()
	done := make(chan struct{})
	ap.p.Send(inspectMsg{f: f, done: done})
	select {
	case <-done:
	case <-time.After(e2eTimeout):
		ap.t.Fatal("the program stopped answering")
	}
}

func (ap *attachProgram) frame() string {
	var f string
	ap.inspect(func(m *Model) { f = ansi.Strip(m.render()) })
	return f
}

func (ap *attachProgram) waitFrame(what string, ok func(string) bool) string {
	ap.t.Helper()
	var last string
	nodetest.Eventually(ap.t, what, func() bool {
		last = ap.frame()
		return ok(last)
	}, func() string { return last })
	return last
}

func (ap *attachProgram) type_(s string) {
	ap.t.Helper()
	if _, err := io.WriteString(ap.keys, s); err != nil {
		ap.t.Fatal(err)
	}
}

// TestAttachFlowSwapsClusters drives the whole flow in a running program:
// `:` lists the targets, enter attaches (the status line says so while it
// runs), and once attached the deck shows lab's nodes, the old cluster's
// watch and streams are closed and its node too, and nothing of nightcity's
// state (logs, filter, toasts) is left.
func TestAttachFlowSwapsClusters(t *testing.T) {
	a, b := decktest.New(fixtureLogs), decktest.NewCluster("lab", fixtureLogs)
	aNode, bNode := &closeRecorder{}, &closeRecorder{}
	release := make(chan struct{})
	m := New(a, Options{Version: "0.4.0", Now: func() time.Time { return decktest.T0 }, Profile: colorprofile.NoTTY,
		ExportDir: t.TempDir(), Closer: aNode, Attached: nightcityTarget,
		Targets: func() ([]Target, error) { return attachTargets, nil },
		Attach: func(ctx context.Context, tg Target) (Attachment, error) {
			select {
			case <-release:
			case <-ctx.Done():
				return Attachment{}, ctx.Err()
			}
			if tg.Path != labTarget.Path || tg.Identity != "alice" {
				return Attachment{}, fmt.Errorf("attach to %+v, want lab as alice", tg)
			}
			return Attachment{Client: b, Closer: bNode, Notes: []string{"cluster file lab.toml: its group can read it"}}, nil
		},
	})
	in, keys := io.Pipe()
	t.Cleanup(func() { keys.Close() })
	p := tea.NewProgram(inspected{m}, tea.WithInput(in), tea.WithOutput(&syncBuffer{}),
		tea.WithWindowSize(160, 48), tea.WithoutSignalHandler())
	done := make(chan error, 1)
	go func() { _, err := p.Run(); done <- err }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		p.Quit()
		select {
		case <-done:
		case <-time.After(e2eTimeout):
			t.Error("program did not stop")
		}
		m.CloseClusters()
	}
	t.Cleanup(stop)
	ap := &attachProgram{t: t, p: p, m: m, keys: keys}

	ap.waitFrame("nightcity's nodes", func(f string) bool { return strings.Contains(f, "wintermute") && strings.Contains(f, "nightcity") })
	nodetest.Eventually(t, "nightcity's watch and three streams", func() bool { return a.Subscribed() == 4 })
	ap.type_("/stray\r")
	ap.waitFrame("the filter", func(f string) bool { return strings.Contains(f, "stray") })

	ap.type_(":")
	ap.waitFrame("the picker", func(f string) bool { return strings.Contains(f, "ATTACH") && strings.Contains(f, "lab.toml") })
	ap.type_("\r")
	ap.waitFrame("attaching to lab…", func(f string) bool { return strings.Contains(f, "attaching to lab…") })
	close(release)
	f := ap.waitFrame("lab's nodes", func(f string) bool { return strings.Contains(f, "lab-wintermute") })
	if strings.Contains(f, "attaching") || !strings.Contains(strings.SplitN(f, "\n", 2)[0], "lab") {
		t.Errorf("status line after the attach:\n%s", strings.SplitN(f, "\n", 2)[0])
	}
	nodetest.Eventually(t, "nightcity's subscriptions closed", func() bool { return a.Subscribed() == 0 })
	nodetest.Eventually(t, "nightcity's node closed", func() bool { return aNode.closed.Load() == 1 })
	nodetest.Eventually(t, "lab's watch and three streams", func() bool { return b.Subscribed() == 4 })
	nodetest.Eventually(t, "lab's log backlog folded", func() bool {
		n := 0
		ap.inspect(func(m *Model) { n = m.c.Store.Logs.Len() })
		return n == fixtureLogs
	})
	ap.inspect(func(m *Model) {
		if m.c.Client != api.Client(b) || m.att.current != labTarget {
			t.Errorf("attached to %s (%+v), want lab", m.c.Client.Cluster(), m.att.current)
		}
		if f := m.screen().(tabs.Filterable).Filter(); f != "" || m.screen().Name() != "NODES" {
			t.Errorf("after the attach: screen %s, filter %q; want NODES unfiltered", m.screen().Name(), f)
		}
		if got := allToasts(m); !strings.Contains(got, "attached to lab") || !strings.Contains(got, "its group can read it") {
			t.Errorf("toasts after the attach: %q", got)
		}
	})
	if bNode.closed.Load() != 0 {
		t.Fatal("lab's node closed while the deck reads it")
	}
	stop()
	if aNode.closed.Load() != 1 || bNode.closed.Load() != 1 {
		t.Fatalf("after quitting: nightcity's node closed %d times, lab's %d; want 1 and 1", aNode.closed.Load(), bNode.closed.Load())
	}
}
