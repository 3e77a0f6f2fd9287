package deck

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"

	"github.com/deck-mesh/deck/demo/workloads"
	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/widgets"
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

// e2eOperator is an operator of the end-to-end cluster and its key.
type e2eOperator struct {
	name string
	key  *identity.Key
}

func newE2EOperator(t *testing.T, name string) e2eOperator {
	t.Helper()
	k, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return e2eOperator{name, k}
}

// e2eDeck is a real deck program attached through an observer console node
// to a real 3-node mesh (n1, n2, n3), driven by keystrokes through a pipe.
type e2eDeck struct {
	t         *testing.T
	ctx       context.Context
	cluster   *config.Cluster
	nodes     []*node.Node
	console   *node.Node
	client    *node.Client // the deck's, signing as ops[0]
	p         *tea.Program
	keys      *io.PipeWriter
	exportDir string
	last      string // the last frame read by waitFor
}

// startE2E starts the mesh with the operators (ops[0] runs the deck) and the
// ICE threshold, and the deck on the console at 120×40.
func startE2E(t *testing.T, iceThreshold int, ops ...e2eOperator) *e2eDeck {
	t.Helper()
	var genesis []config.Operator
	for _, op := range ops {
		genesis = append(genesis, config.NewOperator(op.name, op.key.Public))
	}
	cl, err := config.NewCluster("e2e", nil, genesis, 1, iceThreshold)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &e2eDeck{t: t, ctx: ctx, cluster: cl, exportDir: t.TempDir()}
	const n = 3
	for i := 0; i < n; i++ {
		key, err := identity.Generate()
		if err != nil {
			t.Fatal(err)
		}
		opts := node.Options{
			Cluster: cl, Key: key, DataDir: t.TempDir(), Label: "n" + string(rune('1'+i)),
			Capabilities: workloads.NodeCapabilities(i, n), Spec: workloads.Spec(),
			Factories: workloads.Factories(), Version: "e2e",
			CertifyWith: identity.KeySigner{K: ops[0].key},
		}
		if i > 0 {
			opts.Bootstrap = []string{e.nodes[0].Addr()}
		}
		nd, err := node.Start(ctx, opts)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		t.Cleanup(func() { nd.Close() })
		e.nodes = append(e.nodes, nd)
	}
	console, err := node.Start(ctx, node.Options{
		Cluster: cl, DataDir: t.TempDir(), Label: "deck", Observer: true, Spec: workloads.Spec(),
		Bootstrap: []string{e.nodes[0].Addr(), e.nodes[1].Addr()}, Version: "e2e",
		CertifyWith: identity.KeySigner{K: ops[0].key},
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { console.Close() })
	e.console = console
	// Cleanups run last-registered first: the program stops, then the deck
	// and the context, then the nodes.
	t.Cleanup(cancel)
	client, err := console.NewClient(identity.KeySigner{K: ops[0].key}, ops[0].name)
	if err != nil {
		t.Fatal(err)
	}
	e.client = client

	m := New(client, Options{Version: "e2e", Context: ctx, Profile: colorprofile.NoTTY, ExportDir: e.exportDir})
	t.Cleanup(m.Close)
	in, keys := io.Pipe()
	e.keys = keys
	t.Cleanup(func() { keys.Close() })
	out := &syncBuffer{}
	e.p = tea.NewProgram(probed{m}, tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out),
		tea.WithWindowSize(120, 40), tea.WithoutSignalHandler())
	done := make(chan error, 1)
	go func() { _, err := e.p.Run(); done <- err }()
	t.Cleanup(func() {
		e.p.Quit()
		select {
		case <-done:
		case <-time.After(e2eTimeout):
			t.Error("program did not stop")
		}
	})
	return e
}

// frame asks the program for its current frame (ANSI stripped).
func (e *e2eDeck) frame() string {
	reply := make(chan string, 1)
	e.p.Send(probeMsg{reply})
	select {
	case f := <-reply:
		return f
	case <-time.After(e2eTimeout):
		e.t.Fatal("the program stopped answering")
		return ""
	}
}

// waitFor polls frames until ok holds, failing with the last frame after
// e2eTimeout.
func (e *e2eDeck) waitFor(what string, ok func(frame string) bool) {
	e.t.Helper()
	e.waitForWithin(what, e2eTimeout, ok)
}

// e2eDrainTimeout bounds a wait on the mesh's own work, not the deck's: a
// drain on three nodes moves its daemons one migration at a time under the
// cluster's backpressure, which on a loaded machine takes well past
// e2eTimeout.
const e2eDrainTimeout = 2 * time.Minute

