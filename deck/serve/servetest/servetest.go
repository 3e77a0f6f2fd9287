// Package servetest drives `deck serve` consoles from tests: an in-process
// x/crypto/ssh client session, with a pty, whose output is recorded and
// timestamped, optionally forwarding an in-process ssh-agent (ssh -A). The
// serve package's tests and the CLI's `deck serve` test share it; nothing
// else imports it.
package servetest

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// DefaultTimeout bounds each wait of a Term: generous, for a loaded
// machine running a real mesh.
const DefaultTimeout = 60 * time.Second

// ansi matches the escape sequences a terminal would interpret.
var ansi = regexp.MustCompile(`\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[P^_X][^\x1b]*\x1b\\|\x1b[ -/]*[0-~]`)

// StripANSI is b with its escape sequences removed: the text a terminal
// would show, in the order it was drawn.
func StripANSI(b []byte) string { return ansi.ReplaceAllString(string(b), "") }

// Dial connects as user "deck" to addr, accepting only hostKey.
func Dial(addr string, hostKey gossh.PublicKey, auth ...gossh.AuthMethod) (*gossh.Client, error) {
	return gossh.Dial("tcp", addr, &gossh.ClientConfig{
		User: "deck", Auth: auth, HostKeyCallback: gossh.FixedHostKey(hostKey), Timeout: 30 * time.Second,
	})
}

// Options says what session Open starts.
type Options struct {
	// Cols×Rows is the pty's size; Cols 0 requests no pty.
	Cols, Rows int
	// Command runs a command instead of the shell (the console).
	Command string
	// Agent, when set, is forwarded to the server as the client's ssh-agent
	// (ssh -A). A client forwards at most one agent.
	Agent agent.Agent
	// Timeout bounds WaitText and WaitExit; 0 means DefaultTimeout.
	Timeout time.Duration
}

// Term is one client session, with every chunk of output timestamped on
// arrival.
type Term struct {
	Client *gossh.Client
	Sess   *gossh.Session
	Stdin  io.WriteCloser
	// Done is closed when the output ends.
	Done    chan struct{}
	timeout time.Duration

	mu     sync.Mutex
	out    bytes.Buffer
	chunks []chunk
}

type chunk struct {
	at  time.Time
	end int // offset in out after this chunk
}

// Open starts a session on c; the test's cleanup closes the session and c.
func Open(t testing.TB, c *gossh.Client, o Options) *Term {
	t.Helper()
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Agent != nil {
		if err := agent.ForwardToAgent(c, o.Agent); err != nil {
			t.Fatal(err)
		}
	}
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	g := &Term{Client: c, Sess: sess, Done: make(chan struct{}), timeout: o.Timeout}
	t.Cleanup(func() { sess.Close(); c.Close() })
	stdout, err := sess.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	sess.Stderr = g // interleaved with stdout, as a terminal would show it
	if g.Stdin, err = sess.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if o.Agent != nil {
		if err := agent.RequestAgentForwarding(sess); err != nil {
			t.Fatal(err)
		}
	}
	if o.Cols > 0 {
		if err := sess.RequestPty("xterm-256color", o.Rows, o.Cols, gossh.TerminalModes{gossh.ECHO: 0}); err != nil {
			t.Fatal(err)
		}
	}
	go func() {
		defer close(g.Done)
		buf := make([]byte, 32<<10)
		for {
			n, err := stdout.Read(buf)
			if n > 0 {
				g.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	if o.Command == "" {
		err = sess.Shell()
	} else {
		err = sess.Start(o.Command)
	}
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// Write records output as it arrives.
func (g *Term) Write(p []byte) (int, error) {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.out.Write(p)
	g.chunks = append(g.chunks, chunk{at: now, end: g.out.Len()})
	return len(p), nil
}

// Text is everything the session printed so far, escape sequences removed.
func (g *Term) Text() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return StripANSI(g.out.Bytes())
}

// RawLen is the length of the raw output so far (an offset for Arrival).
func (g *Term) RawLen() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.out.Len()
}

// Arrival finds want in the raw output after offset from and returns when
// the chunk that completed it arrived.
func (g *Term) Arrival(from int, want string) (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	raw := g.out.Bytes()
	i := bytes.Index(raw[from:], []byte(want))
	if i < 0 {
		return time.Time{}, false
	}
	end := from + i + len(want)
	for _, c := range g.chunks {
		if c.end >= end {
			return c.at, true
		}
	}
	return time.Time{}, false
}

// WaitText waits until the text contains want.
func (g *Term) WaitText(t testing.TB, want string) {
	t.Helper()
	deadline := time.Now().Add(g.timeout)
	for !strings.Contains(g.Text(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %q; output:\n%s", g.timeout, want, tail(g.Text(), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitExit waits for the session to end and returns its exit status.
func (g *Term) WaitExit(t testing.TB) int {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- g.Sess.Wait() }()
	select {
	case err := <-errc:
		var ee *gossh.ExitError
		if errors.As(err, &ee) {
			return ee.ExitStatus()
		}
		if err != nil {
			t.Fatalf("session: %v", err)
		}
		return 0
	case <-time.After(g.timeout):
		t.Fatalf("session did not end within %v; output:\n%s", g.timeout, tail(g.Text(), 2000))
	}
	return -1
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
