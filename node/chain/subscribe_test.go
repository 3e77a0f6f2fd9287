package chain

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/messaging/messagingtest"
	"github.com/deck-mesh/deck/node/nodetest"
)

type subNode struct {
	id  identity.NodeID
	db  *DB
	svc *SubscriptionService
	ep  *messagingtest.Node
}

func startSubNodes(t *testing.T, h *messagingtest.Hub, n int, cfg SubscriptionConfig) []*subNode {
	t.Helper()
	nodes := make([]*subNode, n)
	for i := range nodes {
		id := identity.NodeID(0x2000 + i + 1)
		db := openTestDB(t, Config{})
		ep := h.Join(id)
		svc := NewSubscriptionService(db, ep, cfg)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = svc.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		nodes[i] = &subNode{id: id, db: db, svc: svc, ep: ep}
	}
	for _, nd := range nodes {
		nodetest.Eventually(t, "handler registered", func() bool { return nd.ep.HasHandler(messaging.ChanSubscribe) })
	}
	return nodes
}

func nodeIDs(nodes []*subNode) func() []identity.NodeID {
	return func() []identity.NodeID {
		ids := make([]identity.NodeID, len(nodes))
		for i, n := range nodes {
			ids[i] = n.id
		}
		return ids
	}
}

func waitLeases(t *testing.T, nodes []*subNode, want uint64) {
	t.Helper()
	for _, nd := range nodes {
		nodetest.Eventually(t, fmt.Sprintf("%d lease(s) on %s", want, nd.id), func() bool { return nd.svc.Stats().Leases == want })
	}
}

func recvN[T any](t *testing.T, s *api.Stream[T], n int) []T {
	t.Helper()
	out := make([]T, 0, n)
	deadline := time.After(20 * time.Second)
	for len(out) < n {
		select {
		case v := <-s.C():
			out = append(out, v)
		case <-deadline:
			t.Fatalf("received %d of %d records", len(out), n)
		}
	}
	return out
}

// TestSubscribeLogsMergesAndFilters: a client (itself one of the nodes, so
// the self path is covered) follows three nodes with a filter; it gets
// exactly the matching records of every node, each once, in per-node order.
func TestSubscribeLogsMergesAndFilters(t *testing.T) {
	ctx := context.Background()
	h := messagingtest.NewHub(t, messagingtest.Config{})
	nodes := startSubNodes(t, h, 3, SubscriptionConfig{RenewInterval: 200 * time.Millisecond})
	client := nodes[0].svc
	f := api.LogFilter{MinLevel: api.LevelWarn, Daemon: "daemon-1", Match: "SYNC"}
	stream, err := client.SubscribeLogs(ctx, nodeIDs(nodes), f)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	waitLeases(t, nodes, 1)
	const per = 300
	want := 0
	for _, nd := range nodes {
		recs := make([]api.LogRecord, per)
		for i := range recs {
			recs[i] = testLogRecord(i)
			recs[i].Node = nd.id
			if i%7 == 0 {
				recs[i].Text = "unrelated chatter"
			}
			r := recs[i]
			if r.Level >= f.MinLevel && r.Daemon == f.Daemon && strings.Contains(strings.ToLower(r.Text), "sync") {
				want++
			}
		}
		if _, err := nd.db.AppendLogs(ctx, recs...); err != nil {
			t.Fatal(err)
		}
	}
	got := recvN(t, stream, want)
	last := map[identity.NodeID]uint64{}
	for _, r := range got {
		if r.Level < f.MinLevel || r.Daemon != f.Daemon || !strings.Contains(r.Text, "sync") {
			t.Fatalf("record does not match the filter: %+v", r)
		}
		if r.Seq <= last[r.Node] {
			t.Fatalf("node %s: seq %d after %d (duplicate or reordered)", r.Node, r.Seq, last[r.Node])
		}
		last[r.Node] = r.Seq
	}
	if len(last) != 3 {
		t.Fatalf("records from %d nodes, want 3", len(last))
	}
	if stream.Dropped() != 0 || stream.Lagged() != 0 {
		t.Fatalf("dropped %d lagged %d on an idle mesh", stream.Dropped(), stream.Lagged())
	}
	// Closing the stream cancels the leases at once, not at expiry.
	stream.Close()
	waitLeases(t, nodes, 0)
}

