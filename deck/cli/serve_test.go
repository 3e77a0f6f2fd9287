package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/deck-mesh/deck/deck/serve"
	"github.com/deck-mesh/deck/deck/serve/servetest"
	"github.com/deck-mesh/deck/node/api"
)

// serveTimeout bounds each wait on `deck serve`: starting its node, and
// stopping (consoles get serve.ShutdownGrace to hang up).
const serveTimeout = 90 * time.Second

// serveLine is the host key in the record `deck serve` logs once it
// accepts SSH connections: its type and fingerprint.
var serveLine = regexp.MustCompile(`^ssh-ed25519 (SHA256:\S+)$`)

// serveRun is one `deck serve` running in-process.
type serveRun struct {
	out, err *promptWatch
	cancel   context.CancelFunc
	done     chan int
	code     *int

	addr, state, fingerprint, hostKey string
}

// startServe runs `deck serve --ssh 127.0.0.1:0` on m's cluster file with
// extra args and waits for its "ssh consoles on" line.
func startServe(t *testing.T, m *testMesh, args ...string) *serveRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &serveRun{
		out:    &promptWatch{seen: make(chan struct{})}, // only its text is used
		err:    &promptWatch{prompt: `"msg":"ssh consoles"`, seen: make(chan struct{})},
		cancel: cancel,
		done:   make(chan int, 1),
	}
	args = append([]string{"--cluster", m.clusterPath, "serve", "--ssh", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--log-format", "json"}, args...)
	go func() { r.done <- MainContext(ctx, args, IO{In: strings.NewReader(""), Out: r.out, Err: r.err}) }()
	t.Cleanup(func() { r.stop(t) })
	select {
	case <-r.err.seen:
	case code := <-r.done:
		r.code = &code
		t.Fatalf("deck serve exited %d before serving\n--- stdout\n%s--- stderr\n%s", code, r.out, r.err)
	case <-time.After(serveTimeout):
		t.Fatalf("deck serve logged no \"ssh consoles\" record in %v\n--- stdout\n%s--- stderr\n%s", serveTimeout, r.out, r.err)
	}
	rec := logRecord(t, r.err.String(), "ssh consoles")
	mt := serveLine.FindStringSubmatch(fmt.Sprint(rec["host_key"]))
	if mt == nil {
		t.Fatalf("unexpected ssh consoles record: %v", rec)
	}
	r.addr, r.fingerprint, r.hostKey = fmt.Sprint(rec["addr"]), mt[1], fmt.Sprint(rec["host_key_file"])
	r.state = "host key"
	if rec["new_host_key"] == true {
		r.state = "new host key"
	}
	if host, port, err := net.SplitHostPort(r.addr); err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("serve printed %q, not the bound address", r.addr)
	}
	return r
}

// operatorSessionQuits logs in as operator name with key held only in an
// agent the client forwards (ssh -A), accepting only hostKey; checks the
// console is live, signs as name (not read-only), and quits with status 0.
// It returns the keyring for further logins.
func operatorSessionQuits(t *testing.T, addr string, hostKey gossh.PublicKey, key ed25519.PrivateKey, name string) agent.Agent {
	t.Helper()
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: key}); err != nil {
		t.Fatal(err)
	}
	c, err := servetest.Dial(addr, hostKey, gossh.PublicKeysCallback(keyring.Signers))
	if err != nil {
		t.Fatalf("%s's login: %v", name, err)
	}
	term := servetest.Open(t, c, servetest.Options{Cols: 140, Rows: 40, Agent: keyring, Timeout: serveTimeout})
	term.WaitText(t, "LIVE")
	term.WaitText(t, "op "+name)
	if strings.Contains(term.Text(), "READ-ONLY") {
		t.Fatalf("%s's console is read-only:\n%s", name, term.Text())
	}
	if _, err := term.Stdin.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	if code := term.WaitExit(t); code != 0 {
		t.Fatalf("console exit status %d", code)
	}
	return keyring
}

