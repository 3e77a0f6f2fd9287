package demo

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/deck-mesh/deck/demo/faultconn"
	"github.com/deck-mesh/deck/demo/workloads"
	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/transport"
)

// With Options.Procs every demo node runs in a child process: the deck
// binary re-executed with memberEnv set, so a kill is a real SIGKILL of a
// real process and each node's memory is its own. The parent keeps the
// child's stdin as a command pipe (one JSON memberCommand per line) for
// the faults a process cannot suffer from outside — link blocks and
// impairments, a paused socket, a crash-looping daemon — and reads
// "ready ADDR" from its stdout once the node is up. When the pipe closes
// (the demo closed, or the parent died) the child closes its node and
// exits.

// memberEnv carries a child's memberArgs (JSON) to the re-executed binary.
const memberEnv = "DECK_DEMO_MEMBER"

// Child process bounds.
const (
	// childReadyTimeout bounds a child's start: exec, Badger open, bind.
	childReadyTimeout = 20 * time.Second
	// childStopGrace is how long a child gets to close its node cleanly
	// after its command pipe closes before it is killed.
	childStopGrace = 10 * time.Second
	// childLogFile, in the node's data dir, keeps the child's stderr.
	childLogFile = "node.log"
)

// memberArgs is what a child needs to start its node; the rest (cluster,
// key, workload spec) it reads from the demo's state dir.
type memberArgs struct {
	StateDir  string   `json:"state_dir"`
	Index     int      `json:"index"`
	Nodes     int      `json:"nodes"`
	Listen    string   `json:"listen"`
	Bootstrap []string `json:"bootstrap"`
	Version   string   `json:"version"`
}

// memberCommand is one fault operation on a child's node.
type memberCommand struct {
	Op     string          `json:"op"` // block | impair | pause | crashloop | read-blob | budget
	Peer   identity.NodeID `json:"peer,omitempty"`
	On     bool            `json:"on,omitempty"`
	Delay  time.Duration   `json:"delay_ns,omitempty"`
	Loss   float64         `json:"loss,omitempty"`
	Daemon string          `json:"daemon,omitempty"`
	// read-blob: the blob to read through the node; budget: its datafort
	// budget, or (Full) only the room it uses.
	Blob   api.BlobHash `json:"blob,omitempty"`
	Budget uint64       `json:"budget,omitempty"`
	Full   bool         `json:"full,omitempty"`
}

// RunMemberIfChild must be called first thing by any binary that starts
// demos with Procs (cmd/deck's main, and TestMain of tests that do): in a
// child started as a demo node it runs that node until its command pipe
// closes, then exits the process; otherwise it returns at once.
func RunMemberIfChild() {
	raw, ok := os.LookupEnv(memberEnv)
	if !ok {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(runMember(ctx, raw, os.Stdin, os.Stdout, os.Stderr))
}

func memberDataDir(stateDir string, idx int) string {
	return filepath.Join(stateDir, "nodes", fmt.Sprintf("node-%d", idx+1))
}

// runMember is a child's life: start the node, report its address, apply
// commands until the pipe closes, close the node. It returns the exit code.
func runMember(ctx context.Context, raw string, in io.Reader, out, errOut io.Writer) int {
	var a memberArgs
	if err := json.Unmarshal([]byte(raw), &a); err != nil {
		fmt.Fprintf(errOut, "deck demo member: bad %s: %v\n", memberEnv, err)
		return 2
	}
	nd, fc, blobs, err := startMemberNode(ctx, a)
	if err != nil {
		fmt.Fprintf(errOut, "deck demo member: %v\n", err)
		return 1
	}
	fmt.Fprintf(out, "ready %s\n", nd.Addr())
	lines := make(chan []byte)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			lines <- append([]byte(nil), sc.Bytes()...)
		}
	}()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case line, ok := <-lines:
			if !ok {
				done = true
				break
			}
			if err := applyMemberCommand(ctx, nd, fc, blobs, line); err != nil {
				fmt.Fprintf(errOut, "deck demo member: %v\n", err)
			}
		}
	}
	if err := nd.Close(); err != nil {
		fmt.Fprintf(errOut, "deck demo member: close: %v\n", err)
		return 1
	}
	return 0
}

