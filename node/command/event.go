package command

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/codec"
	"github.com/deck-mesh/deck/node/identity"
)

// Domain-separation prefixes. An operator key signs nothing else with these
// prefixes, so a signature made for one purpose never verifies for another.
const (
	AdminPrefix = api.AdminPayloadPrefix
	ICEPrefix   = api.ICEPayloadPrefix
)

// bodyVersion is the first byte of every canonical body.
const bodyVersion = 1

// maxIssuedAtMs (9999-12-31) keeps issued_at + any TTL far from overflow.
const maxIssuedAtMs = 253402300799999

// Nonce is 16 random bytes that make each proposal unique; a nonce commits
// once.
type Nonce [16]byte

func (n Nonce) String() string { return hex.EncodeToString(n[:]) }

// EventID is BLAKE2b-256 of an event's canonical body.
type EventID [32]byte

func (id EventID) String() string { return hex.EncodeToString(id[:]) }

// Short is the 12-hex-digit form for dense tables.
func (id EventID) Short() string { return hex.EncodeToString(id[:6]) }

// Compare orders ids bytewise.
func (id EventID) Compare(o EventID) int { return bytes.Compare(id[:], o[:]) }

// Body is what an event's signatures cover. Cluster binds it to one cluster
// (a payload signed for one cluster cannot be replayed on another that shares
// operators); Proposer is the operator who issued it and must be among the
// valid signers; BlastHash binds the event to the projection its signers
// were shown: HashBlastRadius for ICE, HashMoves (what moves) for admin and
// registry events (zero on those committed before they carried it).
type Body struct {
	Kind       Kind
	Cluster    string
	Action     api.Action
	Proposer   identity.NodeID
	Nonce      Nonce
	IssuedAtMs int64
	BlastHash  [32]byte
}

// IssuedAt is the body's issue time.
func (b *Body) IssuedAt() time.Time { return time.UnixMilli(b.IssuedAtMs).UTC() }

// Validate checks everything about the body that needs no state.
func (b *Body) Validate() error {
	want, ok := KindOf(b.Action.Verb)
	if !ok {
		return reject(ErrBadAction, "unknown verb %q", truncate(string(b.Action.Verb), MaxVerbBytes))
	}
	if b.Kind != want {
		return reject(ErrWrongKind, "%s event carries %s", b.Kind, b.Action.Verb)
	}
	if b.Cluster == "" {
		return reject(ErrMalformed, "empty cluster name")
	}
	if err := checkText("cluster", b.Cluster, MaxClusterNameBytes); err != nil {
		return err
	}
	if err := ValidateAction(&b.Action); err != nil {
		return err
	}
	if !b.Proposer.Valid() {
		return reject(ErrMalformed, "proposer id is zero")
	}
	if b.Nonce == (Nonce{}) {
		return reject(ErrMalformed, "zero nonce")
	}
	if b.IssuedAtMs <= 0 || b.IssuedAtMs > maxIssuedAtMs {
		return reject(ErrMalformed, "issued_at %d out of range", b.IssuedAtMs)
	}
	zero := b.BlastHash == [32]byte{}
	if b.Kind == KindICE && zero {
		return reject(ErrMalformed, "ICE event without a blast-radius hash")
	}
	// Admin and registry events carry the HashMoves of the projection their
	// signers confirmed; events committed before that carry zero, and stay
	// valid.
	return nil
}

// Marshal is the canonical encoding: fixed field order, fixed-width
// big-endian integers, length-prefixed strings, every field always present.
// It validates first, so only bodies that decode again are ever signed.
func (b *Body) Marshal() ([]byte, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	return b.appendTo(make([]byte, 0, b.size())), nil
}

func (b *Body) size() int {
	a := &b.Action
	n := 2 + 1 + len(b.Cluster) + 1 + len(a.Verb) + 8 + 8 + 1 + len(a.Daemon) + 1 + len(a.Chain) + 1
	for _, c := range a.Chains {
		n += 1 + len(c)
	}
	n += 8 + 1 + len(a.Migration) + 8 + 2 + len(a.Reason) + 8 + 1 + len(a.OperatorName) + 1 + len(a.OperatorKey)
	return n + 16 + 8 + 32
}