func TestSubscribeFailuresSince(t *testing.T) {
	ctx := context.Background()
	h := messagingtest.NewHub(t, messagingtest.Config{})
	nodes := startSubNodes(t, h, 2, SubscriptionConfig{RenewInterval: 200 * time.Millisecond})
	srv := nodes[1]
	for i := 1; i <= 10; i++ {
		if _, err := srv.db.AppendFailures(ctx, api.FailureRecord{At: testT0, Node: srv.id, Source: "admit", Reason: fmt.Sprint("r", i)}); err != nil {
			t.Fatal(err)
		}
	}
	stream, err := nodes[0].svc.SubscribeFailures(ctx, func() []identity.NodeID { return []identity.NodeID{srv.id} }, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	got := recvN(t, stream, 6)
	for i, r := range got {
		if r.Seq != uint64(5+i) || r.Reason != fmt.Sprint("r", 5+i) {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
	if _, err := srv.db.AppendFailures(ctx, api.FailureRecord{Node: srv.id, Source: "daemon", Reason: "live"}); err != nil {
		t.Fatal(err)
	}
	if r := recvN(t, stream, 1)[0]; r.Seq != 11 || r.Reason != "live" {
		t.Fatalf("live record %+v", r)
	}
}

// rawClient is a bare endpoint that speaks the subscription protocol by
// hand, to watch exactly what a server sends.
type rawClient struct {
	ep      *messagingtest.Node
	pushes  atomic.Uint64
	records atomic.Uint64
}

func newRawClient(h *messagingtest.Hub, id identity.NodeID) *rawClient {
	c := &rawClient{ep: h.Join(id)}
	c.ep.Handle(messaging.ChanSubscribe, func(from identity.NodeID, msg []byte) {
		m, err := decodeSub(msg)
		if err != nil || m.Type != subPushLogs {
			return
		}
		c.pushes.Add(1)
		c.records.Add(uint64(len(m.Records)))
	})
	return c
}

func TestLeaseExpiryStopsPushes(t *testing.T) {
	ctx := context.Background()
	h := messagingtest.NewHub(t, messagingtest.Config{})
	srv := startSubNodes(t, h, 1, SubscriptionConfig{LeaseTTL: 400 * time.Millisecond})[0]
	c := newRawClient(h, 0x9999)
	lease := (&subMsg{Type: subLeaseLogs, Sub: 1, Resume: 1}).encode()
	if err := c.ep.Send(ctx, srv.id, messaging.ChanSubscribe, lease); err != nil {
		t.Fatal(err)
	}
	waitLeases(t, []*subNode{srv}, 1)
	if _, err := srv.db.AppendLogs(ctx, testLogRecord(1), testLogRecord(2)); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, "pushes while the lease lives", func() bool { return c.records.Load() == 2 })
	// No renewal: the lease ends on its own.
	waitLeases(t, []*subNode{srv}, 0)
	if srv.svc.Stats().Expired != 1 {
		t.Fatalf("expired %d", srv.svc.Stats().Expired)
	}
	before := c.pushes.Load()
	if _, err := srv.db.AppendLogs(ctx, testLogRecord(3)); err != nil {
		t.Fatal(err)
	}
	// The lease goroutine is gone, so nothing can push; give a would-be
	// push ample time to show up anyway.
	time.Sleep(500 * time.Millisecond)
	if got := c.pushes.Load(); got != before {
		t.Fatalf("%d pushes after expiry", got-before)
	}
}

func TestLeaseCapsPerClient(t *testing.T) {
	ctx := context.Background()
	h := messagingtest.NewHub(t, messagingtest.Config{})
	srv := startSubNodes(t, h, 1, SubscriptionConfig{})[0]
	c := newRawClient(h, 0x7777)
	for i := 0; i < MaxLeasesPerClient+5; i++ {
		if err := c.ep.Send(ctx, srv.id, messaging.ChanSubscribe, (&subMsg{Type: subLeaseFailures, Sub: uint64(i + 1), Resume: 1}).encode()); err != nil {
			t.Fatal(err)
		}
	}
	nodetest.Eventually(t, "refusals", func() bool { return srv.svc.Stats().Refused == 5 })
	if n := srv.svc.Stats().Leases; n != MaxLeasesPerClient {
		t.Fatalf("%d leases, cap %d", n, MaxLeasesPerClient)
	}
}

// TestDropCounterClientBuffer: a consumer that does not read loses what
// does not fit its buffer, and Dropped says exactly how much.
func TestDropCounterClientBuffer(t *testing.T) {
	ctx := context.Background()
	h := messagingtest.NewHub(t, messagingtest.Config{})
	nodes := startSubNodes(t, h, 2, SubscriptionConfig{StreamLen: 16, RenewInterval: 200 * time.Millisecond})
	stream, err := nodes[0].svc.SubscribeLogs(ctx, func() []identity.NodeID { return []identity.NodeID{nodes[1].id} }, api.LogFilter{})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	waitLeases(t, nodes[1:], 1)
	recs := make([]api.LogRecord, 100)
	for i := range recs {
		recs[i] = testLogRecord(i)
		recs[i].Node = nodes[1].id // a node's log holds its own records
	}
	if _, err := nodes[1].db.AppendLogs(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, "every record delivered or dropped", func() bool { return stream.Dropped()+uint64(len(stream.C())) == 100 })
	if stream.Dropped() != 84 {
		t.Fatalf("dropped %d, want 84", stream.Dropped())
	}
}

// TestDropCounterServerBacklog: a lease limited to one push a second falls
// behind a burst; the server skips the oldest records beyond its backlog
// bound and reports them: received + dropped accounts for every record.
func TestDropCounterServerBacklog(t *testing.T) {
	ctx := context.Background()
	h := messagingtest.NewHub(t, messagingtest.Config{})
	nodes := startSubNodes(t, h, 2, SubscriptionConfig{PushesPerSecond: 2, MaxBacklogRecords: 100, RenewInterval: 200 * time.Millisecond})
	stream, err := nodes[0].svc.SubscribeLogs(ctx, func() []identity.NodeID { return []identity.NodeID{nodes[1].id} }, api.LogFilter{})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	waitLeases(t, nodes[1:], 1)
	const n = 3000
	for i := 0; i < n; i += 500 {
		recs := make([]api.LogRecord, 500)
		for j := range recs {
			recs[j] = testLogRecord(i + j)
			recs[j].Node = nodes[1].id
		}
		if _, err := nodes[1].db.AppendLogs(ctx, recs...); err != nil {
			t.Fatal(err)
		}
	}
	received := 0
	last := uint64(0)
	deadline := time.After(30 * time.Second)
	for uint64(received)+stream.Dropped() < n {
		select {
		case r := <-stream.C():
			if r.Seq <= last {
				t.Fatalf("seq %d after %d", r.Seq, last)
			}
			last = r.Seq
			received++
		case <-deadline:
			t.Fatalf("received %d + dropped %d of %d", received, stream.Dropped(), n)
		}
	}
	if uint64(received)+stream.Dropped() != n {
		t.Fatalf("received %d + dropped %d != %d", received, stream.Dropped(), n)
	}
	if stream.Dropped() == 0 || stream.Lagged() == 0 {
		t.Fatalf("dropped %d lagged %d: the backlog bound never acted", stream.Dropped(), stream.Lagged())
	}
	if srv := nodes[1].svc.Stats(); srv.Dropped != stream.Dropped() {
		t.Fatalf("server dropped %d, client saw %d", srv.Dropped, stream.Dropped())
	}
}

// TestLostPushRewinds: a push lost on the way leaves a gap the next push
// reveals; the client marks the stream lagged and the server re-sends from
// the client's last seq + 1, so the stream still has every record once.
func TestLostPushRewinds(t *testing.T) {
	ctx := context.Background()
	h := messagingtest.NewHub(t, messagingtest.Config{})
	nodes := startSubNodes(t, h, 2, SubscriptionConfig{RenewInterval: 200 * time.Millisecond})
	stream, err := nodes[0].svc.SubscribeLogs(ctx, func() []identity.NodeID { return []identity.NodeID{nodes[1].id} }, api.LogFilter{})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	waitLeases(t, nodes[1:], 1)
	h.DropNext(nodes[0].id, messaging.ChanSubscribe, 1)
	for i := 0; i < 40; i++ {
		rec := testLogRecord(i)
		rec.Node = nodes[1].id
		if _, err := nodes[1].db.AppendLogs(ctx, rec); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // spread over several pushes
	}
	got := recvN(t, stream, 40)
	for i, r := range got {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i, r.Seq)
		}
	}
	if stream.Lagged() == 0 {
		t.Fatal("the lost push was never noticed")
	}
	if nodes[1].svc.Stats().Rewinds == 0 {
		t.Fatal("the server never rewound")
	}
}

