package nodetest

import (
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestEventuallyReturnsOnceTheConditionHolds(t *testing.T) {
	var polls atomic.Int64
	go func() {
		time.Sleep(20 * time.Millisecond)
		polls.Store(100)
	}()
	Eventually(t, "the flag", func() bool { return polls.Add(1) > 100 })
}

// failingChild is the body TestEventuallyFailsWithWhatAndState runs in a
// child process: a condition that never holds.
const failingChild = "NODETEST_EVENTUALLY_CHILD"

func TestEventuallyNeverHolds(t *testing.T) {
	if os.Getenv(failingChild) == "" {
		t.Skip("run by TestEventuallyFailsWithWhatAndState in a child process")
	}
	Eventually(t, "the impossible", func() bool { return false }, func() string { return "state: stuck at 42" })
}

// TestEventuallyFailsWithWhatAndState runs a never-true wait in a child
// test binary whose -timeout is short, so it also checks that Eventually
// fails before the binary's deadline with its own message and the dump.
func TestEventuallyFailsWithWhatAndState(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestEventuallyNeverHolds$", "-test.timeout=8s")
	cmd.Env = append(os.Environ(), failingChild+"=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("child passed:\n%s", out)
	}
	for _, want := range []string{"timed out after", "waiting for the impossible", "state: stuck at 42"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("child output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "panic: test timed out") {
		t.Errorf("the binary's timeout fired before Eventually failed:\n%s", out)
	}
}
