package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deck-mesh/deck/node/api"
)

// TestBlobCommands drives deck blob end to end against a real mesh: put
// prints the hash, get writes the same bytes, stat and ls describe it, a
// pinned blob refuses rm, rm asks for YES (exit 8 without a terminal) and
// removes it with --yes, and the exit codes follow ARCHITECTURE.md §9.
func TestBlobCommands(t *testing.T) {
	m := sharedMesh(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "data.bin")
	data := bytes.Repeat([]byte("dataforts! "), 40_000) // 440 KB: four chunks
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	r := m.deck(t, "--identity", "alice", "blob", "put", file, "--replicas", "1", "--pin")
	if r.code != 0 {
		t.Fatalf("put: %s", r)
	}
	hash := strings.TrimSpace(r.out)
	if len(hash) != 64 {
		t.Fatalf("put printed %q", r.out)
	}
	back := filepath.Join(dir, "back.bin")
	if r := m.deck(t, "blob", "get", hash, "--out", back); r.code != 0 {
		t.Fatalf("get: %s", r)
	}
	if got, err := os.ReadFile(back); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("got back %d bytes (%v)", len(got), err)
	}
	r = m.deck(t, "-o", "json", "blob", "stat", hash)
	var doc blobDoc
	if r.code != 0 || json.Unmarshal([]byte(r.out), &doc) != nil {
		t.Fatalf("stat: %s", r)
	}
	if doc.Hash != hash || doc.Size != uint64(len(data)) || doc.Chunks != 4 || !doc.Pinned || doc.Held != 1 || doc.Name != "data.bin" || doc.Operator == nil {
		t.Fatalf("stat doc %+v", doc)
	}
	if r := m.deck(t, "blob", "ls"); r.code != 0 || !strings.Contains(r.out, hash[:12]) {
		t.Fatalf("ls: %s", r)
	}
	if r := m.deck(t, "--identity", "alice", "blob", "rm", hash, "--yes"); r.code != api.ExitInvalid || !strings.Contains(r.err, "pinned") {
		t.Fatalf("rm of a pinned blob: %s", r)
	}
	// The intent verbs go through the one action flow: previewed, and
	// committed only on YES (a non-terminal without --yes is refused).
	if r := m.deck(t, "--identity", "alice", "blob", "unpin", hash); r.code != api.ExitRefused || !strings.Contains(r.err, "YES") {
		t.Fatalf("unpin without a terminal or --yes: %s", r)
	}
	if r := m.deck(t, "--identity", "alice", "blob", "unpin", hash, "--preview", "--yes"); r.code != api.ExitInvalid {
		t.Fatalf("unpin --preview --yes: %s", r)
	}
	if r := m.deck(t, "--identity", "alice", "blob", "unpin", hash, "--preview"); r.code != 0 || !strings.Contains(r.out, "unpin-blob") {
		t.Fatalf("unpin --preview: %s", r)
	}
	if r := m.deck(t, "-o", "json", "blob", "stat", hash); r.code != 0 || json.Unmarshal([]byte(r.out), &doc) != nil || !doc.Pinned {
		t.Fatalf("a preview changed the blob: %s", r)
	}
	if r := m.deck(t, "--identity", "alice", "blob", "unpin", hash, "--yes"); r.code != 0 || !strings.Contains(r.out, "pinned=false") {
		t.Fatalf("unpin: %s", r)
	}
	if r := m.deck(t, "--identity", "alice", "blob", "replicas", hash, "0"); r.code != api.ExitInvalid {
		t.Fatalf("replicas 0: %s", r)
	}
	if r := m.deck(t, "--identity", "alice", "-o", "json", "blob", "replicas", hash, "2", "--yes"); r.code != 0 ||
		json.Unmarshal([]byte(r.out), &doc) != nil || doc.Replicas != 2 {
		t.Fatalf("replicas 2: %s (doc %+v)", r, doc)
	}
	if r := m.deck(t, "--identity", "alice", "blob", "rm", hash); r.code != api.ExitRefused {
		t.Fatalf("rm without a terminal or --yes: %s", r)
	}
	if r := m.deck(t, "--identity", "alice", "blob", "rm", hash, "--yes"); r.code != 0 {
		t.Fatalf("rm: %s", r)
	}
	if r := m.deck(t, "blob", "get", hash, "--out", filepath.Join(dir, "gone.bin")); r.code != api.ExitNotFound {
		t.Fatalf("get after rm: %s", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "gone.bin")); !os.IsNotExist(err) {
		t.Fatal("a failed get left a file behind")
	}
	if r := m.deck(t, "blob", "stat", "not-a-hash"); r.code != api.ExitInvalid {
		t.Fatalf("stat of a bad hash: %s", r)
	}
	if r := m.deck(t, "--identity", "mallory", "blob", "put", file); r.code != api.ExitPermission {
		t.Fatalf("put by a stranger: %s", r)
	}
	r = m.deck(t, "-o", "json", "blob", "gc")
	var gcs []map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.out), &gcs) != nil || len(gcs) == 0 {
		t.Fatalf("gc: %s", r)
	}
}