// stop cancels the command (like Ctrl-C) and returns its exit code.
func (r *serveRun) stop(t *testing.T) int {
	t.Helper()
	if r.code != nil {
		return *r.code
	}
	r.cancel()
	select {
	case code := <-r.done:
		r.code = &code
		return code
	case <-time.After(serveTimeout):
		t.Fatalf("deck serve did not stop in %v\n--- stdout\n%s--- stderr\n%s", serveTimeout, r.out, r.err)
	}
	return -1
}

// TestServeCommand runs `deck serve` itself on a mesh: it prints the bound
// SSH address and the host key's fingerprint, creates the host key with
// mode 0600 and reuses it on the next start, and an operator logging in
// with the key in their (forwarded) agent gets a deck that signs as them.
func TestServeCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a mesh and an SSH server")
	}
	t.Parallel()
	m := startMesh(t, meshOpts{nodes: 1, iceThreshold: 1, operators: []string{"alice"}})
	dir := t.TempDir()
	data := filepath.Join(dir, "serve1")

	first := startServe(t, m, "--data", data)
	hostKey := filepath.Join(data, serve.HostKeyFile)
	if first.state != "new host key" || first.hostKey != hostKey {
		t.Fatalf("first start: %q %q, want a new host key at %s\n%s", first.state, first.hostKey, hostKey, first.err)
	}
	st, err := os.Stat(hostKey)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("host key mode %v, want 0600", st.Mode().Perm())
	}
	keyBytes, err := os.ReadFile(hostKey)
	if err != nil {
		t.Fatal(err)
	}
	hk, created, err := serve.LoadOrCreateHostKey(hostKey)
	if err != nil || created {
		t.Fatalf("reading the host key back: created=%v err=%v", created, err)
	}
	if fp := serve.Fingerprint(hk.PublicKey()); fp != first.fingerprint {
		t.Fatalf("serve printed fingerprint %s, the key file's is %s", first.fingerprint, fp)
	}

	// alice's key lives only in an agent the client forwards (ssh -A).
	keyring := operatorSessionQuits(t, first.addr, hk.PublicKey(), m.ops["alice"].Private, "alice")
	if log := first.err.String(); !strings.Contains(log, "console for alice (signing as operator") {
		t.Fatalf("the server did not log a signing console for alice:\n%s", log)
	}
	// A key that is neither listed nor an operator's gets nothing.
	_, stranger, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := gossh.NewSignerFromKey(stranger)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := servetest.Dial(first.addr, hk.PublicKey(), gossh.PublicKeys(ss)); err == nil {
		c.Close()
		t.Fatal("an unknown key logged in")
	}
	if code := first.stop(t); code != api.ExitOK {
		t.Fatalf("stopped serve exited %d\n%s", code, first.err)
	}
	if recs := logRecords(t, first.err.String()); len(recs) == 0 || recs[len(recs)-1]["msg"] != "stopped" {
		t.Errorf("the last log record is not \"stopped\":\n%s", first.err)
	}

	// A second start (another node, the same --host-key) reuses the key.
	second := startServe(t, m, "--data", filepath.Join(dir, "serve2"), "--host-key", hostKey)
	if second.state != "host key" {
		t.Fatalf("second start made a new host key:\n%s", second.err)
	}
	if second.fingerprint != first.fingerprint || second.hostKey != hostKey {
		t.Fatalf("second start: %s (%s), want %s (%s)", second.fingerprint, second.hostKey, first.fingerprint, hostKey)
	}
	c, err := servetest.Dial(second.addr, hk.PublicKey(), gossh.PublicKeysCallback(keyring.Signers))
	if err != nil {
		t.Fatalf("login to the second start with the same host key: %v", err)
	}
	c.Close()
	if code := second.stop(t); code != api.ExitOK {
		t.Fatalf("stopped serve exited %d\n%s", code, second.err)
	}
	after, err := os.ReadFile(hostKey)
	if err != nil {
		t.Fatal(err)
	}
	if st, err = os.Stat(hostKey); err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || !bytes.Equal(after, keyBytes) {
		t.Fatalf("the second start changed the host key file (mode %v)", st.Mode().Perm())
	}
}
