package workloads

import (
	"sort"
	"sync"
)

// The crash-loop switch is process-wide because the demo runs every node in
// one process and daemon ids are unique across the cluster: the harness
// flips it by id, wherever the daemon is placed or migrates to.
var crashLoops = struct {
	sync.Mutex
	on map[string]bool
}{on: map[string]bool{}}

// SetCrashLoop turns the crash-loop fault for a daemon id on or off. While
// it is on, Run fails right after start, and a running instance fails at its
// next tick, so the supervisor sees a real crash loop.
func SetCrashLoop(daemonID string, on bool) {
	crashLoops.Lock()
	defer crashLoops.Unlock()
	if on {
		crashLoops.on[daemonID] = true
	} else {
		delete(crashLoops.on, daemonID)
	}
}

// CrashLooping reports whether the fault is on for daemonID.
func CrashLooping(daemonID string) bool {
	crashLoops.Lock()
	defer crashLoops.Unlock()
	return crashLoops.on[daemonID]
}

// CrashLoops lists the daemon ids with the fault on, sorted.
func CrashLoops() []string {
	crashLoops.Lock()
	defer crashLoops.Unlock()
	out := make([]string, 0, len(crashLoops.on))
	for id := range crashLoops.on {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}
