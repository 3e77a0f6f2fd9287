package chain

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/messaging/messagingtest"
	"github.com/deck-mesh/deck/node/nodetest"
)

// aeNode is one node of an in-process anti-entropy mesh: its own Badger
// database, ledger, fold and service on a hub endpoint.
type aeNode struct {
	id   identity.NodeID
	db   *DB
	l    *Ledger
	ae   *AntiEntropy
	fold *Fold[*lwwState]
	ep   *messagingtest.Node
}

func startAENodes(t *testing.T, ctx context.Context, h *messagingtest.Hub, n int, interval time.Duration) []*aeNode {
	t.Helper()
	nodes := newAENodes(t, ctx, h, n, interval)
	runAENodes(t, ctx, nodes)
	return nodes
}

// newAENodes makes the nodes (databases, ledgers, folds, endpoints) without
// starting anti-entropy, so a test can load their ledgers first.
func newAENodes(t *testing.T, ctx context.Context, h *messagingtest.Hub, n int, interval time.Duration) []*aeNode {
	t.Helper()
	nodes := make([]*aeNode, n)
	for i := range nodes {
		id := identity.NodeID(0x1000 + i + 1)
		db := openTestDB(t, Config{})
		l := db.Ledger(validateTestEvent)
		ep := h.Join(id)
		ae := NewAntiEntropy(l, ep, h.IDs, AntiEntropyConfig{Interval: interval})
		nodes[i] = &aeNode{id: id, db: db, l: l, ae: ae, ep: ep, fold: startFold(t, ctx, l, 32)}
	}
	return nodes
}

// runAENodes starts every node's anti-entropy service until the test ends.
func runAENodes(t *testing.T, ctx context.Context, nodes []*aeNode) {
	t.Helper()
	for _, nd := range nodes {
		actx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := nd.ae.Run(actx); err != nil {
				t.Errorf("anti-entropy: %v", err)
			}
		}()
		t.Cleanup(func() { cancel(); <-done })
	}
}

func digestOf(t testing.TB, raws [][]byte) BucketDigest {
	var d BucketDigest
	for _, r := range raws {
		m, err := validateTestEvent(r)
		if err != nil {
			t.Fatal(err)
		}
		d.add(m.ID)
	}
	return d
}

func waitConverged(t *testing.T, nodes []*aeNode, want BucketDigest, what string) {
	t.Helper()
	nodetest.Eventually(t, what, func() bool {
		for _, nd := range nodes {
			if d := nd.l.Digest(); d != want {
				return false
			}
		}
		return true
	})
}

func waitFoldsEqual(t *testing.T, nodes []*aeNode, raws [][]byte) {
	t.Helper()
	want := referenceFold(t, raws)
	for _, nd := range nodes {
		nodetest.Eventually(t, fmt.Sprintf("node %s's fold to equal the reference", nd.id),
			func() bool { return foldString(nd.fold) == want },
			func() string {
				return fmt.Sprintf(" got %s\nwant %s\nstats %+v", foldString(nd.fold), want, nd.fold.Stats())
			})
	}
	for _, nd := range nodes {
		if err := nd.l.Verify(context.Background()); err != nil {
			t.Fatalf("node %s: %v", nd.id, err)
		}
	}
}

