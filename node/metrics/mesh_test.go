package metrics

import (
	"fmt"
	"io"
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/node/testmesh"
)

// newMesh is a test mesh of cluster "metrics" (node/testmesh).
func newMesh(tb testing.TB) *testmesh.Mesh { return testmesh.New(tb, "metrics") }

// start runs one node; certified says whether the operator certifies it.
func start(m *testmesh.Mesh, label string, certified bool) *node.Node {
	return m.Start(testmesh.Member{Label: label, Uncertified: !certified})
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
