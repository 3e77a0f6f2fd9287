package chain

import (
	"context"
	"errors"
	"testing"
)

// TestInMemoryStoresWithoutADirectory: an in-memory database is the same
// engine — appends, reads and snapshots work — with no directory at all.
func TestInMemoryStoresWithoutADirectory(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t, Config{InMemory: true, ValueLogGCInterval: -1})
	logs := db.Logs()
	if _, err := logs.Append(ctx, payload(1), payload(2)); err != nil {
		t.Fatalf("append: %v", err)
	}
	// Above the on-disk value threshold: Badger would write a value-log
	// pointer for it, and in memory it has no value log.
	big := make([]byte, 2*BadgerValueThresholdBytes)
	if _, err := logs.Append(ctx, big); err != nil {
		t.Fatalf("append %d bytes: %v", len(big), err)
	}
	if e, err := logs.Get(3); err != nil || len(e.Value) != len(big) {
		t.Fatalf("get 3: %d bytes, %v", len(e.Value), err)
	}
	e, err := logs.Get(2)
	if err != nil || string(e.Value) != string(payload(2)) {
		t.Fatalf("get 2: %q %v", e.Value, err)
	}
	if got := db.RunValueLogGC(); got != 0 {
		t.Fatalf("value-log gc on memory rewrote %d files", got)
	}
	if err := db.Stats().LastError; err != "" {
		t.Fatalf("in-memory database noted %s", err)
	}
}

func TestInMemoryOptionsAreSmall(t *testing.T) {
	o := badgerOptions(Config{InMemory: true})
	if !o.InMemory || o.Dir != "" {
		t.Fatalf("InMemory %v Dir %q", o.InMemory, o.Dir)
	}
	if o.MemTableSize > BadgerMemTableBytes || o.BlockCacheSize != 0 || o.IndexCacheSize != 0 {
		t.Errorf("memtable %d, block cache %d, index cache %d: larger than on disk", o.MemTableSize, o.BlockCacheSize, o.IndexCacheSize)
	}
}

func TestInMemoryRejectsADirectory(t *testing.T) {
	if _, err := Open(Config{InMemory: true, Dir: t.TempDir()}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("in-memory with Dir: %v, want ErrInvalid", err)
	}
	if _, err := Open(Config{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no Dir: %v, want ErrInvalid", err)
	}
}
