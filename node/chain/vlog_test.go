package chain

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/nodetest"
)

func vlogBytes(t *testing.T, dir string) int64 {
	t.Helper()
	ms, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	var n int64
	for _, m := range ms {
		if st, err := os.Stat(m); err == nil {
			n += st.Size()
		}
	}
	return n
}

// TestValueLogGCReclaimsExpiredSnapshots: snapshot bodies live in the value
// log; once retention removed them and compaction noticed, value-log GC
// rewrites the files that are mostly garbage.
func TestValueLogGCReclaimsExpiredSnapshots(t *testing.T) {
	if testing.Short() {
		t.Skip("writes ~80 MiB")
	}
	ctx := context.Background()
	dir := t.TempDir()
	db := openTestDB(t, Config{Dir: dir, Snapshots: Retention{MaxCount: 4}})
	body := make([]byte, 64<<10)
	for i := 0; i < 800; i++ {
		body[0], body[1] = byte(i), byte(i>>8)
		if _, err := db.AppendSnapshot(ctx, 7, time.Unix(int64(i), 0), body); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	// Compaction is what turns deletes into value-log discard statistics; it
	// runs as memtables fill, which ordinary log traffic does.
	ps := make([][]byte, 1000)
	for i := range ps {
		ps[i] = record200B(i)
	}
	compacted := func() bool {
		for _, ti := range db.bdb.Tables() {
			if ti.Level > 0 {
				return true
			}
		}
		return false
	}
	for i := 0; i < 300 && !compacted(); i++ {
		if _, err := db.Logs().Append(ctx, ps...); err != nil {
			t.Fatal(err)
		}
	}
	before := vlogBytes(t, dir)
	rewrites := 0
	nodetest.Eventually(t, "value-log GC to rewrite a file", func() bool {
		rewrites += db.RunValueLogGC()
		return rewrites > 0
	})
	after := vlogBytes(t, dir)
	t.Logf("value log %d MiB → %d MiB after %d rewrites", before>>20, after>>20, rewrites)
	if after >= before {
		t.Fatalf("value log did not shrink: %d → %d bytes", before, after)
	}
	rs, err := db.History(7, time.Unix(1e6, 0), 10)
	if err != nil || len(rs) != 4 || rs[0].Data[0] != byte(799&0xff) || rs[0].Data[1] != byte(799>>8) {
		t.Fatalf("history after GC: %d records, %v", len(rs), err)
	}
}
