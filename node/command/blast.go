package command

import (
	"cmp"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/placement"
	"github.com/deck-mesh/deck/node/snapshot"
)

// blastHashPrefix separates blast-radius hashes from every other hash.
const blastHashPrefix = "deck-blast-v1:"

// Preview projects the blast radius of a over cs and spec: it runs MeshOS's
// own placement (placement.PlaceWith) on cs as it is and on a copy with the
// action applied, and diffs the two. cs is never modified.
func Preview(cs *snapshot.ClusterSnapshot, spec placement.Spec, a api.Action) (api.BlastRadius, error) {
	return PreviewWith(cs, spec, nil, a)
}

// PreviewWith is Preview on cs with the admin state's current intent
// overlaid first (cordons and maintenance already committed but not yet
// reported by the nodes), the way MeshOS sees the cluster. st may be nil.
func PreviewWith(cs *snapshot.ClusterSnapshot, spec placement.Spec, st *AdminState, a api.Action) (api.BlastRadius, error) {
	a = normalizeAction(a)
	if a.Verb.IsBlob() {
		if err := validateBlobAction(&a); err != nil {
			return api.BlastRadius{}, err
		}
		if cs == nil {
			return api.BlastRadius{}, fmt.Errorf("command: no cluster snapshot yet: %w", api.ErrNotConnected)
		}
		if st != nil {
			cs = placement.ApplyIntent(cs, st.Intent())
		}
		return previewBlob(cs, a)
	}
	if err := ValidateAction(&a); err != nil {
		return api.BlastRadius{}, err
	}
	if cs == nil {
		return api.BlastRadius{}, fmt.Errorf("command: no cluster snapshot yet: %w", api.ErrNotConnected)
	}
	p := &projection{a: a, spec: spec}
	p.base = cs
	p.opts = placement.Options{}
	if st != nil {
		in := st.Intent()
		p.base = placement.ApplyIntent(cs, in)
		p.opts = placement.OptionsFor(in)
		// The snapshot's freeze is filled from the same state; take the
		// state's word for it as of the snapshot's build time.
		p.base.Freeze = st.FreezeAt(cs.BuiltAt)
	}
	p.base, p.exiting = settleExits(p.base)
	p.current = placement.CurrentAssignment(p.base, p.spec)
	if err := p.lookup(); err != nil {
		return api.BlastRadius{}, err
	}
	return p.run(), nil
}

// settleExits returns cs with every node in ExitingMaintenance shown in
// Recovery, and the set of those nodes; cs itself is returned, untouched,
// when there are none. Exiting only waits for what the node still runs to
// be healthy (a tick or two for a drained, empty node), and from Recovery on
// the node takes placements again: the nodes place onto it moments after
// the preview, so a projection that left it out sent moves elsewhere that
// in truth went to the returning node.
func settleExits(cs *snapshot.ClusterSnapshot) (*snapshot.ClusterSnapshot, map[identity.NodeID]bool) {
	var exiting map[identity.NodeID]bool
	var out *snapshot.ClusterSnapshot
	for i := range cs.Nodes {
		if cs.Nodes[i].Maintenance.State != snapshot.MaintExiting {
			continue
		}
		if out == nil {
			cp := *cs
			cp.Nodes = slices.Clone(cs.Nodes)
			out, exiting = &cp, map[identity.NodeID]bool{}
		}
		out.Nodes[i].Maintenance.State = snapshot.MaintRecovery
		exiting[cs.Nodes[i].ID] = true
	}
	if out == nil {
		return cs, nil
	}
	return out, exiting
}

// normalizeAction puts a in its canonical form: chains sorted and distinct,
// durations in whole milliseconds (the wire's unit).
func normalizeAction(a api.Action) api.Action {
	a = cloneAction(a)
	if len(a.Chains) > 0 {
		slices.Sort(a.Chains)
		a.Chains = slices.Compact(a.Chains)
	}
	a.Duration = a.Duration.Truncate(time.Millisecond)
	return a
}

// projection is one Preview run.
type projection struct {
	a    api.Action
	spec placement.Spec
	base *snapshot.ClusterSnapshot
	opts placement.Options
	// current is the placement the snapshot shows now, in MeshOS's terms
	// (its daemon ids and chains are the spec's).
	current *placement.Assignment

	// exiting are the nodes the snapshot (or the committed intent) shows
	// leaving maintenance, which base already shows in Recovery.
	exiting map[identity.NodeID]bool

	after     *snapshot.ClusterSnapshot
	afterOpts placement.Options
	restarted []string
	warnings  []string
	targets   []identity.NodeID
}

