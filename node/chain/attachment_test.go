package chain

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/messaging/messagingtest"
	"github.com/deck-mesh/deck/node/nodetest"
)

// recordingAdmitter validates test events for real and stores what came
// beside each one with its sender's id appended, so a test sees both what
// it was offered and who offered it.
type recordingAdmitter struct {
	mu     sync.Mutex
	seen   map[[32]byte]Incoming
	refuse bool
}

var errRefusedByTest = errors.New("refused by the test's admitter")

func (a *recordingAdmitter) admit(in Incoming) (EventMeta, error) {
	meta, err := validateTestEvent(in.Raw)
	if err != nil {
		return meta, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seen == nil {
		a.seen = map[[32]byte]Incoming{}
	}
	a.seen[meta.ID] = Incoming{Raw: bytes.Clone(in.Raw), Attachment: bytes.Clone(in.Attachment), From: in.From}
	if a.refuse {
		return meta, errRefusedByTest
	}
	if len(in.Attachment) > 0 {
		meta.Attachment = append(bytes.Clone(in.Attachment), byte(in.From))
	}
	return meta, nil
}

func (a *recordingAdmitter) from(id [32]byte) (Incoming, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	in, ok := a.seen[id]
	return in, ok
}

// TestAttachmentTravelsWithItsEvent: what an Admitter stores beside an
// event is written with it, read back, and served with it in anti-entropy
// pulls, where the puller's Admitter sees it together with the peer that
// served it.
func TestAttachmentTravelsWithItsEvent(t *testing.T) {
	ctx := t.Context()
	s := newEventSigner(t)
	var srvAdm, cliAdm recordingAdmitter
	srv := openTestDB(t, Config{}).LedgerAdmitting(validateTestEvent, srvAdm.admit)
	cli := openTestDB(t, Config{}).LedgerAdmitting(validateTestEvent, cliAdm.admit)
	with, without := s.event(1000, "with"), s.event(2000, "without")
	if _, _, err := srv.InsertFrom(ctx, Incoming{Raw: with, Attachment: []byte("receipts"), From: 5}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := srv.InsertFrom(ctx, Incoming{Raw: without}); err != nil {
		t.Fatal(err)
	}
	withID, _ := validateTestEvent(with)
	withoutID, _ := validateTestEvent(without)
	if att, err := srv.Attachment(withID.ID); err != nil || string(att) != "receipts\x05" {
		t.Fatalf("stored attachment %q, %v", att, err)
	}
	if att, err := srv.Attachment(withoutID.ID); err != nil || att != nil {
		t.Fatalf("event without attachment: %q, %v", att, err)
	}
	if err := srv.Verify(ctx); err != nil {
		t.Fatalf("ledger with attachments does not verify: %v", err)
	}

	h := messagingtest.NewHub(t, messagingtest.Config{})
	srvEP, cliEP := h.Join(1), h.Join(2)
	srvAE := NewAntiEntropy(srv, srvEP, h.IDs, AntiEntropyConfig{Interval: time.Hour})
	cliAE := NewAntiEntropy(cli, cliEP, h.IDs, AntiEntropyConfig{Interval: time.Hour})
	cliEP.Handle(messaging.ChanLedger, cliAE.Handle)
	actx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = srvAE.Run(actx) }()
	t.Cleanup(func() { cancel(); <-done })
	nodetest.Eventually(t, "server serving", func() bool { return srvEP.HasHandler(messaging.ChanLedger) })
	if n, err := cliAE.SyncWith(ctx, 1); err != nil || n != 2 {
		t.Fatalf("pulled %d, %v", n, err)
	}
	in, ok := cliAdm.from(withID.ID)
	if !ok || in.From != 1 || string(in.Attachment) != "receipts\x05" {
		t.Fatalf("the puller's admitter saw %+v", in)
	}
	if in, ok := cliAdm.from(withoutID.ID); !ok || in.From != 1 || len(in.Attachment) != 0 {
		t.Fatalf("the puller's admitter saw %+v for the bare event", in)
	}
	if att, err := cli.Attachment(withID.ID); err != nil || string(att) != "receipts\x05\x01" {
		t.Fatalf("puller stored %q, %v", att, err)
	}
}

// TestOldPullStillAnswered: a PullReq (no attachments) is answered with a
// PullResp in its old encoding, so an older node can still pull.
func TestOldPullStillAnswered(t *testing.T) {
	s := newEventSigner(t)
	var adm recordingAdmitter
	l := openTestDB(t, Config{}).LedgerAdmitting(validateTestEvent, adm.admit)
	raw := s.event(1000, "old")
	if _, _, err := l.InsertFrom(t.Context(), Incoming{Raw: raw, Attachment: []byte("r")}); err != nil {
		t.Fatal(err)
	}
	meta, _ := validateTestEvent(raw)
	ae := NewAntiEntropy(l, nil, func() []identity.NodeID { return nil }, AntiEntropyConfig{})
	resp, err := ae.answer(&aeMsg{Type: aePullReq, ReqID: 4, IDs: []Position{meta.Pos()}})
	if err != nil || resp.Type != aePullResp || len(resp.Events) != 1 || !bytes.Equal(resp.Events[0], raw) || resp.Attachments != nil {
		t.Fatalf("answer %+v, %v", resp, err)
	}
	if again, err := decodeAE(resp.encode()); err != nil || again.Type != aePullResp {
		t.Fatalf("old answer does not decode: %v", err)
	}
}

// TestRoundStopsPullingAfterRefusals: a peer serving events this node
// refuses gets one pull answer judged per round (the round stops once
// AEMaxRoundRefusals were refused), not AEMaxRoundPullEvents.
func TestRoundStopsPullingAfterRefusals(t *testing.T) {
	ctx := t.Context()
	s := newEventSigner(t)
	raws := make([][]byte, 3*AEMaxPullEvents)
	for i := range raws {
		raws[i] = s.event(int64(1000+i), "junk to this node")
	}
	srv := openTestDB(t, Config{}).Ledger(validateTestEvent)
	insertAll(t, ctx, srv, raws)
	cliAdm := &recordingAdmitter{refuse: true}
	cli := openTestDB(t, Config{}).LedgerAdmitting(validateTestEvent, cliAdm.admit)
	h := messagingtest.NewHub(t, messagingtest.Config{})
	srvEP := h.Join(1)
	srvAE := NewAntiEntropy(srv, srvEP, h.IDs, AntiEntropyConfig{Interval: time.Hour})
	var refused []Rejection
	cm := &countingMessenger{Node: h.Join(2), sent: map[aeType]int{}}
	cliAE := NewAntiEntropy(cli, cm, h.IDs, AntiEntropyConfig{Interval: time.Hour, Refused: func(r Rejection) { refused = append(refused, r) }})
	cm.Handle(messaging.ChanLedger, cliAE.Handle)
	actx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = srvAE.Run(actx) }()
	t.Cleanup(func() { cancel(); <-done })
	nodetest.Eventually(t, "server serving", func() bool { return srvEP.HasHandler(messaging.ChanLedger) })
	if n, err := cliAE.SyncWith(ctx, 1); err != nil || n != 0 {
		t.Fatalf("added %d, %v", n, err)
	}
	if pulls := cm.take()[aePullAttReq]; pulls != 1 {
		t.Fatalf("%d pulls after the first answer was all refused", pulls)
	}
	if len(refused) != AEMaxPullEvents || refused[0].From != 1 || !errors.Is(refused[0].Err, errRefusedByTest) {
		t.Fatalf("%d refusals reported (want %d, from the peer)", len(refused), AEMaxPullEvents)
	}
	if st := cliAE.Stats(); st.Rejected != AEMaxPullEvents {
		t.Fatalf("stats %+v", st)
	}
}
