package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/deck-mesh/deck/node/config"
)

// TestExportSSHKeyMatchesOperatorKey: the exported OpenSSH key is the same
// ed25519 key, so an agent holding it signs as the registered operator.
func TestExportSSHKeyMatchesOperatorKey(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := Main(args, IO{In: strings.NewReader(""), Out: &out, Err: &errb})
		return code, out.String() + errb.String()
	}
	if code, out := run("identity", "generate", "carol"); code != 0 {
		t.Fatalf("generate: %d %s", code, out)
	}
	dest := filepath.Join(t.TempDir(), "carol_ssh")
	if code, out := run("identity", "export", "carol", "--ssh", "--out", dest); code != 0 {
		t.Fatalf("export: %d %s", code, out)
	}
	pemBytes, err := os.ReadFile(dest)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dest); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
	signer, err := ssh.ParsePrivateKey(pemBytes)
	if err != nil {
		t.Fatalf("OpenSSH cannot read the export: %v", err)
	}
	dirs, _ := config.DefaultDirs()
	k, err := dirs.Operators().Load("carol")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ssh.NewPublicKey(k.Public)
	if !bytes.Equal(signer.PublicKey().Marshal(), want.Marshal()) {
		t.Fatal("exported key differs from the operator key")
	}
	if code, _ := run("identity", "export", "carol", "--ssh", "--out", dest); code != 4 {
		t.Fatalf("second export exit %d, want 4 (never overwrite)", code)
	}
	if code, _ := run("identity", "export", "carol", "--out", dest+"2"); code != 2 {
		t.Fatalf("export without --ssh exit %d, want 2", code)
	}
}
