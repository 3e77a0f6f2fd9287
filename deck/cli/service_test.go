package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	dto "github.com/prometheus/client_model/go"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/metrics"
	"github.com/deck-mesh/deck/node/nodetest"
)

// cliChildEnv set to 1 makes this test binary the deck command line
// (TestMain): a test runs deck as a real process with it.
const cliChildEnv = "DECK_CLI_TEST_CHILD"

// serviceTimeout bounds each wait on a `deck node run` process: starting
// its node, and draining on SIGTERM.
const serviceTimeout = 90 * time.Second

// deckProcess is this test binary started as `deck args...`.
type deckProcess struct {
	cmd    *exec.Cmd
	stderr *promptWatch
	exited chan struct{}
	err    error // cmd.Wait's, once exited is closed
}

// startDeck starts deck with args and waits until its stderr shows
// prompt.
func startDeck(t *testing.T, prompt string, args ...string) *deckProcess {
	t.Helper()
	p := &deckProcess{
		cmd:    exec.Command(os.Args[0], args...),
		stderr: &promptWatch{prompt: prompt, seen: make(chan struct{})},
		exited: make(chan struct{}),
	}
	p.cmd.Env = append(os.Environ(), cliChildEnv+"=1")
	p.cmd.Stdout, p.cmd.Stderr = io.Discard, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	select {
	case <-p.stderr.seen:
	case <-p.exited:
		t.Fatalf("deck %s exited (%v) before logging %s:\n%s", strings.Join(args, " "), p.err, prompt, p.stderr)
	case <-time.After(serviceTimeout):
		t.Fatalf("deck %s logged no %s in %v:\n%s", strings.Join(args, " "), prompt, serviceTimeout, p.stderr)
	}
	return p
}

// stop sends SIGTERM and returns the exit code.
func (p *deckProcess) stop(t *testing.T) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(serviceTimeout):
		t.Fatalf("deck did not stop on SIGTERM in %v:\n%s", serviceTimeout, p.stderr)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

// logRecords parses a JSON log, one object per line; a line that is not
// one fails the test.
func logRecords(t testing.TB, log string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line is not JSON (%v): %q\n%s", err, sc.Text(), log)
		}
		out = append(out, rec)
	}
	return out
}

// logRecord is the first record of a JSON log with message msg.
func logRecord(t testing.TB, log, msg string) map[string]any {
	t.Helper()
	for _, rec := range logRecords(t, log) {
		if rec["msg"] == msg {
			return rec
		}
	}
	t.Fatalf("no %q record in the log:\n%s", msg, log)
	return nil
}

