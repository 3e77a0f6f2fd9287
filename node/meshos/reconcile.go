package meshos

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/placement"
	"github.com/deck-mesh/deck/node/snapshot"
)

// actedGens remembers the one-shot intent generations this node acted on,
// so a replayed ledger (same generations) does nothing twice.
type actedGens struct {
	flushAvoid   uint64
	restartAll   uint64
	invalidate   map[NodeID]uint64 // every node's: all nodes re-place an invalidated node's work
	clearAvoid   uint64
	dropReplicas uint64
	restart      map[string]uint64
	forceRestart map[string]uint64
	evictions    map[string]uint64 // chain → gen (this node's evictions)
	cutovers     map[string]uint64
	killed       map[string]bool
}

// baseline marks every generation already in intent as acted on.
func (g *actedGens) baseline(self NodeID, in ClusterIntent) {
	g.restart, g.forceRestart = map[string]uint64{}, map[string]uint64{}
	g.evictions, g.cutovers, g.killed = map[string]uint64{}, map[string]uint64{}, map[string]bool{}
	g.flushAvoid = in.FlushAvoidGen
	ni := in.Nodes[self]
	g.restartAll, g.clearAvoid, g.dropReplicas = ni.RestartAllGen, ni.ClearAvoidGen, ni.DropReplicasGen
	g.invalidate = map[NodeID]uint64{}
	for id, n := range in.Nodes {
		g.invalidate[id] = n.InvalidateGen
	}
	for id, d := range in.Daemons {
		g.restart[id], g.forceRestart[id] = d.RestartGen, d.ForceRestartGen
	}
	for _, e := range in.Evictions {
		g.evictions[e.Chain] = max(g.evictions[e.Chain], e.Gen)
	}
	for _, c := range in.Cutovers {
		g.cutovers[c.Chain] = max(g.cutovers[c.Chain], c.Gen)
	}
	for id := range in.KilledMigrations {
		g.killed[id] = true
	}
}

// refreshAvoidLocked expires avoid entries and adds peers whose RTT
// crossed the threshold. A peer already listed is not re-added each tick.
func (rt *Runtime) refreshAvoidLocked(now time.Time) {
	for p, e := range rt.avoid {
		if !now.Before(e.Until) {
			delete(rt.avoid, p)
			rt.logf(api.LevelInfo, "", "avoid entry for %v expired", p)
		}
	}
	for _, p := range rt.peers {
		if p.RTT <= rt.tm.AvoidRTT || p.Peer == rt.self || !p.Peer.Valid() {
			continue
		}
		if _, ok := rt.avoid[p.Peer]; ok || len(rt.avoid) >= AvoidEntriesMax {
			continue
		}
		e := snapshot.AvoidEntry{Peer: p.Peer, Until: now.Add(rt.tm.AvoidTTL),
			Reason: fmt.Sprintf("rtt %s above %s", p.RTT.Round(time.Millisecond), rt.tm.AvoidRTT)}
		rt.avoid[p.Peer] = e
		rt.logf(api.LevelWarn, "", "avoiding %v for %s: %s", p.Peer, rt.tm.AvoidTTL, e.Reason)
	}
}

