package meshos

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
)

// stepMaintenanceLocked advances this node's maintenance state machine:
//
//	Active ──enter──▶ EnteringMaintenance{deadline} ──empty──▶ Maintenance
//	                        │ deadline passed                      │ exit
//	                        ▼                                      ▼
//	                  DrainFailed{reason} ──exit──▶ ExitingMaintenance ─▶ Recovery ─window─▶ Active
//
// Entering is driven by NodeIntent.Maintenance; a new MaintGen restarts a
// failed drain. The same intent replayed changes nothing, so the machine is
// idempotent under ledger replay. Placement reads the state from the
// node's view: from Entering on, the node keeps nothing.
func (rt *Runtime) stepMaintenanceLocked(now time.Time) {
	if !rt.haveIntent {
		return
	}
	ni := rt.intent.Nodes[rt.self]
	m := &rt.maint
	switch ni.Maintenance {
	case MaintIntentEnter:
		fresh := ni.MaintGen > rt.maintGen
		switch {
		case m.State == snapshot.MaintActive || m.State == snapshot.MaintRecovery || m.State == snapshot.MaintExiting,
			fresh && m.State == snapshot.MaintDrainFailed:
			rt.maintGen = ni.MaintGen
			d, r := rt.localLoadLocked()
			rt.transitionLocked(now, snapshot.Maintenance{
				State: snapshot.MaintEntering, Deadline: ni.DrainDeadline,
				DaemonsLeft: d, DaemonsTotal: d, ReplicasLeft: r, ReplicasTotal: r,
			}, "")
		case fresh:
			rt.maintGen = ni.MaintGen
			if m.State == snapshot.MaintEntering && !ni.DrainDeadline.Equal(m.Deadline) {
				m.Deadline = ni.DrainDeadline
				rt.logf(api.LevelInfo, "", "drain deadline moved to %s", fmtDeadline(m.Deadline))
			}
		}
	case MaintIntentExit, MaintIntentNone:
		if m.State == snapshot.MaintEntering || m.State == snapshot.MaintMaintenance || m.State == snapshot.MaintDrainFailed {
			rt.maintGen = max(rt.maintGen, ni.MaintGen)
			rt.transitionLocked(now, snapshot.Maintenance{State: snapshot.MaintExiting}, "")
		}
	}

	switch m.State {
	case snapshot.MaintEntering:
		d, r := rt.localLoadLocked()
		m.DaemonsLeft, m.ReplicasLeft = d, r
		switch {
		case d == 0 && r == 0 && rt.datafort.DrainLeft == 0:
			// Blob replicas too: a datafort is drained once they moved.
			rt.transitionLocked(now, snapshot.Maintenance{State: snapshot.MaintMaintenance,
				DaemonsTotal: m.DaemonsTotal, ReplicasTotal: m.ReplicasTotal}, "")
		case !m.Deadline.IsZero() && !now.Before(m.Deadline):
			reason := rt.drainBlockersLocked(d, r)
			rt.transitionLocked(now, snapshot.Maintenance{State: snapshot.MaintDrainFailed, Reason: reason,
				DaemonsLeft: d, DaemonsTotal: m.DaemonsTotal, ReplicasLeft: r, ReplicasTotal: m.ReplicasTotal}, reason)
		}
	case snapshot.MaintDrainFailed:
		m.DaemonsLeft, m.ReplicasLeft = rt.localLoadLocked()
	case snapshot.MaintExiting:
		// The node takes placements again from Recovery on; Exiting only
		// waits for what still runs here to be healthy.
		if rt.allHealthyLocked() {
			rt.transitionLocked(now, snapshot.Maintenance{State: snapshot.MaintRecovery}, "")
		}
	case snapshot.MaintRecovery:
		if now.Sub(m.Since) >= rt.tm.RecoveryWindow && rt.allHealthyLocked() {
			rt.transitionLocked(now, snapshot.Maintenance{State: snapshot.MaintActive}, "")
		}
	}
}

// transitionLocked records a state change: log always, failure on
// DrainFailed.
func (rt *Runtime) transitionLocked(now time.Time, next snapshot.Maintenance, failure string) {
	prev := rt.maint.State
	if prev == next.State {
		return
	}
	next.Since = now
	rt.maint = next
	msg := fmt.Sprintf("maintenance %s → %s", prev, next.State)
	if next.State == snapshot.MaintEntering {
		msg += fmt.Sprintf(" (deadline %s, %d daemons, %d replicas to move)", fmtDeadline(next.Deadline), next.DaemonsTotal, next.ReplicasTotal)
	}
	if failure != "" {
		msg += ": " + failure
		rt.logText(api.LevelError, "", msg)
		rt.failLocked("maintenance", "drain failed: "+failure)
		return
	}
	rt.logText(api.LevelInfo, "", msg)
}

func fmtDeadline(t time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return t.UTC().Format(time.RFC3339)
}

// localLoadLocked counts what still lives here: daemons (a daemon whose
// migration is past cutover is gone) and replicas.
func (rt *Runtime) localLoadLocked() (daemons, replicas int) {
	return len(rt.daemons), len(rt.replicas)
}

func (rt *Runtime) allHealthyLocked() bool {
	for _, s := range rt.daemons {
		if !s.healthy() {
			return false
		}
	}
	return true
}

// drainBlockersLocked explains why a drain did not finish, naming what is
// left and what holds each (the pending action's block reason).
func (rt *Runtime) drainBlockersLocked(d, r int) string {
	var parts []string
	ids := make([]string, 0, len(rt.daemons))
	for id := range rt.daemons {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		parts = append(parts, id+why(rt.pending[string(actMigrate)+":"+id]))
	}
	chains := make([]string, 0, len(rt.replicas))
	for c := range rt.replicas {
		chains = append(chains, c)
	}
	slices.Sort(chains)
	for _, c := range chains {
		parts = append(parts, "replica "+c+why(rt.pending[string(actDrop)+":"+c]))
	}
	const maxListed = 6
	extra := ""
	if len(parts) > maxListed {
		extra = fmt.Sprintf(", +%d more", len(parts)-maxListed)
		parts = parts[:maxListed]
	}
	if b := rt.datafort.DrainLeft; b > 0 {
		return fmt.Sprintf("deadline passed with %d daemons, %d replicas and %d blob replicas still here: %s%s", d, r, b, strings.Join(parts, ", "), extra)
	}
	return fmt.Sprintf("deadline passed with %d daemons and %d replicas still here: %s%s", d, r, strings.Join(parts, ", "), extra)
}

func why(p *snapshot.PendingAction) string {
	switch {
	case p == nil:
		return ""
	case p.Blocked != "":
		return " (" + p.Blocked + ")"
	}
	return " (in progress)"
}
