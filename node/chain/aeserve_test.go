package chain

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/messaging/messagingtest"
	"github.com/deck-mesh/deck/node/nodetest"
)

// TestAttackAntiEntropyFlood: a greedy peer fires pull requests for the
// server's events without waiting for answers (each a 256-event read and a
// ~28 KiB answer), while an honest peer syncs with the same server. On a
// clock that stands still, the greedy peer gets at most one burst of
// answers and the rest of its requests are refused and counted; the honest
// peer, one request in flight at a time, still converges.
func TestAttackAntiEntropyFlood(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clock := nodetest.NewClock(testClockStart)
	h := messagingtest.NewHub(t, messagingtest.Config{})
	s := newEventSigner(t)
	raws := make([][]byte, 600)
	for i := range raws {
		raws[i] = s.event(1_700_000_000_000+int64(i), fmt.Sprint("e", i)) // one bucket: an honest round is a dozen requests
	}
	srv := openTestDB(t, Config{Now: clock.Now}).Ledger(validateTestEvent)
	insertAll(t, ctx, srv, raws)
	srvEP := h.Join(1)
	srvAE := NewAntiEntropy(srv, srvEP, h.IDs, AntiEntropyConfig{Interval: time.Hour})
	actx, acancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = srvAE.Run(actx) }()
	t.Cleanup(func() { acancel(); <-done })
	nodetest.Eventually(t, "server handler registered", func() bool { return srvEP.HasHandler(messaging.ChanLedger) })

	// The greedy peer: a bare endpoint that counts the answers it gets.
	greedy := h.Join(66)
	var answers atomic.Uint64
	greedy.Handle(messaging.ChanLedger, func(_ identity.NodeID, msg []byte) {
		if m, err := decodeAE(msg); err == nil && m.Type == aePullResp {
			answers.Add(1)
		}
	})
	ids, _, err := srv.IDsRange(0, 1<<DigestMaxWidthShiftBits, nil, AEMaxPullEvents)
	if err != nil || len(ids) != AEMaxPullEvents {
		t.Fatalf("ids: %d, %v", len(ids), err)
	}
	const flood = 1000
	for i := range flood {
		req := (&aeMsg{Type: aePullReq, ReqID: uint64(i + 1), IDs: ids}).encode()
		if err := greedy.Send(ctx, 1, messaging.ChanLedger, req); err != nil {
			t.Fatal(err)
		}
	}
	// Every request is answered, refused or still queued (at most one
	// peer queue's worth).
	nodetest.Eventually(t, "every greedy request answered or refused", func() bool {
		st := srvAE.Stats()
		return answers.Load()+st.Throttled+st.Dropped >= flood-AEMaxQueuedPerPeer
	}, func() string { return fmt.Sprintf("answers %d, server %+v", answers.Load(), srvAE.Stats()) })
	t.Logf("greedy peer: %d pull requests, %d answered; server %+v", flood, answers.Load(), srvAE.Stats())
	if got := answers.Load(); got > AEServeBurstRequestsPerPeer {
		t.Fatalf("the greedy peer got %d answers to %d pull requests on a clock that stands still; want at most one burst, %d",
			got, flood, AEServeBurstRequestsPerPeer)
	}
	if st := srvAE.Stats(); st.Throttled == 0 {
		t.Fatalf("no request counted as throttled: %+v", st)
	}

	// The honest peer syncs with the same server, greedy queue and all.
	cli := openTestDB(t, Config{Now: clock.Now}).Ledger(validateTestEvent)
	cliAE := NewAntiEntropy(cli, h.Join(2), h.IDs, AntiEntropyConfig{Interval: time.Hour})
	h.Node(2).Handle(messaging.ChanLedger, cliAE.Handle)
	for rounds := 0; cli.Digest() != srv.Digest(); rounds++ {
		if rounds > 10 {
			t.Fatalf("honest peer not converged after 10 rounds: %d of %d events", cli.Digest().Count, len(raws))
		}
		if _, err := cliAE.SyncWith(ctx, 1); err != nil {
			t.Fatalf("honest round %d: %v", rounds, err)
		}
	}
}

// TestAEServeQueueBudgets: requests are released round robin across peers,
// one peer's requests wait for its request and byte budgets without
// holding up another's, and a full peer queue refuses.
func TestAEServeQueueBudgets(t *testing.T) {
	clock := nodetest.NewClock(testClockStart)
	q := newAEServeQueue(clock.Now)
	req := func(from identity.NodeID, id uint64) aeInbound {
		return aeInbound{from: from, msg: &aeMsg{Type: aeDigestReq, ReqID: id}}
	}
	for i := range AEMaxQueuedPerPeer {
		if r := q.push(req(1, uint64(i))); r != aeQueued {
			t.Fatalf("request %d refused: %d", i, r)
		}
	}
	if r := q.push(req(1, 99)); r != aePeerFull || q.room(1) != aePeerFull {
		t.Fatal("a full peer queue took one more request")
	}
	q.push(req(2, 100))
	q.push(req(2, 101))
	var got []identity.NodeID
	for range 4 {
		in, _, ok := q.next()
		if !ok {
			t.Fatal("nothing released with budget left")
		}
		got = append(got, in.from)
	}
	if fmt.Sprint(got) != fmt.Sprint([]identity.NodeID{1, 2, 1, 2}) {
		t.Fatalf("release order %v, want peers taking turns", got)
	}
	// Peer 1 answered beyond its byte burst: it waits for refill, peer 2
	// does not; peer 2 is empty now, so nothing is released.
	q.charge(1, AEServeBurstBytesPerPeer+1<<20)
	q.push(req(2, 102))
	if in, _, ok := q.next(); !ok || in.from != 2 {
		t.Fatalf("peer 2 held up by peer 1's debt: %+v %v", in, ok)
	}
	_, wait, ok := q.next()
	if ok || wait <= 0 || wait > AERequestTimeout {
		t.Fatalf("peer 1 in debt: released %v, wait %v (want a wait inside AERequestTimeout)", ok, wait)
	}
	clock.Advance(wait)
	if in, _, ok := q.next(); !ok || in.from != 1 {
		t.Fatal("peer 1 not released once its debt is paid")
	}
	// Requests: the burst, then one per 1/rate.
	q2 := newAEServeQueue(clock.Now)
	served := 0
	for i := range 2 * AEServeBurstRequestsPerPeer {
		if q2.room(3) == aeQueued {
			q2.push(req(3, uint64(i)))
		}
		if _, _, ok := q2.next(); ok {
			served++
		}
	}
	if served != AEServeBurstRequestsPerPeer {
		t.Fatalf("served %d on a still clock, want the burst %d", served, AEServeBurstRequestsPerPeer)
	}
	clock.Advance(time.Second / AEServeRequestsPerSecondPerPeer)
	if _, _, ok := q2.next(); !ok {
		t.Fatal("no request released after one refill interval")
	}
}
