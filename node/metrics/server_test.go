package metrics

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deck-mesh/deck/node/nodetest"
)

// clientTimeout bounds every client call in these tests: far beyond what
// a healthy server needs on a loaded machine, so only a server that never
// answers fails on it.
const clientTimeout = 30 * time.Second

// connCounter counts the server's open connections and the most it held
// at once, from http.Server's own ConnState (independent of the limit).
type connCounter struct {
	mu        sync.Mutex
	open, max int
}

func (c *connCounter) state(_ net.Conn, st http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch st {
	case http.StateNew:
		c.open++
		c.max = max(c.max, c.open)
	case http.StateClosed, http.StateHijacked:
		c.open--
	}
}

func (c *connCounter) get() (open, most int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open, c.max
}

// gaugeRegistry is a registry with one real gauge, for server tests that
// need no node.
func gaugeRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "deck_test_up", Help: "1."})
	g.Set(1)
	reg.MustRegister(g)
	return reg
}

func listen(t *testing.T, cfg ServerConfig) *Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	s, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// dialSilent opens n connections that send nothing (or, with partial, the
// start of a request whose headers never end).
func dialSilent(t *testing.T, addr string, n int, partial bool) []net.Conn {
	t.Helper()
	var out []net.Conn
	for range n {
		c, err := net.DialTimeout("tcp", addr, clientTimeout)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if partial {
			if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: deck\r\nX-Slow: "); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, c)
	}
	return out
}

// waitClosedByServer reads c until the server closes it; a read that
// times out means the server kept it open.
func waitClosedByServer(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(clientTimeout))
	_, err := io.Copy(io.Discard, c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the server held a connection that sent no request for %v", clientTimeout)
	}
}

// TestAttackSlowlorisCannotLockOutScrapes: connections that open a request
// and never finish its headers, as many as the server holds, are closed by
// the header timeout, so a real scrape gets through.
func TestAttackSlowlorisCannotLockOutScrapes(t *testing.T) {
	const conns = 4
	s := listen(t, ServerConfig{Registry: gaugeRegistry(), MaxConnections: conns, ReadHeaderTimeout: 200 * time.Millisecond})
	dialSilent(t, s.Addr(), conns, true)
	client := &http.Client{Timeout: clientTimeout}
	resp, err := client.Get("http://" + s.Addr() + Path)
	if err != nil {
		t.Fatalf("a scrape behind %d slowloris connections: %v", conns, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", resp.Status)
	}
}

// TestAttackConnectionFloodIsBoundedByMaxConnections: a flood of TCP
// connections (each a goroutine and a file descriptor the node's Badger
// and socket need) is held to MaxConnections at once; the rest wait in the
// kernel's accept queue until the header timeout frees a slot.
func TestAttackConnectionFloodIsBoundedByMaxConnections(t *testing.T) {
	const limit, flood = 4, 24
	var cc connCounter
	s := listen(t, ServerConfig{Registry: gaugeRegistry(), MaxConnections: limit, ReadHeaderTimeout: 500 * time.Millisecond, connState: cc.state})
	conns := dialSilent(t, s.Addr(), flood, false)
	nodetest.Eventually(t, "the server to take the first connections", func() bool {
		open, _ := cc.get()
		return open > 0
	})
	for _, c := range conns {
		waitClosedByServer(t, c)
	}
	if most := s.ln.(*limitListener).peak.Load(); most > limit {
		t.Fatalf("the server held %d connections at once, limit %d", most, limit)
	}
}

// blockingCollector stands for a collection that takes long: it blocks
// until released.
type blockingCollector struct {
	entered chan struct{}
	release chan struct{}
	desc    *prometheus.Desc
}

func (b *blockingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- b.desc }

func (b *blockingCollector) Collect(ch chan<- prometheus.Metric) {
	b.entered <- struct{}{}
	<-b.release
	ch <- prometheus.MustNewConstMetric(b.desc, prometheus.GaugeValue, 1)
}

// TestAttackConcurrentScrapesBeyondLimitAreRefused: scrapes beyond
// MaxConcurrentScrapes are answered 503 at once instead of each starting
// another collection: a scrape flood costs the node at most
// MaxConcurrentScrapes collections at a time.
func TestAttackConcurrentScrapesBeyondLimitAreRefused(t *testing.T) {
	bc := &blockingCollector{entered: make(chan struct{}), release: make(chan struct{}),
		desc: prometheus.NewDesc("deck_test_slow", "A slow collection.", nil, nil)}
	reg := prometheus.NewRegistry()
	reg.MustRegister(bc)
	// The scrape timeout is out of reach: what answers the extra scrape
	// must be the in-flight limit.
	s := listen(t, ServerConfig{Registry: reg, ScrapeTimeout: 2 * clientTimeout, WriteTimeout: 3 * clientTimeout})
	url := "http://" + s.Addr() + Path
	client := &http.Client{Timeout: clientTimeout}
	var wg sync.WaitGroup
	var ok atomic.Int32
	for range MaxConcurrentScrapes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := client.Get(url); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ok.Add(1)
				}
			}
		}()
		<-bc.entered // this scrape is collecting
	}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("a scrape beyond the limit was not answered: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a scrape beyond %d in flight: %s, want 503", MaxConcurrentScrapes, resp.Status)
	}
	close(bc.release)
	wg.Wait()
	if ok.Load() != MaxConcurrentScrapes {
		t.Fatalf("%d of the %d scrapes in flight succeeded", ok.Load(), MaxConcurrentScrapes)
	}
}

// TestServerCloseEndsIdleConnections: Close returns with connections open
// and frees the port.
func TestServerCloseEndsIdleConnections(t *testing.T) {
	s, err := Listen(ServerConfig{Addr: "127.0.0.1:0", Registry: gaugeRegistry(), MaxConnections: 2})
	if err != nil {
		t.Fatal(err)
	}
	conns := dialSilent(t, s.Addr(), 4, true)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range conns[:2] {
		waitClosedByServer(t, c)
	}
	ln, err := net.Listen("tcp", s.Addr())
	if err != nil {
		t.Fatalf("the port is still bound after Close: %v", err)
	}
	ln.Close()
}
