package serve

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/nodetest"
)

// TestOpenSSHConsole drives a real OpenSSH client in a pty: the deck comes
// up, follows tab keys and a window resize, and quitting ends ssh cleanly
// with nothing left running on the server.
func TestOpenSSHConsole(t *testing.T) {
	needTool(t, "ssh")
	m := startMesh(t, 3)
	dir := t.TempDir()
	bob := newSSHKey(t, dir, "bob", nil) // listed, not an operator
	srv, addr := startServer(t, m.nodes[0], Config{AuthorizedKeysPath: writeAuthorizedKeys(t, bob)})
	before := goroutineStacks()

	term := startSSH(t, nil, 100, 30, sshArgs(addr, bob.path, "-tt")...)
	term.waitText(0, "LIVE")
	term.waitText(0, "READ-ONLY")
	term.waitText(0, "not a registered operator")
	// Action keys explain why they do nothing.
	mk0 := term.mark()
	term.send("c")
	term.waitText(mk0, "read-only")

	// DAEMONS at 100 columns hides the REASON column (HideBelow 130).
	mk := term.mark()
	term.send("3")
	term.waitText(mk, "LINEAGE")
	if txt := term.text()[mk:]; strings.Contains(txt, "REASON") {
		t.Fatalf("REASON shown at 100 columns")
	}
	// Widen the window: ssh forwards the change and the deck re-lays out.
	mk = term.mark()
	if err := setSize(term, 160, 40); err != nil {
		t.Fatal(err)
	}
	term.waitText(mk, "REASON")

	mk = term.mark()
	term.send("2")
	term.waitText(mk, "DISK%")

	nodetest.Eventually(t, "one console", func() bool { return srv.Sessions() == 1 })
	term.send("q")
	if code := term.wait(); code != 0 {
		t.Fatalf("ssh exit code %d; output:\n%s", code, tail(term.text(), 2000))
	}
	noConsoleGoroutines(t, srv, before)
}

// TestUnknownKeyRefused: a key that is neither listed nor an operator's
// gets no session, from OpenSSH or from a Go client, and Console refuses it.
func TestUnknownKeyRefused(t *testing.T) {
	m := startMesh(t, 1)
	dir := t.TempDir()
	bob := newSSHKey(t, dir, "bob", nil)
	mallory := newSSHKey(t, dir, "mallory", nil)
	srv, addr := startServer(t, m.nodes[0], Config{AuthorizedKeysPath: writeAuthorizedKeys(t, bob)})

	cfg := &gossh.ClientConfig{
		User: "deck", Auth: []gossh.AuthMethod{gossh.PublicKeys(mallory.signer(t))},
		HostKeyCallback: gossh.FixedHostKey(srv.HostKey()), Timeout: 30 * time.Second,
	}
	if c, err := gossh.Dial("tcp", addr, cfg); err == nil {
		c.Close()
		t.Fatal("unknown key got a connection")
	} else if !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("unexpected error: %v", err)
	}
	// Passwords are never accepted either.
	cfg.Auth = []gossh.AuthMethod{gossh.Password("hunter2")}
	if c, err := gossh.Dial("tcp", addr, cfg); err == nil {
		c.Close()
		t.Fatal("password got a connection")
	}
	if _, err := srv.Console(mallory.pub, nil); !errors.Is(err, ErrNotAuthorized) {
		t.Fatalf("Console(unknown) err = %v", err)
	}

	if _, err := execLookSSH(); err == nil {
		term := startSSH(t, nil, 80, 24, sshArgs(addr, mallory.path, "-tt")...)
		if code := term.wait(); code != 255 {
			t.Fatalf("ssh with an unknown key exited %d, want 255; output:\n%s", code, term.text())
		}
		if txt := term.text(); !strings.Contains(txt, "Permission denied") {
			t.Fatalf("no refusal in output:\n%s", txt)
		}
	}
	if srv.Sessions() != 0 {
		t.Fatalf("%d consoles after refusals", srv.Sessions())
	}
}

// TestReadOnlyConsolesCannotCommit: each way to be read-only gives a nil
// signer, a reason the status line shows, and a commit that is refused
// before anything reaches the ledger.
func TestReadOnlyConsolesCannotCommit(t *testing.T) {
	needTool(t, "ssh-agent", "ssh-add")
	m := startMesh(t, 2)
	dir := t.TempDir()
	bob := newSSHKey(t, dir, "bob", nil)
	alice := newSSHKey(t, dir, "alice", m.alice.Private)
	other := newSSHKey(t, dir, "other", nil)
	srv, _ := startServer(t, m.nodes[0], Config{AuthorizedKeysPath: writeAuthorizedKeys(t, bob)})
	sock := startAgent(t, dir, other) // holds a key, not alice's

	cases := []struct {
		name  string
		key   gossh.PublicKey
		agent AgentDialer
		why   string
	}{
		{"listed key, not an operator", bob.pub, SocketAgent(sock), "not a registered operator"},
		{"operator without a forwarded agent", alice.pub, nil, "ssh -A"},
		{"operator whose agent lacks the login key", alice.pub, SocketAgent(sock), "lacks your login key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := srv.Console(tc.key, tc.agent)
			if err != nil {
				t.Fatal(err)
			}
			if c.Signer != nil {
				t.Fatal("read-only console has a signer")
			}
			if _, ok, why := c.Operator(); ok || !strings.Contains(why, tc.why) {
				t.Fatalf("Operator() ok=%v why=%q, want read-only mentioning %q", ok, why, tc.why)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := c.Admin().Drain(ctx, m.nodes[1].ID(), time.Minute); !errors.Is(err, api.ErrPermission) {
				t.Fatalf("drain from a read-only console: err = %v, want ErrPermission", err)
			}
			recs, err := c.Audit().Collect(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 0 {
				t.Fatalf("audit has %d records after refused commits: %+v", len(recs), recs)
			}
		})
	}
}

// TestNoAgentForwardingOption: the authorized-keys option keeps even an
// operator's console read-only.
func TestNoAgentForwardingOption(t *testing.T) {
	needTool(t, "ssh-agent", "ssh-add")
	m := startMesh(t, 1)
	dir := t.TempDir()
	alice := newSSHKey(t, dir, "alice", m.alice.Private)
	path := writeAuthorizedKeys(t)
	line := "no-agent-forwarding " + string(gossh.MarshalAuthorizedKey(alice.pub))
	if err := writeFile(path, line); err != nil {
		t.Fatal(err)
	}
	srv, _ := startServer(t, m.nodes[0], Config{AuthorizedKeysPath: path})
	c, err := srv.Console(alice.pub, SocketAgent(startAgent(t, dir, alice)))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, why := c.Operator(); ok || !strings.Contains(why, "agent forwarding disabled") {
		t.Fatalf("Operator() ok=%v why=%q", ok, why)
	}
}
