package chain

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/codec"
	"github.com/deck-mesh/deck/node/identity"
)

// Record codecs. Log lines and failures are stored on disk and pushed over
// the mesh in the same compact form:
//
//	log:     ver(1)=1 seq(uvarint) at_unix_nano(varint, 0 = zero time) node(8)
//	         level(1) daemon_len(uvarint) daemon text_len(uvarint) text
//	failure: ver(1)=1 seq(uvarint) at_unix_nano(varint) node(8)
//	         source_len(uvarint) source reason_len(uvarint) reason
//
// On disk the seq is 0 (the entry key carries it). Decoders bound every
// length before slicing and reject trailing bytes.
const recordVersion = 1

// AppendLogRecord appends rec's encoding to b.
func AppendLogRecord(b []byte, rec api.LogRecord) []byte {
	b = append(b, recordVersion)
	b = binary.AppendUvarint(b, rec.Seq)
	b = binary.AppendVarint(b, timeToNano(rec.At))
	b = binary.BigEndian.AppendUint64(b, uint64(rec.Node))
	b = append(b, byte(rec.Level))
	b = appendString(b, rec.Daemon)
	return appendString(b, rec.Text)
}

// DecodeLogRecord decodes exactly one log record.
func DecodeLogRecord(b []byte) (api.LogRecord, error) {
	var rec api.LogRecord
	d := newDecoder(b)
	if v := d.byte(); v != recordVersion && d.Err() == nil {
		return rec, fmt.Errorf("%w: log record version %d", ErrCorrupt, v)
	}
	rec.Seq = d.uvarint()
	rec.At = nanoToTime(d.varint())
	rec.Node = identity.NodeID(d.u64())
	rec.Level = api.LogLevel(d.byte())
	rec.Daemon = d.str(MaxDaemonNameBytes)
	rec.Text = d.str(MaxLogTextBytes)
	if err := d.finish(); err != nil {
		return api.LogRecord{}, fmt.Errorf("log record: %w", err)
	}
	if rec.Level > api.LevelError {
		return api.LogRecord{}, fmt.Errorf("%w: log level %d", ErrCorrupt, rec.Level)
	}
	return rec, nil
}

// AppendFailureRecord appends rec's encoding to b.
func AppendFailureRecord(b []byte, rec api.FailureRecord) []byte {
	b = append(b, recordVersion)
	b = binary.AppendUvarint(b, rec.Seq)
	b = binary.AppendVarint(b, timeToNano(rec.At))
	b = binary.BigEndian.AppendUint64(b, uint64(rec.Node))
	b = appendString(b, rec.Source)
	return appendString(b, rec.Reason)
}

// DecodeFailureRecord decodes exactly one failure record.
func DecodeFailureRecord(b []byte) (api.FailureRecord, error) {
	var rec api.FailureRecord
	d := newDecoder(b)
	if v := d.byte(); v != recordVersion && d.Err() == nil {
		return rec, fmt.Errorf("%w: failure record version %d", ErrCorrupt, v)
	}
	rec.Seq = d.uvarint()
	rec.At = nanoToTime(d.varint())
	rec.Node = identity.NodeID(d.u64())
	rec.Source = d.str(MaxFailureSourceBytes)
	rec.Reason = d.str(MaxFailureReasonBytes)
	if err := d.finish(); err != nil {
		return api.FailureRecord{}, fmt.Errorf("failure record: %w", err)
	}
	return rec, nil
}

func timeToNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func nanoToTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder is this package's field shapes on the node's one codec: strings
// and byte strings are uvarint-prefixed, ids 32 bytes; errors wrap
// ErrCorrupt.
type decoder struct{ codec.Reader }

func newDecoder(b []byte) decoder { return decoder{codec.NewReader(b, ErrCorrupt)} }

func (d *decoder) fail(f string, a ...any) { d.Failf(codec.ErrMalformed, f, a...) }

// need reports whether n more bytes are there (failing if not).
func (d *decoder) need(n int) bool {
	if d.Err() != nil {
		return false
	}
	if n < 0 || d.Len() < n {
		d.Failf(codec.ErrTruncated, "need %d bytes, have %d", n, d.Len())
		return false
	}
	return true
}

func (d *decoder) byte() byte         { return d.U8() }
func (d *decoder) u16() uint16        { return d.U16() }
func (d *decoder) u32() uint32        { return d.U32() }
func (d *decoder) u64() uint64        { return d.U64() }
func (d *decoder) i64() int64         { return int64(d.U64()) }
func (d *decoder) uvarint() uint64    { return d.Uvarint() }
func (d *decoder) varint() int64      { return d.Varint() }
func (d *decoder) finish() error      { return d.Finish() }
func (d *decoder) str(max int) string { return d.String(codec.PrefixUvarint, max, "string") }