// waitForWithin is waitFor with its own bound.
func (e *e2eDeck) waitForWithin(what string, timeout time.Duration, ok func(frame string) bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if e.last = e.frame(); ok(e.last) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Fatalf("timed out waiting for %s; last frame:\n%s", what, e.last)
}

// type_ sends keystrokes to the program's input.
func (e *e2eDeck) type_(s string) {
	e.t.Helper()
	if _, err := io.WriteString(e.keys, s); err != nil {
		e.t.Fatal(err)
	}
}

// confirmYES types YES into the confirm modal and waits until done holds.
// A young mesh is still placing its daemons, so the blast radius can change
// between the preview and the commit; the deck then refuses the commit and
// asks again on the new preview, which is confirmed again (a bounded number
// of times).
func (e *e2eDeck) confirmYES(what string, done func(frame string) bool) {
	e.t.Helper()
	const maxAsks = 10
	for ask := 0; ask < maxAsks; ask++ {
		e.type_("YES\r")
		// Let the keys land before looking, so the modal seen next is the
		// re-ask, not the one just answered.
		time.Sleep(500 * time.Millisecond)
		asked := false
		e.waitFor(what, func(f string) bool {
			asked = strings.Contains(f, "changed since you confirmed") && strings.Contains(f, "Type YES to confirm: █")
			return asked || done(f)
		})
		if !asked {
			return
		}
	}
	e.t.Fatalf("%s: the blast radius changed on each of %d confirmations; last frame:\n%s", what, maxAsks, e.last)
}

