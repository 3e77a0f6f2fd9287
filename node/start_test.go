package node_test

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
)

// freeUDPAddr is a loopback UDP address nobody listens on right now.
func freeUDPAddr(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

// assertStartUndone checks that a failed Start left nothing behind: no
// temporary data dir under tmp and the UDP address free to bind again.
func assertStartUndone(t *testing.T, tmp, addr string) {
	t.Helper()
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("failed start left %d entries in the temp dir (first %q)", len(left), left[0].Name())
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Errorf("failed start still holds its socket %s: %v", addr, err)
		return
	}
	pc.Close()
}

func TestStartHonoursCancelledContext(t *testing.T) {
	op, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := config.NewCluster("test", nil, []config.Operator{config.NewOperator("alice", op.Public)}, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // the node's temporary data dir lands here

	t.Run("cancelled before start", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		addr := freeUDPAddr(t)
		nd, err := node.Start(ctx, node.Options{Cluster: cl, ListenAddr: addr})
		if !errors.Is(err, context.Canceled) || nd != nil {
			if nd != nil {
				nd.Close()
			}
			t.Fatalf("Start with a cancelled ctx = %v, %v; want nil and context.Canceled", nd, err)
		}
		assertStartUndone(t, tmp, addr)
	})

	// Cancelled part-way: whichever step the cancel lands on, Start either
	// returns a running node or fails with ctx's error having undone it all.
	t.Run("cancelled during start", func(t *testing.T) {
		for _, after := range []time.Duration{0, 100 * time.Microsecond, time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond} {
			ctx, cancel := context.WithCancel(context.Background())
			timer := time.AfterFunc(after, cancel)
			addr := freeUDPAddr(t)
			nd, err := node.Start(ctx, node.Options{Cluster: cl, ListenAddr: addr})
			timer.Stop()
			cancel()
			if err != nil {
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("cancel after %v: Start failed with %v, want context.Canceled", after, err)
				}
				assertStartUndone(t, tmp, addr)
				continue
			}
			// Start finished first: the node outlives its start-up ctx.
			if nd.Addr() == "" {
				t.Fatalf("cancel after %v: started node has no address", after)
			}
			if err := nd.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			assertStartUndone(t, tmp, addr)
		}
	})
}