func (b *Body) appendTo(p []byte) []byte {
	p = append(p, bodyVersion, byte(b.Kind))
	p = appendStr8(p, b.Cluster)
	p = binary.BigEndian.AppendUint64(p, uint64(b.Proposer))
	p = appendAction(p, &b.Action)
	p = append(p, b.Nonce[:]...)
	p = binary.BigEndian.AppendUint64(p, uint64(b.IssuedAtMs))
	return append(p, b.BlastHash[:]...)
}

// appendAction is the canonical encoding of an action: every field, always,
// in a fixed order (it is shared by event bodies and blast-radius hashes).
func appendAction(p []byte, a *api.Action) []byte {
	p = appendStr8(p, string(a.Verb))
	p = binary.BigEndian.AppendUint64(p, uint64(a.Node))
	p = appendStr8(p, a.Daemon)
	p = appendStr8(p, a.Chain)
	p = append(p, byte(len(a.Chains)))
	for _, c := range a.Chains {
		p = appendStr8(p, c)
	}
	p = binary.BigEndian.AppendUint64(p, uint64(a.Peer))
	p = appendStr8(p, a.Migration)
	p = binary.BigEndian.AppendUint64(p, uint64(a.Duration/time.Millisecond))
	p = binary.BigEndian.AppendUint16(p, uint16(len(a.Reason)))
	p = append(p, a.Reason...)
	p = binary.BigEndian.AppendUint64(p, uint64(a.OperatorID))
	p = appendStr8(p, a.OperatorName)
	p = append(p, byte(len(a.OperatorKey)))
	return append(p, a.OperatorKey...)
}

func appendStr8(p []byte, s string) []byte {
	p = append(p, byte(len(s)))
	return append(p, s...)
}

// SigningPayload is the exact bytes operators sign for b: the kind's domain
// prefix followed by the canonical body.
func (b *Body) SigningPayload() ([]byte, error) {
	raw, err := b.Marshal()
	if err != nil {
		return nil, err
	}
	return signingPayload(b.Kind, raw), nil
}

func signingPayload(k Kind, raw []byte) []byte {
	prefix := AdminPrefix
	if k == KindICE {
		prefix = ICEPrefix
	}
	p := make([]byte, 0, len(prefix)+len(raw))
	p = append(p, prefix...)
	return append(p, raw...)
}

// reader is this format's field shapes on the node's one codec: strings
// carry a u8 length (a u16 for the reason); errors wrap ErrMalformed with
// the byte offset.
type reader struct{ codec.Reader }

func newReader(p []byte) *reader { return &reader{codec.NewReader(p, ErrMalformed)} }

func (r *reader) fail(format string, args ...any) { r.Failf(codec.ErrMalformed, format, args...) }
func (r *reader) take(n int) []byte               { return r.Take(n) }
func (r *reader) u8() uint8                       { return r.U8() }
func (r *reader) u16() uint16                     { return r.U16() }
func (r *reader) u64() uint64                     { return r.U64() }

// str takes an n-byte string, refusing one over max before reading it.
func (r *reader) str(n, max int, what string) string {
	if n > max {
		r.Failf(codec.ErrTooLarge, "%s is %d bytes, at most %d", what, n, max)
		return ""
	}
	return string(r.Take(n))
}

func (r *reader) str8(max int, what string) string { return r.String(codec.PrefixU8, max, what) }

