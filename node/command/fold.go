package command

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"errors"
	"slices"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/placement"
)

// CheckIngest is the clock check a node makes when an event reaches it (from
// its own operator or from a peer): the event must belong to this cluster and
// must not be issued more than MaxClockSkew in the future. It depends on the
// local clock, so it only gates ingestion; the fold never looks at a clock.
func CheckIngest(ev *Event, cluster string, now time.Time) error {
	if ev.Cluster() != cluster {
		return reject(ErrWrongCluster, "event for %q, this is %q", truncate(ev.Cluster(), MaxClusterNameBytes), cluster)
	}
	if ahead := ev.IssuedAt().Sub(now); ahead > MaxClockSkew {
		return reject(ErrClockSkew, "issued %v ahead of this node's clock (tolerance %v)", ahead.Round(time.Millisecond), MaxClockSkew)
	}
	return nil
}

// CheckCommitWindow is the submitting node's freshness check: an ICE event
// must be committed within ICECommitWindow of issue, an admin or registry
// event within AdminCommitWindow, and neither may come from the future.
func CheckCommitWindow(ev *Event, now time.Time) error {
	window := AdminCommitWindow
	if ev.Kind() == KindICE {
		window = ICECommitWindow
	}
	issued := ev.IssuedAt()
	if ahead := issued.Sub(now); ahead > MaxClockSkew {
		return reject(ErrClockSkew, "issued %v ahead of this node's clock", ahead.Round(time.Millisecond))
	}
	if now.After(issued.Add(window)) {
		return reject(ErrExpired, "issued %s, window of %v closed %v ago", issued.Format(time.RFC3339), window, now.Sub(issued.Add(window)).Round(time.Second))
	}
	return nil
}

// Verify decides, without changing st, whether ev would be accepted at its
// position: signatures by registered operators (deduplicated by operator id
// and counted against the kind's threshold; the proposer among them), a
// fresh nonce, no ICE lockout, no freeze for routine verbs, and a registry
// change that leaves the registry usable. The error names the first rule
// broken, in that order, so every node records the same reason.
func (st *AdminState) Verify(ev *Event) error {
	if ev.body.Cluster != st.cluster {
		return reject(ErrWrongCluster, "event for %q, this is %q", ev.body.Cluster, st.cluster)
	}
	if err := st.verifySignatures(ev); err != nil {
		return err
	}
	if _, used := st.nonces[ev.body.Nonce]; used {
		return reject(ErrReplayedNonce, "nonce %s", ev.body.Nonce)
	}
	a := &ev.body.Action
	at := ev.body.IssuedAtMs
	switch ev.body.Kind {
	case KindICE:
		if until, ok := st.lockouts[lockKey{a.Verb, a.Target()}]; ok && at < until {
			return reject(ErrLockedOut, "%s on %s until %s", a.Verb, a.Target(), time.UnixMilli(until).UTC().Format(time.RFC3339))
		}
	case KindAdmin:
		if st.freeze.Active && at < st.freeze.Until.UnixMilli() {
			return reject(ErrFrozen, "frozen until %s: %s", st.freeze.Until.Format(time.RFC3339), st.freeze.Reason)
		}
	}
	return st.checkEffect(ev)
}

// verifySignatures counts distinct operators with a valid signature.
func (st *AdminState) verifySignatures(ev *Event) error {
	return verifySignatures(st.operators, st.adminThreshold, st.iceThreshold, ev)
}

