package gossip

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/identity"
)

var testNow = time.UnixMilli(1_760_000_000_000).UTC()

func TestSealOpenRoundTrip(t *testing.T) {
	key := testKey(t, 1)
	ns := nodeSnapshot(key.ID, 42, 50, testNow)
	raw, err := Seal(key, ns, 1234, 7, testNow)
	if err != nil {
		t.Fatal(err)
	}
	env, err := Open(raw)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if env.Signer != key.ID || env.Epoch != 1234 || env.Seq != 7 || env.Generation != 42 ||
		!env.SignedAt.Equal(testNow) || !bytes.Equal(env.PublicKey, key.Public) {
		t.Fatalf("header %+v", env)
	}
	if !reflect.DeepEqual(env.Snapshot, normalize(ns)) {
		t.Fatal("snapshot differs after open")
	}
	// The result must not alias the input buffer.
	for i := range raw {
		raw[i] = 0
	}
	if env.PublicKey[0] != key.Public[0] || env.Snapshot.Label != ns.Label {
		t.Fatal("envelope aliases the wire buffer")
	}
}

// craft builds an envelope from explicit parts, signing body with signer's
// private key (behind domain), so tests can forge any field.
func craft(t testing.TB, signerField identity.NodeID, pub ed25519.PublicKey, signWith *identity.Key, domain string,
	snapID identity.NodeID, headerGen uint64) []byte {
	t.Helper()
	ns := nodeSnapshot(snapID, 5, 3, testNow)
	snap, err := EncodeSnapshot(ns)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte{envelopeVersion}
	body = binary.BigEndian.AppendUint64(body, uint64(signerField))
	body = append(body, pub...)
	body = binary.AppendUvarint(body, 1)
	body = binary.AppendUvarint(body, 1)
	body = binary.AppendUvarint(body, headerGen)
	body = binary.AppendVarint(body, testNow.UnixMilli())
	body = binary.BigEndian.AppendUint16(body, 0) // no certificate
	body = binary.AppendUvarint(body, uint64(len(snap)))
	body = append(body, snap...)
	sig := signWith.Sign(append([]byte(domain), body...))
	return append(body, sig...)
}

// TestForgedNodeIDRefused is the seed project's critical bug: a node signs,
// with its own valid key, a snapshot that claims another node's id. The
// signature verifies; the claim must still be refused.
func TestForgedNodeIDRefused(t *testing.T) {
	attacker, victim := testKey(t, 1), testKey(t, 2)

	// Seal refuses to produce it at all.
	if _, err := Seal(attacker, nodeSnapshot(victim.ID, 5, 3, testNow), 1, 1, testNow); !errors.Is(err, ErrSnapshotIDMismatch) {
		t.Fatalf("Seal: %v, want ErrSnapshotIDMismatch", err)
	}
	tests := []struct {
		name string
		raw  []byte
		want error
	}{
		{"snapshot claims the victim's id under the attacker's valid signature",
			craft(t, attacker.ID, attacker.Public, attacker, SnapshotDomain, victim.ID, 5), ErrSnapshotIDMismatch},
		{"signer field claims the victim with the attacker's key",
			craft(t, victim.ID, attacker.Public, attacker, SnapshotDomain, victim.ID, 5), ErrForgedSigner},
		{"victim's public key, attacker's signature",
			craft(t, victim.ID, victim.Public, attacker, SnapshotDomain, victim.ID, 5), ErrBadSignature},
		{"signature without the domain prefix",
			craft(t, attacker.ID, attacker.Public, attacker, "", attacker.ID, 5), ErrBadSignature},
		{"another domain's signature",
			craft(t, attacker.ID, attacker.Public, attacker, identity.NodeRecordPrefix, attacker.ID, 5), ErrBadSignature},
		{"header generation differs from the snapshot's",
			craft(t, attacker.ID, attacker.Public, attacker, SnapshotDomain, attacker.ID, 6), ErrMalformed},
		{"zero signer", craft(t, 0, attacker.Public, attacker, SnapshotDomain, attacker.ID, 5), identity.ErrZeroID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := Open(tt.raw)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open = %+v, %v; want %v", env, err, tt.want)
			}
		})
	}
	// Control: the same construction, honest, opens.
	if _, err := Open(craft(t, attacker.ID, attacker.Public, attacker, SnapshotDomain, attacker.ID, 5)); err != nil {
		t.Fatalf("honest crafted envelope refused: %v", err)
	}
}

