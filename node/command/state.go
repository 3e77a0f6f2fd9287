package command

import (
	"cmp"
	"crypto/ed25519"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/placement"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Genesis is the registry the cluster starts with, from the cluster file.
type Genesis struct {
	Cluster        string
	Operators      []GenesisOperator
	AdminThreshold int // 0: DefaultAdminThreshold
	ICEThreshold   int // 0: DefaultICEThreshold
}

// GenesisOperator is one initial operator.
type GenesisOperator struct {
	Name      string
	PublicKey ed25519.PublicKey
}

// OperatorEntry is one registered operator.
type OperatorEntry struct {
	ID        identity.NodeID
	Name      string
	PublicKey ed25519.PublicKey
	AddedAtMs int64 // 0: from genesis
}

type lockKey struct {
	verb   api.Verb
	target string
}

type evictKey struct {
	chain string
	node  identity.NodeID
}

// usedNonce is one remembered nonce with its event's ledger position.
type usedNonce struct {
	nonce Nonce
	atMs  int64
	id    EventID
}

// AdminState is the fold of the admin ledger: everything accepted events
// set, plus the bookkeeping that rejects replays and lockouts. Every node
// that applies the same events in (issued_at, id) order holds an identical
// AdminState. Values handed out (Intent, Operators, …) are copies.
type AdminState struct {
	cluster        string
	operators      map[identity.NodeID]OperatorEntry
	adminThreshold int
	iceThreshold   int

	nodes            map[identity.NodeID]placement.NodeIntent
	daemons          map[string]placement.DaemonIntent
	freeze           snapshot.Freeze
	flushAvoidGen    uint64
	evictions        map[evictKey]uint64
	cutovers         map[string]placement.Cutover
	killedMigrations map[string]uint64
	lockouts         map[lockKey]int64 // until, ms

	nonces    map[Nonce]struct{}
	nonceFIFO []usedNonce // ledger order; the front is forgotten first

	// Membership (membership.go).
	admitted map[identity.NodeID]NodeAdmission
	revoked  map[identity.NodeID]NodeRevocation
	retired  map[identity.NodeID]retiredKey // rotated-away operator keys

	gen        uint64 // one-shot generation counter: grows with every accepted event
	applied    uint64
	accepted   uint64
	positionMs int64 // issued_at of the latest applied event
	lastID     EventID
}

// NewState builds the state from genesis: the cluster name, the initial
// operators (distinct, valid keys) and thresholds that the operators can
// meet.
func NewState(g Genesis) (*AdminState, error) {
	if g.Cluster == "" {
		return nil, reject(ErrBadGenesis, "empty cluster name")
	}
	if err := checkText("cluster", g.Cluster, MaxClusterNameBytes); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadGenesis, err)
	}
	if len(g.Operators) == 0 {
		return nil, reject(ErrBadGenesis, "no operators")
	}
	if len(g.Operators) > MaxOperators {
		return nil, reject(ErrBadGenesis, "%d operators, at most %d", len(g.Operators), MaxOperators)
	}
	st := &AdminState{
		cluster:          g.Cluster,
		operators:        make(map[identity.NodeID]OperatorEntry, len(g.Operators)),
		adminThreshold:   cmp.Or(g.AdminThreshold, DefaultAdminThreshold),
		iceThreshold:     cmp.Or(g.ICEThreshold, DefaultICEThreshold),
		nodes:            map[identity.NodeID]placement.NodeIntent{},
		daemons:          map[string]placement.DaemonIntent{},
		evictions:        map[evictKey]uint64{},
		cutovers:         map[string]placement.Cutover{},
		killedMigrations: map[string]uint64{},
		lockouts:         map[lockKey]int64{},
		nonces:           map[Nonce]struct{}{},
		admitted:         map[identity.NodeID]NodeAdmission{},
		revoked:          map[identity.NodeID]NodeRevocation{},
		retired:          map[identity.NodeID]retiredKey{},
	}
	for i, op := range g.Operators {
		if len(op.PublicKey) != ed25519.PublicKeySize {
			return nil, reject(ErrBadGenesis, "operator %d key is %d bytes", i, len(op.PublicKey))
		}
		if err := checkText("operator name", op.Name, MaxNameBytes); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadGenesis, err)
		}
		id := identity.IDFromPublicKey(op.PublicKey)
		if !id.Valid() {
			return nil, reject(ErrBadGenesis, "operator %d key derives to id 0", i)
		}
		if _, dup := st.operators[id]; dup {
			return nil, reject(ErrBadGenesis, "operator %s listed twice", id)
		}
		st.operators[id] = OperatorEntry{ID: id, Name: op.Name, PublicKey: append(ed25519.PublicKey(nil), op.PublicKey...)}
	}
	n := len(st.operators)
	if st.adminThreshold < 1 || st.adminThreshold > n || st.iceThreshold < 1 || st.iceThreshold > n {
		return nil, reject(ErrBadGenesis, "thresholds admin %d / ice %d with %d operators", st.adminThreshold, st.iceThreshold, n)
	}
	return st, nil
}

