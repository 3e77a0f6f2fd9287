// Package subnet holds what crosses a subnet boundary about a subnet: the
// signed summary its aggregator group folds from its members' snapshots,
// with the group that signed it, and the store that decides which
// summaries a node believes (Store.Accept). The node wires it (node/
// aggregator.go): who aggregates, how summaries spread, queries.
//
// A summary on the wire is a Signed: the summary (snapshot.SubnetSummary,
// its Signature aside), the aggregator group of its subnet as the signer
// placed it, the signer's ed25519 key and certificate. The signature is
// ed25519 by the summary's Aggregator over SignaturePrefix || the body, so
// the group rides under the same signature as the figures.
package subnet

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/deck-mesh/deck/node/codec"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

// SignaturePrefix separates summary signatures from every other signature
// a node key makes.
const SignaturePrefix = "deck-subnet-summary-v1:"

// Bounds of a signed summary: everything a receiver allocates for one.
const (
	// MaxChildren bounds SubnetSummary.Children.
	MaxChildren = 64
	// MaxGateways bounds SubnetSummary.Gateways.
	MaxGateways = 16
	// MaxGroup bounds the aggregator group carried.
	MaxGroup = 8
	// MaxRoster bounds the member roster carried (gossip's MaxNodes).
	MaxRoster = 1024
	// MaxCount bounds each count (nodes, daemons, chains, blobs) a summary
	// states: more than any subnet's members can report.
	MaxCount = 1 << 24
	// MaxSignedBytes bounds one encoded Signed.
	MaxSignedBytes = 1 + 1 + identity.MaxSubnetBytes + 10 + 8 + 8 + 6*4 + 8 + 8 + 3*4 + 10 +
		1 + MaxChildren*(1+identity.MaxSubnetBytes) + 1 + MaxGateways*8 +
		1 + 1 + MaxGroup*8 + 3 + MaxRoster*8 + ed25519.PublicKeySize + 2 + identity.MaxCertificateSize + ed25519.SignatureSize
)

const signedVersion = 1

// Errors. Every rejection by Decode or Store.Accept wraps one.
var (
	ErrMalformed = errors.New("subnet: malformed summary")
	// ErrSignature: the signature does not verify under the carried key,
	// or the key is not the Aggregator's.
	ErrSignature = errors.New("subnet: summary signature does not verify")
	// ErrNotMember: the signer is not a certified member of the subnet the
	// summary is for (its certificate carries another subnet, or none).
	ErrNotMember = errors.New("subnet: signer is not a certified member of the subnet")
	// ErrNotAggregator: the signer is not in the subnet's aggregator group.
	ErrNotAggregator = errors.New("subnet: signer is not in the subnet's aggregator group")
	// ErrReplay: a generation not newer than the one held.
	ErrReplay = errors.New("subnet: summary generation is not newer than the one held")
	// ErrTime: built too far in the future, or too long ago to matter.
	ErrTime = errors.New("subnet: summary built outside the accepted time window")
	// ErrFull: a new subnet while MaxSubnets are held.
	ErrFull = errors.New("subnet: summary table full")
)

// Signed is one summary as it travels.
type Signed struct {
	Summary snapshot.SubnetSummary
	// Group is the subnet's aggregator group as the signer placed it
	// (sorted, Summary.Aggregator among them) and Desired its size.
	Group   []identity.NodeID
	Desired int
	// Members is the subnet's roster as the signer's view holds it (nodes
	// and consoles, sorted): the nodes outside the subnet believe routes
	// to, and place in it when they judge a boundary crossing. Empty: the
	// roster did not change (a subnet is never empty); the store keeps the
	// last one.
	Members []identity.NodeID
	// Key is the signer's ed25519 key (Summary.Aggregator derives from it)
	// and Cert its encoded certificate (nil: none; a ledger admission
	// makes a member of the root only).
	Key  ed25519.PublicKey
	Cert []byte
}

