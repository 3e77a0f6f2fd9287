package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
)

// Settings is config.toml: the defaults a bare `deck` starts with.
type Settings struct {
	// Cluster is the default cluster file (absolute path); empty: none.
	Cluster string `toml:"cluster,omitempty"`
	// Operator is the default operator identity name; empty: read-only.
	Operator string `toml:"operator,omitempty"`
	// Listen is the UDP address a console's embedded node binds (host:port,
	// e.g. "0.0.0.0:7950" for a firewall rule); empty: an ephemeral port
	// on the wildcard address of the bootstrap's family.
	Listen string `toml:"listen,omitempty"`
}

// Validate checks the fields that are set.
func (s Settings) Validate() error {
	var errs fieldErrors
	if s.Cluster != "" && !filepath.IsAbs(s.Cluster) {
		errs.add(fieldErr("cluster", "%q is not an absolute path", s.Cluster))
	}
	if s.Operator != "" {
		if err := ValidateOperatorName(s.Operator); err != nil {
			errs.add(fieldErr("operator", "%s", err.Error()))
		}
	}
	if s.Listen != "" {
		if err := ValidateListen(s.Listen); err != nil {
			errs.add(fieldErr("listen", "%s", err.Error()))
		}
	}
	return errs.err()
}

// ValidateListen checks a UDP listen address: host:port, the host an IP
// address or empty (every address), the port a number (0: any free one).
func ValidateListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT: %v", addr, err)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("%q: host %q is not an IP address", addr, host)
		}
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	return nil
}

// ParseSettings decodes config.toml's bytes.
func ParseSettings(data []byte) (Settings, error) {
	root, err := parseTOML(data)
	if err != nil {
		return Settings{}, err
	}
	s := Settings{Cluster: root.str("cluster"), Operator: root.str("operator"), Listen: root.str("listen")}
	root.unknown()
	if err := root.errs.err(); err != nil {
		return Settings{}, err
	}
	if err := s.Validate(); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// LoadSettings reads config.toml. A missing file is not an error: a fresh
// install has none, and every field has a meaningful empty value.
func LoadSettings(path string) (Settings, error) {
	data, _, err := readBounded(path)
	if errors.Is(err, api.ErrNotFound) {
		return Settings{}, nil
	}
	if err != nil {
		return Settings{}, fmt.Errorf("config: settings: %w", err)
	}
	s, err := ParseSettings(data)
	if err != nil {
		return Settings{}, fmt.Errorf("config: settings %s: %w", path, err)
	}
	return s, nil
}

// SaveSettings writes config.toml atomically.
func SaveSettings(path string, s Settings) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("config: settings: %w", err)
	}
	var buf bytes.Buffer
	buf.WriteString("# Deck defaults: the cluster file and operator identity a bare `deck` uses.\n\n")
	if err := newEncoder(&buf).Encode(s); err != nil {
		return fmt.Errorf("config: encode settings: %w", err)
	}
	if err := identity.WriteFileAtomic(path, buf.Bytes(), SettingsFileMode, false); err != nil {
		return fmt.Errorf("config: save settings: %w", err)
	}
	return nil
}

// Bookmark names one cluster file for the multi-cluster picker.
type Bookmark struct {
	Name    string
	Cluster string // absolute path of the cluster file
}

// Bookmarks is bookmarks.toml. The zero value is empty and ready to use.
type Bookmarks struct {
	m map[string]string
}

// ValidateBookmarkName checks 1..MaxNameChars characters of [a-zA-Z0-9-_.].
func ValidateBookmarkName(name string) error {
	return validateName(name, "bookmark name", func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
	}, "[a-zA-Z0-9-_.]")
}

