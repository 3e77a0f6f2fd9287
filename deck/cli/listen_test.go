package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
)

// TestConsoleListenAddressResolution: --listen beats $DECK_LISTEN beats
// config.toml's listen; none of them leaves the node's default (""); a
// malformed value is an invalid argument.
func TestConsoleListenAddressResolution(t *testing.T) {
	resolve := func(settings config.Settings, args ...string) (string, error) {
		cmd := statusCmd(IO{})
		if err := cmd.ParseFlags(args); err != nil {
			t.Fatal(err)
		}
		e := &env{settings: settings}
		return e.listenAddr(cmd)
	}
	fromConfig := config.Settings{Listen: "0.0.0.0:7950"}
	t.Setenv(listenEnv, "")
	for _, tt := range []struct {
		env      string
		settings config.Settings
		args     []string
		want     string
	}{
		{"", config.Settings{}, nil, ""},
		{"", fromConfig, nil, "0.0.0.0:7950"},
		{"[::]:7951", fromConfig, nil, "[::]:7951"},
		{"[::]:7951", fromConfig, []string{"--listen", "10.0.0.5:0"}, "10.0.0.5:0"},
	} {
		t.Setenv(listenEnv, tt.env)
		got, err := resolve(tt.settings, tt.args...)
		if err != nil || got != tt.want {
			t.Errorf("env %q, config %q, args %v: %q, %v; want %q", tt.env, tt.settings.Listen, tt.args, got, err, tt.want)
		}
	}
	t.Setenv(listenEnv, "")
	for _, args := range [][]string{{"--listen", "7950"}, {"--listen", "somehost:7950"}} {
		if _, err := resolve(config.Settings{}, args...); api.ExitCode(err) != api.ExitInvalid {
			t.Errorf("%v: %v, want an invalid argument", args, err)
		}
	}
	t.Setenv(listenEnv, "0.0.0.0")
	if _, err := resolve(config.Settings{}); api.ExitCode(err) != api.ExitInvalid {
		t.Errorf("%s=0.0.0.0: %v, want an invalid argument", listenEnv, err)
	}
}

// scratchOperator gives the test its own config dir with operator alice
// and a cluster file whose genesis registers her.
func scratchOperator(t *testing.T) (clusterPath string, alice *identity.Key) {
	t.Helper()
	t.Setenv(config.XDGConfigEnv, t.TempDir())
	t.Setenv(config.XDGDataEnv, t.TempDir())
	if r := run(t, IO{}, "identity", "generate", "alice"); r.code != 0 {
		t.Fatalf("generate: %s", r)
	}
	dirs, err := config.DefaultDirs()
	if err != nil {
		t.Fatal(err)
	}
	alice, err = dirs.Operators().Load("alice")
	if err != nil {
		t.Fatal(err)
	}
	clusterPath = filepath.Join(t.TempDir(), "lab.toml")
	if r := run(t, IO{}, "node", "init", "--cluster", "lab", "--out", clusterPath, "--bootstrap", "10.77.0.1:7946",
		"--operator", filepath.Join(dirs.Operators().Dir, "alice.pub")); r.code != 0 {
		t.Fatalf("init: %s", r)
	}
	return clusterPath, alice
}

// TestNodeCertifyPreparesADataDir: certify makes the node's key when the
// data dir has none, and a certificate for it signed by the operator that
// the node loads at start; run again, it keeps the key.
func TestNodeCertifyPreparesADataDir(t *testing.T) {
	clusterPath, alice := scratchOperator(t)
	dir := filepath.Join(t.TempDir(), "host1")
	certify := []string{"--cluster", clusterPath, "--identity", "alice", "node", "certify", "--data", dir}
	if r := run(t, IO{}, certify...); r.code != 0 || !strings.Contains(r.out, "certified by operator alice") {
		t.Fatalf("certify: %s", r)
	}
	key, err := identity.LoadKey(filepath.Join(dir, "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	cert, note, err := nodeCertificate("", dir, "lab", "", key, nil, "")
	if err != nil || cert == nil {
		t.Fatalf("the node does not load its certificate: %v (%s)", err, note)
	}
	if cert.Role != identity.RoleNode || cert.IssuerID() != alice.ID {
		t.Fatalf("certificate role %v issuer %s, want node by alice %s", cert.Role, cert.IssuerID(), alice.ID)
	}
	if r := run(t, IO{}, certify...); r.code != 0 {
		t.Fatalf("certify again: %s", r)
	}
	again, err := identity.LoadKey(filepath.Join(dir, "node.key"))
	if err != nil || again.ID != key.ID {
		t.Fatalf("certify replaced the node's key: %v", err)
	}
	if r := run(t, IO{}, "--cluster", clusterPath, "node", "certify", "--data", dir); r.code != api.ExitPermission {
		t.Fatalf("certify without an operator identity: %s, want exit %d", r, api.ExitPermission)
	}
	if _, err := os.Stat(filepath.Join(dir, identity.CertificateFileName)); err != nil {
		t.Fatal(err)
	}
}

// TestAdvertiseRefusesAddressesOtherHostsCannotUse: --advertise with a
// loopback, wildcard or portless address exits 2 before the node starts.
func TestAdvertiseRefusesAddressesOtherHostsCannotUse(t *testing.T) {
	clusterPath, _ := scratchOperator(t)
	for _, adv := range []string{"127.0.0.1:7946", "0.0.0.0:7946", "[::1]:7946", "10.0.0.1", "10.0.0.1:0"} {
		r := run(t, IO{}, "--cluster", clusterPath, "node", "run", "--listen", "127.0.0.1:0", "--data", t.TempDir(),
			"--certify-with", "none", "--advertise", adv)
		if r.code != api.ExitInvalid || !strings.Contains(r.err, "advertise") {
			t.Errorf("--advertise %s: %s, want exit %d", adv, r, api.ExitInvalid)
		}
	}
}
