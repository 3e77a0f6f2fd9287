package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/ssh"
	"charm.land/wish/v2"
	bm "charm.land/wish/v2/bubbletea"
	gossh "golang.org/x/crypto/ssh"

	"github.com/deck-mesh/deck/deck"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Console is the Client one SSH session's deck runs on: the node's Client
// signed by the session's agent (or unsigned), whose Operator() explains a
// read-only console in SSH terms.
type Console struct {
	api.Client
	// Grant is how the session's key got in.
	Grant Grant
	// Signer signs through the forwarded agent; nil for a read-only console.
	Signer identity.Signer
	// ReadOnlyReason says why Signer is nil, short enough for the status
	// line (the server log has the details).
	ReadOnlyReason string
}

// Operator reports the signing operator, or why this console is read-only.
func (c *Console) Operator() (api.OperatorInfo, bool, string) {
	info, ok, why := c.Client.Operator()
	if !ok && c.ReadOnlyReason != "" {
		why = c.ReadOnlyReason
	}
	return info, ok, why
}

// ErrNoSubnets: the node's Client is not on a mesh carved into subnets.
var ErrNoSubnets = errors.New("this node's client cannot focus subnets")

// FocusSubnet passes the session deck's subnet focus to the node's Client
// (each session has its own), when that is an api.SubnetClient.
func (c *Console) FocusSubnet(ctx context.Context, path string) error {
	if sc, ok := c.Client.(api.SubnetClient); ok {
		return sc.FocusSubnet(ctx, path)
	}
	return ErrNoSubnets
}

// QuerySubnet passes an aggregator query to the node's Client, when that
// is an api.SubnetClient.
func (c *Console) QuerySubnet(ctx context.Context, path string) (snapshot.SubnetSummary, error) {
	if sc, ok := c.Client.(api.SubnetClient); ok {
		return sc.QuerySubnet(ctx, path)
	}
	return snapshot.SubnetSummary{}, ErrNoSubnets
}

var _ api.SubnetClient = (*Console)(nil)

// Console builds the Client for a session authenticated with key. agent
// opens the session's forwarded agent; nil means the client forwarded none.
// The key is checked again here, against the current authorized-keys file
// and operator registry: a key refused now gets no console, whatever
// happened at authentication.
func (s *Server) Console(key gossh.PublicKey, agent AgentDialer) (*Console, error) {
	g, err := s.auth.check(key)
	if err != nil {
		return nil, err
	}
	c := &Console{Grant: g}
	switch {
	case g.Operator == nil:
		c.ReadOnlyReason = "key is not a registered operator"
	case g.NoAgent:
		c.ReadOnlyReason = "agent forwarding disabled for this key"
	case agent == nil:
		c.ReadOnlyReason = "no agent: reconnect with ssh -A to sign"
	default:
		signer, err := NewAgentSigner(agent, key)
		switch {
		case errors.Is(err, ErrAgentKeyMissing):
			c.ReadOnlyReason = "agent lacks your login key (ssh-add it)"
		case err != nil:
			c.ReadOnlyReason = "agent unusable: " + err.Error()
		default:
			c.Signer = signer // assigned only when non-nil: no typed-nil Signer
		}
	}
	cl, err := s.cfg.Node.NewClient(c.Signer, g.Name)
	if err != nil {
		return nil, err
	}
	c.Client = cl
	return c, nil
}