// TestOpenRejectsEveryBitFlip: every byte is covered by the signature or is
// the signature, so any single change must be refused.
func TestOpenRejectsEveryBitFlip(t *testing.T) {
	key := testKey(t, 1)
	raw, err := Seal(key, nodeSnapshot(key.ID, 1, 1, testNow), 9, 9, testNow)
	if err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		for _, bit := range []byte{0x01, 0x80} {
			b := bytes.Clone(raw)
			b[i] ^= bit
			if _, err := Open(b); err == nil {
				t.Fatalf("flip of bit %#x at byte %d accepted", bit, i)
			}
		}
	}
	if _, err := Open(append(bytes.Clone(raw), 0)); !errors.Is(err, ErrTrailingBytes) {
		t.Fatalf("trailing byte: %v", err)
	}
	for _, n := range []int{0, 1, 40, len(raw) - 65, len(raw) - 1} {
		if _, err := Open(raw[:n]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	if _, err := Open(make([]byte, MaxEnvelopeBytes+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
}

func TestSealRefusesUnencodable(t *testing.T) {
	key := testKey(t, 1)
	ns := nodeSnapshot(key.ID, 1, MaxDaemonsPerSnapshot+1, testNow)
	if _, err := Seal(key, ns, 1, 1, testNow); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Seal: %v", err)
	}
}

func TestDigestCodec(t *testing.T) {
	entries := []digestEntry{{1, 5, 6}, {2, 0, 0}, {1 << 63, 1 << 62, 1}}
	msg := appendDigestMsg(nil, digestReply, entries)
	if msg[0] != msgDigest {
		t.Fatalf("type %d", msg[0])
	}
	flags, got, err := decodeDigest(msg[1:])
	if err != nil || flags != digestReply || !reflect.DeepEqual(got, entries) {
		t.Fatalf("round trip: %v %v %v", flags, got, err)
	}
	if _, got, err := decodeDigest(appendDigestMsg(nil, 0, nil)[1:]); err != nil || got != nil {
		t.Fatalf("empty digest: %v %v", got, err)
	}
	tests := []struct {
		name string
		body []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"unknown flag", appendDigestMsg(nil, 4, entries)[1:], ErrMalformed},
		{"unsorted", appendDigestMsg(nil, 0, []digestEntry{{2, 0, 0}, {1, 0, 0}})[1:], ErrMalformed},
		{"repeated id", appendDigestMsg(nil, 0, []digestEntry{{2, 0, 0}, {2, 1, 0}})[1:], ErrMalformed},
		{"zero id", appendDigestMsg(nil, 0, []digestEntry{{0, 0, 0}})[1:], ErrMalformed},
		{"trailing", append(appendDigestMsg(nil, 0, entries)[1:], 0), ErrTrailingBytes},
		{"count beyond bytes", []byte{0, 100}, ErrTruncated},
		{"count over MaxNodes", binary.AppendUvarint([]byte{0}, MaxNodes+1), ErrTooLarge},
		{"oversized", make([]byte, MaxDigestBytes+1), ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := decodeDigest(tt.body); !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
		})
	}
}

// TestAttackSnapshotTextCannotCarryTerminalEscapes: a member signs a
// snapshot whose label carries an escape sequence (screen clear), bound for
// every operator's terminal. The decoder refuses it, and a node's own
// snapshot with a control character in a field is repaired by Fit before it
// is signed, so an honest node is never refused for a stray newline.
func TestAttackSnapshotTextCannotCarryTerminalEscapes(t *testing.T) {
	attacker := testKey(t, 77)
	ns := nodeSnapshot(attacker.ID, 5, 3, testNow)
	ns.Label = "LBL_"
	enc, err := EncodeSnapshot(ns)
	if err != nil {
		t.Fatal(err)
	}
	evil := bytes.Replace(enc, []byte("LBL_"), []byte("\x1b[2J"), 1)
	raw := sealEncoded(attacker, nil, evil, ns.Generation, 1, 1, testNow)
	if _, err := Open(raw); !errors.Is(err, ErrMalformed) {
		t.Fatalf("escape in a label: Open = %v, want ErrMalformed", err)
	}
	honest := nodeSnapshot(attacker.ID, 5, 3, testNow)
	honest.Label = "line\nbreak"
	fixed, n := Fit(honest)
	if n == 0 || fixed.Label != "line break" {
		t.Fatalf("Fit left %q (%d repairs)", fixed.Label, n)
	}
	if _, err := EncodeSnapshot(fixed); err != nil {
		t.Fatalf("a repaired snapshot does not encode: %v", err)
	}
}
