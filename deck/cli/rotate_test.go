package cli

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
)

// TestIdentityRotateCommitsToTheLedger: `deck identity rotate` replaces the
// key on disk, commits a rotation signed by the old and the new key, and the
// cluster then knows the operator by the new key only.
func TestIdentityRotateCommitsToTheLedger(t *testing.T) {
	t.Setenv(config.XDGConfigEnv, t.TempDir())
	m := startMesh(t, meshOpts{nodes: 2, iceThreshold: 1, operators: []string{"dave"}})
	dirs, err := config.DefaultDirs()
	if err != nil {
		t.Fatal(err)
	}
	old := m.ops["dave"]
	// dave's key in the user's own store, where rotate writes the new one.
	if err := identity.SaveKey(dirs.Operators().KeyPath("dave"), old); err != nil {
		t.Fatal(err)
	}
	m.must(t, api.ExitOK, "identity", "rotate", "dave")
	fresh, err := dirs.Operators().Load("dave")
	if err != nil {
		t.Fatal(err)
	}
	if fresh.ID == old.ID {
		t.Fatal("rotate kept the old key")
	}
	eventually(t, 20*time.Second, func() string {
		for _, r := range m.audit(t, "--recent", "0") {
			if r.Command == string(api.VerbRotateOperator) {
				if r.Outcome != "accepted" {
					return "rotation " + r.Outcome + ": " + r.Reason
				}
				if len(r.Signatures) != 2 {
					return "rotation not signed by both keys"
				}
				return ""
			}
		}
		return "no rotation in audit"
	})
	eventually(t, 20*time.Second, func() string {
		for _, o := range m.status(t).Operators {
			if o.Name == "dave" && o.ID == uint64(fresh.ID) {
				return ""
			}
		}
		return "registry does not show dave's new key"
	})
	// The new key signs admin commands (the user's store is searched first).
	m.must(t, api.ExitOK, "admin", "cordon", "--node", "n2", "--yes", "--identity", "dave")
}

// TestIdentityRotateAtAdminThresholdTwo: at an admin threshold of 2 a
// one-signature rotation is refused before the key on disk changes; the
// co-signing route (rotate --sign-only, admin sign, admin commit) commits
// it, signed by the old key, the new key and a second operator.
func TestIdentityRotateAtAdminThresholdTwo(t *testing.T) {
	t.Setenv(config.XDGConfigEnv, t.TempDir())
	m := startMesh(t, meshOpts{nodes: 2, iceThreshold: 1, adminThreshold: 2, operators: []string{"dave", "bob"}})
	dirs, err := config.DefaultDirs()
	if err != nil {
		t.Fatal(err)
	}
	old := m.ops["dave"]
	if err := identity.SaveKey(dirs.Operators().KeyPath("dave"), old); err != nil {
		t.Fatal(err)
	}
	if r := m.must(t, api.ExitPermission, "identity", "rotate", "dave"); !strings.Contains(r.err, "--sign-only") {
		t.Fatalf("a one-signature rotation should point at the co-signing flow:\n%s", r)
	}
	if k, err := dirs.Operators().Load("dave"); err != nil || k.ID != old.ID {
		t.Fatalf("the refused rotation changed the key on disk (%v)", err)
	}
	file := filepath.Join(t.TempDir(), "rotate.adm")
	if r := m.must(t, api.ExitOK, "identity", "rotate", "dave", "--sign-only", "--out", file); !strings.Contains(r.out, "1 of 2 signatures") {
		t.Fatalf("sign-only does not say what comes next:\n%s", r)
	}
	fresh, err := dirs.Operators().Load("dave")
	if err != nil || fresh.ID == old.ID {
		t.Fatalf("rotate --sign-only kept the old key (%v)", err)
	}
	bob := strings.TrimSpace(m.must(t, api.ExitOK, "admin", "sign", file, "--identity", "bob").out)
	m.must(t, api.ExitOK, "admin", "commit", file, "--sig", bob)
	eventually(t, 20*time.Second, func() string {
		for _, r := range m.audit(t, "--recent", "0") {
			if r.Command == string(api.VerbRotateOperator) {
				if r.Outcome != "accepted" {
					return "rotation " + r.Outcome + ": " + r.Reason
				}
				if len(r.Signatures) != 3 {
					return fmt.Sprintf("rotation signed %d times, want old key, new key and bob", len(r.Signatures))
				}
				return ""
			}
		}
		return "no rotation in audit"
	})
	eventually(t, 20*time.Second, func() string {
		for _, o := range m.status(t).Operators {
			if o.Name == "dave" && o.ID == uint64(fresh.ID) {
				return ""
			}
		}
		return "registry does not show dave's new key"
	})
}
