package gossip

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

// SnapshotDomain separates snapshot signatures from every other signature a
// node key makes (node records, admin events): it is prepended to the signed
// bytes and never sent.
const SnapshotDomain = "deck-snapshot-v1:"

// Envelope errors, in the order Open checks them.
var (
	// ErrForgedSigner: the envelope's signer id is not derived from the
	// public key it carries.
	ErrForgedSigner = errors.New("gossip: signer id is not derived from the envelope's public key")
	ErrBadSignature = errors.New("gossip: bad snapshot signature")
	// ErrSnapshotIDMismatch: a valid signature over a snapshot that claims to
	// be another node's. The seed project accepted these; a node may only
	// speak for itself.
	ErrSnapshotIDMismatch = errors.New("gossip: snapshot node id is not the signer's")
	// ErrSnapshotClaimsOtherNode: a snapshot whose daemons or failures are
	// attributed to a node other than its own. A node describes itself
	// only; what it says runs or failed elsewhere is not its to say, and
	// the console and placement read those entries' node ids as given.
	ErrSnapshotClaimsOtherNode = errors.New("gossip: snapshot attributes an entry to another node")
)

// CheckSelfDescribed refuses (ErrSnapshotClaimsOtherNode) a snapshot any of
// whose daemons or failures names a node other than ns.ID. Entries that
// legitimately name other nodes (peers, avoid entries, migrations' far
// ends) describe this node's own view or actions and are not checked here;
// their readers attribute them to the snapshot's node.
func CheckSelfDescribed(ns *snapshot.NodeSnapshot) error {
	for i := range ns.Daemons {
		if d := &ns.Daemons[i]; d.Node != ns.ID {
			return fmt.Errorf("%w: node %s lists daemon %q on %s", ErrSnapshotClaimsOtherNode, ns.ID, d.ID, d.Node)
		}
	}
	for i := range ns.Failures {
		if f := &ns.Failures[i]; f.Node != ns.ID {
			return fmt.Errorf("%w: node %s lists failure %d of %s", ErrSnapshotClaimsOtherNode, ns.ID, f.Seq, f.Node)
		}
	}
	return nil
}

// Envelope is a verified, signed snapshot announcement.
//
// Wire layout (everything before the signature is signed, behind
// SnapshotDomain):
//
//	version u8 | signer u64 | public key [32] | epoch uvarint | seq uvarint |
//	generation uvarint | signed-at varint (UnixMilli) |
//	certificate length u16 | certificate | snapshot length uvarint |
//	snapshot | ed25519 signature [64]
//
// The certificate (identity.Certificate, empty when the signer has none) is
// how a node that never met the signer tells it is a member: gossip carries
// snapshots of nodes many hops away.
type Envelope struct {
	Signer    identity.NodeID
	PublicKey ed25519.PublicKey
	// Epoch identifies the signer's incarnation (its gossip start time in
	// UnixNano), so a restarted node whose generation went back to 0 still
	// orders after its previous life.
	Epoch uint64
	// Seq numbers the announcements within one epoch; re-announcing an
	// unchanged snapshot takes a new Seq so receivers see it is alive.
	Seq uint64
	// Generation repeats Snapshot.Generation in the clear.
	Generation uint64
	SignedAt   time.Time
	// Certificate is the signer's certificate as encoded (nil: none); the
	// receiver's Config.Members judges it.
	Certificate []byte
	Snapshot    *snapshot.NodeSnapshot
}

// header is an envelope parsed but not verified.
type header struct {
	signer     identity.NodeID
	pub        []byte
	epoch, seq uint64
	generation uint64
	signedAtMs int64
	cert       []byte
	snap       []byte
	body       []byte // the signed bytes (without the domain)
	sig        []byte
}

// Seal encodes ns and signs it with key, presenting no certificate. ns.ID
// must be key's id: Seal refuses to produce what every receiver would refuse.
func Seal(key *identity.Key, ns *snapshot.NodeSnapshot, epoch, seq uint64, signedAt time.Time) ([]byte, error) {
	return SealCertified(key, nil, ns, epoch, seq, signedAt)
}

// SealCertified is Seal presenting cert (the signer's encoded certificate,
// at most identity.MaxCertificateSize bytes).
func SealCertified(key *identity.Key, cert []byte, ns *snapshot.NodeSnapshot, epoch, seq uint64, signedAt time.Time) ([]byte, error) {
	if ns.ID != key.ID {
		return nil, fmt.Errorf("gossip: seal: %w (snapshot %s, key %s)", ErrSnapshotIDMismatch, ns.ID, key.ID)
	}
	if len(cert) > identity.MaxCertificateSize {
		return nil, fmt.Errorf("gossip: seal: %w: certificate of %d bytes", ErrTooLarge, len(cert))
	}
	if err := CheckSelfDescribed(ns); err != nil {
		return nil, fmt.Errorf("gossip: seal: %w", err)
	}
	snap, err := EncodeSnapshot(ns)
	if err != nil {
		return nil, fmt.Errorf("gossip: seal: %w", err)
	}
	return sealEncoded(key, cert, snap, ns.Generation, epoch, seq, signedAt), nil
}