// decodeBody reads one canonical body from r (trailing data is the caller's
// business: an event has signatures after it).
func decodeBody(r *reader) Body {
	var b Body
	if v := r.u8(); r.Err() == nil && v != bodyVersion {
		r.fail("body version %d, want %d", v, bodyVersion)
	}
	b.Kind = Kind(r.u8())
	b.Cluster = r.str8(MaxClusterNameBytes, "cluster")
	b.Proposer = identity.NodeID(r.u64())
	a := &b.Action
	a.Verb = api.Verb(r.str8(MaxVerbBytes, "verb"))
	a.Node = identity.NodeID(r.u64())
	a.Daemon = r.str8(MaxNameBytes, "daemon")
	a.Chain = r.str8(MaxNameBytes, "chain")
	if n := int(r.u8()); n > 0 {
		if n > MaxChainsPerEvent {
			r.fail("%d chains, at most %d", n, MaxChainsPerEvent)
		} else {
			a.Chains = make([]string, 0, n)
			for i := 0; i < n && r.Err() == nil; i++ {
				a.Chains = append(a.Chains, r.str8(MaxNameBytes, "chain"))
			}
		}
	}
	a.Peer = identity.NodeID(r.u64())
	a.Migration = r.str8(MaxNameBytes, "migration")
	ms := r.u64()
	if ms > uint64(max(MaxDrainDeadline, MaxFreezeTTL)/time.Millisecond) {
		r.fail("duration %d ms out of range", ms)
	} else {
		a.Duration = time.Duration(ms) * time.Millisecond
	}
	a.Reason = r.str(int(r.u16()), MaxReasonBytes, "reason")
	a.OperatorID = identity.NodeID(r.u64())
	a.OperatorName = r.str8(MaxNameBytes, "operator name")
	if n := int(r.u8()); n > 0 {
		if n > 64 {
			r.fail("operator key is %d bytes", n)
		} else {
			a.OperatorKey = append([]byte(nil), r.take(n)...)
		}
	}
	copy(b.Nonce[:], r.take(len(b.Nonce)))
	b.IssuedAtMs = int64(r.u64())
	copy(b.BlastHash[:], r.take(len(b.BlastHash)))
	return b
}

// DecodeBody decodes exactly one canonical body (no trailing bytes) and
// validates it.
func DecodeBody(p []byte) (Body, error) {
	if len(p) > MaxEventBytes {
		return Body{}, reject(ErrMalformed, "body is %d bytes, at most %d", len(p), MaxEventBytes)
	}
	r := newReader(p)
	b := decodeBody(r)
	if r.Err() != nil {
		return Body{}, r.Err()
	}
	if err := r.Finish(); err != nil {
		return Body{}, err
	}
	if err := b.Validate(); err != nil {
		return Body{}, err
	}
	return b, nil
}

// DecodeSigningPayload parses a signing payload (the co-signing file): the
// domain prefix must match the body's kind exactly.
func DecodeSigningPayload(p []byte) (Body, error) {
	if len(p) > MaxSignaturePayloadBytes {
		return Body{}, reject(ErrMalformed, "payload is %d bytes, at most %d", len(p), MaxSignaturePayloadBytes)
	}
	var raw []byte
	var kindOK func(Kind) bool
	switch {
	case bytes.HasPrefix(p, []byte(ICEPrefix)):
		raw, kindOK = p[len(ICEPrefix):], func(k Kind) bool { return k == KindICE }
	case bytes.HasPrefix(p, []byte(AdminPrefix)):
		raw, kindOK = p[len(AdminPrefix):], func(k Kind) bool { return k != KindICE }
	default:
		return Body{}, ErrWrongPrefix
	}
	b, err := DecodeBody(raw)
	if err != nil {
		return Body{}, err
	}
	if !kindOK(b.Kind) {
		return Body{}, reject(ErrWrongPrefix, "%s body under the wrong prefix", b.Kind)
	}
	return b, nil
}

// Event is a body with its operators' signatures. It is immutable: fields
// are reached through accessors that copy, so a cached id can never go stale.
type Event struct {
	body Body
	raw  []byte // canonical body
	id   EventID
	sigs []api.Signature // sorted by (operator, sig), exact duplicates removed
}

