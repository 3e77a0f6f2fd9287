// Package chainfold plugs the command plane into node/chain's admin ledger:
// Ingest, the gate every arriving event passes (the one place an event is
// decoded on its way in; signatures at the event's position, freshness by
// this node's clock, receipts for late events), the receipts nodes sign
// for the events they accept fresh, the Validator stored events are checked
// with, the Folder that folds the ledger into the admin state, its audit
// trail and its registry history, and the commit push protocol that carries
// a console's events to its peers. It is kept apart from node/command so that package
// stays free of storage.
package chainfold

import (
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/command"
)

// Validator decodes raw with command.DecodeEvent (bounded, canonical, no
// trailing bytes), checks it is for cluster and returns its ledger position.
// It is what stored events are re-validated with (chain.Ledger.Verify,
// `deck audit --verify --data`) and what tests of the fold store events
// through; events arriving at a node pass Ingest.Admit, which also checks
// signatures, freshness and receipts. It returns the position:
// (issued_at, command.Event.LedgerKey), with the decoded *command.Event in
// EventMeta.Decoded so nothing downstream decodes the bytes again. An event
// it decodes but refuses comes back with its meta too, so the caller can
// record what it refused. Signatures are not checked here: they depend on
// the registry at the event's place in the fold, which only the fold knows;
// an event with bad signatures is stored and recorded as Rejected, so AUDIT
// can show the attempt.
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
		meta := chain.EventMeta{ID: ev.LedgerKey(), IssuedAt: ev.IssuedAtMs(), Decoded: ev}
		if now != nil {
			if err := command.CheckIngest(ev, cluster, now()); err != nil {
				return meta, err
			}
		} else if ev.Cluster() != cluster {
			return meta, fmt.Errorf("%w: event for %q", command.ErrWrongCluster, ev.Cluster())
		}
		return meta, nil
	}
}

// EventOf is the decoded event a Validator of this package returned in
// meta, or nil.
func EventOf(meta chain.EventMeta) *command.Event {
	ev, _ := meta.Decoded.(*command.Event)
	return ev
}

// State is the admin ledger's fold: the admin state, and one audit record
// per folded event in fold order.
type State struct {
	Admin *command.AdminState
	// Audit records carry Seq = their 1-based position in the ledger's
	// (issued_at, id) order: local seqs differ per node and would make the
	// state depend on arrival order, positions are the same on every node
	// once ledgers converge.
	Audit []api.AuditRecord
	// Registry is the registry history, oldest first: genesis at the zero
	// position, then one version per accepted registry event, made at that
	// event's position; at most MaxRegistryVersions, oldest dropped. Ingest
	// checks an arriving event's signatures against RegistryAt its own
	// position. Versions are immutable and shared between clones.
	Registry []RegistryVersion
}

// RegistryVersion is the registry in force from just after From (the
// position of the registry event that made it; zero for genesis) until the
// next version.
type RegistryVersion struct {
	From chain.Position
	Reg  *command.Registry
}

// ErrRegistryHistory refuses an event placed before the oldest registry
// version this node keeps: nothing left to check its signatures against.
var ErrRegistryHistory = fmt.Errorf("chainfold: event is older than the registry history this node keeps: %w", api.ErrExpired)

// RegistryAt is the registry in force at pos: the newest version made
// strictly before pos (a registry event itself is checked against the
// registry before it).
func (s *State) RegistryAt(pos chain.Position) (*command.Registry, error) {
	i, _ := slices.BinarySearchFunc(s.Registry, pos, func(v RegistryVersion, p chain.Position) int {
		if v.From.Compare(p) < 0 {
			return -1
		}
		return 1
	})
	if i == 0 {
		if len(s.Registry) == 0 {
			return nil, fmt.Errorf("%w: no registry", ErrRegistryHistory)
		}
		return nil, fmt.Errorf("%w: event at %d ms, oldest version from %d ms", ErrRegistryHistory, pos.IssuedAtMs, s.Registry[0].From.IssuedAtMs)
	}
	return s.Registry[i-1].Reg, nil
}

// Folder folds the admin ledger into a *State. It implements
// chain.Folder[*State].
type Folder struct {
	genesis    *command.AdminState // never mutated: Init clones it
	genesisReg *command.Registry
	handed     atomic.Uint64
	decoded    atomic.Uint64
	skipped    atomic.Uint64
}

// FolderStats count how the folded events reached Apply.
type FolderStats struct {
	// Handed events came with the decoded form the Validator made on
	// ingest; Decoded ones had to be decoded from their stored bytes (a
	// restart, a refold, a fold that lagged past chain.MaxHandoffEvents).
	Handed, Decoded uint64
	// Skipped stored events no longer decode (a damaged disk): not folded.
	Skipped uint64
}

// NewFolder builds the genesis state once; Init hands out clones of it.
func NewFolder(g command.Genesis) (*Folder, error) {
	st, err := command.NewState(g)
	if err != nil {
		return nil, err
	}
	return &Folder{genesis: st, genesisReg: st.Registry()}, nil
}

// Init is the genesis state with an empty audit trail and the genesis
// registry as its only version.
func (f *Folder) Init() *State {
	return &State{Admin: f.genesis.Clone(), Registry: []RegistryVersion{{Reg: f.genesisReg}}}
}

// Apply folds one stored event into s (mutating it, as chain.Folder
// allows). The bytes come from disk, which is not trusted: an event that no
// longer decodes is counted and skipped, never a panic.
func (f *Folder) Apply(s *State, e chain.Event) *State {
	ev := EventOf(e.Meta)
	if ev != nil {
		f.handed.Add(1)
	} else {
		var err error
		if ev, err = command.DecodeEvent(e.Raw); err != nil {
			f.skipped.Add(1)
			return s
		}
		f.decoded.Add(1)
	}
	err := s.Admin.Apply(ev)
	s.Audit = append(s.Audit, command.AuditRecordFor(ev, err, uint64(len(s.Audit)+1)))
	if err == nil && ev.Kind() == command.KindRegistry {
		if len(s.Registry) >= MaxRegistryVersions {
			// Reslice, never write into the shared prefix: clones (the
			// fold's checkpoints) hold clipped views of it.
			s.Registry = s.Registry[len(s.Registry)-MaxRegistryVersions+1:]
		}
		s.Registry = append(s.Registry, RegistryVersion{From: e.Meta.Pos(), Reg: s.Admin.Registry()})
	}
	return s
}

// Clone copies s for the fold's checkpoints: the admin state deeply, the
// audit trail by a clipped slice (records are never modified, only
// appended, and the clip makes an append copy).
func (f *Folder) Clone(s *State) *State {
	return &State{Admin: s.Admin.Clone(), Audit: slices.Clip(s.Audit), Registry: slices.Clip(s.Registry)}
}

// Stats reports how events reached Apply.
func (f *Folder) Stats() FolderStats {
	return FolderStats{Handed: f.handed.Load(), Decoded: f.decoded.Load(), Skipped: f.skipped.Load()}
}

var _ chain.Folder[*State] = (*Folder)(nil)
