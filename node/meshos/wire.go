package meshos

import (
	"errors"
	"fmt"
	"math"

	"github.com/deck-mesh/deck/node/codec"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Messages on messaging.ChanMigration: daemon migration and chain replication.
// Layout: version byte, kind byte, then the kind's fields. Strings carry a
// u16 length, byte slices a u32 length, both bounded before allocating.
// Decoders reject unknown kinds, oversize fields and trailing bytes.

const wireVersion = 1

// msgKind is a message type.
type msgKind uint8

const (
	msgMigOffer      msgKind = iota + 1 // source → target: daemon info + snapshot state (Transfer)
	msgMigReplay                        // source → target: final state after the source stopped (Replay)
	msgMigCutover                       // source → target: start it (Cutover)
	msgMigAbort                         // source → target: roll back
	msgMigAck                           // target → source: phase done (or failed)
	msgChainAppend                      // member host → leader: a member's checkpoint
	msgChainSyncReq                     // follower → leader: entries after Seq
	msgChainSyncResp                    // leader → follower: entries (or a reset page)
	msgWarmReq                          // standby host → leader: the active's checkpoint if newer than Seq
	msgWarmResp                         // leader → standby host: its seq, and the checkpoint if newer
	msgForkReq                          // fork host → parent chain holders: a parent member's state at the fork seq
	msgForkResp                         // holder → fork host: that state and the fork point's sentinel
	msgKindEnd
)

// ErrWire wraps every decoding failure.
var ErrWire = errors.New("meshos: bad message")

// ReasonBytesMax bounds the free-text reasons in aborts and acks.
const ReasonBytesMax = 256

// chainEntry is one replicated checkpoint.
type chainEntry struct {
	Seq    uint64
	Daemon string
	State  []byte
}

// message is the union of every kind's fields; which are used depends on
// Kind (see encode).
type message struct {
	Kind    msgKind
	Mig     string // migration id
	Daemon  string
	Group   string
	Index   uint32
	DKind   string
	Lineage snapshot.Lineage
	State   []byte
	Phase   snapshot.MigrationPhase
	OK      bool
	Reason  string
	Gen     uint64 // sender's snapshot generation (cutover fencing)
	Chain   string
	Term    uint64
	Seq     uint64
	Cursor  string // chain reset paging: last daemon id received
	Reset   bool   // chain sync reply: entries are checkpoints, not a log
	Done    bool   // chain reset: last page
	Entries []chainEntry
	// Sentinel is a fork point's digest (msgForkResp).
	Sentinel uint64
	// For is the parent member a msgForkResp answers for: Daemon is the
	// member whose state it carries, which differs when For had no
	// checkpoint at the fork point and a stand-in was picked.
	For string
}

// wbuf and rbuf fix this format's field shapes on the node's one codec:
// ids and reasons are u16-prefixed strings, state blobs u32-prefixed bytes.
// Bounds are checked by message.check on both sides.
type wbuf struct{ codec.Writer }

func (w *wbuf) u8(v uint8)     { w.U8(v) }
func (w *wbuf) u32(v uint32)   { w.U32(v) }
func (w *wbuf) u64(v uint64)   { w.U64(v) }
func (w *wbuf) bool(v bool)    { w.Bool(v) }
func (w *wbuf) str(s string)   { w.String(codec.PrefixU16, math.MaxUint16, "string", s) }
func (w *wbuf) bytes(p []byte) { w.Bytes(codec.PrefixU32, math.MaxUint32, "bytes", p) }

// encode serialises m. It refuses what a decoder would refuse, so a bug on
// the sender shows up as an error here, not as a silent drop on the peer.
func (m *message) encode() ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	w := &wbuf{codec.NewWriter(make([]byte, 0, 64+len(m.State)), ErrWire)}
	w.u8(wireVersion)
	w.u8(uint8(m.Kind))
	switch m.Kind {
	case msgMigOffer:
		w.str(m.Mig)
		w.str(m.Daemon)
		w.str(m.Group)
		w.u32(m.Index)
		w.str(m.DKind)
		w.u8(uint8(m.Lineage.Kind))
		w.bool(m.Lineage.Active)
		w.u64(m.Lineage.ForkAt)
		w.u64(m.Lineage.ForkSentinel)
		w.u64(m.Lineage.Synced)
		w.u64(m.Lineage.Term)
		w.bytes(m.State)
	case msgMigReplay:
		w.str(m.Mig)
		w.bytes(m.State)
	case msgMigCutover:
		w.str(m.Mig)
		w.u64(m.Gen)
	case msgMigAbort:
		w.str(m.Mig)
		w.str(m.Reason)
	case msgMigAck:
		w.str(m.Mig)
		w.u8(uint8(m.Phase))
		w.bool(m.OK)
		w.str(m.Reason)
		w.u64(m.Gen)
	case msgChainAppend:
		w.str(m.Chain)
		w.u64(m.Term)
		w.str(m.Daemon)
		w.bytes(m.State)
	case msgChainSyncReq:
		w.str(m.Chain)
		w.u64(m.Seq)
		w.str(m.Cursor)
	case msgWarmReq:
		w.str(m.Chain)
		w.str(m.Daemon)
		w.u64(m.Seq)
	case msgWarmResp:
		w.str(m.Chain)
		w.str(m.Daemon)
		w.u64(m.Seq)
		w.bytes(m.State)
	case msgForkReq:
		w.str(m.Chain)
		w.str(m.Daemon)
		w.u64(m.Seq)
	case msgForkResp:
		w.str(m.Chain)
		w.str(m.Daemon)
		w.u64(m.Seq)
		w.u64(m.Sentinel)
		w.bool(m.OK)
		w.str(m.For)
		w.bytes(m.State)
	case msgChainSyncResp:
		w.str(m.Chain)
		w.u64(m.Term)
		w.u64(m.Seq)
		w.bool(m.Reset)
		w.bool(m.Done)
		w.u32(uint32(len(m.Entries)))
		for _, e := range m.Entries {
			w.u64(e.Seq)
			w.str(e.Daemon)
			w.bytes(e.State)
		}
	}
	if err := w.Err(); err != nil {
		return nil, err
	}
	if len(w.B) > messaging.MaxMessageBytes {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", messaging.ErrTooLarge, len(w.B), messaging.MaxMessageBytes)
	}
	return w.B, nil
}