// sealEncoded signs an already encoded (and therefore in-bounds) snapshot
// and certificate.
func sealEncoded(key *identity.Key, cert, snap []byte, generation, epoch, seq uint64, signedAt time.Time) []byte {
	b := make([]byte, 0, len(SnapshotDomain)+envelopeMaxHeaderBytes+len(cert)+len(snap)+envelopeSigBytes)
	b = append(b, SnapshotDomain...)
	b = append(b, envelopeVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(key.ID))
	b = append(b, key.Public...)
	b = binary.AppendUvarint(b, epoch)
	b = binary.AppendUvarint(b, seq)
	b = binary.AppendUvarint(b, generation)
	b = binary.AppendVarint(b, signedAt.UnixMilli())
	b = binary.BigEndian.AppendUint16(b, uint16(len(cert)))
	b = append(b, cert...)
	b = binary.AppendUvarint(b, uint64(len(snap)))
	b = append(b, snap...)
	b = append(b, key.Sign(b)...)
	// The domain is signed, never sent.
	return b[len(SnapshotDomain):]
}

// parseHeader splits an envelope without verifying it, so duplicates can be
// dropped before paying for a signature check.
func parseHeader(b []byte) (header, error) {
	var h header
	if len(b) > MaxEnvelopeBytes {
		return h, fmt.Errorf("gossip: envelope: %w: %d bytes, limit %d", ErrTooLarge, len(b), MaxEnvelopeBytes)
	}
	d := newDecoder(b)
	if v := d.u8(); d.Err() == nil && v != envelopeVersion {
		return h, fmt.Errorf("gossip: envelope: %w: version %d, want %d", ErrMalformed, v, envelopeVersion)
	}
	h.signer = d.id()
	h.pub = d.take(ed25519.PublicKeySize)
	h.epoch = d.uvarint()
	h.seq = d.uvarint()
	h.generation = d.uvarint()
	h.signedAtMs = d.varint()
	cn := int(d.U16())
	if d.Err() == nil && cn > identity.MaxCertificateSize {
		return h, fmt.Errorf("gossip: envelope: %w: certificate of %d bytes, limit %d", ErrTooLarge, cn, identity.MaxCertificateSize)
	}
	h.cert = d.take(cn)
	n := d.uvarint()
	if d.Err() == nil && n > MaxSnapshotBytes {
		return h, fmt.Errorf("gossip: envelope: %w: snapshot of %d bytes, limit %d", ErrTooLarge, n, MaxSnapshotBytes)
	}
	h.snap = d.take(int(n))
	h.body = b[:d.Off()]
	h.sig = d.take(envelopeSigBytes)
	if d.Err() != nil {
		return h, fmt.Errorf("gossip: envelope: %w", d.Err())
	}
	if d.Off() != len(b) {
		return h, fmt.Errorf("gossip: envelope: %w (%d of %d bytes used)", ErrTrailingBytes, d.Off(), len(b))
	}
	if !h.signer.Valid() {
		return h, fmt.Errorf("gossip: envelope: %w", identity.ErrZeroID)
	}
	return h, nil
}

// signBufs holds domain||body buffers for verification: ed25519 needs the
// message contiguous and the domain is not on the wire.
var signBufs = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

// verify checks, in this order, that the signer id is derived from the
// carried key (a forged id fails here, before any other work) and that the
// signature holds.
func (h *header) verify() error {
	if identity.IDFromPublicKey(h.pub) != h.signer {
		return fmt.Errorf("%w: claims %s", ErrForgedSigner, h.signer)
	}
	bp := signBufs.Get().(*[]byte)
	msg := append(append((*bp)[:0], SnapshotDomain...), h.body...)
	ok := ed25519.Verify(h.pub, msg, h.sig)
	if cap(msg) <= 2*MaxEnvelopeBytes {
		*bp = msg
		signBufs.Put(bp)
	}
	if !ok {
		return fmt.Errorf("%w from %s", ErrBadSignature, h.signer)
	}
	return nil
}

// Open parses and verifies an envelope: signer id derived from the carried
// key, signature, snapshot well formed, snapshot id equal to the signer,
// every daemon and failure attributed to the signer (CheckSelfDescribed)
// and generation equal to the header's. The result shares no memory with b.
func Open(b []byte) (*Envelope, error) {
	h, err := parseHeader(b)
	if err != nil {
		return nil, err
	}
	return h.open()
}

func (h *header) open() (*Envelope, error) {
	if err := h.verify(); err != nil {
		return nil, fmt.Errorf("gossip: envelope: %w", err)
	}
	ns, err := DecodeSnapshot(h.snap)
	if err != nil {
		return nil, fmt.Errorf("gossip: envelope from %s: %w", h.signer, err)
	}
	if ns.ID != h.signer {
		return nil, fmt.Errorf("gossip: envelope: %w (signed by %s, claims %s)", ErrSnapshotIDMismatch, h.signer, ns.ID)
	}
	if err := CheckSelfDescribed(ns); err != nil {
		return nil, fmt.Errorf("gossip: envelope: %w", err)
	}
	if ns.Generation != h.generation {
		return nil, fmt.Errorf("gossip: envelope from %s: %w: header generation %d, snapshot %d",
			h.signer, ErrMalformed, h.generation, ns.Generation)
	}
	return &Envelope{
		Signer:     h.signer,
		PublicKey:  ed25519.PublicKey(append([]byte(nil), h.pub...)),
		Epoch:      h.epoch,
		Seq:        h.seq,
		Generation: h.generation,
		SignedAt:   time.UnixMilli(h.signedAtMs).UTC(),
		Snapshot:   ns,
		Certificate: func() []byte {
			if len(h.cert) == 0 {
				return nil
			}
			return append([]byte(nil), h.cert...)
		}(),
	}, nil
}