// scrapeText GETs url and parses it with the Prometheus text parser.
func scrapeText(url string) (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// gaugeOrCounter is the value of the first series of family name whose
// labels include label=value ("" matches any).
func gaugeOrCounter(mfs map[string]*dto.MetricFamily, name, label, value string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
	for _, m := range mf.Metric {
		ok := label == ""
		for _, l := range m.Label {
			ok = ok || (l.GetName() == label && l.GetValue() == value)
		}
		if !ok {
			continue
		}
		if m.Counter != nil {
			return m.Counter.GetValue(), true
		}
		return m.Gauge.GetValue(), m.Gauge != nil
	}
	return 0, false
}

// TestNodeRunAsAService runs `deck node run` as a real process the way a
// service manager does (JSON logs, metrics on a loopback port): it logs
// the bound metrics address, serves /metrics in the Prometheus text format
// with the node's families and live values as it joins a mesh, and on
// SIGTERM drains, exits 0 and logs "stopped" last, every line JSON.
func TestNodeRunAsAService(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a mesh and a node process")
	}
	t.Parallel()
	m := startMesh(t, meshOpts{nodes: 1, iceThreshold: 1, operators: []string{"alice"}})
	data := filepath.Join(t.TempDir(), "node")
	p := startDeck(t, `"msg":"serving metrics"`, "--cluster", m.clusterPath, "node", "run", "--listen", "127.0.0.1:0",
		"--data", data, "--metrics", "127.0.0.1:0", "--log-format", "json")
	served := logRecord(t, p.stderr.String(), "serving metrics")
	addr, _ := served["addr"].(string)
	if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		t.Fatalf("logged metrics address %q, not the bound one", addr)
	}
	if served["url"] != "http://"+addr+metrics.Path {
		t.Errorf("logged metrics url %v", served["url"])
	}
	url := "http://" + addr + metrics.Path

	var mfs map[string]*dto.MetricFamily
	nodetest.Eventually(t, "the scrape to show the mesh's node as a healthy peer with a session", func() bool {
		var err error
		if mfs, err = scrapeText(url); err != nil {
			t.Fatalf("scrape: %v\n%s", err, p.stderr)
		}
		healthy, _ := gaugeOrCounter(mfs, "deck_transport_peers", "health", "healthy")
		sessions, _ := gaugeOrCounter(mfs, "deck_transport_sessions", "", "")
		return healthy == 1 && sessions >= 1
	}, func() string { return p.stderr.String() })
	for _, name := range []string{
		"deck_transport_packets_received_total", "deck_transport_packets_dropped_total", "deck_transport_replays_rejected_total",
		"deck_transport_auth_failures_total", "deck_transport_handshake_mac1_failures_total", "deck_transport_cookie_replies_sent_total",
		"deck_transport_responders_evicted_total", "deck_transport_pending_peers", "deck_transport_pending_packets_dropped_total",
		"deck_gossip_envelopes_total", "deck_gossip_envelopes_not_member_total", "deck_ledger_events", "deck_ledger_fold_lag_events",
		"deck_ledger_antientropy_requests_throttled_total", "deck_subscription_lease_setups_rate_limited_total",
		"deck_subscription_records_misattributed_total", "deck_meshos_daemons", "deck_meshos_messages_misattributed_total",
		"go_goroutines", "process_open_fds",
	} {
		if mfs[name] == nil || len(mfs[name].Metric) == 0 {
			t.Errorf("family %s missing from the scrape", name)
		}
	}
	if got, _ := gaugeOrCounter(mfs, "deck_transport_packets_received_total", "", ""); got < 1 {
		t.Errorf("packets received = %v, want ≥ 1 from a node that has a healthy peer", got)
	}

	if code := p.stop(t); code != api.ExitOK {
		t.Fatalf("SIGTERM: exit %d, want 0\n%s", code, p.stderr)
	}
	recs := logRecords(t, p.stderr.String())
	last := recs[len(recs)-1]
	if last["msg"] != "stopped" || last["level"] != "INFO" {
		t.Fatalf("last log record %v, want an INFO \"stopped\"\n%s", last, p.stderr)
	}
	listening := logRecord(t, p.stderr.String(), "node listening")
	if id, _ := listening["node"].(string); id == "" {
		t.Errorf("the node listening record names no node: %v", listening)
	}
}

// TestServiceFlagsRefuseBadValues: a bad --log-format, --log-level or
// --metrics exits 2 naming the flag and what it wants, before any node
// starts, for `deck node run` and `deck serve` alike.
func TestServiceFlagsRefuseBadValues(t *testing.T) {
	cluster := permClusterFile(t, 0o600)
	data := t.TempDir()
	for _, c := range []struct {
		flag, value, want string
	}{
		{"--log-format", "xml", `--log-format "xml": want text or json`},
		{"--log-level", "loud", `--log-level "loud": want debug, info, warn or error`},
		{"--log-level", "info+2", `--log-level "info+2"`},
		{"--metrics", "9464", `--metrics "9464"`},
		{"--metrics", "127.0.0.1:99999", `port "99999" is not a number from 0 to 65535`},
	} {
		for _, cmd := range [][]string{
			{"--cluster", cluster, "node", "run", "--listen", "127.0.0.1:0", "--data", data},
			{"--cluster", cluster, "serve", "--ssh", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--data", data},
		} {
			r := run(t, IO{}, append(cmd, c.flag, c.value)...)
			if r.code != api.ExitInvalid || !strings.Contains(r.err, c.want) {
				t.Errorf("%s %s %s: %s, want exit %d saying %q", cmd[2], c.flag, c.value, r, api.ExitInvalid, c.want)
			}
			if _, err := os.Stat(filepath.Join(data, "node.key")); err == nil {
				t.Fatalf("%s %s %s created a node key: the flags were checked too late", cmd[2], c.flag, c.value)
			}
		}
	}
}
