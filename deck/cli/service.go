package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/metrics"
)

// serviceFlags are the logging and metrics flags of the commands that run a
// node as a service: `deck node run` and `deck serve`.
type serviceFlags struct {
	logFormat, logLevel, metricsAddr string
}

// Log formats of --log-format.
const (
	logFormatText = "text"
	logFormatJSON = "json"
)

func (s *serviceFlags) add(f *pflag.FlagSet) {
	f.StringVar(&s.logFormat, "log-format", logFormatText, "log `format` on stderr: text (key=value) or json (one object per line)")
	f.StringVar(&s.logLevel, "log-level", "info", "least `level` logged: debug, info, warn or error")
	f.StringVar(&s.metricsAddr, "metrics", "", "serve Prometheus metrics on http://`ADDR`"+metrics.Path+", e.g. 127.0.0.1:9464 (port 0 picks a free one; default off)")
}

// logger checks the flags' values (exit 2 on a bad one) and makes the
// command's logger on w.
func (s *serviceFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s.logLevel)); err != nil || strings.ContainsAny(s.logLevel, "+-") {
		return nil, usageErr("--log-level %q: want debug, info, warn or error", s.logLevel)
	}
	if s.metricsAddr != "" {
		if err := checkTCPAddr(s.metricsAddr); err != nil {
			return nil, usageErr("--metrics %q: %v (want HOST:PORT, e.g. 127.0.0.1:9464)", s.metricsAddr, err)
		}
	}
	opts := &slog.HandlerOptions{Level: level}
	switch s.logFormat {
	case logFormatText:
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case logFormatJSON:
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageErr("--log-format %q: want %s or %s", s.logFormat, logFormatText, logFormatJSON)
}

// checkTCPAddr accepts HOST:PORT with a numeric port (0 picks one).
func checkTCPAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}

// bindMetrics binds --metrics before the node starts, so a taken port
// fails fast with nothing to undo; nil when the flag is unset.
func (s *serviceFlags) bindMetrics() (net.Listener, error) {
	if s.metricsAddr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", s.metricsAddr)
	if err != nil {
		return nil, fmt.Errorf("--metrics %s: %w", s.metricsAddr, err)
	}
	return ln, nil
}

// serveMetrics serves nd's metrics on ln (nil: none) and logs where.
func serveMetrics(ln net.Listener, nd *node.Node, log *slog.Logger) (*metrics.Server, error) {
	if ln == nil {
		return nil, nil
	}
	srv, err := metrics.Listen(metrics.ServerConfig{Listener: ln, Registry: metrics.NewRegistry(nd), Log: log})
	if err != nil {
		return nil, err
	}
	log.Info("serving metrics", "addr", srv.Addr(), "url", "http://"+srv.Addr()+metrics.Path)
	return srv, nil
}

// nodeLogf is the node's Logf on log: the node's own events are
// informational (transport state changes, anti-entropy errors with one
// peer); what needs an operator shows in metrics and the console.
func nodeLogf(log *slog.Logger) func(format string, args ...any) {
	return func(format string, args ...any) {
		if log.Enabled(context.Background(), slog.LevelInfo) {
			log.Info(fmt.Sprintf(format, args...))
		}
	}
}

// metricsCloser closes srv (nil: nothing to close).
func metricsCloser(srv *metrics.Server) func() error {
	return func() error {
		if srv == nil {
			return nil
		}
		if err := srv.Close(); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		return nil
	}
}

// stopService closes what a service command runs, in order, after cause
// (an error that ended it; nil for a signal). It logs "stopping" first and
// "stopped" last, so the final line of a service's log says whether it
// stopped cleanly.
func stopService(log *slog.Logger, cause error, closers ...func() error) error {
	log.Info("stopping")
	errs := []error{cause}
	for _, c := range closers {
		errs = append(errs, c())
	}
	if err := errors.Join(errs...); err != nil {
		log.Error("stopped", "err", err)
		return err
	}
	log.Info("stopped")
	return nil
}
