package config

import (
	"fmt"
	"math"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/placement"
	"github.com/deck-mesh/deck/node/snapshot"
)

// MaxWorkloadGroups bounds the [[workload]] tables of a cluster file.
const MaxWorkloadGroups = 256

// WorkloadGroup is one [[workload]] table: a placement.GroupSpec in file form.
// The cluster file carries the spec so every node, and every console that
// previews a blast radius, places the same workload.
type WorkloadGroup struct {
	Name          string   `toml:"name"`
	Kind          string   `toml:"kind"` // solo | replica | standby | fork
	DaemonKind    string   `toml:"daemon_kind"`
	Members       int      `toml:"members"`
	Parent        string   `toml:"parent,omitempty"`
	ForkAt        int      `toml:"fork_at,omitempty"`
	ChainReplicas int      `toml:"chain_replicas,omitempty"`
	Requires      []string `toml:"requires,omitempty"`
	Load          float64  `toml:"load"`
}

var groupKinds = map[string]snapshot.GroupKind{
	"solo": snapshot.GroupSolo, "replica": snapshot.GroupReplica,
	"standby": snapshot.GroupStandby, "fork": snapshot.GroupFork,
}

// WorkloadFromSpec renders a spec as [[workload]] tables.
func WorkloadFromSpec(s placement.Spec) []WorkloadGroup {
	out := make([]WorkloadGroup, 0, len(s.Groups))
	for _, g := range s.Groups {
		out = append(out, WorkloadGroup{
			Name: g.Name, Kind: g.Kind.String(), DaemonKind: g.DaemonKind, Members: g.Members,
			Parent: g.Parent, ForkAt: int(g.ForkAt), ChainReplicas: g.ChainReplicas,
			Requires: g.Requires, Load: g.Load,
		})
	}
	return out
}

// Spec converts the file's workload into a validated placement.Spec.
func (c *Cluster) Spec() (placement.Spec, error) {
	var s placement.Spec
	for i, w := range c.Workload {
		field := func(k string) string { return fmt.Sprintf("workload[%d].%s", i, k) }
		kind, ok := groupKinds[w.Kind]
		if !ok {
			return placement.Spec{}, fieldErr(field("kind"), "%q is not solo, replica, standby or fork", w.Kind)
		}
		if w.ForkAt < 0 {
			return placement.Spec{}, fieldErr(field("fork_at"), "must not be negative")
		}
		if math.IsNaN(w.Load) || w.Load < 0 || w.Load > 1 {
			return placement.Spec{}, fieldErr(field("load"), "must be between 0 and 1")
		}
		s.Groups = append(s.Groups, placement.GroupSpec{
			Name: w.Name, Kind: kind, DaemonKind: w.DaemonKind, Members: w.Members, Parent: w.Parent,
			ForkAt: uint64(w.ForkAt), ChainReplicas: w.ChainReplicas, Requires: w.Requires, Load: w.Load,
		})
	}
	if err := s.Validate(); err != nil {
		return placement.Spec{}, fmt.Errorf("%w: workload: %v", api.ErrInvalid, err)
	}
	return s, nil
}

// readWorkload decodes the optional [[workload]] tables.
func readWorkload(root *table) []WorkloadGroup {
	var out []WorkloadGroup
	for _, t := range root.tables("workload", MaxWorkloadGroups) {
		w := WorkloadGroup{
			Name: t.str("name"), Kind: t.str("kind"), DaemonKind: t.str("daemon_kind"),
			Members: t.integer("members", 1), Parent: t.str("parent"), ForkAt: t.integer("fork_at", 0),
			ChainReplicas: t.integer("chain_replicas", 0), Requires: t.strings("requires", 16),
			Load: t.float("load", 0),
		}
		for _, req := range []string{"name", "kind", "daemon_kind"} {
			if !t.has(req) {
				t.fail(req, "is missing")
			}
		}
		t.unknown()
		out = append(out, w)
	}
	return out
}

// float reads an optional number (TOML float or integer); missing yields def.
func (t *table) float(key string, def float64) float64 {
	v, ok := t.get(key)
	if !ok {
		return def
	}
	switch n := v.(type) {
	case float64:
		return n
	case int64:
		return float64(n)
	}
	t.fail(key, "want a number, got %s", tomlType(v))
	return def
}
