package chainfold

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/identity"
)

// AttesterCheck decides whether a receipt's attester is a certified member
// of the mesh with role node (a console's receipt attests nothing), and not
// revoked: id and key are the receipt's, cert its certificate bytes (nil:
// the attester has no standalone certificate and a ledger admission may
// stand in), at the receipt's time. The certificate must have been valid at
// at; revocation applies whatever at says (a revoked node dates its
// receipts as it likes). It must be safe for concurrent use and must not
// block.
type AttesterCheck func(id identity.NodeID, key ed25519.PublicKey, cert []byte, at time.Time) error

// Attester is what a node attests with: its key and its certificate bytes
// (role node).
type Attester struct {
	Key  *identity.Key
	Cert []byte
}

// IngestConfig wires Ingest to its node.
type IngestConfig struct {
	Cluster string
	// Now is the receiving node's clock; nil: time.Now.
	Now func() time.Time
	// Skew is the clock skew allowance; 0: command.DefaultClockSkewAllowance.
	Skew time.Duration
	// Held reports whether the ledger already holds the event (its ledger
	// key): a held event is not judged again.
	Held func(id [32]byte) (bool, error)
	// Registry is the operator registry in force at pos, as of every event
	// this node has stored (the node reads State.RegistryAt once its fold
	// has caught up with the ledger's head).
	Registry func(pos chain.Position) (*command.Registry, error)
	// AttesterCheck judges a receipt's attester; nil believes no receipt,
	// so nothing is accepted after its window.
	AttesterCheck AttesterCheck
	// Attest, if set, makes this node sign a receipt for every event it
	// accepts fresh. Nil for a node without a certificate of role node.
	Attest *Attester
}

// Ingest is the gate every event arriving at a node passes (its own
// operator's commits, peers' pushes, anti-entropy pulls): a chain.Admitter.
// In order, cheapest first, so junk costs little:
//
//  1. it decodes (command.DecodeEvent) and is for this cluster, with at
//     most one signature per operator;
//  2. an event the ledger already holds is not judged again (it passed
//     when it came): a duplicate, acknowledged as such;
//  3. by this node's clock it was issued at most Skew in the future, and
//     either no longer ago than its commit window plus Skew (fresh), or it
//     comes with at least one receipt (see Receipt) that verifies, by a
//     certified node (AttesterCheck), dated inside that window around its
//     issue time (late: a partition, a restart);
//  4. its signatures verify against the registry in force at its own
//     position in the (issued_at, id) order (Registry), as the fold will
//     check them.
//
// A fresh event is attested: this node's own receipt is stored beside it,
// with the receipts that came with it and verified, at most
// MaxReceiptsPerEvent. Events the fold then rejects on other grounds (a
// freeze, a replayed nonce, a lockout) are stored and shown in AUDIT: those
// depend on the whole order, which only the fold knows. What Ingest refuses
// is never stored: AUDIT shows it from the local reject ring, named by its
// sender.
//
// Why the registry at the event's position, and not the current one or
// the fold state there: the current registry would refuse every event by
// an operator since removed, including old ones a late node still needs;
// the full fold state at a past position would cost a refold per event.
// The registry changes only by registry events, so the fold keeps one
// immutable version per change (State.Registry, bounded) and Ingest looks
// its version up by position. An event whose registry change has not
// reached this node yet (an add-operator still in flight) is refused now;
// anti-entropy offers it again in a later round, and it is accepted then.
type Ingest struct {
	cfg   IngestConfig
	stats ingestStats
}

type ingestStats struct {
	fresh, late, held, refused, attested atomic.Uint64
}

// IngestStats count what Ingest decided.
type IngestStats struct {
	Fresh    uint64 // accepted inside their window by this node's clock
	Late     uint64 // accepted after it, on a receipt
	Held     uint64 // already in the ledger: not judged again
	Refused  uint64
	Attested uint64 // receipts this node signed
}

// ErrNoReceipt is wrapped by the refusal of an event that arrived after its
// window without a receipt that verifies.
var ErrNoReceipt = errors.New("chainfold: no valid receipt from a certified node")

