package config

import (
	"reflect"
	"testing"
)

// FuzzParseCluster feeds arbitrary bytes to the cluster-file parser: it must
// never panic, and whatever it accepts must survive a write/read round trip
// unchanged (so the writer can never produce a file the reader rejects).
func FuzzParseCluster(f *testing.F) {
	f.Add([]byte(`name = "x"
psk = "` + goodPSK + `"`))
	f.Add([]byte("name = \"lab\"\npsk = \"" + goodPSK + "\"\nbootstrap = [\"10.0.0.1:7400\"]\n[genesis]\nadmin_threshold = 1\nice_threshold = 1\n[[genesis.operators]]\nname = \"alice\"\npublic_key = \"ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"\n"))
	f.Add([]byte(`[genesis]
operators = [1, {name = 2}]`))
	f.Add([]byte(`bootstrap = ["[::1]:0", ":1", "a:b"]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCluster(data)
		if err != nil {
			return
		}
		out, err := MarshalCluster(c)
		if err != nil {
			t.Fatalf("accepted cluster does not marshal: %v", err)
		}
		back, err := ParseCluster(out)
		if err != nil {
			t.Fatalf("marshalled cluster does not parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(normalise(c), normalise(back)) {
			t.Fatalf("round trip changed the cluster:\n%+v\n%+v", c, back)
		}
	})
}

// normalise makes empty and nil slices compare equal: TOML cannot tell them
// apart and neither can any user of Cluster.
func normalise(c *Cluster) Cluster {
	n := *c
	if len(n.Bootstrap) == 0 {
		n.Bootstrap = nil
	}
	if len(n.Genesis.Operators) == 0 {
		n.Genesis.Operators = nil
	}
	return n
}

// FuzzParseSettingsAndBookmarks: config.toml and bookmarks.toml are edited
// by hand; neither parser may panic, and what they accept must save and
// load back unchanged.
func FuzzParseSettingsAndBookmarks(f *testing.F) {
	f.Add([]byte("cluster = \"/srv/prod.toml\"\noperator = \"alice\"\n"))
	f.Add([]byte("[bookmarks]\nprod = \"/srv/prod.toml\"\n\"lab.v2\" = \"/srv/lab.toml\"\n"))
	f.Add([]byte("[bookmarks]\nprod = 1\nbookmarks = []\n"))
	f.Add([]byte("[bookmarks]\nlab = { cluster = \"/srv/lab.toml\", identity = \"alice\" }\n[bookmarks.prod]\ncluster = \"/srv/prod.toml\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if s, err := ParseSettings(data); err == nil {
			p := dir + "/config.toml"
			if err := SaveSettings(p, s); err != nil {
				t.Fatalf("accepted settings do not save: %v", err)
			}
			if back, err := LoadSettings(p); err != nil || back != s {
				t.Fatalf("settings round trip: %+v %v vs %+v", back, err, s)
			}
		}
		if b, err := ParseBookmarks(data); err == nil {
			p := dir + "/bookmarks.toml"
			if err := SaveBookmarks(p, b); err != nil {
				t.Fatalf("accepted bookmarks do not save: %v", err)
			}
			back, err := LoadBookmarks(p)
			if err != nil || !reflect.DeepEqual(back.List(), b.List()) {
				t.Fatalf("bookmarks round trip: %v %v vs %v", back.List(), err, b.List())
			}
		}
	})
}

// FuzzParseRecent: recent.toml is the deck's own state, but it lives in the
// user's files like any other; the parser may not panic, and what it
// accepts must save and load back unchanged.
func FuzzParseRecent(f *testing.F) {
	f.Add([]byte("[[cluster]]\npath = \"/srv/prod.toml\"\nname = \"prod\"\nidentity = \"alice\"\n[[cluster]]\npath = \"/srv/lab.toml\"\n"))
	f.Add([]byte("[[cluster]]\npath = \"/x\"\n[[cluster]]\npath = \"/x\"\n"))
	f.Add([]byte("cluster = [{ path = \"/x\", name = 3 }]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRecent(data)
		if err != nil {
			return
		}
		if n := len(r.List()); n > MaxRecentClusters {
			t.Fatalf("%d entries accepted, bound %d", n, MaxRecentClusters)
		}
		p := t.TempDir() + "/recent.toml"
		if err := SaveRecent(p, r); err != nil {
			t.Fatalf("accepted recent list does not save: %v", err)
		}
		back, err := LoadRecent(p)
		if err != nil || !reflect.DeepEqual(back.List(), r.List()) {
			t.Fatalf("recent round trip: %v %v vs %v", back.List(), err, r.List())
		}
	})
}