// check enforces the bounds both directions share.
func (m *message) check() error {
	if m.Kind == 0 || m.Kind >= msgKindEnd {
		return fmt.Errorf("%w: kind %d", ErrWire, m.Kind)
	}
	for _, s := range []string{m.Mig, m.Daemon, m.Group, m.DKind, m.Chain, m.Cursor, m.For} {
		if len(s) > IDBytesMax {
			return fmt.Errorf("%w: id of %d bytes exceeds %d", ErrWire, len(s), IDBytesMax)
		}
	}
	if len(m.Reason) > ReasonBytesMax {
		return fmt.Errorf("%w: reason of %d bytes exceeds %d", ErrWire, len(m.Reason), ReasonBytesMax)
	}
	if len(m.State) > DaemonStateBytesMax {
		return fmt.Errorf("%w: state of %d bytes exceeds %d", ErrWire, len(m.State), DaemonStateBytesMax)
	}
	if len(m.Entries) > ChainEntriesPerSyncMax {
		return fmt.Errorf("%w: %d entries exceeds %d", ErrWire, len(m.Entries), ChainEntriesPerSyncMax)
	}
	for _, e := range m.Entries {
		if len(e.Daemon) > IDBytesMax || len(e.State) > ChainEntryBytesMax {
			return fmt.Errorf("%w: chain entry out of bounds", ErrWire)
		}
	}
	if (m.Kind == msgChainAppend || m.Kind == msgWarmResp || m.Kind == msgForkResp) && len(m.State) > ChainEntryBytesMax {
		return fmt.Errorf("%w: checkpoint of %d bytes exceeds %d", ErrWire, len(m.State), ChainEntryBytesMax)
	}
	if m.Lineage.Kind > snapshot.GroupFork || m.Phase > snapshot.PhaseRolledBack {
		return fmt.Errorf("%w: enum out of range", ErrWire)
	}
	return nil
}

type rbuf struct{ codec.Reader }

func (r *rbuf) u8() uint8   { return r.U8() }
func (r *rbuf) u32() uint32 { return r.U32() }
func (r *rbuf) u64() uint64 { return r.U64() }
func (r *rbuf) bool() bool  { return r.Bool() }

func (r *rbuf) str(maxBytes int) string { return r.String(codec.PrefixU16, maxBytes, "string") }