// applyIntentLocked executes the one-shot requests of the ClusterIntent.
func (rt *Runtime) applyIntentLocked(now time.Time) {
	if !rt.haveIntent {
		return
	}
	in := rt.intent
	ni := in.Nodes[rt.self]
	g := &rt.acted
	if in.FlushAvoidGen > g.flushAvoid || ni.ClearAvoidGen > g.clearAvoid {
		g.flushAvoid, g.clearAvoid = max(g.flushAvoid, in.FlushAvoidGen), max(g.clearAvoid, ni.ClearAvoidGen)
		if len(rt.avoid) > 0 {
			rt.logf(api.LevelInfo, "", "avoid list cleared (%d entries) by operator", len(rt.avoid))
		}
		clear(rt.avoid)
	}
	for id, n := range in.Nodes {
		if n.InvalidateGen <= g.invalidate[id] {
			continue
		}
		g.invalidate[id] = n.InvalidateGen
		rt.freshUntil[id] = now.Add(InvalidateHold)
		if id == rt.self {
			rt.logf(api.LevelInfo, "", "placement invalidated by operator: re-placing this node's daemons and replicas")
		}
	}
	if ni.DropReplicasGen > g.dropReplicas {
		g.dropReplicas = ni.DropReplicasGen
		for name := range rt.replicas {
			if len(ni.DropReplicas) == 0 || slices.Contains(ni.DropReplicas, name) {
				if rt.admitLocked(action{kind: actDrop, target: name, force: true}, now) == "" {
					delete(rt.replicas, name)
					rt.logf(api.LevelInfo, "", "dropped replica of %s by operator", name)
				}
			}
		}
	}
	// Restarts: a gated restart stays pending and is retried next tick.
	for id, d := range in.Daemons {
		s := rt.daemons[id]
		if d.ForceRestartGen > g.forceRestart[id] {
			if s == nil || rt.admitLocked(action{kind: actRestart, target: id, force: true}, now) == "" {
				g.forceRestart[id] = d.ForceRestartGen
				g.restart[id] = max(g.restart[id], d.RestartGen)
				if s != nil {
					s.restartNow(true)
					rt.logf(api.LevelWarn, id, "force-restarted by operator (crash-loop gate cleared)")
				}
			}
			continue
		}
		if d.RestartGen > g.restart[id] {
			if s == nil || rt.admitLocked(action{kind: actRestart, target: id}, now) == "" {
				g.restart[id] = d.RestartGen
				if s != nil {
					s.restartNow(false)
					rt.logf(api.LevelInfo, id, "restarted by operator")
				}
			}
		}
	}
	if ni.RestartAllGen > g.restartAll {
		all := true
		for id, s := range rt.daemons {
			if rt.admitLocked(action{kind: actRestart, target: id}, now) != "" {
				all = false
				continue
			}
			s.restartNow(false)
			rt.logf(api.LevelInfo, id, "restarted by operator (restart-all)")
		}
		if all {
			g.restartAll = ni.RestartAllGen
		}
	}
	for _, e := range in.Evictions {
		if e.Gen <= g.evictions[e.Chain] {
			continue
		}
		if e.Node != rt.self || rt.replicas[e.Chain] == nil {
			g.evictions[e.Chain] = e.Gen
			continue
		}
		if rt.admitLocked(action{kind: actEvict, target: e.Chain, force: true}, now) == "" {
			g.evictions[e.Chain] = e.Gen
			delete(rt.replicas, e.Chain)
			rt.logf(api.LevelWarn, "", "replica of %s force-evicted by operator", e.Chain)
		}
	}
	for _, c := range in.Cutovers {
		if c.Gen <= g.cutovers[c.Chain] {
			continue
		}
		r := rt.replicas[c.Chain]
		if c.Target != rt.self || r == nil {
			g.cutovers[c.Chain] = c.Gen
			continue
		}
		if rt.admitLocked(action{kind: actCutover, target: c.Chain, force: true}, now) == "" {
			g.cutovers[c.Chain] = c.Gen
			r.role = snapshot.Leader
			r.term = rt.maxTermLocked(c.Chain) + 1
			rt.logf(api.LevelWarn, "", "took leadership of %s at term %d (force-cutover)", c.Chain, r.term)
		}
	}
	for id := range in.KilledMigrations {
		if g.killed[id] {
			continue
		}
		if len(g.killed) < MigrationsInflightMax*16 {
			g.killed[id] = true
		}
		if m := rt.migOut[id]; m != nil {
			m.kill("killed by operator")
		}
		if m := rt.migIn[id]; m != nil {
			rt.dropInboundLocked(m, "killed by operator")
		}
	}
}

