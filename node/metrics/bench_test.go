package metrics

import (
	"io"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deck-mesh/deck/node/nodetest"
)

// BenchmarkScrape is the cost of one scrape of a node in a 9-node mesh
// (memnet, the demo workload placed): reading node.Stats, gathering the
// node's families, and a whole HTTP scrape of the served registry (node,
// Go and process collectors, text format) over loopback.
//
//	go test -run '^$' -bench Scrape -benchmem ./node/metrics
func BenchmarkScrape(b *testing.B) {
	m := newMesh(b)
	a := start(m, "n1", true)
	for i := 2; i <= 9; i++ {
		start(m, "n"+string(rune('0'+i)), true)
	}
	nodetest.Eventually(b, "n1 to hold its 8 peers healthy", func() bool { return healthyPeers(a) == 8 })

	b.Run("stats", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = a.Stats()
		}
	})
	b.Run("gather-node", func(b *testing.B) {
		reg := prometheus.NewRegistry()
		reg.MustRegister(NewCollector(a))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := reg.Gather(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("http", func(b *testing.B) {
		s, err := Listen(ServerConfig{Addr: "127.0.0.1:0", Registry: NewRegistry(a)})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		url := "http://" + s.Addr() + Path
		var bytes int64
		b.ReportAllocs()
		for b.Loop() {
			resp, err := http.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatal(resp.Status)
			}
			bytes = n
		}
		b.ReportMetric(float64(bytes), "body-bytes")
	})
}
