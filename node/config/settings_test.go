package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/deck-mesh/deck/node/api"
)

func TestSettingsRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "deck", "config.toml")
	s, err := LoadSettings(path)
	if err != nil || s != (Settings{}) {
		t.Fatalf("missing settings: %+v %v", s, err)
	}
	want := Settings{Cluster: "/srv/deck/prod.toml", Operator: "alice", Listen: "0.0.0.0:7950"}
	if err := SaveSettings(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := LoadSettings(path)
	if err != nil || got != want {
		t.Fatalf("got %+v %v", got, err)
	}
	if err := SaveSettings(path, Settings{Operator: "alice"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := LoadSettings(path); got != (Settings{Operator: "alice"}) {
		t.Errorf("cleared cluster not saved: %+v", got)
	}
}

func TestParseSettingsErrors(t *testing.T) {
	tests := []struct {
		doc, field string
	}{
		{`cluster = "relative.toml"`, "cluster"},
		{`cluster = 3`, "cluster"},
		{`operator = "a/b"`, "operator"},
		{`opertor = "alice"`, "opertor"},
		{`cluster = `, "cluster"},
		{`listen = "7950"`, "listen"},
		{`listen = "lab-host:7950"`, "listen"},
		{`listen = "0.0.0.0:http"`, "listen"},
	}
	for _, tt := range tests {
		_, err := ParseSettings([]byte(tt.doc))
		if !errors.Is(err, api.ErrInvalid) || !isField(err, tt.field) {
			t.Errorf("%q: %v, want field %s", tt.doc, err, tt.field)
		}
	}
	if err := SaveSettings(filepath.Join(t.TempDir(), "c.toml"), Settings{Cluster: "rel"}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("saved invalid settings: %v", err)
	}
}

func TestBookmarks(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bookmarks.toml")
	b, err := LoadBookmarks(path)
	if err != nil || b.Len() != 0 {
		t.Fatalf("missing bookmarks: %v %v", b, err)
	}
	if err := b.Set(Bookmark{Name: "prod", Cluster: "/srv/prod.toml"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(Bookmark{Name: "lab.v2", Cluster: "/srv/lab.toml"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(Bookmark{Name: "rel", Cluster: "cluster.toml"}); err != nil {
		t.Fatal(err)
	}
	if bm, _ := b.Get("rel"); !filepath.IsAbs(bm.Cluster) {
		t.Errorf("relative path kept: %q", bm.Cluster)
	}
	if err := b.Set(Bookmark{Name: "bad/name", Cluster: "/x"}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("bad name: %v", err)
	}
	if err := b.Set(Bookmark{Name: "empty", Cluster: ""}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("empty path: %v", err)
	}
	if err := b.Set(Bookmark{Name: "as-bob", Cluster: "/srv/lab.toml", Identity: "bob"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(Bookmark{Name: "bad-id", Cluster: "/x", Identity: "../bob"}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("bad identity: %v", err)
	}
	if err := b.Add(Bookmark{Name: "prod", Cluster: "/srv/other.toml"}); !errors.Is(err, api.ErrExists) {
		t.Errorf("add over an existing name: %v", err)
	}
	if bm, _ := b.Get("prod"); bm.Cluster != "/srv/prod.toml" {
		t.Errorf("a refused add changed the bookmark: %+v", bm)
	}
	if err := SaveBookmarks(path, b); err != nil {
		t.Fatal(err)
	}
	got, err := LoadBookmarks(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.List(), b.List()) {
		t.Fatalf("round trip: %v vs %v", got.List(), b.List())
	}
	if l := got.List(); l[0].Name != "as-bob" || l[0].Identity != "bob" || l[1].Name != "lab.v2" || l[2].Name != "prod" {
		t.Errorf("not sorted: %v", l)
	}
	if err := got.Remove("prod"); err != nil {
		t.Fatal(err)
	}
	if err := got.Remove("prod"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("second remove: %v", err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != SettingsFileMode {
		t.Errorf("mode: %v %v", st.Mode(), err)
	}
}

func TestBookmarksLimit(t *testing.T) {
	var b Bookmarks
	for i := 0; i < MaxBookmarks; i++ {
		if err := b.Set(Bookmark{Name: fmt.Sprintf("b%03d", i), Cluster: "/x"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Set(Bookmark{Name: "one-more", Cluster: "/x"}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("limit not enforced: %v", err)
	}
	if err := b.Set(Bookmark{Name: "b000", Cluster: "/y"}); err != nil {
		t.Errorf("replacing at the limit refused: %v", err)
	}
}

func TestParseBookmarksErrors(t *testing.T) {
	tests := []struct {
		doc, field string
	}{
		{"[bookmarks]\nprod = 1", "bookmarks.prod"},
		{"[bookmarks]\nprod = \"rel.toml\"", "bookmarks.prod"},
		{"[bookmarks]\n\"a/b\" = \"/x\"", `bookmarks."a/b"`},
		{"bookmarks = 1", "bookmarks"},
		{"[bookmark]\nprod = \"/x\"", "bookmark"},
		{"[bookmarks]\nprod = { identity = \"alice\" }", "bookmarks.prod.cluster"},
		{"[bookmarks]\nprod = { cluster = \"/x\", identity = \"a/b\" }", "bookmarks.prod.identity"},
		{"[bookmarks]\nprod = { cluster = \"/x\", colour = \"red\" }", "bookmarks.prod.colour"},
		{"[bookmarks]\nprod = { cluster = \"rel\" }", "bookmarks.prod.cluster"},
		{"[bookmarks]\nprod = { cluster = 3 }", "bookmarks.prod.cluster"},
		{"[bookmarks]\nprod = \"/x\\u0007\"", "bookmarks.prod"},
	}
	for _, tt := range tests {
		_, err := ParseBookmarks([]byte(tt.doc))
		if !errors.Is(err, api.ErrInvalid) || !isField(err, tt.field) {
			t.Errorf("%q: %v, want field %s", tt.doc, err, tt.field)
		}
	}
}

// TestAttackBookmarkPathCannotInjectTerminalEscapes: bookmarks.toml may be
// shared or synced between operators, and the deck's picker prints every
// path on the operator's terminal. A path carrying an escape sequence (here
// one that retitles the terminal and one that moves the cursor) must be
// refused when the file is read, never reach the screen.
func TestAttackBookmarkPathCannotInjectTerminalEscapes(t *testing.T) {
	for _, doc := range []string{
		"[bookmarks]\nprod = \"/srv/\\u001b]0;owned\\u0007prod.toml\"\n",
		"[bookmarks]\nprod = { cluster = \"/srv/\\u001b[2Aprod.toml\" }\n",
		"[bookmarks]\nprod = \"/srv/\\u009b2Aprod.toml\"\n",
	} {
		b, err := ParseBookmarks([]byte(doc))
		if !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%q: accepted (%v), want a refusal", doc, b.List())
		}
	}
	var b Bookmarks
	if err := b.Set(Bookmark{Name: "prod", Cluster: "/srv/\x1b]0;owned\x07"}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("Set accepted an escape sequence: %v", err)
	}
}

func TestBookmarkPathBound(t *testing.T) {
	long := "/" + strings.Repeat("a", MaxPathBytes)
	var b Bookmarks
	if err := b.Set(Bookmark{Name: "long", Cluster: long}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("a %d-byte path accepted: %v", len(long), err)
	}
	if _, err := ParseBookmarks([]byte("[bookmarks]\nlong = \"" + long + "\"\n")); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("a %d-byte path parsed: %v", len(long), err)
	}
}
