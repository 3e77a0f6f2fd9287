package serve

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	gossh "golang.org/x/crypto/ssh"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/nodetest"
	"github.com/deck-mesh/deck/node/snapshot"
)

func execLookSSH() (string, error) { return exec.LookPath("ssh") }

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

func setSize(term *sshTerm, cols, rows uint16) error {
	return pty.Setsize(term.f, &pty.Winsize{Cols: cols, Rows: rows})
}

// startAgent runs a real ssh-agent on a socket in dir holding keys.
func startAgent(t testing.TB, dir string, keys ...*sshKey) string {
	t.Helper()
	needTool(t, "ssh-agent", "ssh-add")
	// Unix socket paths are short (108 bytes): keep it out of deep temp dirs.
	sockDir, err := os.MkdirTemp("", "deck-agent")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "agent.sock")
	cmd := exec.Command("ssh-agent", "-D", "-a", sock)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	nodetest.Eventually(t, "ssh-agent socket", func() bool { _, err := os.Stat(sock); return err == nil })
	for _, k := range keys {
		add := exec.Command("ssh-add", k.path)
		add.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "SSH_AUTH_SOCK=" + sock}
		if out, err := add.CombinedOutput(); err != nil {
			t.Fatalf("ssh-add: %v: %s", err, out)
		}
	}
	return sock
}

// TestAgentSignerAgainstRealAgent: the signature comes back from OpenSSH's
// ssh-agent, is a raw ed25519 signature over the message, and verifies as
// the operator's in the node's identity check.
func TestAgentSignerAgainstRealAgent(t *testing.T) {
	dir := t.TempDir()
	op, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	key := newSSHKey(t, dir, "op", op.Private)
	sock := startAgent(t, dir, key)

	s, err := NewAgentSigner(SocketAgent(sock), key.pub)
	if err != nil {
		t.Fatal(err)
	}
	if s.SignerID() != op.ID {
		t.Fatalf("SignerID %s, want %s", s.SignerID(), op.ID)
	}
	if !s.PublicKey().Equal(op.Public) {
		t.Fatal("PublicKey differs from the operator key")
	}
	for _, msg := range [][]byte{[]byte("net-deck-ice:payload"), {}, make([]byte, 64<<10)} {
		sig, err := s.Sign(msg)
		if err != nil {
			t.Fatalf("sign %d bytes: %v", len(msg), err)
		}
		if !ed25519.Verify(op.Public, msg, sig) {
			t.Fatal("agent signature does not verify")
		}
		if err := identity.Verify(op.ID, op.Public, msg, sig); err != nil {
			t.Fatalf("identity.Verify: %v", err)
		}
		// Deterministic ed25519: the agent's signature is the local key's.
		if want := op.Sign(msg); string(want) != string(sig) {
			t.Fatal("agent signature differs from the local key's")
		}
	}
}

