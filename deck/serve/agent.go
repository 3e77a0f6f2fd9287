package serve

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/deck-mesh/deck/node/identity"
)

// Errors of the agent signer.
var (
	// ErrAgentKeyMissing: the agent does not hold the key the session
	// authenticated with (or holds too many keys to look through).
	ErrAgentKeyMissing = errors.New("serve: the forwarded agent does not hold the login key")
	// ErrNotEd25519: operator keys are ed25519; other key types can log in
	// (when listed) but never sign.
	ErrNotEd25519 = errors.New("serve: login key is not ssh-ed25519")
	// ErrAgentSignature: the agent answered with something that is not a
	// valid ed25519 signature by the key over the message.
	ErrAgentSignature = errors.New("serve: agent returned an invalid signature")
)

// agentChannelType is OpenSSH's channel for a forwarded agent.
const agentChannelType = "auth-agent@openssh.com"

// AgentDialer opens a fresh connection to an ssh-agent: a forwarded agent
// channel on an SSH connection, or a Unix socket.
type AgentDialer func() (io.ReadWriteCloser, error)

// SocketAgent dials the agent listening on a Unix socket (SSH_AUTH_SOCK).
func SocketAgent(path string) AgentDialer {
	return func() (io.ReadWriteCloser, error) {
		c, err := net.Dial("unix", path)
		if err != nil {
			return nil, fmt.Errorf("serve: agent: %w", err)
		}
		return c, nil
	}
}

// ForwardedAgent opens the client's forwarded agent on conn: each call is a
// new auth-agent@openssh.com channel to the operator's own ssh-agent.
func ForwardedAgent(conn gossh.Conn) AgentDialer {
	return func() (io.ReadWriteCloser, error) {
		ch, reqs, err := conn.OpenChannel(agentChannelType, nil)
		if err != nil {
			return nil, fmt.Errorf("serve: open forwarded agent: %w", err)
		}
		go gossh.DiscardRequests(reqs) // ends when the channel closes
		return ch, nil
	}
}

// AgentSigner is an identity.Signer whose private key lives in an
// ssh-agent, on the operator's machine for an SSH console: the server
// sends the payload and gets back a signature, never the key. Each
// signature is verified locally before it is returned, so a confused or
// hostile agent cannot make the deck submit garbage under the operator's
// name.
type AgentSigner struct {
	dial    AgentDialer
	key     gossh.PublicKey
	pub     ed25519.PublicKey
	id      identity.NodeID
	timeout time.Duration
}

var _ identity.Signer = (*AgentSigner)(nil)

// NewAgentSigner checks that the agent behind dial holds key, an
// ssh-ed25519 key, and returns a Signer over it.
func NewAgentSigner(dial AgentDialer, key gossh.PublicKey) (*AgentSigner, error) {
	pub, ok := ed25519Of(key)
	if !ok {
		return nil, ErrNotEd25519
	}
	id := identity.IDFromPublicKey(pub)
	if !id.Valid() {
		return nil, identity.ErrZeroID
	}
	s := &AgentSigner{dial: dial, key: key, pub: pub, id: id, timeout: AgentSignTimeout}
	var found bool
	err := s.withAgent(func(ag agent.ExtendedAgent) error {
		keys, err := ag.List()
		if err != nil {
			return fmt.Errorf("serve: agent: list keys: %w", err)
		}
		if len(keys) > MaxAgentKeys {
			keys = keys[:MaxAgentKeys]
		}
		want := key.Marshal()
		for _, k := range keys {
			if bytes.Equal(k.Marshal(), want) {
				found = true
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, ErrAgentKeyMissing
	}
	return s, nil
}

func (s *AgentSigner) SignerID() identity.NodeID    { return s.id }
func (s *AgentSigner) PublicKey() ed25519.PublicKey { return append(ed25519.PublicKey(nil), s.pub...) }

// Sign asks the agent to sign msg and verifies the answer. For ssh-ed25519
// the SSH signature blob is the raw 64-byte ed25519 signature over msg
// itself (no pre-hash), which is exactly what identity.Verify checks.
func (s *AgentSigner) Sign(msg []byte) ([]byte, error) {
	var blob []byte
	err := s.withAgent(func(ag agent.ExtendedAgent) error {
		sig, err := ag.Sign(s.key, msg)
		if err != nil {
			return fmt.Errorf("serve: agent: sign: %w", err)
		}
		if sig.Format != gossh.KeyAlgoED25519 || len(sig.Blob) != ed25519.SignatureSize {
			return fmt.Errorf("%w: format %q, %d bytes", ErrAgentSignature, sig.Format, len(sig.Blob))
		}
		if !ed25519.Verify(s.pub, msg, sig.Blob) {
			return fmt.Errorf("%w: does not verify", ErrAgentSignature)
		}
		blob = bytes.Clone(sig.Blob)
		return nil
	})
	return blob, err
}

// withAgent runs f on a fresh agent connection, closed after f or when the
// timeout fires (which unblocks f's read).
func (s *AgentSigner) withAgent(f func(agent.ExtendedAgent) error) error {
	conn, err := s.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	timer := time.AfterFunc(s.timeout, func() { conn.Close() })
	defer timer.Stop()
	if err := f(agent.NewClient(conn)); err != nil {
		if !timer.Stop() {
			return fmt.Errorf("serve: agent did not answer within %v: %w", s.timeout, err)
		}
		return err
	}
	return nil
}
