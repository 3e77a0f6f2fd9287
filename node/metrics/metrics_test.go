package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/deck-mesh/deck/node/nodetest"
)

// TestScrapeOfALiveMesh scrapes a node of a real three-node mesh (plus a
// stranger without a certificate) over HTTP, parses the text format, and
// checks every family is there with the type it claims and the values the
// node's own stats hold.
func TestScrapeOfALiveMesh(t *testing.T) {
	m := newMesh(t)
	a := start(m, "a", true)
	start(m, "b", true)
	start(m, "c", true)
	nodetest.Eventually(t, "a to hold b and c healthy", func() bool { return healthyPeers(a) == 2 })
	start(m, "stranger", false)
	nodetest.Eventually(t, "a to hold the stranger pending", func() bool { return a.Stats().PendingPeers == 1 })

	srv, err := Listen(ServerConfig{Addr: "127.0.0.1:0", Registry: NewRegistry(a)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	url := "http://" + srv.Addr() + Path
	var mfs map[string]*dto.MetricFamily
	nodetest.Eventually(t, "a scrape showing a's peers, sessions, RTT and daemons", func() bool {
		if mfs, _, err = scrape(url); err != nil {
			t.Fatal(err)
		}
		healthy, _ := value(mfs, "deck_transport_peers", "health", "healthy")
		sessions, _ := value(mfs, "deck_transport_sessions", "", "")
		pending, _ := value(mfs, "deck_transport_pending_peers", "", "")
		running, _ := value(mfs, "deck_meshos_daemons", "state", "running")
		_, rtt := value(mfs, "deck_transport_peer_rtt_seconds", "aggregate", "max")
		return healthy == 2 && sessions >= 2 && pending == 1 && running > 0 && rtt
	})

	want := map[string]dto.MetricType{}
	c := NewCollector(a)
	for _, f := range c.families {
		want[f.name] = map[bool]dto.MetricType{true: dto.MetricType_COUNTER, false: dto.MetricType_GAUGE}[strings.HasSuffix(f.name, "_total")]
	}
	for name, typ := range want {
		mf := mfs[name]
		if mf == nil {
			t.Errorf("family %s missing from the scrape", name)
			continue
		}
		if mf.GetType() != typ {
			t.Errorf("family %s is %v, want %v", name, mf.GetType(), typ)
		}
		if len(mf.Metric) == 0 {
			t.Errorf("family %s has no series", name)
		}
	}
	for _, std := range []string{"go_goroutines", "process_start_time_seconds", "promhttp_metric_handler_requests_total"} {
		if mfs[std] == nil {
			t.Errorf("standard family %s missing", std)
		}
	}

	st := a.Stats()
	for _, v := range []struct {
		name, label, lv string
		atLeast         float64
	}{
		{"deck_transport_packets_received_total", "", "", 1},
		{"deck_transport_packets_sent_total", "", "", 1},
		{"deck_gossip_envelopes_total", "outcome", "accepted", 1},
		{"deck_ledger_events", "", "", float64(st.Ledger.Count)},
		{"deck_gossip_nodes", "", "", 3},
	} {
		got, ok := value(mfs, v.name, v.label, v.lv)
		if !ok || got < v.atLeast {
			t.Errorf("%s{%s=%q} = %v (present %v), want ≥ %v", v.name, v.label, v.lv, got, ok, v.atLeast)
		}
	}
	// The stranger's packets are dropped as pending, never counted as a
	// member's, and it never shows as a peer.
	if got, _ := value(mfs, "deck_transport_pending_packets_dropped_total", "", ""); got < 1 {
		t.Errorf("pending packets dropped = %v, want ≥ 1 (a stranger is talking to a)", got)
	}
	for _, agg := range []string{"min", "mean", "max"} {
		if got, ok := value(mfs, "deck_transport_peer_rtt_seconds", "aggregate", agg); !ok || got <= 0 {
			t.Errorf("peer RTT %s = %v (present %v), want > 0", agg, got, ok)
		}
	}
	if got, ok := value(mfs, "deck_node_stats_age_seconds", "", ""); !ok || got < 0 {
		t.Errorf("stats age = %v (present %v)", got, ok)
	}
}

// TestMetricNamesPassPromlint: the node's families follow the Prometheus
// naming conventions as the client library's own linter checks them
// (units in names, _total on counters, no camel case).
func TestMetricNamesPassPromlint(t *testing.T) {
	m := newMesh(t)
	a := start(m, "a", true)
	problems, err := testutil.CollectAndLint(NewCollector(a))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}
