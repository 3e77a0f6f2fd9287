package meshos

import (
	"bytes"
	"slices"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Warm standbys. A standby group runs one active member and warm
// standbys. On the checkpoint cadence each local warm standby takes the
// active's latest checkpoint from the group's chain (the local replica
// when this node holds one, otherwise the chain's leader answers a
// msgWarmReq), keeps it in its supervisor and hands it to the running
// instance as CtlStandbySync. synced_through is the chain seq that copy
// reflects, which is also what placement promotes by.
//
// Promotion is fenced by a term: when the assignment names a standby
// active (under a term above every claim seen), its node restarts it from
// the warm copy with the active lineage. A member whose active claim lost
// (an old active back from a partition, at a lower term) is restarted as
// a standby from its own state; its next sync replaces that state with the
// winner's.

// warmCopy is a standby's copy of the active's checkpoint.
type warmCopy struct {
	state []byte
	seq   uint64 // chain seq the copy reflects (synced_through)
}

func (s *supervisor) warm() warmCopy {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.warmed
}

// adoptWarm records a new copy of the active's state and passes it to the
// instance; a nil or unchanged state only advances the seq.
func (s *supervisor) adoptWarm(state []byte, seq uint64) {
	s.mu.Lock()
	// An empty state means "unchanged since your seq": the wire decodes an
	// absent state as an empty, non-nil slice, and adopting it as the copy
	// made a promoted standby restart from nothing.
	same := len(state) == 0 || bytes.Equal(state, s.warmed.state)
	switch {
	case !same:
		// A different state is the leader's truth even at a lower seq
		// (a new leader after a failover numbers its own log).
		s.warmed = warmCopy{state: slices.Clone(state), seq: seq}
	case seq > s.warmed.seq:
		s.warmed.seq = seq
	}
	s.mu.Unlock()
	if !same {
		s.control(Control{Kind: CtlStandbySync, State: slices.Clone(state), Seq: seq})
	}
}

// rebirth restarts the daemon's instance as l, restored from state: the
// standby role switch. The crash history is kept; the restart is counted.
func (s *supervisor) rebirth(l snapshot.Lineage, state []byte) {
	s.mu.Lock()
	s.info.Lineage, s.lineage = l, l
	s.state = state
	s.mu.Unlock()
	s.restartNow(false)
}

// switchStandbyRoleLocked applies a promotion or demotion of s to l. The
// lineage changes now (so the next tick does not switch again); the
// snapshot, which is daemon code, and the restart run off the lock.
func (rt *Runtime) switchStandbyRoleLocked(s *supervisor, l snapshot.Lineage) {
	s.setLineage(l)
	id := s.info.ID
	w := s.warm()
	if l.Active {
		rt.logf(api.LevelInfo, id, "promoted to active at term %d (synced through chain seq %d)", l.Term, w.seq)
	} else {
		rt.logf(api.LevelWarn, id, "demoted to warm standby: the active claim moved on to term %d", l.Term)
	}
	go func() {
		state := w.state
		if !l.Active || len(state) == 0 {
			// Demoted, or promoted before any sync: carry on from its own
			// state rather than from nothing.
			st, err := s.snapshotState()
			if err != nil {
				rt.logf(api.LevelWarn, id, "role switch: snapshot failed (%v); restarting without state", err)
			}
			state = st
		}
		s.rebirth(l, state)
	}()
}

// syncStandbysLocked refreshes every local warm standby's copy of its
// active's checkpoint (see the file comment). Called on the checkpoint
// cadence with rt.mu held.
func (rt *Runtime) syncStandbysLocked() {
	a, view := rt.assign, rt.view
	for id, s := range rt.daemons {
		p, ok := a.Daemons[id]
		if !ok || p.Lineage.Kind != snapshot.GroupStandby || s.lineageNow().Active {
			continue
		}
		active := a.Groups[p.Group].Active
		chain := ChainName(p.Group)
		if _, has := a.Chains[chain]; !has || active == "" || active == id {
			continue
		}
		if r := rt.replicas[chain]; r != nil && !r.resetting {
			if st, ok := r.checkpoints[active]; ok {
				s.adoptWarm(st, r.seq)
			}
			continue
		}
		lead := claimedLeader(view, chain, rt.self)
		if lead.node == 0 {
			continue
		}
		rt.send(lead.node, &message{Kind: msgWarmReq, Chain: chain, Daemon: active, Seq: s.warm().seq})
	}
}

// onWarmReq answers a standby host: the leader's seq, and the active's
// checkpoint when it changed after the seq the asker has.
func (rt *Runtime) onWarmReq(from NodeID, m *message) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	r := rt.replicas[m.Chain]
	if r == nil || r.role != snapshot.Leader || !rt.memberOf(m.Chain, m.Daemon) {
		return
	}
	resp := &message{Kind: msgWarmResp, Chain: m.Chain, Daemon: m.Daemon, Seq: r.seq}
	if st, ok := r.checkpoints[m.Daemon]; ok {
		changed := r.changedAt[m.Daemon]
		if changed == 0 {
			changed = r.seq
		}
		if changed > m.Seq || m.Seq > r.seq {
			resp.State = st
		}
	}
	rt.send(from, resp)
}

// onWarmResp hands the answer to the local standbys of that active.
func (rt *Runtime) onWarmResp(from NodeID, m *message) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	a := rt.assign
	if a == nil || claimedLeader(rt.view, m.Chain, rt.self).node != from {
		return // not (or no longer) the chain's leader
	}
	for id, s := range rt.daemons {
		p, ok := a.Daemons[id]
		if !ok || ChainName(p.Group) != m.Chain || p.Lineage.Kind != snapshot.GroupStandby ||
			a.Groups[p.Group].Active != m.Daemon || s.lineageNow().Active {
			continue
		}
		if len(m.State) == 0 && len(s.warm().state) == 0 {
			continue // nothing to be synced through yet
		}
		s.adoptWarm(m.State, m.Seq)
	}
}