// viewLocked is the cluster as this node should plan on it: the folded
// snapshot with the admin intent overlaid, this node's own entry replaced
// by its live local state, and migrations fenced by generation so a
// snapshot older than a cutover cannot resurrect the daemon on the wrong
// side.
func (rt *Runtime) viewLocked(now time.Time) *snapshot.ClusterSnapshot {
	cs := ApplyIntent(rt.cluster, rt.intent)
	self := rt.selfViewLocked(now)
	found := false
	for i := range cs.Nodes {
		if cs.Nodes[i].ID == rt.self {
			cs.Nodes[i] = self
			found = true
		}
	}
	if !found {
		cs.Nodes = append(cs.Nodes, self)
	}
	for _, f := range rt.finished {
		if !f.cutover {
			continue
		}
		peer := f.m.Source
		if f.out {
			peer = f.m.Target
		}
		for i := range cs.Nodes {
			v := &cs.Nodes[i]
			if v.ID != peer || v.Generation > f.peerGen {
				continue
			}
			has := slices.IndexFunc(v.Daemons, func(d snapshot.Daemon) bool { return d.ID == f.daemonID })
			switch {
			case f.out && has < 0:
				v.Daemons = append(slices.Clone(v.Daemons), snapshot.Daemon{ID: f.daemonID, Lineage: f.lineage, Node: peer, Lifecycle: snapshot.LifecycleRunning})
			case !f.out && has >= 0:
				v.Daemons = slices.Delete(slices.Clone(v.Daemons), has, has+1)
			}
		}
	}
	return cs
}

func (rt *Runtime) selfViewLocked(now time.Time) snapshot.NodeView {
	var v snapshot.NodeView
	v.ID, v.Capabilities, v.Maintenance = rt.self, rt.cfg.Capabilities, rt.maint
	v.Health, v.HealthSince = snapshot.Healthy, rt.startedAt
	if ni, ok := rt.intent.Nodes[rt.self]; ok {
		v.Cordoned = ni.Cordoned
	}
	if old := rt.latest.Load(); old != nil {
		v.Generation = old.Generation
		v.Resources = old.Resources
		v.Peers = old.Peers
	}
	for id, s := range rt.daemons {
		d := rt.daemonViewLocked(id, s, now)
		if d.Lifecycle != snapshot.LifecycleStopped {
			v.Daemons = append(v.Daemons, d)
		}
	}
	slices.SortFunc(v.Daemons, func(a, b snapshot.Daemon) int { return cmp.Compare(a.ID, b.ID) })
	if rt.cfg.Resources == nil {
		// Saturation is the declared load of what runs (buildLocked): take
		// it from the daemons now, not from the last snapshot, or a daemon
		// that arrived since counts in placement's subtraction but not in
		// the gauge, and this node looks lighter to itself than to every
		// other node (and to the blast-radius preview), which then
		// disagree on where the next daemon goes.
		var declared float64
		for _, d := range v.Daemons {
			declared += rt.kinds[d.Lineage.Group].Load
		}
		v.Resources.Saturation = clamp01(declared)
	}
	for name, r := range rt.replicas {
		v.Replicas = append(v.Replicas, snapshot.Replica{Chain: name, Role: r.role, Seq: r.seq, Term: r.term})
	}
	slices.SortFunc(v.Replicas, func(a, b snapshot.Replica) int { return cmp.Compare(a.Chain, b.Chain) })
	for _, e := range rt.avoid {
		v.Avoid = append(v.Avoid, e)
	}
	for _, m := range rt.migOut {
		v.Migrations = append(v.Migrations, m.view())
	}
	for _, f := range rt.finished {
		v.Migrations = append(v.Migrations, f.m)
	}
	return v
}

// live reports whether the view shows node healthy and fresh.
func live(cs *snapshot.ClusterSnapshot, id NodeID) bool {
	v := cs.Node(id)
	return v != nil && v.Health == snapshot.Healthy && !v.Stale
}