// verifySignatures checks ev's signatures against a registry: the proposer
// registered and among the valid signers, for a rotation both the old and
// the new key, and at least the kind's threshold of distinct registered
// operators. The proposer's signatures are checked first and a failure
// there ends the check, so an event its proposer did not sign costs one
// verification per signature claiming the proposer, however many other
// signatures it carries; the outcome is the same as checking all of them.
func verifySignatures(ops map[identity.NodeID]OperatorEntry, adminThreshold, iceThreshold int, ev *Event) error {
	a := &ev.body.Action
	payload := ev.SigningPayload()
	rotate := a.Verb == api.VerbRotateOperator
	var newID identity.NodeID
	if rotate {
		newID = identity.IDFromPublicKey(a.OperatorKey)
	}
	// signed reports whether one of sigs (all claiming op) verifies under
	// pub: several signatures claiming one operator count once.
	signed := func(op identity.NodeID, pub ed25519.PublicKey, sigs []api.Signature) bool {
		for _, s := range sigs {
			if identity.Verify(op, pub, payload, s.Sig) == nil {
				return true
			}
		}
		return false
	}
	proposer := ev.body.Proposer
	entry, ok := ops[proposer]
	if !ok {
		return reject(ErrUnknownOperator, "proposer %s", proposer)
	}
	lo, hi := sigRange(ev.sigs, proposer)
	if !signed(proposer, entry.PublicKey, ev.sigs[lo:hi]) {
		return reject(ErrBadSignature, "proposer %s's signature is missing or does not verify", proposer)
	}
	valid := 1
	oldOK := rotate && proposer == a.OperatorID
	newOK := false
	for i := 0; i < len(ev.sigs); {
		op := ev.sigs[i].Operator
		j := i
		for j < len(ev.sigs) && ev.sigs[j].Operator == op {
			j++
		}
		group := ev.sigs[i:j]
		i = j
		if op == proposer {
			continue // checked above
		}
		if entry, registered := ops[op]; registered {
			if signed(op, entry.PublicKey, group) {
				valid++
				if rotate && op == a.OperatorID {
					oldOK = true
				}
			}
		} else if newID.Valid() && op == newID && signed(op, ed25519.PublicKey(a.OperatorKey), group) {
			newOK = true
		}
	}
	if rotate && (!oldOK || !newOK) {
		return reject(ErrRotateUnsigned, "old key signed: %v, new key signed: %v", oldOK, newOK)
	}
	need := adminThreshold
	if ev.body.Kind == KindICE {
		need = iceThreshold
	}
	if valid < need {
		return reject(ErrBelowThreshold, "%d of %d required operators signed", valid, need)
	}
	return nil
}

// sigRange is the range of sigs (canonical order: sorted by operator)
// claiming op.
func sigRange(sigs []api.Signature, op identity.NodeID) (lo, hi int) {
	lo, _ = slices.BinarySearchFunc(sigs, op, func(s api.Signature, id identity.NodeID) int { return cmp.Compare(s.Operator, id) })
	hi = lo
	for hi < len(sigs) && sigs[hi].Operator == op {
		hi++
	}
	return lo, hi
}

