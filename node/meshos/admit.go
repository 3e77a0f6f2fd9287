package meshos

import (
	"fmt"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
)

// actionKind names what an action does; admit() treats kinds differently.
type actionKind string

const (
	actPlace     actionKind = "place"     // start a daemon assigned here
	actMigrate   actionKind = "migrate"   // move a daemon off this node
	actReplicate actionKind = "replicate" // take a chain replica
	actDrop      actionKind = "drop"      // drop a chain replica
	actRestart   actionKind = "restart"   // admin restart
	actStop      actionKind = "stop"      // stop a duplicate or retired daemon
	actEvict     actionKind = "evict"     // ICE force-evict-replica
	actCutover   actionKind = "cutover"   // ICE force-cutover
)

// action is one thing reconcile wants to do.
type action struct {
	kind   actionKind
	target string // daemon id or chain name
	force  bool   // ICE: bypasses rate limit, stabilization, crash-loop gate (never freeze)
}

func (a action) id() string { return string(a.kind) + ":" + a.target }

// gateState is admit()'s memory: the throttles' windows and which blocked
// actions were already reported.
type gateState struct {
	lastPull   time.Time
	chainMoved map[string]time.Time // chain → last local holder change
	drains     []time.Time          // migration starts in the last second
	reported   map[string]gateReport
}

type gateReport struct {
	reason string
	at     time.Time
}

func newGateState() gateState {
	return gateState{chainMoved: map[string]time.Time{}, reported: map[string]gateReport{}}
}

// frozenLocked reports whether the cluster freeze holds at now.
func (rt *Runtime) frozenLocked(now time.Time) (bool, string) {
	f := rt.intent.Freeze
	if !f.Active || (!f.Until.IsZero() && !now.Before(f.Until)) {
		return false, ""
	}
	r := "cluster frozen"
	if f.Reason != "" {
		r += ": " + f.Reason
	}
	if !f.Until.IsZero() {
		r += " (until " + f.Until.UTC().Format(time.RFC3339) + ")"
	}
	return true, r
}

// admitLocked is the one gate every action passes: freeze, crash-loop gate,
// pull cooldown, per-chain stabilization, drain rate limit, cluster
// backpressure and the per-daemon migration retry delay. It returns "" to
// admit (and records the reservation) or the reason it holds the action.
// A held action is reported to the failures sink once per reason (and
// again every GateReportEvery), never every tick.
func (rt *Runtime) admitLocked(a action, now time.Time) string {
	reason := rt.gateLocked(a, now)
	rt.notePendingLocked(a, now, reason)
	if reason == "" {
		delete(rt.gates.reported, a.id())
		rt.reserveLocked(a, now)
		return ""
	}
	prev, seen := rt.gates.reported[a.id()]
	if !seen || prev.reason != reason || now.Sub(prev.at) >= rt.tm.GateReportEvery {
		if len(rt.gates.reported) >= GateMemoMax {
			clear(rt.gates.reported)
		}
		rt.gates.reported[a.id()] = gateReport{reason: reason, at: now}
		rt.failLocked("admit", fmt.Sprintf("%s %s held: %s", a.kind, a.target, reason))
	}
	return reason
}

