package chain

import (
	"encoding/binary"
	"fmt"

	"github.com/deck-mesh/deck/node/messaging"
)

// Anti-entropy messages on messaging.ChanLedger. Every message starts with
// type(1) req_id(8); the requester picks req_id and the answer echoes it.
//
//	DigestReq   from(8) to(8) shift(1)               "your buckets of width 1<<shift in [from,to)"
//	DigestResp  from(8) to(8) shift(1) n(2) n×(start(8) count(4) xor(32))
//	IDsReq      from(8) to(8) has_after(1) [after_issued(8) after_id(32)]
//	IDsResp     more(1) n(2) n×(issued(8) id(32))
//	PullReq     n(2) n×(issued(8) id(32))
//	PullResp    n(2) n×(len(4) event)
//	Hint        count(4) xor(32)                     "my ledger changed; here is its digest"
//	PullAttReq  n(2) n×(issued(8) id(32))            PullReq, answered with attachments
//	PullAttResp n(2) n×(len(4) event len(2) attachment)
//
// PullAttReq/Resp carry each event with what its holder stored beside it
// (the receipts that let a node accept an event after its commit window).
// They are new types rather than a change to PullReq/Resp, so those keep
// their encoding (the committed corpus) and are still answered.
type aeType byte

const (
	aeDigestReq aeType = iota + 1
	aeDigestResp
	aeIDsReq
	aeIDsResp
	aePullReq
	aePullResp
	aeHint
	aePullAttReq
	aePullAttResp
)

const (
	aeHeaderBytes   = 1 + 8
	aeBucketBytes   = 8 + 4 + 32
	aePositionBytes = 8 + 32
)

type aeMsg struct {
	Type     aeType
	ReqID    uint64
	From, To int64
	Shift    uint8
	Buckets  []BucketDigest
	After    *Position
	IDs      []Position
	More     bool
	Events   [][]byte
	// Attachments[i] goes with Events[i] (PullAttResp only).
	Attachments [][]byte
	Total       BucketDigest
}

func (m *aeMsg) encode() []byte {
	b := make([]byte, 0, 64)
	b = append(b, byte(m.Type))
	b = binary.BigEndian.AppendUint64(b, m.ReqID)
	switch m.Type {
	case aeDigestReq, aeDigestResp:
		b = binary.BigEndian.AppendUint64(b, uint64(m.From))
		b = binary.BigEndian.AppendUint64(b, uint64(m.To))
		b = append(b, m.Shift)
		if m.Type == aeDigestResp {
			b = binary.BigEndian.AppendUint16(b, uint16(len(m.Buckets)))
			for _, d := range m.Buckets {
				b = binary.BigEndian.AppendUint64(b, uint64(d.Start))
				b = binary.BigEndian.AppendUint32(b, d.Count)
				b = append(b, d.XOR[:]...)
			}
		}
	case aeIDsReq:
		b = binary.BigEndian.AppendUint64(b, uint64(m.From))
		b = binary.BigEndian.AppendUint64(b, uint64(m.To))
		if m.After == nil {
			b = append(b, 0)
		} else {
			b = append(b, 1)
			b = appendPosition(b, *m.After)
		}
	case aeIDsResp, aePullReq, aePullAttReq:
		if m.Type == aeIDsResp {
			b = append(b, boolByte(m.More))
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(m.IDs)))
		for _, p := range m.IDs {
			b = appendPosition(b, p)
		}
	case aePullResp, aePullAttResp:
		b = binary.BigEndian.AppendUint16(b, uint16(len(m.Events)))
		for i, e := range m.Events {
			b = binary.BigEndian.AppendUint32(b, uint32(len(e)))
			b = append(b, e...)
			if m.Type == aePullAttResp {
				var att []byte
				if i < len(m.Attachments) {
					att = m.Attachments[i]
				}
				b = binary.BigEndian.AppendUint16(b, uint16(len(att)))
				b = append(b, att...)
			}
		}
	case aeHint:
		b = binary.BigEndian.AppendUint32(b, m.Total.Count)
		b = append(b, m.Total.XOR[:]...)
	}
	return b
}

func appendPosition(b []byte, p Position) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(p.IssuedAtMs))
	return append(b, p.ID[:]...)
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