func startMemberNode(ctx context.Context, a memberArgs) (*node.Node, *faultconn.Conn, *memberBlobs, error) {
	cluster, _, err := config.LoadCluster(filepath.Join(a.StateDir, ClusterFile))
	if err != nil {
		return nil, nil, nil, err
	}
	spec, err := cluster.Spec()
	if err != nil {
		return nil, nil, nil, err
	}
	dataDir := memberDataDir(a.StateDir, a.Index)
	key, err := identity.LoadKey(filepath.Join(dataDir, "node.key"))
	if err != nil {
		return nil, nil, nil, err
	}
	cert, err := identity.LoadCertificate(filepath.Join(dataDir, identity.CertificateFileName))
	if err != nil {
		return nil, nil, nil, err
	}
	op, err := loadBlobOperator(a.StateDir)
	if err != nil {
		return nil, nil, nil, err
	}
	blobs := &memberBlobs{}
	opts := node.Options{
		Cluster: cluster, Key: key, DataDir: dataDir, ListenAddr: a.Listen, Bootstrap: a.Bootstrap,
		Label: fmt.Sprintf("node-%d", a.Index+1), Capabilities: workloads.NodeCapabilities(a.Index, a.Nodes),
		Spec: spec, Factories: workloadFactories(blobs), Version: a.Version, Certificate: cert,
		BlobBudget: blobBudget(a.Index, a.Nodes),
	}
	nd, fc, err := startNode(ctx, opts)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := blobs.bind(nd, op); err != nil {
		nd.Close()
		return nil, nil, nil, err
	}
	return nd, fc, blobs, nil
}

// startNode starts a node on a fault-injecting socket (its faults start
// clear) bound to its old address, or to a fresh port when that one was
// taken meanwhile (its peers learn the new address from the handshake).
func startNode(ctx context.Context, opts node.Options) (*node.Node, *faultconn.Conn, error) {
	addr := cmp.Or(opts.ListenAddr, "127.0.0.1:0")
	udp, err := transport.ListenUDP(addr)
	if err != nil && addr != "127.0.0.1:0" {
		udp, err = transport.ListenUDP("127.0.0.1:0")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("demo: start %s: %w", opts.Label, err)
	}
	fc := faultconn.New(udp)
	opts.Conn = fc
	nd, err := node.Start(ctx, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("demo: start %s: %w", opts.Label, err)
	}
	return nd, fc, nil
}

func applyMemberCommand(ctx context.Context, nd *node.Node, fc *faultconn.Conn, blobs *memberBlobs, line []byte) error {
	var c memberCommand
	if err := json.Unmarshal(line, &c); err != nil {
		return fmt.Errorf("bad command %q: %w", line, err)
	}
	switch c.Op {
	case "block":
		fc.Block(c.Peer, c.On)
	case "impair":
		fc.Impair(c.Peer, c.Delay, c.Loss)
	case "pause":
		fc.Pause(c.On)
	case "crashloop":
		workloads.SetCrashLoop(c.Daemon, c.On)
	case "read-blob":
		// Off the command loop: the read waits on the network.
		go func() {
			rctx, cancel := context.WithTimeout(ctx, controlTimeout)
			defer cancel()
			if b := blobs.get(); b != nil {
				if _, err := b.Get(rctx, c.Blob, io.Discard, nil); err != nil {
					fmt.Fprintf(os.Stderr, "deck demo member: read blob %s: %v\n", c.Blob.Short(), err)
				}
			}
		}()
	case "budget":
		setBudget(nd, c.Full, c.Budget)
	default:
		return fmt.Errorf("unknown command %q", c.Op)
	}
	return nil
}

