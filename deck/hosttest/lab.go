// Package hosttest runs deck on several hosts: a lab of Linux network
// namespaces, each a host with its own interfaces, addresses and routes,
// joined by bridges (one namespace per switch) into network segments, with
// real kernel faults (a link down, a host detached from its switch, a
// blackhole route, a host's processes killed). Its tests run the real deck
// binary on each host with `ip netns exec`, the commands of the README's
// "Several machines", and watch the mesh react.
//
// A lab needs root and iproute2 (CI has both); Available says why not, and
// the tests skip then. Everything a lab creates is named with Prefix, its
// owner's pid and a random suffix, lives in namespaces it creates (nothing
// is added to the host's own network) and is removed when the test ends;
// a lab whose test process died (killed mid-run) is swept by the next one.
package hosttest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/deck-mesh/deck/node/transport"
)

// Prefix starts the name of every namespace a lab creates.
const Prefix = "dkh"

// Bounds of a lab's housekeeping.
const (
	// commandTimeout bounds one `ip` command.
	commandTimeout = 10 * time.Second
	// exitWait bounds how long a lab waits for killed processes to leave
	// a namespace before deleting it anyway.
	exitWait = 5 * time.Second
	// logTailLines of each process log are shown when a test fails.
	logTailLines = 40
)

// Available reports why labs cannot run here (nil: they can): root,
// iproute2, and a kernel that makes namespaces, bridges and veth pairs.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root (CI runs these tests as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("no `ip` command (iproute2): %w", err)
	}
	probe := labID() + "-probe"
	defer ipQuiet("netns", "del", probe)
	for _, args := range [][]string{
		{"netns", "add", probe},
		{"-n", probe, "link", "add", "br0", "type", "bridge"},
		{"-n", probe, "link", "add", "probe0", "type", "veth", "peer", "name", "probe1"},
	} {
		if err := ip(args...); err != nil {
			return fmt.Errorf("this kernel or container does not allow it: %w", err)
		}
	}
	return nil
}

// Lab is one test's network of hosts.
type Lab struct {
	t   testing.TB
	id  string
	dir string

	mu    sync.Mutex
	nss   []string // namespaces created, in order
	procs []*Proc
}

// New sweeps labs left by dead test processes and starts an empty lab,
// torn down when the test ends (processes killed, namespaces deleted).
func New(t testing.TB) *Lab {
	t.Helper()
	sweepStale(t)
	l := &Lab{t: t, id: labID(), dir: t.TempDir()}
	t.Cleanup(l.close)
	return l
}

// labID is Prefix, this process's pid in base 36 (what sweepStale checks
// is alive), "x" and a random suffix.
func labID() string {
	var b [2]byte
	rand.Read(b[:])
	return Prefix + strconv.FormatInt(int64(os.Getpid()), 36) + "x" + hex.EncodeToString(b[:])
}

// ownerPid reads the pid out of a lab namespace's name (0: not a lab's).
func ownerPid(ns string) int {
	rest, ok := strings.CutPrefix(ns, Prefix)
	if !ok {
		return 0
	}
	pid36, _, ok := strings.Cut(rest, "x")
	if !ok {
		return 0
	}
	pid, err := strconv.ParseInt(pid36, 36, 32)
	if err != nil {
		return 0
	}
	return int(pid)
}

// sweepStale removes the namespaces (and the processes in them) of labs
// whose test process is gone.
func sweepStale(t testing.TB) {
	for _, ns := range namespaces() {
		pid := ownerPid(ns)
		if pid == 0 || pid == os.Getpid() || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue // not a lab's, ours, or its owner still runs
		}
		t.Logf("hosttest: removing %s, left by test process %d", ns, pid)
		removeNamespace(ns)
	}
}

// namespaces lists the names of the network namespaces with Prefix.
func namespaces() []string {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil
	}
	var nss []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], Prefix) {
			nss = append(nss, f[0])
		}
	}
	return nss
}