func (d *decoder) position() Position {
	p := Position{IssuedAtMs: d.i64(), ID: d.id32()}
	if d.Err() == nil && (p.IssuedAtMs < 0 || p.IssuedAtMs > MaxIssuedAtMs) {
		d.fail("issue time %d out of range", p.IssuedAtMs)
	}
	return p
}

// count reads a u16 element count, bounded by max and by the bytes left
// (each element at least minBytes), before anything is allocated.
func (d *decoder) count(max, minBytes int) int {
	n := int(d.u16())
	if d.Err() != nil {
		return 0
	}
	if n > max {
		d.fail("count %d exceeds %d", n, max)
		return 0
	}
	if n*minBytes > d.Len() {
		d.fail("count %d needs %d bytes, have %d", n, n*minBytes, d.Len())
		return 0
	}
	return n
}

func (d *decoder) rangeMs() (from, to int64) {
	from, to = d.i64(), d.i64()
	if d.Err() == nil && (from < 0 || to < from) {
		d.fail("bad range [%d,%d)", from, to)
	}
	return from, to
}

// decodeAE parses one anti-entropy message from a peer.
func decodeAE(b []byte) (*aeMsg, error) {
	if len(b) > messaging.MaxMessageBytes {
		return nil, fmt.Errorf("%w: ledger message of %d bytes", ErrCorrupt, len(b))
	}
	d := newDecoder(b)
	m := &aeMsg{Type: aeType(d.byte()), ReqID: d.u64()}
	switch m.Type {
	case aeDigestReq, aeDigestResp:
		m.From, m.To = d.rangeMs()
		m.Shift = d.byte()
		if d.Err() == nil && (m.Shift < DigestMinWidthShiftBits || m.Shift > DigestMaxWidthShiftBits) {
			d.fail("digest shift %d", m.Shift)
		}
		if m.Type == aeDigestResp {
			n := d.count(AEMaxBucketsPerMessage, aeBucketBytes)
			m.Buckets = make([]BucketDigest, n)
			for i := range m.Buckets {
				m.Buckets[i] = BucketDigest{Start: d.i64(), Count: d.u32(), XOR: d.id32()}
			}
		}
	case aeIDsReq:
		m.From, m.To = d.rangeMs()
		switch d.byte() {
		case 0:
		case 1:
			p := d.position()
			m.After = &p
		default:
			d.fail("bad has_after flag")
		}
	case aeIDsResp, aePullReq, aePullAttReq:
		if m.Type == aeIDsResp {
			switch d.byte() {
			case 0:
			case 1:
				m.More = true
			default:
				d.fail("bad more flag")
			}
		}
		max := AEMaxIDsPerMessage
		if m.Type != aeIDsResp {
			max = AEMaxPullEvents
		}
		n := d.count(max, aePositionBytes)
		m.IDs = make([]Position, n)
		for i := range m.IDs {
			m.IDs[i] = d.position()
		}
	case aePullResp, aePullAttResp:
		att := m.Type == aePullAttResp
		minBytes := 4
		if att {
			minBytes = 4 + 2
			m.Attachments = [][]byte{}
		}
		n := d.count(AEMaxPullEvents, minBytes)
		m.Events = make([][]byte, 0, n)
		for i := 0; i < n && d.Err() == nil; i++ {
			l := d.u32()
			if d.Err() == nil && (l == 0 || l > MaxEventBytes) {
				d.fail("event of %d bytes", l)
			}
			if d.need(int(l)) {
				m.Events = append(m.Events, d.Take(int(l)))
			}
			if !att {
				continue
			}
			a := d.u16()
			if d.Err() == nil && int(a) > MaxAttachmentBytes {
				d.fail("attachment of %d bytes", a)
			}
			if d.need(int(a)) {
				m.Attachments = append(m.Attachments, d.Take(int(a)))
			}
		}
	case aeHint:
		m.Total.Count = d.u32()
		m.Total.XOR = d.id32()
	default:
		if d.Err() == nil {
			d.fail("unknown ledger message type %d", m.Type)
		}
	}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("ledger message: %w", err)
	}
	return m, nil
}
