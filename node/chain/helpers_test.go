package chain

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/mesh"
)

// ---- databases and clocks ----

func openTestDB(t testing.TB, cfg Config) *DB {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.RetentionInterval == 0 {
		cfg.RetentionInterval = -1 // tests sweep explicitly
	}
	if cfg.ValueLogGCInterval == 0 {
		cfg.ValueLogGCInterval = -1
	}
	db, err := Open(cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return db
}

// fakeClock is an injectable clock that only moves when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// waitFor polls cond every 20 ms for up to timeout: robust on a loaded
// two-core box, and never a speed assertion.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---- signed test events ----
//
// A real signed event: issued_at_ms(8) body_len(2) body pub(32) sig(64),
// the signature over everything before it by pub. The id is BLAKE2b-256 of
// the whole event. node/command owns the real event format; this one is
// just as real cryptographically.

const testEventSigned = "deck-test-event-v1:"

type eventSigner struct{ key *identity.Key }

func newEventSigner(t testing.TB) *eventSigner {
	t.Helper()
	k, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return &eventSigner{key: k}
}

func (s *eventSigner) event(issuedAtMs int64, body string) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(issuedAtMs))
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	b = append(b, body...)
	b = append(b, s.key.Public...)
	sig := s.key.Sign(append([]byte(testEventSigned), b...))
	return append(b, sig...)
}

var errBadEvent = errors.New("bad test event")

// validateTestEvent is the Validator for test events: it checks the
// ed25519 signature for real.
func validateTestEvent(raw []byte) (EventMeta, error) {
	if len(raw) < 8+2+32+64 {
		return EventMeta{}, fmt.Errorf("%w: %d bytes", errBadEvent, len(raw))
	}
	n := int(binary.BigEndian.Uint16(raw[8:10]))
	if len(raw) != 8+2+n+32+64 {
		return EventMeta{}, fmt.Errorf("%w: length", errBadEvent)
	}
	signed := raw[:len(raw)-64]
	pub := ed25519.PublicKey(raw[10+n : 10+n+32])
	if !ed25519.Verify(pub, append([]byte(testEventSigned), signed...), raw[len(raw)-64:]) {
		return EventMeta{}, fmt.Errorf("%w: signature", errBadEvent)
	}
	return EventMeta{ID: blake2b.Sum256(raw), IssuedAt: int64(binary.BigEndian.Uint64(raw))}, nil
}

func testEventBody(raw []byte) string {
	n := int(binary.BigEndian.Uint16(raw[8:10]))
	return string(raw[10 : 10+n])
}

// ---- an in-process Messenger ----
//
// hub delivers whole messages between endpoints through a bounded inbox
// and one goroutine per endpoint, like a datagram transport: handlers run
// off the sender's goroutine, a full inbox drops. Links can be partitioned
// (Send returns mesh.ErrNoRoute, as the real transport does once its
// failure detector gives up on a peer) and individual messages dropped.

type hub struct {
	mu      sync.Mutex
	eps     map[identity.NodeID]*endpoint
	blocked map[[2]identity.NodeID]bool
	// dropNext drops the next n messages on a channel (per destination).
	dropNext map[dropKey]int
	wg       sync.WaitGroup
	stop     chan struct{}
}

type dropKey struct {
	to identity.NodeID
	ch mesh.Channel
}

type delivery struct {
	from identity.NodeID
	ch   mesh.Channel
	msg  []byte
}

type endpoint struct {
	h        *hub
	id       identity.NodeID
	mu       sync.RWMutex
	handlers map[mesh.Channel]mesh.Handler
	inbox    chan delivery
	sent     atomic.Uint64
	dropped  atomic.Uint64
}

const hubInboxLen = 4096

func newHub(t testing.TB) *hub {
	h := &hub{eps: map[identity.NodeID]*endpoint{}, blocked: map[[2]identity.NodeID]bool{}, dropNext: map[dropKey]int{}, stop: make(chan struct{})}
	t.Cleanup(func() {
		close(h.stop)
		h.wg.Wait()
	})
	return h
}

func (h *hub) endpoint(id identity.NodeID) *endpoint {
	h.mu.Lock()
	defer h.mu.Unlock()
	ep := &endpoint{h: h, id: id, handlers: map[mesh.Channel]mesh.Handler{}, inbox: make(chan delivery, hubInboxLen)}
	h.eps[id] = ep
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for {
			select {
			case <-h.stop:
				return
			case d := <-ep.inbox:
				ep.mu.RLock()
				fn := ep.handlers[d.ch]
				ep.mu.RUnlock()
				if fn != nil {
					fn(d.from, d.msg)
				}
			}
		}
	}()
	return ep
}

func (h *hub) ids() []identity.NodeID {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]identity.NodeID, 0, len(h.eps))
	for id := range h.eps {
		out = append(out, id)
	}
	return out
}

// partition cuts every link between a side and the rest.
func (h *hub) partition(side []identity.NodeID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	in := map[identity.NodeID]bool{}
	for _, id := range side {
		in[id] = true
	}
	for a := range h.eps {
		for b := range h.eps {
			if in[a] != in[b] {
				h.blocked[[2]identity.NodeID{a, b}] = true
			}
		}
	}
}

func (h *hub) heal() {
	h.mu.Lock()
	h.blocked = map[[2]identity.NodeID]bool{}
	h.mu.Unlock()
}

func (h *hub) drop(to identity.NodeID, ch mesh.Channel, n int) {
	h.mu.Lock()
	h.dropNext[dropKey{to, ch}] += n
	h.mu.Unlock()
}

func (e *endpoint) Self() identity.NodeID { return e.id }

func (e *endpoint) Send(ctx context.Context, to identity.NodeID, ch mesh.Channel, msg []byte) error {
	if len(msg) > mesh.MaxMessageBytes {
		return mesh.ErrTooLarge
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	h := e.h
	h.mu.Lock()
	dst := h.eps[to]
	blocked := h.blocked[[2]identity.NodeID{e.id, to}]
	k := dropKey{to, ch}
	drop := h.dropNext[k] > 0
	if drop {
		h.dropNext[k]--
	}
	h.mu.Unlock()
	if dst == nil || blocked {
		return mesh.ErrNoRoute
	}
	e.sent.Add(1)
	if drop {
		return nil // lost on the way, like a datagram
	}
	select {
	case dst.inbox <- delivery{from: e.id, ch: ch, msg: bytes.Clone(msg)}:
	default:
		e.dropped.Add(1)
	}
	return nil
}

func (e *endpoint) Handle(ch mesh.Channel, fn mesh.Handler) {
	e.mu.Lock()
	e.handlers[ch] = fn
	e.mu.Unlock()
}

func (e *endpoint) Peers() []mesh.PeerInfo {
	var out []mesh.PeerInfo
	for _, id := range e.h.ids() {
		if id != e.id {
			out = append(out, mesh.PeerInfo{ID: id, Direct: true})
		}
	}
	return out
}

func (e *endpoint) Stats() mesh.Stats {
	return mesh.Stats{PacketsOut: e.sent.Load(), Drops: e.dropped.Load()}
}

var _ mesh.Messenger = (*endpoint)(nil)
