package config

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/deck-mesh/deck/node/api"
)

func TestDirsFrom(t *testing.T) {
	home := func() (string, error) { return "/home/op", nil }
	tests := []struct {
		name       string
		env        map[string]string
		home       func() (string, error)
		cfg, data  string
		wantErrSub bool
	}{
		{"defaults", nil, home, "/home/op/.config/deck", "/home/op/.local/share/deck", false},
		{"xdg state", map[string]string{XDGStateEnv: "/st"}, home, "/home/op/.config/deck", "/home/op/.local/share/deck", false},
		{"xdg set", map[string]string{XDGConfigEnv: "/cfg", XDGDataEnv: "/data"}, home, "/cfg/deck", "/data/deck", false},
		{"relative xdg ignored", map[string]string{XDGConfigEnv: "rel/cfg", XDGDataEnv: "./d"}, home, "/home/op/.config/deck", "/home/op/.local/share/deck", false},
		{"xdg set, no home needed", map[string]string{XDGConfigEnv: "/c", XDGDataEnv: "/d"},
			func() (string, error) { return "", errors.New("no home") }, "/c/deck", "/d/deck", false},
		{"no home", nil, func() (string, error) { return "", errors.New("no home") }, "", "", true},
		{"relative home", nil, func() (string, error) { return "op", nil }, "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := DirsFrom(func(k string) string { return tt.env[k] }, tt.home)
			if tt.wantErrSub {
				if err == nil {
					t.Fatalf("want error, got %+v", d)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wantState := "/home/op/.local/state/deck"
			switch {
			case tt.env[XDGStateEnv] != "":
				wantState = filepath.Join(tt.env[XDGStateEnv], "deck")
			case tt.name == "xdg set, no home needed":
				wantState = "" // no state dir: the deck keeps no recent list
			}
			if d.State != wantState || (wantState == "") != (d.RecentPath() == "") ||
				(wantState != "" && d.RecentPath() != filepath.Join(wantState, "recent.toml")) {
				t.Errorf("state %q recent %q, want state %q", d.State, d.RecentPath(), wantState)
			}
			if d.Config != tt.cfg || d.Data != tt.data {
				t.Errorf("got %+v, want config %s data %s", d, tt.cfg, tt.data)
			}
			if d.SettingsPath() != filepath.Join(tt.cfg, "config.toml") ||
				d.BookmarksPath() != filepath.Join(tt.cfg, "bookmarks.toml") ||
				d.Operators().Dir != filepath.Join(tt.cfg, "operators") {
				t.Errorf("layout paths wrong: %s %s %s", d.SettingsPath(), d.BookmarksPath(), d.Operators().Dir)
			}
		})
	}
}

func TestNodeDataDir(t *testing.T) {
	d := Dirs{Config: "/c", Data: "/d"}
	if p, err := d.NodeDataDir("lab"); err != nil || p != "/d/lab" {
		t.Errorf("lab: %q %v", p, err)
	}
	for _, bad := range []string{"..", "../x", "", "a/b"} {
		if _, err := d.NodeDataDir(bad); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestResolveClusterPath(t *testing.T) {
	cfg := Settings{Cluster: "/cfg/c.toml"}
	tests := []struct {
		flag, env string
		s         Settings
		path, src string
		notFound  bool
	}{
		{"/f.toml", "/e.toml", cfg, "/f.toml", "flag", false},
		{"", "/e.toml", cfg, "/e.toml", "env", false},
		{"", "", cfg, "/cfg/c.toml", "config", false},
		{"", "", Settings{}, "", "", true},
	}
	for _, tt := range tests {
		p, src, err := ResolveClusterPath(tt.flag, tt.env, tt.s)
		if tt.notFound {
			if !errors.Is(err, api.ErrNotFound) {
				t.Errorf("want not found, got %q %v", p, err)
			}
			continue
		}
		if err != nil || p != tt.path || src != tt.src {
			t.Errorf("flag=%q env=%q: got %q %q %v", tt.flag, tt.env, p, src, err)
		}
	}
}

func TestResolveOperator(t *testing.T) {
	tests := []struct {
		flag    string
		s       Settings
		want    string
		invalid bool
	}{
		{"bob", Settings{Operator: "alice"}, "bob", false},
		{"", Settings{Operator: "alice"}, "alice", false},
		{"", Settings{}, "", false},
		{"../alice", Settings{}, "", true},
	}
	for _, tt := range tests {
		got, err := ResolveOperator(tt.flag, tt.s)
		if tt.invalid != errors.Is(err, api.ErrInvalid) || got != tt.want {
			t.Errorf("flag %q: got %q %v", tt.flag, got, err)
		}
	}
}
