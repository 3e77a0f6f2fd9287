package cli

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
)

// permClusterFile writes a valid cluster file (one genesis operator) with
// mode and returns its path.
func permClusterFile(t *testing.T, mode os.FileMode) string {
	t.Helper()
	op, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.NewCluster("perm", nil, []config.Operator{config.NewOperator("alice", op.Public)}, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cluster.toml")
	if err := config.WriteCluster(path, c, false); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestWorldReadableClusterFileRefusedByCLI: a cluster file every user can
// read is refused with exit 5 and an error naming the file, its mode, the
// fix and the way round it; --insecure-permissions or
// DECK_INSECURE_PERMISSIONS=1 loads it with a warning. `audit --verify
// --data` loads the cluster file and works offline, so no mesh is needed.
func TestWorldReadableClusterFileRefusedByCLI(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	t.Setenv(insecurePermissionsEnv, "")
	path := permClusterFile(t, 0o644)
	verify := []string{"--cluster", path, "audit", "--verify", "--data", t.TempDir()}

	r := run(t, IO{}, verify...)
	if r.code != api.ExitPermission {
		t.Fatalf("world-readable cluster file: %s, want exit %d", r, api.ExitPermission)
	}
	for _, want := range []string{path, "mode 0644", "PSK", "chmod 600 " + path, "--insecure-permissions", insecurePermissionsEnv} {
		if !strings.Contains(r.err, want) {
			t.Errorf("error does not say %q:\n%s", want, r.err)
		}
	}

	r = run(t, IO{}, append([]string{"--insecure-permissions"}, verify...)...)
	if r.code != api.ExitOK || !strings.Contains(r.err, "warning") || !strings.Contains(r.err, "chmod 600") {
		t.Fatalf("with --insecure-permissions: %s, want exit 0 and a warning", r)
	}
	t.Setenv(insecurePermissionsEnv, "1")
	if r = run(t, IO{}, verify...); r.code != api.ExitOK {
		t.Fatalf("with %s=1: %s", insecurePermissionsEnv, r)
	}
	t.Setenv(insecurePermissionsEnv, "perhaps")
	if r = run(t, IO{}, verify...); r.code != api.ExitInvalid {
		t.Fatalf("with %s=perhaps: %s, want exit %d", insecurePermissionsEnv, r, api.ExitInvalid)
	}

	t.Setenv(insecurePermissionsEnv, "")
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if r = run(t, IO{}, verify...); r.code != api.ExitOK || strings.Contains(r.err, "warning") {
		t.Fatalf("0600 cluster file: %s", r)
	}
}

// TestWorldReadableOperatorKeyRefusedByCLI: `deck identity show` of a key
// others can read exits 5 and says how to fix it; after chmod 600 it works.
func TestWorldReadableOperatorKeyRefusedByCLI(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	t.Setenv(config.XDGConfigEnv, t.TempDir())
	if r := run(t, IO{}, "identity", "generate", "alice"); r.code != api.ExitOK {
		t.Fatalf("generate: %s", r)
	}
	dirs, err := config.DefaultDirs()
	if err != nil {
		t.Fatal(err)
	}
	key := dirs.Operators().KeyPath("alice")
	if err := os.Chmod(key, 0o640); err != nil {
		t.Fatal(err)
	}
	r := run(t, IO{}, "identity", "show", "alice")
	if r.code != api.ExitPermission {
		t.Fatalf("group-readable operator key: %s, want exit %d", r, api.ExitPermission)
	}
	for _, want := range []string{"UNPROTECTED PRIVATE KEY FILE", key, "mode 0640", "chmod 600 " + key} {
		if !strings.Contains(r.err, want) {
			t.Errorf("error does not say %q:\n%s", want, r.err)
		}
	}
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := run(t, IO{}, "identity", "show", "alice"); r.code != api.ExitOK {
		t.Fatalf("after chmod 600: %s", r)
	}
}

// TestWorldReadableNodeKeyRefusedByCLI: `deck node run` refuses a node key
// others can read (exit 5) instead of starting a node on it, and does not
// replace it with a new one.
func TestWorldReadableNodeKeyRefusedByCLI(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	cluster := permClusterFile(t, 0o600)
	data := t.TempDir()
	k, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(data, "node.key")
	if err := identity.SaveKey(keyPath, k); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keyPath, 0o604); err != nil {
		t.Fatal(err)
	}
	r := run(t, IO{}, "--cluster", cluster, "node", "run", "--listen", "127.0.0.1:0", "--data", data)
	if r.code != api.ExitPermission || !strings.Contains(r.err, "chmod 600 "+keyPath) {
		t.Fatalf("world-readable node key: %s, want exit %d naming the fix", r, api.ExitPermission)
	}
	if got, err := os.ReadFile(keyPath); err != nil || !strings.Contains(string(got), "deck-ed25519-seed-v1") {
		t.Fatalf("node key replaced or lost: %v", err)
	}
	if st, _ := os.Stat(keyPath); st.Mode().Perm() != 0o604 {
		t.Fatalf("node key mode changed to %04o", st.Mode().Perm())
	}
}
