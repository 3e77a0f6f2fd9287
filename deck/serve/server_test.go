package serve

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"charm.land/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/deck-mesh/deck/deck/serve/servetest"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/nodetest"
)

// goTerm is an in-process x/crypto/ssh client session (servetest.Term).
type goTerm = servetest.Term

func dialGo(t testing.TB, srv *Server, addr string, auth ...gossh.AuthMethod) (*gossh.Client, error) {
	t.Helper()
	return servetest.Dial(addr, srv.HostKey(), auth...)
}

// openGoTerm starts a session on c: with a pty of cols×rows unless cols is
// 0, running the console (cmd "") or a command.
func openGoTerm(t testing.TB, c *gossh.Client, cols, rows int, cmd string) *goTerm {
	t.Helper()
	return servetest.Open(t, c, servetest.Options{Cols: cols, Rows: rows, Command: cmd, Timeout: termTimeout})
}

func TestRateLimitPerSource(t *testing.T) {
	m := startMesh(t, 1)
	bob := newSSHKey(t, t.TempDir(), "bob", nil)
	srv, addr := startServer(t, m.nodes[0], Config{
		AuthorizedKeysPath: writeAuthorizedKeys(t, bob), ConnAttemptsBurstPerSource: 2, ConnAttemptRefillInterval: time.Hour,
	})
	for i := 0; i < 2; i++ {
		c, err := dialGo(t, srv, addr, gossh.PublicKeys(bob.signer(t)))
		if err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		c.Close()
	}
	if c, err := dialGo(t, srv, addr, gossh.PublicKeys(bob.signer(t))); err == nil {
		c.Close()
		t.Fatal("third attempt from the same source got in")
	}
}

func TestSessionRefusals(t *testing.T) {
	m := startMesh(t, 1)
	bob := newSSHKey(t, t.TempDir(), "bob", nil)
	srv, addr := startServer(t, m.nodes[0], Config{
		AuthorizedKeysPath: writeAuthorizedKeys(t, bob), MaxConcurrentSessions: 1, ConnAttemptsBurstPerSource: 100,
	})
	dial := func() *gossh.Client {
		c, err := dialGo(t, srv, addr, gossh.PublicKeys(bob.signer(t)))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	t.Run("a command", func(t *testing.T) {
		g := openGoTerm(t, dial(), 0, 0, "cat /etc/passwd")
		if code := g.WaitExit(t); code != 1 {
			t.Fatalf("exit %d", code)
		}
		<-g.Done
		if !strings.Contains(g.Text(), "only runs the console") {
			t.Fatalf("output %q", g.Text())
		}
	})
	t.Run("no terminal", func(t *testing.T) {
		g := openGoTerm(t, dial(), 0, 0, "")
		if code := g.WaitExit(t); code != 1 {
			t.Fatalf("exit %d", code)
		}
		<-g.Done
		if !strings.Contains(g.Text(), "needs a terminal") {
			t.Fatalf("output %q", g.Text())
		}
	})
	t.Run("a subsystem", func(t *testing.T) {
		s, err := dial().NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.RequestSubsystem("sftp"); err == nil {
			t.Fatal("sftp subsystem accepted")
		}
	})
	t.Run("over the session limit", func(t *testing.T) {
		before := goroutineStacks()
		first := openGoTerm(t, dial(), 100, 30, "")
		first.WaitText(t, "LIVE")
		second := openGoTerm(t, dial(), 100, 30, "")
		if code := second.WaitExit(t); code != 1 {
			t.Fatalf("exit %d", code)
		}
		<-second.Done
		if !strings.Contains(second.Text(), "too many consoles") {
			t.Fatalf("output %q", second.Text())
		}
		first.Sess.Close()
		noConsoleGoroutines(t, srv, before)
	})
}

func TestIdleAndMaxSessionTimeouts(t *testing.T) {
	m := startMesh(t, 1)
	bob := newSSHKey(t, t.TempDir(), "bob", nil)
	path := writeAuthorizedKeys(t, bob)
	t.Run("idle", func(t *testing.T) {
		srv, addr := startServer(t, m.nodes[0], Config{
			AuthorizedKeysPath: path, SessionIdleTimeout: 2 * time.Second, IdleCheckInterval: 100 * time.Millisecond,
		})
		before := goroutineStacks()
		c, err := dialGo(t, srv, addr, gossh.PublicKeys(bob.signer(t)))
		if err != nil {
			t.Fatal(err)
		}
		g := openGoTerm(t, c, 100, 30, "")
		g.WaitText(t, "LIVE")
		if code := g.WaitExit(t); code != 1 {
			t.Fatalf("exit %d", code)
		}
		<-g.Done
		if !strings.Contains(g.Text(), "console closed: idle timeout") {
			t.Fatalf("no idle notice in %q", tail(g.Text(), 300))
		}
		noConsoleGoroutines(t, srv, before)
	})
	t.Run("max session", func(t *testing.T) {
		srv, addr := startServer(t, m.nodes[0], Config{AuthorizedKeysPath: path, MaxSessionDuration: 3 * time.Second})
		c, err := dialGo(t, srv, addr, gossh.PublicKeys(bob.signer(t)))
		if err != nil {
			t.Fatal(err)
		}
		g := openGoTerm(t, c, 100, 30, "")
		g.WaitText(t, "LIVE")
		// Typing does not extend a session's maximum time.
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond):
					g.Stdin.Write([]byte("j"))
				}
			}
		}()
		if code := g.WaitExit(t); code != 1 {
			t.Fatalf("exit %d", code)
		}
		<-g.Done
		if !strings.Contains(g.Text(), "maximum session time") {
			t.Fatalf("no max-time notice in %q", tail(g.Text(), 300))
		}
	})
}

