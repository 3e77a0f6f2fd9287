package serve

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"

	gossh "golang.org/x/crypto/ssh"

	"github.com/deck-mesh/deck/node/identity"
)

// ErrHostKeyExposed is returned for a host key file that group or others
// can read: like sshd, the server refuses a key that may have leaked.
var ErrHostKeyExposed = errors.New("serve: host key file is readable by group or others")

// LoadOrCreateHostKey loads the ed25519 host key at path, generating it on
// first use (OpenSSH PEM, mode 0600, written atomically and never over an
// existing file). created says whether this call made it.
func LoadOrCreateHostKey(path string) (signer gossh.Signer, created bool, err error) {
	data, err := readHostKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		data, err = newHostKey()
		if err != nil {
			return nil, false, err
		}
		if err := identity.WriteFileAtomic(path, data, identity.KeyFileMode, true); err != nil {
			if !errors.Is(err, identity.ErrExists) {
				return nil, false, fmt.Errorf("serve: host key %s: %w", path, err)
			}
			// Another process created it meanwhile: use theirs.
			if data, err = readHostKey(path); err != nil {
				return nil, false, err
			}
		} else {
			created = true
		}
	} else if err != nil {
		return nil, false, err
	}
	signer, err = gossh.ParsePrivateKey(data)
	if err != nil {
		return nil, false, fmt.Errorf("serve: host key %s: %w", path, err)
	}
	return signer, created, nil
}

func readHostKey(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s is %v (chmod 600 it)", ErrHostKeyExposed, path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("serve: host key: %w", err)
	}
	return data, nil
}

func newHostKey() ([]byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("serve: generate host key: %w", err)
	}
	blk, err := gossh.MarshalPrivateKey(priv, "deck serve host key")
	if err != nil {
		return nil, fmt.Errorf("serve: encode host key: %w", err)
	}
	return pem.EncodeToMemory(blk), nil
}

// Fingerprint is the SHA256 fingerprint OpenSSH shows for a key
// ("SHA256:…"), for the operator to compare on first connection.
func Fingerprint(k gossh.PublicKey) string { return gossh.FingerprintSHA256(k) }