// Clone is a deep copy: the fold can branch (trial application before a
// commit, a ledger re-fold from a checkpoint) without touching st.
func (st *AdminState) Clone() *AdminState {
	c := *st
	c.operators = maps.Clone(st.operators)
	c.nodes = make(map[identity.NodeID]placement.NodeIntent, len(st.nodes))
	for k, v := range st.nodes {
		v.DropReplicas = slices.Clone(v.DropReplicas)
		c.nodes[k] = v
	}
	c.daemons = maps.Clone(st.daemons)
	c.evictions = maps.Clone(st.evictions)
	c.cutovers = maps.Clone(st.cutovers)
	c.killedMigrations = maps.Clone(st.killedMigrations)
	c.lockouts = maps.Clone(st.lockouts)
	c.nonces = maps.Clone(st.nonces)
	c.nonceFIFO = slices.Clone(st.nonceFIFO)
	st.cloneMembership(&c)
	return &c
}

// Cluster is the cluster the state belongs to.
func (st *AdminState) Cluster() string { return st.cluster }

// Thresholds are the admin and ICE signature thresholds.
func (st *AdminState) Thresholds() (admin, ice int) { return st.adminThreshold, st.iceThreshold }

// Applied and Accepted count the events applied (accepted or rejected) and
// accepted so far; Position is the issued_at of the latest applied event.
func (st *AdminState) Applied() uint64        { return st.applied }
func (st *AdminState) Accepted() uint64       { return st.accepted }
func (st *AdminState) Position() time.Time    { return time.UnixMilli(st.positionMs).UTC() }
func (st *AdminState) LastEventID() EventID   { return st.lastID }
func (st *AdminState) Generation() uint64     { return st.gen }
func (st *AdminState) NonceUsed(n Nonce) bool { _, ok := st.nonces[n]; return ok }

// Operator returns a registered operator.
func (st *AdminState) Operator(id identity.NodeID) (OperatorEntry, bool) {
	op, ok := st.operators[id]
	if ok {
		op.PublicKey = append(ed25519.PublicKey(nil), op.PublicKey...)
	}
	return op, ok
}