// TestCloseEndsConsoles: closing the server tells each console why, ends
// its session and leaves nothing running.
func TestCloseEndsConsoles(t *testing.T) {
	m := startMesh(t, 1)
	bob := newSSHKey(t, t.TempDir(), "bob", nil)
	srv, addr := startServer(t, m.nodes[0], Config{AuthorizedKeysPath: writeAuthorizedKeys(t, bob)})
	before := goroutineStacks()
	var terms []*goTerm
	for i := 0; i < 2; i++ {
		c, err := dialGo(t, srv, addr, gossh.PublicKeys(bob.signer(t)))
		if err != nil {
			t.Fatal(err)
		}
		g := openGoTerm(t, c, 100, 30, "")
		g.WaitText(t, "LIVE")
		terms = append(terms, g)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	for _, g := range terms {
		if code := g.WaitExit(t); code != 1 {
			t.Fatalf("exit %d", code)
		}
		<-g.Done
		if !strings.Contains(g.Text(), "server shutting down") {
			t.Fatalf("no shutdown notice in %q", tail(g.Text(), 300))
		}
	}
	noConsoleGoroutines(t, srv, before)
	if _, err := dialGo(t, srv, addr, gossh.PublicKeys(bob.signer(t))); err == nil {
		t.Fatal("closed server accepted a connection")
	}
}

func TestWindowSizeDefaultsWhenUnknown(t *testing.T) {
	for _, tc := range []struct{ w, h, ww, wh int }{
		{120, 40, 120, 40}, {0, 0, 80, 24}, {100, 0, 80, 24}, {0, 30, 80, 24},
	} {
		if w, h := windowSize(ssh.Window{Width: tc.w, Height: tc.h}); w != tc.ww || h != tc.wh {
			t.Errorf("windowSize(%d×%d) = %d×%d, want %d×%d", tc.w, tc.h, w, h, tc.ww, tc.wh)
		}
	}
}

// FuzzParseAuthorizedKeys: any file content parses without panicking, and
// a key is only ever listed from a line that carries it.
func FuzzParseAuthorizedKeys(f *testing.F) {
	k := newSSHKey(f, f.TempDir(), "k", nil)
	line := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(k.pub)))
	for _, seed := range []string{
		line + " laptop\n", "# c\n\n" + line, "no-agent-forwarding " + line, `command="x" ` + line,
		"ssh-ed25519 AAAA\n", "\x00\xff", "", strings.Repeat(line+"\n", 3),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, _ := parseAuthorizedKeys(data)
		for wire := range keys {
			pub, err := gossh.ParsePublicKey([]byte(wire))
			if err != nil {
				t.Fatalf("listed an unparsable key: %v", err)
			}
			if !bytes.Contains(data, []byte(base64.StdEncoding.EncodeToString(pub.Marshal()))) {
				t.Fatalf("listed a key absent from the file")
			}
		}
	})
}