// Set adds or replaces a bookmark. A relative path is made absolute so the
// bookmark works from any directory.
func (b *Bookmarks) Set(name, clusterPath string) error {
	if err := ValidateBookmarkName(name); err != nil {
		return fmt.Errorf("config: bookmark: %w", err)
	}
	if clusterPath == "" {
		return fmt.Errorf("config: bookmark %s: %w: empty cluster path", name, api.ErrInvalid)
	}
	abs, err := filepath.Abs(clusterPath)
	if err != nil {
		return fmt.Errorf("config: bookmark %s: %w", name, err)
	}
	if _, ok := b.m[name]; !ok && len(b.m) >= MaxBookmarks {
		return fmt.Errorf("config: bookmark %s: %w: at most %d bookmarks", name, api.ErrInvalid, MaxBookmarks)
	}
	if b.m == nil {
		b.m = map[string]string{}
	}
	b.m[name] = abs
	return nil
}

// Remove deletes a bookmark; a missing one wraps api.ErrNotFound.
func (b *Bookmarks) Remove(name string) error {
	if _, ok := b.m[name]; !ok {
		return fmt.Errorf("config: bookmark %q: %w", name, api.ErrNotFound)
	}
	delete(b.m, name)
	return nil
}

// Get returns the cluster path of a bookmark.
func (b *Bookmarks) Get(name string) (string, bool) {
	p, ok := b.m[name]
	return p, ok
}

// List returns every bookmark sorted by name.
func (b *Bookmarks) List() []Bookmark {
	out := make([]Bookmark, 0, len(b.m))
	for n, p := range b.m {
		out = append(out, Bookmark{Name: n, Cluster: p})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Len is the number of bookmarks.
func (b *Bookmarks) Len() int { return len(b.m) }

// ParseBookmarks decodes bookmarks.toml's bytes:
//
//	[bookmarks]
//	prod = "/home/op/clusters/prod.toml"
func ParseBookmarks(data []byte) (*Bookmarks, error) {
	root, err := parseTOML(data)
	if err != nil {
		return nil, err
	}
	bt := root.sub("bookmarks")
	root.unknown()
	b := &Bookmarks{m: map[string]string{}}
	names := make([]string, 0, len(bt.m))
	for n := range bt.m {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) > MaxBookmarks {
		bt.errs.add(fieldErr("bookmarks", "%d entries, at most %d allowed", len(names), MaxBookmarks))
		return nil, bt.errs.err()
	}
	for _, n := range names {
		f := bt.field(quoteKey(n))
		if err := ValidateBookmarkName(n); err != nil {
			bt.errs.add(fieldErr(f, "%s", err.Error()))
			continue
		}
		p, ok := bt.m[n].(string)
		if !ok {
			bt.errs.add(fieldErr(f, "want a string, got %s", tomlType(bt.m[n])))
			continue
		}
		if !filepath.IsAbs(p) {
			bt.errs.add(fieldErr(f, "%q is not an absolute path", p))
			continue
		}
		b.m[n] = p
	}
	if err := root.errs.err(); err != nil {
		return nil, err
	}
	return b, nil
}

// LoadBookmarks reads bookmarks.toml; a missing file is an empty set.
func LoadBookmarks(path string) (*Bookmarks, error) {
	data, _, err := readBounded(path)
	if errors.Is(err, api.ErrNotFound) {
		return &Bookmarks{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config: bookmarks: %w", err)
	}
	b, err := ParseBookmarks(data)
	if err != nil {
		return nil, fmt.Errorf("config: bookmarks %s: %w", path, err)
	}
	return b, nil
}

// SaveBookmarks writes bookmarks.toml atomically.
func SaveBookmarks(path string, b *Bookmarks) error {
	doc := struct {
		Bookmarks map[string]string `toml:"bookmarks"`
	}{Bookmarks: map[string]string{}}
	for n, p := range b.m {
		doc.Bookmarks[n] = p
	}
	var buf bytes.Buffer
	buf.WriteString("# Deck bookmarks: name = cluster file, for the multi-cluster picker.\n\n")
	if err := newEncoder(&buf).Encode(doc); err != nil {
		return fmt.Errorf("config: encode bookmarks: %w", err)
	}
	if err := identity.WriteFileAtomic(path, buf.Bytes(), SettingsFileMode, false); err != nil {
		return fmt.Errorf("config: save bookmarks: %w", err)
	}
	return nil
}
