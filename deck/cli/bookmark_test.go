package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/deck-mesh/deck/deck"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/config"
)

// isolatedDirs points the XDG dirs of one test at its own temp dirs and
// returns them.
func isolatedDirs(t *testing.T) config.Dirs {
	t.Helper()
	t.Setenv(config.XDGConfigEnv, t.TempDir())
	t.Setenv(config.XDGStateEnv, t.TempDir())
	d, err := config.DefaultDirs()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// clusterFile writes a cluster file named name (no node runs it) with
// operator's key in operators/ beside it, and returns its path.
func writeClusterFile(t *testing.T, name, operator string) string {
	t.Helper()
	dir := t.TempDir()
	k, err := (&config.OperatorStore{Dir: filepath.Join(dir, "operators")}).Generate(operator)
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.NewCluster(name, []string{"127.0.0.1:9"}, []config.Operator{config.NewOperator(operator, k.Public)}, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".toml")
	if err := config.WriteCluster(path, c, false); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBookmarkAddLsRm(t *testing.T) {
	dirs := isolatedDirs(t)
	lab := writeClusterFile(t, "lab", "carol")
	prod := writeClusterFile(t, "prod", "dave")

	expect := func(r result, code int, want string) {
		t.Helper()
		if r.code != code || !strings.Contains(r.out+r.err, want) {
			t.Errorf("want exit %d with %q, got %s", code, want, r)
		}
	}
	expect(run(t, IO{}, "bookmark", "add", "lab", "--cluster", lab), api.ExitOK, "bookmarked lab: cluster lab")
	expect(run(t, IO{}, "bookmark", "add", "lab", "--cluster", prod), api.ExitExists, `bookmark "lab"`)
	expect(run(t, IO{}, "bookmark", "add", "prod-as-dave", "--cluster", prod, "--identity", "dave"), api.ExitOK, "as dave")
	expect(run(t, IO{}, "bookmark", "add", "bad/name", "--cluster", prod), api.ExitInvalid, "bookmark name")
	expect(run(t, IO{}, "bookmark", "add", "gone", "--cluster", filepath.Join(t.TempDir(), "none.toml")), api.ExitNotFound, "none.toml")
	expect(run(t, IO{}, "bookmark", "add", "nokey", "--cluster", prod, "--identity", "nobody"), api.ExitNotFound, `operator identity "nobody"`)
	expect(run(t, IO{}, "bookmark", "add", "badid", "--cluster", prod, "--identity", "no/body"), api.ExitInvalid, "operator name")
	expect(run(t, IO{}, "bookmark", "add"), api.ExitInvalid, "want one bookmark NAME")

	st, err := os.Stat(dirs.BookmarksPath())
	if err != nil || st.Mode().Perm() != config.SettingsFileMode {
		t.Fatalf("bookmarks.toml: %v %v, want mode %o", st, err, config.SettingsFileMode)
	}

	// A bookmarked file that goes away is listed with the problem.
	if err := os.Remove(prod); err != nil {
		t.Fatal(err)
	}
	r := run(t, IO{}, "bookmark", "ls")
	expect(r, api.ExitOK, "NAME")
	for _, want := range []string{"lab  ", "default", "prod-as-dave", "✗ missing", "dave", lab} {
		if !strings.Contains(r.out, want) {
			t.Errorf("ls lacks %q:\n%s", want, r.out)
		}
	}
	r = run(t, IO{}, "bookmark", "ls", "-o", "json")
	var rows []bookmarkRow
	if err := json.Unmarshal([]byte(r.out), &rows); err != nil || r.code != 0 {
		t.Fatalf("ls -o json: %v\n%s", err, r)
	}
	want := []bookmarkRow{
		{Name: "lab", Cluster: "lab", Path: lab},
		{Name: "prod-as-dave", Path: prod, Identity: "dave", Problem: "missing"},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("ls -o json:\n%+v\nwant\n%+v", rows, want)
	}

	expect(run(t, IO{}, "bookmark", "rm", "lab"), api.ExitOK, "removed bookmark lab")
	expect(run(t, IO{}, "bookmark", "rm", "lab"), api.ExitNotFound, `bookmark "lab"`)
	expect(run(t, IO{}, "bookmark", "rm", "a/b"), api.ExitInvalid, "bookmark name")
	r = run(t, IO{}, "bookmark", "ls", "-o", "json")
	if err := json.Unmarshal([]byte(r.out), &rows); err != nil || len(rows) != 1 || rows[0].Name != "prod-as-dave" {
		t.Errorf("after rm: %v %+v", err, rows)
	}
	expect(run(t, IO{}, "bookmark", "rm", "prod-as-dave"), api.ExitOK, "removed")
	expect(run(t, IO{}, "bookmark", "ls"), api.ExitOK, "no bookmarks")
	if r := run(t, IO{}, "bookmark", "ls", "-o", "json"); strings.TrimSpace(r.out) != "[]" {
		t.Errorf("empty ls -o json: %s", r)
	}
}

// TestBookmarkBadFileIsKept: a bookmarks.toml that does not parse (edited
// by hand, or by a newer deck) is reported with its file and field, and no
// command rewrites it: what cannot be read is never overwritten.
func TestBookmarkBadFileIsKept(t *testing.T) {
	dirs := isolatedDirs(t)
	lab := writeClusterFile(t, "lab", "carol")
	const bad = "[bookmarks]\nprod = 3\nlab = \"/srv/lab.toml\"\n"
	if err := os.MkdirAll(filepath.Dir(dirs.BookmarksPath()), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dirs.BookmarksPath(), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"bookmark", "add", "new", "--cluster", lab},
		{"bookmark", "rm", "lab"},
		{"bookmark", "ls"},
	} {
		r := run(t, IO{}, args...)
		if r.code != api.ExitInvalid || !strings.Contains(r.err, dirs.BookmarksPath()) || !strings.Contains(r.err, "bookmarks.prod") {
			t.Errorf("%v: want exit 2 naming the file and field, got %s", args, r)
		}
		if data, _ := os.ReadFile(dirs.BookmarksPath()); string(data) != bad {
			t.Fatalf("%v rewrote the file it could not parse:\n%s", args, data)
		}
	}
}

// TestAttachTargets: the picker lists bookmarks by name, then the recent
// clusters that are not bookmarked as the same identity, each named from
// its file, or with what is wrong with it.
func TestAttachTargets(t *testing.T) {
	dirs := isolatedDirs(t)
	lab, prod := writeClusterFile(t, "lab", "carol"), writeClusterFile(t, "prod", "dave")
	gone := filepath.Join(t.TempDir(), "gone.toml")
	bm := &config.Bookmarks{}
	for _, b := range []config.Bookmark{{Name: "lab", Cluster: lab, Identity: "carol"}, {Name: "old", Cluster: gone}} {
		if err := bm.Set(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := config.SaveBookmarks(dirs.BookmarksPath(), bm); err != nil {
		t.Fatal(err)
	}
	for _, rc := range []config.RecentCluster{
		{Path: gone, Cluster: "gone", Identity: "erin"},
		{Path: prod, Cluster: "was-prod"},
		{Path: lab, Cluster: "lab", Identity: "carol"}, // bookmarked: listed once
	} {
		if err := config.RecordRecent(dirs.RecentPath(), rc); err != nil {
			t.Fatal(err)
		}
	}
	a := &attacher{base: NewRoot(IO{})}
	got, err := a.targets()
	if err != nil {
		t.Fatal(err)
	}
	want := []deck.Target{
		{Bookmark: "lab", Cluster: "lab", Path: lab, Identity: "carol"},
		{Bookmark: "old", Path: gone, Problem: "missing"},
		{Cluster: "prod", Path: prod},
		{Cluster: "gone", Path: gone, Identity: "erin", Problem: "missing"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("targets:\n%+v\nwant\n%+v", got, want)
	}

	// A recent file that does not parse: the bookmarks are still listed,
	// the problem reported.
	if err := os.WriteFile(dirs.RecentPath(), []byte("[[cluster]]\npath = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err = a.targets()
	if err == nil || !strings.Contains(err.Error(), dirs.RecentPath()) || len(got) != 2 {
		t.Errorf("with a bad recent file: %d targets, %v", len(got), err)
	}
}

// TestAttachCommandKeepsStartFlags: an attach runs with every flag the deck
// started with, its target's file and identity taking the place of
// --cluster and --identity.
func TestAttachCommandKeepsStartFlags(t *testing.T) {
	root := NewRoot(IO{})
	if err := root.ParseFlags([]string{"--cluster", "/srv/a.toml", "--identity", "bob", "--insecure-permissions"}); err != nil {
		t.Fatal(err)
	}
	a := &attacher{base: root}
	ctx := context.WithValue(context.Background(), struct{}{}, "attach")
	for _, tt := range []struct {
		target deck.Target
		id     string
	}{
		{deck.Target{Path: "/srv/lab.toml"}, "bob"},
		{deck.Target{Path: "/srv/lab.toml", Identity: "carol"}, "carol"},
	} {
		cmd, err := a.command(ctx, tt.target)
		if err != nil {
			t.Fatal(err)
		}
		cluster, _ := cmd.Flags().GetString("cluster")
		id, _ := cmd.Flags().GetString("identity")
		insecure, err := insecurePermissions(cmd)
		if cluster != "/srv/lab.toml" || id != tt.id || !insecure || err != nil || cmd.Context() != ctx {
			t.Errorf("%+v: cluster %q identity %q insecure %v (%v), context kept %v", tt.target, cluster, id, insecure, err, cmd.Context() == ctx)
		}
	}
	if orig, _ := root.Flags().GetString("cluster"); orig != "/srv/a.toml" {
		t.Errorf("the attach changed the deck's own --cluster: %q", orig)
	}
}
