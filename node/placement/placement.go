package placement

import (
	"cmp"
	"math"
	"slices"
	"strconv"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

// NodeID is the mesh node id.
type NodeID = identity.NodeID

// DaemonID is the stable id of member index of group ("inference-2"). It
// never changes when the daemon migrates, so logs, the chain and the UI
// follow the daemon, not the machine.
func DaemonID(group string, index int) string { return group + "-" + strconv.Itoa(index) }

// ChainName is the name of a group's chain of state. A group has at most one
// chain, so the group's name is the least surprising name for operators
// typing `deck ice force-cutover <chain>`.
func ChainName(group string) string { return group }

// DaemonPlacement is where one daemon should run.
type DaemonPlacement struct {
	ID      string
	Group   string
	Index   int
	Kind    string // the Factory key
	Lineage snapshot.Lineage
	Node    NodeID // 0: no eligible node
	// HandOver is, when Node holds no copy yet, the one existing copy on a
	// live node that moves there (or stays, if Node is 0); every other copy
	// is a duplicate and stops. Without one agreed copy, duplicates that
	// all wait to migrate (held by backpressure, say) would run on forever.
	// 0 when no live node holds a copy, or Node already holds one.
	HandOver NodeID
}

// ChainPlacement is who should hold one chain and who leads it.
type ChainPlacement struct {
	Name    string
	Group   string
	Desired int
	Holders []NodeID // sorted by id
	Leader  NodeID   // 0 when there are no holders
	// Term is the leadership term the leader holds (or will claim: a new
	// leader claims the highest term seen plus one, which fences the old).
	Term uint64
}

// GroupPlacement is a group's cluster-wide decision: its members and, for a
// standby group, which member is active under which term.
type GroupPlacement struct {
	Name    string
	Kind    snapshot.GroupKind
	Members []string // daemon ids, by index
	Chain   string   // "" when the group has no chain
	Active  string   // standby groups: the active member
	Term    uint64   // standby groups: the promotion fencing term
}

// Assignment is the deterministic output of Place: the same snapshot and
// spec give the same Assignment on every node.
type Assignment struct {
	Daemons map[string]DaemonPlacement
	Chains  map[string]ChainPlacement
	Groups  map[string]GroupPlacement
	// Unplaced lists daemons with no eligible node, sorted.
	Unplaced []string
	// order is the daemon ids in spec order (groups, then index).
	order []string
}

// DaemonIDs returns every daemon id in spec order.
func (a *Assignment) DaemonIDs() []string { return slices.Clone(a.order) }

// NodeOf returns where daemon id should run (0: unplaced or unknown).
func (a *Assignment) NodeOf(id string) NodeID {
	if a == nil {
		return 0
	}
	return a.Daemons[id].Node
}

// DaemonsOn lists the daemons assigned to node, in spec order.
func (a *Assignment) DaemonsOn(node NodeID) []string {
	var out []string
	for _, id := range a.order {
		if a.Daemons[id].Node == node {
			out = append(out, id)
		}
	}
	return out
}

// ChainsOn lists the chains node should hold, sorted by name.
func (a *Assignment) ChainsOn(node NodeID) []string {
	var out []string
	for name, c := range a.Chains {
		if slices.Contains(c.Holders, node) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Options tune one placement run. The zero value is the normal run.
type Options struct {
	// Fresh nodes lose stickiness: their daemons and replicas are placed as
	// if new (invalidate-placement). They may land on the same node again.
	Fresh map[NodeID]bool
	// Exclude keeps nodes off a chain (force-evict-replica).
	Exclude map[string]map[NodeID]bool
}

// Place computes the assignment for spec over cs. It is pure and
// deterministic: it reads only its arguments and iterates in sorted order.
// prev (may be nil) is a weak preference for daemons the snapshot does not
// show anywhere; the runtime passes nil so that its decisions depend on the
// snapshot alone and every node converges on the same answer.
func Place(cs *snapshot.ClusterSnapshot, spec Spec, prev *Assignment) *Assignment {
	return PlaceWith(cs, spec, prev, Options{})
}

// nodeState is one candidate node during placement.
type nodeState struct {
	id        NodeID
	live      bool // healthy and fresh in the view
	keep      bool // existing daemons and replicas may stay
	host      bool // may receive new placements
	caps      map[string]bool
	load      float64 // projected saturation
	avoided   bool    // on some healthy node's avoid list
	meanRTTms int64
	replicas  int // chains assigned, to spread them
}

// location is where the snapshot shows a daemon.
type location struct {
	node     int // index into nodes
	running  bool
	incoming bool // an in-progress migration's target
	outbound bool // an in-progress migration's source
	lineage  snapshot.Lineage
}

// holder is a node the snapshot shows holding a chain.
type holder struct {
	node int
	lead bool
	term uint64
	seq  uint64
}

// PlaceWith is Place with options (invalidate, evictions). It runs the
// phases in order, each one a function below: collect the candidate nodes,
// declare the wanted daemons, keep what is placed, place the rest, choose
// each daemon's hand-over copy, pick standby actives, then place chains.
func PlaceWith(cs *snapshot.ClusterSnapshot, spec Spec, prev *Assignment, opt Options) *Assignment {
	a := &Assignment{
		Daemons: make(map[string]DaemonPlacement),
		Chains:  make(map[string]ChainPlacement),
		Groups:  make(map[string]GroupPlacement),
	}
	p := newPlacer(cs, spec, opt)
	wants := p.declare(a)
	placed := p.keepExisting(wants, prev)
	p.placeNew(wants, placed)
	p.record(a, wants, placed)
	p.chooseStandbyActives(a)
	for gi, g := range spec.Groups {
		if g.ChainReplicas > 0 {
			cp := p.placeChain(gi, g)
			a.Chains[cp.Name] = cp
		}
	}
	return a
}

// placer is one PlaceWith run: the candidate nodes and what the snapshot
// shows on them, updated as each phase assigns work.
type placer struct {
	spec    Spec
	opt     Options
	nodes   []nodeState
	index   map[NodeID]int // node id → index into nodes
	loadOf  map[string]float64
	locs    map[string][]location
	holders map[string][]holder
	// perGroup counts members per node (by node index), per group index.
	perGroup [][]int
}

// want is one daemon the spec declares, with its group's index.
type want struct {
	p DaemonPlacement
	g int
}

// newPlacer collects the candidate nodes in id order with their standing
// (live, keep, host), capabilities, projected load, avoided flag and mean
// RTT, and where the snapshot shows each daemon and chain replica.
func newPlacer(cs *snapshot.ClusterSnapshot, spec Spec, opt Options) *placer {
	var views []snapshot.NodeView
	if cs != nil {
		views = cs.Nodes
	}
	p := &placer{spec: spec, opt: opt, loadOf: groupLoads(spec)}
	p.nodes = make([]nodeState, len(views))
	p.index = make(map[NodeID]int, len(views))
	order := make([]int, len(views))
	for i := range order {
		order[i] = i
	}
	// cs.Nodes is documented sorted, but a pure function must not trust it.
	slices.SortFunc(order, func(x, y int) int { return cmp.Compare(views[x].ID, views[y].ID) })
	sorted := make([]*snapshot.NodeView, len(views))
	for k, i := range order {
		sorted[k] = &views[i]
	}
	for i, v := range sorted {
		p.index[v.ID] = i
		p.nodes[i] = candidate(v, p.loadOf)
	}
	markAvoided(sorted, p.nodes, p.index)
	meanRTT(cs, p.nodes, p.index)
	p.locs = daemonLocations(sorted, p.index)
	p.holders = chainHolders(sorted, p.index)
	p.perGroup = make([][]int, len(spec.Groups))
	for gi := range p.perGroup {
		p.perGroup[gi] = make([]int, len(p.nodes))
	}
	return p
}

// candidate is v's standing for placement. Its load is the node's own
// gauge net of the declared load of the daemons it runs now, so projecting
// the new assignment does not count them twice.
func candidate(v *snapshot.NodeView, loadOf map[string]float64) nodeState {
	n := nodeState{id: v.ID}
	live := v.Health == snapshot.Healthy && !v.Stale && v.ID.Valid()
	active := v.Maintenance.State == snapshot.MaintActive || v.Maintenance.State == snapshot.MaintRecovery
	n.live = live
	n.keep = live && active
	n.host = n.keep && !v.Cordoned
	n.caps = make(map[string]bool, len(v.Capabilities))
	for _, c := range v.Capabilities {
		n.caps[c] = true
	}
	base := v.Resources.Saturation
	for _, d := range v.Daemons {
		if d.Lifecycle != snapshot.LifecycleStopped {
			base -= loadOf[d.Lineage.Group]
		}
	}
	n.load = math.Max(0, base)
	return n
}

// declare lists every daemon the spec declares, in spec order (groups, then
// index), and records each group's members in a.
func (p *placer) declare(a *Assignment) []want {
	var wants []want
	for gi, g := range p.spec.Groups {
		members := g.MemberCount()
		gp := GroupPlacement{Name: g.Name, Kind: g.Kind}
		if g.ChainReplicas > 0 {
			gp.Chain = ChainName(g.Name)
		}
		for i := 0; i < members; i++ {
			id := DaemonID(g.Name, i)
			gp.Members = append(gp.Members, id)
			lin := snapshot.Lineage{Kind: g.Kind, Group: g.Name, Index: i}
			if g.Kind == snapshot.GroupFork {
				lin.ForkAt = g.ForkAt
			}
			wants = append(wants, want{p: DaemonPlacement{ID: id, Group: g.Name, Index: i, Kind: g.DaemonKind, Lineage: lin}, g: gi})
			a.order = append(a.order, id)
		}
		a.Groups[g.Name] = gp
	}
	return wants
}

// fits reports whether n has every capability g requires.
func fits(n *nodeState, g GroupSpec) bool {
	for _, c := range g.Requires {
		if !n.caps[c] {
			return false
		}
	}
	return true
}

// take assigns one member of group gi to node i.
func (p *placer) take(gi, i int) {
	p.nodes[i].load += p.loadOf[p.spec.Groups[gi].Name]
	p.perGroup[gi][i]++
}

// keepExisting is the sticky pass: each daemon stays on the best node the
// snapshot shows it on (what is placed stays placed), unless that doubles
// up its group while a node without a member could take it. It returns
// each daemon's node index, -1 where the fresh pass must place it.
func (p *placer) keepExisting(wants []want, prev *Assignment) []int {
	placed := make([]int, len(wants)) // node index, -1 unplaced
	for k, w := range wants {
		placed[k] = -1
		g := p.spec.Groups[w.g]
		best := -1
		ls := p.locs[w.p.ID]
		for li, l := range ls {
			n := &p.nodes[l.node]
			if !n.keep || !fits(n, g) || p.opt.Fresh[n.id] {
				continue
			}
			if best < 0 || betterLocation(l, ls[best], p.nodes) {
				best = li
			}
		}
		if best < 0 && prev != nil {
			if pn, ok := p.index[prev.Daemons[w.p.ID].Node]; ok && len(ls) == 0 {
				n := &p.nodes[pn]
				if n.host && fits(n, g) && !p.opt.Fresh[n.id] {
					placed[k] = pn
				}
			}
		}
		if best >= 0 {
			placed[k] = ls[best].node
			if p.perGroup[w.g][placed[k]] > 0 && spreadTarget(p.nodes, p.perGroup[w.g], g) {
				// Two members of one group on one node (placed while the
				// node saw too little of the cluster): let the fresh pass
				// spread this one, since a node without a member exists.
				placed[k] = -1
			}
		}
		if placed[k] >= 0 {
			p.take(w.g, placed[k])
		}
	}
	return placed
}

// placeNew places every daemon the sticky pass left, in spec order, on the
// best host by placeKey, so a newcomer never displaces an incumbent.
func (p *placer) placeNew(wants []want, placed []int) {
	for k, w := range wants {
		if placed[k] >= 0 {
			continue
		}
		g := p.spec.Groups[w.g]
		load := p.loadOf[g.Name]
		best := -1
		var bestKey placeKey
		for i := range p.nodes {
			n := &p.nodes[i]
			if !n.host || !fits(n, g) {
				continue
			}
			key := placeKey{
				sameGroup: p.perGroup[w.g][i],
				avoided:   n.avoided,
				over:      n.load+load > PlacementSaturationMax,
				load:      n.load,
				tie:       tieHash(w.p.ID, n.id),
			}
			if best < 0 || key.less(bestKey) {
				best, bestKey = i, key
			}
		}
		if best >= 0 {
			placed[k] = best
			p.take(w.g, best)
		}
	}
}

// record writes each daemon's node and hand-over copy into a and lists the
// unplaced ones.
func (p *placer) record(a *Assignment, wants []want, placed []int) {
	for k, w := range wants {
		d := w.p
		if placed[k] >= 0 {
			d.Node = p.nodes[placed[k]].id
		} else {
			a.Unplaced = append(a.Unplaced, d.ID)
		}
		d.HandOver = handOver(p.locs[d.ID], placed[k], p.nodes)
		a.Daemons[d.ID] = d
	}
	slices.Sort(a.Unplaced)
}

// chooseStandbyActives keeps each standby group's active member with the
// highest term, or promotes the best-synced placed member when the active
// one is gone, and stamps every member's lineage with the answer.
func (p *placer) chooseStandbyActives(a *Assignment) {
	for _, g := range p.spec.Groups {
		if g.Kind != snapshot.GroupStandby {
			continue
		}
		gp := a.Groups[g.Name]
		gp.Active, gp.Term = standbyActive(gp.Members, a, p.locs, p.nodes)
		a.Groups[g.Name] = gp
		for _, id := range gp.Members {
			d := a.Daemons[id]
			d.Lineage.Active = id == gp.Active
			d.Lineage.Term = gp.Term
			a.Daemons[id] = d
		}
	}
}

// placeChain keeps the chain's live holders (trimmed when there are too
// many), fills up to Desired and picks the leader.
func (p *placer) placeChain(gi int, g GroupSpec) ChainPlacement {
	name := ChainName(g.Name)
	desired := min(g.ChainReplicas, ChainReplicasMax)
	cp := ChainPlacement{Name: name, Group: g.Name, Desired: desired}
	excl := p.opt.Exclude[name]
	var kept []holder
	var maxTerm uint64
	for _, h := range p.holders[name] {
		maxTerm = max(maxTerm, h.term)
		n := &p.nodes[h.node]
		if n.keep && !excl[n.id] && !p.opt.Fresh[n.id] {
			kept = append(kept, h)
		}
	}
	if len(kept) > desired {
		kept = trimHolders(name, kept, p.nodes)[:desired]
	}
	chosen := make([]int, 0, desired)
	for _, h := range kept {
		chosen = append(chosen, h.node)
	}
	chosen = p.fillReplicas(gi, name, excl, chosen, desired)
	for _, i := range chosen {
		p.nodes[i].replicas++
		cp.Holders = append(cp.Holders, p.nodes[i].id)
	}
	slices.Sort(cp.Holders)
	cp.Leader, cp.Term = chainLeader(chosen, kept, p.nodes, maxTerm)
	return cp
}

// trimHolders orders an over-replicated chain's kept holders, survivors
// first: the winning leader claim, then the holders in the newest term,
// followers before a leader whose claim lost (a partition's other side, a
// same-term race: it is about to step down and resync), then a fixed order
// per chain. It sorts kept in place and returns it.
//
// Seq is deliberately not a criterion among same-term holders: every node
// sees its own seq fresh and the others' up to ChainSeqHashStep behind, so
// each follower would rank itself ahead and keep itself, and the extra
// holder would never go. Terms change rarely and travel in every snapshot,
// so every node computes the same survivors. The one dropped waits for the
// survivors to catch up before it lets go (caughtUp).
func trimHolders(name string, kept []holder, nodes []nodeState) []holder {
	win := bestClaim(kept, nodes)
	slices.SortStableFunc(kept, func(x, y holder) int {
		if (x.node == win) != (y.node == win) {
			if x.node == win {
				return -1
			}
			return 1
		}
		if x.term != y.term {
			return -cmp.Compare(x.term, y.term)
		}
		if x.lead != y.lead {
			// A deposed claim in the same term diverged from the
			// winner's log; a follower's copy is the better one.
			if y.lead {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(tieHash(name, nodes[x.node].id), tieHash(name, nodes[y.node].id)); c != 0 {
			return c
		}
		return cmp.Compare(nodes[x.node].id, nodes[y.node].id)
	})
	return kept
}

// fillReplicas adds holders to chosen by replicaKey until the chain has
// desired holders or no host is left.
func (p *placer) fillReplicas(gi int, name string, excl map[NodeID]bool, chosen []int, desired int) []int {
	for len(chosen) < desired {
		best := -1
		var bestKey replicaKey
		for i := range p.nodes {
			n := &p.nodes[i]
			if !n.host || excl[n.id] || slices.Contains(chosen, i) {
				continue
			}
			key := replicaKey{
				noMember: p.perGroup[gi][i] == 0,
				avoided:  n.avoided,
				replicas: n.replicas,
				tie:      tieHash(name, n.id),
			}
			if best < 0 || key.less(bestKey) {
				best, bestKey = i, key
			}
		}
		if best < 0 {
			break
		}
		chosen = append(chosen, best)
	}
	return chosen
}

// spreadTarget reports whether some host that fits g has no member of g
// yet: only then is moving a doubled-up member an improvement.
func spreadTarget(nodes []nodeState, members []int, g GroupSpec) bool {
	for i := range nodes {
		if nodes[i].host && members[i] == 0 && fits(&nodes[i], g) {
			return true
		}
	}
	return false
}

// placeKey orders candidate nodes for a new daemon: spread the group first,
// then stay off avoided nodes, then fit under the saturation ceiling, then
// the least loaded, then a per-daemon hash so equal nodes share the work.
type placeKey struct {
	sameGroup int
	avoided   bool
	over      bool
	load      float64
	tie       uint64
}

func (k placeKey) less(o placeKey) bool {
	if k.sameGroup != o.sameGroup {
		return k.sameGroup < o.sameGroup
	}
	if k.avoided != o.avoided {
		return !k.avoided
	}
	if k.over != o.over {
		return !k.over
	}
	if k.load != o.load {
		return k.load < o.load
	}
	return k.tie < o.tie
}

// replicaKey orders candidate holders: near the group's members (the leader
// there advances the chain without crossing the mesh), off avoided nodes,
// the fewest chains, then a hash.
type replicaKey struct {
	noMember bool
	avoided  bool
	replicas int
	tie      uint64
}

func (k replicaKey) less(o replicaKey) bool {
	if k.noMember != o.noMember {
		return !k.noMember
	}
	if k.avoided != o.avoided {
		return !k.avoided
	}
	if k.replicas != o.replicas {
		return k.replicas < o.replicas
	}
	return k.tie < o.tie
}

// tieHash is FNV-1a over s and n, inlined because it runs for every
// (daemon, node) pair and hash.Hash would allocate each time.
func tieHash(s string, n NodeID) uint64 {
	const offset64, prime64 = 14695981039346656037, 1099511628211
	h := uint64(offset64)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= prime64
	}
	for i := 0; i < 8; i++ {
		h ^= uint64(n) >> (8 * i) & 0xff
		h *= prime64
	}
	return h
}

// MemberCount is how many daemons g declares: Members clamped to
// 1..GroupMembersMax, and one for a solo group.
func (g GroupSpec) MemberCount() int {
	m := g.Members
	if m < 1 {
		m = 1
	}
	if g.Kind == snapshot.GroupSolo {
		m = 1
	}
	return min(m, GroupMembersMax)
}

func groupLoads(spec Spec) map[string]float64 {
	m := make(map[string]float64, len(spec.Groups))
	for _, g := range spec.Groups {
		m[g.Name] = g.Load
	}
	return m
}

// markAvoided flags nodes that some live node avoids. Entries are removed by
// their owner when they expire, so presence is the signal: comparing Until
// with a local clock would make nodes disagree near expiry.
func markAvoided(views []*snapshot.NodeView, nodes []nodeState, index map[NodeID]int) {
	for i, v := range views {
		if !nodes[i].keep {
			continue
		}
		for _, e := range v.Avoid {
			if j, ok := index[e.Peer]; ok && j != i {
				nodes[j].avoided = true
			}
		}
	}
}

// meanRTT averages each node's edge RTTs (whole milliseconds, so sub-ms
// jitter cannot reorder leaders). A node without edges sorts last.
func meanRTT(cs *snapshot.ClusterSnapshot, nodes []nodeState, index map[NodeID]int) {
	sum := make([]int64, len(nodes))
	cnt := make([]int64, len(nodes))
	if cs != nil {
		for _, e := range cs.Edges {
			ms := e.RTT.Milliseconds()
			if i, ok := index[e.A]; ok {
				sum[i] += ms
				cnt[i]++
			}
			if i, ok := index[e.B]; ok {
				sum[i] += ms
				cnt[i]++
			}
		}
	}
	for i := range nodes {
		nodes[i].meanRTTms = math.MaxInt64
		if cnt[i] > 0 {
			nodes[i].meanRTTms = sum[i] / cnt[i]
		}
	}
}

func daemonLocations(views []*snapshot.NodeView, index map[NodeID]int) map[string][]location {
	locs := make(map[string][]location)
	for i, v := range views {
		for _, d := range v.Daemons {
			if d.Lifecycle == snapshot.LifecycleStopped {
				continue
			}
			locs[d.ID] = append(locs[d.ID], location{
				node:     i,
				running:  d.Lifecycle == snapshot.LifecycleRunning,
				outbound: d.Lifecycle == snapshot.LifecycleMigrating,
				lineage:  d.Lineage,
			})
		}
		for _, m := range v.Migrations {
			if m.Source != v.ID || m.Phase >= snapshot.PhaseComplete {
				continue
			}
			if j, ok := index[m.Target]; ok {
				locs[m.Daemon] = append(locs[m.Daemon], location{node: j, incoming: true})
			}
		}
	}
	return locs
}

func chainHolders(views []*snapshot.NodeView, _ map[NodeID]int) map[string][]holder {
	hs := make(map[string][]holder)
	for i, v := range views {
		for _, r := range v.Replicas {
			hs[r.Chain] = append(hs[r.Chain], holder{node: i, lead: r.Role == snapshot.Leader, term: r.Term, seq: r.Seq})
		}
	}
	return hs
}

// betterLocation prefers an in-progress migration's target (the move is
// under way; flipping back would churn), then a running instance, then the
// lowest node id (duplicates collapse onto one).
func betterLocation(x, y location, nodes []nodeState) bool {
	if x.incoming != y.incoming {
		return x.incoming
	}
	if x.running != y.running {
		return x.running
	}
	return nodes[x.node].id < nodes[y.node].id
}

// handOver picks the copy that moves to the placed node (index, -1 when
// unplaced): none when that node already holds a copy; else, among copies
// on live nodes, a migration's source first (it is already moving), then a
// running copy, then the lowest node id — a rule every node applies alike.
func handOver(ls []location, placed int, nodes []nodeState) NodeID {
	for _, l := range ls {
		if !l.incoming && l.node == placed {
			return 0
		}
	}
	best := -1
	for li, l := range ls {
		if l.incoming || !nodes[l.node].live {
			continue
		}
		if best < 0 || betterHandOver(l, ls[best], nodes) {
			best = li
		}
	}
	if best < 0 {
		return 0
	}
	return nodes[ls[best].node].id
}

// betterHandOver ranks hand-over candidates (never incoming ones): an
// outbound migration's source first, then as betterLocation does.
func betterHandOver(x, y location, nodes []nodeState) bool {
	if x.outbound != y.outbound {
		return x.outbound
	}
	return betterLocation(x, y, nodes)
}

// standbyActive keeps the placed member that claims active with the highest
// term; otherwise it promotes the placed member with the highest
// synced_through (then the lowest index) under a new term.
func standbyActive(members []string, a *Assignment, locs map[string][]location, nodes []nodeState) (string, uint64) {
	var maxTerm uint64
	claim, claimTerm := "", uint64(0)
	for _, id := range members {
		for _, l := range locs[id] {
			maxTerm = max(maxTerm, l.lineage.Term)
			if l.incoming || !l.lineage.Active || a.Daemons[id].Node == 0 || !nodes[l.node].keep {
				continue
			}
			if claim == "" || l.lineage.Term > claimTerm {
				claim, claimTerm = id, l.lineage.Term
			}
		}
	}
	if claim != "" && claimTerm == maxTerm {
		return claim, claimTerm
	}
	best, bestSynced := "", uint64(0)
	for _, id := range members {
		if a.Daemons[id].Node == 0 {
			continue
		}
		// Only a live copy counts: a dead active's progress is not
		// something the member placed in its stead has.
		var synced uint64
		for _, l := range locs[id] {
			if nodes[l.node].keep {
				synced = max(synced, l.lineage.Synced)
			}
		}
		if best == "" || synced > bestSynced {
			best, bestSynced = id, synced
		}
	}
	if best == "" {
		return "", maxTerm
	}
	return best, maxTerm + 1
}

// chainLeader keeps the winning leader claim among the kept holders when
// it is at the newest term any holder has seen; otherwise the chosen holder
// with the lowest mean RTT (then lowest id) leads under a new term above
// every term seen, which fences every older claim.
func chainLeader(chosen []int, kept []holder, nodes []nodeState, maxTerm uint64) (NodeID, uint64) {
	if len(chosen) == 0 {
		return 0, maxTerm
	}
	if win := bestClaim(kept, nodes); win >= 0 {
		for _, h := range kept {
			if h.node == win && h.term == maxTerm {
				return nodes[win].id, h.term
			}
		}
	}
	best := chosen[0]
	for _, i := range chosen[1:] {
		if better(nodes, i, best) {
			best = i
		}
	}
	return nodes[best].id, maxTerm + 1
}

// bestClaim is the node index of the winning leader claim among hs, or -1.
// Claims are ordered by (term, seq, lowest id): a higher term fences a
// lower one; two leaders in one term (both sides of a partition, or a race
// while views disagree) resolve to the one that got further, so the side
// that made progress keeps it. claimedLeader and the gossip fold use the
// same order, so every node names the same winner.
func bestClaim(hs []holder, nodes []nodeState) int {
	win := -1
	var w holder
	for _, h := range hs {
		if !h.lead {
			continue
		}
		if win < 0 || ClaimBeats(h.term, h.seq, nodes[h.node].id, w.term, w.seq, nodes[w.node].id) {
			win, w = h.node, h
		}
	}
	return win
}

// ClaimBeats orders leader claims: (term, seq) higher wins, then lower id.
func ClaimBeats(term, seq uint64, id NodeID, oTerm, oSeq uint64, oID NodeID) bool {
	if term != oTerm {
		return term > oTerm
	}
	if seq != oSeq {
		return seq > oSeq
	}
	return id < oID
}

func better(nodes []nodeState, i, j int) bool {
	if nodes[i].meanRTTms != nodes[j].meanRTTms {
		return nodes[i].meanRTTms < nodes[j].meanRTTms
	}
	return nodes[i].id < nodes[j].id
}

// ProjectedSaturation is each node's saturation under assignment a: its
// gauge net of the daemons it runs now, plus the declared load of what a
// assigns to it. The blast radius compares it with api.HotSaturation.
func ProjectedSaturation(cs *snapshot.ClusterSnapshot, spec Spec, a *Assignment) map[NodeID]float64 {
	out := make(map[NodeID]float64)
	if cs == nil {
		return out
	}
	loadOf := groupLoads(spec)
	for _, v := range cs.Nodes {
		base := v.Resources.Saturation
		for _, d := range v.Daemons {
			if d.Lifecycle != snapshot.LifecycleStopped {
				base -= loadOf[d.Lineage.Group]
			}
		}
		out[v.ID] = math.Max(0, base)
	}
	if a == nil {
		return out
	}
	for _, id := range a.order {
		p := a.Daemons[id]
		if _, ok := out[p.Node]; ok && p.Node != 0 {
			out[p.Node] += loadOf[p.Group]
		}
	}
	return out
}

// CurrentAssignment reads the placement the snapshot shows now (where each
// daemon runs, who holds and leads each chain), in Assignment form, so the
// blast radius can diff "now" against Place's answer.
func CurrentAssignment(cs *snapshot.ClusterSnapshot, spec Spec) *Assignment {
	a := &Assignment{Daemons: map[string]DaemonPlacement{}, Chains: map[string]ChainPlacement{}, Groups: map[string]GroupPlacement{}}
	where := map[string]NodeID{}
	leads := map[string]NodeID{}
	holders := map[string][]NodeID{}
	if cs != nil {
		for _, v := range cs.Nodes {
			for _, d := range v.Daemons {
				if d.Lifecycle == snapshot.LifecycleStopped {
					continue
				}
				if cur, ok := where[d.ID]; !ok || v.ID < cur {
					where[d.ID] = v.ID
				}
			}
			for _, r := range v.Replicas {
				holders[r.Chain] = append(holders[r.Chain], v.ID)
				if r.Role == snapshot.Leader {
					leads[r.Chain] = v.ID
				}
			}
		}
	}
	for _, g := range spec.Groups {
		gp := GroupPlacement{Name: g.Name, Kind: g.Kind}
		for i := 0; i < g.MemberCount(); i++ {
			id := DaemonID(g.Name, i)
			gp.Members = append(gp.Members, id)
			a.order = append(a.order, id)
			a.Daemons[id] = DaemonPlacement{ID: id, Group: g.Name, Index: i, Kind: g.DaemonKind,
				Lineage: snapshot.Lineage{Kind: g.Kind, Group: g.Name, Index: i}, Node: where[id]}
			if where[id] == 0 {
				a.Unplaced = append(a.Unplaced, id)
			}
		}
		if g.ChainReplicas > 0 {
			name := ChainName(g.Name)
			gp.Chain = name
			hs := slices.Clone(holders[name])
			slices.Sort(hs)
			a.Chains[name] = ChainPlacement{Name: name, Group: g.Name, Desired: g.ChainReplicas, Holders: hs, Leader: leads[name]}
		}
		a.Groups[g.Name] = gp
	}
	slices.Sort(a.Unplaced)
	return a
}

// DaemonChange is a daemon whose node differs between two assignments
// (From or To 0: unplaced).
type DaemonChange struct {
	Daemon   string
	From, To NodeID
}

// ReplicaChange is one replica that moves (From or To 0: only dropped or
// only added).
type ReplicaChange struct {
	Chain    string
	From, To NodeID
}

// LeaderChange is a chain whose leader differs.
type LeaderChange struct {
	Chain    string
	From, To NodeID
}

// AssignmentDiff is what changes from one assignment to another.
type AssignmentDiff struct {
	Daemons  []DaemonChange // sorted by daemon id
	Replicas []ReplicaChange
	Leaders  []LeaderChange
	// Unchanged and Total count daemon placements and replica slots.
	Unchanged, Total int
}

// Stability is the fraction of placements (daemons and replica slots) that
// stay where they are, 1 when there is nothing to place.
func (d AssignmentDiff) Stability() float64 {
	if d.Total == 0 {
		return 1
	}
	return float64(d.Unchanged) / float64(d.Total)
}

// Nodes lists every node a change touches, sorted.
func (d AssignmentDiff) Nodes() []NodeID {
	seen := map[NodeID]bool{}
	add := func(ids ...NodeID) {
		for _, id := range ids {
			if id != 0 {
				seen[id] = true
			}
		}
	}
	for _, c := range d.Daemons {
		add(c.From, c.To)
	}
	for _, c := range d.Replicas {
		add(c.From, c.To)
	}
	for _, c := range d.Leaders {
		add(c.From, c.To)
	}
	out := make([]NodeID, 0, len(seen))
	for id := range seen {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// Diff compares two assignments (either may be nil: empty).
func Diff(from, to *Assignment) AssignmentDiff {
	var d AssignmentDiff
	ids := map[string]bool{}
	chains := map[string]bool{}
	for _, a := range []*Assignment{from, to} {
		if a == nil {
			continue
		}
		for id := range a.Daemons {
			ids[id] = true
		}
		for c := range a.Chains {
			chains[c] = true
		}
	}
	for _, id := range sortedKeys(ids) {
		f, t := from.NodeOf(id), to.NodeOf(id)
		d.Total++
		if f == t {
			d.Unchanged++
			continue
		}
		d.Daemons = append(d.Daemons, DaemonChange{Daemon: id, From: f, To: t})
	}
	for _, name := range sortedKeys(chains) {
		var fc, tc ChainPlacement
		if from != nil {
			fc = from.Chains[name]
		}
		if to != nil {
			tc = to.Chains[name]
		}
		var removed, added []NodeID
		for _, h := range fc.Holders {
			if slices.Contains(tc.Holders, h) {
				d.Unchanged++
				d.Total++
			} else {
				removed = append(removed, h)
			}
		}
		for _, h := range tc.Holders {
			if !slices.Contains(fc.Holders, h) {
				added = append(added, h)
			}
		}
		for i := 0; i < max(len(removed), len(added)); i++ {
			var c = ReplicaChange{Chain: name}
			if i < len(removed) {
				c.From = removed[i]
			}
			if i < len(added) {
				c.To = added[i]
			}
			d.Total++
			d.Replicas = append(d.Replicas, c)
		}
		if fc.Leader != tc.Leader {
			d.Leaders = append(d.Leaders, LeaderChange{Chain: name, From: fc.Leader, To: tc.Leader})
		}
	}
	return d
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// HostingView is cs as placement sees it: observer nodes (consoles) are
// dropped, since they never host daemons or replicas. It returns cs itself
// when there are none; cs is not modified. MeshOS schedules on it and the
// command plane's Source hands it to the blast radius, so both see the
// same candidates.
func HostingView(cs *snapshot.ClusterSnapshot) *snapshot.ClusterSnapshot {
	if cs == nil || !slices.ContainsFunc(cs.Nodes, func(v snapshot.NodeView) bool { return v.Observer }) {
		return cs
	}
	cp := *cs
	cp.Nodes = make([]snapshot.NodeView, 0, len(cs.Nodes))
	for _, nv := range cs.Nodes {
		if !nv.Observer {
			cp.Nodes = append(cp.Nodes, nv)
		}
	}
	return &cp
}

// ApplyIntent returns a copy of cs with the admin intent overlaid on the
// node views (cordon, maintenance entering/exiting), so placement reacts to
// a committed intent before the node itself reports the new state. The
// blast radius uses it with the action applied. cs is not modified.
func ApplyIntent(cs *snapshot.ClusterSnapshot, intent ClusterIntent) *snapshot.ClusterSnapshot {
	if cs == nil {
		return nil
	}
	out := *cs
	out.Nodes = slices.Clone(cs.Nodes)
	out.Freeze = intent.Freeze
	for i := range out.Nodes {
		v := &out.Nodes[i]
		ni, ok := intent.Nodes[v.ID]
		if !ok {
			continue
		}
		v.Cordoned = ni.Cordoned
		st := v.Maintenance.State
		switch ni.Maintenance {
		case MaintIntentEnter:
			if st == snapshot.MaintActive || st == snapshot.MaintRecovery || st == snapshot.MaintExiting {
				v.Maintenance.State = snapshot.MaintEntering
				v.Maintenance.Deadline = ni.DrainDeadline
			}
		case MaintIntentExit:
			if st == snapshot.MaintEntering || st == snapshot.MaintMaintenance || st == snapshot.MaintDrainFailed {
				v.Maintenance.State = snapshot.MaintExiting
			}
		}
	}
	return &out
}

// OptionsFor derives the placement options a ClusterIntent implies for
// every node alike: evicted replicas stay off their victims while the
// eviction is listed.
func OptionsFor(intent ClusterIntent) Options {
	var o Options
	for _, e := range intent.Evictions {
		if o.Exclude == nil {
			o.Exclude = map[string]map[NodeID]bool{}
		}
		if o.Exclude[e.Chain] == nil {
			o.Exclude[e.Chain] = map[NodeID]bool{}
		}
		o.Exclude[e.Chain][e.Node] = true
	}
	return o
}
