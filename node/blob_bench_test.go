package node_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
)

// benchBlobBytes is the size the dataforts benchmarks move (issue 14).
const benchBlobBytes = 256 << 20

// patternReader yields n pseudo-random bytes without holding them: a blob
// that never sits in memory.
type patternReader struct {
	r    *rand.Rand
	left int64
}

func newPatternReader(seed uint64, n int64) *patternReader {
	return &patternReader{r: rand.New(rand.NewPCG(seed, ^seed)), left: n}
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(b)), p.left))
	for i := 0; i+8 <= n; i += 8 {
		v := p.r.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(p.r.Uint32())
	}
	p.left -= int64(n)
	return n, nil
}

// BenchmarkBlobFetch256MiB fetches a 256 MiB blob from a datafort over
// real UDP on loopback (Noise sessions, the bulk queue, four chunks in
// flight), every chunk verified, into io.Discard; beside it the same bytes
// from net/http over loopback TCP, the yardstick. Run both in one go:
//
//	go test -run '^$' -bench 'BlobFetch256MiB|HTTPFetch256MiB' -benchtime=3x ./node/
func BenchmarkBlobFetch256MiB(b *testing.B) {
	m := startBlobMesh(b, []bool{true, false})
	ctx := context.Background()
	info, err := m.client(0).Put(ctx, newPatternReader(1, benchBlobBytes), api.BlobPutOptions{Replicas: 1})
	if err != nil {
		b.Fatal(err)
	}
	reader := m.client(1)
	b.SetBytes(benchBlobBytes)
	b.ResetTimer()
	for range b.N {
		if _, err := reader.Get(ctx, info.Hash, io.Discard, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHTTPFetch256MiB: the same 256 MiB from net/http on loopback TCP.
func BenchmarkHTTPFetch256MiB(b *testing.B) {
	data, err := io.ReadAll(newPatternReader(1, benchBlobBytes))
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(data))
	})}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/blob"
	b.SetBytes(benchBlobBytes)
	b.ResetTimer()
	for range b.N {
		resp, err := http.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != benchBlobBytes {
			b.Fatalf("%d bytes, %v", n, err)
		}
	}
}

// BenchmarkBlobPut256MiB3Replicas puts 256 MiB, streamed from a generator
// (never in memory), through a node that is no datafort (as the CLI does)
// onto three dataforts, and reports the time and how far the process's
// resident memory rose above where it stood before the put: anonymous
// memory (heaps, buffers) and file-backed pages (Badger's memory-mapped
// value logs, which the kernel reclaims) apart.
//
//	go test -run '^$' -bench 'BlobPut256MiB3Replicas' -benchtime=1x ./node/
func BenchmarkBlobPut256MiB3Replicas(b *testing.B) {
	m := startBlobMesh(b, []bool{true, true, true, false})
	ctx := context.Background()
	b.SetBytes(benchBlobBytes)
	var anonPeak, filePeak int64
	for i := range b.N {
		anon0, file0 := rss()
		var stop atomic.Bool
		var wg sync.WaitGroup
		var aMax, fMax int64
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				a, f := rss()
				aMax, fMax = max(aMax, a), max(fMax, f)
				time.Sleep(5 * time.Millisecond)
			}
		}()
		if _, err := m.client(3).Put(ctx, newPatternReader(uint64(100+i), benchBlobBytes), api.BlobPutOptions{Replicas: 3}); err != nil {
			b.Fatal(err)
		}
		stop.Store(true)
		wg.Wait()
		anonPeak, filePeak = max(anonPeak, aMax-anon0), max(filePeak, fMax-file0)
	}
	b.ReportMetric(float64(anonPeak)/(1<<20), "MiB-anon-rss-growth")
	b.ReportMetric(float64(filePeak)/(1<<20), "MiB-file-rss-growth")
}

// rss reads RssAnon and RssFile (bytes) from /proc/self/status.
func rss() (anon, file int64) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "RssAnon":
			anon = kb << 10
		case "RssFile":
			file = kb << 10
		}
	}
	return anon, file
}
