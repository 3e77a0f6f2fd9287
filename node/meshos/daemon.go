package meshos

import (
	"context"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
)

// ControlKind is a control event delivered to a running daemon.
type ControlKind uint8

const (
	CtlShutdown ControlKind = iota + 1
	CtlDrainStart
	CtlDrainFinish
	CtlBackpressureOn
	CtlBackpressureOff
	// CtlStandbySync hands a warm standby the active member's latest
	// checkpoint (State), replicated through chain seq Seq. A standby that
	// keeps it warm resumes from it when promoted; ignoring it is allowed
	// (the supervisor keeps the copy and restores it on promotion).
	CtlStandbySync
)

func (k ControlKind) String() string {
	switch k {
	case CtlShutdown:
		return "shutdown"
	case CtlDrainStart:
		return "drain-start"
	case CtlDrainFinish:
		return "drain-finish"
	case CtlBackpressureOn:
		return "backpressure-on"
	case CtlBackpressureOff:
		return "backpressure-off"
	case CtlStandbySync:
		return "standby-sync"
	}
	return "unknown"
}

// Control is one control event: Shutdown{Grace}, DrainStart{Grace},
// DrainFinish, BackpressureOn{Level}, BackpressureOff,
// StandbySync{State, Seq}.
type Control struct {
	Kind  ControlKind
	Grace time.Duration
	Level float64
	State []byte // StandbySync: the active's checkpoint (the daemon's own copy)
	Seq   uint64 // StandbySync: the chain seq it reflects
}

// Logger is a daemon's leveled log, written to its node's log chain.
type Logger interface {
	Log(level api.LogLevel, format string, args ...any)
}

// Daemon is a supervised workload. The supervisor calls Run in its own
// goroutine; Run returns nil after a clean Shutdown and an error (or panics,
// which the supervisor recovers) on a crash. Health and Saturation are called
// from the supervisor's goroutine while Run is running and must not block.
type Daemon interface {
	Run(ctx context.Context, ctl <-chan Control, log Logger) error
	// Snapshot serialises the daemon's state for migration; Restore loads it
	// into a fresh instance before Run.
	Snapshot() ([]byte, error)
	Restore(state []byte) error
	Health() (snapshot.DaemonHealthState, string)
	Saturation() float64 // 0..1
}

// DaemonInfo tells a factory which instance it is building.
type DaemonInfo struct {
	ID      string // stable across migrations
	Group   string
	Kind    string
	Lineage snapshot.Lineage
}

// Factory builds a fresh Daemon of one kind.
type Factory func(info DaemonInfo) Daemon
