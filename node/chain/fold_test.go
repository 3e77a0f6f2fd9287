package chain

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/deck-mesh/deck/node/nodetest"
	"golang.org/x/crypto/blake2b"
)

// lwwState is a small last-writer-wins registry, like the admin state the
// real fold keeps (cordon, maintenance, freeze per target), plus a running
// hash of the order events were applied in.
type lwwState struct {
	kv    map[string]string
	order [32]byte
	n     int
}

type lwwFolder struct{}

func (lwwFolder) Init() *lwwState { return &lwwState{kv: map[string]string{}} }

func (lwwFolder) Apply(s *lwwState, e Event) *lwwState {
	k, v, _ := strings.Cut(testEventBody(e.Raw), "=")
	s.kv[k] = v
	s.order = blake2b.Sum256(append(s.order[:], e.Meta.ID[:]...))
	s.n++
	return s
}

func (lwwFolder) Clone(s *lwwState) *lwwState {
	return &lwwState{kv: maps.Clone(s.kv), order: s.order, n: s.n}
}

func (s *lwwState) String() string {
	keys := slices.Sorted(maps.Keys(s.kv))
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s;", k, s.kv[k])
	}
	return fmt.Sprintf("n=%d order=%x %s", s.n, s.order[:6], b.String())
}

// referenceFold folds raws sorted by (issued_at, id): what every node must
// end up with.
func referenceFold(t testing.TB, raws [][]byte) string {
	t.Helper()
	evs := make([]Event, len(raws))
	for i, r := range raws {
		m, err := validateTestEvent(r)
		if err != nil {
			t.Fatal(err)
		}
		evs[i] = Event{Meta: m, Raw: r}
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].Meta.Pos().Compare(evs[j].Meta.Pos()) < 0 })
	f := lwwFolder{}
	s := f.Init()
	for _, e := range evs {
		s = f.Apply(s, e)
	}
	return s.String()
}

// eventPool makes n signed events by three operators over a few keys, with
// colliding issue times so the id tie-break matters.
func eventPool(t testing.TB, n int, seed uint64) [][]byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	signers := []*eventSigner{newEventSigner(t), newEventSigner(t), newEventSigner(t)}
	out := make([][]byte, n)
	for i := range out {
		at := int64(1_700_000_000_000 + rng.IntN(n*200)) // ~ n events over n/5 s: shared buckets
		body := fmt.Sprintf("node-%d=v%d", rng.IntN(7), i)
		out[i] = signers[rng.IntN(3)].event(at, body)
	}
	return out
}

func startFold(t testing.TB, ctx context.Context, l *Ledger, every int) *Fold[*lwwState] {
	fd := NewFold[*lwwState](l, lwwFolder{}, every)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- fd.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("fold: %v", err)
		}
	})
	return fd
}

func foldString(fd *Fold[*lwwState]) string {
	s, _ := fd.State()
	return s.String()
}

func TestFoldSameWhateverArrivalOrder(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool := eventPool(t, 300, 7)
	want := referenceFold(t, pool)
	for trial := 0; trial < 4; trial++ {
		t.Run(fmt.Sprint("order", trial), func(t *testing.T) {
			db := openTestDB(t, Config{})
			l := db.Ledger(validateTestEvent)
			fd := startFold(t, ctx, l, 16)
			perm := slices.Clone(pool)
			rand.New(rand.NewPCG(uint64(trial), 9)).Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
			for len(perm) > 0 {
				k := min(len(perm), 1+trial*13)
				if _, err := l.InsertMany(ctx, perm[:k]); err != nil {
					t.Fatal(err)
				}
				perm = perm[k:]
			}
			nodetest.Eventually(t, "fold to apply every event", func() bool { return fd.Stats().Applied == uint64(len(pool)) })
			if got := foldString(fd); got != want {
				t.Fatalf("fold differs:\n got %s\nwant %s", got, want)
			}
		})
	}
	cancel()
}

func TestFoldLateEventRefoldsFromCheckpoint(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := openTestDB(t, Config{})
	l := db.Ledger(validateTestEvent)
	s := newEventSigner(t)
	var raws [][]byte
	for i := 0; i < 100; i++ {
		raws = append(raws, s.event(int64(10_000+i*10), fmt.Sprintf("k%d=v%d", i%4, i)))
	}
	if _, err := l.InsertMany(ctx, raws); err != nil {
		t.Fatal(err)
	}
	fd := startFold(t, ctx, l, 10)
	nodetest.Eventually(t, "initial fold", func() bool { return fd.Stats().Applied == 100 })
	if st := fd.Stats(); st.Checkpoints == 0 || st.Refolds != 0 {
		t.Fatalf("after in-order fold: %+v", st)
	}
	// A late event from a healed partition: older than most of the state.
	late := s.event(10_955, "k1=late")
	raws = append(raws, late)
	if _, _, err := l.Insert(ctx, late); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, "refold", func() bool { return fd.Stats().Applied == 101 })
	st := fd.Stats()
	if st.Refolds != 1 {
		t.Fatalf("refolds %d, want 1", st.Refolds)
	}
	if got, want := foldString(fd), referenceFold(t, raws); got != want {
		t.Fatalf("after refold:\n got %s\nwant %s", got, want)
	}
	if st.Through.IssuedAtMs != 10_990 {
		t.Fatalf("watermark %d, want the newest event's 10990", st.Through.IssuedAtMs)
	}
	// An event newer than everything is applied directly.
	raws = append(raws, s.event(20_000, "k2=new"))
	if _, _, err := l.Insert(ctx, raws[len(raws)-1]); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, "apply", func() bool { return fd.Stats().Applied == 102 })
	if fd.Stats().Refolds != 1 {
		t.Fatal("an in-order event caused a refold")
	}
	if got, want := foldString(fd), referenceFold(t, raws); got != want {
		t.Fatalf("after apply:\n got %s\nwant %s", got, want)
	}
}

func TestFoldCheckpointsStayBounded(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := openTestDB(t, Config{})
	l := db.Ledger(validateTestEvent)
	s := newEventSigner(t)
	const n = 2000
	raws := make([][]byte, n)
	for i := range raws {
		raws[i] = s.event(int64(i), fmt.Sprintf("k=v%d", i))
	}
	if _, err := l.InsertMany(ctx, raws); err != nil {
		t.Fatal(err)
	}
	fd := startFold(t, ctx, l, 4)
	nodetest.Eventually(t, "fold", func() bool { return fd.Stats().Applied == n })
	if c := fd.Stats().Checkpoints; c > MaxFoldCheckpoints || c == 0 {
		t.Fatalf("%d checkpoints (max %d)", c, MaxFoldCheckpoints)
	}
	// Thinned checkpoints must still be exact: late events at several depths
	// refold to the reference state.
	for i, at := range []int64{1995, 1200, 3, 1999} {
		late := s.event(at, fmt.Sprintf("k=late%d", i))
		raws = append(raws, late)
		if _, _, err := l.Insert(ctx, late); err != nil {
			t.Fatal(err)
		}
		nodetest.Eventually(t, "refold", func() bool { return fd.Stats().Applied == uint64(len(raws)) })
		if got, want := foldString(fd), referenceFold(t, raws); got != want {
			t.Fatalf("late event at %d:\n got %s\nwant %s", at, got, want)
		}
	}
}
