package subnet

import (
	"cmp"
	"crypto/ed25519"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deck-mesh/deck/node/identity"
)

// Store timing and bounds.
const (
	// MaxSubnets caps the subnets a store holds summaries of.
	MaxSubnets = 1024
	// StaleAfter: a summary older than this (by the receiver's clock since
	// it arrived) is stale; its group no longer vouches for the next
	// signer, so a replacement group that shares no member with it is
	// believed again.
	StaleAfter = 10 * time.Second
	// ForgetAfter: a subnet silent this long is dropped from the store.
	ForgetAfter = 5 * time.Minute
	// MaxClockSkew bounds how far in the future BuiltAt may be.
	MaxClockSkew = 10 * time.Second
	// MaxAge bounds how old a summary may be when it arrives.
	MaxAge = time.Minute
)

// MemberFunc reports the role and certified subnet of a signer from its
// key and encoded certificate (nil: none), or why it is not a member.
type MemberFunc func(id identity.NodeID, key ed25519.PublicKey, cert []byte, now time.Time) (identity.Role, string, error)

// Entry is one subnet's newest accepted summary.
type Entry struct {
	Signed // as signed: it is passed on (and answered) byte for byte
	// Roster is the subnet's roster from the newest summary that carried
	// one (Signed.Members is empty when it did not change).
	Roster     []identity.NodeID
	ReceivedAt time.Time
}

// Stale reports whether the entry is past StaleAfter at now.
func (e *Entry) Stale(now time.Time) bool { return now.Sub(e.ReceivedAt) > StaleAfter }

// Stats count what Accept decided.
type Stats struct {
	Accepted, Duplicates, Replays, NotMember, NotAggregator, BadSignature, Malformed, BadTime, Full uint64
}

// Store holds the newest believed summary of every subnet. Safe for
// concurrent use.
type Store struct {
	member MemberFunc
	// localGroup, when set, is the aggregator group this node computes for
	// a subnet it can see (its own): a signer in it is believed even when
	// the held summary's group does not name it (a replacement).
	localGroup func(path string) ([]identity.NodeID, bool)

	mu   sync.Mutex
	held map[string]*Entry

	accepted, duplicates, replays, notMember, notAggregator, badSig, malformed, badTime, full atomic.Uint64
}

// NewStore is an empty store judging signers with member; localGroup may
// be nil.
func NewStore(member MemberFunc, localGroup func(path string) ([]identity.NodeID, bool)) *Store {
	return &Store{member: member, localGroup: localGroup, held: map[string]*Entry{}}
}

// Accept decides whether to believe s, cheapest checks first, and stores
// it when so. It reports false with a nil error for a duplicate (the
// generation held). The rules:
//   - the generation is newer than the one held (else ErrReplay);
//   - the signer is a certified node whose certificate carries the
//     summary's subnet (ErrNotMember): no node speaks for a subnet its
//     operator did not put it in;
//   - it is in the group it signs for, and, while the held summary is
//     fresh, in that summary's group or in the group this node places
//     itself for its own subnet (ErrNotAggregator);
//   - BuiltAt is within MaxClockSkew ahead and MaxAge behind (ErrTime);
//   - the signature verifies under its key (ErrSignature).
func (st *Store) Accept(s *Signed, now time.Time) (bool, error) {
	m := &s.Summary
	st.mu.Lock()
	cur := st.held[m.Path]
	full := cur == nil && len(st.held) >= MaxSubnets
	st.mu.Unlock()
	if cur != nil && m.Generation <= cur.Summary.Generation {
		if m.Generation == cur.Summary.Generation && m.Aggregator == cur.Summary.Aggregator {
			st.duplicates.Add(1)
			return false, nil
		}
		st.replays.Add(1)
		return false, fmt.Errorf("%w: %q generation %d, held %d", ErrReplay, m.Path, m.Generation, cur.Summary.Generation)
	}
	if full {
		st.full.Add(1)
		return false, fmt.Errorf("%w (%d)", ErrFull, MaxSubnets)
	}
	if err := s.check(); err != nil {
		st.malformed.Add(1)
		return false, err
	}
	role, certified, err := st.member(m.Aggregator, s.Key, s.Cert, now)
	switch {
	case err != nil:
		st.notMember.Add(1)
		return false, fmt.Errorf("%w: %s: %w", ErrNotMember, m.Aggregator, err)
	case role != identity.RoleNode || certified != m.Path:
		st.notMember.Add(1)
		return false, fmt.Errorf("%w: %s is a %s of %q, not a node of %q", ErrNotMember, m.Aggregator, role, certified, m.Path)
	}
	if !st.vouched(cur, m.Path, m.Aggregator, now) {
		st.notAggregator.Add(1)
		return false, fmt.Errorf("%w: %s for %q", ErrNotAggregator, m.Aggregator, m.Path)
	}
	if m.BuiltAt.After(now.Add(MaxClockSkew)) || m.BuiltAt.Before(now.Add(-MaxAge)) {
		st.badTime.Add(1)
		return false, fmt.Errorf("%w: built %s, now %s", ErrTime, m.BuiltAt.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if err := s.Verify(); err != nil {
		st.badSig.Add(1)
		return false, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	again := st.held[m.Path]
	if again != nil && again.Summary.Generation >= m.Generation {
		st.duplicates.Add(1) // raced by another copy while verifying
		return false, nil
	}
	e := &Entry{Signed: *s, Roster: s.Members, ReceivedAt: now}
	if len(e.Roster) == 0 && again != nil {
		e.Roster = again.Roster // a summary without a roster keeps the last one
	}
	st.held[m.Path] = e
	st.accepted.Add(1)
	return true, nil
}

// vouched reports whether signer may sign the next summary of path: a
// member of the fresh held summary's group, or of the group this node
// places itself; with neither (a subnet first heard of, or silent past
// StaleAfter), its own claim stands.
func (st *Store) vouched(cur *Entry, path string, signer identity.NodeID, now time.Time) bool {
	fresh := cur != nil && !cur.Stale(now)
	if fresh && slices.Contains(cur.Group, signer) {
		return true
	}
	if st.localGroup != nil {
		if g, ok := st.localGroup(path); ok {
			return slices.Contains(g, signer)
		}
	}
	return !fresh
}

// Get is the newest summary held for path.
func (st *Store) Get(path string) (Entry, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	e, ok := st.held[path]
	if !ok {
		return Entry{}, false
	}
	return *e, true
}

// All lists every entry, sorted by path.
func (st *Store) All() []Entry {
	st.mu.Lock()
	out := make([]Entry, 0, len(st.held))
	for _, e := range st.held {
		out = append(out, *e)
	}
	st.mu.Unlock()
	slices.SortFunc(out, func(a, b Entry) int { return cmp.Compare(a.Summary.Path, b.Summary.Path) })
	return out
}

// Sweep forgets subnets silent past ForgetAfter.
func (st *Store) Sweep(now time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for p, e := range st.held {
		if now.Sub(e.ReceivedAt) > ForgetAfter {
			delete(st.held, p)
		}
	}
}

// Stats returns the counters.
func (st *Store) Stats() Stats {
	return Stats{
		Accepted: st.accepted.Load(), Duplicates: st.duplicates.Load(), Replays: st.replays.Load(),
		NotMember: st.notMember.Load(), NotAggregator: st.notAggregator.Load(), BadSignature: st.badSig.Load(),
		Malformed: st.malformed.Load(), BadTime: st.badTime.Load(), Full: st.full.Load(),
	}
}
