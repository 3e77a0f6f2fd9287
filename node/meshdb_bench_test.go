package node

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/meshos"
	"github.com/deck-mesh/deck/node/nodetest"
	"github.com/deck-mesh/deck/node/query"
)

// BenchmarkMeshDBLatestFromConsole: `latest(snapshots) where node = X`
// from a console on a 9-node loopback mesh (real UDP, Noise), no result
// cache: one fragment to X and back. Reports p50 and p99 per query.
func BenchmarkMeshDBLatestFromConsole(b *testing.B) {
	m := newDBMesh(b, 9, meshos.Spec{}, query.ServeLimits{})
	target := m.nodes[4]
	q := fmt.Sprintf("latest(snapshots) where node = %q | select node, at, generation", target.ID().String())
	nodetest.Eventually(b, "n5 to hold a snapshot", func() bool {
		_, rows, _, err := m.query(q, api.QueryOptions{NoCache: true})
		return err == nil && len(rows) == 1
	})
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		_, rows, st, err := m.query(q, api.QueryOptions{NoCache: true})
		if err != nil || len(rows) != 1 || st.Partial {
			b.Fatalf("rows %v status %+v err %v", rows, st, err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	if served := target.QueryStats().Serve.Completed; served < uint64(len(lat)) {
		b.Fatalf("n5 served %d of %d queries: they did not cross the mesh", served, len(lat))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkMeshDBCountByOverAMillionRecords: `between … where level >=
// warn | count by daemon` over 1,000,000 log records spread over 9 nodes
// (111,112 each), from a console: each node scans and aggregates its own,
// the console merges. Beside it, "local" runs the same read on each node
// against its own records, one node after another (the same records, no
// mesh). Reports records/s of each and their ratio, and the most memory
// the coordinator held.
func BenchmarkMeshDBCountByOverAMillionRecords(b *testing.B) {
	const perNode = 111_112
	m := newDBMesh(b, 9, meshos.Spec{}, query.ServeLimits{})
	for _, nd := range m.nodes {
		fill(b, nd, perNode, 0)
	}
	q := `between(logs, -1h, now) where level >= warn and daemon ~ "t-" | count by daemon`
	b.ResetTimer()
	var fed, local time.Duration
	var fedRecords, localRecords uint64
	var mem int64
	for b.Loop() {
		start := time.Now()
		_, rows, st, err := m.query(q, api.QueryOptions{NoCache: true})
		if err != nil || st.Partial || len(rows) != 3 {
			b.Fatalf("rows %v status %+v err %v", rows, st, err)
		}
		fed += time.Since(start)
		fedRecords += st.Scanned
		mem = max(mem, st.MemoryBytes)
		for _, nd := range m.nodes {
			own := fmt.Sprintf(`between(logs, -1h, now) where node = %q and level >= warn and daemon ~ "t-" | count by daemon`, nd.ID().String())
			start := time.Now()
			run, err := nd.query.Query(context.Background(), own, api.QueryOptions{NoCache: true})
			if err != nil {
				b.Fatal(err)
			}
			_, st, err := run.Collect()
			if err != nil {
				b.Fatal(err)
			}
			local += time.Since(start)
			localRecords += st.Scanned
		}
	}
	b.StopTimer()
	fedRate := float64(fedRecords) / fed.Seconds()
	localRate := float64(localRecords) / local.Seconds()
	b.ReportMetric(fedRate, "mesh-records/s")
	b.ReportMetric(localRate, "local-records/s")
	b.ReportMetric(fedRate/localRate, "mesh/local")
	b.ReportMetric(float64(mem), "coordinator-bytes")
}
