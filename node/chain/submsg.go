package chain

import (
	"encoding/binary"
	"fmt"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
)

// Subscription messages on messaging.ChanSubscribe. One handler per node serves
// both roles, told apart by the first byte:
//
//	client → server
//	  LeaseLogs      sub(8) resume(8) flags(1) min_level(1) node(8) daemon(str) match(str)
//	  LeaseFailures  sub(8) resume(8) flags(1)
//	  Cancel         sub(8)
//	server → client
//	  PushLogs       sub(8) start(8) from(8) to(8) dropped(8) lagged(8) n(2) n×record(str)
//	  PushFailures   sub(8) start(8) from(8) to(8) dropped(8) lagged(8) n(2) n×record(str)
//
// resume is the next seq the client wants (0: the server picks); flag
// bit 0 asks the server to rewind to it (the client saw a gap). A push
// covers the server's scan of [from, to); records inside it are those that
// matched. start is where the lease began, so a client that lost the very
// first push still sees the gap. dropped and lagged are the lease's running
// totals. str is a
// uvarint length and bytes; records use the record codecs.
type subType byte

const (
	subLeaseLogs subType = iota + 1
	subLeaseFailures
	subCancel
	subPushLogs
	subPushFailures
)

const subFlagRewind = 1

// maxStoredRecordBytes bounds one encoded record inside a push.
const maxStoredRecordBytes = 1 + 10 + 10 + 8 + 1 + 2 + MaxDaemonNameBytes + 2 + max(MaxLogTextBytes, MaxFailureReasonBytes) + MaxFailureSourceBytes

type subMsg struct {
	Type    subType
	Sub     uint64
	Resume  uint64
	Flags   byte
	Filter  api.LogFilter
	Start   uint64
	From    uint64
	To      uint64
	Dropped uint64
	Lagged  uint64
	Records [][]byte // encoded records (push)
}

func (m *subMsg) encode() []byte {
	n := 64
	for _, r := range m.Records {
		n += len(r) + 3
	}
	b := make([]byte, 0, n)
	b = append(b, byte(m.Type))
	b = binary.BigEndian.AppendUint64(b, m.Sub)
	switch m.Type {
	case subLeaseLogs, subLeaseFailures:
		b = binary.BigEndian.AppendUint64(b, m.Resume)
		b = append(b, m.Flags)
		if m.Type == subLeaseLogs {
			b = append(b, byte(m.Filter.MinLevel))
			b = binary.BigEndian.AppendUint64(b, uint64(m.Filter.Node))
			b = appendString(b, m.Filter.Daemon)
			b = appendString(b, m.Filter.Match)
		}
	case subPushLogs, subPushFailures:
		b = binary.BigEndian.AppendUint64(b, m.Start)
		b = binary.BigEndian.AppendUint64(b, m.From)
		b = binary.BigEndian.AppendUint64(b, m.To)
		b = binary.BigEndian.AppendUint64(b, m.Dropped)
		b = binary.BigEndian.AppendUint64(b, m.Lagged)
		b = binary.BigEndian.AppendUint16(b, uint16(len(m.Records)))
		for _, r := range m.Records {
			b = binary.AppendUvarint(b, uint64(len(r)))
			b = append(b, r...)
		}
	}
	return b
}

// decodeSub parses one subscription message. Records in a push are left
// encoded (and alias b); the receiver decodes each with the record codecs.
func decodeSub(b []byte) (*subMsg, error) {
	if len(b) > messaging.MaxMessageBytes {
		return nil, fmt.Errorf("%w: subscription message of %d bytes", ErrCorrupt, len(b))
	}
	d := newDecoder(b)
	m := &subMsg{Type: subType(d.byte()), Sub: d.u64()}
	switch m.Type {
	case subLeaseLogs, subLeaseFailures:
		m.Resume = d.u64()
		m.Flags = d.byte()
		if d.Err() == nil && m.Flags&^subFlagRewind != 0 {
			d.fail("unknown lease flags %#x", m.Flags)
		}
		if m.Type == subLeaseLogs {
			m.Filter.MinLevel = api.LogLevel(d.byte())
			if d.Err() == nil && m.Filter.MinLevel > api.LevelError {
				d.fail("log level %d", m.Filter.MinLevel)
			}
			m.Filter.Node = identity.NodeID(d.u64())
			m.Filter.Daemon = d.str(MaxDaemonNameBytes)
			m.Filter.Match = d.str(MaxFilterMatchBytes)
		}
	case subCancel:
	case subPushLogs, subPushFailures:
		m.Start, m.From, m.To = d.u64(), d.u64(), d.u64()
		if d.Err() == nil && (m.To < m.From || m.From < m.Start) {
			d.fail("push range [%d,%d) from start %d", m.From, m.To, m.Start)
		}
		m.Dropped, m.Lagged = d.u64(), d.u64()
		n := d.count(PushMaxRecords, 2)
		m.Records = make([][]byte, 0, n)
		for i := 0; i < n && d.Err() == nil; i++ {
			if r := d.bytesN(maxStoredRecordBytes); d.Err() == nil {
				m.Records = append(m.Records, r)
			}
		}
	default:
		if d.Err() == nil {
			d.fail("unknown subscription message type %d", m.Type)
		}
	}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("subscription message: %w", err)
	}
	return m, nil
}