// handle runs one SSH session: a deck console until the operator quits, the
// connection drops, the console idles out or lives too long, or the server
// closes.
func (s *Server) handle(sess ssh.Session) {
	if !s.enter() {
		wish.Fatalln(sess, "deck: server is shutting down")
		return
	}
	defer s.handlers.Done()
	who := fmt.Sprintf("%s user %q", sess.RemoteAddr(), sess.User())
	if sess.RawCommand() != "" {
		wish.Fatalln(sess, "deck: this server only runs the console; connect without a command")
		return
	}
	_, winCh, hasPty := sess.Pty()
	if !hasPty {
		wish.Fatalln(sess, "deck: the console needs a terminal: connect with ssh -t")
		return
	}
	if n := s.active.Add(1); n > int64(s.cfg.MaxConcurrentSessions) {
		s.active.Add(-1)
		s.cfg.Logf("serve: %s: refused, %d consoles already running", who, s.cfg.MaxConcurrentSessions)
		wish.Fatalln(sess, "deck: too many consoles on this node; try again later")
		return
	}
	defer s.active.Add(-1)

	var agent AgentDialer
	if ssh.AgentRequested(sess) {
		if conn, ok := sess.Context().Value(ssh.ContextKeyConn).(gossh.Conn); ok {
			agent = ForwardedAgent(conn)
		}
	}
	console, err := s.Console(sess.PublicKey(), agent)
	if err != nil {
		s.cfg.Logf("serve: %s: refused after authentication: %v", who, err)
		wish.Fatalln(sess, "deck: this key is not authorized")
		return
	}
	mode := "read-only: " + console.ReadOnlyReason
	if console.Signer != nil {
		mode = "signing as operator " + console.Signer.SignerID().String()
	}
	s.cfg.Logf("serve: %s: console for %s (%s)", who, console.Grant.Name, mode)
	if s.onConsole != nil {
		s.onConsole(console)
	}
	start := time.Now()
	why := s.runConsole(sess, console, winCh)
	s.cfg.Logf("serve: %s: console closed after %v (%s)", who, time.Since(start).Round(time.Second), why)
	if why != endQuit && why != endHangup {
		fmt.Fprintf(sess, "\r\ndeck: console closed: %s\r\n", why)
		_ = sess.Exit(1)
	}
}

// Why a console ended.
const (
	endQuit     = "operator quit"
	endHangup   = "connection closed"
	endIdle     = "idle timeout"
	endMaxAge   = "maximum session time reached"
	endShutdown = "server shutting down"
)

// runConsole runs the deck program on the session and tears everything
// down before it returns: the program, its subscriptions, the watchdog.
func (s *Server) runConsole(sess ssh.Session, client api.Client, winCh <-chan ssh.Window) string {
	ctx, cancel := context.WithTimeout(sess.Context(), s.cfg.MaxSessionDuration)
	defer cancel()
	stopOnClose := context.AfterFunc(s.ctx, cancel)
	defer stopOnClose()

	// The client closing its session channel (not the connection) ends
	// the console too: the input ends with it.
	in := &activityReader{r: sess, onEnd: cancel}
	in.touch()
	pty, _, _ := sess.Pty()
	w, h := windowSize(pty.Window)
	opts := append(bm.MakeOptions(sess),
		tea.WithInput(in),
		tea.WithWindowSize(w, h),
		// The process's signals belong to the server, not to a console.
		tea.WithoutSignalHandler(),
	)
	p, m := deck.NewProgram(client, deck.Options{
		Version: s.cfg.Version, Context: ctx, LogCapacity: SessionLogCapacityRecords,
	}, opts...)
	defer m.Close()

	var idled atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(s.cfg.IdleCheckInterval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case win, ok := <-winCh:
				if !ok { // the session's requests ended
					winCh = nil
					continue
				}
				w, h := windowSize(win)
				p.Send(tea.WindowSizeMsg{Width: w, Height: h})
			case <-tick.C:
				if in.idle() >= s.cfg.SessionIdleTimeout {
					idled.Store(true)
					cancel()
					return
				}
			}
		}
	}()

	_, err := p.Run()
	p.Kill() // no-op after a clean exit; restores the terminal after a crash
	cancel()
	wg.Wait()

	switch {
	case idled.Load():
		return endIdle
	case s.ctx.Err() != nil:
		return endShutdown
	case sess.Context().Err() != nil, in.ended.Load():
		return endHangup
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return endMaxAge
	case err != nil && !errors.Is(err, tea.ErrProgramKilled):
		return "error: " + err.Error()
	}
	return endQuit
}

// windowSize is the size the deck lays out for: a client that reports no
// size (ssh -tt from a pipe says 0×0) gets the deck's default, not a blank
// screen.
func windowSize(w ssh.Window) (width, height int) {
	width, height = w.Width, w.Height
	if width <= 0 || height <= 0 {
		return deck.DefaultWidth, deck.DefaultHeight
	}
	return width, height
}

// activityReader is the console's input, timestamping each read: the idle
// watchdog counts keystrokes, not redraws.
type activityReader struct {
	r     io.Reader
	onEnd func()       // called once when the input ends
	ended atomic.Bool  // the input ended (EOF or error)
	last  atomic.Int64 // unix nanoseconds
}

func (a *activityReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.touch()
	}
	if err != nil && a.ended.CompareAndSwap(false, true) && a.onEnd != nil {
		a.onEnd()
	}
	return n, err
}

func (a *activityReader) touch() { a.last.Store(time.Now().UnixNano()) }

func (a *activityReader) idle() time.Duration { return time.Since(time.Unix(0, a.last.Load())) }
