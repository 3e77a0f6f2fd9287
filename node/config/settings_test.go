package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
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
	if err := b.Set("prod", "/srv/prod.toml"); err != nil {
		t.Fatal(err)
	}
	if err := b.Set("lab.v2", "/srv/lab.toml"); err != nil {
		t.Fatal(err)
	}
	if err := b.Set("rel", "cluster.toml"); err != nil {
		t.Fatal(err)
	}
	if p, _ := b.Get("rel"); !filepath.IsAbs(p) {
		t.Errorf("relative path kept: %q", p)
	}
	if err := b.Set("bad/name", "/x"); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("bad name: %v", err)
	}
	if err := b.Set("empty", ""); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("empty path: %v", err)
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
	if l := got.List(); l[0].Name != "lab.v2" || l[1].Name != "prod" {
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
		if err := b.Set(fmt.Sprintf("b%03d", i), "/x"); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Set("one-more", "/x"); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("limit not enforced: %v", err)
	}
	if err := b.Set("b000", "/y"); err != nil {
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
	}
	for _, tt := range tests {
		_, err := ParseBookmarks([]byte(tt.doc))
		if !errors.Is(err, api.ErrInvalid) || !isField(err, tt.field) {
			t.Errorf("%q: %v, want field %s", tt.doc, err, tt.field)
		}
	}
}
