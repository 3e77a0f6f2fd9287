// Package serve runs SSH-attached deck consoles (`deck serve --ssh ADDR`):
// a wish SSH server inside a running node, where each session gets its own
// Bubble Tea deck over that node's Client.
//
// Who gets in: public keys only, either listed in an authorized-keys file or
// registered as cluster operators (an ssh-ed25519 key whose 32 bytes are an
// operator's ed25519 key). Who can act: only an operator whose forwarded
// ssh-agent (`ssh -A`) holds the key the session logged in with; the deck
// signs admin and ICE events through that agent, so the private key never
// leaves the operator's machine. Everyone else gets a read-only console.
package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"charm.land/ssh"
	"charm.land/wish/v2"
	gossh "golang.org/x/crypto/ssh"

	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Config configures a Server. Node and HostKey are required; zero limits
// take the constants of limits.go.
type Config struct {
	// Node is the running node whose Client every console uses.
	Node *node.Node
	// HostKey is the server's SSH host key (LoadOrCreateHostKey).
	HostKey gossh.Signer
	// AuthorizedKeysPath lists extra keys allowed in (read-only unless the
	// key is also a registered operator's). Empty: operators only.
	AuthorizedKeysPath string
	// Version is shown on each deck's status line and in the SSH banner.
	Version string
	// Logf receives connection and session events; nil discards them.
	Logf func(format string, args ...any)

	// Limits (zero: the constant of the same name).
	SessionIdleTimeout         time.Duration
	IdleCheckInterval          time.Duration
	MaxSessionDuration         time.Duration
	MaxConcurrentSessions      int
	ConnAttemptsBurstPerSource int
	ConnAttemptRefillInterval  time.Duration
}

func (c *Config) defaults() {
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	if c.SessionIdleTimeout <= 0 {
		c.SessionIdleTimeout = SessionIdleTimeout
	}
	if c.IdleCheckInterval <= 0 {
		c.IdleCheckInterval = min(IdleCheckInterval, c.SessionIdleTimeout)
	}
	if c.MaxSessionDuration <= 0 {
		c.MaxSessionDuration = MaxSessionDuration
	}
	if c.MaxConcurrentSessions <= 0 {
		c.MaxConcurrentSessions = MaxConcurrentSessions
	}
	if c.ConnAttemptsBurstPerSource <= 0 {
		c.ConnAttemptsBurstPerSource = ConnAttemptsBurstPerSource
	}
	if c.ConnAttemptRefillInterval <= 0 {
		c.ConnAttemptRefillInterval = ConnAttemptRefillInterval
	}
}

// Server is the SSH console server. New, then Serve; Close ends every
// console and stops it.
type Server struct {
	cfg     Config
	srv     *ssh.Server
	auth    *authorizer
	limiter *rateLimiter

	ctx    context.Context // ends every console on Close
	cancel context.CancelFunc

	// onConsole, when set (tests), sees each session's console before its
	// deck starts.
	onConsole func(*Console)

	active atomic.Int64 // consoles running

	mu        sync.Mutex
	closing   bool           // set by Close: no handler starts after it
	handlers  sync.WaitGroup // session handlers, for Close
	closeOnce sync.Once
	closeErr  error
}

// New builds a server; it listens only in Serve.
func New(cfg Config) (*Server, error) {
	if cfg.Node == nil {
		return nil, errors.New("serve: no node")
	}
	if cfg.HostKey == nil {
		return nil, errors.New("serve: no host key")
	}
	cfg.defaults()
	nd := cfg.Node
	auth, err := newAuthorizer(cfg.AuthorizedKeysPath, func() []snapshot.Operator { return nd.AdminState().Operators() }, cfg.Logf)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		auth:    auth,
		limiter: newRateLimiter(cfg.ConnAttemptsBurstPerSource, cfg.ConnAttemptRefillInterval, MaxTrackedSources, nil),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	version := "deck"
	if cfg.Version != "" {
		version = "deck_" + cfg.Version
	}
	s.srv, err = wish.NewServer(
		// The host key first: wish writes a key file into the working
		// directory when a server has none.
		func(srv *ssh.Server) error { srv.AddHostKey(cfg.HostKey); return nil },
		wish.WithVersion(sshVersion(version)),
		wish.WithPublicKeyAuth(s.publicKeyAuth),
		// Keyboard-interactive and password are never offered: with only a
		// public-key handler set, x/crypto/ssh refuses every other method.
		ssh.WrapConn(s.admitConn),
		func(srv *ssh.Server) error {
			srv.HandshakeTimeout = HandshakeTimeout
			// The connection-level idle timer counts output too (the deck
			// redraws every second); it only catches connections that hold
			// no console. Consoles have their own input-idle watchdog.
			srv.IdleTimeout = cfg.SessionIdleTimeout + ConnectionGrace
			srv.MaxTimeout = cfg.MaxSessionDuration + ConnectionGrace
			srv.ConnectionFailedCallback = func(c net.Conn, err error) {
				cfg.Logf("serve: %s: connection failed: %v", c.RemoteAddr(), err)
			}
			// Nothing but the console: no port forwarding, no subsystems
			// (sftp); the handler refuses commands (exec).
			srv.LocalPortForwardingCallback = nil
			srv.ReversePortForwardingCallback = nil
			srv.SubsystemHandlers = map[string]ssh.SubsystemHandler{}
			return nil
		},
		func(srv *ssh.Server) error { srv.Handler = s.handle; return nil },
	)
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	return s, nil
}

// sshVersion keeps the identification string within RFC 4253's
// printable-ASCII, no-space alphabet.
func sshVersion(v string) string {
	b := []byte(v)
	for i, c := range b {
		if c <= ' ' || c > '~' || c == '-' {
			b[i] = '_'
		}
	}
	return string(b)
}

// HostKey is the public host key clients see.
func (s *Server) HostKey() gossh.PublicKey { return s.cfg.HostKey.PublicKey() }

// Sessions is the number of consoles running.
func (s *Server) Sessions() int { return int(s.active.Load()) }

// Serve accepts connections on ln until Close. It returns nil after Close.
func (s *Server) Serve(ln net.Listener) error {
	err := s.srv.Serve(ln)
	if errors.Is(err, ssh.ErrServerClosed) {
		return nil
	}
	return err
}

// Close ends every console (each operator sees the deck close), gives the
// clients ShutdownGrace to hang up, drops whoever is left, and waits for
// the session handlers.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		s.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			s.closeErr = s.srv.Close()
		}
		s.handlers.Wait()
	})
	return s.closeErr
}

// enter registers a session handler; false once Close has begun (so the
// WaitGroup never grows while Close waits on it).
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.handlers.Add(1)
	return true
}

// admitConn applies the per-source rate limit before the handshake: a
// refused source costs one accept and one close.
func (s *Server) admitConn(_ ssh.Context, c net.Conn) net.Conn {
	if s.ctx.Err() != nil {
		return nil
	}
	if !s.limiter.allow(c.RemoteAddr()) {
		s.cfg.Logf("serve: %s: rate limited", c.RemoteAddr())
		return nil
	}
	return c
}

// publicKeyAuth admits listed and operator keys. The key offered here is
// not necessarily the one the client proves it holds (clients probe with
// several), so the session handler checks the authenticated key again.
func (s *Server) publicKeyAuth(ctx ssh.Context, key ssh.PublicKey) bool {
	if _, err := s.auth.check(key); err != nil {
		s.cfg.Logf("serve: %s: user %q: %v", ctx.RemoteAddr(), ctx.User(), err)
		return false
	}
	return true
}
