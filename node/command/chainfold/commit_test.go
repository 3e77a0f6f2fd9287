package chainfold

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/identity/identitytest"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/nodetest"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/node/transport"
)

func TestCommitMessagesRoundTrip(t *testing.T) {
	id := [32]byte{1, 2, 3}
	long := strings.Repeat("r", MaxNackReasonBytes+10)
	for _, tt := range []struct {
		msg  []byte
		want commitMessage
	}{
		{appendPush(nil, []byte("event")), commitMessage{kind: msgPush, event: []byte("event")}},
		{appendAck(nil, id), commitMessage{kind: msgAck, id: id}},
		{appendNack(nil, id, "frozen"), commitMessage{kind: msgNack, id: id, reason: []byte("frozen")}},
		{appendNack(nil, id, ""), commitMessage{kind: msgNack, id: id, reason: []byte{}}},
		{appendNack(nil, id, long), commitMessage{kind: msgNack, id: id, reason: []byte(long[:MaxNackReasonBytes])}},
	} {
		got, err := parseCommitMessage(tt.msg)
		if err != nil || got.kind != tt.want.kind || got.id != tt.want.id ||
			!bytes.Equal(got.event, tt.want.event) || !bytes.Equal(got.reason, tt.want.reason) {
			t.Errorf("parse %x = %+v, %v; want %+v", tt.msg, got, err, tt.want)
		}
	}
}

func TestCommitMessagesRefused(t *testing.T) {
	for _, msg := range [][]byte{
		nil, {}, {0}, {9, 1, 2}, {msgPush},
		append([]byte{msgPush}, make([]byte, chain.MaxEventBytes+1)...),
		{msgAck}, append([]byte{msgAck}, make([]byte, 31)...), append([]byte{msgAck}, make([]byte, 33)...),
		{msgNack}, append([]byte{msgNack}, make([]byte, 31)...),
		append([]byte{msgNack}, make([]byte, 33+MaxNackReasonBytes)...),
	} {
		if m, err := parseCommitMessage(msg); !errors.Is(err, ErrMalformedCommitMessage) {
			t.Errorf("parse %.40x = %+v, %v; want ErrMalformedCommitMessage", msg, m, err)
		}
	}
}

// FuzzCommitMessage: any bytes parse or are refused without a panic, and
// what parses re-encodes to the same bytes (one encoding per message).
func FuzzCommitMessage(f *testing.F) {
	id := [32]byte{7}
	for _, seed := range [][]byte{
		appendPush(nil, []byte("an event")), appendAck(nil, id), appendNack(nil, id, "cluster is frozen"),
		appendNack(nil, id, ""), {msgAck}, {}, {4, 0},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		m, err := parseCommitMessage(msg)
		if err != nil {
			return
		}
		var again []byte
		switch m.kind {
		case msgPush:
			again = appendPush(nil, m.event)
		case msgAck:
			again = appendAck(nil, m.id)
		case msgNack:
			again = appendNack(nil, m.id, string(m.reason))
		default:
			t.Fatalf("parsed kind %d", m.kind)
		}
		if !bytes.Equal(again, msg) {
			t.Fatalf("re-encoded %x, parsed from %x", again, msg)
		}
	})
}

