package config

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/deck-mesh/deck/node/api"
)

// Environment variables the layout honours.
const (
	// ClusterEnv names the cluster file to attach to (DESIGN §7).
	ClusterEnv = "DECK_CLUSTER"
	// XDGConfigEnv and XDGDataEnv are the XDG base directory variables.
	XDGConfigEnv = "XDG_CONFIG_HOME"
	XDGDataEnv   = "XDG_DATA_HOME"
	XDGStateEnv  = "XDG_STATE_HOME"
)

// Dirs is the XDG layout of one operator's deck:
//
//	$XDG_CONFIG_HOME/deck/config.toml      default cluster and operator
//	$XDG_CONFIG_HOME/deck/bookmarks.toml   named clusters for the picker
//	$XDG_CONFIG_HOME/deck/operators/       <name>.key (0600) and <name>.pub
//	$XDG_DATA_HOME/deck/<cluster>/         a headless node's data
//	$XDG_STATE_HOME/deck/recent.toml       clusters the deck attached to
type Dirs struct {
	Config string
	Data   string
	State  string
}

// DefaultDirs resolves the layout from the process environment.
func DefaultDirs() (Dirs, error) { return DirsFrom(os.Getenv, os.UserHomeDir) }

// DirsFrom resolves the layout from getenv and, when a variable is unset or
// relative, from the home directory. The XDG spec says relative values are
// invalid and must be ignored; honouring them would make the key store move
// with the working directory.
func DirsFrom(getenv func(string) string, home func() (string, error)) (Dirs, error) {
	base := func(env, fallback string) (string, error) {
		if v := getenv(env); v != "" && filepath.IsAbs(v) {
			return filepath.Join(v, "deck"), nil
		}
		h, err := home()
		if err != nil {
			return "", fmt.Errorf("config: %s is unset and the home directory is unknown: %w", env, err)
		}
		if h == "" || !filepath.IsAbs(h) {
			return "", fmt.Errorf("config: %s is unset and the home directory %q is not absolute", env, h)
		}
		return filepath.Join(h, fallback, "deck"), nil
	}
	cfg, err := base(XDGConfigEnv, ".config")
	if err != nil {
		return Dirs{}, err
	}
	data, err := base(XDGDataEnv, filepath.Join(".local", "share"))
	if err != nil {
		return Dirs{}, err
	}
	// The state dir only keeps the recent-clusters list: a machine without
	// one (no $XDG_STATE_HOME, no home) runs the deck without it.
	state, _ := base(XDGStateEnv, filepath.Join(".local", "state"))
	return Dirs{Config: cfg, Data: data, State: state}, nil
}

// SettingsPath is config.toml.
func (d Dirs) SettingsPath() string { return filepath.Join(d.Config, "config.toml") }

// BookmarksPath is bookmarks.toml.
func (d Dirs) BookmarksPath() string { return filepath.Join(d.Config, "bookmarks.toml") }

// RecentPath is recent.toml, the clusters the deck attached to lately; ""
// when there is no state dir.
func (d Dirs) RecentPath() string {
	if d.State == "" {
		return ""
	}
	return filepath.Join(d.State, "recent.toml")
}

// Operators is the operator identity store under the config dir.
func (d Dirs) Operators() *OperatorStore {
	return &OperatorStore{Dir: filepath.Join(d.Config, "operators")}
}

// NodeDataDir is where a headless node of cluster keeps its database.
func (d Dirs) NodeDataDir(cluster string) (string, error) {
	if err := ValidateClusterName(cluster); err != nil {
		return "", fmt.Errorf("config: node data dir: %w", err)
	}
	return filepath.Join(d.Data, cluster), nil
}

// ResolveClusterPath picks the cluster file the way every command does: the
// --cluster flag, then $DECK_CLUSTER, then config.toml. source says which
// one won ("flag", "env" or "config"), for error messages and `deck status`.
// Nothing set wraps api.ErrNotFound.
func ResolveClusterPath(flagValue, envValue string, s Settings) (path, source string, err error) {
	switch {
	case flagValue != "":
		return flagValue, "flag", nil
	case envValue != "":
		return envValue, "env", nil
	case s.Cluster != "":
		return s.Cluster, "config", nil
	}
	return "", "", fmt.Errorf("%w: no cluster file: pass --cluster, set %s, or set cluster in config.toml",
		api.ErrNotFound, ClusterEnv)
}

// ResolveOperator picks the operator identity: the --identity flag, then
// config.toml. An empty result with a nil error means none is configured,
// which makes a read-only console.
func ResolveOperator(flagValue string, s Settings) (string, error) {
	name := flagValue
	if name == "" {
		name = s.Operator
	}
	if name == "" {
		return "", nil
	}
	if err := ValidateOperatorName(name); err != nil {
		return "", fmt.Errorf("config: operator: %w", err)
	}
	return name, nil
}