// TestAntiEntropyConverges: five nodes each start with a random subset of
// the events, loaded before anti-entropy runs; anti-entropy brings every
// node to the union, and every fold to the same state.
func TestAntiEntropyConverges(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool := eventPool(t, 400, 11)
	h := messagingtest.NewHub(t, messagingtest.Config{})
	nodes := newAENodes(t, ctx, h, 5, 100*time.Millisecond)
	rng := rand.New(rand.NewPCG(3, 4))
	subsets := make([][][]byte, len(nodes))
	for i, raw := range pool {
		// Every event lands on one node for sure, and on each other with
		// probability 0.3.
		for j := range nodes {
			if j == i%len(nodes) || rng.Float64() < 0.3 {
				subsets[j] = append(subsets[j], raw)
			}
		}
	}
	all := digestOf(t, pool)
	for j, nd := range nodes {
		insertAll(t, ctx, nd.l, subsets[j])
		if d := nd.l.Digest(); d != digestOf(t, subsets[j]) || d == all {
			t.Fatalf("node %s starts with %d of %d events: want its own strict subset", nd.id, d.Count, len(pool))
		}
	}
	runAENodes(t, ctx, nodes)
	waitConverged(t, nodes, all, "five nodes to converge")
	waitFoldsEqual(t, nodes, pool)
	var pulled uint64
	for _, nd := range nodes {
		pulled += nd.ae.Stats().Pulled
	}
	if pulled == 0 {
		t.Fatal("converged without pulling anything")
	}
}

// TestAntiEntropyPartitionHeals: a converged mesh splits 2/3, both sides
// take new events (each side converging within itself), then the
// partition heals and every node converges on the union.
func TestAntiEntropyPartitionHeals(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool := eventPool(t, 240, 12)
	base, left, right := pool[:80], pool[80:160], pool[160:]
	h := messagingtest.NewHub(t, messagingtest.Config{})
	nodes := startAENodes(t, ctx, h, 5, 100*time.Millisecond)
	for _, raw := range base {
		if _, _, err := nodes[0].l.Insert(ctx, raw); err != nil {
			t.Fatal(err)
		}
	}
	waitConverged(t, nodes, digestOf(t, base), "initial convergence")

	h.Partition(nodes[0].id, nodes[1].id)
	for i, raw := range left {
		if _, _, err := nodes[i%2].l.Insert(ctx, raw); err != nil {
			t.Fatal(err)
		}
	}
	for i, raw := range right {
		if _, _, err := nodes[2+i%3].l.Insert(ctx, raw); err != nil {
			t.Fatal(err)
		}
	}
	leftAll := append(append([][]byte{}, base...), left...)
	rightAll := append(append([][]byte{}, base...), right...)
	waitConverged(t, nodes[:2], digestOf(t, leftAll), "left side to converge")
	waitConverged(t, nodes[2:], digestOf(t, rightAll), "right side to converge")
	// Partitioned: neither side has the other's events.
	if d := nodes[0].l.Digest(); d.Count != uint32(len(leftAll)) {
		t.Fatalf("left side leaked: %d events", d.Count)
	}

	h.Heal()
	waitConverged(t, nodes, digestOf(t, pool), "convergence after heal")
	waitFoldsEqual(t, nodes, pool)
}

