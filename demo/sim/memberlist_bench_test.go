package sim

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// memberlistKill runs n memberlist nodes on loopback UDP with cfg (a
// fresh DefaultLANConfig or DefaultLocalConfig per node), waits until each
// knows all, shuts one down without leaving (a crash: it stops answering
// probes) and returns how long each survivor took to declare it dead
// (NotifyLeave, which memberlist calls on death as on a leave).
func memberlistKill(tb testing.TB, n int, config func() *memberlist.Config) Spread {
	tb.Helper()
	type watcher struct {
		mu     sync.Mutex
		victim string
		killed time.Time
		deadIn time.Duration
	}
	var lists []*memberlist.Memberlist
	var watchers []*watcher
	defer func() {
		for _, l := range lists {
			l.Shutdown()
		}
	}()
	for i := range n {
		w := &watcher{deadIn: -1}
		cfg := config()
		cfg.Name = "ml-" + strconv.Itoa(i)
		cfg.BindAddr, cfg.BindPort, cfg.AdvertisePort = "127.0.0.1", 0, 0
		cfg.Logger = log.New(io.Discard, "", 0)
		cfg.Events = &leaveEvents{w: func(name string) {
			w.mu.Lock()
			defer w.mu.Unlock()
			if name == w.victim && !w.killed.IsZero() && w.deadIn < 0 {
				w.deadIn = time.Since(w.killed)
			}
		}}
		l, err := memberlist.Create(cfg)
		if err != nil {
			tb.Fatalf("memberlist %d: %v", i, err)
		}
		lists, watchers = append(lists, l), append(watchers, w)
		if i > 0 {
			seed := lists[0].LocalNode()
			if _, err := l.Join([]string{fmt.Sprintf("%s:%d", seed.Addr, seed.Port)}); err != nil {
				tb.Fatalf("memberlist %d join: %v", i, err)
			}
		}
	}
	waitFor(tb, 30*time.Second, func() bool {
		for _, l := range lists {
			if l.NumMembers() != n {
				return false
			}
		}
		return true
	})
	// The victim is the last node (not the seed), as in the Deck run.
	victim := lists[n-1]
	name := victim.LocalNode().Name
	now := time.Now()
	for _, w := range watchers[:n-1] {
		w.mu.Lock()
		w.victim, w.killed = name, now
		w.mu.Unlock()
	}
	victim.Shutdown()
	lists = lists[:n-1]
	waitFor(tb, 60*time.Second, func() bool {
		for _, w := range watchers[:n-1] {
			w.mu.Lock()
			d := w.deadIn
			w.mu.Unlock()
			if d < 0 {
				return false
			}
		}
		return true
	})
	times := make([]time.Duration, 0, n-1)
	for _, w := range watchers[:n-1] {
		w.mu.Lock()
		times = append(times, w.deadIn)
		w.mu.Unlock()
	}
	return spreadOf(times)
}

// leaveEvents forwards memberlist's leave (and death) notifications.
type leaveEvents struct{ w func(name string) }

func (e *leaveEvents) NotifyJoin(*memberlist.Node)   {}
func (e *leaveEvents) NotifyUpdate(*memberlist.Node) {}
func (e *leaveEvents) NotifyLeave(n *memberlist.Node) {
	e.w(n.Name)
}

// waitFor polls cond until true or the bound passes (then it gives up
// quietly: the spread reports who never saw it).
func waitFor(tb testing.TB, bound time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(bound)
	for !cond() && time.Now().Before(deadline) {
		time.Sleep(changePoll)
	}
}

// deckKill runs n Deck nodes (one subnet) on loopback UDP, kills one and
// returns its detection by the others.
func deckKill(tb testing.TB, n int) Detection {
	tb.Helper()
	ctx := tb.(interface{ Context() context.Context }).Context()
	s, err := Start(ctx, Options{Nodes: n, Subnets: 1, UDP: true})
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	fctx, cancel := context.WithTimeout(ctx, formBase+time.Duration(n)*formPerNode)
	defer cancel()
	if _, err := s.WaitFormed(fctx); err != nil {
		tb.Logf("deck n=%d: %v; measuring the kill anyway", n, err)
	}
	det, err := s.MeasureKill(ctx, []*Member{s.Members[n-1]}, DetectDeadline)
	if err != nil {
		tb.Fatal(err)
	}
	return det
}

// mlSizes are BenchmarkDetectionVsMemberlist's node counts.
var mlSizes = flag.String("ml.sizes", "9,32", "BenchmarkDetectionVsMemberlist: comma-separated node counts")

// BenchmarkDetectionVsMemberlist kills one of n nodes, side by side in one
// run on loopback UDP: hashicorp/memberlist with its LAN config (and its
// local config) until the survivors declare it dead, and Deck until they
// see it Suspect and Unreachable. Metrics are p99 over the survivors, in
// ms, and Deck's Unreachable over memberlist's LAN dead.
//
//	go test -run '^$' -bench DetectionVsMemberlist -benchtime 1x ./demo/sim/
func BenchmarkDetectionVsMemberlist(b *testing.B) {
	if testing.Short() {
		b.Skip("seconds per kill")
	}
	for _, f := range strings.Split(*mlSizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 3 {
			b.Fatalf("-ml.sizes: %q: want node counts of 3 or more", f)
		}
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			for range b.N {
				lan := memberlistKill(b, n, memberlist.DefaultLANConfig)
				local := memberlistKill(b, n, memberlist.DefaultLocalConfig)
				deck := deckKill(b, n)
				b.ReportMetric(float64(lan.P99.Milliseconds()), "ml_lan_dead_p99_ms")
				b.ReportMetric(float64(local.P99.Milliseconds()), "ml_local_dead_p99_ms")
				b.ReportMetric(float64(deck.Suspect.P99.Milliseconds()), "deck_suspect_p99_ms")
				b.ReportMetric(float64(deck.Unreachable.P99.Milliseconds()), "deck_unreach_p99_ms")
				if lan.P99 > 0 {
					b.ReportMetric(float64(deck.Unreachable.P99)/float64(lan.P99), "deck_unreach/ml_lan")
				}
				b.Logf("n=%d memberlist LAN dead %v; local dead %v; deck suspect %v, unreachable %v",
					n, lan, local, deck.Suspect, deck.Unreachable)
				if lan.Reached < n-1 || deck.Unreachable.Reached < n-1 {
					b.Logf("n=%d: not every survivor saw the kill (memberlist %d/%d, deck %d/%d)", n,
						lan.Reached, lan.Observers, deck.Unreachable.Reached, deck.Unreachable.Observers)
				}
			}
		})
	}
}
