package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deck-mesh/deck/demo/faultconn"
	"github.com/deck-mesh/deck/demo/workloads"
	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/node/transport"
)

// TestMain points the XDG dirs at a scratch dir, so no test reads the
// developer's own config.toml or operator keys, and closes the shared mesh.
// With cliChildEnv set it is the deck command line instead (deckProcess).
func TestMain(m *testing.M) {
	if os.Getenv(cliChildEnv) == "1" {
		// A test started this binary as `deck` itself (a real process,
		// real signals): run the command line and exit.
		os.Exit(Main(os.Args[1:], IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
	}
	scratch, err := os.MkdirTemp("", "deck-cli-test-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv(config.XDGConfigEnv, filepath.Join(scratch, "config"))
	os.Setenv(config.XDGDataEnv, filepath.Join(scratch, "data"))
	os.Setenv(config.XDGStateEnv, filepath.Join(scratch, "state"))
	os.Unsetenv(config.ClusterEnv)
	os.Unsetenv(identityEnv)
	code := m.Run()
	sharedMu.Lock()
	if shared != nil {
		shared.close()
	}
	sharedMu.Unlock()
	os.RemoveAll(scratch)
	os.Exit(code)
}

// testMesh is n real nodes on 127.0.0.1 running the demo workload, a cluster
// file naming them as bootstrap, and operator keys in operators/ beside it.
// Each node's socket is wrapped in the demo's fault wrapper (faults[i] is
// nodes[i]'s).
type testMesh struct {
	dir         string
	clusterPath string
	cluster     *config.Cluster
	nodes       []*node.Node
	faults      []*faultconn.Conn
	ops         map[string]*identity.Key
}

type meshOpts struct {
	// name is the cluster's name and its nodes' label prefix ("": cli-test,
	// nodes n1, n2, …).
	name           string
	nodes          int
	iceThreshold   int
	adminThreshold int      // 0: 1
	operators      []string // registered in the genesis
	strangers      []string // keys on disk, not registered
	// subnets, when set, puts node i in subnets[i]: the first node of each
	// subnet is its gateway, and nodes join through their subnet's first
	// (a gateway also through the first gateway). visibility is the
	// cluster file's [subnets.visibility].
	subnets    []string
	visibility map[string]string
}

func startMesh(t testing.TB, o meshOpts) *testMesh {
	t.Helper()
	m, err := newMesh(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.close)
	m.waitHealthy(t)
	return m
}

func newMesh(o meshOpts) (m *testMesh, err error) {
	dir, err := os.MkdirTemp("", "deck-cli-mesh-*")
	if err != nil {
		return nil, err
	}
	m = &testMesh{dir: dir, clusterPath: filepath.Join(dir, "cluster.toml"), ops: map[string]*identity.Key{}}
	defer func() {
		if err != nil {
			m.close()
		}
	}()
	store := &config.OperatorStore{Dir: filepath.Join(dir, "operators")}
	var genesis []config.Operator
	for _, name := range append(append([]string{}, o.operators...), o.strangers...) {
		k, err := store.Generate(name)
		if err != nil {
			return m, err
		}
		m.ops[name] = k
	}
	for _, name := range o.operators {
		genesis = append(genesis, config.NewOperator(name, m.ops[name].Public))
	}
	name, labelPrefix := "cli-test", ""
	if o.name != "" {
		name, labelPrefix = o.name, o.name+"-"
	}
	c, err := config.NewCluster(name, nil, genesis, max(o.adminThreshold, 1), o.iceThreshold)
	if err != nil {
		return m, err
	}
	c.Workload = config.WorkloadFromSpec(workloads.Spec())
	c.Subnets.Visibility = o.visibility
	spec, err := c.Spec()
	if err != nil {
		return m, err
	}
	for i := 0; i < o.nodes; i++ {
		// Each node is certified by the first operator, so it attests the
		// events it receives and consoles joining later accept them.
		key, err := identity.Generate()
		if err != nil {
			return m, err
		}
		opts := node.Options{
			Cluster: c, Key: key, DataDir: filepath.Join(dir, fmt.Sprintf("n%d", i+1)), Label: fmt.Sprintf("%sn%d", labelPrefix, i+1),
			Capabilities: workloads.NodeCapabilities(i, o.nodes), Spec: spec,
			Factories: workloads.Factories(), Version: "test", Bootstrap: []string{},
			CertifyWith: identity.KeySigner{K: m.ops[o.operators[0]]},
		}
		switch {
		case len(o.subnets) > 0:
			opts.Subnet = o.subnets[i]
			opts.Bootstrap = subnetBootstrap(m.nodes, o.subnets, i)
			if slices.Index(o.subnets, o.subnets[i]) == i {
				opts.Capabilities = append(opts.Capabilities, node.CapabilityGateway)
			}
		case i > 0:
			opts.Bootstrap = []string{m.nodes[0].Addr()}
		}
		udp, err := transport.ListenUDP("127.0.0.1:0")
		if err != nil {
			return m, err
		}
		fc := faultconn.New(udp)
		opts.Conn = fc
		nd, err := node.Start(context.Background(), opts)
		if err != nil {
			return m, err
		}
		m.nodes = append(m.nodes, nd)
		m.faults = append(m.faults, fc)
	}
	file := *c
	file.Bootstrap = nil
	for _, nd := range m.nodes {
		file.Bootstrap = append(file.Bootstrap, nd.Addr())
	}
	if err := config.WriteCluster(m.clusterPath, &file, false); err != nil {
		return m, err
	}
	m.cluster = &file
	return m, nil
}

// subnetBootstrap is where node i of a carved test mesh joins: its
// subnet's first node, and for a subnet's first node (its gateway) the
// first gateway started.
func subnetBootstrap(started []*node.Node, subnets []string, i int) []string {
	out := []string{}
	if first := slices.Index(subnets, subnets[i]); first < i {
		out = append(out, started[first].Addr())
	} else if i > 0 {
		out = append(out, started[0].Addr())
	}
	return out
}

func (m *testMesh) close() {
	for _, nd := range m.nodes {
		nd.Close()
	}
	os.RemoveAll(m.dir)
}

// waitHealthy waits until every node sees every other node (of its subnet)
// healthy with a snapshot, and every node runs its daemons.
func (m *testMesh) waitHealthy(t testing.TB) {
	t.Helper()
	waitFor(t, "mesh healthy", 60*time.Second, func() bool {
		for _, nd := range m.nodes {
			cs := nd.Cluster()
			ok := 0
			for _, nv := range cs.Nodes {
				if !nv.Observer && nv.Health == snapshot.Healthy && !nv.Stale && !nv.BuiltAt.IsZero() {
					ok++
				}
			}
			want := 0 // a carved mesh's node sees its own subnet
			for _, other := range m.nodes {
				if other.Subnet() == nd.Subnet() {
					want++
				}
			}
			if ok < want {
				return false
			}
		}
		return true
	})
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", timeout, what)
}

var (
	sharedMu sync.Mutex
	shared   *testMesh
)

// sharedMesh is one 3-node mesh (ICE threshold 1, operator alice, stranger
// mallory) that read-mostly tests share. Tests that change cluster-wide
// state (freeze) use their own.
func sharedMesh(t testing.TB) *testMesh {
	t.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil {
		m, err := newMesh(meshOpts{nodes: 3, iceThreshold: 1, operators: []string{"alice"}, strangers: []string{"mallory"}})
		if err != nil {
			t.Fatal(err)
		}
		shared = m
	}
	shared.waitHealthy(t)
	return shared
}

// result is one CLI run.
type result struct {
	code     int
	out, err string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.out, r.err)
}

// deck runs the CLI in-process against m's cluster file.
func (m *testMesh) deck(t testing.TB, args ...string) result {
	t.Helper()
	return m.deckIO(t, IO{In: strings.NewReader("")}, args...)
}

func (m *testMesh) deckIO(t testing.TB, stdio IO, args ...string) result {
	t.Helper()
	if m != nil {
		args = append([]string{"--cluster", m.clusterPath}, args...)
	}
	return run(t, stdio, args...)
}

func run(t testing.TB, stdio IO, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	stdio.Out, stdio.Err = &out, &errb
	if stdio.In == nil {
		stdio.In = strings.NewReader("")
	}
	start := time.Now()
	code := Main(args, stdio)
	t.Logf("deck %s → exit %d in %v", strings.Join(args, " "), code, time.Since(start).Round(time.Millisecond))
	return result{code: code, out: out.String(), err: errb.String()}
}