// checkEffect refuses changes the state cannot take.
func (st *AdminState) checkEffect(ev *Event) error {
	a := &ev.body.Action
	switch a.Verb {
	case api.VerbAddOperator:
		if _, ok := st.operators[a.OperatorID]; ok {
			return reject(ErrOperatorExists, "%s", a.OperatorID)
		}
		if len(st.operators) >= MaxOperators {
			return reject(ErrStateFull, "%d operators", MaxOperators)
		}
	case api.VerbRemoveOperator:
		if _, ok := st.operators[a.OperatorID]; !ok {
			return reject(ErrNotFound, "operator %s", a.OperatorID)
		}
		if len(st.operators)-1 < max(st.adminThreshold, st.iceThreshold) {
			return reject(ErrRegistryFloor, "%d operators left, thresholds admin %d / ice %d", len(st.operators)-1, st.adminThreshold, st.iceThreshold)
		}
	case api.VerbRotateOperator:
		if _, ok := st.operators[a.OperatorID]; !ok {
			return reject(ErrNotFound, "operator %s", a.OperatorID)
		}
		if newID := identity.IDFromPublicKey(a.OperatorKey); st.operators[newID].ID.Valid() {
			return reject(ErrOperatorExists, "%s", newID)
		}
	case api.VerbRestartDaemon, api.VerbForceRestartDaemon:
		if _, ok := st.daemons[a.Daemon]; !ok && len(st.daemons) >= MaxIntentDaemons {
			return reject(ErrStateFull, "%d daemon intents", MaxIntentDaemons)
		}
	case api.VerbForceEvictReplica:
		if _, ok := st.evictions[evictKey{a.Chain, a.Peer}]; !ok && len(st.evictions) >= MaxEvictions {
			return reject(ErrStateFull, "%d evictions", MaxEvictions)
		}
	case api.VerbForceCutover:
		if _, ok := st.cutovers[a.Chain]; !ok && len(st.cutovers) >= MaxCutovers {
			return reject(ErrStateFull, "%d cutovers", MaxCutovers)
		}
	case api.VerbKillMigration:
		if _, ok := st.killedMigrations[a.Migration]; !ok && len(st.killedMigrations) >= MaxKilledMigrations {
			return reject(ErrStateFull, "%d killed migrations", MaxKilledMigrations)
		}
	case api.VerbAdmitNode, api.VerbRevokeNode:
		if err := st.checkMembership(a); err != nil {
			return err
		}
	case api.VerbFreezeCluster, api.VerbThawCluster, api.VerbFlushAvoidLists:
	default:
		if _, ok := st.nodes[a.Node]; !ok && len(st.nodes) >= MaxIntentNodes {
			return reject(ErrStateFull, "%d node intents", MaxIntentNodes)
		}
	}
	if ev.body.Kind == KindICE {
		if _, ok := st.lockouts[lockKey{a.Verb, a.Target()}]; !ok && len(st.lockouts) >= MaxLockouts {
			return reject(ErrStateFull, "%d lockouts", MaxLockouts)
		}
	}
	return nil
}

// Apply folds ev into st at ev's ledger position and returns nil if it was
// accepted or the rejection. Events must be applied in (issued_at, id) order
// (a ledger that learns an earlier event re-folds from a state before it);
// then every node reaches the same state.
func (st *AdminState) Apply(ev *Event) error {
	err := st.Verify(ev)
	st.applied++
	if ev.body.IssuedAtMs > st.positionMs || (ev.body.IssuedAtMs == st.positionMs && ev.id.Compare(st.lastID) > 0) {
		st.positionMs, st.lastID = ev.body.IssuedAtMs, ev.id
	}
	st.prune()
	if err != nil {
		return err
	}
	st.accepted++
	st.gen++
	st.rememberNonce(ev)
	st.effect(ev)
	return nil
}

// Apply is the pure form for a generic ledger folder: it returns a new
// state and leaves st untouched.
func Apply(st *AdminState, ev *Event) (*AdminState, error) {
	next := st.Clone()
	err := next.Apply(ev)
	return next, err
}

// prune forgets what can no longer matter at the current ledger position:
// expired lockouts and nonces older than NonceRetention. Both depend only on
// the position, so every node prunes identically.
func (st *AdminState) prune() {
	for k, until := range st.lockouts {
		if until <= st.positionMs {
			delete(st.lockouts, k)
		}
	}
	horizon := st.positionMs - NonceRetention.Milliseconds()
	n := 0
	for n < len(st.nonceFIFO) && st.nonceFIFO[n].atMs < horizon {
		delete(st.nonces, st.nonceFIFO[n].nonce)
		n++
	}
	if n > 0 {
		st.nonceFIFO = slices.Delete(st.nonceFIFO, 0, n)
	}
}

