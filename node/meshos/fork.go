package meshos

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/deck-mesh/deck/node/snapshot"
)

// Fork groups. A fork group forks from its parent group's chain at seq
// ForkAt: "a shared past, not a shared future". Every replica of the
// parent chain that applies entry ForkAt captures the chain's checkpoints
// as they stand right then (the fork point) and its sentinel, a digest of
// them. A fork member is held ("awaiting fork point") until the parent
// chain has reached ForkAt; then its node takes the fork point from a
// local replica, from the chain leader (which offers it to every fork
// member's host the moment it appends ForkAt, so a fork starts one round
// trip after its point exists) or by asking the parent chain's holders
// (the fallback for a lost offer or a member placed later), and starts the member
// restored from the state of parent member (index mod parent members) —
// or, if that member had no checkpoint then, of the lowest-id member that
// had — with the sentinel in its lineage. From there the fork lives its
// own life: it migrates with its own state like any daemon. A fork whose
// parent has no chain starts fresh at ForkAt.

// forkPoint is a parent chain's checkpoints as they stood at a fork seq.
type forkPoint struct {
	states   map[string][]byte
	sentinel uint64
}

// forkStart is what a fork member starts from.
type forkStart struct {
	state    []byte
	sentinel uint64
	from     string // the parent member whose state it is
}

// forkSentinel digests a fork point: the parent chain, the seq and every
// (daemon, state) in id order, so every replica that captured the same
// point derives the same sentinel.
func forkSentinel(chain string, seq uint64, states map[string][]byte) uint64 {
	h, _ := blake2b.New256(nil) // no key: cannot fail
	h.Write([]byte("deck fork point\x00"))
	h.Write([]byte(chain))
	h.Write(binary.BigEndian.AppendUint64([]byte{0}, seq))
	ids := make([]string, 0, len(states))
	for id := range states {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		h.Write(binary.BigEndian.AppendUint16(nil, uint16(len(id))))
		h.Write([]byte(id))
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(states[id]))))
		h.Write(states[id])
	}
	return binary.BigEndian.Uint64(h.Sum(nil)[:8])
}

// captureFork records the fork point if r just applied a fork seq.
func (r *replica) captureFork() bool {
	if !slices.Contains(r.forkAt, r.seq) || r.forks[r.seq] != nil {
		return false
	}
	states := make(map[string][]byte, len(r.checkpoints))
	for id, st := range r.checkpoints {
		states[id] = slices.Clone(st)
	}
	if r.forks == nil {
		r.forks = map[uint64]*forkPoint{}
	}
	r.forks[r.seq] = &forkPoint{states: states, sentinel: forkSentinel(r.name, r.seq, states)}
	return true
}

// offerForkLocked sends fork point seq of chain to the host of every fork
// member that forks there and is not running yet, once per (host, parent
// member); local members find it in the replica on the next pass.
func (rt *Runtime) offerForkLocked(chain string, seq uint64) {
	r, a := rt.replicas[chain], rt.assign
	if r == nil || a == nil || r.forks[seq] == nil {
		return
	}
	fp := r.forks[seq]
	type offer struct {
		node   NodeID
		member string
	}
	sent := map[offer]bool{}
	for _, id := range a.DaemonIDs() {
		p := a.Daemons[id]
		c, member, at, ok := rt.forkParent(p)
		if !ok || c != chain || at != seq {
			continue
		}
		if p.Node == rt.self {
			rt.wake()
			continue
		}
		from, ok := fp.pick(member)
		if !ok || p.Node == 0 || sent[offer{p.Node, member}] {
			continue
		}
		sent[offer{p.Node, member}] = true
		rt.send(p.Node, &message{Kind: msgForkResp, Chain: chain, Daemon: from, For: member, Seq: seq, OK: true,
			State: fp.states[from], Sentinel: fp.sentinel})
	}
}

// pick returns the parent member a fork takes its state from: want, or
// the lowest id that had a checkpoint at the fork point.
func (fp *forkPoint) pick(want string) (string, bool) {
	if _, ok := fp.states[want]; ok {
		return want, true
	}
	ids := make([]string, 0, len(fp.states))
	for id := range fp.states {
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return "", false
	}
	slices.Sort(ids)
	return ids[0], true
}

