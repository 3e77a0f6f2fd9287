package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
)

func TestOperatorStoreGenerateListShow(t *testing.T) {
	s := &OperatorStore{Dir: filepath.Join(t.TempDir(), "operators")}
	if names, err := s.List(); err != nil || len(names) != 0 {
		t.Fatalf("empty store: %v %v", names, err)
	}
	keys := map[string]*identity.Key{}
	for _, n := range []string{"bob", "alice", "Zed_9"} {
		k, err := s.Generate(n)
		if err != nil {
			t.Fatal(err)
		}
		keys[n] = k
	}
	names, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"Zed_9", "alice", "bob"}; !reflect.DeepEqual(names, want) {
		t.Errorf("list %v, want %v", names, want)
	}
	for n, k := range keys {
		st, err := os.Stat(s.KeyPath(n))
		if err != nil || st.Mode().Perm() != identity.KeyFileMode {
			t.Errorf("%s key mode: %v %v", n, st.Mode(), err)
		}
		pub, err := os.ReadFile(s.PubPath(n))
		if err != nil {
			t.Fatal(err)
		}
		if string(pub) != identity.PublicKeyString(k.Public)+"\n" {
			t.Errorf("%s pub file %q", n, pub)
		}
		id, err := s.Show(n)
		if err != nil {
			t.Fatal(err)
		}
		if id.ID != k.ID || id.PublicKey != identity.PublicKeyString(k.Public) || id.Name != n {
			t.Errorf("show %s: %+v", n, id)
		}
		loaded, err := s.Load(n)
		if err != nil || !loaded.Private.Equal(k.Private) {
			t.Errorf("load %s: %v", n, err)
		}
	}
}

func TestOperatorStoreErrors(t *testing.T) {
	s := &OperatorStore{Dir: t.TempDir()}
	first, err := s.Generate("alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Generate("alice"); !errors.Is(err, api.ErrExists) || api.ExitCode(err) != api.ExitExists {
		t.Errorf("second generate: %v", err)
	}
	if k, err := s.Load("alice"); err != nil || k.ID != first.ID {
		t.Errorf("existing key changed: %v", err)
	}
	for _, op := range []func(string) error{
		func(n string) error { _, err := s.Load(n); return err },
		func(n string) error { _, err := s.Show(n); return err },
		func(n string) error { _, _, err := s.Rotate(n); return err },
	} {
		if err := op("nobody"); !errors.Is(err, api.ErrNotFound) || api.ExitCode(err) != api.ExitNotFound {
			t.Errorf("missing: %v", err)
		}
	}
	outside := filepath.Join(filepath.Dir(s.Dir), "escaped")
	for _, bad := range []string{"", "../escaped", "a/b", "a.b", ".", "..", "a\x00", strings.Repeat("x", MaxNameChars+1)} {
		if _, err := s.Generate(bad); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("generate %q: %v", bad, err)
		}
		if _, err := s.Load(bad); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("load %q: %v", bad, err)
		}
		if _, _, err := s.Rotate(bad); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("rotate %q: %v", bad, err)
		}
	}
	if _, err := os.Stat(outside + ".key"); err == nil {
		t.Error("path traversal wrote outside the store")
	}
	corrupt := s.KeyPath("broken")
	if err := os.WriteFile(corrupt, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("broken"); err == nil || errors.Is(err, api.ErrNotFound) {
		t.Errorf("corrupt key: %v", err)
	}
}

// TestWorldReadableOperatorKeyRefused: an operator key that group or
// others can access is refused on load (and so for show and rotate), with
// the file, its mode and the fix in the error and exit code 5; the key
// loads again once it is 0600.
func TestWorldReadableOperatorKeyRefused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	s := &OperatorStore{Dir: t.TempDir()}
	k, err := s.Generate("alice")
	if err != nil {
		t.Fatal(err)
	}
	path := s.KeyPath("alice")
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, op := range []func() error{
		func() error { _, err := s.Load("alice"); return err },
		func() error { _, err := s.Show("alice"); return err },
		func() error { _, _, err := s.Rotate("alice"); return err },
	} {
		err := op()
		if !errors.Is(err, identity.ErrUnprotectedKey) || api.ExitCode(err) != api.ExitPermission {
			t.Fatalf("world-readable key: %v (exit %d), want ErrUnprotectedKey, exit %d", err, api.ExitCode(err), api.ExitPermission)
		}
		for _, want := range []string{"UNPROTECTED PRIVATE KEY FILE", path, "mode 0644", "chmod 600 " + path} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
	}
	if err := os.Chmod(path, identity.KeyFileMode); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Load("alice"); err != nil || got.ID != k.ID {
		t.Fatalf("after chmod 600: %v", err)
	}
}

func TestOperatorStoreListIgnoresOtherFiles(t *testing.T) {
	s := &OperatorStore{Dir: t.TempDir()}
	if _, err := s.Generate("alice"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"alice.key.old-123", "bad name.key", "notes.txt", ".alice.key.tmp-1"} {
		if err := os.WriteFile(filepath.Join(s.Dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(s.Dir, "dir.key"), 0o700); err != nil {
		t.Fatal(err)
	}
	names, err := s.List()
	if err != nil || !reflect.DeepEqual(names, []string{"alice"}) {
		t.Errorf("list %v %v", names, err)
	}
}

func TestOperatorStoreRotate(t *testing.T) {
	at := time.Unix(1_700_000_000, 0)
	s := &OperatorStore{Dir: t.TempDir(), Now: func() time.Time { return at }}
	orig, err := s.Generate("alice")
	if err != nil {
		t.Fatal(err)
	}
	old, fresh, err := s.Rotate("alice")
	if err != nil {
		t.Fatal(err)
	}
	if old.ID != orig.ID || fresh.ID == orig.ID {
		t.Fatalf("rotate returned old %s new %s, original %s", old.ID, fresh.ID, orig.ID)
	}
	cur, err := s.Load("alice")
	if err != nil || cur.ID != fresh.ID {
		t.Fatalf("current key is not the new one: %v", err)
	}
	archived, err := identity.LoadKey(filepath.Join(s.Dir, "alice.key.old-1700000000"))
	if err != nil || archived.ID != orig.ID {
		t.Fatalf("old key not archived: %v", err)
	}
	if id, _ := s.Show("alice"); id.PublicKey != identity.PublicKeyString(fresh.Public) {
		t.Errorf("show after rotate: %+v", id)
	}
	pub, _ := os.ReadFile(s.PubPath("alice"))
	if strings.TrimSpace(string(pub)) != identity.PublicKeyString(fresh.Public) {
		t.Errorf("pub not rewritten: %q", pub)
	}

	// A second rotation in the same second must not clobber the first archive.
	_, third, err := s.Rotate("alice")
	if err != nil {
		t.Fatal(err)
	}
	again, err := identity.LoadKey(filepath.Join(s.Dir, "alice.key.old-1700000000"))
	if err != nil || again.ID != orig.ID {
		t.Errorf("first archive clobbered: %v", err)
	}
	second, err := identity.LoadKey(filepath.Join(s.Dir, "alice.key.old-1700000000-2"))
	if err != nil || second.ID != fresh.ID {
		t.Errorf("second archive: %v", err)
	}
	if cur, _ := s.Load("alice"); cur.ID != third.ID {
		t.Error("current key is not the third")
	}
	ents, _ := os.ReadDir(s.Dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".key.new-") || strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("leftover temp file %s", e.Name())
		}
	}
	if names, _ := s.List(); !reflect.DeepEqual(names, []string{"alice"}) {
		t.Errorf("archives listed as identities: %v", names)
	}
}