func (d *decoder) id32() (id [32]byte) {
	copy(id[:], d.Take(32))
	return id
}

// bytesN reads a uvarint length (at most max) and that many bytes, without
// copying.
func (d *decoder) bytesN(max int) []byte { return d.Bytes(codec.PrefixUvarint, max, "bytes") }

// truncateText shortens s to at most max bytes on a rune boundary and says
// so in the text: a line is never cut silently.
func truncateText(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	marker := fmt.Sprintf(" …[truncated %d bytes]", len(s))
	cut := max(limit-len(marker), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + marker
}

func prepareLog(rec api.LogRecord) ([]byte, error) {
	if len(rec.Daemon) > MaxDaemonNameBytes {
		return nil, fmt.Errorf("%w: daemon name of %d bytes (max %d)", ErrInvalid, len(rec.Daemon), MaxDaemonNameBytes)
	}
	if rec.Level > api.LevelError {
		return nil, fmt.Errorf("%w: log level %d", ErrInvalid, rec.Level)
	}
	rec.Seq = 0
	rec.Text = truncateText(rec.Text, MaxLogTextBytes)
	return AppendLogRecord(make([]byte, 0, 24+len(rec.Daemon)+len(rec.Text)), rec), nil
}

func prepareFailure(rec api.FailureRecord) ([]byte, error) {
	if len(rec.Source) > MaxFailureSourceBytes {
		return nil, fmt.Errorf("%w: failure source of %d bytes (max %d)", ErrInvalid, len(rec.Source), MaxFailureSourceBytes)
	}
	rec.Seq = 0
	rec.Reason = truncateText(rec.Reason, MaxFailureReasonBytes)
	return AppendFailureRecord(make([]byte, 0, 24+len(rec.Source)+len(rec.Reason)), rec), nil
}

// AppendLog queues one log line for the next group commit and returns at
// once: a daemon logging at a high rate never waits for an fsync. When the
// queue is full the line is refused with ErrQueueFull and counted in
// Stats.LogsDropped. Flush waits for queued lines to be durable.
func (db *DB) AppendLog(rec api.LogRecord) error {
	p, err := prepareLog(rec)
	if err != nil {
		return err
	}
	err = db.trySubmit(&writeReq{kind: reqAppend, log: db.logs[logIDLogs], payloads: [][]byte{p}})
	if errors.Is(err, ErrQueueFull) {
		db.stats.logsDropped.Add(1)
	}
	return err
}

// AppendFailure is AppendLog for the failures log (Stats.FailuresDropped).
func (db *DB) AppendFailure(rec api.FailureRecord) error {
	p, err := prepareFailure(rec)
	if err != nil {
		return err
	}
	err = db.trySubmit(&writeReq{kind: reqAppend, log: db.logs[logIDFailures], payloads: [][]byte{p}})
	if errors.Is(err, ErrQueueFull) {
		db.stats.failuresDropped.Add(1)
	}
	return err
}

// AppendLogs durably appends log lines and returns the first seq.
func (db *DB) AppendLogs(ctx context.Context, recs ...api.LogRecord) (uint64, error) {
	ps := make([][]byte, len(recs))
	for i, r := range recs {
		p, err := prepareLog(r)
		if err != nil {
			return 0, fmt.Errorf("record %d: %w", i, err)
		}
		ps[i] = p
	}
	return db.Logs().Append(ctx, ps...)
}

// AppendFailures durably appends failures and returns the first seq.
func (db *DB) AppendFailures(ctx context.Context, recs ...api.FailureRecord) (uint64, error) {
	ps := make([][]byte, len(recs))
	for i, r := range recs {
		p, err := prepareFailure(r)
		if err != nil {
			return 0, fmt.Errorf("record %d: %w", i, err)
		}
		ps[i] = p
	}
	return db.Failures().Append(ctx, ps...)
}

// LogRecordOf decodes a "logs" entry, taking its seq from the entry.
func LogRecordOf(e Entry) (api.LogRecord, error) {
	rec, err := DecodeLogRecord(e.Value)
	if err != nil {
		return rec, fmt.Errorf("logs seq %d: %w", e.Seq, err)
	}
	rec.Seq = e.Seq
	return rec, nil
}

// FailureRecordOf decodes a "failures" entry, taking its seq from the entry.
func FailureRecordOf(e Entry) (api.FailureRecord, error) {
	rec, err := DecodeFailureRecord(e.Value)
	if err != nil {
		return rec, fmt.Errorf("failures seq %d: %w", e.Seq, err)
	}
	rec.Seq = e.Seq
	return rec, nil
}
