package meshos

import (
	"bytes"
	"slices"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/placement"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Chain replication, small but real: each group with a chain has an
// elected leader (placement picks it; a claim carries a term above every
// term seen, which fences the old leader). Hosts of the group's daemons
// push a checkpoint to the leader when the daemon's state changed; the
// leader appends it (seq+1). Followers pull entries after their seq every
// tick; one too far behind the leader's log gets a reset: the leader's
// per-daemon checkpoints, paged by daemon id. A daemon re-placed after its
// node died restores from its checkpoint when its new node holds the chain.

type replica struct {
	role        snapshot.ReplicaRole
	term        uint64
	seq         uint64
	log         []chainEntry      // last ChainEntriesKeptMax entries
	checkpoints map[string][]byte // daemon → latest state
	resetCursor string            // follower in reset: last daemon id received
	resetting   bool
	// resetInto collects a reset's pages; it replaces checkpoints on the
	// last page, so a daemon restored meanwhile still finds the old state
	// and a checkpoint the leader does not have does not survive.
	resetInto map[string][]byte
	resetSeq  uint64 // the lowest leader seq a reset page carried
	// changedAt is the seq at which each daemon's checkpoint last changed
	// (0: unknown, taken as seq), so a warm standby is sent a state only
	// when it is newer than the copy it has.
	changedAt map[string]uint64
	// name is the chain; forkAt the fork seqs of groups forked from it,
	// and forks the fork points captured at them (fork.go).
	name   string
	forkAt []uint64
	forks  map[uint64]*forkPoint
}

func newReplica() *replica {
	return &replica{checkpoints: map[string][]byte{}, changedAt: map[string]uint64{}}
}

// leaderView is a chain's claimed leader as some view shows it.
type leaderView struct {
	node NodeID
	term uint64
	seq  uint64
}

// claimedLeader is the live node with the winning claim to lead chain
// (claimBeats: highest term, then seq, then lowest id), skipping skip.
func claimedLeader(cs *snapshot.ClusterSnapshot, chain string, skip NodeID) leaderView {
	var best leaderView
	if cs == nil {
		return best
	}
	for i := range cs.Nodes {
		v := &cs.Nodes[i]
		if v.ID == skip || v.Health != snapshot.Healthy || v.Stale {
			continue
		}
		for _, r := range v.Replicas {
			if r.Chain != chain || r.Role != snapshot.Leader {
				continue
			}
			if best.node == 0 || placement.ClaimBeats(r.Term, r.Seq, v.ID, best.term, best.seq, best.node) {
				best = leaderView{node: v.ID, term: r.Term, seq: r.Seq}
			}
		}
	}
	return best
}

// quorumLocked reports whether this node's view shows a strict majority
// of the cluster's nodes (observers are not in the view) live and heard
// within QuorumHeardWithin. A node that does not see one may be on the
// small side of a partition, where a leadership claim would split the
// chain. Health alone is not enough: right after a cut some of the far
// side still shows Healthy while the leader already shows Suspect (its
// claim gone from the view), and that moment must not count as a majority.
// Nodes leave the count once gossip forgets them (gossip.DefaultForgetAfter),
// so a cluster that lost most of its nodes for good recovers after that long.
func (rt *Runtime) quorumLocked() bool {
	v := rt.view
	if v == nil {
		return false
	}
	now := rt.now()
	live := 0
	for i := range v.Nodes {
		n := &v.Nodes[i]
		heard := n.ID == rt.self || n.HeardAt.IsZero() || now.Sub(n.HeardAt) <= rt.tm.QuorumHeardWithin
		if n.Health == snapshot.Healthy && !n.Stale && heard {
			live++
		}
	}
	return 2*live > len(v.Nodes)
}

// maxTermLocked is the highest term this node has seen for chain.
func (rt *Runtime) maxTermLocked(chain string) uint64 {
	var t uint64
	if r := rt.replicas[chain]; r != nil {
		t = r.term
	}
	if rt.view != nil {
		for _, v := range rt.view.Nodes {
			for _, r := range v.Replicas {
				if r.Chain == chain {
					t = max(t, r.Term)
				}
			}
		}
	}
	return t
}

// stepChainsLocked settles roles (claim when assigned and caught up, step
// down when fenced), asks leaders for entries, and queues checkpoint
// pushes (taken outside the lock: Snapshot is daemon code).
func (rt *Runtime) stepChainsLocked(now time.Time) {
	a, view := rt.assign, rt.view
	if a == nil || view == nil {
		return
	}
	for name, r := range rt.replicas {
		cp := a.Chains[name]
		cur := claimedLeader(view, name, rt.self)
		switch r.role {
		case snapshot.Leader:
			if cur.node != 0 && placement.ClaimBeats(cur.term, cur.seq, cur.node, r.term, r.seq, rt.self) {
				// A better claim: a higher term, or the same term with more
				// progress (two sides of a healed partition). What this
				// node appended under its claim may have diverged from the
				// winner's log, so it resyncs from scratch.
				rt.logf(api.LevelInfo, "", "stepped down as leader of %s (term %d, seq %d): %v leads at term %d, seq %d",
					name, r.term, r.seq, cur.node, cur.term, cur.seq)
				r.role = snapshot.Follower
				r.term = max(r.term, cur.term)
				r.resetting, r.resetCursor, r.resetInto = true, "", nil
			}
		case snapshot.Follower:
			// Only a node that sees a majority of the cluster claims: the
			// far side of a partition keeps following, so on heal the
			// side that kept working wins instead of a lone node that
			// claimed a newer term while nobody could hear it.
			if cp.Leader == rt.self && (cur.node == 0 || (!r.resetting && r.seq >= cur.seq)) && rt.quorumLocked() {
				// Nobody else leads: what this node has is the best left,
				// so an unfinished reset ends here.
				r.resetting, r.resetCursor, r.resetInto = false, "", nil
				r.role = snapshot.Leader
				r.term = rt.maxTermLocked(name) + 1
				rt.logf(api.LevelInfo, "", "leading %s at term %d (seq %d)", name, r.term, r.seq)
			}
		}
		// A follower on its way out stops syncing: its seq freezes, the
		// new holders pass it, and the drop's caught-up check can succeed.
		if r.role == snapshot.Follower && cur.node != 0 && slices.Contains(cp.Holders, rt.self) {
			req := &message{Kind: msgChainSyncReq, Chain: name, Seq: r.seq}
			if r.resetting {
				req.Seq, req.Cursor = 0, r.resetCursor
			}
			rt.send(cur.node, req)
		}
	}
	// Pushes run on the checkpoint cadence, except a daemon's first: its
	// standbys and forks wait on it, so it goes out on the first pass
	// that finds the daemon running and its chain led.
	cadence := now.Sub(rt.lastPush) >= rt.tm.CheckpointEvery
	if cadence {
		rt.lastPush = now
		rt.syncStandbysLocked()
	}
	rt.pushes = rt.pushes[:0]
	for id, s := range rt.daemons {
		if !cadence && rt.pushed[id] != 0 {
			continue
		}
		p, ok := a.Daemons[id]
		if !ok || s.lifecycle() != snapshot.LifecycleRunning || rt.outboundFor(id) != nil {
			continue
		}
		if p.Lineage.Kind == snapshot.GroupStandby && !s.lineageNow().Active {
			continue // a warm standby's state is a copy of the active's
		}
		chain := ChainName(p.Group)
		if _, has := a.Chains[chain]; !has {
			continue
		}
		lead := claimedLeader(view, chain, 0)
		if r := rt.replicas[chain]; r != nil && r.role == snapshot.Leader && r.term >= lead.term {
			lead = leaderView{node: rt.self, term: r.term}
		}
		if lead.node == 0 {
			continue
		}
		rt.pushes = append(rt.pushes, push{daemon: id, chain: chain, leader: lead.node, term: lead.term, sup: s})
	}
}

type push struct {
	daemon, chain string
	leader        NodeID
	term          uint64
	sup           *supervisor
}

// runPushes snapshots the queued daemons and sends changed states to their
// chain leaders (or appends locally). Called without rt.mu.
func (rt *Runtime) runPushes() {
	rt.mu.Lock()
	ps := slices.Clone(rt.pushes)
	rt.pushes = rt.pushes[:0]
	rt.mu.Unlock()
	for _, p := range ps {
		state, err := p.sup.snapshotState()
		if err != nil || len(state) > ChainEntryBytesMax {
			continue
		}
		h := fnvBytes(state)
		rt.mu.Lock()
		same := rt.pushed[p.daemon] == h
		if !same {
			rt.pushed[p.daemon] = h
		}
		if !same && p.leader == rt.self {
			if r := rt.replicas[p.chain]; r != nil && r.role == snapshot.Leader && r.append(p.daemon, state) {
				rt.offerForkLocked(p.chain, r.seq)
			}
		}
		rt.mu.Unlock()
		if !same && p.leader != rt.self {
			rt.send(p.leader, &message{Kind: msgChainAppend, Chain: p.chain, Term: p.term, Daemon: p.daemon, State: state})
		}
	}
}

func fnvBytes(b []byte) uint64 {
	h := hasher{v: 14695981039346656037}
	h.write(b)
	return h.v | 1 // never 0, which means "nothing pushed yet"
}

// append adds one checkpoint to the leader's log and reports whether it
// completed a fork point.
func (r *replica) append(daemon string, state []byte) bool {
	r.seq++
	e := chainEntry{Seq: r.seq, Daemon: daemon, State: state}
	r.log = append(r.log, e)
	if len(r.log) > ChainEntriesKeptMax {
		r.log = slices.Delete(r.log, 0, len(r.log)-ChainEntriesKeptMax)
	}
	r.checkpoints[daemon] = state
	r.changedAt[daemon] = r.seq
	return r.captureFork()
}

// memberOf reports whether daemon id belongs to the group of chain, which
// bounds the checkpoint map to the group's members.
func (rt *Runtime) memberOf(chain, daemon string) bool {
	for _, g := range rt.cfg.Spec.Groups {
		if ChainName(g.Name) == chain && g.ChainReplicas > 0 {
			for i := 0; i < groupMembers(g); i++ {
				if DaemonID(g.Name, i) == daemon {
					return true
				}
			}
		}
	}
	return false
}

func (rt *Runtime) onChainAppend(from NodeID, m *message) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	r := rt.replicas[m.Chain]
	if r == nil || r.role != snapshot.Leader || m.Term > r.term || !rt.memberOf(m.Chain, m.Daemon) {
		// Not (or no longer) the leader: the host will find the new one
		// in the next cluster view and push again.
		return
	}
	if !rt.hostOfLocked(m.Daemon, from) {
		// Only the daemon's host writes its state (attribution.go).
		rt.refuseSender(from, m, "checkpoint of a daemon it does not host")
		return
	}
	if bytes.Equal(r.checkpoints[m.Daemon], m.State) {
		return
	}
	if r.append(m.Daemon, m.State) {
		rt.offerForkLocked(m.Chain, r.seq)
	}
}

