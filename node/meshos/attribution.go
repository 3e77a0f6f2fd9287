package meshos

import (
	"fmt"
	"slices"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Attribution: what another node says is believed only as far as that
// node is entitled to say it.
//
// Messages. A checkpoint pushed to a chain leader (msgChainAppend) is
// taken only from a host of that daemon, and a migration offer
// (msgMigOffer) only from the copy that is to hand the daemon over here;
// both by the assignment this node computes (the daemon's placed node or
// its hand-over copy). The assignment, not a snapshot's claim to run the
// daemon, because it names one writer the whole cluster agrees on: a
// partition's losing copy cannot interleave its state with the survivor's,
// and a member that merely says it runs a daemon gets nothing unless
// placement picked it. A fork point (msgForkResp) is taken only from a
// holder of the parent chain (the assignment's holders, or the chain's
// claimed leader), the nodes that capture fork points. Refusals are
// counted (MisattributedMessages) and logged at a bounded rate.
//
// Duplicates. A snapshot's claim to run a daemon (a daemon entry, or a
// migration of it the node says it sources) is the only evidence of that
// copy; no node can check it. So a copy running here gives way to another
// node's claimed copy (stops as its duplicate, or migrates to it) only when
// this node has its own reason to think the other copy is real and came
// first:
//
//   - the claimant held the daemon when this copy started, out of reach
//     (unreachable or stale in the view): this copy is the other side of
//     a partition, and gives way as soon as that holder is back running
//     it, whatever placement says (yieldToBlindHoldersLocked);
//   - the claimant's claim appeared within DuplicateRaceWindow of this
//     copy's start: two nodes started the daemon at about the same time,
//     each before it could see the other, and placement's hand-over rule
//     (the one every node applies alike) picks the survivor.
//
// A claim that shows up later, from a node that was not holding the daemon
// when this copy started, is a copy that should never have started (its
// node could see this one running) or no copy at all: placement may pick
// it (it is a location like any other), but this copy neither stops nor
// hands its state to it; it keeps running, shows the dispute as a pending
// stop and records a failure once per claimant, for an operator to settle. That is the rule "a placed copy
// never stops because of a claim from a node placement did not choose"
// made checkable: the claim alone cannot make placement's choice for this
// node. The cost is that two copies which met only after both had run for
// longer than the window (two halves of a cluster that formed apart) both
// stay until an operator acts.

// copyOrigin is what this node knew of other copies of a daemon when it
// started its own, and when it first saw each later claim. Guarded by the
// Runtime's mu (not the supervisor's).
type copyOrigin struct {
	at time.Time
	// blind are the nodes whose snapshot showed the daemon, out of reach,
	// when this copy started.
	blind []NodeID
	// seen is when each other node's claim to run the daemon was first
	// seen (at most DuplicateClaimantsTrackedMax).
	seen map[NodeID]time.Time
	// disputed are the claimants already reported.
	disputed map[NodeID]bool
}

// originLocked records, for a copy of daemon id starting now, which other
// nodes claim it in the last view: the out-of-reach ones as blind, all of
// them as seen at the start.
func (rt *Runtime) originLocked(id string, now time.Time) *copyOrigin {
	o := &copyOrigin{at: now, seen: map[NodeID]time.Time{}}
	if rt.view == nil {
		return o
	}
	for i := range rt.view.Nodes {
		v := &rt.view.Nodes[i]
		if v.ID == rt.self || !claims(v, id) {
			continue
		}
		if len(o.seen) < DuplicateClaimantsTrackedMax {
			o.seen[v.ID] = now
		}
		if (v.Health != snapshot.Healthy || v.Stale) && len(o.blind) < DuplicateClaimantsTrackedMax {
			o.blind = append(o.blind, v.ID)
		}
	}
	return o
}

// claims reports whether v's snapshot claims daemon id the way placement
// counts a location: a daemon entry not stopped, or a migration of it that
// v sources and that has not finished.
func claims(v *snapshot.NodeView, id string) bool {
	if v == nil {
		return false
	}
	for i := range v.Daemons {
		if d := &v.Daemons[i]; d.ID == id && d.Lifecycle != snapshot.LifecycleStopped {
			return true
		}
	}
	for i := range v.Migrations {
		if m := &v.Migrations[i]; m.Daemon == id && m.Source == v.ID && m.Phase < snapshot.PhaseComplete {
			return true
		}
	}
	return false
}

// noteClaimsLocked stamps the first sighting of every other node's claim to
// a daemon that runs here.
func (rt *Runtime) noteClaimsLocked(view *snapshot.ClusterSnapshot, now time.Time) {
	note := func(v *snapshot.NodeView, id string) {
		s := rt.daemons[id]
		if s == nil || s.origin == nil {
			return
		}
		if _, ok := s.origin.seen[v.ID]; !ok && len(s.origin.seen) < DuplicateClaimantsTrackedMax {
			s.origin.seen[v.ID] = now
		}
	}
	for i := range view.Nodes {
		v := &view.Nodes[i]
		if v.ID == rt.self {
			continue
		}
		for j := range v.Daemons {
			if d := &v.Daemons[j]; d.Lifecycle != snapshot.LifecycleStopped {
				note(v, d.ID)
			}
		}
		for j := range v.Migrations {
			if m := &v.Migrations[j]; m.Source == v.ID && m.Phase < snapshot.PhaseComplete {
				note(v, m.Daemon)
			}
		}
	}
}

// mayYieldLocked reports whether this node's copy s may stop in favour of
// node n's claimed copy (see the file comment).
func (rt *Runtime) mayYieldLocked(s *supervisor, n NodeID) bool {
	o := s.origin
	if o == nil || slices.Contains(o.blind, n) {
		return true
	}
	first, ok := o.seen[n]
	return ok && first.Sub(o.at) <= rt.tm.DuplicateRaceWindow
}

// yieldToBlindHoldersLocked stops every local copy one of whose blind
// holders is back, live and running the daemon: that copy was there first.
func (rt *Runtime) yieldToBlindHoldersLocked(view *snapshot.ClusterSnapshot, now time.Time) {
	for id, s := range rt.daemons {
		if s.origin == nil || len(s.origin.blind) == 0 || rt.outboundFor(id) != nil {
			continue
		}
		for _, h := range s.origin.blind {
			if live(view, h) && runsOn(view, id, h) {
				rt.stopDuplicateLocked(id, s, now, fmt.Sprintf("%v held it when this copy started, out of reach, and runs it again", h))
				break
			}
		}
	}
}

// disputeLocked keeps this node's copy of id here although placement gave
// the daemon to claimant's copy: the claim alone is not enough (see the file
// comment). The dispute shows as a pending stop and, once per claimant and
// when it has stood for DuplicateRaceWindow, a failure record.
func (rt *Runtime) disputeLocked(id string, s *supervisor, claimant NodeID, now time.Time) {
	rt.notePendingLocked(action{kind: actStop, target: id}, now,
		fmt.Sprintf("kept: %v claims to run it too, which this node cannot confirm", claimant))
	o := s.origin
	if o == nil || o.disputed[claimant] {
		return
	}
	if first, ok := o.seen[claimant]; ok && now.Sub(first) < rt.tm.DuplicateRaceWindow {
		// After a partition heals the copy that started in the dark gives
		// way within a pass or two (yieldToBlindHoldersLocked on its node);
		// only a dispute that stands is a failure.
		return
	}
	if o.disputed == nil {
		o.disputed = map[NodeID]bool{}
	}
	if len(o.disputed) < DuplicateClaimantsTrackedMax {
		o.disputed[claimant] = true
	}
	rt.failLocked("placement", fmt.Sprintf("%s kept here: %v claims to run it (first seen %s after this copy started, not holding it then)",
		id, claimant, o.seen[claimant].Sub(o.at).Round(time.Millisecond)))
	rt.logf(api.LevelWarn, id, "not stopping for %v's claim to run it: not confirmed by anything this node saw", claimant)
}

// hostOfLocked reports whether from may speak for daemon id's state: it is
// the daemon's placed node or its hand-over copy in this node's assignment.
func (rt *Runtime) hostOfLocked(id string, from NodeID) bool {
	if rt.assign == nil || !from.Valid() {
		return false
	}
	p, ok := rt.assign.Daemons[id]
	return ok && (p.Node == from || p.HandOver == from)
}

// handsOverHereLocked reports whether from may migrate daemon id here: this
// node is its placed node and from's copy the one that hands it over.
func (rt *Runtime) handsOverHereLocked(id string, from NodeID) bool {
	if rt.assign == nil || !from.Valid() {
		return false
	}
	p, ok := rt.assign.Daemons[id]
	return ok && p.Node == rt.self && p.HandOver == from
}

// holderOfLocked reports whether from holds chain: an assigned holder, or
// the chain's claimed leader in the last view.
func (rt *Runtime) holderOfLocked(chain string, from NodeID) bool {
	if !from.Valid() {
		return false
	}
	if rt.assign != nil && slices.Contains(rt.assign.Chains[chain].Holders, from) {
		return true
	}
	return claimedLeader(rt.view, chain, rt.self).node == from
}

// refuseSender counts (and, at a bounded rate, logs) a message refused
// because its sender may not speak for what it carries.
func (rt *Runtime) refuseSender(from NodeID, m *message, why string) {
	if n := rt.misattributed.Add(1); n == 1 || n%100 == 0 {
		rt.logf(api.LevelWarn, m.Daemon, "refused message %d from %v (%d so far): %s", m.Kind, from, n, why)
	}
}

// MisattributedMessages counts messages refused because their sender is not
// a host of the daemon (checkpoints, migration offers) or a holder of the
// chain (fork points) it carried.
func (rt *Runtime) MisattributedMessages() uint64 { return rt.misattributed.Load() }