// body encodes everything the signature covers.
func (s *Signed) body(w *codec.Writer) {
	m := &s.Summary
	w.U8(signedVersion)
	w.String(codec.PrefixU8, identity.MaxSubnetBytes, "path", m.Path)
	w.Uvarint(m.Generation)
	w.U64(uint64(m.Aggregator))
	w.U64(uint64(m.BuiltAt.UnixMilli()))
	for _, v := range m.Nodes {
		w.Uvarint(uint64(v))
	}
	for _, v := range m.Daemons {
		w.Uvarint(uint64(v))
	}
	w.F64("capacity", m.Capacity)
	w.F64("saturation", m.Saturation)
	w.Uvarint(uint64(m.ChainsHeld))
	w.Uvarint(uint64(m.ChainsDesired))
	w.Uvarint(uint64(m.Blobs))
	w.Uvarint(m.BlobBytes)
	w.Count("children", len(m.Children), MaxChildren)
	for _, c := range m.Children {
		w.String(codec.PrefixU8, identity.MaxSubnetBytes, "child", c)
	}
	w.Count("gateways", len(m.Gateways), MaxGateways)
	for _, g := range m.Gateways {
		w.U64(uint64(g))
	}
	w.Uvarint(uint64(s.Desired))
	w.Count("group", len(s.Group), MaxGroup)
	for _, g := range s.Group {
		w.U64(uint64(g))
	}
	w.Count("members", len(s.Members), MaxRoster)
	for _, id := range s.Members {
		w.U64(uint64(id))
	}
}

func (s *Signed) signedBytes() ([]byte, error) {
	w := codec.NewWriter(append(make([]byte, 0, 512), SignaturePrefix...), ErrMalformed)
	s.body(&w)
	if err := w.Err(); err != nil {
		return nil, err
	}
	return w.B, nil
}

// Sign sets the summary's Aggregator, Key and Signature with the signer's
// key (cert is its encoded certificate, carried along).
func Sign(k *identity.Key, cert []byte, s *Signed) error {
	s.Summary.Aggregator, s.Key, s.Cert = k.ID, k.Public, cert
	s.Summary.Signature = nil
	if err := s.check(); err != nil {
		return err
	}
	msg, err := s.signedBytes()
	if err != nil {
		return err
	}
	s.Summary.Signature = ed25519.Sign(k.Private, msg)
	return nil
}

// Verify checks the signature and that the key is the Aggregator's. It
// says nothing about whether the signer may speak for the subnet: see
// Store.Accept.
func (s *Signed) Verify() error {
	if len(s.Key) != ed25519.PublicKeySize || identity.IDFromPublicKey(s.Key) != s.Summary.Aggregator {
		return fmt.Errorf("%w: key is not the aggregator %s's", ErrSignature, s.Summary.Aggregator)
	}
	msg, err := s.signedBytes()
	if err != nil {
		return err
	}
	if len(s.Summary.Signature) != ed25519.SignatureSize || !ed25519.Verify(s.Key, msg, s.Summary.Signature) {
		return ErrSignature
	}
	return nil
}

// check is what both sides require of the fields: bounds, sorted lists,
// the signer among its group.
func (s *Signed) check() error {
	m := &s.Summary
	counts := append(append([]int{}, m.Nodes[:]...), m.Daemons[:]...)
	counts = append(counts, m.ChainsHeld, m.ChainsDesired, m.Blobs, s.Desired)
	for _, c := range counts {
		if c < 0 || c > MaxCount {
			return fmt.Errorf("%w: count %d outside [0,%d]", ErrMalformed, c, MaxCount)
		}
	}
	switch {
	case identity.ValidateSubnet(m.Path) != nil:
		return fmt.Errorf("%w: path %q", ErrMalformed, m.Path)
	case math.IsNaN(m.Capacity) || m.Capacity < 0 || m.Capacity > MaxCount:
		return fmt.Errorf("%w: capacity %v", ErrMalformed, m.Capacity)
	case math.IsNaN(m.Saturation) || m.Saturation < 0 || m.Saturation > 1:
		return fmt.Errorf("%w: saturation %v", ErrMalformed, m.Saturation)
	case len(m.Children) > MaxChildren || len(m.Gateways) > MaxGateways || len(s.Group) > MaxGroup || s.Desired > MaxGroup ||
		len(s.Members) > MaxRoster:
		return fmt.Errorf("%w: lists over their bounds", ErrMalformed)
	case !slices.IsSorted(m.Children) || !slices.IsSorted(m.Gateways) || !slices.IsSorted(s.Group) || !slices.IsSorted(s.Members):
		return fmt.Errorf("%w: lists must be sorted", ErrMalformed)
	case !slices.Contains(s.Group, m.Aggregator):
		return fmt.Errorf("%w: %s signs for a group without it", ErrNotAggregator, m.Aggregator)
	}
	for _, c := range m.Children {
		if identity.ValidateSubnet(c) != nil || snapshot.Parent(c) != m.Path || c == "" {
			return fmt.Errorf("%w: child %q of %q", ErrMalformed, c, m.Path)
		}
	}
	return nil
}

