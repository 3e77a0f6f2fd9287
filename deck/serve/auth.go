package serve

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/deck-mesh/deck/node/snapshot"
)

// Grant is what the server knows about an authenticated key.
type Grant struct {
	// Name is shown as the console's operator: the registered operator's
	// name, else the authorized-keys comment, else the key fingerprint.
	Name string
	// Operator is set when the key is a registered operator's ed25519 key:
	// only then can the session sign, through the forwarded agent.
	Operator *snapshot.Operator
	// Listed says the key is in the authorized-keys file.
	Listed bool
	// NoAgent is set by the authorized-keys option no-agent-forwarding:
	// the console stays read-only even for an operator key.
	NoAgent bool
}

// ErrNotAuthorized is the refusal of a key that is neither listed nor a
// registered operator's.
var ErrNotAuthorized = errors.New("serve: key not authorized")

// authorizer decides which keys get a console: keys in the authorized-keys
// file, and registered operators' ssh-ed25519 keys. Both sources are read at
// each check (the file is re-parsed only when it changes), so adding or
// removing an operator on the admin chain takes effect on the next login.
type authorizer struct {
	path      string
	operators func() []snapshot.Operator
	logf      func(format string, args ...any)

	mu      sync.Mutex
	modTime time.Time
	size    int64
	keys    map[string]listedKey // by wire encoding
}

type listedKey struct {
	comment string
	noAgent bool
}

func newAuthorizer(path string, operators func() []snapshot.Operator, logf func(string, ...any)) (*authorizer, error) {
	a := &authorizer{path: path, operators: operators, logf: logf}
	if path != "" {
		// Fail at start, not at the first login, on a missing or bad file.
		if _, err := a.listed(); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// check authorizes key. The error says why a key is refused (for the log;
// the client only learns it was refused).
func (a *authorizer) check(key gossh.PublicKey) (Grant, error) {
	if key == nil {
		return Grant{}, ErrNotAuthorized
	}
	var g Grant
	if a.path != "" {
		keys, err := a.listed()
		if err != nil {
			// An unreadable file admits nobody through it; operators still
			// get in through the registry.
			a.logf("serve: authorized keys: %v", err)
		}
		if lk, ok := keys[string(key.Marshal())]; ok {
			g.Listed, g.NoAgent, g.Name = true, lk.noAgent, lk.comment
		}
	}
	if op, ok := a.operator(key); ok {
		g.Operator = &op
		g.Name = op.Name
	}
	if !g.Listed && g.Operator == nil {
		return Grant{}, fmt.Errorf("%w: %s %s", ErrNotAuthorized, key.Type(), Fingerprint(key))
	}
	if g.Name == "" {
		g.Name = Fingerprint(key)
	}
	return g, nil
}

// operator finds the registered operator whose ed25519 key is key.
func (a *authorizer) operator(key gossh.PublicKey) (snapshot.Operator, bool) {
	pub, ok := ed25519Of(key)
	if !ok || a.operators == nil {
		return snapshot.Operator{}, false
	}
	for _, op := range a.operators() {
		if bytes.Equal(op.PublicKey, pub) {
			return op, true
		}
	}
	return snapshot.Operator{}, false
}

// ed25519Of is the raw public key of a plain ssh-ed25519 key (certificates
// and other types are not operator keys).
func ed25519Of(key gossh.PublicKey) (ed25519.PublicKey, bool) {
	if key == nil || key.Type() != gossh.KeyAlgoED25519 {
		return nil, false
	}
	ck, ok := key.(gossh.CryptoPublicKey)
	if !ok {
		return nil, false
	}
	pub, ok := ck.CryptoPublicKey().(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, false
	}
	return pub, true
}

// listed returns the parsed authorized-keys file, re-reading it when its
// size or modification time changed.
func (a *authorizer) listed() (map[string]listedKey, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fi, err := os.Stat(a.path)
	if err != nil {
		a.keys = nil
		return nil, fmt.Errorf("serve: authorized keys: %w", err)
	}
	if a.keys != nil && fi.ModTime().Equal(a.modTime) && fi.Size() == a.size {
		return a.keys, nil
	}
	f, err := os.Open(a.path)
	if err != nil {
		a.keys = nil
		return nil, fmt.Errorf("serve: authorized keys: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxAuthorizedKeysBytes+1))
	if err != nil {
		a.keys = nil
		return nil, fmt.Errorf("serve: authorized keys: %w", err)
	}
	if len(data) > MaxAuthorizedKeysBytes {
		a.keys = nil
		return nil, fmt.Errorf("serve: authorized keys %s is over %d bytes", a.path, MaxAuthorizedKeysBytes)
	}
	keys, warns := parseAuthorizedKeys(data)
	for _, w := range warns {
		a.logf("serve: %s: %s", a.path, w)
	}
	a.keys, a.modTime, a.size = keys, fi.ModTime(), fi.Size()
	return keys, nil
}

// parseAuthorizedKeys reads OpenSSH authorized_keys lines. Options are
// refused except no-agent-forwarding: a line restricted in a way the deck
// does not enforce (command=, from=, …) is skipped, never widened.
func parseAuthorizedKeys(data []byte) (map[string]listedKey, []string) {
	keys := make(map[string]listedKey)
	var warns []string
	for lineNo, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		key, comment, opts, _, err := gossh.ParseAuthorizedKey(line)
		if err != nil {
			warns = append(warns, fmt.Sprintf("line %d: %v (skipped)", lineNo+1, err))
			continue
		}
		lk := listedKey{comment: strings.TrimSpace(comment)}
		ok := true
		for _, o := range opts {
			if strings.EqualFold(o, "no-agent-forwarding") {
				lk.noAgent = true
				continue
			}
			warns = append(warns, fmt.Sprintf("line %d: option %q is not supported (key skipped)", lineNo+1, o))
			ok = false
		}
		if ok {
			keys[string(key.Marshal())] = lk
		}
	}
	return keys, warns
}
