package chain

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/deck-mesh/deck/node/identity"
)

// ---- databases and clocks ----

func openTestDB(t testing.TB, cfg Config) *DB {
	t.Helper()
	if cfg.Dir == "" && !cfg.InMemory {
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

// testClockStart is where the retention tests' nodetest.Clock starts.
var testClockStart = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

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