// child is the parent's handle on a node running in a child process.
type child struct {
	cmd *exec.Cmd
	mu  sync.Mutex // serialises writes to in; guards the link state
	in  io.WriteCloser
	// What the child's fault wrapper was told, so applyLinks (after every
	// start, for every pair) sends only changes; a fresh child starts
	// with nothing blocked or impaired, the maps' zero values.
	blocked  map[identity.NodeID]bool
	impaired map[identity.NodeID]impairment
	done     chan struct{} // closed when the process has exited
	log      *os.File
}

// startChild re-executes this binary as demo node m and waits for it to
// report its address.
func (d *Demo) startChild(ctx context.Context, m *member) (*child, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", fmt.Errorf("demo: --procs: %w", err)
	}
	raw, err := json.Marshal(memberArgs{StateDir: d.stateDir, Index: m.idx, Nodes: len(d.members), Listen: m.addr,
		Bootstrap: d.bootstrapFor(m), Version: d.opts.Version})
	if err != nil {
		return nil, "", err
	}
	logf, err := os.OpenFile(filepath.Join(m.dataDir, childLogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, "", fmt.Errorf("demo: %s log: %w", m.label, err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), memberEnv+"="+string(raw))
	cmd.Stderr = logf
	in, err := cmd.StdinPipe()
	if err != nil {
		logf.Close()
		return nil, "", err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, "", fmt.Errorf("demo: start %s: %w", m.label, err)
	}
	c := &child{cmd: cmd, in: in, done: make(chan struct{}), log: logf,
		blocked: map[identity.NodeID]bool{}, impaired: map[identity.NodeID]impairment{}}
	ready := make(chan string, 1)
	go func() {
		r := bufio.NewReader(outPipe)
		line, _ := r.ReadString('\n')
		ready <- strings.TrimSpace(line)
		io.Copy(io.Discard, r) // the child writes nothing more; never block it
	}()
	go func() {
		cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	tm := time.NewTimer(childReadyTimeout)
	defer tm.Stop()
	select {
	case line := <-ready:
		if addr, ok := strings.CutPrefix(line, "ready "); ok {
			return c, addr, nil
		}
		c.kill()
		return nil, "", fmt.Errorf("demo: start %s: the child exited (see %s)", m.label, filepath.Join(m.dataDir, childLogFile))
	case <-tm.C:
		c.kill()
		return nil, "", fmt.Errorf("demo: start %s: not up after %s", m.label, childReadyTimeout)
	case <-ctx.Done():
		c.kill()
		return nil, "", ctx.Err()
	}
}

// send writes one command; a child that has exited is not an error here
// (a kill races the faults that follow it).
func (c *child) send(cmd memberCommand) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sendLocked(cmd)
}

func (c *child) sendLocked(cmd memberCommand) {
	b, _ := json.Marshal(cmd) // plain fields: cannot fail
	c.in.Write(append(b, '\n'))
}

func (c *child) setBlocked(peer identity.NodeID, on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.blocked[peer] != on {
		c.blocked[peer] = on
		c.sendLocked(memberCommand{Op: "block", Peer: peer, On: on})
	}
}

func (c *child) setImpaired(peer identity.NodeID, imp impairment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.impaired[peer] != imp {
		c.impaired[peer] = imp
		c.sendLocked(memberCommand{Op: "impair", Peer: peer, Delay: imp.delay, Loss: imp.loss})
	}
}

// kill is a real SIGKILL: the node gets no chance to close anything.
func (c *child) kill() {
	c.cmd.Process.Kill()
	<-c.done
}

// close asks the child to close its node and exit, killing it after
// childStopGrace.
func (c *child) close() error {
	c.mu.Lock()
	c.in.Close()
	c.mu.Unlock()
	tm := time.NewTimer(childStopGrace)
	defer tm.Stop()
	select {
	case <-c.done:
		if code := c.cmd.ProcessState.ExitCode(); code != 0 {
			return fmt.Errorf("demo: node process exited with %d", code)
		}
		return nil
	case <-tm.C:
		c.kill()
		return errors.New("demo: node process did not stop in time; killed")
	}
}

// pid is the child's process id, for its resident memory.
func (c *child) pid() int { return c.cmd.Process.Pid }
