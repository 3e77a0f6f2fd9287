package chain

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestBlobSpaceWriteGetScanDelete(t *testing.T) {
	db := openTestDB(t, Config{})
	bs := db.BlobSpace()
	ctx := context.Background()
	big := bytes.Repeat([]byte{7}, 128<<10)
	// Eight chunk-sized values and their small records in one atomic group:
	// more than Badger's batch size if the value-log values were counted
	// whole, so this also checks the staging estimate.
	var ops []BlobOp
	for i := range 8 {
		ops = append(ops, BlobOp{Key: []byte(fmt.Sprintf("c%02d", i)), Value: big})
		ops = append(ops, BlobOp{Key: []byte(fmt.Sprintf("r%02d", i)), Value: []byte{byte(i)}})
	}
	if err := bs.Write(ctx, ops); err != nil {
		t.Fatalf("write: %v", err)
	}
	v, err := bs.Get([]byte("c03"), nil)
	if err != nil || !bytes.Equal(v, big) {
		t.Fatalf("get c03: %d bytes, %v", len(v), err)
	}
	if ok, err := bs.Has([]byte("r07")); !ok || err != nil {
		t.Fatalf("has r07 = %v, %v", ok, err)
	}
	var keys []string
	var sizes int64
	if err := bs.Scan([]byte("c"), []byte("c05"), false, func(it BlobItem) bool {
		keys = append(keys, string(it.Key))
		sizes += it.ValueSize
		return true
	}); err != nil {
		t.Fatal(err)
	}
	// ValueSize is Badger's estimate for a value-log value: within bytes.
	if want := 3 * int64(len(big)); fmt.Sprint(keys) != "[c05 c06 c07]" || sizes < want-16 || sizes > want+16 {
		t.Fatalf("scan from c05 = %v (%d bytes)", keys, sizes)
	}
	if err := bs.Write(ctx, []BlobOp{{Key: []byte("c03"), Delete: true}}); err != nil {
		t.Fatal(err)
	}
	if _, err := bs.Get([]byte("c03"), nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted key: %v", err)
	}
	// The keyspace is its own: no log or ledger scan sees it.
	if first, last, _, err := db.scanLogBounds(logIDLogs); err != nil || first != 0 || last != 0 {
		t.Fatalf("logs bounds = %d..%d, %v", first, last, err)
	}
}

func TestBlobSpaceRefusesOutOfBounds(t *testing.T) {
	db := openTestDB(t, Config{})
	bs := db.BlobSpace()
	ctx := context.Background()
	if err := bs.Write(ctx, []BlobOp{{Key: nil, Value: []byte{1}}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty key: %v", err)
	}
	if err := bs.Write(ctx, []BlobOp{{Key: []byte("k"), Value: make([]byte, MaxBlobValueBytes+1)}}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("huge value: %v", err)
	}
	if err := bs.Write(ctx, make([]BlobOp, MaxBlobWriteOps+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too many ops: %v", err)
	}
}
