package chain

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const crashDirEnv = "DECK_CHAIN_CRASH_DIR"

// TestCrashChild is the child half of TestCrashKeepsAcknowledgedAppends: it
// only runs when re-executed with crashDirEnv set, appends forever, and
// prints each acknowledgement after the call that made it durable returned.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("child of TestCrashKeepsAcknowledgedAppends")
	}
	ctx := context.Background()
	db, err := Open(Config{Dir: dir, RetentionInterval: -1, ValueLogGCInterval: -1})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	l := db.Ledger(validateTestEvent)
	s := newEventSigner(t)
	for i := 0; ; i++ {
		seq, err := db.Logs().Append(ctx, payload(i))
		if err != nil {
			fmt.Println("error", err)
			os.Exit(3)
		}
		fmt.Printf("log %d %d\n", seq, i)
		if i%4 == 0 {
			ev, _, err := l.Insert(ctx, s.event(int64(1_000_000+i), fmt.Sprint("crash ", i)))
			if err != nil {
				fmt.Println("error", err)
				os.Exit(3)
			}
			fmt.Printf("event %x\n", ev.Meta.ID)
		}
	}
}

func TestCrashKeepsAcknowledgedAppends(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const wantAcks = 400
	logs := map[uint64]int{}
	var events [][32]byte
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(60 * time.Second)
	for len(logs) < wantAcks && sc.Scan() {
		if time.Now().After(deadline) {
			break
		}
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == "log":
			seq, _ := strconv.ParseUint(f[1], 10, 64)
			i, _ := strconv.Atoi(f[2])
			logs[seq] = i
		case len(f) == 2 && f[0] == "event":
			b, err := hex.DecodeString(f[1])
			if err != nil || len(b) != 32 {
				t.Fatalf("bad event line %q", sc.Text())
			}
			events = append(events, [32]byte(b))
		case len(f) > 0 && f[0] == "error":
			t.Fatalf("child: %s", sc.Text())
		}
	}
	// Kill mid-stride: the child is still appending.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(logs) < wantAcks {
		t.Fatalf("child acknowledged only %d appends", len(logs))
	}

	db := openTestDB(t, Config{Dir: dir})
	for seq, i := range logs {
		e, err := db.Logs().Get(seq)
		if err != nil {
			t.Fatalf("acknowledged seq %d lost: %v", seq, err)
		}
		if string(e.Value) != string(payload(i)) {
			t.Fatalf("seq %d holds %q, want %q", seq, e.Value, payload(i))
		}
	}
	l := db.Ledger(validateTestEvent)
	for _, id := range events {
		if ok, err := l.Has(id); err != nil || !ok {
			t.Fatalf("acknowledged event %x lost (%v)", id[:6], err)
		}
	}
	if err := l.Verify(context.Background()); err != nil {
		t.Fatalf("ledger after kill -9: %v", err)
	}
	// And the database keeps working where it stopped.
	if _, err := db.Logs().Append(context.Background(), payload(-1)); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d log appends and %d events acknowledged before SIGKILL; all present", len(logs), len(events))
}