func TestSubscribeRejectsBadFilter(t *testing.T) {
	h := messagingtest.NewHub(t, messagingtest.Config{})
	nd := startSubNodes(t, h, 1, SubscriptionConfig{})[0]
	_, err := nd.svc.SubscribeLogs(context.Background(), nodeIDs([]*subNode{nd}), api.LogFilter{Match: strings.Repeat("m", MaxFilterMatchBytes+1)})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("got %v", err)
	}
}

func TestSubMessageRoundTrip(t *testing.T) {
	tests := []subMsg{
		{Type: subLeaseLogs, Sub: 1, Resume: 9, Flags: subFlagRewind, Filter: api.LogFilter{MinLevel: api.LevelInfo, Node: 5, Daemon: "d", Match: "m"}},
		{Type: subLeaseFailures, Sub: 2, Resume: 1},
		{Type: subCancel, Sub: 3},
		{Type: subPushLogs, Sub: 4, From: 1, To: 9, Dropped: 3, Lagged: 1, Records: [][]byte{AppendLogRecord(nil, testLogRecord(1))}},
		{Type: subPushFailures, Sub: 5, From: 2, To: 2},
	}
	for _, m := range tests {
		t.Run(fmt.Sprint(m.Type), func(t *testing.T) {
			b := m.encode()
			got, err := decodeSub(b)
			if err != nil {
				t.Fatal(err)
			}
			if string(got.encode()) != string(b) {
				t.Fatal("re-encode differs")
			}
			if _, err := decodeSub(append(b, 0)); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("trailing byte accepted: %v", err)
			}
		})
	}
}