// TestSyncWithDrillsDown: one round against a peer holding thousands of
// events spread over time descends the bucket tree and pulls in bounded
// batches; a handful of rounds complete the copy.
func TestSyncWithDrillsDown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := messagingtest.NewHub(t, messagingtest.Config{})
	s := newEventSigner(t)
	const n = 3000
	raws := make([][]byte, n)
	for i := range raws {
		// Spread over ~30 days, so many buckets at every level.
		raws[i] = s.event(int64(1_700_000_000_000+i*900_000), fmt.Sprint("e", i))
	}
	srv := openTestDB(t, Config{}).Ledger(validateTestEvent)
	if _, err := srv.InsertMany(ctx, raws); err != nil {
		t.Fatal(err)
	}
	cli := openTestDB(t, Config{}).Ledger(validateTestEvent)
	if _, err := cli.InsertMany(ctx, raws[:n/3]); err != nil {
		t.Fatal(err)
	}
	srvEP, cliEP := h.Join(1), h.Join(2)
	srvAE := NewAntiEntropy(srv, srvEP, h.IDs, AntiEntropyConfig{Interval: time.Hour})
	cliAE := NewAntiEntropy(cli, cliEP, h.IDs, AntiEntropyConfig{Interval: time.Hour})
	for _, ae := range []*AntiEntropy{srvAE, cliAE} {
		actx, acancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = ae.Run(actx) }()
		t.Cleanup(func() { acancel(); <-done })
	}
	nodetest.Eventually(t, "handlers registered", func() bool { return srvEP.HasHandler(messaging.ChanLedger) })
	rounds := 0
	for cli.Digest() != srv.Digest() {
		rounds++
		if rounds > 20 {
			t.Fatalf("not converged after 20 rounds: %d of %d", cli.Digest().Count, n)
		}
		added, err := cliAE.SyncWith(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if added == 0 {
			t.Fatalf("round %d added nothing with %d events missing", rounds, n-int(cli.Digest().Count))
		}
	}
	if added, err := cliAE.SyncWith(ctx, 1); err != nil || added != 0 {
		t.Fatalf("converged round: added %d err %v", added, err)
	}
	if st := cliAE.Stats(); st.Converged == 0 || st.Pulled != n-n/3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSyncWithUnreachablePeer(t *testing.T) {
	h := messagingtest.NewHub(t, messagingtest.Config{})
	l := openTestDB(t, Config{}).Ledger(validateTestEvent)
	ae := NewAntiEntropy(l, h.Join(1), h.IDs, AntiEntropyConfig{})
	if _, err := ae.SyncWith(context.Background(), 99); !errors.Is(err, messaging.ErrNoRoute) {
		t.Fatalf("got %v, want ErrNoRoute", err)
	}
}

// TestAntiEntropyIgnoresForgedAnswers: an answer from a node other than
// the one asked is not accepted as the answer.
func TestAntiEntropyIgnoresForgedAnswers(t *testing.T) {
	h := messagingtest.NewHub(t, messagingtest.Config{})
	l := openTestDB(t, Config{}).Ledger(validateTestEvent)
	ep := h.Join(1)
	ae := NewAntiEntropy(l, ep, h.IDs, AntiEntropyConfig{})
	p := &aePending{peer: 2, ch: make(chan *aeMsg, 1)}
	ae.pending[7] = p
	resp := (&aeMsg{Type: aeDigestResp, ReqID: 7, To: 1 << DigestMaxWidthShiftBits, Shift: DigestMaxWidthShiftBits}).encode()
	ae.Handle(3, resp)
	if len(p.ch) != 0 {
		t.Fatal("answer from the wrong node accepted")
	}
	ae.Handle(2, resp)
	if len(p.ch) != 1 {
		t.Fatal("answer from the right node not delivered")
	}
	ae.Handle(2, []byte{0xff, 1, 2})
	if ae.Stats().Malformed != 1 {
		t.Fatal("malformed message not counted")
	}
}

func TestAEMessageRoundTrip(t *testing.T) {
	after := Position{IssuedAtMs: 5, ID: [32]byte{1}}
	tests := []aeMsg{
		{Type: aeDigestReq, ReqID: 1, From: 0, To: 1 << 48, Shift: 48},
		{Type: aeDigestResp, ReqID: 2, From: 4096, To: 8192, Shift: 12, Buckets: []BucketDigest{{Start: 4096, Count: 3, XOR: [32]byte{9}}}},
		{Type: aeIDsReq, ReqID: 3, From: 0, To: 10, After: &after},
		{Type: aeIDsReq, ReqID: 3, From: 0, To: 10},
		{Type: aeIDsResp, ReqID: 4, More: true, IDs: []Position{after}},
		{Type: aePullReq, ReqID: 5, IDs: []Position{after, after}},
		{Type: aePullResp, ReqID: 6, Events: [][]byte{{1, 2, 3}, {4}}},
		{Type: aeHint, ReqID: 0, Total: BucketDigest{Count: 9, XOR: [32]byte{7}}},
	}
	for _, m := range tests {
		t.Run(fmt.Sprint(m.Type), func(t *testing.T) {
			b := m.encode()
			got, err := decodeAE(b)
			if err != nil {
				t.Fatal(err)
			}
			if string(got.encode()) != string(b) {
				t.Fatalf("re-encode differs")
			}
			if _, err := decodeAE(append(b, 0)); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("trailing byte accepted: %v", err)
			}
		})
	}
}