func (p *projection) warn(format string, args ...any) {
	if len(p.warnings) < MaxBlastWarnings {
		p.warnings = append(p.warnings, fmt.Sprintf(format, args...))
	}
}

// chainExists: the spec declares it, or the snapshot shows it.
func (p *projection) chainExists(name string) bool {
	if _, ok := p.current.Chains[name]; ok {
		return true
	}
	for _, c := range p.base.Chains {
		if c.Name == name {
			return true
		}
	}
	for i := range p.base.Nodes {
		for _, r := range p.base.Nodes[i].Replicas {
			if r.Chain == name {
				return true
			}
		}
	}
	return false
}

// daemonExists: the spec declares it, or some node runs it.
func (p *projection) daemonExists(id string) bool {
	if _, ok := p.current.Daemons[id]; ok {
		return true
	}
	for i := range p.base.Nodes {
		for _, d := range p.base.Nodes[i].Daemons {
			if d.ID == id {
				return true
			}
		}
	}
	return false
}

func holds(v *snapshot.NodeView, chain string) bool {
	for _, r := range v.Replicas {
		if r.Chain == chain {
			return true
		}
	}
	return false
}

// lookup resolves every target of the action; anything unknown is
// ErrNotFound, before any projection work.
func (p *projection) lookup() error {
	a := &p.a
	cs := p.base
	node := func(id identity.NodeID, role string) (*snapshot.NodeView, error) {
		v := cs.Node(id)
		if v == nil {
			return nil, reject(ErrNotFound, "%s %s is not in the cluster", role, id)
		}
		return v, nil
	}
	chain := func(name string) error {
		if !p.chainExists(name) {
			return reject(ErrNotFound, "chain %q", name)
		}
		return nil
	}
	switch a.Verb {
	case api.VerbDrain, api.VerbEnterMaintenance, api.VerbExitMaintenance, api.VerbCordon, api.VerbUncordon,
		api.VerbInvalidatePlacement, api.VerbRestartAllDaemons, api.VerbClearAvoidList, api.VerbForceDrain:
		if _, err := node(a.Node, "node"); err != nil {
			return err
		}
		p.targets = append(p.targets, a.Node)
	case api.VerbDropReplicas:
		if _, err := node(a.Node, "node"); err != nil {
			return err
		}
		for _, c := range a.Chains {
			if err := chain(c); err != nil {
				return err
			}
		}
		p.targets = append(p.targets, a.Node)
	case api.VerbRestartDaemon, api.VerbForceRestartDaemon:
		if !p.daemonExists(a.Daemon) {
			return reject(ErrNotFound, "daemon %q", a.Daemon)
		}
	case api.VerbForceEvictReplica, api.VerbForceCutover:
		if err := chain(a.Chain); err != nil {
			return err
		}
		v, err := node(a.Peer, "node")
		if err != nil {
			return err
		}
		if !holds(v, a.Chain) {
			return reject(ErrNotFound, "node %s holds no replica of chain %q", a.Peer, a.Chain)
		}
		p.targets = append(p.targets, a.Peer)
	case api.VerbAdmitNode, api.VerbRevokeNode:
		p.targets = append(p.targets, a.Node)
	case api.VerbKillMigration:
		found := false
		for i := range cs.Nodes {
			for _, m := range cs.Nodes[i].Migrations {
				if m.ID == a.Migration && m.Phase < snapshot.PhaseComplete {
					found = true
				}
			}
		}
		if !found {
			return reject(ErrNotFound, "migration %q in progress", a.Migration)
		}
	}
	return nil
}

// mutable returns the after-copy's view of id, ready to modify (the copy's
// node slice is its own; inner slices are cloned by whoever changes them).
func (p *projection) mutable(id identity.NodeID) *snapshot.NodeView {
	for i := range p.after.Nodes {
		if p.after.Nodes[i].ID == id {
			return &p.after.Nodes[i]
		}
	}
	return nil
}