// NewEvent validates b and seals it with sigs (at least one). Signatures
// are put in canonical order and exact duplicates dropped; different
// signatures claiming one operator are kept (at most one can verify, and the
// fold counts an operator once).
func NewEvent(b Body, sigs []api.Signature) (*Event, error) {
	b.Action = cloneAction(b.Action)
	raw, err := b.Marshal()
	if err != nil {
		return nil, err
	}
	s, err := canonicalSigs(sigs)
	if err != nil {
		return nil, err
	}
	return &Event{body: b, raw: raw, id: blake2b.Sum256(raw), sigs: s}, nil
}

func canonicalSigs(in []api.Signature) ([]api.Signature, error) {
	if len(in) == 0 {
		return nil, reject(ErrMalformed, "no signatures")
	}
	if len(in) > MaxEventSignatures {
		return nil, reject(ErrMalformed, "%d signatures, at most %d", len(in), MaxEventSignatures)
	}
	out := make([]api.Signature, 0, len(in))
	for _, s := range in {
		if !s.Operator.Valid() {
			return nil, reject(ErrMalformed, "signature by operator 0")
		}
		if len(s.Sig) != 64 {
			return nil, reject(ErrMalformed, "signature is %d bytes, want 64", len(s.Sig))
		}
		out = append(out, api.Signature{Operator: s.Operator, Sig: append([]byte(nil), s.Sig...)})
	}
	slices.SortFunc(out, compareSig)
	return slices.CompactFunc(out, func(a, b api.Signature) bool { return compareSig(a, b) == 0 }), nil
}

func compareSig(a, b api.Signature) int {
	if c := cmp.Compare(a.Operator, b.Operator); c != 0 {
		return c
	}
	return bytes.Compare(a.Sig, b.Sig)
}

// Body returns a deep copy of the signed body.
func (e *Event) Body() Body {
	b := e.body
	b.Action = cloneAction(b.Action)
	return b
}

func (e *Event) Kind() Kind                { return e.body.Kind }
func (e *Event) Cluster() string           { return e.body.Cluster }
func (e *Event) Action() api.Action        { return cloneAction(e.body.Action) }
func (e *Event) Verb() api.Verb            { return e.body.Action.Verb }
func (e *Event) Proposer() identity.NodeID { return e.body.Proposer }
func (e *Event) Nonce() Nonce              { return e.body.Nonce }
func (e *Event) IssuedAtMs() int64         { return e.body.IssuedAtMs }
func (e *Event) IssuedAt() time.Time       { return e.body.IssuedAt() }
func (e *Event) BlastHash() [32]byte       { return e.body.BlastHash }
func (e *Event) ID() EventID               { return e.id }

// CanonicalBody returns a copy of the canonical body bytes.
func (e *Event) CanonicalBody() []byte { return append([]byte(nil), e.raw...) }

// SigningPayload is what each signature covers.
func (e *Event) SigningPayload() []byte { return signingPayload(e.body.Kind, e.raw) }

// Signatures returns a copy of the signatures in canonical order.
func (e *Event) Signatures() []api.Signature {
	out := make([]api.Signature, len(e.sigs))
	for i, s := range e.sigs {
		out[i] = api.Signature{Operator: s.Operator, Sig: append([]byte(nil), s.Sig...)}
	}
	return out
}

// LedgerKey is BLAKE2b-256 of the whole encoded event, signatures included:
// the key a grow-only ledger should store it under. Keyed by the body id
// alone, two copies of one body with different signature sets (a weak copy
// raced in by a misbehaving node, say) would collide and each node would keep
// whichever arrived first, so nodes could disagree forever on whether the
// event met its threshold. Keyed by LedgerKey, every node ends up holding
// both copies; the fold accepts the first that verifies (in (issued_at, key)
// order) and rejects the other as a replayed nonce, the same on every node.
func (e *Event) LedgerKey() [32]byte { return blake2b.Sum256(e.Marshal()) }

// Less is the ledger's application order: (issued_at, id).
func Less(a, b *Event) bool { return Compare(a, b) < 0 }

