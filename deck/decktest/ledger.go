package decktest

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Genesis is the fixture cluster's genesis: operators alice, bob and carol
// (OperatorKey), admin threshold 1, ICE threshold 2. A test that needs other
// thresholds changes them here and hands the result to Client.SetLedger:
// that is a cluster born with them.
func Genesis() command.Genesis {
	g := command.Genesis{Cluster: ClusterName, AdminThreshold: 1, ICEThreshold: 2}
	for _, name := range []string{"alice", "bob", "carol"} {
		g.Operators = append(g.Operators, command.GenesisOperator{Name: name, PublicKey: OperatorKey(name).Public})
	}
	return g
}

// historyEvent is one event of the fixture's ledger history: issued at T0
// minus ago by proposer, co-signed by cosigners.
type historyEvent struct {
	ago       time.Duration
	proposer  string
	cosigners []string
	action    api.Action
}

// history is the fixture's admin ledger, oldest first: routine verbs that
// explain the snapshot (zion in maintenance, chiba cordoned and drained,
// straylight entering maintenance), then ICE: a freeze signed by two
// operators, a force-drain by mallory (not an operator: the fold rejects
// it) and a force-evict whose cooldown is still running at T0; then carol's
// revocation of molly (a registry event, in the quiet ledger too).
var history = []historyEvent{
	{3 * time.Hour, "alice", nil, api.Action{Verb: api.VerbCordon, Node: Zion}},
	{2*time.Hour + 50*time.Minute, "alice", nil, api.Action{Verb: api.VerbEnterMaintenance, Node: Zion, Duration: 10 * time.Minute}},
	{40 * time.Minute, "bob", nil, api.Action{Verb: api.VerbRestartDaemon, Daemon: "tracer-0"}},
	{12 * time.Minute, "alice", nil, api.Action{Verb: api.VerbCordon, Node: Chiba}},
	{6*time.Minute + 30*time.Second, "alice", nil, api.Action{Verb: api.VerbDrain, Node: Chiba, Duration: 5 * time.Minute}},
	{3 * time.Minute, "bob", nil, api.Action{Verb: api.VerbEnterMaintenance, Node: Straylight, Duration: 7*time.Minute + 12*time.Second}},
	{2*time.Minute + 30*time.Second, "alice", []string{"bob"}, api.Action{Verb: api.VerbFreezeCluster, Reason: "incident 4471: ledger divergence", Duration: 10 * time.Minute}},
	{2 * time.Minute, "mallory", nil, api.Action{Verb: api.VerbForceDrain, Node: Wintermute}},
	{55 * time.Second, "bob", []string{"alice"}, api.Action{Verb: api.VerbForceEvictReplica, Chain: "ledger", Peer: Chiba}},
	// Membership, listed last so the entries above keep their nonces (the
	// fold orders the ledger by issue time): carol revoked molly.
	{MollyRevokedAgo, "carol", nil, api.Action{Verb: api.VerbRevokeNode, Node: Molly}},
}

// Ledger is the fixture's admin ledger history as signed events (see
// history), the events Snapshot and Audit are folded from.
func Ledger() []*command.Event {
	out := make([]*command.Event, len(history))
	for i, h := range history {
		out[i] = historyEventAt(i, h)
	}
	return out
}

// QuietLedger is the routine part of Ledger (no ICE event: no freeze, no
// lockout), the ledger behind Quiet.
func QuietLedger() []*command.Event {
	var out []*command.Event
	for i, h := range history {
		if !h.action.Verb.IsICE() {
			out = append(out, historyEventAt(i, h))
		}
	}
	return out
}

// nonceAt is the fixture's i-th nonce material: fixed, distinct per i.
// History entry i takes nonceAt(i); the command plane draws the ones after
// (nonceStream).
func nonceAt(i uint64) [32]byte {
	return sha256.Sum256(binary.BigEndian.AppendUint64([]byte("deck-fixture-nonce:"), i))
}

// historyEventAt seals history entry i: its nonce (nonceAt(i)), the
// signatures of the proposer and co-signers over the real signing payload.
// The projection these events were signed against is not part of the
// fixture (the cluster has moved on since), so each binds the hash of its
// action's empty projection.
func historyEventAt(i int, h historyEvent) *command.Event {
	kind, ok := command.KindOf(h.action.Verb)
	if !ok {
		panic(fmt.Sprintf("decktest: history %d: unknown verb %q", i, h.action.Verb))
	}
	empty := api.BlastRadius{Action: h.action}
	bound := command.HashMoves(&empty)
	if kind == command.KindICE {
		bound = command.HashBlastRadius(&empty)
	}
	var nonce command.Nonce
	seed := nonceAt(uint64(i))
	copy(nonce[:], seed[:])
	body := command.Body{Kind: kind, Cluster: ClusterName, Action: h.action, Proposer: OperatorKey(h.proposer).ID,
		Nonce: nonce, IssuedAtMs: ago(h.ago).UnixMilli(), BlastHash: bound}
	payload, err := body.SigningPayload()
	if err != nil {
		// The history is a literal above: a bad entry is a fixture bug
		// every test finds at once.
		panic(fmt.Sprintf("decktest: history %d: %v", i, err))
	}
	var sigs []api.Signature
	for _, name := range append([]string{h.proposer}, h.cosigners...) {
		sigs = append(sigs, SignAs(name, payload))
	}
	ev, err := command.NewEvent(body, sigs)
	if err != nil {
		panic(fmt.Sprintf("decktest: history %d: %v", i, err))
	}
	return ev
}

// Audit is the AUDIT trail of Ledger as the node's fold records it: one
// record per event in ledger order, mallory's force-drain rejected.
func Audit() []api.AuditRecord {
	_, recs := fold(Genesis(), Ledger())
	return recs
}

// fold is command.Fold on the fixture's own genesis and events; an error is
// a fixture bug (a genesis the fixture wrote), found by every test at once.
func fold(g command.Genesis, events []*command.Event) (*command.AdminState, []api.AuditRecord) {
	st, recs, err := command.Fold(g, events)
	if err != nil {
		panic(fmt.Sprintf("decktest: fold: %v", err))
	}
	return st, recs
}

// withLedger returns cs with the fields the admin fold of events owns,
// filled as the node's cluster view fills them, at T0.
func withLedger(cs *snapshot.ClusterSnapshot, g command.Genesis, events []*command.Event) *snapshot.ClusterSnapshot {
	st, _ := fold(g, events)
	fillAdmin(cs, st, uint64(len(events)), T0)
	return cs
}

// fillAdmin sets what the admin state owns in cs (freeze as of now,
// registry, thresholds, running lockouts) and the ledger head of a ledger
// of n events, as clusterview.Fold does on a node.
func fillAdmin(cs *snapshot.ClusterSnapshot, st *command.AdminState, n uint64, now time.Time) {
	st.FillSnapshot(cs, now)
	cs.AdminHead = snapshot.AdminHead{Count: n, LastSeq: n, AppliedThrough: st.Position()}
}