func (p *projection) exclude(chain string, node identity.NodeID) {
	if p.afterOpts.Exclude[chain] == nil {
		p.afterOpts.Exclude[chain] = map[identity.NodeID]bool{}
	}
	p.afterOpts.Exclude[chain][node] = true
}

func inPool(v *snapshot.NodeView) bool {
	st := v.Maintenance.State
	return v.Health == snapshot.Healthy && !v.Stale && (st == snapshot.MaintActive || st == snapshot.MaintRecovery)
}

func draining(v *snapshot.NodeView) bool {
	switch v.Maintenance.State {
	case snapshot.MaintEntering, snapshot.MaintMaintenance, snapshot.MaintDrainFailed:
		return true
	}
	return false
}

// applyAction makes the after-copy: the snapshot and placement options as
// they will be once MeshOS obeys the action.
func (p *projection) applyAction(current *placement.Assignment) {
	p.copyBase()
	a := &p.a
	switch a.Verb {
	case api.VerbCordon:
		p.mutable(a.Node).Cordoned = true
	case api.VerbUncordon:
		p.mutable(a.Node).Cordoned = false
	case api.VerbDrain, api.VerbEnterMaintenance, api.VerbForceDrain:
		p.projectDrain()
	case api.VerbExitMaintenance:
		p.projectExit()
	case api.VerbDropReplicas:
		p.projectDropReplicas()
	case api.VerbInvalidatePlacement:
		p.afterOpts.Fresh[a.Node] = true
	case api.VerbClearAvoidList:
		p.mutable(a.Node).Avoid = nil
	case api.VerbFlushAvoidLists:
		for i := range p.after.Nodes {
			p.after.Nodes[i].Avoid = nil
		}
	case api.VerbRestartAllDaemons:
		for _, d := range p.base.Node(a.Node).Daemons {
			if d.Lifecycle != snapshot.LifecycleStopped {
				p.restarted = append(p.restarted, d.ID)
			}
		}
	case api.VerbRestartDaemon, api.VerbForceRestartDaemon:
		p.projectRestart(current)
	case api.VerbForceEvictReplica:
		p.exclude(a.Chain, a.Peer)
	case api.VerbForceCutover:
		p.projectCutover()
	case api.VerbKillMigration:
		for i := range p.after.Nodes {
			v := &p.after.Nodes[i]
			if !slices.ContainsFunc(v.Migrations, func(m snapshot.Migration) bool { return m.ID == a.Migration }) {
				continue
			}
			v.Migrations = slices.DeleteFunc(slices.Clone(v.Migrations), func(m snapshot.Migration) bool { return m.ID == a.Migration })
		}
	case api.VerbFreezeCluster:
		p.warn("nothing moves for %v: placement, migrations and restarts pause until thaw", a.Duration)
	case api.VerbAddOperator, api.VerbRemoveOperator, api.VerbRotateOperator:
		p.warn("registry change: no placement effect")
	case api.VerbAdmitNode:
		p.projectAdmit()
	case api.VerbRevokeNode:
		p.projectRevoke()
	}
}

// projectAdmit: admit-node lets a pending node in. It joins placement once
// it publishes its snapshot (capabilities, capacity), which the projection
// cannot know yet, so nothing moves now.
func (p *projection) projectAdmit() {
	a := &p.a
	if p.base.Node(a.Node) != nil {
		p.warn("node %s is already a member: this renews its admission", a.Node)
	}
	pending := false
	for _, pn := range p.base.PendingNodes {
		if pn.ID == a.Node {
			pending = true
			if !ed25519.PublicKey(pn.Key).Equal(ed25519.PublicKey(a.OperatorKey)) {
				p.warn("the pending node %s presents another key than the one admitted", a.Node)
			}
		}
	}
	if !pending && p.base.Node(a.Node) == nil {
		p.warn("node %s is not pending anywhere: the admission waits for it to connect", a.Node)
	}
	p.warn("admits %s (key %x…) as a node: it may hold chains and daemons, lead and relay", a.Node, a.OperatorKey[:6])
}

// projectRevoke: revoke-node cuts the node off everywhere; what it ran and
// held is placed as if it had left the cluster.
func (p *projection) projectRevoke() {
	a := &p.a
	if p.base.Node(a.Node) == nil {
		p.warn("node %s is not in the cluster view: the revocation stands for when it returns", a.Node)
	}
	p.after.Nodes = slices.DeleteFunc(p.after.Nodes, func(v snapshot.NodeView) bool { return v.ID == a.Node })
	p.warn("revokes %s for good: its sessions close, its snapshots and events are ignored, and only a new key can be admitted again", a.Node)
}