func FuzzDecodeAE(f *testing.F) {
	after := Position{IssuedAtMs: 5, ID: [32]byte{1}}
	for _, m := range []aeMsg{
		{Type: aeDigestReq, ReqID: 1, From: 0, To: 1 << 48, Shift: 48},
		{Type: aeDigestResp, ReqID: 2, From: 4096, To: 8192, Shift: 12, Buckets: []BucketDigest{{Start: 4096, Count: 3}}},
		{Type: aeIDsReq, ReqID: 3, From: 0, To: 10, After: &after},
		{Type: aeIDsResp, ReqID: 4, More: true, IDs: []Position{after}},
		{Type: aePullReq, ReqID: 5, IDs: []Position{after}},
		{Type: aePullResp, ReqID: 6, Events: [][]byte{{1, 2, 3}}},
		{Type: aeHint, Total: BucketDigest{Count: 9}},
		{Type: aePullAttReq, ReqID: 7, IDs: []Position{after}},
		{Type: aePullAttResp, ReqID: 8, Events: [][]byte{{1, 2, 3}}, Attachments: [][]byte{{5, 6}}},
	} {
		f.Add(m.encode())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeAE(b)
		if err != nil {
			return
		}
		// What decodes re-encodes to exactly the same bytes: no field is
		// silently dropped or defaulted.
		if got := m.encode(); string(got) != string(b) {
			t.Fatalf("re-encode differs:\n in %x\nout %x", b, got)
		}
	})
}

// countingMessenger is a hub endpoint that counts the ledger messages its
// node sends, by type.
type countingMessenger struct {
	*messagingtest.Node
	cmu  sync.Mutex
	sent map[aeType]int
}

func (c *countingMessenger) Send(ctx context.Context, to identity.NodeID, ch messaging.Channel, msg []byte) error {
	if ch == messaging.ChanLedger && len(msg) > 0 {
		c.cmu.Lock()
		c.sent[aeType(msg[0])]++
		c.cmu.Unlock()
	}
	return c.Node.Send(ctx, to, ch, msg)
}

// take returns the counts since the last take and resets them.
func (c *countingMessenger) take() map[aeType]int {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	out := c.sent
	c.sent = map[aeType]int{}
	return out
}

func insertAll(t testing.TB, ctx context.Context, l *Ledger, raws [][]byte) {
	t.Helper()
	for len(raws) > 0 {
		k := min(len(raws), MaxInsertEvents)
		if _, err := l.InsertMany(ctx, raws[:k]); err != nil {
			t.Fatal(err)
		}
		raws = raws[k:]
	}
}