func (st *AdminState) rememberNonce(ev *Event) {
	u := usedNonce{nonce: ev.body.Nonce, atMs: ev.body.IssuedAtMs, id: ev.id}
	// Keep ledger order even if a caller applies out of order, so the
	// oldest is always what the cap forgets.
	i, _ := slices.BinarySearchFunc(st.nonceFIFO, u, func(x, y usedNonce) int {
		return cmp.Or(cmp.Compare(x.atMs, y.atMs), x.id.Compare(y.id))
	})
	st.nonceFIFO = slices.Insert(st.nonceFIFO, i, u)
	st.nonces[u.nonce] = struct{}{}
	if len(st.nonceFIFO) > MaxUsedNonces {
		delete(st.nonces, st.nonceFIFO[0].nonce)
		st.nonceFIFO = slices.Delete(st.nonceFIFO, 0, 1)
	}
}

// effect applies an accepted event. State set by events is last-writer-wins
// per target under ledger order; one-shot requests take the next generation.
func (st *AdminState) effect(ev *Event) {
	a := &ev.body.Action
	at := ev.body.IssuedAtMs
	issued := ev.IssuedAt()
	st.applyMembership(ev) // before the registry cases below change operators
	deadline := func() time.Time {
		if a.Duration == 0 {
			return time.Time{}
		}
		return issued.Add(a.Duration)
	}
	node := func(f func(*placement.NodeIntent)) {
		n := st.nodes[a.Node]
		f(&n)
		st.nodes[a.Node] = n
	}
	switch a.Verb {
	case api.VerbCordon:
		node(func(n *placement.NodeIntent) { n.Cordoned = true })
	case api.VerbUncordon:
		node(func(n *placement.NodeIntent) { n.Cordoned = false })
	case api.VerbDrain, api.VerbEnterMaintenance:
		// The intent has one drain mechanism: a drain is a maintenance
		// entry whose deadline is the drain-for duration.
		node(func(n *placement.NodeIntent) {
			n.Maintenance, n.MaintGen, n.DrainDeadline, n.ForceDrain = placement.MaintIntentEnter, st.gen, deadline(), false
		})
	case api.VerbExitMaintenance:
		node(func(n *placement.NodeIntent) {
			n.Maintenance, n.MaintGen, n.DrainDeadline, n.ForceDrain = placement.MaintIntentExit, st.gen, time.Time{}, false
		})
	case api.VerbForceDrain:
		node(func(n *placement.NodeIntent) {
			n.Maintenance, n.MaintGen, n.DrainDeadline, n.ForceDrain = placement.MaintIntentEnter, st.gen, time.Time{}, true
		})
	case api.VerbDropReplicas:
		node(func(n *placement.NodeIntent) { n.DropReplicasGen, n.DropReplicas = st.gen, slices.Clone(a.Chains) })
	case api.VerbInvalidatePlacement:
		node(func(n *placement.NodeIntent) { n.InvalidateGen = st.gen })
	case api.VerbRestartAllDaemons:
		node(func(n *placement.NodeIntent) { n.RestartAllGen = st.gen })
	case api.VerbClearAvoidList:
		node(func(n *placement.NodeIntent) { n.ClearAvoidGen = st.gen })
	case api.VerbRestartDaemon:
		d := st.daemons[a.Daemon]
		d.RestartGen = st.gen
		st.daemons[a.Daemon] = d
	case api.VerbForceRestartDaemon:
		d := st.daemons[a.Daemon]
		d.ForceRestartGen = st.gen
		st.daemons[a.Daemon] = d
	case api.VerbFreezeCluster:
		st.freeze.Active, st.freeze.Reason, st.freeze.Operator, st.freeze.Until = true, a.Reason, ev.body.Proposer, issued.Add(a.Duration)
	case api.VerbThawCluster:
		st.freeze.Active, st.freeze.Reason, st.freeze.Operator, st.freeze.Until = false, "", ev.body.Proposer, issued
	case api.VerbFlushAvoidLists:
		st.flushAvoidGen = st.gen
	case api.VerbForceEvictReplica:
		st.evictions[evictKey{a.Chain, a.Peer}] = st.gen
	case api.VerbForceCutover:
		st.cutovers[a.Chain] = placement.Cutover{Chain: a.Chain, Target: a.Peer, Gen: st.gen}
	case api.VerbKillMigration:
		st.killedMigrations[a.Migration] = st.gen
	case api.VerbAddOperator:
		st.operators[a.OperatorID] = OperatorEntry{ID: a.OperatorID, Name: a.OperatorName, PublicKey: slices.Clone(ed25519.PublicKey(a.OperatorKey)), AddedAtMs: at}
	case api.VerbRemoveOperator:
		delete(st.operators, a.OperatorID)
	case api.VerbRotateOperator:
		old := st.operators[a.OperatorID]
		delete(st.operators, a.OperatorID)
		id := identity.IDFromPublicKey(a.OperatorKey)
		st.operators[id] = OperatorEntry{ID: id, Name: old.Name, PublicKey: slices.Clone(ed25519.PublicKey(a.OperatorKey)), AddedAtMs: at}
	}
	if ev.body.Kind == KindICE {
		st.lockouts[lockKey{a.Verb, a.Target()}] = at + ICECooldown.Milliseconds()
	}
}

