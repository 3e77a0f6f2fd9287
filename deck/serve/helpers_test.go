package serve

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	gossh "golang.org/x/crypto/ssh"

	"github.com/deck-mesh/deck/deck/serve/servetest"
	"github.com/deck-mesh/deck/demo/workloads"
	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/nodetest"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Generous bounds: a loaded 2-core machine runs these with a real mesh.
const (
	meshTimeout = 60 * time.Second
	termTimeout = 60 * time.Second
)

// testMesh is n real nodes on loopback sharing one cluster whose genesis
// registers alice as an operator.
type testMesh struct {
	cluster *config.Cluster
	alice   *identity.Key
	nodes   []*node.Node
}

func startMesh(t testing.TB, n int) *testMesh {
	t.Helper()
	alice, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := config.NewCluster("serve-test", nil, []config.Operator{config.NewOperator("alice", alice.Public)}, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	m := &testMesh{cluster: cl, alice: alice}
	for i := 0; i < n; i++ {
		key, err := identity.Generate()
		if err != nil {
			t.Fatal(err)
		}
		opts := node.Options{
			Cluster: cl, Key: key, DataDir: t.TempDir(), Label: fmt.Sprintf("n%d", i+1),
			Capabilities: workloads.NodeCapabilities(i, n), Spec: workloads.Spec(),
			Factories: workloads.Factories(), Version: "test",
			CertifyWith: identity.KeySigner{K: alice},
		}
		if i > 0 {
			opts.Bootstrap = []string{m.nodes[0].Addr()}
		}
		nd, err := node.Start(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nd.Close() })
		m.nodes = append(m.nodes, nd)
	}
	for _, nd := range m.nodes {
		nodetest.Eventually(t, "every node healthy", func() bool { return healthy(nd.Cluster()) == n })
	}
	return m
}

func healthy(cs *snapshot.ClusterSnapshot) int {
	c := 0
	for _, nv := range cs.Nodes {
		if nv.Health == snapshot.Healthy && !nv.Stale && !nv.Observer {
			c++
		}
	}
	return c
}

