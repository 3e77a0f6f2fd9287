package chainfold

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/deck-mesh/deck/node/codec"
	"github.com/deck-mesh/deck/node/identity"
)

// A receipt is a certified node's signed statement "I accepted this event
// fresh, at this time by my clock". A node refuses an event whose commit
// window (plus the skew allowance) has closed by its own clock, unless the
// event comes with a receipt from a certified node dated inside the window
// around the event's issue time: an event committed during a partition, or
// while this node was down, still arrives, and one backdated by its signer
// after the fact does not, since no honest node received it in time.
//
// Receipts travel beside their event, not inside it: the event's bytes,
// ledger key and hash link are unchanged. A node stores at most
// MaxReceiptsPerEvent with each event (its own first) and serves them with
// it in anti-entropy pulls.

// ReceiptPrefix separates receipt signatures from every other signature a
// node key makes (node records, snapshots).
const ReceiptPrefix = "deck-ledger-receipt-v1:"

// receiptsVersion is the first byte of an encoded receipt list.
const receiptsVersion = 1

// ErrReceipt is wrapped by every receipt decode and check error.
var ErrReceipt = errors.New("chainfold: bad receipt")

// Receipt attests that Node accepted the event Event fresh at ReceivedAtMs.
type Receipt struct {
	Event        [32]byte        // the event's ledger key (command.Event.LedgerKey)
	ReceivedAtMs int64           // the attester's clock when it accepted the event
	Node         identity.NodeID // the attester; derives from Key
	Key          ed25519.PublicKey
	// Cert is the attester's certificate (identity.Certificate bytes), so
	// a node that never met the attester can check it; empty when the
	// attester has none and a ledger admission stands in (AttesterCheck
	// decides).
	Cert []byte
	Sig  []byte // by Key over ReceiptPrefix || the fields above
}

// receiptFixedBytes is a receipt without its certificate: event, time,
// node, key, cert length, signature.
const receiptFixedBytes = 32 + 8 + 8 + ed25519.PublicKeySize + 2 + ed25519.SignatureSize

// MaxReceiptsBytes bounds an encoded receipt list (version, count, receipts
// with the largest certificates); chain.MaxAttachmentBytes must hold it.
const MaxReceiptsBytes = 2 + MaxReceiptsPerEvent*(receiptFixedBytes+identity.MaxCertificateSize)

// ReceivedAt is the receipt's time.
func (r *Receipt) ReceivedAt() time.Time { return time.UnixMilli(r.ReceivedAtMs).UTC() }

func (r *Receipt) appendSigned(w *codec.Writer) {
	w.Raw(r.Event[:])
	w.U64(uint64(r.ReceivedAtMs))
	w.U64(uint64(r.Node))
	w.Raw(r.Key)
	w.Bytes(codec.PrefixU16, identity.MaxCertificateSize, "certificate", r.Cert)
}

func (r *Receipt) signedBytes() ([]byte, error) {
	if len(r.Key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: key of %d bytes", ErrReceipt, len(r.Key))
	}
	w := codec.NewWriter(make([]byte, 0, len(ReceiptPrefix)+receiptFixedBytes+len(r.Cert)), ErrReceipt)
	w.Raw([]byte(ReceiptPrefix))
	r.appendSigned(&w)
	return w.B, w.Err()
}

// SignReceipt is key's receipt for the event with ledger key event, received
// at at, carrying cert.
func SignReceipt(key *identity.Key, cert []byte, event [32]byte, at time.Time) (Receipt, error) {
	r := Receipt{Event: event, ReceivedAtMs: at.UnixMilli(), Node: key.ID, Key: key.Public, Cert: cert}
	msg, err := r.signedBytes()
	if err != nil {
		return Receipt{}, err
	}
	r.Sig = key.Sign(msg)
	return r, nil
}