// copyBase starts the after-copy as the base snapshot and options.
func (p *projection) copyBase() {
	after := *p.base
	after.Nodes = slices.Clone(p.base.Nodes)
	p.after = &after
	p.afterOpts = placement.Options{Fresh: map[identity.NodeID]bool{}, Exclude: map[string]map[identity.NodeID]bool{}}
	for k, v := range p.opts.Fresh {
		p.afterOpts.Fresh[k] = v
	}
	for c, m := range p.opts.Exclude {
		for n, v := range m {
			if v {
				p.exclude(c, n)
			}
		}
	}
}

// projectDrain: drain, enter-maintenance and force-drain start a drain.
func (p *projection) projectDrain() {
	a := &p.a
	v := p.mutable(a.Node)
	if draining(v) {
		p.warn("node %s is already draining (%s)", a.Node, v.Maintenance.State)
	}
	switch v.Maintenance.State {
	case snapshot.MaintActive, snapshot.MaintRecovery, snapshot.MaintExiting:
		v.Maintenance.State = snapshot.MaintEntering
	}
}

// projectExit: exit-maintenance.
func (p *projection) projectExit() {
	a := &p.a
	v := p.mutable(a.Node)
	if p.exiting[a.Node] {
		return // already on its way out: base shows where it ends up
	}
	switch v.Maintenance.State {
	case snapshot.MaintEntering, snapshot.MaintMaintenance, snapshot.MaintDrainFailed, snapshot.MaintExiting:
		// Exit passes through Exiting to Recovery, where the node is
		// back in the placement pool: project where it ends up.
		v.Maintenance.State = snapshot.MaintRecovery
	default:
		p.warn("node %s is not in maintenance (%s)", a.Node, v.Maintenance.State)
	}
}

// projectDropReplicas keeps the node off the named chains (all it holds
// when none are named).
func (p *projection) projectDropReplicas() {
	a := &p.a
	v := p.mutable(a.Node)
	chains := a.Chains
	if len(chains) == 0 {
		for _, r := range v.Replicas {
			chains = append(chains, r.Chain)
		}
	}
	for _, c := range chains {
		if !holds(v, c) {
			p.warn("node %s holds no replica of chain %q", a.Node, c)
		}
		p.exclude(c, a.Node)
	}
}

// projectRestart: restart-daemon and force-restart-daemon.
func (p *projection) projectRestart(current *placement.Assignment) {
	a := &p.a
	p.restarted = append(p.restarted, a.Daemon)
	if a.Verb == api.VerbRestartDaemon {
		for i := range p.base.Nodes {
			for _, d := range p.base.Nodes[i].Daemons {
				if d.ID == a.Daemon && d.Restart == snapshot.RestartCrashLooping {
					p.warn("daemon %q is crash-looping: the restart waits for its backoff (ICE force-restart-daemon does not)", a.Daemon)
				}
			}
		}
	}
	if current.NodeOf(a.Daemon) == 0 {
		p.warn("daemon %q is not running anywhere", a.Daemon)
	}
}

// projectCutover makes the target the chain's leader under a new term.
func (p *projection) projectCutover() {
	a := &p.a
	var maxTerm uint64
	for i := range p.after.Nodes {
		for _, r := range p.after.Nodes[i].Replicas {
			if r.Chain == a.Chain {
				maxTerm = max(maxTerm, r.Term)
			}
		}
	}
	for i := range p.after.Nodes {
		v := &p.after.Nodes[i]
		if !holds(v, a.Chain) {
			continue
		}
		v.Replicas = slices.Clone(v.Replicas)
		for j := range v.Replicas {
			r := &v.Replicas[j]
			if r.Chain != a.Chain {
				continue
			}
			if v.ID == a.Peer {
				r.Role, r.Term = snapshot.Leader, maxTerm+1
			} else {
				r.Role = snapshot.Follower
			}
		}
	}
	if v := p.base.Node(a.Peer); v != nil && !inPool(v) {
		p.warn("cutover target %s is %s / %s", a.Peer, v.Health, v.Maintenance.State)
	}
}

