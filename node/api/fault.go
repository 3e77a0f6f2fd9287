package api

import (
	"context"
	"time"
)

// FaultKind is a real impairment the demo harness can inject.
type FaultKind string

const (
	FaultKill      FaultKind = "kill"      // close the node's socket and stop it
	FaultRestart   FaultKind = "restart"   // start a killed node again (same key, same data)
	FaultPause     FaultKind = "pause"     // drop all traffic in and out, socket open
	FaultResume    FaultKind = "resume"    // undo pause
	FaultPartition FaultKind = "partition" // block the links between Nodes and Peers
	FaultHeal      FaultKind = "heal"      // unblock every link and remove impairments
	FaultSlow      FaultKind = "slow"      // add Delay and Loss on the links between Nodes and Peers
	FaultCrashLoop FaultKind = "crashloop" // make Daemon crash on start until healed
	// FaultCorruptChunk flips a byte of one chunk on the node's disk (of a
	// blob another datafort also holds), then reads the blob through the
	// node: the read detects the rot and repairs the chunk from the other
	// replica. One-shot: nothing stays in force.
	FaultCorruptChunk FaultKind = "corrupt-chunk"
	// FaultFillDisk leaves the node's datafort no room: its blob budget
	// drops to what it holds, until healed or restarted.
	FaultFillDisk FaultKind = "fill-disk"
)

// Fault is one injection request.
type Fault struct {
	Kind   FaultKind
	Nodes  []NodeID
	Peers  []NodeID // partition/slow: the other side (empty: every other node)
	Delay  time.Duration
	Loss   float64 // 0..1
	Daemon string
}

// FaultInjector is offered by the demo harness (nil outside a demo); the
// TUI's DEMO panel and `deck demo fault` drive it.
type FaultInjector interface {
	Inject(ctx context.Context, f Fault) error
	// Active lists the faults currently in force, for display.
	Active() []Fault
}