func TestAgentSignerRefusals(t *testing.T) {
	dir := t.TempDir()
	held := newSSHKey(t, dir, "held", nil)
	missing := newSSHKey(t, dir, "missing", nil)
	sock := startAgent(t, dir, held)

	if _, err := NewAgentSigner(SocketAgent(sock), missing.pub); !errors.Is(err, ErrAgentKeyMissing) {
		t.Fatalf("key not in agent: err = %v", err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rpub, err := gossh.NewPublicKey(&rk.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewAgentSigner(SocketAgent(sock), rpub); !errors.Is(err, ErrNotEd25519) {
		t.Fatalf("rsa key: err = %v", err)
	}
	if _, err := NewAgentSigner(SocketAgent(filepath.Join(dir, "nope.sock")), held.pub); err == nil {
		t.Fatal("dead agent socket accepted")
	}
	// The agent goes away after the session started: signing fails cleanly.
	s, err := NewAgentSigner(SocketAgent(sock), held.pub)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(sock)
	if _, err := s.Sign([]byte("x")); err == nil {
		t.Fatal("signed without an agent")
	}
}

// TestAgentSignedDrainCommits: a console whose signer is a real ssh-agent
// holding alice's key drains a node, and every node of the mesh verifies
// and applies it.
func TestAgentSignedDrainCommits(t *testing.T) {
	m := startMesh(t, 3)
	dir := t.TempDir()
	alice := newSSHKey(t, dir, "alice", m.alice.Private)
	srv, _ := startServer(t, m.nodes[0], Config{})
	c, err := srv.Console(alice.pub, SocketAgent(startAgent(t, dir, alice)))
	if err != nil {
		t.Fatal(err)
	}
	if c.Signer == nil {
		t.Fatalf("operator console is read-only: %s", c.ReadOnlyReason)
	}
	if info, ok, why := c.Operator(); !ok || info.Name != "alice" {
		t.Fatalf("Operator() = %+v %v %q", info, ok, why)
	}
	drainAndVerify(t, m, c, m.nodes[2].ID())
}

// drainAndVerify drains target through c and waits until every node shows
// it draining (or drained) and has alice's accepted drain in its audit.
func drainAndVerify(t *testing.T, m *testMesh, c api.Client, target api.NodeID) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Admin().Drain(ctx, target, 10*time.Minute); err != nil {
		t.Fatalf("drain: %v", err)
	}
	waitDrainEverywhere(t, m, target)
}

func waitDrainEverywhere(t *testing.T, m *testMesh, target api.NodeID) {
	t.Helper()
	for _, nd := range m.nodes {
		nodetest.Eventually(t, "the drain applied on node "+nd.ID().String(), func() bool {
			nv := nd.Cluster().Node(target)
			return nv != nil && nv.Maintenance.State != snapshot.MaintActive
		})
		cl, err := nd.NewClient(nil, "")
		if err != nil {
			t.Fatal(err)
		}
		nodetest.Eventually(t, "the drain in node "+nd.ID().String()+"'s audit", func() bool {
			recs, err := cl.Audit().Collect(context.Background())
			if err != nil {
				return false
			}
			for _, r := range recs {
				if r.Action.Verb == api.VerbDrain && r.Action.Node == target && r.Outcome == api.Accepted &&
					r.Operator == m.alice.ID {
					return true
				}
			}
			return false
		})
	}
}

// TestOpenSSHAgentForwardedDrain is the whole path with OpenSSH: alice's
// key lives only in her ssh-agent; she connects with ssh -A, her console is
// not read-only, she drains a node with the deck's keys (d, duration,
// typed YES), the server signs through her forwarded agent, and every node
// applies it.
func TestOpenSSHAgentForwardedDrain(t *testing.T) {
	needTool(t, "ssh", "ssh-agent", "ssh-add")
	m := startMesh(t, 3)
	dir := t.TempDir()
	alice := newSSHKey(t, dir, "alice", m.alice.Private)
	sock := startAgent(t, dir, alice)
	// The key file goes away: only the agent can sign from here on.
	os.Remove(alice.path)
	pubPath := alice.path + ".pub"

	srv, addr := startServer(t, m.nodes[0], Config{})
	before := goroutineStacks()
	consoles := make(chan *Console, 1)
	srv.onConsole = func(c *Console) { consoles <- c }

	term := startSSH(t, []string{"SSH_AUTH_SOCK=" + sock}, 140, 40, sshArgs(addr, pubPath, "-tt", "-A")...)
	term.waitText(0, "LIVE")
	term.waitText(0, "op alice")
	var c *Console
	select {
	case c = <-consoles:
	case <-time.After(termTimeout):
		t.Fatal("no console")
	}
	if c.Signer == nil {
		t.Fatalf("console read-only: %s", c.ReadOnlyReason)
	}
	if strings.Contains(term.text(), "READ-ONLY") {
		t.Fatal("operator console shows READ-ONLY")
	}

	// NODES is the home tab; the cursor is on the first row.
	mk := term.mark()
	term.send("d")
	term.waitText(mk, "drain for")
	mk = term.mark()
	term.send("10m\r")
	term.waitText(mk, "Type YES")
	term.send("YES\r")

	// The first row's node is drained everywhere, signed by alice.
	var target api.NodeID
	nodetest.Eventually(t, "the drain in the serving node's audit", func() bool {
		recs, _ := c.Audit().Collect(context.Background())
		for _, r := range recs {
			if r.Action.Verb == api.VerbDrain && r.Outcome == api.Accepted {
				target = r.Action.Node
				return true
			}
		}
		return false
	})
	waitDrainEverywhere(t, m, target)

	term.send("q")
	if code := term.wait(); code != 0 {
		t.Fatalf("ssh exit code %d", code)
	}
	noConsoleGoroutines(t, srv, before)
}