// VerifySignature checks the receipt is for event, its node id derives from
// its key and its signature is that key's. Whether the key belongs to a
// certified member is AttesterCheck's question.
func (r *Receipt) VerifySignature(event [32]byte) error {
	if r.Event != event {
		return fmt.Errorf("%w: for another event", ErrReceipt)
	}
	if len(r.Key) != ed25519.PublicKeySize || !r.Node.Valid() || identity.IDFromPublicKey(r.Key) != r.Node {
		return fmt.Errorf("%w: node %s does not derive from its key", ErrReceipt, r.Node)
	}
	msg, err := r.signedBytes()
	if err != nil {
		return err
	}
	if len(r.Sig) != ed25519.SignatureSize || !ed25519.Verify(r.Key, msg, r.Sig) {
		return fmt.Errorf("%w: signature by %s does not verify", ErrReceipt, r.Node)
	}
	return nil
}

// AppendReceipts encodes a receipt list: version(1) n(1), then per receipt
// event(32) received_at_ms(8) node(8) key(32) cert_len(2) cert sig(64).
// More than MaxReceiptsPerEvent is an error.
func AppendReceipts(b []byte, rs []Receipt) ([]byte, error) {
	w := codec.NewWriter(b, ErrReceipt)
	if len(rs) > MaxReceiptsPerEvent {
		w.Failf(codec.ErrTooLarge, "%d receipts, at most %d", len(rs), MaxReceiptsPerEvent)
	}
	w.U8(receiptsVersion)
	w.U8(uint8(len(rs)))
	for i := range rs {
		r := &rs[i]
		if len(r.Key) != ed25519.PublicKeySize || len(r.Sig) != ed25519.SignatureSize {
			w.Failf(codec.ErrMalformed, "receipt %d: key %d / signature %d bytes", i, len(r.Key), len(r.Sig))
		}
		r.appendSigned(&w)
		w.Raw(r.Sig)
	}
	return w.B, w.Err()
}

// DecodeReceipts parses a receipt list from untrusted bytes (a peer's
// pull, the local store). Empty input is no receipts. It checks form and
// bounds only; VerifySignature and AttesterCheck decide what a receipt is
// worth.
func DecodeReceipts(b []byte) ([]Receipt, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if len(b) > MaxReceiptsBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrReceipt, len(b), MaxReceiptsBytes)
	}
	r := codec.NewReader(b, ErrReceipt)
	if v := r.U8(); r.Err() == nil && v != receiptsVersion {
		r.Failf(codec.ErrMalformed, "version %d, want %d", v, receiptsVersion)
	}
	n := int(r.U8())
	if r.Err() == nil && n > MaxReceiptsPerEvent {
		r.Failf(codec.ErrTooLarge, "%d receipts, at most %d", n, MaxReceiptsPerEvent)
	}
	if r.Err() == nil && n*receiptFixedBytes > r.Len() {
		r.Failf(codec.ErrTruncated, "%d receipts cannot fit in %d bytes", n, r.Len())
	}
	if r.Err() != nil {
		return nil, r.Err()
	}
	out := make([]Receipt, 0, n)
	for i := 0; i < n && r.Err() == nil; i++ {
		var rc Receipt
		copy(rc.Event[:], r.Take(32))
		rc.ReceivedAtMs = int64(r.U64())
		rc.Node = identity.NodeID(r.U64())
		rc.Key = ed25519.PublicKey(append([]byte(nil), r.Take(ed25519.PublicKeySize)...))
		if cert := r.Bytes(codec.PrefixU16, identity.MaxCertificateSize, "certificate"); len(cert) > 0 {
			rc.Cert = append([]byte(nil), cert...)
		}
		rc.Sig = append([]byte(nil), r.Take(ed25519.SignatureSize)...)
		if r.Err() == nil && (rc.ReceivedAtMs < 0 || rc.ReceivedAtMs > maxIssuedAtMs) {
			r.Failf(codec.ErrMalformed, "receipt %d: time %d ms out of range", i, rc.ReceivedAtMs)
		}
		out = append(out, rc)
	}
	if err := r.Finish(); err != nil {
		return nil, err
	}
	return out, nil
}
