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
	"unicode/utf8"

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

// Bookmark names one cluster file for the multi-cluster picker, and the
// operator identity to attach to it with ("" for the deck's own).
type Bookmark struct {
	Name     string
	Cluster  string // absolute path of the cluster file
	Identity string // operator identity name; "" means the deck's current one
}

// Bookmarks is bookmarks.toml. The zero value is empty and ready to use.
type Bookmarks struct {
	m map[string]Bookmark
}

// ValidateBookmarkName checks 1..MaxNameChars characters of [a-zA-Z0-9-_.].
func ValidateBookmarkName(name string) error {
	return validateName(name, "bookmark name", func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
	}, "[a-zA-Z0-9-_.]")
}

// ValidateClusterPath checks a cluster file path as the bookmark and recent
// files keep it: absolute, at most MaxPathBytes, and free of control
// characters. The picker prints these paths on the operator's terminal; a
// shared or synced bookmarks file must not be able to send it escape
// sequences.
func ValidateClusterPath(p string) error {
	if p == "" {
		return fmt.Errorf("%w: empty cluster path", api.ErrInvalid)
	}
	if len(p) > MaxPathBytes {
		return fmt.Errorf("%w: cluster path is %d bytes, at most %d allowed", api.ErrInvalid, len(p), MaxPathBytes)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
			return fmt.Errorf("%w: cluster path %q holds a control character", api.ErrInvalid, p)
		}
	}
	if !filepath.IsAbs(p) {
		return fmt.Errorf("%w: %q is not an absolute path", api.ErrInvalid, p)
	}
	return nil
}

// Set adds or replaces a bookmark. A relative path is made absolute so the
// bookmark works from any directory.
func (b *Bookmarks) Set(bm Bookmark) error {
	if err := ValidateBookmarkName(bm.Name); err != nil {
		return fmt.Errorf("config: bookmark: %w", err)
	}
	if bm.Cluster == "" {
		return fmt.Errorf("config: bookmark %s: %w: empty cluster path", bm.Name, api.ErrInvalid)
	}
	abs, err := filepath.Abs(bm.Cluster)
	if err != nil {
		return fmt.Errorf("config: bookmark %s: %w", bm.Name, err)
	}
	if err := ValidateClusterPath(abs); err != nil {
		return fmt.Errorf("config: bookmark %s: %w", bm.Name, err)
	}
	if bm.Identity != "" {
		if err := ValidateOperatorName(bm.Identity); err != nil {
			return fmt.Errorf("config: bookmark %s: identity: %w", bm.Name, err)
		}
	}
	if _, ok := b.m[bm.Name]; !ok && len(b.m) >= MaxBookmarks {
		return fmt.Errorf("config: bookmark %s: %w: at most %d bookmarks", bm.Name, api.ErrInvalid, MaxBookmarks)
	}
	if b.m == nil {
		b.m = map[string]Bookmark{}
	}
	bm.Cluster = abs
	b.m[bm.Name] = bm
	return nil
}

// Add is Set for a name not yet taken; a taken one wraps api.ErrExists.
func (b *Bookmarks) Add(bm Bookmark) error {
	if _, ok := b.m[bm.Name]; ok {
		return fmt.Errorf("config: bookmark %q: %w (remove it first with `deck bookmark rm %s`)", bm.Name, api.ErrExists, bm.Name)
	}
	return b.Set(bm)
}

// Remove deletes a bookmark; a missing one wraps api.ErrNotFound.
func (b *Bookmarks) Remove(name string) error {
	if _, ok := b.m[name]; !ok {
		return fmt.Errorf("config: bookmark %q: %w", name, api.ErrNotFound)
	}
	delete(b.m, name)
	return nil
}

// Get returns a bookmark by name.
func (b *Bookmarks) Get(name string) (Bookmark, bool) {
	bm, ok := b.m[name]
	return bm, ok
}

// List returns every bookmark sorted by name.
func (b *Bookmarks) List() []Bookmark {
	out := make([]Bookmark, 0, len(b.m))
	for _, bm := range b.m {
		out = append(out, bm)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Len is the number of bookmarks.
func (b *Bookmarks) Len() int { return len(b.m) }

// ParseBookmarks decodes bookmarks.toml's bytes. A bookmark is a path, or a
// table with the path and the operator identity to attach as:
//
//	[bookmarks]
//	prod = "/home/op/clusters/prod.toml"
//	lab = { cluster = "/home/op/clusters/lab.toml", identity = "alice" }
func ParseBookmarks(data []byte) (*Bookmarks, error) {
	root, err := parseTOML(data)
	if err != nil {
		return nil, err
	}
	bt := root.sub("bookmarks")
	root.unknown()
	b := &Bookmarks{m: map[string]Bookmark{}}
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
		key := quoteKey(n)
		f := bt.field(key)
		if err := ValidateBookmarkName(n); err != nil {
			bt.errs.add(fieldErr(f, "%s", err.Error()))
			continue
		}
		bm := Bookmark{Name: n}
		switch v := bt.m[n].(type) {
		case string:
			bm.Cluster = v
		case map[string]any:
			entry := bt.child(key, v)
			before := len(*entry.errs)
			bm.Cluster, bm.Identity = entry.str("cluster"), entry.str("identity")
			entry.unknown()
			if !entry.has("cluster") {
				entry.fail("cluster", "missing")
			}
			if len(*entry.errs) > before {
				continue
			}
			if entry.has("identity") {
				if err := ValidateOperatorName(bm.Identity); err != nil {
					entry.fail("identity", "%s", err.Error())
					continue
				}
			}
			f = entry.field("cluster")
		default:
			bt.errs.add(fieldErr(f, "want a string or a table, got %s", tomlType(v)))
			continue
		}
		if err := ValidateClusterPath(bm.Cluster); err != nil {
			bt.errs.add(fieldErr(f, "%s", err.Error()))
			continue
		}
		b.m[n] = bm
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

// bookmarkEntry is a bookmark with an identity as bookmarks.toml writes it.
type bookmarkEntry struct {
	Cluster  string `toml:"cluster"`
	Identity string `toml:"identity"`
}

// SaveBookmarks writes bookmarks.toml atomically (temp file, fsync,
// rename), mode 0600. A bookmark without an identity is written as a bare
// path, the form operators type by hand.
func SaveBookmarks(path string, b *Bookmarks) error {
	doc := struct {
		Bookmarks map[string]any `toml:"bookmarks"`
	}{Bookmarks: map[string]any{}}
	for n, bm := range b.m {
		if bm.Identity == "" {
			doc.Bookmarks[n] = bm.Cluster
		} else {
			doc.Bookmarks[n] = bookmarkEntry{Cluster: bm.Cluster, Identity: bm.Identity}
		}
	}
	var buf bytes.Buffer
	buf.WriteString("# Deck bookmarks: name = cluster file (or { cluster, identity }), for the picker (:).\n\n")
	if err := newEncoder(&buf).Encode(doc); err != nil {
		return fmt.Errorf("config: encode bookmarks: %w", err)
	}
	if err := identity.WriteFileAtomic(path, buf.Bytes(), SettingsFileMode, false); err != nil {
		return fmt.Errorf("config: save bookmarks: %w", err)
	}
	return nil
}