func (rt *Runtime) onChainSyncReq(from NodeID, m *message) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	r := rt.replicas[m.Chain]
	if r == nil || r.role != snapshot.Leader {
		return
	}
	resp := &message{Kind: msgChainSyncResp, Chain: m.Chain, Term: r.term, Seq: r.seq}
	oldest := r.seq + 1
	if len(r.log) > 0 {
		oldest = r.log[0].Seq
	}
	switch {
	case m.Seq >= r.seq:
		// Up to date: the reply still tells the follower the term.
	case m.Seq+1 >= oldest && m.Cursor == "":
		for _, e := range r.log {
			if e.Seq > m.Seq && len(resp.Entries) < ChainEntriesPerSyncMax {
				resp.Entries = append(resp.Entries, e)
			}
		}
	default:
		resp.Reset = true
		ids := make([]string, 0, len(r.checkpoints))
		for id := range r.checkpoints {
			if id > m.Cursor {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		resp.Done = len(ids) <= ChainEntriesPerSyncMax
		if !resp.Done {
			ids = ids[:ChainEntriesPerSyncMax]
		}
		for _, id := range ids {
			resp.Entries = append(resp.Entries, chainEntry{Seq: r.seq, Daemon: id, State: r.checkpoints[id]})
		}
	}
	rt.send(from, resp)
}

func (rt *Runtime) onChainSyncResp(from NodeID, m *message) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	r := rt.replicas[m.Chain]
	if r == nil || r.role != snapshot.Follower || m.Term < r.term {
		return
	}
	if cur := claimedLeader(rt.view, m.Chain, rt.self); cur.node != from && cur.node != 0 {
		return // a deposed leader's reply
	}
	r.term = m.Term
	if m.Reset {
		if r.resetInto == nil || r.resetCursor == "" {
			r.resetInto, r.resetSeq = map[string][]byte{}, m.Seq
		}
		for _, e := range m.Entries {
			if !rt.memberOf(m.Chain, e.Daemon) {
				return
			}
			r.resetInto[e.Daemon] = e.State
			r.resetCursor = e.Daemon
		}
		// A page is the leader's checkpoints as of its seq; a daemon paged
		// early may have changed before the last page. Resuming the log
		// from the lowest page seq re-applies those changes.
		r.resetSeq = min(r.resetSeq, m.Seq)
		r.resetting = !m.Done
		if m.Done {
			r.checkpoints = r.resetInto
			r.seq, r.log, r.resetCursor, r.resetInto = r.resetSeq, nil, "", nil
			clear(r.changedAt)
		}
		return
	}
	if r.resetting && r.resetCursor == "" && (m.Seq == 0 || len(m.Entries) > 0 && m.Entries[0].Seq == 1) {
		// A reset the leader answers with its whole log: start over from
		// an empty replica and apply it.
		r.checkpoints, r.log, r.seq, r.resetting, r.resetInto = map[string][]byte{}, nil, 0, false, nil
		clear(r.changedAt)
	}
	if r.resetting {
		return // a log page that answers an older request
	}
	if m.Seq < r.seq {
		// The new leader is behind this follower (it was elected while we
		// synced from the old one): resync from scratch.
		r.resetting, r.resetCursor = true, ""
		return
	}
	for _, e := range m.Entries {
		if e.Seq != r.seq+1 || !rt.memberOf(m.Chain, e.Daemon) {
			break
		}
		r.append(e.Daemon, e.State)
	}
	if len(m.Entries) == 0 && r.seq < m.Seq {
		r.resetting, r.resetCursor = true, ""
	}
}

// checkpointLocked returns the latest replicated state of p from a local
// replica of its chain, or nil.
func (rt *Runtime) checkpointLocked(p DaemonPlacement) []byte {
	r := rt.replicas[ChainName(p.Group)]
	if r == nil {
		return nil
	}
	if st, ok := r.checkpoints[p.ID]; ok {
		return slices.Clone(st)
	}
	return nil
}
