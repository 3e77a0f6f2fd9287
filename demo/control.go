package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
)

// The control socket lets `deck demo fault …` in another terminal inject
// faults into a running demo. It is a Unix socket in the demo's state dir
// (mode 0600 via the dir), so only the demo's user can reach it.
const (
	controlTimeout     = 30 * time.Second
	maxControlRequest  = 4 << 10
	maxControlResponse = 64 << 10
)

// FaultRequest is the control socket's request: node references are
// labels ("node-3"), 1-based indexes or ids.
type FaultRequest struct {
	Kind    api.FaultKind `json:"kind"`
	Nodes   []string      `json:"nodes,omitempty"`
	Peers   []string      `json:"peers,omitempty"`
	DelayMs int64         `json:"delay_ms,omitempty"`
	Loss    float64       `json:"loss,omitempty"`
	Daemon  string        `json:"daemon,omitempty"`
}

// FaultResponse answers one request.
type FaultResponse struct {
	OK     bool     `json:"ok"`
	Error  string   `json:"error,omitempty"`
	Code   int      `json:"code,omitempty"`
	Active []string `json:"active,omitempty"`
}

type controlServer struct {
	ln   net.Listener
	d    *Demo
	wg   sync.WaitGroup
	path string
}

func listenControl(path string, d *Demo) (*controlServer, error) {
	// A socket left by a demo that was killed is stale: nothing listens.
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("%w: another demo is running with state dir %s", api.ErrExists, filepath.Dir(path))
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("demo: control socket: %w", err)
	}
	s := &controlServer{ln: ln, d: d, path: path}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

func (s *controlServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			c.SetDeadline(time.Now().Add(controlTimeout))
			resp := s.handle(c)
			b, _ := json.Marshal(resp)
			c.Write(append(b, '\n'))
		}()
	}
}

func (s *controlServer) handle(c net.Conn) FaultResponse {
	line, err := bufio.NewReaderSize(c, maxControlRequest).ReadSlice('\n')
	if err != nil {
		return failResponse(fmt.Errorf("%w: bad request: %v", api.ErrInvalid, err))
	}
	var req FaultRequest
	if err := json.Unmarshal(line, &req); err != nil {
		return failResponse(fmt.Errorf("%w: bad request: %v", api.ErrInvalid, err))
	}
	f, err := s.d.faultOf(req)
	if err != nil {
		return failResponse(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	defer cancel()
	if err := s.d.Inject(ctx, f); err != nil {
		return failResponse(err)
	}
	var active []string
	for _, a := range s.d.Active() {
		active = append(active, s.d.DescribeFault(a))
	}
	return FaultResponse{OK: true, Active: active}
}

func failResponse(err error) FaultResponse {
	return FaultResponse{Error: err.Error(), Code: api.ExitCode(err)}
}

func (s *controlServer) Close() {
	s.ln.Close()
	s.wg.Wait()
	os.Remove(s.path)
}

// faultOf resolves a request's node references.
func (d *Demo) faultOf(req FaultRequest) (api.Fault, error) {
	f := api.Fault{Kind: req.Kind, Delay: time.Duration(req.DelayMs) * time.Millisecond, Loss: req.Loss, Daemon: req.Daemon}
	for _, ref := range req.Nodes {
		id, err := d.ResolveNode(ref)
		if err != nil {
			return f, err
		}
		f.Nodes = append(f.Nodes, id)
	}
	for _, ref := range req.Peers {
		id, err := d.ResolveNode(ref)
		if err != nil {
			return f, err
		}
		f.Peers = append(f.Peers, id)
	}
	return f, d.checkFault(f)
}

// DescribeFault renders a fault with node labels, for the CLI and the TUI.
func (d *Demo) DescribeFault(f api.Fault) string {
	name := func(id identity.NodeID) string {
		for _, m := range d.members {
			if m.key.ID == id {
				return m.label
			}
		}
		return id.String()
	}
	s := string(f.Kind)
	for _, n := range f.Nodes {
		s += " " + name(n)
	}
	if len(f.Peers) > 0 {
		s += " ↔"
		for _, n := range f.Peers {
			s += " " + name(n)
		}
	}
	if f.Delay > 0 {
		s += fmt.Sprintf(" +%v", f.Delay)
	}
	if f.Loss > 0 {
		s += fmt.Sprintf(" %.0f%% loss", f.Loss*100)
	}
	if f.Daemon != "" {
		s += " " + f.Daemon
	}
	return s
}

// SendFault sends one request to the demo whose state dir holds socketPath.
func SendFault(ctx context.Context, socketPath string, req FaultRequest) (FaultResponse, error) {
	var dialer net.Dialer
	c, err := dialer.DialContext(ctx, "unix", socketPath)
	if err != nil {
		return FaultResponse{}, fmt.Errorf("%w: no running demo at %s (%v)", api.ErrNotConnected, socketPath, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(controlTimeout))
	}
	b, _ := json.Marshal(req)
	if _, err := c.Write(append(b, '\n')); err != nil {
		return FaultResponse{}, fmt.Errorf("demo control: %w", err)
	}
	line, err := bufio.NewReaderSize(c, maxControlResponse).ReadSlice('\n')
	if err != nil {
		return FaultResponse{}, fmt.Errorf("demo control: %w", err)
	}
	var resp FaultResponse
	if err := json.Unmarshal(line, &resp); err != nil {
		return FaultResponse{}, fmt.Errorf("demo control: bad response: %w", err)
	}
	if !resp.OK {
		return resp, &RemoteError{Msg: resp.Error, Code: resp.Code}
	}
	return resp, nil
}

// RemoteError is a failure reported by the demo, with its exit code.
type RemoteError struct {
	Msg  string
	Code int
}

func (e *RemoteError) Error() string { return e.Msg }

// ExitCode lets the CLI keep the demo's classification.
func (e *RemoteError) ExitCode() int { return e.Code }

var _ = errors.New