// TestCommitterIgnoresMalformedMessages: bytes from the network that are not
// a valid push, ack or refusal are dropped without panicking (a push that
// is not an event is refused by the ledger's Validator and left
// unanswered), and a refusal for an event being waited on reaches the
// waiter with the peer's reason, repaired to valid UTF-8.
func TestCommitterIgnoresMalformedMessages(t *testing.T) {
	db, err := chain.Open(chain.Config{Dir: t.TempDir(), RetentionInterval: -1, ValueLogGCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	led := db.Ledger(Validator(cluster, time.Now))
	var mu sync.Mutex
	var refused []error
	c := NewCommitter(CommitConfig{Context: t.Context(), Ledger: led, Refused: func(_ identity.NodeID, _ *command.Event, err error) {
		mu.Lock()
		refused = append(refused, err)
		mu.Unlock()
	}})
	for _, msg := range [][]byte{
		nil, {}, {0}, {9, 1, 2}, {msgPush}, {msgPush, 1, 2, 3},
		{msgAck}, append([]byte{msgAck}, make([]byte, 31)...), append([]byte{msgAck}, make([]byte, 40)...),
		{msgNack}, append([]byte{msgNack}, make([]byte, 33+MaxNackReasonBytes)...),
	} {
		c.Handle(1, msg)
	}
	var id [32]byte
	id[0] = 7
	ch := make(chan commitReply, 1)
	c.waiting[id] = ch
	c.Handle(5, append(append([]byte{msgNack}, id[:]...), "cluster is frozen\xff"...))
	select {
	case r := <-ch:
		if r.from != 5 || r.err == nil || r.err.Error() != "node "+identity.NodeID(5).String()+": cluster is frozen?" {
			t.Fatalf("reply = %+v", r)
		}
	default:
		t.Fatal("refusal did not reach the waiter")
	}
	time.Sleep(50 * time.Millisecond) // let the garbage push's insert finish
	mu.Lock()
	defer mu.Unlock()
	if len(refused) != 0 || led.Head().Count != 0 {
		t.Fatalf("garbage reached the audit (%v) or the ledger (%d)", refused, led.Head().Count)
	}
}

// commitPeer is one node of the push protocol over a real UDP transport.
type commitPeer struct {
	tr      *transport.Transport
	led     *chain.Ledger
	c       *Committer
	mu      sync.Mutex
	refused []error
}

func startCommitPeer(t *testing.T, cluster string, observer bool, bootstrap ...string) *commitPeer {
	t.Helper()
	k, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := transport.New(transport.Config{Key: k, PSK: [32]byte{4, 2}, ListenAddr: "127.0.0.1:0", Bootstrap: bootstrap,
		HeartbeatInterval: 50 * time.Millisecond, HandshakeTimeout: 3 * time.Second, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	db, err := chain.Open(chain.Config{Dir: t.TempDir(), RetentionInterval: -1, ValueLogGCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	p := &commitPeer{tr: tr, led: db.Ledger(Validator(cluster, func() time.Time { return t0.Add(time.Minute) }))}
	ctx, cancel := context.WithCancel(context.Background())
	p.c = NewCommitter(CommitConfig{Context: ctx, Ledger: p.led, Messenger: tr, WaitForAck: observer,
		Peers: func() []identity.NodeID {
			var ids []identity.NodeID
			for _, pi := range tr.Peers() {
				if pi.Health != snapshot.Unreachable {
					ids = append(ids, pi.ID)
				}
			}
			return ids
		},
		Refused: func(_ identity.NodeID, _ *command.Event, err error) {
			p.mu.Lock()
			p.refused = append(p.refused, err)
			p.mu.Unlock()
		},
	})
	tr.Handle(messaging.ChanCommand, p.c.Handle)
	tr.Start(ctx)
	t.Cleanup(func() { cancel(); tr.Close(); db.Close() })
	return p
}

// TestPushAcknowledgedAndRefusedOverTransport: a console's commit returns
// once its peer acknowledges (the peer then holds the event), and when the
// peer refuses it (another cluster's event, for it) the console reports the
// peer's reason instead of a timeout; the peer records the refusal.
func TestPushAcknowledgedAndRefusedOverTransport(t *testing.T) {
	alice := identitytest.Key(t, "alice")
	peer := startCommitPeer(t, cluster, false)
	console := startCommitPeer(t, cluster, true, peer.tr.LocalAddr())
	nodetest.Eventually(t, "the console to meet its peer", func() bool { return len(console.c.cfg.Peers()) >= 1 })
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ev := event(t, api.Action{Verb: api.VerbCordon, Node: 1}, 0, 1, alice)
	if _, err := console.c.Commit(ctx, ev); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if held, err := peer.led.Has(ev.LedgerKey()); err != nil || !held {
		t.Fatalf("acknowledged but the peer does not hold the event: %v", err)
	}

	// A console of another cluster pushing to this peer is refused with
	// the reason.
	other := startCommitPeer(t, "another-cluster", true, peer.tr.LocalAddr())
	nodetest.Eventually(t, "the second console to meet the peer", func() bool { return len(other.c.cfg.Peers()) >= 1 })
	foreign := func() *command.Event {
		b := command.Body{Kind: command.KindAdmin, Cluster: "another-cluster", Proposer: alice.ID,
			Action: api.Action{Verb: api.VerbCordon, Node: 2}, Nonce: command.Nonce{2}, IssuedAtMs: t0.UnixMilli()}
		p, err := b.SigningPayload()
		if err != nil {
			t.Fatal(err)
		}
		e, err := command.NewEvent(b, []api.Signature{{Operator: alice.ID, Sig: alice.Sign(p)}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}()
	_, err := other.c.Commit(ctx, foreign)
	if err == nil || !strings.Contains(err.Error(), "every peer refused") || !strings.Contains(err.Error(), "another-cluster") {
		t.Fatalf("refused commit: %v", err)
	}
	peer.mu.Lock()
	defer peer.mu.Unlock()
	if len(peer.refused) != 1 || !errors.Is(peer.refused[0], command.ErrWrongCluster) {
		t.Fatalf("peer recorded %v", peer.refused)
	}
}