// reconcileLocked places over the view and moves this node's daemons and
// replicas toward the assignment, every action through admit().
func (rt *Runtime) reconcileLocked(now time.Time) {
	if rt.cluster == nil {
		return
	}
	view := rt.viewLocked(now)
	rt.noteClaimsLocked(view, now)
	rt.yieldToBlindHoldersLocked(view, now)
	a := placement.PlaceWith(view, rt.cfg.Spec, nil, rt.placementOptionsLocked(now))
	rt.assign, rt.view = a, view

	for _, id := range a.DaemonIDs() {
		p := a.Daemons[id]
		if p.Node == rt.self {
			rt.reconcileHereLocked(p, view, now)
		} else {
			rt.reconcileElsewhereLocked(p, view, now)
		}
	}
	for id, s := range rt.daemons {
		if _, ok := a.Daemons[id]; !ok && rt.outboundFor(id) == nil {
			delete(rt.daemons, id)
			go s.stop(rt.tm.StopGrace)
			rt.logf(api.LevelInfo, id, "stopped: no longer in the spec")
		}
	}
	rt.reconcileChainsLocked(a, view, now)
}

// placementOptionsLocked is what this node feeds placement besides the
// view: the intent's evictions, and the nodes an invalidate-placement still
// holds fresh (expired holds are forgotten here).
func (rt *Runtime) placementOptionsLocked(now time.Time) placement.Options {
	opts := placement.OptionsFor(rt.intent)
	for id, until := range rt.freshUntil {
		if !now.Before(until) {
			delete(rt.freshUntil, id)
			continue
		}
		if opts.Fresh == nil {
			opts.Fresh = map[NodeID]bool{}
		}
		opts.Fresh[id] = true
	}
	return opts
}

// reconcileHereLocked handles a daemon placed on this node: keep its
// lineage current if it runs here, else start it once no other copy is
// handing it over (from its checkpoint, its fork point, or fresh).
func (rt *Runtime) reconcileHereLocked(p DaemonPlacement, view *snapshot.ClusterSnapshot, now time.Time) {
	id := p.ID
	s := rt.daemons[id]
	if s != nil {
		l := rt.lineageLocked(p, view)
		if l.Kind == snapshot.GroupStandby && s.lineageNow().Active != l.Active && rt.outboundFor(id) == nil {
			rt.switchStandbyRoleLocked(s, l)
		} else {
			s.setLineage(l)
		}
		return
	}
	if rt.inboundFor(id) != nil {
		rt.notePendingLocked(action{kind: actPlace, target: id}, now, "")
		return
	}
	if holder := otherLiveHolder(view, id, rt.self); holder != 0 {
		rt.notePendingLocked(action{kind: actPlace, target: id}, now, "waiting for "+holder.String()+" to hand it over")
		return
	}
	state := rt.checkpointLocked(p)
	var fork forkStart
	if p.Lineage.Kind == snapshot.GroupFork && state == nil {
		fs, ready, why := rt.forkStartLocked(p, now)
		if !ready {
			rt.notePendingLocked(action{kind: actPlace, target: id}, now, why)
			return
		}
		fork, state = fs, fs.state
	}
	if rt.admitLocked(action{kind: actPlace, target: id}, now) != "" {
		return
	}
	p.Lineage = rt.lineageLocked(p, view)
	if !rt.startDaemonLocked(p, state) {
		rt.failLocked("placement", fmt.Sprintf("%s assigned here but no factory for kind %q", id, p.Kind))
		return
	}
	how := "fresh"
	switch {
	case fork.from != "":
		how = fmt.Sprintf("forked from %s at seq %d, sentinel %016x", fork.from, p.Lineage.ForkAt, fork.sentinel)
	case state != nil:
		how = "from its chain checkpoint"
	}
	rt.logf(api.LevelInfo, id, "placed here (%s)", how)
}