// Operators lists the registry sorted by id, as the snapshot shows it.
func (st *AdminState) Operators() []snapshot.Operator {
	out := make([]snapshot.Operator, 0, len(st.operators))
	for _, op := range st.operators {
		var added time.Time
		if op.AddedAtMs > 0 {
			added = time.UnixMilli(op.AddedAtMs).UTC()
		}
		out = append(out, snapshot.Operator{ID: op.ID, Name: op.Name, PublicKey: append([]byte(nil), op.PublicKey...), AddedAt: added})
	}
	slices.SortFunc(out, func(a, b snapshot.Operator) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// FreezeAt is the freeze as of now: Active only while now is before Until.
func (st *AdminState) FreezeAt(now time.Time) snapshot.Freeze {
	f := st.freeze
	f.Active = f.Active && now.Before(f.Until)
	return f
}

// Lockouts lists the ICE cooldowns still running at now, sorted by (verb,
// target).
func (st *AdminState) Lockouts(now time.Time) []snapshot.Lockout {
	out := make([]snapshot.Lockout, 0, len(st.lockouts))
	nowMs := now.UnixMilli()
	for k, until := range st.lockouts {
		if until > nowMs {
			out = append(out, snapshot.Lockout{Verb: string(k.verb), Target: k.target, Until: time.UnixMilli(until).UTC()})
		}
	}
	slices.SortFunc(out, func(a, b snapshot.Lockout) int {
		return cmp.Or(cmp.Compare(a.Verb, b.Verb), cmp.Compare(a.Target, b.Target))
	})
	return out
}

// LockedOut reports whether a's verb+target is in cooldown at t, and until
// when, so the UI can show the cooldown before the operator tries.
func (st *AdminState) LockedOut(a api.Action, t time.Time) (time.Time, bool) {
	until, ok := st.lockouts[lockKey{a.Verb, a.Target()}]
	if !ok || until <= t.UnixMilli() {
		return time.Time{}, false
	}
	return time.UnixMilli(until).UTC(), true
}

// FillSnapshot sets the snapshot fields the admin state owns. cs must be a
// snapshot still being built (published snapshots are immutable).
func (st *AdminState) FillSnapshot(cs *snapshot.ClusterSnapshot, now time.Time) {
	cs.Freeze = st.FreezeAt(now)
	cs.Operators = st.Operators()
	cs.AdminThreshold, cs.ICEThreshold = st.adminThreshold, st.iceThreshold
	cs.Lockouts = st.Lockouts(now)
	st.fillMembership(cs)
}

// Intent is what MeshOS must obey: a deep copy, sorted where it is a list,
// so every node hands MeshOS identical intents.
func (st *AdminState) Intent() placement.ClusterIntent {
	in := placement.ClusterIntent{
		Nodes:            make(map[identity.NodeID]placement.NodeIntent, len(st.nodes)),
		Daemons:          maps.Clone(st.daemons),
		Freeze:           st.freeze,
		FlushAvoidGen:    st.flushAvoidGen,
		KilledMigrations: maps.Clone(st.killedMigrations),
	}
	for k, v := range st.nodes {
		v.DropReplicas = slices.Clone(v.DropReplicas)
		in.Nodes[k] = v
	}
	for k, gen := range st.evictions {
		in.Evictions = append(in.Evictions, placement.ReplicaEviction{Chain: k.chain, Node: k.node, Gen: gen})
	}
	slices.SortFunc(in.Evictions, func(a, b placement.ReplicaEviction) int {
		return cmp.Or(cmp.Compare(a.Chain, b.Chain), cmp.Compare(a.Node, b.Node))
	})
	for _, c := range st.cutovers {
		in.Cutovers = append(in.Cutovers, c)
	}
	slices.SortFunc(in.Cutovers, func(a, b placement.Cutover) int { return cmp.Compare(a.Chain, b.Chain) })
	return in
}

// NodeIntent is the admin intent for one node (zero if none).
func (st *AdminState) NodeIntent(id identity.NodeID) placement.NodeIntent {
	v := st.nodes[id]
	v.DropReplicas = slices.Clone(v.DropReplicas)
	return v
}

// Equal reports whether two states are identical (the fold-determinism
// property: any arrival order gives Equal states).
func (st *AdminState) Equal(o *AdminState) bool {
	if st.cluster != o.cluster || st.adminThreshold != o.adminThreshold || st.iceThreshold != o.iceThreshold ||
		st.freeze.Active != o.freeze.Active || st.freeze.Reason != o.freeze.Reason ||
		st.freeze.Operator != o.freeze.Operator || !st.freeze.Until.Equal(o.freeze.Until) || st.flushAvoidGen != o.flushAvoidGen || st.gen != o.gen ||
		st.applied != o.applied || st.accepted != o.accepted || st.positionMs != o.positionMs || st.lastID != o.lastID {
		return false
	}
	opEq := func(a, b OperatorEntry) bool {
		return a.ID == b.ID && a.Name == b.Name && a.AddedAtMs == b.AddedAtMs && a.PublicKey.Equal(b.PublicKey)
	}
	nodeEq := func(a, b placement.NodeIntent) bool {
		return a.Cordoned == b.Cordoned && a.Maintenance == b.Maintenance && a.MaintGen == b.MaintGen &&
			a.DrainDeadline.Equal(b.DrainDeadline) && a.ForceDrain == b.ForceDrain &&
			a.RestartAllGen == b.RestartAllGen && a.InvalidateGen == b.InvalidateGen &&
			a.ClearAvoidGen == b.ClearAvoidGen && a.DropReplicasGen == b.DropReplicasGen &&
			slices.Equal(a.DropReplicas, b.DropReplicas)
	}
	return maps.EqualFunc(st.operators, o.operators, opEq) &&
		maps.EqualFunc(st.nodes, o.nodes, nodeEq) &&
		maps.Equal(st.daemons, o.daemons) &&
		maps.Equal(st.evictions, o.evictions) &&
		maps.Equal(st.cutovers, o.cutovers) &&
		maps.Equal(st.killedMigrations, o.killedMigrations) &&
		maps.Equal(st.lockouts, o.lockouts) &&
		maps.Equal(st.nonces, o.nonces) &&
		slices.Equal(st.nonceFIFO, o.nonceFIFO) &&
		st.membershipEqual(o)
}