// forkSeqsFor lists the fork seqs of every fork group whose parent's chain
// is chain.
func (rt *Runtime) forkSeqsFor(chain string) []uint64 {
	var out []uint64
	for _, g := range rt.cfg.Spec.Groups {
		if g.Kind != snapshot.GroupFork {
			continue
		}
		if parent, ok := rt.kinds[g.Parent]; ok && parent.ChainReplicas > 0 && ChainName(parent.Name) == chain {
			out = append(out, g.ForkAt)
		}
	}
	return out
}

// forkParent is fork member p's parent chain, preferred parent member and
// fork seq; ok is false when the parent has no chain (start fresh).
func (rt *Runtime) forkParent(p DaemonPlacement) (chain, member string, seq uint64, ok bool) {
	g, found := rt.kinds[p.Group]
	if !found || g.Kind != snapshot.GroupFork {
		return "", "", 0, false
	}
	parent, found := rt.kinds[g.Parent]
	if !found || parent.ChainReplicas <= 0 {
		return "", "", 0, false
	}
	return ChainName(parent.Name), DaemonID(parent.Name, p.Index%groupMembers(parent)), g.ForkAt, true
}

// forkStartLocked reports what fork member p starts from, or why it waits.
// While waiting it asks the parent chain's holders every ForkAskEvery:
// the view's copy of the parent's seq moves in ChainSeqHashStep steps, so
// it cannot say when the point appears, and a holder without it stays
// silent.
func (rt *Runtime) forkStartLocked(p DaemonPlacement, now time.Time) (fs forkStart, ready bool, why string) {
	chain, member, seq, ok := rt.forkParent(p)
	if !ok {
		return forkStart{}, true, ""
	}
	if fs, ok := rt.forkStates[p.ID]; ok {
		return fs, true, ""
	}
	if r := rt.replicas[chain]; r != nil {
		if fp := r.forks[seq]; fp != nil {
			if from, ok := fp.pick(member); ok {
				fs := forkStart{state: slices.Clone(fp.states[from]), sentinel: fp.sentinel, from: from}
				rt.forkStates[p.ID] = fs
				return fs, true, ""
			}
		}
	}
	if now.Sub(rt.forkAsked[p.ID]) >= min(rt.tm.CheckpointEvery, ForkAskEvery) {
		rt.forkAsked[p.ID] = now
		if cp, ok := rt.assign.Chains[chain]; ok {
			for _, h := range cp.Holders {
				if h != rt.self {
					rt.send(h, &message{Kind: msgForkReq, Chain: chain, Daemon: member, Seq: seq})
				}
			}
		}
	}
	at := claimedLeader(rt.view, chain, 0).seq
	if at >= seq {
		return forkStart{}, false, fmt.Sprintf("fetching the fork point of %s at seq %d", chain, seq)
	}
	return forkStart{}, false, fmt.Sprintf("awaiting fork point: %s at seq %d of %d", chain, at, seq)
}

// onForkReq answers with the fork point's state for the asked member (or
// its stand-in); a holder without that fork point stays silent.
func (rt *Runtime) onForkReq(from NodeID, m *message) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	r := rt.replicas[m.Chain]
	if r == nil || !rt.memberOf(m.Chain, m.Daemon) {
		return
	}
	fp := r.forks[m.Seq]
	if fp == nil {
		return
	}
	id, ok := fp.pick(m.Daemon)
	if !ok {
		return
	}
	rt.send(from, &message{Kind: msgForkResp, Chain: m.Chain, Daemon: id, For: m.Daemon, Seq: m.Seq, OK: true,
		State: fp.states[id], Sentinel: fp.sentinel})
}

// onForkResp keeps a fork point's state for each local fork member
// waiting on it (an answer to its ask, or the leader's offer); the next
// reconcile starts them.
func (rt *Runtime) onForkResp(from NodeID, m *message) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	a := rt.assign
	if a == nil || !m.OK || !rt.memberOf(m.Chain, m.Daemon) {
		return
	}
	if !rt.holderOfLocked(m.Chain, from) {
		// Fork points come from the parent chain's replicas only.
		rt.refuseSender(from, m, "fork point of a chain it does not hold")
		return
	}
	for _, id := range a.DaemonIDs() {
		p := a.Daemons[id]
		if p.Node != rt.self || rt.daemons[id] != nil {
			continue
		}
		chain, member, seq, ok := rt.forkParent(p)
		if !ok || chain != m.Chain || seq != m.Seq || member != m.For {
			continue
		}
		if _, have := rt.forkStates[id]; !have {
			rt.forkStates[id] = forkStart{state: slices.Clone(m.State), sentinel: m.Sentinel, from: m.Daemon}
		}
	}
	rt.wake() // start them on the next pass, not the next tick
}
