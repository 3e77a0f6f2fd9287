package cli

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/deck-mesh/deck/deck/serve"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/config"
)

// demoSSHLine is what `deck demo --ssh` prints once it accepts consoles.
var demoSSHLine = regexp.MustCompile(`ssh consoles on (\S+), host key ssh-ed25519 (SHA256:\S+);`)

// TestDemoServesSSHConsoles: `deck demo --ssh` serves consoles on the
// demo's own console node; the demo's operator alice, with her key only in
// a forwarded agent, gets a live deck that signs as her.
func TestDemoServesSSHConsoles(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a demo and an SSH server")
	}
	t.Parallel()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &promptWatch{seen: make(chan struct{})}
	errOut := &promptWatch{prompt: "ssh -A -p", seen: make(chan struct{})}
	done := make(chan int, 1)
	go func() {
		done <- MainContext(ctx, []string{"demo", "--headless", "--for", "10m", "--nodes", "3",
			"--state-dir", dir, "--ssh", "127.0.0.1:0"}, IO{In: strings.NewReader(""), Out: out, Err: errOut})
	}()
	select {
	case <-errOut.seen:
	case code := <-done:
		t.Fatalf("deck demo exited %d before serving consoles\n%s", code, errOut)
	case <-time.After(serveTimeout):
		t.Fatalf("deck demo printed no ssh line in %v\n%s", serveTimeout, errOut)
	}
	mt := demoSSHLine.FindStringSubmatch(errOut.String())
	if mt == nil {
		t.Fatalf("unexpected ssh line:\n%s", errOut)
	}
	hk, created, err := serve.LoadOrCreateHostKey(filepath.Join(dir, serve.HostKeyFile))
	if err != nil || created {
		t.Fatalf("the demo's host key: created=%v err=%v", created, err)
	}
	if fp := serve.Fingerprint(hk.PublicKey()); fp != mt[2] {
		t.Fatalf("demo printed fingerprint %s, the key file's is %s", mt[2], fp)
	}
	alice, err := (&config.OperatorStore{Dir: filepath.Join(dir, "operators")}).Load("alice")
	if err != nil {
		t.Fatal(err)
	}
	operatorSessionQuits(t, mt[1], hk.PublicKey(), alice.Private, "alice")
	cancel() // Ctrl-C: the headless demo prints its summary and exits 0
	select {
	case code := <-done:
		if code != api.ExitOK {
			t.Fatalf("deck demo exited %d\n%s", code, errOut)
		}
	case <-time.After(serveTimeout):
		t.Fatalf("deck demo did not stop in %v", serveTimeout)
	}
	if !strings.Contains(out.String(), "deck-demo") {
		t.Errorf("no summary after the demo stopped:\n%s", out)
	}
}