// NewIngest checks cfg and makes the gate.
func NewIngest(cfg IngestConfig) (*Ingest, error) {
	switch {
	case cfg.Cluster == "":
		return nil, errors.New("chainfold: ingest without a cluster")
	case cfg.Held == nil || cfg.Registry == nil:
		return nil, errors.New("chainfold: ingest needs Held and Registry")
	case cfg.Skew < 0:
		return nil, fmt.Errorf("chainfold: negative clock skew allowance %v", cfg.Skew)
	case cfg.Attest != nil && cfg.Attest.Key == nil:
		return nil, errors.New("chainfold: attester without a key")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Skew == 0 {
		cfg.Skew = command.DefaultClockSkewAllowance
	}
	return &Ingest{cfg: cfg}, nil
}

// Skew is the clock skew allowance in force.
func (g *Ingest) Skew() time.Duration { return g.cfg.Skew }

// Stats reports the counters.
func (g *Ingest) Stats() IngestStats {
	s := &g.stats
	return IngestStats{Fresh: s.fresh.Load(), Late: s.late.Load(), Held: s.held.Load(), Refused: s.refused.Load(), Attested: s.attested.Load()}
}

// Validator is the re-validation of stored events (chain.Ledger.Verify):
// decode and cluster only, no clock.
func (g *Ingest) Validator() chain.Validator { return Validator(g.cfg.Cluster, nil) }

// Admit implements chain.Admitter.
func (g *Ingest) Admit(in chain.Incoming) (chain.EventMeta, error) {
	meta, err := g.admit(in)
	if err != nil {
		g.stats.refused.Add(1)
	}
	return meta, err
}

func (g *Ingest) admit(in chain.Incoming) (chain.EventMeta, error) {
	ev, err := command.DecodeEvent(in.Raw)
	if err != nil {
		return chain.EventMeta{}, err
	}
	meta := chain.EventMeta{ID: ev.LedgerKey(), IssuedAt: ev.IssuedAtMs(), Decoded: ev}
	if ev.Cluster() != g.cfg.Cluster {
		return meta, fmt.Errorf("%w: event for %q", command.ErrWrongCluster, ev.Cluster())
	}
	if held, err := g.cfg.Held(meta.ID); err == nil && held {
		g.stats.held.Add(1)
		return meta, nil // the ledger counts it as a duplicate
	}
	if err := command.CheckOneSignaturePerOperator(ev); err != nil {
		return meta, err
	}
	now := g.cfg.Now()
	var kept []Receipt
	fresh := command.CheckFresh(ev, now, g.cfg.Skew)
	if fresh != nil {
		if errors.Is(fresh, command.ErrClockSkew) {
			return meta, fresh // from the future: no receipt can vouch for it
		}
		var why string
		kept, why = g.receipts(ev, meta.ID, in.Attachment, MaxReceiptsPerEvent)
		if len(kept) == 0 {
			return meta, fmt.Errorf("%w: %w: %s", fresh, ErrNoReceipt, why)
		}
	}
	reg, err := g.cfg.Registry(meta.Pos())
	if err != nil {
		return meta, err
	}
	if err := reg.VerifySignatures(ev); err != nil {
		return meta, err
	}
	if fresh == nil {
		kept = kept[:0]
		if a := g.cfg.Attest; a != nil {
			own, err := SignReceipt(a.Key, a.Cert, meta.ID, now)
			if err != nil {
				return meta, fmt.Errorf("chainfold: attest: %w", err)
			}
			kept = append(kept, own)
			g.stats.attested.Add(1)
		}
		more, _ := g.receipts(ev, meta.ID, in.Attachment, MaxReceiptsPerEvent-len(kept))
		kept = dedupReceipts(append(kept, more...))
		g.stats.fresh.Add(1)
	} else {
		g.stats.late.Add(1)
	}
	if len(kept) > 0 {
		if meta.Attachment, err = AppendReceipts(nil, kept); err != nil {
			return meta, err
		}
	}
	return meta, nil
}

// receipts decodes att and returns up to limit receipts that verify for
// event id, by distinct attesters, each dated inside ev's receipt window
// and vouched for by AttesterCheck, in the order they came; why says what
// was wrong with the others. Time windows are checked before signatures.
func (g *Ingest) receipts(ev *command.Event, id [32]byte, att []byte, limit int) ([]Receipt, string) {
	if limit <= 0 || len(att) == 0 {
		return nil, "none came with it"
	}
	rs, err := DecodeReceipts(att)
	if err != nil {
		return nil, err.Error()
	}
	var ok []Receipt
	var why []string
	for _, r := range rs {
		if len(ok) >= limit {
			break
		}
		if err := g.checkReceipt(ev, id, &r); err != nil {
			why = append(why, err.Error())
			continue
		}
		ok = dedupReceipts(append(ok, r))
	}
	if len(rs) == 0 {
		why = append(why, "none came with it")
	}
	return ok, strings.Join(why, "; ")
}

func (g *Ingest) checkReceipt(ev *command.Event, id [32]byte, r *Receipt) error {
	at := r.ReceivedAt()
	if !command.InReceiptWindow(ev, at, g.cfg.Skew) {
		return fmt.Errorf("%w: %s's receipt is dated %s, outside the event's window", ErrReceipt, r.Node, at.Format(time.RFC3339))
	}
	if err := r.VerifySignature(id); err != nil {
		return err
	}
	if g.cfg.AttesterCheck == nil {
		return fmt.Errorf("%w: no attester check configured", ErrReceipt)
	}
	if err := g.cfg.AttesterCheck(r.Node, r.Key, r.Cert, at); err != nil {
		return fmt.Errorf("%w: attester %s: %w", ErrReceipt, r.Node, err)
	}
	return nil
}

// dedupReceipts keeps the first receipt of each attester.
func dedupReceipts(rs []Receipt) []Receipt {
	out := rs[:0]
	for _, r := range rs {
		dup := false
		for _, o := range out {
			if o.Node == r.Node {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, r)
		}
	}
	return out
}

var _ chain.Admitter = (*Ingest)(nil).Admit
