package deck

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"

	"github.com/deck-mesh/deck/demo/workloads"
	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
)

// e2eTimeout bounds each wait of the end-to-end test. Generous: the mesh
// converges in a few seconds, but CI machines are slow and shared.
const e2eTimeout = 20 * time.Second

// probeMsg asks the program, from its own goroutine, for the current frame:
// the test never touches the model concurrently with Update.
type probeMsg struct{ reply chan string }

// probed wraps the deck so a test can read frames race-free.
type probed struct{ m *Model }

func (p probed) Init() tea.Cmd { return p.m.Init() }

func (p probed) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if pm, ok := msg.(probeMsg); ok {
		pm.reply <- ansi.Strip(p.m.render())
		return p, nil
	}
	_, cmd := p.m.Update(msg)
	return p, cmd
}

func (p probed) View() tea.View { return p.m.View() }

// syncBuffer is the program's output sink (written by the renderer).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// TestEndToEndCordonThroughTheDeck is the end-to-end test: the real
// deck, driven through a real Bubble Tea program by keystrokes, attached
// through an observer console node to a real 3-node mesh. It switches tabs,
// cordons a node with the typed-YES flow, and waits until the cordon shows
// in NODES (folded from the admin ledger by the mesh) and in AUDIT.
func TestEndToEndCordonThroughTheDeck(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real 3-node mesh")
	}
	op, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := config.NewCluster("e2e", nil, []config.Operator{config.NewOperator("alice", op.Public)}, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 3
	var nodes []*node.Node
	for i := 0; i < n; i++ {
		opts := node.Options{
			Cluster: cl, DataDir: t.TempDir(), Label: "n" + string(rune('1'+i)),
			Capabilities: workloads.NodeCapabilities(i, n), Spec: workloads.Spec(),
			Factories: workloads.Factories(), Version: "e2e",
		}
		if i > 0 {
			opts.Bootstrap = []string{nodes[0].Addr()}
		}
		nd, err := node.Start(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nd.Close() })
		nodes = append(nodes, nd)
	}
	console, err := node.Start(ctx, node.Options{
		Cluster: cl, DataDir: t.TempDir(), Label: "deck", Observer: true, Spec: workloads.Spec(),
		Bootstrap: []string{nodes[0].Addr(), nodes[1].Addr()}, Version: "e2e",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { console.Close() })
	client, err := console.NewClient(identity.KeySigner{K: op}, "alice")
	if err != nil {
		t.Fatal(err)
	}

	m := New(client, Options{Version: "e2e", Context: ctx, Profile: colorprofile.NoTTY, ExportDir: t.TempDir()})
	defer m.Close()
	in, keys := io.Pipe()
	defer keys.Close()
	out := &syncBuffer{}
	p := tea.NewProgram(probed{m}, tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out),
		tea.WithWindowSize(120, 40), tea.WithoutSignalHandler())
	done := make(chan error, 1)
	go func() { _, err := p.Run(); done <- err }()
	defer func() {
		p.Quit()
		select {
		case <-done:
		case <-time.After(e2eTimeout):
			t.Error("program did not stop")
		}
	}()

	frame := func() string {
		reply := make(chan string, 1)
		p.Send(probeMsg{reply})
		select {
		case f := <-reply:
			return f
		case <-time.After(e2eTimeout):
			t.Fatal("the program stopped answering")
			return ""
		}
	}
	last := ""
	waitFor := func(what string, ok func(frame string) bool) {
		t.Helper()
		deadline := time.Now().Add(e2eTimeout)
		for time.Now().Before(deadline) {
			if last = frame(); ok(last) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("timed out waiting for %s; last frame:\n%s", what, last)
	}
	type_ := func(s string) {
		t.Helper()
		if _, err := io.WriteString(keys, s); err != nil {
			t.Fatal(err)
		}
	}
	row := func(f, label string) string {
		for _, l := range strings.Split(f, "\n") {
			if fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), "▸")); len(fields) > 0 && fields[0] == label {
				return l
			}
		}
		return ""
	}

	// Launch: the deck opens on NODES and the console sees the whole mesh.
	waitFor("3 healthy nodes in NODES", func(f string) bool {
		return strings.Contains(f, "3 nodes · 3 healthy") && row(f, "n3") != ""
	})
	if !strings.Contains(last, "deck (this console)") {
		t.Errorf("the console's own node is not marked as this console:\n%s", last)
	}

	// Switch tabs: DAEMONS, then AUDIT (empty), then back to NODES.
	type_("3")
	waitFor("DAEMONS tab", func(f string) bool { return strings.Contains(f, "daemons ·") && strings.Contains(f, "LINEAGE") })
	type_("0")
	waitFor("AUDIT tab", func(f string) bool { return strings.Contains(f, "admin ledger") })
	type_("2")
	waitFor("NODES tab", func(f string) bool { return strings.Contains(f, "3 nodes ·") })

	// Select n3 (rows are n1, n2, n3, then the console) and cordon it.
	type_("gjj")
	waitFor("cursor on n3", func(f string) bool { return strings.HasPrefix(strings.TrimSpace(row(f, "n3")), "▸") })
	type_("c")
	waitFor("the confirm modal with the blast radius", func(f string) bool {
		return strings.Contains(f, "CONFIRM cordon n3") && strings.Contains(f, "Type YES")
	})
	type_("YES\r")

	// NODES shows n3 cordoned once the ledger event is folded on the console.
	waitFor("n3 cordoned in NODES", func(f string) bool {
		return strings.Contains(row(f, "n3"), "cordoned") && strings.Contains(f, "1 cordoned")
	})
	// Every node applies it too: the event went through the mesh.
	for _, nd := range nodes {
		deadline := time.Now().Add(e2eTimeout)
		for nv := nd.Cluster().Node(nodes[2].ID()); nv == nil || !nv.Cordoned; nv = nd.Cluster().Node(nodes[2].ID()) {
			if time.Now().After(deadline) {
				t.Fatalf("node %s never applied the cordon", nd.ID().Short())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// AUDIT lists the accepted cordon by alice on n3.
	type_("0")
	waitFor("the cordon in AUDIT", func(f string) bool {
		for _, l := range strings.Split(f, "\n") {
			if strings.Contains(l, "accepted") && strings.Contains(l, "alice") && strings.Contains(l, "cordon") && strings.Contains(l, "node n3") {
				return true
			}
		}
		return false
	})
	// Enter opens the event with its signature.
	type_("\r")
	waitFor("the audit event page", func(f string) bool {
		return strings.Contains(f, "SIGNATURES (1)") && strings.Contains(f, "command    admin cordon")
	})
}