// run projects and diffs.
func (p *projection) run() api.BlastRadius {
	a := &p.a
	current := p.current
	p.applyAction(current)
	frozen := p.base.Freeze.Active
	if frozen && a.Verb != api.VerbFreezeCluster && a.Verb != api.VerbThawCluster {
		p.warn("cluster is frozen (%s): nothing moves until thaw", p.base.Freeze.Reason)
		if k, _ := KindOf(a.Verb); k == KindAdmin {
			p.warn("routine commands are rejected while the cluster is frozen")
		}
	}

	var before, after *placement.Assignment
	switch {
	case a.Verb == api.VerbFreezeCluster:
		before = placement.PlaceWith(p.base, p.spec, nil, p.opts)
		after = before
	case a.Verb == api.VerbThawCluster && frozen:
		// Frozen, nothing moves: "before" is the cluster as it stands.
		before = current
		after = placement.PlaceWith(p.after, p.spec, nil, p.afterOpts)
	case a.Verb == api.VerbThawCluster:
		p.warn("cluster is not frozen")
		before = placement.PlaceWith(p.base, p.spec, nil, p.opts)
		after = before
	default:
		before = placement.PlaceWith(p.base, p.spec, nil, p.opts)
		after = placement.PlaceWith(p.after, p.spec, nil, p.afterOpts)
	}
	d := placement.Diff(before, after)

	br := api.BlastRadius{Action: p.a, SnapshotGen: p.base.Generation}
	nodes := map[identity.NodeID]bool{}
	for _, id := range d.Nodes() {
		nodes[id] = true
	}
	for _, id := range p.targets {
		nodes[id] = true
	}
	for _, c := range d.Replicas {
		br.Replicas = append(br.Replicas, api.ReplicaMove{Chain: c.Chain, From: c.From, To: c.To})
		if c.From != 0 && c.To == 0 {
			p.warn("chain %q: no node can take the replica leaving %s", c.Chain, c.From)
		}
	}
	daemons := map[string]bool{}
	for _, c := range d.Daemons {
		br.Migrated = append(br.Migrated, api.DaemonMove{Daemon: c.Daemon, From: c.From, To: c.To})
		daemons[c.Daemon] = true
		if c.From != 0 && c.To == 0 {
			p.warn("daemon %q has no eligible node", c.Daemon)
		}
	}
	for _, c := range d.Leaders {
		br.Leaders = append(br.Leaders, api.LeaderMove{Chain: c.Chain, From: c.From, To: c.To})
	}
	slices.Sort(p.restarted)
	p.restarted = slices.Compact(p.restarted)
	br.Restarted = p.restarted
	for _, id := range p.restarted {
		daemons[id] = true
		if n := current.NodeOf(id); n != 0 {
			nodes[n] = true
		}
	}
	br.Daemons = sortedSet(daemons)
	br.Nodes = sortedIDs(nodes)

	satBefore := placement.ProjectedSaturation(p.base, p.spec, before)
	satAfter := placement.ProjectedSaturation(p.after, p.spec, after)
	var sum float64
	pool := 0
	for i := range p.after.Nodes {
		v := &p.after.Nodes[i]
		if !inPool(v) {
			continue
		}
		s := satAfter[v.ID]
		sum += s
		pool++
		if s >= api.HotSaturation && (satBefore[v.ID] < api.HotSaturation || s > satBefore[v.ID]+1e-9) {
			br.HotNodes = append(br.HotNodes, api.HotNode{Node: v.ID, Projected: s})
		}
	}
	slices.SortFunc(br.HotNodes, func(x, y api.HotNode) int { return cmp.Compare(x.Node, y.Node) })
	if pool > 0 && sum/float64(pool) >= OverloadedMeanSaturation {
		p.warn("cluster overloaded: mean projected saturation at or above %.0f%%", OverloadedMeanSaturation*100)
	}
	if pool == 0 && len(p.base.Nodes) > 0 {
		p.warn("no node is left in the placement pool")
	}

	p.chainWarnings(current, before, after)
	p.blobMoves(&br)

	br.StabilityBefore = stability(current, before)
	br.StabilityAfter = stability(current, after)
	br.DrainTime = drainTime(br)
	br.Warnings = p.warnings
	br.Hash = HashBlastRadius(&br)
	return br
}