// bytes copies: the result outlives the Messenger's buffer.
func (r *rbuf) bytes(maxBytes int) []byte {
	p := r.Bytes(codec.PrefixU32, maxBytes, "bytes")
	if p == nil {
		return nil
	}
	return append(make([]byte, 0, len(p)), p...)
}

// decodeMessage parses one message. The result owns its memory (the
// Messenger's buffer is only valid during the handler call).
func decodeMessage(b []byte) (*message, error) {
	if len(b) > messaging.MaxMessageBytes {
		return nil, fmt.Errorf("%w: %d bytes", ErrWire, len(b))
	}
	r := &rbuf{codec.NewReader(b, ErrWire)}
	if v := r.u8(); r.Err() == nil && v != wireVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrWire, v, wireVersion)
	}
	m := &message{Kind: msgKind(r.u8())}
	if r.Err() != nil {
		return nil, r.Err()
	}
	switch m.Kind {
	case msgMigOffer:
		m.Mig = r.str(IDBytesMax)
		m.Daemon = r.str(IDBytesMax)
		m.Group = r.str(IDBytesMax)
		m.Index = r.u32()
		m.DKind = r.str(IDBytesMax)
		m.Lineage.Kind = snapshot.GroupKind(r.u8())
		m.Lineage.Active = r.bool()
		m.Lineage.ForkAt = r.u64()
		m.Lineage.ForkSentinel = r.u64()
		m.Lineage.Synced = r.u64()
		m.Lineage.Term = r.u64()
		m.State = r.bytes(DaemonStateBytesMax)
		m.Lineage.Group = m.Group
		m.Lineage.Index = int(m.Index)
	case msgMigReplay:
		m.Mig = r.str(IDBytesMax)
		m.State = r.bytes(DaemonStateBytesMax)
	case msgMigCutover:
		m.Mig = r.str(IDBytesMax)
		m.Gen = r.u64()
	case msgMigAbort:
		m.Mig = r.str(IDBytesMax)
		m.Reason = r.str(ReasonBytesMax)
	case msgMigAck:
		m.Mig = r.str(IDBytesMax)
		m.Phase = snapshot.MigrationPhase(r.u8())
		m.OK = r.bool()
		m.Reason = r.str(ReasonBytesMax)
		m.Gen = r.u64()
	case msgChainAppend:
		m.Chain = r.str(IDBytesMax)
		m.Term = r.u64()
		m.Daemon = r.str(IDBytesMax)
		m.State = r.bytes(ChainEntryBytesMax)
	case msgChainSyncReq:
		m.Chain = r.str(IDBytesMax)
		m.Seq = r.u64()
		m.Cursor = r.str(IDBytesMax)
	case msgWarmReq:
		m.Chain = r.str(IDBytesMax)
		m.Daemon = r.str(IDBytesMax)
		m.Seq = r.u64()
	case msgWarmResp:
		m.Chain = r.str(IDBytesMax)
		m.Daemon = r.str(IDBytesMax)
		m.Seq = r.u64()
		m.State = r.bytes(ChainEntryBytesMax)
	case msgForkReq:
		m.Chain = r.str(IDBytesMax)
		m.Daemon = r.str(IDBytesMax)
		m.Seq = r.u64()
	case msgForkResp:
		m.Chain = r.str(IDBytesMax)
		m.Daemon = r.str(IDBytesMax)
		m.Seq = r.u64()
		m.Sentinel = r.u64()
		m.OK = r.bool()
		m.For = r.str(IDBytesMax)
		m.State = r.bytes(ChainEntryBytesMax)
	case msgChainSyncResp:
		m.Chain = r.str(IDBytesMax)
		m.Term = r.u64()
		m.Seq = r.u64()
		m.Reset = r.bool()
		m.Done = r.bool()
		n := r.u32()
		if r.Err() == nil && n > ChainEntriesPerSyncMax {
			return nil, fmt.Errorf("%w: %d chain entries exceeds %d", ErrWire, n, ChainEntriesPerSyncMax)
		}
		for i := uint32(0); i < n && r.Err() == nil; i++ {
			var e chainEntry
			e.Seq = r.u64()
			e.Daemon = r.str(IDBytesMax)
			e.State = r.bytes(ChainEntryBytesMax)
			m.Entries = append(m.Entries, e)
		}
	default:
		return nil, fmt.Errorf("%w: unknown kind %d", ErrWire, m.Kind)
	}
	if err := r.Finish(); err != nil {
		return nil, err
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}