// reconcileElsewhereLocked handles a daemon placed on another node (or
// nowhere) that runs here: stop a duplicate, or migrate it to its node.
func (rt *Runtime) reconcileElsewhereLocked(p DaemonPlacement, view *snapshot.ClusterSnapshot, now time.Time) {
	id := p.ID
	s := rt.daemons[id]
	if s == nil {
		return
	}
	if rt.outboundFor(id) != nil {
		rt.notePendingLocked(action{kind: actMigrate, target: id}, now, "")
		return
	}
	if p.HandOver != 0 && p.HandOver != rt.self {
		// Another copy runs too (a fresh start raced a partition) and
		// none is where placement wants it: the agreed copy hands it
		// over, this one goes, if that copy is one this node believes in
		// (attribution.go).
		if !rt.mayYieldLocked(s, p.HandOver) {
			rt.disputeLocked(id, s, p.HandOver, now)
			return
		}
		why := fmt.Sprintf("%v hands it over to %v", p.HandOver, p.Node)
		if p.Node == 0 {
			why = fmt.Sprintf("%v keeps it (no eligible node)", p.HandOver)
		}
		rt.stopDuplicateLocked(id, s, now, why)
		return
	}
	if p.Node == 0 {
		rt.notePendingLocked(action{kind: actMigrate, target: id}, now, "no eligible node")
		return
	}
	if runsOn(view, id, p.Node) {
		// Another node runs it too (a fresh start raced a partition):
		// placement chose that copy, so this one goes, unless the choice
		// rests on a claim this node has no reason to believe: placement
		// counts a claimed copy as a running location, so a member that
		// says it runs the daemon could otherwise stop the real one.
		if !rt.mayYieldLocked(s, p.Node) {
			rt.disputeLocked(id, s, p.Node, now)
			return
		}
		rt.stopDuplicateLocked(id, s, now, fmt.Sprintf("%v runs it", p.Node))
		return
	}
	if !live(view, p.Node) {
		return
	}
	if claims(view.Node(p.Node), id) && !rt.mayYieldLocked(s, p.Node) {
		// Placement chose that node because it claims the daemon itself:
		// moving the state there on the strength of that claim would hand
		// the daemon to whoever says they have it (attribution.go).
		rt.disputeLocked(id, s, p.Node, now)
		return
	}
	if rt.admitLocked(action{kind: actMigrate, target: id, force: rt.forceDrainLocked()}, now) == "" {
		rt.startMigrationLocked(s, p)
	}
}

// reconcileChainsLocked takes up the replicas assigned here and drops the
// others once their new holders have caught up.
func (rt *Runtime) reconcileChainsLocked(a *Assignment, view *snapshot.ClusterSnapshot, now time.Time) {
	want := a.ChainsOn(rt.self)
	for _, name := range want {
		if rt.replicas[name] != nil {
			continue
		}
		if rt.admitLocked(action{kind: actReplicate, target: name}, now) != "" {
			continue
		}
		r := newReplica()
		r.name, r.forkAt = name, rt.forkSeqsFor(name)
		cp := a.Chains[name]
		if cp.Leader == rt.self && claimedLeader(view, name, rt.self).node == 0 && rt.quorumLocked() {
			// No one leads yet: a new chain starts here.
			r.role, r.term = snapshot.Leader, cp.Term
		}
		rt.replicas[name] = r
		rt.logf(api.LevelInfo, "", "holding a replica of %s (%s)", name, r.role)
	}
	for name, r := range rt.replicas {
		if slices.Contains(want, name) {
			continue
		}
		cp, ok := a.Chains[name]
		if ok && len(cp.Holders) == 0 {
			rt.notePendingLocked(action{kind: actDrop, target: name}, now, "no eligible holder to hand over to")
			continue
		}
		if ok && !caughtUp(view, cp, rt.self, r.term, r.seq) {
			rt.notePendingLocked(action{kind: actDrop, target: name}, now, "waiting for new holders to catch up")
			continue
		}
		if rt.admitLocked(action{kind: actDrop, target: name, force: rt.forceDrainLocked()}, now) == "" {
			delete(rt.replicas, name)
			rt.logf(api.LevelInfo, "", "dropped replica of %s (now on %v)", name, cp.Holders)
		}
	}
}

// stopDuplicateLocked stops this node's copy of a daemon that runs
// elsewhere too, once admit lets it (why names the copy that stays).
func (rt *Runtime) stopDuplicateLocked(id string, s *supervisor, now time.Time, why string) {
	if rt.admitLocked(action{kind: actStop, target: id}, now) != "" {
		return
	}
	delete(rt.daemons, id)
	go s.stop(rt.tm.StopGrace)
	rt.logf(api.LevelWarn, id, "stopped duplicate: %s", why)
}

