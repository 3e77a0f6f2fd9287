package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Path is where the server answers scrapes.
const Path = "/metrics"

// NewRegistry registers src's collector with the Go runtime's and the
// process's (the standard go_* and process_* families).
func NewRegistry(src Source) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(src), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// ServerConfig configures a Server; zero fields take the limits.go values.
type ServerConfig struct {
	Addr string // TCP host:port; port 0 picks a free one
	// Listener, when set, is served instead of listening on Addr (a
	// caller that binds before it starts the node, to fail fast).
	Listener net.Listener
	Registry *prometheus.Registry
	// Log receives the server's errors (a scrape that failed, a bad
	// connection); nil discards them.
	Log *slog.Logger

	MaxConcurrentScrapes int
	MaxConnections       int
	ScrapeTimeout        time.Duration
	ReadHeaderTimeout    time.Duration
	ReadTimeout          time.Duration
	WriteTimeout         time.Duration
	IdleTimeout          time.Duration

	// connState, when set, sees every connection's state changes (tests).
	connState func(net.Conn, http.ConnState)
}

func (c ServerConfig) withDefaults() ServerConfig {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.MaxConcurrentScrapes <= 0 {
		c.MaxConcurrentScrapes = MaxConcurrentScrapes
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = MaxConnections
	}
	def(&c.ScrapeTimeout, ScrapeTimeout)
	def(&c.ReadHeaderTimeout, ReadHeaderTimeout)
	def(&c.ReadTimeout, ReadTimeout)
	def(&c.WriteTimeout, WriteTimeout)
	def(&c.IdleTimeout, IdleTimeout)
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Server serves Path over HTTP until Close.
type Server struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
	err  error
}

// Listen binds cfg.Addr (or takes cfg.Listener) and serves scrapes of
// cfg.Registry on it until Close.
func Listen(cfg ServerConfig) (*Server, error) {
	if cfg.Registry == nil {
		return nil, errors.New("metrics: no registry")
	}
	cfg = cfg.withDefaults()
	ln := cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.Addr); err != nil {
			return nil, fmt.Errorf("metrics: listen %s: %w", cfg.Addr, err)
		}
	}
	s := &Server{done: make(chan struct{})}
	s.ln = &limitListener{Listener: ln, slots: make(chan struct{}, cfg.MaxConnections)}
	h := promhttp.InstrumentMetricHandler(cfg.Registry, promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{
		ErrorLog:            slogPrintln{cfg.Log},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: cfg.MaxConcurrentScrapes,
		Timeout:             cfg.ScrapeTimeout,
	}))
	mux := http.NewServeMux()
	mux.Handle(Path, h)
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn),
		ConnState:         cfg.connState,
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
			s.err = err
			cfg.Log.Error("metrics server stopped", "err", err)
		}
	}()
	return s, nil
}

// Addr is the bound address (host:port).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops accepting, lets scrapes in flight finish within
// ShutdownTimeout, then closes every connection.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = s.srv.Close()
	}
	<-s.done
	return errors.Join(err, s.err)
}

// limitListener holds at most cap(slots) accepted connections open: Accept
// waits for a slot before it takes the next connection from the kernel.
type limitListener struct {
	net.Listener
	slots chan struct{}
	// held and peak count the connections between Accept and Close, and
	// the most at once: what the slots bound (the server's own ConnState
	// hook runs after Close, so it overlaps the next Accept).
	held, peak atomic.Int64
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.slots <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	n := l.held.Add(1)
	for p := l.peak.Load(); n > p && !l.peak.CompareAndSwap(p, n); p = l.peak.Load() {
	}
	return &limitedConn{Conn: c, release: func() { l.held.Add(-1); <-l.slots }}, nil
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// slogPrintln is promhttp's error logger on slog.
type slogPrintln struct{ l *slog.Logger }

func (p slogPrintln) Println(v ...any) { p.l.Warn("metrics: " + fmt.Sprint(v...)) }
