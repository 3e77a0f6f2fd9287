package identity

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// ErrExists is returned when a key file is already present: keys are never
// silently overwritten.
var ErrExists = errors.New("identity: key file already exists")

// KeyFileMode is the permission every private key file is written with.
const KeyFileMode fs.FileMode = 0o600

// PrivateFileModeMask are the permission bits a private key file must not
// have: any access by group or others, as OpenSSH demands of identity
// files. A key others could read may already be theirs.
const PrivateFileModeMask fs.FileMode = 0o077

// ErrUnprotectedKey is returned by LoadKey for a key file that group or
// others can access; the message names the file, its mode and the fix.
var ErrUnprotectedKey = errors.New("UNPROTECTED PRIVATE KEY FILE")

// CheckPrivateFileMode refuses (ErrUnprotectedKey) mode for the private key
// file path when group or others have any access to it. Platforms without
// Unix permission bits (Windows) are not checked.
func CheckPrivateFileMode(path string, mode fs.FileMode) error {
	if runtime.GOOS == "windows" || mode.Perm()&PrivateFileModeMask == 0 {
		return nil
	}
	return fmt.Errorf("identity: %w: %s has mode %04o, which lets other users access it; it is refused. Run: chmod 600 %s",
		ErrUnprotectedKey, path, mode.Perm(), path)
}

const keyFileHeader = "deck-ed25519-seed-v1"

// keyFileBytesMax bounds what LoadKey reads: a key file is its header and
// a base64 seed, well under this.
const keyFileBytesMax = 4 << 10

// WriteFileAtomic writes data to path via a temp file in the same directory,
// fsync, and rename, so a crash leaves either the old file or the new one.
// With exclusive set, an existing path is an ErrExists error.
func WriteFileAtomic(path string, data []byte, mode fs.FileMode, exclusive bool) error {
	dir := filepath.Dir(path)
	if exclusive {
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("%w: %s", ErrExists, path)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("identity: mkdir %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("identity: temp file: %w", err)
	}
	tmpName := tmp.Name()
	cleanup := func() { tmp.Close(); os.Remove(tmpName) }
	if err := tmp.Chmod(mode); err != nil {
		cleanup()
		return fmt.Errorf("identity: chmod: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		cleanup()
		return fmt.Errorf("identity: write: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		cleanup()
		return fmt.Errorf("identity: fsync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmpName)
		return fmt.Errorf("identity: close: %w", err)
	}
	if exclusive {
		// Link fails if the target appeared meanwhile: no silent overwrite even
		// under a race with another writer.
		if err := os.Link(tmpName, path); err != nil {
			os.Remove(tmpName)
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%w: %s", ErrExists, path)
			}
			return fmt.Errorf("identity: link: %w", err)
		}
		os.Remove(tmpName)
	} else if err := os.Rename(tmpName, path); err != nil {
		os.Remove(tmpName)
		return fmt.Errorf("identity: rename: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// SaveKey writes k's seed to path (mode 0600), refusing to overwrite.
func SaveKey(path string, k *Key) error {
	body := keyFileHeader + "\n" + base64.StdEncoding.EncodeToString(k.Private.Seed()) + "\n"
	return WriteFileAtomic(path, []byte(body), KeyFileMode, true)
}

// LoadKey reads a key written by SaveKey. A key file group or others can
// access is refused (ErrUnprotectedKey) before it is read.
func LoadKey(path string) (*Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("identity: read key: %w", err)
	}
	defer f.Close()
	// The mode of the file opened, not of the path a moment earlier.
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("identity: read key: %w", err)
	}
	if err := CheckPrivateFileMode(path, st.Mode()); err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() > keyFileBytesMax {
		return nil, fmt.Errorf("identity: %s is not a deck key file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, keyFileBytesMax+1))
	if err != nil {
		return nil, fmt.Errorf("identity: read key: %w", err)
	}
	lines := strings.Fields(string(b))
	if len(lines) != 2 || lines[0] != keyFileHeader {
		return nil, fmt.Errorf("identity: %s is not a deck key file", path)
	}
	seed, err := base64.StdEncoding.DecodeString(lines[1])
	if err != nil {
		return nil, fmt.Errorf("identity: %s: bad seed encoding: %w", path, err)
	}
	return FromSeed(seed)
}

// PublicKeyString is the text form of a public key ("ed25519:<base64>"), as
// written to NAME.pub files and the cluster file's operator list.
func PublicKeyString(pub ed25519.PublicKey) string {
	return "ed25519:" + base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey parses PublicKeyString's form.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, "ed25519:")
	if !ok {
		return nil, fmt.Errorf("identity: public key %q lacks the ed25519: prefix", s)
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("identity: public key: %w", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("identity: public key is %d bytes, want %d", len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}
