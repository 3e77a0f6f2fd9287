package command

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/placement"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Source is the node's current view, read at every command. AdminState
// must return a published state that nobody mutates any more (the node
// folds into a Clone and swaps it in); this package only reads it.
type Source interface {
	Snapshot() *snapshot.ClusterSnapshot
	Spec() placement.Spec
	AdminState() *AdminState
}

// Committer puts a signed event on the admin ledger: the node inserts it
// into its local ledger (where the fold verifies it like any event) and
// spreads it to its peers. It returns the local ledger seq.
type Committer interface {
	Commit(ctx context.Context, ev *Event) (seq uint64, err error)
}

// Config wires a Commands.
type Config struct {
	// Signer is the local operator key; nil makes a read-only console that
	// can still preview, load and check, and commit others' signatures.
	Signer    identity.Signer
	Source    Source
	Committer Committer
	// Now is the clock (nil: time.Now); Rand the nonce source (nil:
	// crypto/rand). Tests set both.
	Now  func() time.Time
	Rand io.Reader
}

// Commands is the command plane for one console: api.AdminCommands through
// Admin, api.IceCommands through ICE, and Preview.
type Commands struct {
	cfg Config
}

// New checks cfg and builds the command plane.
func New(cfg Config) (*Commands, error) {
	if cfg.Source == nil || cfg.Committer == nil {
		return nil, errors.New("command: Config needs a Source and a Committer")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	return &Commands{cfg: cfg}, nil
}

// Admin is the routine verbs.
func (c *Commands) Admin() api.AdminCommands { return adminCommands{c} }

// ICE is the break-glass verbs.
func (c *Commands) ICE() api.IceCommands { return iceCommands{c} }

// Preview projects a's blast radius on the current view.
func (c *Commands) Preview(ctx context.Context, a api.Action) (api.BlastRadius, error) {
	if err := ctx.Err(); err != nil {
		return api.BlastRadius{}, err
	}
	return PreviewWith(c.cfg.Source.Snapshot(), c.cfg.Source.Spec(), c.cfg.Source.AdminState(), a)
}

func (c *Commands) nonce() (Nonce, error) {
	var n Nonce
	for n == (Nonce{}) {
		if _, err := io.ReadFull(c.cfg.Rand, n[:]); err != nil {
			return Nonce{}, fmt.Errorf("command: nonce: %w", err)
		}
	}
	return n, nil
}

// Prepare builds, previews and checks an admin or registry event and
// returns it ready to sign, bound to the projection it computes (its
// HashMoves is the event's BlastHash). Admin().Commit uses it with the local
// signature alone; when the admin threshold is above one, its
// SigningPayload goes to co-signers exactly like an ICE payload.
func (c *Commands) Prepare(ctx context.Context, a api.Action) (api.SimulatedProposal, error) {
	return asProposal(c.prepare(ctx, a, nil))
}

// PrepareConfirmed is Prepare bound to the projection the operator
// confirmed: when the projection recomputed now moves anything differently
// it returns an *api.PreviewChangedError with the new one and prepares
// nothing.
func (c *Commands) PrepareConfirmed(ctx context.Context, confirmed api.BlastRadius) (api.SimulatedProposal, error) {
	return asProposal(c.prepare(ctx, confirmed.Action, &confirmed))
}

// asProposal keeps a nil *simulated from becoming a non-nil interface.
func asProposal(s *simulated, err error) (api.SimulatedProposal, error) {
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (c *Commands) prepare(ctx context.Context, a api.Action, confirmed *api.BlastRadius) (*simulated, error) {
	if c.cfg.Signer == nil {
		return nil, ErrNoSigner
	}
	a = normalizeAction(a)
	kind, ok := KindOf(a.Verb)
	if !ok || kind == KindICE {
		return nil, reject(ErrBadAction, "%q is not an admin or registry verb", truncate(string(a.Verb), MaxVerbBytes))
	}
	if err := ValidateAction(&a); err != nil {
		return nil, err
	}
	br, err := c.Preview(ctx, a)
	if err != nil {
		return nil, err
	}
	if confirmed != nil {
		seen := *confirmed
		seen.Action = normalizeAction(seen.Action)
		if err := PreviewChanged(&seen, &br); err != nil {
			return nil, err
		}
	}
	n, err := c.nonce()
	if err != nil {
		return nil, err
	}
	st := c.cfg.Source.AdminState()
	body := Body{Kind: kind, Cluster: st.Cluster(), Action: a, Proposer: c.cfg.Signer.SignerID(),
		Nonce: n, IssuedAtMs: c.cfg.Now().UnixMilli(), BlastHash: HashMoves(&br)}
	return c.newSimulated(body, br)
}

// AddOperator, RemoveOperator and RotateOperator are the registry verbs.
// Rotate is signed by the local (old) key and by next, the new key, which
// proves the new key's holder agreed.
func (c *Commands) AddOperator(ctx context.Context, name string, pub []byte) (api.Receipt, error) {
	a := api.Action{Verb: api.VerbAddOperator, OperatorName: name, OperatorKey: pub}
	if len(pub) == 32 {
		a.OperatorID = identity.IDFromPublicKey(pub)
	}
	return c.commitAdmin(ctx, a, nil)
}

func (c *Commands) RemoveOperator(ctx context.Context, id identity.NodeID) (api.Receipt, error) {
	return c.commitAdmin(ctx, api.Action{Verb: api.VerbRemoveOperator, OperatorID: id}, nil)
}

func (c *Commands) RotateOperator(ctx context.Context, next identity.Signer) (api.Receipt, error) {
	if c.cfg.Signer == nil {
		return api.Receipt{}, ErrNoSigner
	}
	if next == nil {
		return api.Receipt{}, reject(ErrBadAction, "rotate needs the new key")
	}
	a := api.Action{Verb: api.VerbRotateOperator, OperatorID: c.cfg.Signer.SignerID(), OperatorKey: next.PublicKey()}
	return c.commitAdmin(ctx, a, next)
}

// commitAdmin prepares, signs with the local key (and extra, if any) and
// commits.
func (c *Commands) commitAdmin(ctx context.Context, a api.Action, extra identity.Signer) (api.Receipt, error) {
	sp, err := c.Prepare(ctx, a)
	if err != nil {
		return api.Receipt{}, err
	}
	sig, err := sp.Sign()
	if err != nil {
		return api.Receipt{}, err
	}
	sigs := []api.Signature{sig}
	if extra != nil {
		s, err := extra.Sign(sp.SigningPayload())
		if err != nil {
			return api.Receipt{}, fmt.Errorf("command: sign with the new key: %w", err)
		}
		sigs = append(sigs, api.Signature{Operator: extra.SignerID(), Sig: s})
	}
	return sp.Commit(ctx, sigs)
}

// adminCommands implements api.AdminCommands.
type adminCommands struct{ c *Commands }

func (ac adminCommands) Commit(ctx context.Context, a api.Action) (api.Receipt, error) {
	return ac.c.commitAdmin(ctx, a, nil)
}

func (ac adminCommands) Prepare(ctx context.Context, confirmed api.BlastRadius) (api.SimulatedProposal, error) {
	return ac.c.PrepareConfirmed(ctx, confirmed)
}

func (ac adminCommands) Threshold() int {
	admin, _ := ac.c.cfg.Source.AdminState().Thresholds()
	return admin
}

func (ac adminCommands) node(ctx context.Context, v api.Verb, n identity.NodeID, d time.Duration) (api.Receipt, error) {
	return ac.Commit(ctx, api.Action{Verb: v, Node: n, Duration: d})
}

func (ac adminCommands) Drain(ctx context.Context, n identity.NodeID, drainFor time.Duration) (api.Receipt, error) {
	return ac.node(ctx, api.VerbDrain, n, drainFor)
}
func (ac adminCommands) EnterMaintenance(ctx context.Context, n identity.NodeID, deadline time.Duration) (api.Receipt, error) {
	return ac.node(ctx, api.VerbEnterMaintenance, n, deadline)
}
func (ac adminCommands) ExitMaintenance(ctx context.Context, n identity.NodeID) (api.Receipt, error) {
	return ac.node(ctx, api.VerbExitMaintenance, n, 0)
}
func (ac adminCommands) Cordon(ctx context.Context, n identity.NodeID) (api.Receipt, error) {
	return ac.node(ctx, api.VerbCordon, n, 0)
}
func (ac adminCommands) Uncordon(ctx context.Context, n identity.NodeID) (api.Receipt, error) {
	return ac.node(ctx, api.VerbUncordon, n, 0)
}
func (ac adminCommands) DropReplicas(ctx context.Context, n identity.NodeID, chains []string) (api.Receipt, error) {
	return ac.Commit(ctx, api.Action{Verb: api.VerbDropReplicas, Node: n, Chains: chains})
}
func (ac adminCommands) InvalidatePlacement(ctx context.Context, n identity.NodeID) (api.Receipt, error) {
	return ac.node(ctx, api.VerbInvalidatePlacement, n, 0)
}
func (ac adminCommands) RestartAllDaemons(ctx context.Context, n identity.NodeID) (api.Receipt, error) {
	return ac.node(ctx, api.VerbRestartAllDaemons, n, 0)
}
func (ac adminCommands) ClearAvoidList(ctx context.Context, n identity.NodeID) (api.Receipt, error) {
	return ac.node(ctx, api.VerbClearAvoidList, n, 0)
}
func (ac adminCommands) RestartDaemon(ctx context.Context, daemon string) (api.Receipt, error) {
	return ac.Commit(ctx, api.Action{Verb: api.VerbRestartDaemon, Daemon: daemon})
}

// iceCommands implements api.IceCommands.
type iceCommands struct{ c *Commands }

func (ic iceCommands) Propose(ctx context.Context, a api.Action) (api.Proposal, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if ic.c.cfg.Signer == nil {
		// The proposer is bound into the payload and must sign it; a
		// read-only console previews instead.
		return nil, ErrNoSigner
	}
	a = normalizeAction(a)
	if !a.Verb.IsICE() {
		return nil, reject(ErrBadAction, "%q is not an ICE verb", truncate(string(a.Verb), MaxVerbBytes))
	}
	if err := ValidateAction(&a); err != nil {
		return nil, err
	}
	return &proposal{c: ic.c, a: a}, nil
}

func (ic iceCommands) FreezeCluster(ctx context.Context, reason string, ttl time.Duration) (api.Proposal, error) {
	return ic.Propose(ctx, api.Action{Verb: api.VerbFreezeCluster, Reason: reason, Duration: ttl})
}
func (ic iceCommands) ThawCluster(ctx context.Context) (api.Proposal, error) {
	return ic.Propose(ctx, api.Action{Verb: api.VerbThawCluster})
}
func (ic iceCommands) FlushAvoidLists(ctx context.Context) (api.Proposal, error) {
	return ic.Propose(ctx, api.Action{Verb: api.VerbFlushAvoidLists})
}
func (ic iceCommands) ForceEvictReplica(ctx context.Context, chain string, victim identity.NodeID) (api.Proposal, error) {
	return ic.Propose(ctx, api.Action{Verb: api.VerbForceEvictReplica, Chain: chain, Peer: victim})
}
func (ic iceCommands) ForceRestartDaemon(ctx context.Context, daemon string) (api.Proposal, error) {
	return ic.Propose(ctx, api.Action{Verb: api.VerbForceRestartDaemon, Daemon: daemon})
}
func (ic iceCommands) ForceCutover(ctx context.Context, chain string, target identity.NodeID) (api.Proposal, error) {
	return ic.Propose(ctx, api.Action{Verb: api.VerbForceCutover, Chain: chain, Peer: target})
}
func (ic iceCommands) KillMigration(ctx context.Context, id string) (api.Proposal, error) {
	return ic.Propose(ctx, api.Action{Verb: api.VerbKillMigration, Migration: id})
}
func (ic iceCommands) ForceDrain(ctx context.Context, n identity.NodeID) (api.Proposal, error) {
	return ic.Propose(ctx, api.Action{Verb: api.VerbForceDrain, Node: n})
}

func (ic iceCommands) Threshold() int {
	_, ice := ic.c.cfg.Source.AdminState().Thresholds()
	return ice
}

// Load rebuilds a proposal from an exported signing payload so a second
// operator can review, check and co-sign it. The projection is recomputed
// here; if it differs from the one the proposer's signers were shown (the
// hash in the payload), a warning says so. ICE and admin payloads both load.
func (ic iceCommands) Load(ctx context.Context, payload []byte) (api.SimulatedProposal, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := ic.c
	body, err := DecodeSigningPayload(payload)
	if err != nil {
		return nil, err
	}
	st := c.cfg.Source.AdminState()
	if body.Cluster != st.Cluster() {
		return nil, reject(ErrWrongCluster, "payload for %q, this is %q", body.Cluster, st.Cluster())
	}
	if st.NonceUsed(body.Nonce) {
		return nil, reject(ErrReplayedNonce, "nonce %s already committed", body.Nonce)
	}
	br, err := PreviewWith(c.cfg.Source.Snapshot(), c.cfg.Source.Spec(), st, body.Action)
	if err != nil {
		return nil, err
	}
	if body.Kind == KindICE && br.Hash != body.BlastHash {
		br.Warnings = append(br.Warnings, "the projection on this node differs from the one the proposer signed: the cluster changed since, review before signing")
	}
	if body.Kind != KindICE && body.BlastHash != ([32]byte{}) && HashMoves(&br) != body.BlastHash {
		br.Warnings = append(br.Warnings, "what this action moves differs from what the proposer confirmed: the commit will be refused until it is proposed again")
	}
	sp, err := c.newSimulated(body, br)
	if err != nil {
		return nil, err
	}
	if err := sp.window(); err != nil {
		return nil, err
	}
	return sp, nil
}

// proposal is an ICE action not yet simulated.
type proposal struct {
	c        *Commands
	a        api.Action
	consumed atomic.Bool
}

func (p *proposal) Action() api.Action { return cloneAction(p.a) }

// Simulate projects the blast radius, draws the nonce, stamps issued_at and
// binds the projection's hash into the signing payload. It consumes p.
func (p *proposal) Simulate(ctx context.Context) (api.SimulatedProposal, error) {
	if p.consumed.Swap(true) {
		return nil, ErrConsumed
	}
	c := p.c
	br, err := c.Preview(ctx, p.a)
	if err != nil {
		return nil, err
	}
	st := c.cfg.Source.AdminState()
	now := c.cfg.Now()
	if until, locked := st.LockedOut(p.a, now); locked {
		return nil, reject(ErrLockedOut, "%s on %s until %s", p.a.Verb, p.a.Target(), until.Format(time.RFC3339))
	}
	n, err := c.nonce()
	if err != nil {
		return nil, err
	}
	body := Body{Kind: KindICE, Cluster: st.Cluster(), Action: p.a, Proposer: c.cfg.Signer.SignerID(),
		Nonce: n, IssuedAtMs: now.UnixMilli(), BlastHash: br.Hash}
	return c.newSimulated(body, br)
}

// simulated is a signed-payload-in-waiting: ICE after Simulate, admin after
// Prepare, either after Load.
type simulated struct {
	c        *Commands
	body     Body
	payload  []byte
	br       api.BlastRadius
	consumed atomic.Bool
}

func (c *Commands) newSimulated(body Body, br api.BlastRadius) (*simulated, error) {
	payload, err := body.SigningPayload()
	if err != nil {
		return nil, err
	}
	return &simulated{c: c, body: body, payload: payload, br: br}, nil
}

func (s *simulated) Action() api.Action           { return cloneAction(s.body.Action) }
func (s *simulated) SigningPayload() []byte       { return slices.Clone(s.payload) }
func (s *simulated) IssuedAt() time.Time          { return s.body.IssuedAt() }
func (s *simulated) ExpiresAt() time.Time         { return s.IssuedAt().Add(s.windowLen()) }
func (s *simulated) BlastRadius() api.BlastRadius { return cloneRadius(s.br) }

func (s *simulated) windowLen() time.Duration {
	if s.body.Kind == KindICE {
		return ICECommitWindow
	}
	return AdminCommitWindow
}

func (s *simulated) window() error {
	now := s.c.cfg.Now()
	if ahead := s.IssuedAt().Sub(now); ahead > MaxClockSkew {
		return reject(ErrClockSkew, "issued %v ahead of this node's clock", ahead.Round(time.Millisecond))
	}
	if now.After(s.ExpiresAt()) {
		return reject(ErrExpired, "expired at %s", s.ExpiresAt().Format(time.RFC3339))
	}
	return nil
}

// Sign signs the payload with the local operator key. There is no fallback
// key: without an operator key there is no signature.
func (s *simulated) Sign() (api.Signature, error) {
	signer := s.c.cfg.Signer
	if signer == nil {
		return api.Signature{}, ErrNoSigner
	}
	if err := s.window(); err != nil {
		return api.Signature{}, err
	}
	sig, err := signer.Sign(s.payload)
	if err != nil {
		return api.Signature{}, fmt.Errorf("command: sign: %w", err)
	}
	out := api.Signature{Operator: signer.SignerID(), Sig: sig}
	if err := s.Check(out); err != nil {
		return api.Signature{}, err
	}
	return out, nil
}

// Check verifies one signature against the payload and the current
// registry (for a rotation, the new key also counts as a known signer).
func (s *simulated) Check(sig api.Signature) error {
	st := s.c.cfg.Source.AdminState()
	op, ok := st.Operator(sig.Operator)
	pub := op.PublicKey
	if !ok {
		a := &s.body.Action
		if a.Verb == api.VerbRotateOperator && identity.IDFromPublicKey(a.OperatorKey) == sig.Operator {
			pub = a.OperatorKey
		} else {
			return reject(ErrUnknownOperator, "%s", sig.Operator)
		}
	}
	if err := identity.Verify(sig.Operator, pub, s.payload, sig.Sig); err != nil {
		return fmt.Errorf("%w: operator %s: %w", ErrBadSignature, sig.Operator, err)
	}
	return nil
}

// Commit seals the payload with sigs and hands it to the Committer after
// running the very checks the fold will run (so a commit that every node
// would reject is refused here, with the reason). It consumes s, whatever
// the outcome: a new attempt starts from the payload (Load).
func (s *simulated) Commit(ctx context.Context, sigs []api.Signature) (api.Receipt, error) {
	if s.consumed.Swap(true) {
		return api.Receipt{}, ErrConsumed
	}
	if err := ctx.Err(); err != nil {
		return api.Receipt{}, err
	}
	if err := s.window(); err != nil {
		return api.Receipt{}, err
	}
	if len(sigs) == 0 {
		return api.Receipt{}, reject(ErrBelowThreshold, "no signatures")
	}
	if err := s.unchanged(ctx); err != nil {
		return api.Receipt{}, err
	}
	ev, err := NewEvent(s.body, sigs)
	if err != nil {
		return api.Receipt{}, err
	}
	st := s.c.cfg.Source.AdminState()
	if err := st.Verify(ev); err != nil {
		return api.Receipt{}, err
	}
	seq, err := s.c.cfg.Committer.Commit(ctx, ev)
	if err != nil {
		return api.Receipt{}, fmt.Errorf("command: commit %s: %w", ev.ID().Short(), err)
	}
	return api.Receipt{
		EventID:     ev.ID().String(),
		Verb:        ev.Verb(),
		Target:      s.body.Action.Target(),
		Operator:    s.body.Proposer,
		CommittedAt: s.c.cfg.Now(),
		Seq:         seq,
	}, nil
}

// unchanged recomputes an admin or registry event's projection on the
// committing console and refuses the commit when it no longer moves what the
// signers confirmed (the event's BlastHash). ICE events bind their whole
// projection at Simulate and are checked by their co-signers on Load.
func (s *simulated) unchanged(ctx context.Context) error {
	if s.body.Kind == KindICE || s.body.BlastHash == ([32]byte{}) {
		return nil
	}
	now, err := s.c.Preview(ctx, s.body.Action)
	if err != nil {
		return err
	}
	if HashMoves(&now) == s.body.BlastHash {
		return nil
	}
	changes := DiffMoves(&s.br, &now)
	if len(changes) == 0 {
		changes = []string{"what moves differs from the projection the proposer confirmed"}
	}
	return &api.PreviewChangedError{Changes: changes, Preview: now}
}

func cloneRadius(br api.BlastRadius) api.BlastRadius {
	br.Action = cloneAction(br.Action)
	br.Nodes = slices.Clone(br.Nodes)
	br.Replicas = slices.Clone(br.Replicas)
	br.Daemons = slices.Clone(br.Daemons)
	br.Restarted = slices.Clone(br.Restarted)
	br.Migrated = slices.Clone(br.Migrated)
	br.Leaders = slices.Clone(br.Leaders)
	br.HotNodes = slices.Clone(br.HotNodes)
	br.Warnings = slices.Clone(br.Warnings)
	br.BlobMoves = slices.Clone(br.BlobMoves)
	return br
}

var (
	_ api.AdminCommands     = adminCommands{}
	_ api.IceCommands       = iceCommands{}
	_ api.Proposal          = (*proposal)(nil)
	_ api.SimulatedProposal = (*simulated)(nil)
)
