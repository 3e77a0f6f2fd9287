package hosttest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/meshos"
	"github.com/deck-mesh/deck/node/nodetest"
	"github.com/deck-mesh/deck/node/snapshot"
)

// unavailable is why the lab cannot run here ("" when it can); binDir
// holds the deck binary built once for every test.
var unavailable, binDir string

func TestMain(m *testing.M) {
	code := func() int {
		if err := Available(); err != nil {
			unavailable = err.Error()
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "deck-hosttest-*")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "deck"), "github.com/deck-mesh/deck/cmd/deck").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "hosttest: building deck: %v\n%s", err, out)
			return 1
		}
		binDir = dir
		return m.Run()
	}()
	os.Exit(code)
}

func needLab(t *testing.T) {
	t.Helper()
	if unavailable != "" {
		t.Skipf("no network namespaces here: %s", unavailable)
	}
}

// cliTimeout bounds one command on a host: a console joins within 10 s,
// and the machine may be busy.
const cliTimeout = 60 * time.Second

// sh runs a shell line on h with the deck binary first in PATH: README
// lines run as a user would type them.
func sh(t *testing.T, h *Host, line string) Result {
	t.Helper()
	return h.Run(cliTimeout, "env", "PATH="+binDir+":"+os.Getenv("PATH"), "sh", "-c", line)
}

