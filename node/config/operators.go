package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
)

// Operator key store file name parts.
const (
	keySuffix     = ".key"
	pubSuffix     = ".pub"
	oldKeyInfix   = ".key.old-"
	newKeyInfix   = ".key.new-"
	maxOldAttempt = 100 // distinct archive names tried within one second
)

// OperatorStore keeps operator identities as files in Dir:
// <name>.key (the private seed, 0600, never overwritten in place except by
// Rotate), <name>.pub (the public key line, for handing to colleagues) and
// <name>.key.old-<unix> (keys retired by Rotate).
type OperatorStore struct {
	Dir string
	// Now stamps rotated keys; nil means time.Now. Tests set it.
	Now func() time.Time
}

// Identity is what `deck identity show` prints.
type Identity struct {
	Name      string
	ID        identity.NodeID
	PublicKey string // identity.PublicKeyString form
}

// KeyPath is the private key file of name (the name is not validated).
func (s *OperatorStore) KeyPath(name string) string { return filepath.Join(s.Dir, name+keySuffix) }

// PubPath is the public key file of name (the name is not validated).
func (s *OperatorStore) PubPath(name string) string { return filepath.Join(s.Dir, name+pubSuffix) }

func (s *OperatorStore) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Generate makes a new operator key. An existing identity wraps
// api.ErrExists and is left untouched.
func (s *OperatorStore) Generate(name string) (*identity.Key, error) {
	if err := ValidateOperatorName(name); err != nil {
		return nil, fmt.Errorf("config: generate operator: %w", err)
	}
	if _, err := os.Lstat(s.KeyPath(name)); err == nil {
		return nil, fmt.Errorf("config: operator %s: %w", name, api.ErrExists)
	}
	k, err := identity.Generate()
	if err != nil {
		return nil, fmt.Errorf("config: generate operator %s: %w", name, err)
	}
	if err := os.MkdirAll(s.Dir, DirMode); err != nil {
		return nil, fmt.Errorf("config: operator dir: %w", err)
	}
	if err := identity.SaveKey(s.KeyPath(name), k); err != nil {
		if errors.Is(err, identity.ErrExists) {
			// Lost a race with another generate: the other key stands.
			return nil, fmt.Errorf("config: operator %s: %w (%w)", name, api.ErrExists, err)
		}
		return nil, fmt.Errorf("config: save operator %s: %w", name, err)
	}
	if err := s.writePub(name, k); err != nil {
		return nil, err
	}
	return k, nil
}

func (s *OperatorStore) writePub(name string, k *identity.Key) error {
	line := identity.PublicKeyString(k.Public) + "\n"
	if err := identity.WriteFileAtomic(s.PubPath(name), []byte(line), PublicKeyMode, false); err != nil {
		return fmt.Errorf("config: write public key of %s: %w", name, err)
	}
	return nil
}

// List returns the names of every identity with a private key, sorted. A
// missing directory is an empty store.
func (s *OperatorStore) List() ([]string, error) {
	ents, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config: list operators: %w", err)
	}
	var names []string
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), keySuffix)
		if !ok || !e.Type().IsRegular() || ValidateOperatorName(name) != nil {
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return names, nil
}

// Load reads an operator's private key; a missing one wraps api.ErrNotFound.
func (s *OperatorStore) Load(name string) (*identity.Key, error) {
	if err := ValidateOperatorName(name); err != nil {
		return nil, fmt.Errorf("config: load operator: %w", err)
	}
	path := s.KeyPath(name)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("config: operator %s: %w: no key at %s", name, api.ErrNotFound, path)
	}
	k, err := identity.LoadKey(path)
	if err != nil {
		return nil, fmt.Errorf("config: operator %s: %w", name, err)
	}
	return k, nil
}

// Show returns an operator's public identity, derived from the private key
// (the authoritative file; the .pub is only a convenience copy).
func (s *OperatorStore) Show(name string) (Identity, error) {
	k, err := s.Load(name)
	if err != nil {
		return Identity{}, err
	}
	return Identity{Name: name, ID: k.ID, PublicKey: identity.PublicKeyString(k.Public)}, nil
}

// Rotate replaces an operator's key with a fresh one. The old key stays
// readable as <name>.key.old-<unix> (a "-N" suffix is added if two rotations
// fall in the same second) and both keys are returned, so the caller can
// sign the rotate-operator admin event with the old key and the new.
//
// Crash safety: the old key is archived by hard link before anything is
// replaced, and the new key lands with an atomic rename, so at every instant
// <name>.key is a complete key, old or new.
func (s *OperatorStore) Rotate(name string) (old, fresh *identity.Key, err error) {
	old, err = s.Load(name)
	if err != nil {
		return nil, nil, err
	}
	fresh, err = identity.Generate()
	if err != nil {
		return nil, nil, fmt.Errorf("config: rotate operator %s: %w", name, err)
	}
	stamp := s.now().Unix()
	keyPath := s.KeyPath(name)
	tmp := filepath.Join(s.Dir, name+newKeyInfix+strconv.FormatInt(stamp, 10))
	os.Remove(tmp) // a leftover of an interrupted rotation holds an unused key
	if err := identity.SaveKey(tmp, fresh); err != nil {
		return nil, nil, fmt.Errorf("config: rotate operator %s: %w", name, err)
	}
	archived := false
	base := filepath.Join(s.Dir, name+oldKeyInfix+strconv.FormatInt(stamp, 10))
	for i := 1; i <= maxOldAttempt && !archived; i++ {
		dst := base
		if i > 1 {
			dst = base + "-" + strconv.Itoa(i)
		}
		err := os.Link(keyPath, dst)
		switch {
		case err == nil:
			archived = true
		case errors.Is(err, fs.ErrExist):
			continue
		default:
			os.Remove(tmp)
			return nil, nil, fmt.Errorf("config: rotate operator %s: archive old key: %w", name, err)
		}
	}
	if !archived {
		os.Remove(tmp)
		return nil, nil, fmt.Errorf("config: rotate operator %s: %w: %d archives already exist for second %d",
			name, api.ErrExists, maxOldAttempt, stamp)
	}
	if err := os.Rename(tmp, keyPath); err != nil {
		os.Remove(tmp)
		return nil, nil, fmt.Errorf("config: rotate operator %s: install new key: %w", name, err)
	}
	syncDir(s.Dir)
	if err := s.writePub(name, fresh); err != nil {
		return nil, nil, err
	}
	return old, fresh, nil
}

// syncDir makes a rename durable; failures only weaken durability, not
// correctness, so they are not reported.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