func FuzzDecodeSub(f *testing.F) {
	for _, m := range []subMsg{
		{Type: subLeaseLogs, Sub: 1, Resume: 9, Flags: subFlagRewind, Filter: api.LogFilter{MinLevel: api.LevelInfo, Node: 5, Daemon: "d", Match: "m"}},
		{Type: subLeaseFailures, Sub: 2, Resume: 1},
		{Type: subCancel, Sub: 3},
		{Type: subPushLogs, Sub: 4, From: 1, To: 9, Dropped: 3, Lagged: 1, Records: [][]byte{AppendLogRecord(nil, testLogRecord(1))}},
		{Type: subPushFailures, Sub: 5, From: 2, To: 3, Records: [][]byte{AppendFailureRecord(nil, api.FailureRecord{Seq: 2, Reason: "x"})}},
	} {
		f.Add(m.encode())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeSub(b)
		if err != nil {
			return
		}
		if got := m.encode(); string(got) != string(b) {
			t.Fatalf("re-encode differs:\n in %x\nout %x", b, got)
		}
	})
}

// TestFilteredBackfillFindsOlderMatches: a filtered subscription's backfill
// is the last matches, so a match that scrolled out of the newest
// LogBackfillRecords lines is still delivered.
func TestFilteredBackfillFindsOlderMatches(t *testing.T) {
	ctx := context.Background()
	h := messagingtest.NewHub(t, messagingtest.Config{})
	nodes := startSubNodes(t, h, 1, SubscriptionConfig{RenewInterval: 200 * time.Millisecond})
	nd := nodes[0]
	recs := make([]api.LogRecord, 2000)
	for i := range recs {
		recs[i] = testLogRecord(i)
		recs[i].Node = nd.id
		recs[i].Text = "routine chatter"
	}
	recs[10].Text = "NEEDLE in the haystack"
	if _, err := nd.db.AppendLogs(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	stream, err := nd.svc.SubscribeLogs(ctx, nodeIDs(nodes), api.LogFilter{Match: "needle"})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	got := recvN(t, stream, 1)
	if !strings.Contains(got[0].Text, "NEEDLE") {
		t.Fatalf("got %q", got[0].Text)
	}
}

// TestAttackPushedLogRecordsClaimAnotherNode: a member whose log holds
// lines stamped with another node's id (it wrote them so, to put words in
// the victim's mouth) serves them on a subscription like any other. The
// subscriber believes a pushed record only about the node that pushed it:
// the forged lines never reach the stream and are counted; the pusher's
// own lines still arrive.
func TestAttackPushedLogRecordsClaimAnotherNode(t *testing.T) {
	ctx := context.Background()
	h := messagingtest.NewHub(t, messagingtest.Config{})
	nodes := startSubNodes(t, h, 3, SubscriptionConfig{RenewInterval: 200 * time.Millisecond})
	client, victim, attacker := nodes[0], nodes[1], nodes[2]
	const forged = 20
	recs := make([]api.LogRecord, 0, forged+1)
	for i := 0; i < forged; i++ {
		r := testLogRecord(i)
		r.Node, r.Level, r.Text = victim.id, api.LevelError, fmt.Sprintf("victim: disk wiped %d", i)
		recs = append(recs, r)
	}
	own := testLogRecord(forged)
	own.Node, own.Text = attacker.id, "attacker's own line"
	recs = append(recs, own)
	if _, err := attacker.db.AppendLogs(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	stream, err := client.svc.SubscribeLogs(ctx, func() []identity.NodeID { return []identity.NodeID{attacker.id} }, api.LogFilter{})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	// The attacker's own line comes after every forged one in its log, so
	// once it has arrived every forged line has been through the client.
	got := recvN(t, stream, 1)
	if got[0].Node != attacker.id || got[0].Text != own.Text {
		t.Fatalf("first record delivered: %+v (a line attributed to %s by %s)", got[0], got[0].Node, attacker.id)
	}
	if n := len(stream.C()); n != 0 {
		t.Fatalf("%d more records delivered: %+v", n, <-stream.C())
	}
	if m := client.svc.Stats().Misattributed; m != forged {
		t.Fatalf("misattributed %d, want %d", m, forged)
	}
}

// TestAttackPushedFailureRecordsClaimAnotherNode: the same for failure
// records, which the failures tab and the behaviour timeline attribute to
// a node.
func TestAttackPushedFailureRecordsClaimAnotherNode(t *testing.T) {
	ctx := context.Background()
	h := messagingtest.NewHub(t, messagingtest.Config{})
	nodes := startSubNodes(t, h, 3, SubscriptionConfig{RenewInterval: 200 * time.Millisecond})
	client, victim, attacker := nodes[0], nodes[1], nodes[2]
	const forged = 10
	for i := 0; i < forged; i++ {
		if _, err := attacker.db.AppendFailures(ctx, api.FailureRecord{At: testT0, Node: victim.id, Source: "daemon", Reason: fmt.Sprint("forged ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := attacker.db.AppendFailures(ctx, api.FailureRecord{At: testT0, Node: attacker.id, Source: "admit", Reason: "own"}); err != nil {
		t.Fatal(err)
	}
	stream, err := client.svc.SubscribeFailures(ctx, func() []identity.NodeID { return []identity.NodeID{attacker.id} }, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	got := recvN(t, stream, 1)
	if got[0].Node != attacker.id || got[0].Reason != "own" {
		t.Fatalf("first failure delivered: %+v (attributed to %s by %s)", got[0], got[0].Node, attacker.id)
	}
	if n := len(stream.C()); n != 0 {
		t.Fatalf("%d more failures delivered: %+v", n, <-stream.C())
	}
	if m := client.svc.Stats().Misattributed; m != forged {
		t.Fatalf("misattributed %d, want %d", m, forged)
	}
}
