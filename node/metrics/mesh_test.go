package metrics

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/deck-mesh/deck/demo/workloads"
	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/node/transport/memnet"
)

// mesh is real nodes on the in-process network, certified by one operator
// unless started as strangers (they stay pending).
type mesh struct {
	tb      testing.TB
	net     *memnet.Network
	cluster *config.Cluster
	op      *identity.Key
	nodes   []*node.Node
}

func newMesh(tb testing.TB) *mesh {
	tb.Helper()
	op, err := identity.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	cl, err := config.NewCluster("metrics", nil, []config.Operator{config.NewOperator("alice", op.Public)}, 1, 1)
	if err != nil {
		tb.Fatal(err)
	}
	n := memnet.New(memnet.Link{Latency: time.Millisecond})
	tb.Cleanup(n.Close)
	return &mesh{tb: tb, net: n, cluster: cl, op: op}
}

// start runs one node; certified says whether the operator certifies it.
func (m *mesh) start(label string, certified bool) *node.Node {
	m.tb.Helper()
	conn, err := m.net.Listen()
	if err != nil {
		m.tb.Fatal(err)
	}
	opts := node.Options{
		Cluster: m.cluster, DataDir: m.tb.TempDir(), Label: label, Conn: conn,
		Capabilities: []string{"gpu", "edge", "datafort"}, Spec: workloads.Spec(), Factories: workloads.Factories(),
		Version: "test", Bootstrap: []string{},
	}
	if len(m.nodes) > 0 {
		opts.Bootstrap = []string{m.nodes[0].Addr()}
	}
	if certified {
		opts.CertifyWith = identity.KeySigner{K: m.op}
	}
	nd, err := node.Start(context.Background(), opts)
	if err != nil {
		m.tb.Fatal(err)
	}
	m.tb.Cleanup(func() { nd.Close() })
	m.nodes = append(m.nodes, nd)
	return nd
}

// healthyPeers counts the peers nd's transport holds healthy.
func healthyPeers(nd *node.Node) int {
	c := 0
	for _, p := range nd.Stats().Peers {
		if p.Health == snapshot.Healthy {
			c++
		}
	}
	return c
}

// scrape GETs url and parses the body with the Prometheus text parser.
func scrape(url string) (map[string]*dto.MetricFamily, int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return nil, resp.StatusCode, fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	return mfs, resp.StatusCode, err
}

// value is the value of family name's series with label=lv ("" for an
// unlabelled family); ok is false when the series is absent.
func value(mfs map[string]*dto.MetricFamily, name, label, lv string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
	for _, m := range mf.Metric {
		if label != "" {
			match := false
			for _, l := range m.Label {
				if l.GetName() == label && l.GetValue() == lv {
					match = true
				}
			}
			if !match {
				continue
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}
