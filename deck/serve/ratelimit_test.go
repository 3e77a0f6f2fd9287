package serve

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/nodetest"
)

func tcp(s string) net.Addr {
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		panic(err)
	}
	return a
}

func TestRateLimiter(t *testing.T) {
	type step struct {
		advance time.Duration
		addr    string
		want    bool
	}
	a, b := "192.0.2.1:4000", "192.0.2.2:4000"
	tests := []struct {
		name  string
		burst int
		steps []step
	}{
		{"burst then refused", 2, []step{{0, a, true}, {0, a, true}, {0, a, false}, {0, a, false}}},
		{"another port is the same source", 1, []step{{0, a, true}, {0, "192.0.2.1:5000", false}}},
		{"sources are independent", 1, []step{{0, a, true}, {0, a, false}, {0, b, true}}},
		{"one token back per interval", 1, []step{{0, a, true}, {0, a, false}, {4 * time.Second, a, false}, {time.Second, a, true}, {0, a, false}}},
		{"refill stops at burst", 2, []step{{0, a, true}, {0, a, true}, {time.Hour, a, true}, {0, a, true}, {0, a, false}}},
		{"ipv6 limited per /64", 1, []step{{0, "[2001:db8::1]:22", true}, {0, "[2001:db8::2]:22", false}, {0, "[2001:db8:0:1::1]:22", true}}},
		{"v4-mapped v6 is the v4 source", 1, []step{{0, "[::ffff:192.0.2.1]:22", true}, {0, a, false}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := nodetest.NewClock(time.Unix(1000, 0))
			rl := newRateLimiter(tc.burst, 5*time.Second, 100, clk.Now)
			for i, s := range tc.steps {
				clk.Advance(s.advance)
				if got := rl.allow(tcp(s.addr)); got != s.want {
					t.Fatalf("step %d (%s): allow = %v, want %v", i, s.addr, got, s.want)
				}
			}
		})
	}
}

func TestRateLimiterTableIsBounded(t *testing.T) {
	clk := nodetest.NewClock(time.Unix(1000, 0))
	rl := newRateLimiter(1, time.Hour, 16, clk.Now)
	for i := 0; i < 1000; i++ {
		rl.allow(tcp(fmt.Sprintf("10.0.%d.%d:1", i/256, i%256)))
	}
	if n := rl.len(); n != 16 {
		t.Fatalf("tracked %d sources, want the cap 16", n)
	}
	// The most recent source is still remembered (and still limited).
	if rl.allow(tcp("10.0.3.231:1")) {
		t.Fatal("most recent source forgot its spent bucket")
	}
}

func TestRateLimiterNonIPAddressIsLimited(t *testing.T) {
	rl := newRateLimiter(1, time.Hour, 16, nil)
	pipe := &net.UnixAddr{Name: "@x", Net: "unix"}
	if !rl.allow(pipe) || rl.allow(pipe) {
		t.Fatal("a non-IP source must share one limited bucket")
	}
}
