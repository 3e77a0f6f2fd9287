package config

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
)

// RecentCluster is one cluster the deck attached to: the cluster file, the
// cluster's name as the file said then, and the operator identity named for
// it ("" when the deck used its default).
type RecentCluster struct {
	Path     string
	Cluster  string
	Identity string
}

// Recent is recent.toml: the clusters the deck attached to, most recent
// first, at most MaxRecentClusters. The zero value is empty and ready.
type Recent struct {
	list []RecentCluster
}

func (rc RecentCluster) validate() error {
	if err := ValidateClusterPath(rc.Path); err != nil {
		return err
	}
	if rc.Cluster != "" {
		if err := ValidateClusterName(rc.Cluster); err != nil {
			return err
		}
	}
	if rc.Identity != "" {
		if err := ValidateOperatorName(rc.Identity); err != nil {
			return err
		}
	}
	return nil
}

// Touch puts rc first: an entry for the same file and identity moves up
// (taking rc's cluster name), and the oldest falls off past
// MaxRecentClusters.
func (r *Recent) Touch(rc RecentCluster) error {
	if err := rc.validate(); err != nil {
		return fmt.Errorf("config: recent cluster: %w", err)
	}
	out := make([]RecentCluster, 0, min(len(r.list)+1, MaxRecentClusters))
	out = append(out, rc)
	for _, e := range r.list {
		if len(out) == MaxRecentClusters {
			break
		}
		if e.Path != rc.Path || e.Identity != rc.Identity {
			out = append(out, e)
		}
	}
	r.list = out
	return nil
}

// List returns the entries, most recent first.
func (r *Recent) List() []RecentCluster { return append([]RecentCluster(nil), r.list...) }

// ParseRecent decodes recent.toml's bytes:
//
//	[[cluster]]
//	path = "/home/op/clusters/prod.toml"
//	name = "prod"
//	identity = "alice"
//
// A repeated (path, identity) keeps its first, most recent, entry.
func ParseRecent(data []byte) (*Recent, error) {
	root, err := parseTOML(data)
	if err != nil {
		return nil, err
	}
	entries := root.tables("cluster", MaxRecentClusters)
	root.unknown()
	r := &Recent{}
	seen := make(map[RecentCluster]bool, len(entries))
	for _, t := range entries {
		rc := RecentCluster{Path: t.str("path"), Cluster: t.str("name"), Identity: t.str("identity")}
		t.unknown()
		if !t.has("path") {
			t.fail("path", "missing")
			continue
		}
		if err := rc.validate(); err != nil {
			t.fail("path", "%s", err.Error())
			continue
		}
		key := RecentCluster{Path: rc.Path, Identity: rc.Identity}
		if seen[key] {
			continue
		}
		seen[key] = true
		r.list = append(r.list, rc)
	}
	if err := root.errs.err(); err != nil {
		return nil, err
	}
	return r, nil
}

// LoadRecent reads recent.toml; a missing file is an empty list.
func LoadRecent(path string) (*Recent, error) {
	data, _, err := readBounded(path)
	if errors.Is(err, api.ErrNotFound) {
		return &Recent{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config: recent clusters: %w", err)
	}
	r, err := ParseRecent(data)
	if err != nil {
		return nil, fmt.Errorf("config: recent clusters %s: %w", path, err)
	}
	return r, nil
}

type recentEntry struct {
	Path     string `toml:"path"`
	Name     string `toml:"name,omitempty"`
	Identity string `toml:"identity,omitempty"`
}

// SaveRecent writes recent.toml atomically (temp file, fsync, rename),
// mode 0600.
func SaveRecent(path string, r *Recent) error {
	doc := struct {
		Cluster []recentEntry `toml:"cluster"`
	}{}
	for _, rc := range r.list {
		doc.Cluster = append(doc.Cluster, recentEntry{Path: rc.Path, Name: rc.Cluster, Identity: rc.Identity})
	}
	var buf bytes.Buffer
	buf.WriteString("# Clusters the deck attached to, most recent first (written by the deck).\n\n")
	if err := newEncoder(&buf).Encode(doc); err != nil {
		return fmt.Errorf("config: encode recent clusters: %w", err)
	}
	if err := identity.WriteFileAtomic(path, buf.Bytes(), SettingsFileMode, false); err != nil {
		return fmt.Errorf("config: save recent clusters: %w", err)
	}
	return nil
}

// RecordRecent puts rc first in the recent file at path. A file that does
// not parse is left as it is and the error returned: what cannot be read
// is never overwritten.
func RecordRecent(path string, rc RecentCluster) error {
	r, err := LoadRecent(path)
	if err != nil {
		return err
	}
	if err := r.Touch(rc); err != nil {
		return err
	}
	return SaveRecent(path, r)
}