func (rt *Runtime) gateLocked(a action, now time.Time) string {
	switch a.kind {
	case actPlace, actMigrate, actReplicate, actDrop, actEvict, actCutover:
		// Nothing moves while frozen, forced or not: freeze is the brake
		// an operator reaches for when moves are the problem.
		if f, r := rt.frozenLocked(now); f {
			return r
		}
	}
	switch a.kind {
	case actPlace, actRestart:
		if s := rt.daemons[a.target]; s != nil && !a.force {
			if g, until := s.gated(now); g {
				return "crash-looping until " + until.UTC().Format(time.RFC3339)
			}
		}
	case actMigrate:
		if at, ok := rt.migRetryAt[a.target]; ok && now.Before(at) && !a.force {
			return fmt.Sprintf("last migration failed; retry in %s", at.Sub(now).Round(time.Millisecond))
		}
		if !a.force {
			if rt.backpressure {
				return "cluster backpressure: saturation above high water"
			}
			n := 0
			for _, t := range rt.gates.drains {
				if now.Sub(t) < time.Second {
					n++
				}
			}
			if n >= rt.tm.DrainRatePerSec {
				return fmt.Sprintf("drain rate limit %d/s", rt.tm.DrainRatePerSec)
			}
		}
		if len(rt.migOut)+len(rt.migIn) >= MigrationsInflightMax {
			return fmt.Sprintf("%d migrations in flight", MigrationsInflightMax)
		}
	case actReplicate, actDrop:
		if !a.force {
			if a.kind == actReplicate {
				if rt.backpressure {
					return "cluster backpressure: saturation above high water"
				}
				if since := now.Sub(rt.gates.lastPull); since < rt.tm.PullCooldown {
					return fmt.Sprintf("pull cooldown %s", rt.tm.PullCooldown)
				}
			}
			// Pulling a replica is never held by the window: the assignment
			// asks for it because the chain is short of a holder (a drain, a
			// dead node), and waiting would leave it under-replicated.
			// Dropping an extra copy waits DropStabilization after this
			// node's last change to the chain (capped by ChainStabilization):
			// the caller already checked that the assigned holders are
			// caught up, so the window only damps a flapping view, and a
			// replica pulled and dropped back and forth costs one resync
			// per window at most.
			if a.kind == actDrop {
				window := min(rt.tm.ChainStabilization, rt.tm.DropStabilization)
				if t, ok := rt.gates.chainMoved[a.target]; ok && now.Sub(t) < window {
					return fmt.Sprintf("chain stabilizing for %s", (window - now.Sub(t)).Round(time.Millisecond))
				}
			}
		}
	}
	return ""
}

func (rt *Runtime) reserveLocked(a action, now time.Time) {
	switch a.kind {
	case actMigrate:
		kept := rt.gates.drains[:0]
		for _, t := range rt.gates.drains {
			if now.Sub(t) < time.Second {
				kept = append(kept, t)
			}
		}
		rt.gates.drains = append(kept, now)
	case actReplicate:
		rt.gates.lastPull = now
		rt.gates.chainMoved[a.target] = now
	case actDrop, actEvict:
		rt.gates.chainMoved[a.target] = now
	}
}

// notePendingLocked keeps the action in the snapshot's Pending list with
// its first-seen time and current block reason.
func (rt *Runtime) notePendingLocked(a action, now time.Time, blocked string) {
	id := a.id()
	p, ok := rt.pending[id]
	if !ok {
		if len(rt.pending) >= PendingActionsMax {
			return
		}
		p = &snapshot.PendingAction{ID: id, Kind: string(a.kind), Target: a.target, Since: now}
		rt.pending[id] = p
	}
	p.Blocked = blocked
	rt.seenPending[id] = true
}

// updateBackpressureLocked applies cluster hysteresis: on above High, off
// below Low; each flip is broadcast to the local daemons.
func (rt *Runtime) updateBackpressureLocked(now time.Time) {
	cs := rt.cluster
	if cs == nil {
		return
	}
	var sum float64
	n := 0
	for _, v := range cs.Nodes {
		if v.Health == snapshot.Healthy && !v.Stale {
			sum += v.Resources.Saturation
			n++
		}
	}
	if n == 0 {
		return
	}
	level := sum / float64(n)
	switch {
	case !rt.backpressure && level > rt.tm.BackpressureHigh:
		rt.backpressure = true
		rt.logf(api.LevelWarn, "", "cluster backpressure on: mean saturation %.2f > %.2f", level, rt.tm.BackpressureHigh)
		for _, s := range rt.daemons {
			s.control(Control{Kind: CtlBackpressureOn, Level: level})
		}
	case rt.backpressure && level < rt.tm.BackpressureLow:
		rt.backpressure = false
		rt.logf(api.LevelInfo, "", "cluster backpressure off: mean saturation %.2f < %.2f", level, rt.tm.BackpressureLow)
		for _, s := range rt.daemons {
			s.control(Control{Kind: CtlBackpressureOff})
		}
	}
}