// blobMoves counts the blob replicas and bytes leaving the datafort nodes
// the action takes out of placement (a drain, maintenance, a revoke): a
// node that may no longer keep blobs hands every replica it holds to
// another (node/blob's policy, placement.PlaceBlob), so its whole store
// moves. It warns when the datafort nodes left cannot take that much.
func (p *projection) blobMoves(br *api.BlastRadius) {
	leaving := map[identity.NodeID]bool{}
	var free uint64
	for i := range p.base.Nodes {
		v := &p.base.Nodes[i]
		if !v.Datafort.Enabled {
			continue
		}
		after := p.after.Node(v.ID)
		if inPool(v) && (after == nil || !inPool(after)) {
			leaving[v.ID] = true
			br.BlobReplicas += int(v.Datafort.Blobs)
			br.BlobBytes += v.Datafort.Used
		}
	}
	if br.BlobBytes == 0 {
		return
	}
	for i := range p.after.Nodes {
		v := &p.after.Nodes[i]
		if v.Datafort.Enabled && !leaving[v.ID] && inPool(v) && !v.Cordoned && v.Datafort.Capacity > v.Datafort.Used {
			free += v.Datafort.Capacity - v.Datafort.Used
		}
	}
	if free < br.BlobBytes {
		p.warn("blob replicas: %d bytes must move and the datafort nodes left have room for %d", br.BlobBytes, free)
	}
}

// chainWarnings flags chains the action leaves without a healthy holder or
// without a majority of their desired holders. Replicas being added need time
// to sync, so only holders that hold the chain now and keep it count.
func (p *projection) chainWarnings(current, before, after *placement.Assignment) {
	healthy := func(id identity.NodeID) bool {
		v := p.base.Node(id)
		return v != nil && v.Health == snapshot.Healthy && !v.Stale
	}
	staying := func(name string, to *placement.Assignment) []identity.NodeID {
		var out []identity.NodeID
		for _, h := range current.Chains[name].Holders {
			if healthy(h) && slices.Contains(to.Chains[name].Holders, h) {
				out = append(out, h)
			}
		}
		return out
	}
	names := make([]string, 0, len(current.Chains))
	for name := range current.Chains {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		cur := current.Chains[name]
		var healthyNow []identity.NodeID
		for _, h := range cur.Holders {
			if healthy(h) {
				healthyNow = append(healthyNow, h)
			}
		}
		stayBefore, stayAfter := staying(name, before), staying(name, after)
		if len(healthyNow) > 0 && len(stayAfter) == 0 && len(stayBefore) > 0 {
			p.warn("chain %q: the action removes its last healthy holder (%s)", name, joinIDs(healthyNow))
		}
		majority := cur.Desired/2 + 1
		if cur.Desired > 0 && len(stayAfter) < majority && len(stayAfter) < len(stayBefore) {
			p.warn("chain %q loses quorum: %d of %d desired holders stay", name, len(stayAfter), cur.Desired)
		}
	}
}

// stability is placement.Diff(from, to).Stability() without building the
// diff's lists: the fraction of daemon placements and chain-holder slots that
// stay put (1 when there is nothing to place). Preview needs it twice per
// call, and the full diff dominated a 1,000-daemon projection.
func stability(from, to *placement.Assignment) float64 {
	unchanged, total := 0, 0
	for id, p := range from.Daemons {
		total++
		if to.NodeOf(id) == p.Node {
			unchanged++
		}
	}
	for id := range to.Daemons {
		if _, ok := from.Daemons[id]; !ok {
			total++
			if to.Daemons[id].Node == 0 {
				unchanged++
			}
		}
	}
	count := func(fc, tc placement.ChainPlacement) {
		kept := 0
		for _, h := range fc.Holders {
			if slices.Contains(tc.Holders, h) {
				kept++
			}
		}
		unchanged += kept
		total += kept + max(len(fc.Holders)-kept, len(tc.Holders)-kept)
	}
	for name, fc := range from.Chains {
		count(fc, to.Chains[name])
	}
	for name, tc := range to.Chains {
		if _, ok := from.Chains[name]; !ok {
			count(placement.ChainPlacement{}, tc)
		}
	}
	if total == 0 {
		return 1
	}
	return float64(unchanged) / float64(total)
}