func (rt *Runtime) forceDrainLocked() bool {
	ni := rt.intent.Nodes[rt.self]
	return ni.ForceDrain && ni.Maintenance == MaintIntentEnter
}

// lineageLocked is p's lineage with live standby/sync facts filled in.
func (rt *Runtime) lineageLocked(p DaemonPlacement, view *snapshot.ClusterSnapshot) snapshot.Lineage {
	l := p.Lineage
	if l.Kind == snapshot.GroupFork {
		// The sentinel travels with the daemon (migrations carry it); a
		// member started here has it from its fork point.
		if s := rt.daemons[p.ID]; s != nil && s.lineageNow().ForkSentinel != 0 {
			l.ForkSentinel = s.lineageNow().ForkSentinel
		} else if fs, ok := rt.forkStates[p.ID]; ok {
			l.ForkSentinel = fs.sentinel
		}
		return l
	}
	if l.Kind == snapshot.GroupStandby && !l.Active {
		// A warm standby is synced through the copy it holds.
		if s := rt.daemons[p.ID]; s != nil {
			l.Synced = s.warm().seq
		}
		return l
	}
	if l.Kind == snapshot.GroupStandby {
		chain := ChainName(p.Group)
		l.Synced = claimedLeader(view, chain, 0).seq
		if r := rt.replicas[chain]; r != nil {
			l.Synced = max(l.Synced, r.seq)
		}
	}
	return l
}

// otherLiveHolder returns a live node other than self whose snapshot shows
// the daemon (it will migrate it here), or 0.
func otherLiveHolder(cs *snapshot.ClusterSnapshot, id string, self NodeID) NodeID {
	for i := range cs.Nodes {
		v := &cs.Nodes[i]
		if v.ID == self || v.Health != snapshot.Healthy || v.Stale {
			continue
		}
		for _, d := range v.Daemons {
			if d.ID == id && d.Lifecycle != snapshot.LifecycleStopped {
				return v.ID
			}
		}
	}
	return 0
}

// runsOn reports whether node's snapshot shows the daemon running.
func runsOn(cs *snapshot.ClusterSnapshot, id string, node NodeID) bool {
	v := cs.Node(node)
	if v == nil {
		return false
	}
	for _, d := range v.Daemons {
		if d.ID == id && d.Lifecycle == snapshot.LifecycleRunning {
			return true
		}
	}
	return false
}

// caughtUp reports whether dropping self's copy of the chain loses nothing
// the assigned holders do not have. The yardstick is the chain's winning
// leader claim among live nodes (self included), not self's own seq alone:
//   - self leads (or nobody does): every other assigned holder must have
//     self's seq;
//   - another node leads in self's term or a newer one: self's entries up
//     to the leader's seq are the leader's too, so every other assigned
//     holder needs min(self's seq, the leader's seq) and the leader's term;
//     whatever self has beyond that diverged under a claim that lost.
//
// A holder that can never reach self's seq (a leader behind self, which
// never syncs) therefore no longer holds a drop forever.
func caughtUp(cs *snapshot.ClusterSnapshot, cp ChainPlacement, self NodeID, term, seq uint64) bool {
	best := claimedLeader(cs, cp.Name, 0)
	need, needTerm := seq, uint64(0)
	if best.node != 0 && best.node != self {
		if best.term >= term {
			need = min(seq, best.seq)
		}
		needTerm = best.term
	}
	for _, h := range cp.Holders {
		if h == self {
			continue
		}
		v := cs.Node(h)
		if v == nil {
			return false
		}
		i := slices.IndexFunc(v.Replicas, func(r snapshot.Replica) bool { return r.Chain == cp.Name })
		if i < 0 {
			return false
		}
		r := v.Replicas[i]
		if r.Seq < need || r.Term < needTerm {
			return false
		}
	}
	return true
}
