package cli

import (
	"context"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"

	"github.com/deck-mesh/deck/deck"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/nodetest"
)

// frameMsg asks the running program for its frame, from its own goroutine.
type frameMsg struct{ reply chan string }

// framed wraps the deck so the test reads frames race-free.
type framed struct{ m *deck.Model }

func (f framed) Init() tea.Cmd { return f.m.Init() }

func (f framed) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if fm, ok := msg.(frameMsg); ok {
		fm.reply <- ansi.Strip(f.m.View().Content)
		return f, nil
	}
	_, cmd := f.m.Update(msg)
	return f, cmd
}

func (f framed) View() tea.View { return f.m.View() }

// TestEndToEndDeckAttachesToSecondCluster: two real meshes, each with its
// own PSK and operator (alice runs cli-test, carol runs lab, each
// certifying her nodes). The deck starts on cli-test as alice the way `deck`
// does (openDeck: join, console certificate, options), then `:` lists the
// lab bookmark, and picking it attaches the running deck to lab as carol
// through a new console node: the deck shows lab's nodes and names lab and
// carol on its status line, lab's logs stream in, and both clusters are in
// recent.toml.
func TestEndToEndDeckAttachesToSecondCluster(t *testing.T) {
	first := sharedMesh(t)
	lab := startMesh(t, meshOpts{name: "lab", nodes: 2, iceThreshold: 1, operators: []string{"carol"}})
	dirs := isolatedDirs(t)
	if r := run(t, IO{}, "bookmark", "add", "lab", "--cluster", lab.clusterPath, "--identity", "carol"); r.code != 0 {
		t.Fatalf("bookmark add: %s", r)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root := NewRoot(IO{})
	if err := root.ParseFlags([]string{"--cluster", first.clusterPath, "--identity", "alice"}); err != nil {
		t.Fatal(err)
	}
	root.SetContext(ctx)
	client, opts, err := openDeck(root, IO{Err: io.Discard})
	if err != nil {
		t.Fatalf("the deck did not start on cli-test: %v", err)
	}
	opts.Context, opts.Profile = ctx, colorprofile.NoTTY
	m := deck.New(client, opts)
	in, keys := io.Pipe()
	defer keys.Close()
	p := tea.NewProgram(framed{m}, tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(io.Discard),
		tea.WithWindowSize(160, 48), tea.WithoutSignalHandler())
	done := make(chan struct{})
	go func() { p.Run(); close(done) }()
	defer func() {
		p.Quit()
		<-done
		m.CloseClusters()
	}()

	var last string
	frame := func() string {
		reply := make(chan string, 1)
		p.Send(frameMsg{reply})
		select {
		case last = <-reply:
		case <-time.After(time.Minute):
			t.Fatal("the program stopped answering")
		}
		return last
	}
	waitFrame := func(what string, ok func(string) bool) {
		t.Helper()
		nodetest.Eventually(t, what, func() bool { return ok(frame()) }, func() string { return last })
	}
	statusLine := func(f string) string { return strings.SplitN(f, "\n", 2)[0] }

	waitFrame("cli-test's nodes", func(f string) bool {
		return strings.Contains(statusLine(f), "cli-test") && strings.Contains(f, "n1") && strings.Contains(f, "n3")
	})
	if _, err := io.WriteString(keys, ":"); err != nil {
		t.Fatal(err)
	}
	waitFrame("the picker listing lab", func(f string) bool {
		return strings.Contains(f, "ATTACH") && strings.Contains(f, "lab") && strings.Contains(f, "carol")
	})
	if _, err := io.WriteString(keys, "\r"); err != nil {
		t.Fatal(err)
	}
	waitFrame("lab's nodes, as carol", func(f string) bool {
		s := statusLine(f)
		return strings.Contains(s, "lab") && strings.Contains(s, "op carol") &&
			strings.Contains(f, "lab-n1") && strings.Contains(f, "lab-n2")
	})
	if strings.Contains(last, " n1 ") || strings.Contains(statusLine(last), "cli-test") {
		t.Errorf("cli-test still on screen after the attach:\n%s", last)
	}

	// The new console's subscriptions are live: lab's daemons' logs arrive.
	if _, err := io.WriteString(keys, "9"); err != nil {
		t.Fatal(err)
	}
	waitFrame("lab's logs", func(f string) bool {
		lines := strings.Split(f, "\n")
		for _, l := range lines[min(4, len(lines)):] {
			if strings.Contains(l, "lab-n") {
				return true
			}
		}
		return false
	})

	rc, err := config.LoadRecent(dirs.RecentPath())
	if err != nil {
		t.Fatal(err)
	}
	want := []config.RecentCluster{
		{Path: lab.clusterPath, Cluster: "lab", Identity: "carol"},
		{Path: first.clusterPath, Cluster: "cli-test", Identity: "alice"},
	}
	if !reflect.DeepEqual(rc.List(), want) {
		t.Errorf("recent.toml: %+v, want %+v", rc.List(), want)
	}
}