// e2eRow is the line of frame f whose first cell is label ("" if none).
func e2eRow(f, label string) string {
	for _, l := range strings.Split(f, "\n") {
		if fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), "▸")); len(fields) > 0 && fields[0] == label {
			return l
		}
	}
	return ""
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
	e := startE2E(t, 1, newE2EOperator(t, "alice"))
	waitFor, type_, row, nodes := e.waitFor, e.type_, e2eRow, e.nodes

	// Launch: the deck opens on NODES and the console sees the whole mesh.
	waitFor("3 healthy nodes in NODES", func(f string) bool {
		return strings.Contains(f, "3 nodes · 3 healthy") && row(f, "n3") != ""
	})
	if !strings.Contains(e.last, "deck (this console)") {
		t.Errorf("the console's own node is not marked as this console:\n%s", e.last)
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
	// A mesh still settling can move something between the preview and the
	// commit; the deck then refuses the commit and asks again on the new
	// preview (the action flow's contract), and the operator confirms again.
	for asked := 0; ; asked++ {
		waitFor("n3 cordoned in NODES, or the confirmation asked again", func(f string) bool {
			return (strings.Contains(row(f, "n3"), "cordoned") && strings.Contains(f, "1 cordoned")) ||
				strings.Contains(f, "the blast radius changed since you confirmed")
		})
		if !strings.Contains(e.last, "the blast radius changed since you confirmed") {
			break
		}
		if asked == 3 {
			t.Fatalf("the preview changed at every commit:\n%s", e.last)
		}
		type_("YES\r")
	}
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

// TestEndToEndIncidentLoop is the incident loop through the real
// deck on a real mesh whose ICE threshold is 2 of 2 operators: drain a node
// with the keys (d → duration → YES), watch MAINTENANCE show it leaving
// active, force-evict a replica under 2-of-N ICE (the proposal exported with
// ctrl+e, co-signed by the second operator as `deck ice sign` does, the
// co-signature pasted into the collector), and read the ICE record with both
// signatures in AUDIT.
func TestEndToEndIncidentLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real 3-node mesh")
	}
	alice, bob := newE2EOperator(t, "alice"), newE2EOperator(t, "bob")
	e := startE2E(t, 2, alice, bob)

	e.waitFor("3 healthy nodes in NODES", func(f string) bool {
		return strings.Contains(f, "3 nodes · 3 healthy") && e2eRow(f, "n3") != ""
	})

	// Drain n3 for 5 minutes through the keys.
	e.type_("gjj")
	e.waitFor("cursor on n3", func(f string) bool { return strings.HasPrefix(strings.TrimSpace(e2eRow(f, "n3")), "▸") })
	e.type_("d")
	e.waitFor("the drain duration prompt", func(f string) bool { return strings.Contains(f, "drain for:") })
	e.type_("5m\r")
	e.waitFor("the drain confirm", func(f string) bool { return strings.Contains(f, "CONFIRM drain n3") && strings.Contains(f, "Type YES") })
	e.confirmYES("the drain committed", func(f string) bool { return strings.Contains(f, "committed drain n3") })

	// MAINTENANCE shows n3 out of active: draining (entering), then drained
	// or failed to drain (3 nodes leave little room). The eviction below
	// waits for the drain to end: a replica n3 is still handing over can
	// vanish between the proposal and the co-signer's check of it.
	e.type_("7")
	e.waitFor("n3 draining in MAINTENANCE", func(f string) bool {
		fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(e2eRow(f, "n3")), "▸"))
		return strings.Contains(f, "MAINTENANCE") && len(fields) > 1 &&
			(fields[1] == "entering" || fields[1] == "maint" || fields[1] == "drain-failed")
	})
	e.waitForWithin("n3's drain ended", e2eDrainTimeout, func(f string) bool {
		fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(e2eRow(f, "n3")), "▸"))
		return len(fields) > 1 && (fields[1] == "maint" || fields[1] == "drain-failed")
	})

	// Force-evict a replica of the inference chain: holder picker, typed YES,
	// then the signature collector (1 of 2: alice signed).
	e.type_("5")
	e.waitFor("CHAINS tab", func(f string) bool { return strings.Contains(f, "HOLDERS") })
	e.type_("/inference\r")
	e.waitFor("the inference chain with holders", func(f string) bool {
		fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(e2eRow(f, "inference")), "▸"))
		return len(fields) > 1 && fields[1] != "0"
	})
	e.type_("E")
	e.waitFor("the holder picker", func(f string) bool { return strings.Contains(f, "pick the holder to evict from inference") })
	e.type_("\r")
	e.waitFor("the ICE confirm", func(f string) bool {
		return strings.Contains(f, "ICE force-evict-replica inference") && strings.Contains(f, "1 of 2 operator signatures")
	})
	e.type_("YES\r")
	e.waitFor("the signature collector", func(f string) bool { return strings.Contains(f, "signatures 1/2") })

	// ctrl+e exports the proposal for the co-signer.
	e.type_("\x05")
	e.waitFor("the proposal path prompt", func(f string) bool { return strings.Contains(f, "export proposal for co-signers") })
	e.type_("\r")
	e.waitFor("the proposal written", func(f string) bool { return strings.Contains(f, "wrote proposal (1 signature)") })
	files, err := filepath.Glob(filepath.Join(e.exportDir, "deck-ice-force-evict-replica-*.ice"))
	if err != nil || len(files) != 1 {
		t.Fatalf("proposal files %v %v", files, err)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	payload, sigs, err := widgets.ParseProposalFile(data)
	if err != nil || len(sigs) != 1 {
		t.Fatalf("proposal file: %d signatures, %v", len(sigs), err)
	}
	// Bob co-signs as `deck ice sign FILE` does: load the payload on his
	// own client, check it against the cluster, sign.
	bobClient, err := e.console.NewClient(identity.KeySigner{K: bob.key}, bob.name)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := bobClient.ICE().Load(e.ctx, payload)
	if err != nil {
		t.Fatal(err)
	}
	if a := sim.Action(); a.Verb != api.VerbForceEvictReplica || a.Chain != "inference" {
		t.Fatalf("the exported proposal is %+v", a)
	}
	bobSig, err := sim.Sign()
	if err != nil {
		t.Fatal(err)
	}
	e.p.Send(tea.PasteMsg{Content: widgets.FormatSignature(bobSig) + "\n"})
	e.waitFor("bob's co-signature counted", func(f string) bool { return strings.Contains(f, "signatures 2/2 · ready") })
	e.type_("\r")
	e.waitFor("the ICE commit", func(f string) bool { return strings.Contains(f, "committed force-evict-replica inference") })

	// AUDIT: the ICE record, accepted, with both signatures.
	e.type_("0")
	e.waitFor("the ICE record in AUDIT", func(f string) bool {
		for _, l := range strings.Split(f, "\n") {
			if strings.Contains(l, "accepted") && strings.Contains(l, "ICE force-evict-replica") && strings.Contains(l, "inference @") {
				return strings.HasPrefix(strings.TrimSpace(l), "▸") // newest first: the cursor is on it
			}
		}
		return false
	})
	e.type_("\r")
	e.waitFor("the ICE event page with two signatures", func(f string) bool {
		return strings.Contains(f, "SIGNATURES (2)") && strings.Contains(f, "alice") && strings.Contains(f, "bob")
	})
}