// TestSessionUsesTheProvenKey: OpenSSH offers alice's operator key first
// (it has only the public half, so the server's "that key would do" is all
// it gets), then logs in with bob's listed key. The console must be bob's,
// read-only: the grant follows the key the client proved it holds, not the
// first key the server liked.
func TestSessionUsesTheProvenKey(t *testing.T) {
	needTool(t, "ssh")
	m := startMesh(t, 1)
	dir := t.TempDir()
	bob := newSSHKey(t, dir, "bob", nil)
	alice := newSSHKey(t, dir, "alice", m.alice.Private)
	os.Remove(alice.path) // only alice.pub is left: ssh can offer it, never sign
	srv, addr := startServer(t, m.nodes[0], Config{AuthorizedKeysPath: writeAuthorizedKeys(t, bob)})
	consoles := make(chan *Console, 1)
	srv.onConsole = func(c *Console) { consoles <- c }

	term := startSSH(t, nil, 100, 30, sshArgs(addr, alice.path+".pub", "-tt", "-i", bob.path)...)
	select {
	case con := <-consoles:
		if con.Grant.Operator != nil || con.Signer != nil || con.Grant.Name != "key0" {
			t.Fatalf("console granted %+v (signer %v), want bob's read-only console", con.Grant, con.Signer)
		}
	case <-time.After(termTimeout):
		t.Fatalf("no console; output:\n%s", term.text())
	}
	term.waitText(0, "READ-ONLY")
	term.send("q")
	if code := term.wait(); code != 0 {
		t.Fatalf("ssh exit code %d", code)
	}
}

// TestAuthorizedKeysReloaded: removing a key from the file takes effect on
// the next check, with no restart.
func TestAuthorizedKeysReloaded(t *testing.T) {
	m := startMesh(t, 1)
	dir := t.TempDir()
	bob := newSSHKey(t, dir, "bob", nil)
	carol := newSSHKey(t, dir, "carol", nil)
	path := writeAuthorizedKeys(t, bob)
	srv, addr := startServer(t, m.nodes[0], Config{AuthorizedKeysPath: path})
	if _, err := srv.Console(bob.pub, nil); err != nil {
		t.Fatal(err)
	}
	// Rewrite with carol only; a different size makes the change visible
	// even on a filesystem with coarse mtimes.
	if err := writeFile(path, string(gossh.MarshalAuthorizedKey(carol.pub))+"# carol only\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Console(bob.pub, nil); !errors.Is(err, ErrNotAuthorized) {
		t.Fatalf("removed key: err = %v", err)
	}
	if c, err := dialGo(t, srv, addr, gossh.PublicKeys(bob.signer(t))); err == nil {
		c.Close()
		t.Fatal("removed key still logs in")
	}
	if _, err := srv.Console(carol.pub, nil); err != nil {
		t.Fatalf("added key: %v", err)
	}
}

func TestParseAuthorizedKeys(t *testing.T) {
	k := newSSHKey(t, t.TempDir(), "k", nil)
	line := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(k.pub)))
	tests := []struct {
		name    string
		file    string
		listed  bool
		noAgent bool
		warns   int
	}{
		{"plain", line + " laptop\n", true, false, 0},
		{"comment and blank lines", "# keys\n\n" + line + "\n", true, false, 0},
		{"no-agent-forwarding", "no-agent-forwarding " + line + "\n", true, true, 0},
		{"command= is not honoured, so the key is skipped", `command="/bin/true" ` + line + "\n", false, false, 1},
		{"from= is not honoured, so the key is skipped", `from="10.0.0.0/8" ` + line + "\n", false, false, 1},
		{"garbage line skipped, next kept", "ssh-ed25519 !!!\n" + line + "\n", true, false, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys, warns := parseAuthorizedKeys([]byte(tc.file))
			lk, ok := keys[string(k.pub.Marshal())]
			if ok != tc.listed || lk.noAgent != tc.noAgent || len(warns) != tc.warns {
				t.Fatalf("listed=%v noAgent=%v warns=%q", ok, lk.noAgent, warns)
			}
		})
	}
}

// TestLeakCheckSeesNodeSideGoroutines: the check the console tests end with
// sees the node-side goroutines a console's Client starts (the snapshot
// watch, the audit stream, the log and failure subscriptions and their
// leases), not only the deck's own, and passes once they are cancelled.
func TestLeakCheckSeesNodeSideGoroutines(t *testing.T) {
	m := startMesh(t, 1)
	bob := newSSHKey(t, t.TempDir(), "bob", nil)
	srv, _ := startServer(t, m.nodes[0], Config{AuthorizedKeysPath: writeAuthorizedKeys(t, bob)})
	before := goroutineStacks()
	c, err := srv.Console(bob.pub, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.WatchSnapshots(ctx)
	if _, err := c.Audit().Stream(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SubscribeLogs(ctx, api.LogFilter{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SubscribeFailures(ctx, 0); err != nil {
		t.Fatal(err)
	}
	for _, fn := range []string{
		"node.(*publisher).watch", "node.(*auditQuery).Stream",
		"chain.(*SubscriptionService).startSub", "chain.(*SubscriptionService).runLease",
	} {
		nodetest.Eventually(t, fn+" counted as a leak", func() bool {
			for _, g := range leakedConsoleGoroutines(before) {
				if strings.Contains(g, fn) {
					return true
				}
			}
			return false
		})
	}
	cancel()
	noConsoleGoroutines(t, srv, before)
}