// AuditRecordFor is ev's AUDIT line: Accepted when err is nil, else Rejected
// with err as the reason. Seq is the caller's (the local ledger's); At is
// set to the issue time and a ledger may overwrite it with its local time.
func AuditRecordFor(ev *Event, err error, seq uint64) api.AuditRecord {
	r := api.AuditRecord{
		Seq:        seq,
		EventID:    ev.id.String(),
		At:         ev.IssuedAt(),
		IssuedAt:   ev.IssuedAt(),
		Outcome:    api.Accepted,
		Operator:   ev.body.Proposer,
		Action:     ev.Action(),
		ICE:        ev.body.Kind == KindICE,
		Signatures: ev.Signatures(),
		Nonce:      ev.body.Nonce.String(),
	}
	if err != nil {
		r.Outcome, r.Reason = api.Rejected, err.Error()
	}
	return r
}

// Fold applies events to a fresh genesis state in ledger order, whatever
// order they are given in, exactly as a ledger keyed by LedgerKey folds them:
// sorted by (issued_at, ledger key), identical copies once. It returns the
// state and one audit record per stored event (Seq is the position in ledger
// order, from 1). It is the reference the node's ledger fold must match.
func Fold(g Genesis, events []*Event) (*AdminState, []api.AuditRecord, error) {
	st, err := NewState(g)
	if err != nil {
		return nil, nil, err
	}
	type keyed struct {
		ev  *Event
		key [32]byte
	}
	ks := make([]keyed, 0, len(events))
	for _, ev := range events {
		ks = append(ks, keyed{ev, ev.LedgerKey()})
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		return cmp.Or(cmp.Compare(a.ev.body.IssuedAtMs, b.ev.body.IssuedAtMs), bytes.Compare(a.key[:], b.key[:]))
	})
	ks = slices.CompactFunc(ks, func(a, b keyed) bool { return a.key == b.key })
	recs := make([]api.AuditRecord, 0, len(ks))
	for i, k := range ks {
		recs = append(recs, AuditRecordFor(k.ev, st.Apply(k.ev), uint64(i+1)))
	}
	return st, recs, nil
}

// IsRejection reports whether err refuses an event or a commit on its merits
// (one of this package's reasons, for AUDIT as Rejected), as opposed to a
// local failure such as a cancelled context or a ledger write error.
func IsRejection(err error) bool {
	for _, r := range []error{ErrMalformed, ErrWrongKind, ErrBadAction, ErrWrongPrefix, ErrExpired, ErrClockSkew, ErrWrongCluster, ErrUnknownOperator, ErrBadSignature, ErrRotateUnsigned,
		ErrBelowThreshold, ErrReplayedNonce, ErrLockedOut, ErrFrozen, ErrOperatorExists, ErrNotFound,
		ErrRegistryFloor, ErrStateFull} {
		if errors.Is(err, r) {
			return true
		}
	}
	return false
}