// nsPids lists the processes in namespace ns, never this one.
func nsPids(ns string) []int {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killNamespace sends sig to every process in ns and waits (at most
// exitWait) until they are gone.
func killNamespace(ns string, sig syscall.Signal) {
	for _, pid := range nsPids(ns) {
		syscall.Kill(pid, sig)
	}
	deadline := time.Now().Add(exitWait)
	for len(nsPids(ns)) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

func removeNamespace(ns string) {
	killNamespace(ns, syscall.SIGKILL)
	ipQuiet("netns", "del", ns)
}

func (l *Lab) close() {
	l.mu.Lock()
	nss, procs := slices.Clone(l.nss), slices.Clone(l.procs)
	l.mu.Unlock()
	for _, ns := range nss {
		killNamespace(ns, syscall.SIGKILL)
	}
	for _, p := range procs {
		p.wait()
		if l.t.Failed() {
			l.t.Logf("hosttest: last lines of %s:\n%s", p.log, tail(p.log, logTailLines))
		}
	}
	for _, ns := range nss {
		ipQuiet("netns", "del", ns)
	}
}

func ip(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func ipQuiet(args ...string) { _ = ip(args...) }

// ip runs an ip command the lab needs; failing is fatal.
func (l *Lab) ip(args ...string) {
	l.t.Helper()
	if err := ip(args...); err != nil {
		l.t.Fatal(err)
	}
}

// namespace creates the namespace for role, loopback up.
func (l *Lab) namespace(role string) string {
	l.t.Helper()
	ns := l.id + "-" + role
	l.ip("netns", "add", ns)
	l.mu.Lock()
	l.nss = append(l.nss, ns)
	l.mu.Unlock()
	l.ip("-n", ns, "link", "set", "lo", "up")
	return ns
}

// Switch is a network segment: a bridge in a namespace of its own.
type Switch struct {
	lab *Lab
	ns  string
}

// Switch creates a segment.
func (l *Lab) Switch(name string) *Switch {
	l.t.Helper()
	s := &Switch{lab: l, ns: l.namespace("sw" + name)}
	l.ip("-n", s.ns, "link", "add", "br0", "type", "bridge")
	l.ip("-n", s.ns, "link", "set", "br0", "up")
	return s
}

// Host is one machine: a namespace, and a home directory (HOME and the
// working directory of everything run on it).
type Host struct {
	lab  *Lab
	Name string
	NS   string
	Dir  string
	Env  []string // extra environment of every command (DECK_CLUSTER …)
}

// Host creates a machine with no interface but loopback.
func (l *Lab) Host(name string) *Host {
	l.t.Helper()
	h := &Host{lab: l, Name: name, NS: l.namespace(name), Dir: filepath.Join(l.dir, name)}
	if err := os.MkdirAll(h.Dir, 0o700); err != nil {
		l.t.Fatal(err)
	}
	return h
}

// Link is a host's cable to a switch: a veth pair, the switch's end
// named after the host, the host's end ifname.
type Link struct {
	sw   *Switch
	port string
}

// Plug cables h to switch s as interface ifname with addrs (CIDR, IPv4 or
// IPv6; IPv6 without duplicate address detection, usable at once).
func (s *Switch) Plug(h *Host, ifname string, addrs ...string) *Link {
	l := s.lab
	l.t.Helper()
	l.ip("-n", s.ns, "link", "add", h.Name, "type", "veth", "peer", "name", ifname, "netns", h.NS)
	l.ip("-n", s.ns, "link", "set", h.Name, "master", "br0", "up")
	for _, a := range addrs {
		args := []string{"-n", h.NS, "addr", "add", a, "dev", ifname}
		if strings.Contains(a, ":") {
			args = append(args, "nodad")
		}
		l.ip(args...)
	}
	l.ip("-n", h.NS, "link", "set", ifname, "up")
	return &Link{sw: s, port: h.Name}
}

// SetUp takes the link up or down (ip link set … up|down on the switch's
// end): carrier lost, nothing passes.
func (k *Link) SetUp(up bool) {
	state := "down"
	if up {
		state = "up"
	}
	k.sw.lab.ip("-n", k.sw.ns, "link", "set", k.port, state)
}

// Attach plugs the link into its bridge, or detaches it (nomaster): the
// cable stays up, the switch no longer forwards it.
func (k *Link) Attach(on bool) {
	if on {
		k.sw.lab.ip("-n", k.sw.ns, "link", "set", k.port, "master", "br0")
	} else {
		k.sw.lab.ip("-n", k.sw.ns, "link", "set", k.port, "nomaster")
	}
}

// Blackhole drops (or stops dropping) everything h sends to addr.
func (h *Host) Blackhole(addr string, on bool) {
	op := "del"
	if on {
		op = "add"
	}
	h.lab.ip("-n", h.NS, "route", op, "blackhole", addr)
}

// environ is the environment of a command on h: this process's, without
// anything that would point deck at another home, plus h's own.
func (h *Host) environ() []string {
	env := []string{"HOME=" + h.Dir}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "HOME" || strings.HasPrefix(k, "DECK_") || strings.HasPrefix(k, "XDG_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, h.Env...)
}

func (h *Host) command(ctx context.Context, argv []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS}, argv...)...)
	cmd.Dir = h.Dir
	cmd.Env = h.environ()
	// `ip netns exec` forks what it runs and dies with the test; what it
	// ran is killed with the namespace (Lab.close, or the next lab's
	// sweep when the test itself was killed).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// Result is what a command printed and how it exited.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Run runs argv on h and waits (at most timeout).
func (h *Host) Run(timeout time.Duration, argv ...string) Result {
	h.lab.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := h.command(ctx, argv)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	default:
		h.lab.t.Fatalf("%s: %v", strings.Join(argv, " "), err)
	}
	if ctx.Err() != nil {
		h.lab.t.Fatalf("%s: still running after %v", strings.Join(argv, " "), timeout)
	}
	return r
}

// Proc is a long-running command on a host, its output in a log file.
type Proc struct {
	log  string
	done chan struct{}
}

// Start runs argv on h in the background; its output goes to logName in
// h's directory. It runs until the host's processes are killed (Kill) or
// the test ends.
func (h *Host) Start(logName string, argv ...string) *Proc {
	h.lab.t.Helper()
	path := filepath.Join(h.Dir, logName)
	f, err := os.Create(path)
	if err != nil {
		h.lab.t.Fatal(err)
	}
	cmd := h.command(context.Background(), argv)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		h.lab.t.Fatal(err)
	}
	p := &Proc{log: path, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		f.Close()
		close(p.done)
	}()
	h.lab.mu.Lock()
	h.lab.procs = append(h.lab.procs, p)
	h.lab.mu.Unlock()
	return p
}

// Log is what the process printed so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

func (p *Proc) wait() {
	select {
	case <-p.done:
	case <-time.After(exitWait):
	}
}

// Kill sends sig to every process on h (SIGKILL: a crash; SIGTERM: a
// clean stop) and waits until they are gone.
func (h *Host) Kill(sig syscall.Signal) { killNamespace(h.NS, sig) }

// ListenUDP opens a UDP socket inside h's namespace, for a node run in
// this process (a watcher that sees the mesh as h does). The socket stays
// in the namespace it was made in; the thread that entered the namespace
// is never reused (it stays locked and exits with its goroutine).
func (h *Host) ListenUDP(addr string) (*transport.UDPConn, error) {
	type result struct {
		c   *transport.UDPConn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join("/run/netns", h.NS))
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, fmt.Errorf("setns %s: %w", h.NS, err)}
			return
		}
		c, err := transport.ListenUDP(addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// tail is the last n lines of a file.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