// Encode is the wire form: body, key, certificate, signature.
func (s *Signed) Encode() ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	w := codec.NewWriter(make([]byte, 0, 512), ErrMalformed)
	s.body(&w)
	w.Raw(s.Key)
	w.Bytes(codec.PrefixU16, identity.MaxCertificateSize, "certificate", s.Cert)
	if len(s.Summary.Signature) != ed25519.SignatureSize || len(s.Key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: unsigned", ErrMalformed)
	}
	w.Raw(s.Summary.Signature)
	return w.B, w.Err()
}

// Decode parses a Signed, bounding every length before it allocates. It
// does not verify: Store.Accept does, in order.
func Decode(b []byte) (*Signed, error) {
	if len(b) > MaxSignedBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(b), MaxSignedBytes)
	}
	r := codec.NewReader(b, ErrMalformed)
	if v := r.U8(); r.Err() == nil && v != signedVersion {
		r.Failf(codec.ErrMalformed, "version %d", v)
	}
	s := &Signed{}
	m := &s.Summary
	m.Path = r.String(codec.PrefixU8, identity.MaxSubnetBytes, "path")
	m.Generation = r.Uvarint()
	m.Aggregator = identity.NodeID(r.U64())
	m.BuiltAt = time.UnixMilli(int64(r.U64())).UTC()
	count := func() int {
		v := r.Uvarint()
		if v > MaxCount {
			r.Failf(codec.ErrTooLarge, "count %d", v)
			return 0
		}
		return int(v)
	}
	for i := range m.Nodes {
		m.Nodes[i] = count()
	}
	for i := range m.Daemons {
		m.Daemons[i] = count()
	}
	m.Capacity = r.F64("capacity")
	m.Saturation = r.F64("saturation")
	m.ChainsHeld, m.ChainsDesired, m.Blobs = count(), count(), count()
	m.BlobBytes = r.Uvarint()
	if n := r.Count("children", MaxChildren, 1); n > 0 {
		m.Children = make([]string, n)
		for i := range m.Children {
			m.Children[i] = r.String(codec.PrefixU8, identity.MaxSubnetBytes, "child")
		}
	}
	if n := r.Count("gateways", MaxGateways, 8); n > 0 {
		m.Gateways = make([]identity.NodeID, n)
		for i := range m.Gateways {
			m.Gateways[i] = identity.NodeID(r.U64())
		}
	}
	s.Desired = count()
	if n := r.Count("group", MaxGroup, 8); n > 0 {
		s.Group = make([]identity.NodeID, n)
		for i := range s.Group {
			s.Group[i] = identity.NodeID(r.U64())
		}
	}
	if n := r.Count("members", MaxRoster, 8); n > 0 {
		s.Members = make([]identity.NodeID, n)
		for i := range s.Members {
			s.Members[i] = identity.NodeID(r.U64())
		}
	}
	s.Key = ed25519.PublicKey(slices.Clone(r.Take(ed25519.PublicKeySize)))
	if c := r.Bytes(codec.PrefixU16, identity.MaxCertificateSize, "certificate"); len(c) > 0 {
		s.Cert = slices.Clone(c)
	}
	m.Signature = slices.Clone(r.Take(ed25519.SignatureSize))
	if err := r.Finish(); err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	return s, nil
}
