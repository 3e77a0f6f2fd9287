package chain

import (
	"encoding/binary"
	"fmt"
)

// Key layout. One byte of namespace first, so each kind of record is one
// contiguous key range and iterators never cross into another's.
//
//	0x00 name                         meta (schema version, ledger head)
//	0x01 log(1) seq(8)                log entry: at_unix_nano(8) || payload
//	0x02 issued_at_ms(8) id(32)       admin event, raw bytes (ordered for the fold)
//	0x03 id(32)                       admin event id index: issued_at_ms(8)
//	0x04 node(8) at_unix_nano(8) seq(8) snapshot history index (empty value)
//	0x05 id(32)                       admin event attachment (receipts), opaque
//	0x06 …                            the blob store's keyspace (BlobSpace; node/blob lays it out)
const (
	nsMeta       byte = 0x00
	nsLog        byte = 0x01
	nsEvent      byte = 0x02
	nsEventID    byte = 0x03
	nsSnapshot   byte = 0x04
	nsAttachment byte = 0x05
	nsBlob       byte = 0x06
)

// Log ids inside nsLog. Never renumber: they are on disk.
const (
	logIDAdmin     byte = 1
	logIDLogs      byte = 2
	logIDFailures  byte = 3
	logIDSnapshots byte = 4
)

// Named logs.
const (
	LogAdmin     = "admin"
	LogLogs      = "logs"
	LogFailures  = "failures"
	LogSnapshots = "snapshots"
)

const (
	logKeyBytes      = 1 + 1 + 8
	eventKeyBytes    = 1 + 8 + 32
	eventIDKeyBytes  = 1 + 32
	snapIdxKeyBytes  = 1 + 8 + 8 + 8
	entryHeaderBytes = 8
)

var (
	metaSchemaKey     = []byte{nsMeta, 's', 'c', 'h', 'e', 'm', 'a'}
	metaLedgerHeadKey = []byte{nsMeta, 'l', 'e', 'd', 'g', 'e', 'r'}
	schemaVersion     = []byte{1}
)

func logKey(id byte, seq uint64) []byte {
	k := make([]byte, logKeyBytes)
	k[0], k[1] = nsLog, id
	binary.BigEndian.PutUint64(k[2:], seq)
	return k
}

func logPrefix(id byte) []byte { return []byte{nsLog, id} }

// parseLogKey returns the seq of a log key of log id.
func parseLogKey(id byte, k []byte) (uint64, bool) {
	if len(k) != logKeyBytes || k[0] != nsLog || k[1] != id {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[2:]), true
}

func eventKey(issuedAtMs int64, id [32]byte) []byte {
	k := make([]byte, eventKeyBytes)
	k[0] = nsEvent
	binary.BigEndian.PutUint64(k[1:9], uint64(issuedAtMs))
	copy(k[9:], id[:])
	return k
}

func parseEventKey(k []byte) (Position, bool) {
	if len(k) != eventKeyBytes || k[0] != nsEvent {
		return Position{}, false
	}
	var p Position
	p.IssuedAtMs = int64(binary.BigEndian.Uint64(k[1:9]))
	copy(p.ID[:], k[9:])
	return p, p.IssuedAtMs >= 0
}

func eventIDKey(id [32]byte) []byte {
	k := make([]byte, eventIDKeyBytes)
	k[0] = nsEventID
	copy(k[1:], id[:])
	return k
}

// attachmentKey is where an event's attachment is stored: beside its id
// index, outside the event and order records, so the ledger's existing keys
// and records are unchanged.
func attachmentKey(id [32]byte) []byte {
	k := make([]byte, eventIDKeyBytes)
	k[0] = nsAttachment
	copy(k[1:], id[:])
	return k
}

func snapIdxKey(node uint64, atNano int64, seq uint64) []byte {
	k := make([]byte, snapIdxKeyBytes)
	k[0] = nsSnapshot
	binary.BigEndian.PutUint64(k[1:9], node)
	binary.BigEndian.PutUint64(k[9:17], uint64(atNano))
	binary.BigEndian.PutUint64(k[17:25], seq)
	return k
}

func parseSnapIdxKey(k []byte) (node uint64, atNano int64, seq uint64, ok bool) {
	if len(k) != snapIdxKeyBytes || k[0] != nsSnapshot {
		return 0, 0, 0, false
	}
	return binary.BigEndian.Uint64(k[1:9]), int64(binary.BigEndian.Uint64(k[9:17])), binary.BigEndian.Uint64(k[17:25]), true
}

// keyString prints a key for error messages.
func keyString(k []byte) string { return fmt.Sprintf("%x", k) }

// encodeEntry prepends the append time to a payload.
func encodeEntry(atNano int64, payload []byte) []byte {
	v := make([]byte, entryHeaderBytes+len(payload))
	binary.BigEndian.PutUint64(v, uint64(atNano))
	copy(v[entryHeaderBytes:], payload)
	return v
}

// decodeEntryHeader splits a stored entry value. The bytes come from disk,
// which may be damaged: a short value is an error, not a panic.
func decodeEntryHeader(v []byte) (atNano int64, payload []byte, err error) {
	if len(v) < entryHeaderBytes {
		return 0, nil, fmt.Errorf("%w: entry of %d bytes is shorter than its header", ErrCorrupt, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), v[entryHeaderBytes:], nil
}