// ok runs a line that must succeed and returns its output.
func ok(t *testing.T, h *Host, line string) string {
	t.Helper()
	r := sh(t, h, line)
	if r.Code != 0 {
		t.Fatalf("%s: %s: exit %d\n%s%s", h.Name, line, r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// readme is the README's "Several machines" commands, one per line,
// continuations joined and comments cut.
func readmeCommands(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, sec, found := strings.Cut(string(b), "\n## Several machines\n")
	if !found {
		t.Fatal(`README.md has no "## Several machines" section`)
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	cmds := map[string]bool{}
	in, cont := false, ""
	for _, line := range strings.Split(sec, "\n") {
		switch {
		case strings.HasPrefix(line, "```"):
			in = !in
			continue
		case !in:
			continue
		}
		if i := strings.Index(line, "  #"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if c, more := strings.CutSuffix(line, "\\"); more {
			cont += c + " "
			continue
		}
		cmds[strings.Join(strings.Fields(cont+line), " ")] = true
		cont = ""
	}
	return cmds
}

// readmeLine returns line after checking the README shows it as is.
func readmeLine(t *testing.T, cmds map[string]bool, line string) string {
	t.Helper()
	if !cmds[line] {
		t.Fatalf("README.md's Several machines does not show %q (keep the test and the README in step)", line)
	}
	return line
}

// TestSeveralHosts follows the README's "Several machines" on a lab of
// three hosts and a laptop on one segment, and a second segment behind
// host1, then breaks the network under the mesh: a blackholed path
// (reroute), a link down (Suspect, then Unreachable, then back), a host
// detached from its switch, a host's processes killed (re-placement), and
// checks that a console on the far segment is served throughout. An
// in-process console node on the laptop (the watcher) sees what the
// laptop's deck sees, continuously.
func TestSeveralHosts(t *testing.T) {
	needLab(t)
	readme := readmeCommands(t)
	lab := New(t)
	segA, segB := lab.Switch("a"), lab.Switch("b")
	hosts := map[string]*Host{}
	links := map[string]*Link{}
	for i, name := range []string{"host1", "host2", "host3"} {
		h := lab.Host(name)
		hosts[name] = h
		links[name] = segA.Plug(h, "eth0", fmt.Sprintf("10.77.0.%d/24", i+1), fmt.Sprintf("fd00:77::%d/64", i+1))
	}
	segB.Plug(hosts["host1"], "eth1", "10.78.0.1/24", "fd00:78::1/64")
	lap := lab.Host("laptop")
	segA.Plug(lap, "eth0", "10.77.0.10/24", "fd00:77::10/64")
	far := lab.Host("far")
	segB.Plug(far, "eth0", "10.78.0.10/24", "fd00:78::10/64")
	far.Dir = lap.Dir // the laptop, moved to the far segment

	// The laptop: key, cluster file, certificates for host1 and host2.
	ok(t, lap, readmeLine(t, readme, "deck identity generate alice"))
	ok(t, lap, readmeLine(t, readme, "deck node init --cluster lab --out lab.toml --bootstrap 10.77.0.1:7946,10.78.0.1:7946 --operator ~/.config/deck/operators/alice.pub --demo-workload"))
	readmeLine(t, readme, "export DECK_CLUSTER=$PWD/lab.toml DECK_IDENTITY=alice")
	lap.Env = []string{"DECK_CLUSTER=" + filepath.Join(lap.Dir, "lab.toml"), "DECK_IDENTITY=alice"}
	far.Env = lap.Env
	ok(t, lap, readmeLine(t, readme, "deck node certify --data host1"))
	ok(t, lap, readmeLine(t, readme, "deck node certify --data host2"))
	// scp -p lab.toml hostN: && scp -rp hostN hostN:deck-data
	readmeLine(t, readme, "scp -p lab.toml host1: && scp -rp host1 host1:deck-data")
	for _, name := range []string{"host1", "host2", "host3"} {
		ok(t, lap, fmt.Sprintf("cp -p lab.toml %s/", hosts[name].Dir))
		if name != "host3" {
			ok(t, lap, fmt.Sprintf("cp -rp %s %s/deck-data", name, hosts[name].Dir))
		}
	}

	// Each host runs its node.
	run := readmeLine(t, readme, "deck node run --cluster lab.toml --listen 0.0.0.0:7946 --data deck-data --label host1 --capabilities gpu,edge,datafort")
	ids := map[string]identity.NodeID{}
	for _, name := range []string{"host1", "host2", "host3"} {
		startNode(t, hosts[name], strings.Replace(run, "--label host1", "--label "+name, 1))
	}
	for _, name := range []string{"host1", "host2", "host3"} {
		ids[name] = nodeID(t, hosts[name])
	}

	// host3 is pending; the laptop admits it.
	pending := readmeLine(t, readme, "deck node pending")
	nodetest.Eventually(t, "host3 listed pending on the laptop", func() bool {
		r := sh(t, lap, pending)
		return r.Code == 0 && strings.Contains(r.Stdout, ids["host3"].String())
	})
	admit := readmeLine(t, readme, "deck node admit 0x… --yes")
	ok(t, lap, strings.Replace(admit, "0x…", ids["host3"].String(), 1))

	// The watcher: a console node in the laptop's namespace, in this
	// process, certified by alice.
	w := startWatcher(t, lap)
	byLabel := func(cs *snapshot.ClusterSnapshot, label string) *snapshot.NodeView { return cs.Node(ids[label]) }
	for _, name := range []string{"host1", "host2", "host3"} {
		nodetest.Eventually(t, name+" healthy at the watcher", func() bool {
			nv := byLabel(w.Cluster(), name)
			return nv != nil && nv.Health == snapshot.Healthy && !nv.Stale
		})
	}

	t.Run("status from the laptop", func(t *testing.T) {
		ok(t, lap, readmeLine(t, readme, "deck status"))
		statusHealthy(t, lap, ids, map[string]string{
			"host1": "10.77.0.1:7946", "host2": "10.77.0.2:7946", "host3": "10.77.0.3:7946",
		})
	})
	t.Run("status from host2", func(t *testing.T) {
		// A console on a host that is not the bootstrap's, with the
		// operator's key there.
		ok(t, lap, fmt.Sprintf("cp -rp .config %s/", hosts["host2"].Dir))
		hosts["host2"].Env = []string{"DECK_CLUSTER=" + filepath.Join(hosts["host2"].Dir, "lab.toml"), "DECK_IDENTITY=alice"}
		statusHealthy(t, hosts["host2"], ids, nil)
	})
	placed := waitPlaced(t, w, ids, nil)

	t.Run("console behind the gateway", func(t *testing.T) {
		ok(t, far, readmeLine(t, readme, "deck status"))
		statusHealthy(t, far, ids, nil)
		logs := ok(t, far, readmeLine(t, readme, "deck logs --node host2"))
		if !strings.Contains(logs, "host2") {
			t.Fatalf("no log record of host2 reached the far console:\n%s", logs)
		}
		ok(t, far, readmeLine(t, readme, "deck admin cordon --node host3 --yes"))
		nodetest.Eventually(t, "host3 applies the cordon from behind the gateway", func() bool {
			nv := byLabel(w.Cluster(), "host3")
			return nv != nil && nv.Cordoned
		})
		audit := ok(t, far, readmeLine(t, readme, "deck audit --recent 5"))
		if !strings.Contains(audit, "cordon") {
			t.Fatalf("the far console's audit lacks the cordon:\n%s", audit)
		}
		ok(t, far, "deck admin uncordon --node host3 --yes")
		nodetest.Eventually(t, "host3 uncordoned", func() bool {
			nv := byLabel(w.Cluster(), "host3")
			return nv != nil && !nv.Cordoned
		})
	})

	t.Run("blackholed path reroutes", func(t *testing.T) {
		h1, h2 := hosts["host1"], hosts["host2"]
		h1.Blackhole("10.77.0.2/32", true)
		h2.Blackhole("10.77.0.1/32", true)
		nodetest.Eventually(t, "host1 and host2 reach each other through host3", func() bool {
			cs := w.Cluster()
			return relayedHealthy(byLabel(cs, "host1"), ids["host2"]) && relayedHealthy(byLabel(cs, "host2"), ids["host1"])
		})
		h1.Blackhole("10.77.0.2/32", false)
		h2.Blackhole("10.77.0.1/32", false)
		nodetest.Eventually(t, "host1 and host2 direct again", func() bool {
			pv := peerView(byLabel(w.Cluster(), "host1"), ids["host2"])
			return pv != nil && pv.Direct && pv.Health == snapshot.Healthy
		})
	})

	t.Run("link down", func(t *testing.T) {
		links["host2"].SetUp(false)
		sawSuspect := false
		nodetest.Eventually(t, "host2 Suspect, then Unreachable", func() bool {
			nv := byLabel(w.Cluster(), "host2")
			sawSuspect = sawSuspect || (nv != nil && nv.Health == snapshot.Suspect)
			return sawSuspect && nv != nil && nv.Health == snapshot.Unreachable
		})
		links["host2"].SetUp(true)
		nodetest.Eventually(t, "host2 healthy again", func() bool {
			nv := byLabel(w.Cluster(), "host2")
			return nv != nil && nv.Health == snapshot.Healthy
		})
	})

	t.Run("host detached from the switch", func(t *testing.T) {
		links["host3"].Attach(false)
		nodetest.Eventually(t, "host3 Unreachable", func() bool {
			nv := byLabel(w.Cluster(), "host3")
			return nv != nil && nv.Health == snapshot.Unreachable
		})
		links["host3"].Attach(true)
		nodetest.Eventually(t, "host3 healthy again", func() bool {
			nv := byLabel(w.Cluster(), "host3")
			return nv != nil && nv.Health == snapshot.Healthy
		})
		placed = waitPlaced(t, w, ids, nil)
	})

	t.Run("host killed, its daemons placed elsewhere", func(t *testing.T) {
		victim := "host3"
		if countOn(placed, ids["host3"]) == 0 {
			victim = "host2"
		}
		hosts[victim].Kill(syscall.SIGKILL)
		nodetest.Eventually(t, victim+" Unreachable", func() bool {
			nv := byLabel(w.Cluster(), victim)
			return nv != nil && nv.Health == snapshot.Unreachable
		})
		after := waitPlaced(t, w, ids, map[identity.NodeID]bool{ids[victim]: true})
		t.Logf("%d daemons, %d of them were on %s", len(after), countOn(placed, ids[victim]), victim)
		// The far console is still served, and sees it too.
		statusShows(t, far, victim+" unreachable, the others healthy", func(label, health, _ string) bool {
			if label == victim {
				return health == "unreachable"
			}
			return health == "healthy"
		}, 2)
	})

	t.Run("every ledger holds the far console's commits", func(t *testing.T) {
		want := w.Cluster().AdminHead.Count
		for _, name := range []string{"host1", "host2", "host3"} {
			h := hosts[name]
			h.Kill(syscall.SIGTERM)
			out := ok(t, h, "deck audit --cluster lab.toml --verify --data deck-data")
			if !strings.Contains(out, fmt.Sprintf(": %d events verified", want)) {
				t.Errorf("%s's ledger: %s (want %d events: admit, cordon, uncordon)", name, strings.TrimSpace(out), want)
			}
		}
	})
}

// TestSeveralHostsIPv6 runs a cluster over IPv6 only: nodes on [::]:7946,
// the bootstrap an fd00:: address, the console on the laptop.
func TestSeveralHostsIPv6(t *testing.T) {
	needLab(t)
	lab := New(t)
	seg := lab.Switch("a")
	lap := lab.Host("laptop")
	seg.Plug(lap, "eth0", "fd00:77::10/64")
	var hosts []*Host
	for i := 1; i <= 2; i++ {
		h := lab.Host(fmt.Sprintf("host%d", i))
		seg.Plug(h, "eth0", fmt.Sprintf("fd00:77::%d/64", i))
		hosts = append(hosts, h)
	}
	ok(t, lap, "deck identity generate alice")
	ok(t, lap, "deck node init --cluster lab --out lab.toml --bootstrap '[fd00:77::1]:7946' --operator ~/.config/deck/operators/alice.pub")
	lap.Env = []string{"DECK_CLUSTER=" + filepath.Join(lap.Dir, "lab.toml"), "DECK_IDENTITY=alice"}
	ids := map[string]identity.NodeID{}
	for _, h := range hosts {
		ok(t, lap, "deck node certify --data "+h.Name)
		ok(t, lap, fmt.Sprintf("cp -p lab.toml %s/ && cp -rp %s %s/deck-data", h.Dir, h.Name, h.Dir))
		startNode(t, h, "deck node run --cluster lab.toml --listen [::]:7946 --data deck-data --label "+h.Name)
		ids[h.Name] = nodeID(t, h)
	}
	statusHealthy(t, lap, ids, map[string]string{"host1": "[fd00:77::1]:7946", "host2": "[fd00:77::2]:7946"})
}

// startNode starts a `deck node run` line on h.
func startNode(t *testing.T, h *Host, line string) {
	t.Helper()
	h.Start("node.log", "env", "PATH="+binDir+":"+os.Getenv("PATH"), "sh", "-c", "exec "+line)
}

// startLine is the node's "node listening" log record (slog's text format).
var startLine = regexp.MustCompile(`msg="node listening" node=(0x[0-9a-f]{16})`)

// nodeID waits for h's node to print its start-up line and returns its id.
func nodeID(t *testing.T, h *Host) identity.NodeID {
	t.Helper()
	var id identity.NodeID
	nodetest.Eventually(t, h.Name+"'s node to start", func() bool {
		b, _ := os.ReadFile(filepath.Join(h.Dir, "node.log"))
		m := startLine.FindSubmatch(b)
		if m == nil {
			return false
		}
		var err error
		id, err = identity.ParseNodeID(string(m[1]))
		return err == nil
	})
	return id
}

// statusDoc is the part of `deck status --output json` the tests read.
type statusDoc struct {
	Nodes []struct {
		ID       string `json:"id_hex"`
		Label    string `json:"label"`
		Addr     string `json:"addr"`
		Health   string `json:"health"`
		Observer bool   `json:"observer"`
	} `json:"nodes"`
}

// statusJSONOf runs `deck status --output json` on h; false when it
// failed (a console that could not join yet), logged.
func statusJSONOf(t *testing.T, h *Host, doc *statusDoc) bool {
	t.Helper()
	r := sh(t, h, "deck status --output json")
	if r.Code != 0 {
		t.Logf("%s: deck status: exit %d: %s", h.Name, r.Code, strings.TrimSpace(r.Stderr))
		return false
	}
	if err := json.Unmarshal([]byte(r.Stdout), doc); err != nil {
		t.Fatalf("%s: status JSON: %v\n%s", h.Name, err, r.Stdout)
	}
	return true
}

// statusHealthy waits until `deck status` on h shows every node of ids
// Healthy (and, when addrs is set, at those addresses).
func statusHealthy(t *testing.T, h *Host, ids map[string]identity.NodeID, addrs map[string]string) {
	t.Helper()
	statusShows(t, h, "every node healthy", func(label, health, addr string) bool {
		if _, member := ids[label]; !member {
			return true
		}
		return health == "healthy" && (addrs == nil || addr == addrs[label])
	}, len(ids))
}

// statusShows waits until `deck status` on h lists at least n nodes every
// one of which satisfies ok, and logs what it saw last.
func statusShows(t *testing.T, h *Host, what string, ok func(label, health, addr string) bool, n int) {
	t.Helper()
	var last statusDoc
	nodetest.Eventually(t, what+" in `deck status` on "+h.Name, func() bool {
		var doc statusDoc
		if !statusJSONOf(t, h, &doc) {
			return false
		}
		last = doc
		seen := 0
		for _, nd := range doc.Nodes {
			if nd.Observer {
				continue
			}
			if !ok(nd.Label, nd.Health, nd.Addr) {
				return false
			}
			seen++
		}
		return seen >= n
	})
	t.Logf("%s sees %+v", h.Name, last.Nodes)
}

// startWatcher starts a console node in this process with its socket in
// h's namespace, certified by h's operator key alice.
func startWatcher(t *testing.T, h *Host) *node.Node {
	t.Helper()
	c, _, err := config.LoadCluster(filepath.Join(h.Dir, "lab.toml"))
	if err != nil {
		t.Fatal(err)
	}
	op, err := identity.LoadKey(filepath.Join(h.Dir, ".config", "deck", "operators", "alice.key"))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := c.Spec()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := h.ListenUDP(node.DefaultListenAddr(c.Bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	nd, err := node.Start(context.Background(), node.Options{
		Cluster: c, Observer: true, Label: "watcher", Conn: conn, Spec: spec, Version: "hosttest",
		CertifyWith: identity.KeySigner{K: op},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nd.Close() })
	return nd
}

// waitPlaced waits until every daemon of the spec runs on a live node not
// in avoid, as the watcher sees it, and returns daemon → node.
func waitPlaced(t *testing.T, w *node.Node, ids map[string]identity.NodeID, avoid map[identity.NodeID]bool) map[string]identity.NodeID {
	t.Helper()
	want := map[string]bool{}
	for _, g := range w.Spec().Groups {
		n := g.Members
		if g.Kind == snapshot.GroupSolo {
			n = 1
		}
		for i := range n {
			want[meshos.DaemonID(g.Name, i)] = true
		}
	}
	var where map[string]identity.NodeID
	nodetest.Eventually(t, "every daemon placed on a live node", func() bool {
		where = map[string]identity.NodeID{}
		for _, nv := range w.Cluster().Nodes {
			if nv.Observer || nv.Stale || nv.Health != snapshot.Healthy || avoid[nv.ID] {
				continue
			}
			for _, d := range nv.Daemons {
				if d.Lifecycle == snapshot.LifecycleRunning {
					where[d.ID] = nv.ID
				}
			}
		}
		for id := range want {
			if _, ok := where[id]; !ok {
				return false
			}
		}
		return true
	})
	return where
}

func countOn(where map[string]identity.NodeID, id identity.NodeID) int {
	n := 0
	for _, on := range where {
		if on == id {
			n++
		}
	}
	return n
}

// peerView is how nv's node sees peer, in its own snapshot.
func peerView(nv *snapshot.NodeView, peer identity.NodeID) *snapshot.PeerView {
	if nv == nil {
		return nil
	}
	for i := range nv.Peers {
		if nv.Peers[i].Peer == peer {
			return &nv.Peers[i]
		}
	}
	return nil
}

// relayedHealthy: nv's node reaches peer, Healthy, through a relay.
func relayedHealthy(nv *snapshot.NodeView, peer identity.NodeID) bool {
	pv := peerView(nv, peer)
	return pv != nil && !pv.Direct && pv.Health == snapshot.Healthy
}
