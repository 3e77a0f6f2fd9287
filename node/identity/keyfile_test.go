package identity

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestWorldReadableNodeKeyRefused: a node key that group or others can
// access may already be someone else's; like OpenSSH with an identity
// file, LoadKey refuses it, naming the file, its mode and the fix, and a
// key written by SaveKey (0600) loads.
func TestWorldReadableNodeKeyRefused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "node.key")
	if err := SaveKey(path, k); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != KeyFileMode {
		t.Fatalf("SaveKey wrote mode %v (%v), want %04o", st.Mode().Perm(), err, KeyFileMode)
	}
	if got, err := LoadKey(path); err != nil || got.ID != k.ID {
		t.Fatalf("a 0600 key: %v", err)
	}
	for _, mode := range []fs.FileMode{0o644, 0o640, 0o604, 0o660, 0o606, 0o610, 0o601} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadKey(path)
		if !errors.Is(err, ErrUnprotectedKey) {
			t.Fatalf("mode %04o: LoadKey = %v, want ErrUnprotectedKey", mode, err)
		}
		msg := err.Error()
		for _, want := range []string{path, "mode 0" + octal(mode), "chmod 600 " + path} {
			if !strings.Contains(msg, want) {
				t.Errorf("mode %04o: error %q does not say %q", mode, msg, want)
			}
		}
	}
	for _, mode := range []fs.FileMode{0o600, 0o400} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadKey(path); err != nil {
			t.Fatalf("mode %04o refused: %v", mode, err)
		}
	}
}

func octal(m fs.FileMode) string {
	const digits = "01234567"
	p := uint32(m.Perm())
	return string([]byte{digits[p>>6&7], digits[p>>3&7], digits[p&7]})
}

// TestLoadKeyBoundsWhatItReads: a key file is a header and a seed; a huge
// or odd file is refused without being read whole.
func TestLoadKeyBoundsWhatItReads(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.key")
	if err := os.WriteFile(big, make([]byte, keyFileBytesMax+1), KeyFileMode); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(big); err == nil || !strings.Contains(err.Error(), "not a deck key file") {
		t.Fatalf("oversized key file: %v", err)
	}
	if _, err := LoadKey(dir); err == nil {
		t.Fatal("a directory loaded as a key")
	}
}