// drainTime estimates how long the moves take: each move costs its named
// per-move time, DrainParallelism moves run at once.
func drainTime(br api.BlastRadius) time.Duration {
	var total time.Duration
	for _, m := range br.Migrated {
		if m.From != 0 && m.To != 0 {
			total += DaemonMigrationTime
		} else if m.To != 0 {
			total += DaemonRestartTime
		}
	}
	for _, r := range br.Replicas {
		if r.To != 0 {
			total += ReplicaMoveTime
		}
	}
	total += time.Duration(len(br.Restarted)) * DaemonRestartTime
	total = (total + DrainParallelism - 1) / DrainParallelism
	// Blob bytes stream beside the moves, at their own pace.
	return max(total, time.Duration(br.BlobBytes*uint64(time.Second)/BlobMoveBytesPerSecond))
}

// HashBlastRadius is BLAKE2b-256 over a canonical encoding of the radius's
// structural content: the action, the nodes, every move, restart and leader
// change, which nodes run hot, the drain time and the warnings. Projected
// saturations and stability fractions are left out: they are floating-point
// gauges that jitter between nodes, and a co-signer on another node must be
// able to reproduce the hash from the same cluster state.
func HashBlastRadius(br *api.BlastRadius) [32]byte {
	h := newMovesHasher(blastHashPrefix, br)
	h.nodes(br.Nodes)
	h.replicas(br.Replicas)
	h.strs(br.Daemons)
	h.strs(br.Restarted)
	h.migrations(br.Migrated)
	h.leaders(br.Leaders)
	h.u32(len(br.HotNodes))
	for _, n := range br.HotNodes {
		h.id(n.Node)
	}
	h.p = binary.BigEndian.AppendUint64(h.p, uint64(br.DrainTime/time.Millisecond))
	h.strs(br.Warnings)
	if br.BlobReplicas != 0 || br.BlobBytes != 0 {
		// Only when blobs move, so every radius without them hashes as
		// it did before datafort nodes existed.
		h.p = append(h.p, "blobs"...)
		h.p = binary.BigEndian.AppendUint64(h.p, uint64(br.BlobReplicas))
		h.p = binary.BigEndian.AppendUint64(h.p, br.BlobBytes)
	}
	return blake2b.Sum256(h.p)
}

// movesHasher writes the canonical encoding the blast-radius hashes share:
// a domain prefix, the action, then u32-counted lists of u64 ids and
// u32-prefixed strings.
type movesHasher struct{ p []byte }

func newMovesHasher(prefix string, br *api.BlastRadius) *movesHasher {
	h := &movesHasher{p: make([]byte, 0, 512)}
	h.p = append(h.p, prefix...)
	h.p = appendAction(h.p, &br.Action)
	return h
}

func (h *movesHasher) u32(n int)            { h.p = binary.BigEndian.AppendUint32(h.p, uint32(n)) }
func (h *movesHasher) id(n identity.NodeID) { h.p = binary.BigEndian.AppendUint64(h.p, uint64(n)) }
func (h *movesHasher) str(s string) {
	h.u32(len(s))
	h.p = append(h.p, s...)
}

func (h *movesHasher) nodes(ns []identity.NodeID) {
	h.u32(len(ns))
	for _, n := range ns {
		h.id(n)
	}
}

func (h *movesHasher) strs(ss []string) {
	h.u32(len(ss))
	for _, s := range ss {
		h.str(s)
	}
}

func (h *movesHasher) replicas(rs []api.ReplicaMove) {
	h.u32(len(rs))
	for _, r := range rs {
		h.str(r.Chain)
		h.id(r.From)
		h.id(r.To)
	}
}

func (h *movesHasher) migrations(ms []api.DaemonMove) {
	h.u32(len(ms))
	for _, m := range ms {
		h.str(m.Daemon)
		h.id(m.From)
		h.id(m.To)
	}
}

func (h *movesHasher) leaders(ls []api.LeaderMove) {
	h.u32(len(ls))
	for _, l := range ls {
		h.str(l.Chain)
		h.id(l.From)
		h.id(l.To)
	}
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func sortedIDs(m map[identity.NodeID]bool) []identity.NodeID {
	out := make([]identity.NodeID, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func joinIDs(ids []identity.NodeID) string {
	s := ""
	for i, id := range ids {
		if i > 0 {
			s += ", "
		}
		s += id.String()
	}
	return s
}