// Compare orders events by (issued_at, id).
func Compare(a, b *Event) int {
	if a.body.IssuedAtMs != b.body.IssuedAtMs {
		if a.body.IssuedAtMs < b.body.IssuedAtMs {
			return -1
		}
		return 1
	}
	return a.id.Compare(b.id)
}

// Marshal encodes the event: the canonical body, a signature count, then
// (operator id, 64-byte signature) pairs in canonical order.
func (e *Event) Marshal() []byte {
	p := make([]byte, 0, len(e.raw)+1+len(e.sigs)*72)
	p = append(p, e.raw...)
	p = append(p, byte(len(e.sigs)))
	for _, s := range e.sigs {
		p = binary.BigEndian.AppendUint64(p, uint64(s.Operator))
		p = append(p, s.Sig...)
	}
	return p
}

// DecodeEvent decodes one event from untrusted bytes. It rejects trailing
// bytes, over-long fields, a body that does not validate and signatures that
// are not in canonical order, so every event has exactly one encoding.
func DecodeEvent(p []byte) (*Event, error) {
	if len(p) > MaxEventBytes {
		return nil, reject(ErrMalformed, "event is %d bytes, at most %d", len(p), MaxEventBytes)
	}
	r := newReader(p)
	b := decodeBody(r)
	if r.Err() != nil {
		return nil, r.Err()
	}
	raw := p[:r.Off()]
	n := int(r.u8())
	if r.Err() == nil && (n == 0 || n > MaxEventSignatures) {
		r.fail("%d signatures, want 1..%d", n, MaxEventSignatures)
	}
	if r.Err() == nil && n*72 > r.Len() {
		r.fail("%d signatures need %d bytes, %d left", n, n*72, r.Len())
	}
	var sigs []api.Signature
	if r.Err() == nil {
		sigs = make([]api.Signature, 0, n)
	}
	for i := 0; i < n && r.Err() == nil; i++ {
		op := identity.NodeID(r.u64())
		sig := append([]byte(nil), r.take(64)...)
		sigs = append(sigs, api.Signature{Operator: op, Sig: sig})
	}
	if r.Err() != nil {
		return nil, r.Err()
	}
	if err := r.Finish(); err != nil {
		return nil, err
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	for i, s := range sigs {
		if !s.Operator.Valid() {
			return nil, reject(ErrMalformed, "signature by operator 0")
		}
		if i > 0 && compareSig(sigs[i-1], s) >= 0 {
			return nil, reject(ErrMalformed, "signatures not in canonical order")
		}
	}
	raw = append([]byte(nil), raw...)
	return &Event{body: b, raw: raw, id: blake2b.Sum256(raw), sigs: sigs}, nil
}

// WithSignatures returns the same body sealed with sigs instead.
func (e *Event) WithSignatures(sigs []api.Signature) (*Event, error) {
	s, err := canonicalSigs(sigs)
	if err != nil {
		return nil, err
	}
	return &Event{body: e.body, raw: e.raw, id: e.id, sigs: s}, nil
}

// Merge combines two copies of one event (same id) that carry different
// signature sets, for a ledger keyed by (issued_at, id): the union, in
// canonical order, capped at MaxEventSignatures. The union is commutative,
// so nodes that saw the copies in different orders hold the same event. On
// overflow the canonical-order prefix is kept, the same on every node.
func Merge(a, b *Event) (*Event, error) {
	if a.id != b.id {
		return nil, reject(ErrMalformed, "merge of different events %s and %s", a.id.Short(), b.id.Short())
	}
	all := append(append(make([]api.Signature, 0, len(a.sigs)+len(b.sigs)), a.sigs...), b.sigs...)
	slices.SortFunc(all, compareSig)
	all = slices.CompactFunc(all, func(x, y api.Signature) bool { return compareSig(x, y) == 0 })
	if len(all) > MaxEventSignatures {
		all = all[:MaxEventSignatures]
	}
	return a.WithSignatures(all)
}
