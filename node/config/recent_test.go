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

func TestRecentTouchOrderAndBound(t *testing.T) {
	var r Recent
	for i := 0; i < MaxRecentClusters+3; i++ {
		if err := r.Touch(RecentCluster{Path: fmt.Sprintf("/srv/c%02d.toml", i), Cluster: fmt.Sprintf("c%02d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	l := r.List()
	if len(l) != MaxRecentClusters {
		t.Fatalf("%d entries, want the bound %d", len(l), MaxRecentClusters)
	}
	if l[0].Cluster != fmt.Sprintf("c%02d", MaxRecentClusters+2) || l[len(l)-1].Cluster != "c03" {
		t.Errorf("not most recent first, oldest dropped: first %s last %s", l[0].Cluster, l[len(l)-1].Cluster)
	}
	// Touching an entry again moves it up instead of repeating it; the same
	// file as another identity is an entry of its own.
	if err := r.Touch(RecentCluster{Path: "/srv/c10.toml", Cluster: "renamed"}); err != nil {
		t.Fatal(err)
	}
	if err := r.Touch(RecentCluster{Path: "/srv/c10.toml", Cluster: "renamed", Identity: "bob"}); err != nil {
		t.Fatal(err)
	}
	l = r.List()
	if len(l) != MaxRecentClusters || l[0].Identity != "bob" || l[1].Path != "/srv/c10.toml" || l[1].Cluster != "renamed" {
		t.Errorf("touch did not move the entry up: %+v", l[:3])
	}
	n := 0
	for _, e := range l {
		if e.Path == "/srv/c10.toml" && e.Identity == "" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("c10 listed %d times", n)
	}
	for _, bad := range []RecentCluster{
		{Path: "rel.toml"}, {Path: ""}, {Path: "/x", Cluster: "Bad Name"}, {Path: "/x", Identity: "a/b"}, {Path: "/x\x1b[2A"},
	} {
		if err := r.Touch(bad); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

func TestRecentRoundTripAndMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "recent.toml")
	r, err := LoadRecent(path)
	if err != nil || len(r.List()) != 0 {
		t.Fatalf("missing file: %v %v", r, err)
	}
	if err := RecordRecent(path, RecentCluster{Path: "/srv/lab.toml", Cluster: "lab"}); err != nil {
		t.Fatal(err)
	}
	if err := RecordRecent(path, RecentCluster{Path: "/srv/prod.toml", Cluster: "prod", Identity: "alice"}); err != nil {
		t.Fatal(err)
	}
	got, err := LoadRecent(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []RecentCluster{{Path: "/srv/prod.toml", Cluster: "prod", Identity: "alice"}, {Path: "/srv/lab.toml", Cluster: "lab"}}
	if !reflect.DeepEqual(got.List(), want) {
		t.Errorf("got %+v, want %+v", got.List(), want)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != SettingsFileMode {
		t.Errorf("mode: %v %v", st, err)
	}
}

func TestRecentUnparsableFileIsKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "recent.toml")
	const bad = "[[cluster]]\npath = 3\n"
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	err := RecordRecent(path, RecentCluster{Path: "/srv/lab.toml"})
	if !errors.Is(err, api.ErrInvalid) || !isField(err, "cluster[0].path") {
		t.Fatalf("RecordRecent on a bad file: %v", err)
	}
	if data, _ := os.ReadFile(path); string(data) != bad {
		t.Errorf("the unparsable file was rewritten:\n%s", data)
	}
}

func TestParseRecentErrors(t *testing.T) {
	many := ""
	for i := 0; i <= MaxRecentClusters; i++ {
		many += fmt.Sprintf("[[cluster]]\npath = \"/c%d\"\n", i)
	}
	for _, tt := range []struct{ doc, field string }{
		{"[[cluster]]\nname = \"lab\"\n", "cluster[0].path"},
		{"[[cluster]]\npath = \"rel\"\n", "cluster[0].path"},
		{"[[cluster]]\npath = \"/x\"\nname = \"Lab!\"\n", "cluster[0].path"},
		{"[[cluster]]\npath = \"/x\"\nwhen = 3\n", "cluster[0].when"},
		{"cluster = 3\n", "cluster"},
		{"clusters = []\n", "clusters"},
		{many, "cluster"},
	} {
		if _, err := ParseRecent([]byte(tt.doc)); !errors.Is(err, api.ErrInvalid) || !isField(err, tt.field) {
			t.Errorf("%q: %v, want field %s", tt.doc, err, tt.field)
		}
	}
	r, err := ParseRecent([]byte("[[cluster]]\npath = \"/x\"\n[[cluster]]\npath = \"/x\"\nname = \"older\"\n"))
	if err != nil || len(r.List()) != 1 || r.List()[0].Cluster != "" {
		t.Errorf("a repeated entry: %+v %v, want the first kept", r, err)
	}
}