// startServer serves consoles on nd at 127.0.0.1:0.
func startServer(t testing.TB, nd *node.Node, cfg Config) (*Server, string) {
	t.Helper()
	hk, _, err := LoadOrCreateHostKey(filepath.Join(t.TempDir(), HostKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Node, cfg.HostKey = nd, hk
	if cfg.Version == "" {
		cfg.Version = "test"
	}
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return srv, ln.Addr().String()
}

// sshKey is a client key pair with its OpenSSH private key file.
type sshKey struct {
	priv ed25519.PrivateKey
	pub  gossh.PublicKey
	path string
}

func newSSHKey(t testing.TB, dir, name string, priv ed25519.PrivateKey) *sshKey {
	t.Helper()
	if priv == nil {
		var err error
		if _, priv, err = ed25519.GenerateKey(nil); err != nil {
			t.Fatal(err)
		}
	}
	pub, err := gossh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	blk, err := gossh.MarshalPrivateKey(priv, name)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".pub", gossh.MarshalAuthorizedKey(pub), 0o644); err != nil {
		t.Fatal(err)
	}
	return &sshKey{priv: priv, pub: pub, path: path}
}

func (k *sshKey) signer(t testing.TB) gossh.Signer {
	s, err := gossh.NewSignerFromKey(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writeAuthorizedKeys(t testing.TB, keys ...*sshKey) string {
	t.Helper()
	var b bytes.Buffer
	for i, k := range keys {
		b.WriteString(strings.TrimSpace(string(gossh.MarshalAuthorizedKey(k.pub))))
		fmt.Fprintf(&b, " key%d\n", i)
	}
	path := filepath.Join(t.TempDir(), "authorized_keys")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func needTool(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("%s is not on PATH (apt-get install -y openssh-client): skipping the real-OpenSSH test", n)
		}
	}
}

// sshTerm is a real OpenSSH client in a pty.
type sshTerm struct {
	t    testing.TB
	cmd  *exec.Cmd
	f    *os.File
	mu   sync.Mutex
	out  bytes.Buffer
	read chan struct{} // closed when the pty reader stops
	exit chan error    // the process's Wait result
}

// sshArgs are the client options every test uses: no user config, no host
// key memory, this key only.
func sshArgs(addr, keyPath string, extra ...string) []string {
	host, port, _ := net.SplitHostPort(addr)
	args := []string{"-F", "/dev/null", "-i", keyPath, "-o", "IdentitiesOnly=yes",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-p", port}
	args = append(args, extra...)
	return append(args, "deck@"+host)
}

func startSSH(t testing.TB, env []string, cols, rows uint16, args ...string) *sshTerm {
	t.Helper()
	cmd := exec.Command("ssh", args...)
	cmd.Env = append([]string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"), "TERM=xterm-256color"}, env...)
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: cols, Rows: rows})
	if err != nil {
		t.Fatal(err)
	}
	st := &sshTerm{t: t, cmd: cmd, f: f, read: make(chan struct{}), exit: make(chan error, 1)}
	go func() {
		defer close(st.read)
		buf := make([]byte, 32<<10)
		for {
			n, err := f.Read(buf)
			if n > 0 {
				st.mu.Lock()
				st.out.Write(buf[:n])
				st.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	go func() { st.exit <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-st.exit:
		default:
			cmd.Process.Kill()
			<-st.exit
		}
		f.Close()
		<-st.read
	})
	return st
}

// text is everything the client printed so far, escape sequences removed.
func (s *sshTerm) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return servetest.StripANSI(s.out.Bytes())
}

func (s *sshTerm) mark() int { return len(s.text()) }

// waitText waits until the output after mark contains want.
func (s *sshTerm) waitText(mark int, want string) {
	s.t.Helper()
	deadline := time.Now().Add(termTimeout)
	for time.Now().Before(deadline) {
		txt := s.text()
		if mark > len(txt) {
			mark = len(txt)
		}
		if strings.Contains(txt[mark:], want) {
			return
		}
		select {
		case <-s.read:
			if !strings.Contains(s.text()[mark:], want) {
				s.t.Fatalf("ssh ended before printing %q; output:\n%s", want, tail(s.text(), 3000))
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	s.t.Fatalf("timed out waiting for %q; output:\n%s", want, s.text()[:min(len(s.text()), 6000)])
}

func (s *sshTerm) send(keys string) {
	s.t.Helper()
	if _, err := s.f.Write([]byte(keys)); err != nil {
		s.t.Fatalf("send %q: %v", keys, err)
	}
}

// wait waits for the ssh process to exit and returns its exit code.
func (s *sshTerm) wait() int {
	s.t.Helper()
	select {
	case err := <-s.exit:
		s.exit <- err // for Cleanup
		// The child has exited; let the reader drain what it printed last
		// (the pty reports EOF once the slave side is closed).
		select {
		case <-s.read:
		case <-time.After(2 * time.Second):
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			s.t.Fatalf("ssh: %v", err)
		}
		return 0
	case <-time.After(termTimeout):
		s.t.Fatalf("ssh did not exit; output:\n%s", tail(s.text(), 3000))
	}
	return -1
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// consoleStackMarkers are the functions a console's goroutines run (or
// were created by): the session handler and its program, the deck and its
// pumps, the node-side subscriptions a console opens (the snapshot watch,
// the audit stream, the log and failure subscriptions and the leases they
// hold on every node of the in-process mesh), the SSH session's own request
// loop and the discarders of forwarded-agent channels. A console must leave
// none of them behind.
var consoleStackMarkers = []string{
	"charm.land/bubbletea",
	"charm.land/wish/",
	"charm.land/ssh.DefaultSessionHandler",
	"charm.land/ssh.(*session)",
	"golang.org/x/crypto/ssh.DiscardRequests",
	"github.com/deck-mesh/deck/deck.",
	"github.com/deck-mesh/deck/deck/serve.",
	"github.com/deck-mesh/deck/node.(*publisher).watch",
	"github.com/deck-mesh/deck/node.(*auditQuery).Stream",
	"github.com/deck-mesh/deck/node/chain.(*SubscriptionService).startSub",
	"github.com/deck-mesh/deck/node/chain.(*SubscriptionService).runLease",
	"github.com/deck-mesh/deck/node/chain.(*clientSub)",
}

// goroutineStacks is every goroutine's stack, by goroutine id.
func goroutineStacks() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		// "goroutine 42 [select]:"
		if f := strings.Fields(g); len(f) > 1 && f[0] == "goroutine" {
			out[f[1]] = g
		}
	}
	return out
}

// leakedConsoleGoroutines are the goroutines started since before (a
// goroutineStacks snapshot) that run console code: the mesh's and the
// server's own goroutines, running before the session, are not counted.
func leakedConsoleGoroutines(before map[string]string) []string {
	var leaked []string
	for id, g := range goroutineStacks() {
		if _, old := before[id]; old {
			continue
		}
		for _, m := range consoleStackMarkers {
			if strings.Contains(g, m) {
				leaked = append(leaked, g)
				break
			}
		}
	}
	return leaked
}

// noConsoleGoroutines waits until no console runs on srv and no goroutine
// started since before (a goroutineStacks snapshot taken before the
// sessions began) runs console code, deck-side or node-side.
func noConsoleGoroutines(t testing.TB, srv *Server, before map[string]string) {
	t.Helper()
	var leaked []string
	nodetest.Eventually(t, "no console and no console goroutine to run", func() bool {
		leaked = leakedConsoleGoroutines(before)
		return srv.Sessions() == 0 && len(leaked) == 0
	}, func() string {
		return fmt.Sprintf("%d consoles and %d console goroutines still run:\n\n%s",
			srv.Sessions(), len(leaked), strings.Join(leaked, "\n\n"))
	})
}