// TestSyncWithRoundBounds: a node missing more than one round may fetch
// gets at most AEMaxRoundPullEvents events per SyncWith, sends at most
// AEMaxRoundRequests digest/id requests plus the pulls those events need,
// and every round makes progress until they converge. "dense" packs the
// events into a few seconds, so the pull bound is what stops a round;
// "sparse" spreads them over a month in small buckets, so the id-listing
// requests hit the request bound; "deep" puts more than 32 events in each
// of ~70 sibling buckets, so a round has more digest requests to make than
// its budget (a breadth-first walk spent the whole budget on one level and
// never pulled anything).
func TestSyncWithRoundBounds(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		spacing int64   // ms between issue times
		keep    float64 // share of the events the client starts with
	}{
		{"dense", AEMaxRoundPullEvents + 2000, 1, 0.15},
		{"sparse", 3000, 900_000, 0.33},
		{"deep", 3000, 400_000, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s := newEventSigner(t)
			rng := rand.New(rand.NewPCG(5, uint64(tt.n)))
			raws := make([][]byte, tt.n)
			var kept [][]byte
			for i := range raws {
				raws[i] = s.event(1_700_000_000_000+int64(i)*tt.spacing, fmt.Sprint("e", i))
				if rng.Float64() < tt.keep {
					kept = append(kept, raws[i])
				}
			}
			missing := tt.n - len(kept)
			if tt.name == "dense" && missing <= AEMaxRoundPullEvents {
				t.Fatalf("only %d events missing: one round could fetch them all", missing)
			}
			h := messagingtest.NewHub(t, messagingtest.Config{})
			srv := openTestDB(t, Config{}).Ledger(validateTestEvent)
			insertAll(t, ctx, srv, raws)
			cli := openTestDB(t, Config{}).Ledger(validateTestEvent)
			insertAll(t, ctx, cli, kept)

			// The server serves; the client only runs the rounds the test
			// asks for (no background rounds, no hints), so every message
			// it sends belongs to the round being measured.
			srvEP := h.Join(1)
			srvAE := NewAntiEntropy(srv, srvEP, h.IDs, AntiEntropyConfig{Interval: time.Hour})
			actx, acancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); _ = srvAE.Run(actx) }()
			t.Cleanup(func() { acancel(); <-done })
			cm := &countingMessenger{Node: h.Join(2), sent: map[aeType]int{}}
			cliAE := NewAntiEntropy(cli, cm, h.IDs, AntiEntropyConfig{Interval: time.Hour})
			cm.Handle(messaging.ChanLedger, cliAE.Handle)
			nodetest.Eventually(t, "server handler registered", func() bool { return srvEP.HasHandler(messaging.ChanLedger) })

			// Test events are ~110 bytes, so a pull answer is never cut
			// short by AEMaxPullBytes: a full round needs this many pulls.
			maxPulls := (AEMaxRoundPullEvents + AEMaxPullEvents - 1) / AEMaxPullEvents
			total, rounds := 0, 0
			for cli.Digest() != srv.Digest() {
				rounds++
				if rounds > 100 {
					t.Fatalf("not converged after 100 rounds: %d of %d", cli.Digest().Count, tt.n)
				}
				before := cli.Digest().Count
				added, err := cliAE.SyncWith(ctx, 1)
				if err != nil {
					t.Fatal(err)
				}
				sent := cm.take()
				reqs, pulls := sent[aeDigestReq]+sent[aeIDsReq], sent[aePullAttReq]
				t.Logf("round %d: added %d, %d digest + %d ids requests, %d pulls", rounds, added, sent[aeDigestReq], sent[aeIDsReq], pulls)
				if got := int(cli.Digest().Count - before); got != added {
					t.Fatalf("round %d reported %d added, ledger grew by %d", rounds, added, got)
				}
				// Every round must make progress while events are missing.
				if added == 0 || added > AEMaxRoundPullEvents {
					t.Fatalf("round %d added %d events (want 1..%d)", rounds, added, AEMaxRoundPullEvents)
				}
				for typ := range sent {
					if typ != aeDigestReq && typ != aeIDsReq && typ != aePullAttReq {
						t.Fatalf("round %d sent message type %d: %v", rounds, typ, sent)
					}
				}
				if reqs > AEMaxRoundRequests || pulls > maxPulls {
					t.Fatalf("round %d sent %d digest/ids requests and %d pulls, want at most %d and %d", rounds, reqs, pulls, AEMaxRoundRequests, maxPulls)
				}
				total += added
			}
			if rounds < 2 {
				// Sparse: fewer events are missing than the pull bound, so
				// only the request bound can make a second round necessary.
				t.Fatalf("%d missing events fetched in one round: no bound was hit", missing)
			}
			if total != missing {
				t.Fatalf("pulled %d events in all, want %d", total, missing)
			}
			if added, err := cliAE.SyncWith(ctx, 1); err != nil || added != 0 {
				t.Fatalf("round after convergence: added %d, err %v", added, err)
			}
			if sent := cm.take(); sent[aeDigestReq] != 1 || len(sent) != 1 {
				t.Fatalf("converged round sent %v, want one digest request", sent)
			}
			if err := cli.Verify(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}
