// Package nodetest holds the test helpers the module's packages share that
// belong to no one subsystem: Eventually, the one way a test waits for
// asynchronous work, and Clock, the one hand-moved clock. (The in-memory
// mesh is meshtest; reproducible keys are identitytest.)
package nodetest

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// EventuallyTimeout is how long Eventually polls before it fails the test.
// It is deliberately generous: a condition that holds at all holds within
// seconds, and the machines running these tests are often loaded, so a
// poll is never a speed assertion. Speed belongs in benchmarks.
const EventuallyTimeout = 2 * time.Minute

// Poll intervals: quick at first, so fast conditions finish fast, then
// backing off so a long wait does not burn the CPU it is waiting on.
const (
	firstPollInterval = 2 * time.Millisecond
	maxPollInterval   = 100 * time.Millisecond
)

// testDeadlineMargin is left before the test binary's own -timeout so
// Eventually fails with its message rather than the binary panicking.
const testDeadlineMargin = 5 * time.Second

// Eventually polls cond until it returns true. After EventuallyTimeout (or
// just before the test binary's deadline, whichever is first) it fails the
// test with what it was waiting for, how long and how many polls, and the
// output of each state func: a dump of the system under test, so a failure
// says where things stood rather than only that they did not finish.
//
// Call it from the test's goroutine (it calls tb.Fatalf).
func Eventually(tb testing.TB, what string, cond func() bool, state ...func() string) {
	tb.Helper()
	start := time.Now()
	deadline := start.Add(EventuallyTimeout)
	if d, ok := tb.(interface{ Deadline() (time.Time, bool) }); ok {
		if end, ok := d.Deadline(); ok && end.Add(-testDeadlineMargin).Before(deadline) {
			deadline = end.Add(-testDeadlineMargin)
		}
	}
	interval := firstPollInterval
	for polls := 1; ; polls++ {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			fmt.Fprintf(&b, "timed out after %v (%d polls) waiting for %s", time.Since(start).Round(time.Millisecond), polls, what)
			for _, f := range state {
				b.WriteString("\n")
				b.WriteString(f())
			}
			tb.Fatal(b.String())
			return
		}
		time.Sleep(interval)
		interval = min(2*interval, maxPollInterval)
	}
}
