package serve

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestHostKeyCreatedOnceWithMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", HostKeyFile)
	s1, created, err := LoadOrCreateHostKey(path)
	if err != nil || !created {
		t.Fatalf("first load: created=%v err=%v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("host key mode %v, want 0600", fi.Mode().Perm())
	}
	s2, created, err := LoadOrCreateHostKey(path)
	if err != nil || created {
		t.Fatalf("second load: created=%v err=%v", created, err)
	}
	if !bytes.Equal(s1.PublicKey().Marshal(), s2.PublicKey().Marshal()) {
		t.Fatal("host key changed between runs")
	}
	if s1.PublicKey().Type() != "ssh-ed25519" {
		t.Fatalf("host key type %s", s1.PublicKey().Type())
	}
	if fp := Fingerprint(s1.PublicKey()); len(fp) < 10 || fp[:7] != "SHA256:" {
		t.Fatalf("fingerprint %q", fp)
	}
}

func TestHostKeyRefusedWhenExposed(t *testing.T) {
	path := filepath.Join(t.TempDir(), HostKeyFile)
	if _, _, err := LoadOrCreateHostKey(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateHostKey(path); !errors.Is(err, ErrHostKeyExposed) {
		t.Fatalf("err = %v, want ErrHostKeyExposed", err)
	}
}

func TestHostKeyGarbageIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), HostKeyFile)
	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateHostKey(path); err == nil {
		t.Fatal("garbage host key accepted")
	}
}
