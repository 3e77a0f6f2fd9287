// Package chainfold plugs the command plane into node/chain's admin ledger:
// a Validator that decodes each event and names its ledger position, and a
// chain.Folder that folds the ledger into a *command.AdminState. It is kept
// apart from node/command so that package stays free of storage.
package chainfold

import (
	"fmt"
	"time"

	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/command"
)

// Validator decodes raw with command.DecodeEvent (bounded, canonical, no
// trailing bytes), checks it is for cluster and returns its ledger position:
// (issued_at, command.Event.LedgerKey). Signatures are not checked here:
// they depend on the registry at the event's place in the fold, which only
// the fold knows; an event with bad signatures is stored and recorded as
// Rejected, so AUDIT can show the attempt.
//
// now, if not nil, also refuses events issued more than
// command.MaxClockSkew in the future (command.CheckIngest). That check reads
// the local clock, so use it for events arriving from peers and operators,
// and a nil clock where stored events are re-validated.
func Validator(cluster string, now func() time.Time) chain.Validator {
	return func(raw []byte) (chain.EventMeta, error) {
		ev, err := command.DecodeEvent(raw)
		if err != nil {
			return chain.EventMeta{}, err
		}
		if now != nil {
			if err := command.CheckIngest(ev, cluster, now()); err != nil {
				return chain.EventMeta{}, err
			}
		} else if ev.Cluster() != cluster {
			return chain.EventMeta{}, fmt.Errorf("%w: event for %q", command.ErrWrongCluster, ev.Cluster())
		}
		return chain.EventMeta{ID: ev.LedgerKey(), IssuedAt: ev.IssuedAtMs()}, nil
	}
}

// Folder folds the admin ledger into a *command.AdminState. It implements
// chain.Folder[*command.AdminState].
type Folder struct {
	genesis *command.AdminState // never mutated: Init clones it
	// onVerdict hears every event's outcome as it is folded; a refold
	// repeats it with the same verdict (the fold is deterministic), so
	// the receiver keys what it keeps by ledger key.
	onVerdict func(ledgerKey [32]byte, ev *command.Event, err error)
}

// NewFolder builds the genesis state once; Init hands out clones of it.
// onVerdict may be nil. It runs under the fold's lock and must not block.
func NewFolder(g command.Genesis, onVerdict func(ledgerKey [32]byte, ev *command.Event, err error)) (*Folder, error) {
	st, err := command.NewState(g)
	if err != nil {
		return nil, err
	}
	return &Folder{genesis: st, onVerdict: onVerdict}, nil
}

// Init is the genesis state.
func (f *Folder) Init() *command.AdminState { return f.genesis.Clone() }

// Apply folds one stored event into s (mutating it, as chain.Folder
// allows). The bytes come from disk, which is not trusted: an event that no
// longer decodes is reported and skipped, never a panic.
func (f *Folder) Apply(s *command.AdminState, e chain.Event) *command.AdminState {
	ev, err := command.DecodeEvent(e.Raw)
	if err != nil {
		if f.onVerdict != nil {
			f.onVerdict(e.Meta.ID, nil, fmt.Errorf("chainfold: stored event does not decode: %w", err))
		}
		return s
	}
	verdict := s.Apply(ev)
	if f.onVerdict != nil {
		f.onVerdict(e.Meta.ID, ev, verdict)
	}
	return s
}

// Clone deep-copies s for the fold's checkpoints.
func (f *Folder) Clone(s *command.AdminState) *command.AdminState { return s.Clone() }

var _ chain.Folder[*command.AdminState] = (*Folder)(nil)
