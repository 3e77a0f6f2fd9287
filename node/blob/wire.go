package blob

import (
	"fmt"
	"time"

	"github.com/deck-mesh/deck/node/codec"
	"github.com/deck-mesh/deck/node/identity"
)

// Messages on messaging.ChanBlob. Every message starts with its type and a
// request id; a response carries its request's id and a status, and is
// believed only from the node the request went to. Layouts (after the
// type byte and the uvarint request id):
//
//	chunk req      hash(32) blob(32): the blob it is read for (its heat)
//	chunk resp     status(1) data(uvarint len ≤ ChunkBytes)
//	manifest req   blob(32)
//	manifest resp  status(1) manifest(uvarint len ≤ MaxManifestBytes) intent(uvarint len ≤ MaxIntentBytes)
//	have req       blob(32)
//	have resp      status(1) role(1) stored(uvarint) total(uvarint) heat(f64) intent(uvarint len)
//	replicate req  blob(32) role(1) intent(uvarint len) sources(count ≤ MaxSources, 8 bytes each)
//	replicate resp status(1) reason(text ≤ MaxReasonBytes)
//	intent req     intent(uvarint len)
//	intent resp    status(1) reason(text)
//	list req       after(32)
//	list resp      status(1) more(bool) entries(count ≤ MaxListEntries: blob(32) role(1) stored_at(varint ms) heat(f64) manifest size(uvarint) intent(uvarint len))
//	gc req         (nothing)
//	gc resp        status(1) kept collected bytes edges tombstones (uvarints)
type msgType uint8

const (
	msgChunkReq msgType = iota + 1
	msgChunkResp
	msgManifestReq
	msgManifestResp
	msgHaveReq
	msgHaveResp
	msgReplicateReq
	msgReplicateResp
	msgIntentReq
	msgIntentResp
	msgListReq
	msgListResp
	msgGCReq
	msgGCResp
	numMsgTypes
)

func (t msgType) response() bool { return t%2 == 0 }

// Status answers a request.
type Status uint8

const (
	StatusOK       Status = iota
	StatusNotFound        // not held here
	StatusBusy            // over this peer's budget or the node's capacity: ask again later or elsewhere
	StatusCorrupt         // held, but this node's copy failed its hash (it repairs it)
	StatusRefused         // not allowed: an unsigned or unknown operator's intent, a console
	StatusFull            // the disk budget has no room
	StatusRemoved         // an operator removed it (the intent says when)
	StatusFetching        // being fetched here now (have: progress in stored/total)
	StatusInvalid         // the request does not make sense (a manifest claiming too much)
	numStatuses
)

func (s Status) String() string {
	return [...]string{"ok", "not-found", "busy", "corrupt", "refused", "full", "removed", "fetching", "invalid", "unknown"}[min(s, numStatuses)]
}

// Wire bounds.
const (
	// MaxSources bounds the holders a replicate request names.
	MaxSources = 8
	// MaxListEntries bounds one list response (~25 KiB).
	MaxListEntries = 64
	// MaxReasonBytes bounds a refusal's reason.
	MaxReasonBytes = 128
	// maxMessageBytes: the largest message, a chunk response.
	maxMessageBytes = 1 + 10 + 1 + 3 + ChunkBytes
)

// message is every ChanBlob message; which fields a type uses is in the
// table above.
type message struct {
	from    identity.NodeID // the authenticated sender (not on the wire)
	Type    msgType
	ReqID   uint64
	Status  Status
	Hash    Hash
	Blob    Hash   // chunk req: the blob the chunk is read for
	Data    []byte // chunk bytes, or manifest bytes
	Intent  []byte
	Role    Role
	Stored  uint64
	Total   uint64
	Heat    float64
	Sources []identity.NodeID
	Reason  string
	More    bool
	Entries []listEntry
	GC      GCReport
}

type listEntry struct {
	Hash     Hash
	Role     Role
	StoredAt time.Time
	Heat     float64
	Size     uint64
	Intent   []byte
}

const minListEntryBytes = HashBytes + 1 + 1 + 8 + 1 + 1

func (m *message) encode() ([]byte, error) {
	w := codec.NewWriter(make([]byte, 0, 64+len(m.Data)+len(m.Intent)), ErrMalformed)
	w.Enum("message type", uint8(m.Type), uint8(numMsgTypes))
	w.Uvarint(m.ReqID)
	if m.Type.response() {
		w.Enum("status", uint8(m.Status), uint8(numStatuses))
	}
	switch m.Type {
	case msgManifestReq, msgHaveReq, msgListReq:
		w.Raw(m.Hash[:])
	case msgChunkReq:
		w.Raw(m.Hash[:])
		w.Raw(m.Blob[:])
	case msgChunkResp:
		w.Bytes(codec.PrefixUvarint, ChunkBytes, "chunk", m.Data)
	case msgManifestResp:
		w.Bytes(codec.PrefixUvarint, MaxManifestBytes, "manifest", m.Data)
		w.Bytes(codec.PrefixUvarint, MaxIntentBytes, "intent", m.Intent)
	case msgHaveResp:
		w.Enum("role", uint8(m.Role), uint8(numRoles))
		w.Uvarint(m.Stored)
		w.Uvarint(m.Total)
		w.F64("heat", m.Heat)
		w.Bytes(codec.PrefixUvarint, MaxIntentBytes, "intent", m.Intent)
	case msgReplicateReq:
		w.Raw(m.Hash[:])
		w.Enum("role", uint8(m.Role), uint8(numRoles))
		w.Bytes(codec.PrefixUvarint, MaxIntentBytes, "intent", m.Intent)
		w.Count("sources", len(m.Sources), MaxSources)
		for _, id := range m.Sources {
			w.U64(uint64(id))
		}
	case msgReplicateResp, msgIntentResp:
		w.Text(codec.PrefixUvarint, MaxReasonBytes, "reason", m.Reason)
	case msgIntentReq:
		w.Bytes(codec.PrefixUvarint, MaxIntentBytes, "intent", m.Intent)
	case msgListResp:
		w.Bool(m.More)
		w.Count("entries", len(m.Entries), MaxListEntries)
		for i := range m.Entries {
			e := &m.Entries[i]
			w.Raw(e.Hash[:])
			w.Enum("role", uint8(e.Role), uint8(numRoles))
			w.Varint(e.StoredAt.UnixMilli())
			w.F64("heat", e.Heat)
			w.Uvarint(e.Size)
			w.Bytes(codec.PrefixUvarint, MaxIntentBytes, "intent", e.Intent)
		}
	case msgGCReq:
	case msgGCResp:
		for _, v := range [...]uint64{m.GC.ChunksKept, m.GC.ChunksCollected, m.GC.BytesCollected, m.GC.EdgesRemoved, m.GC.TombstonesAged} {
			w.Uvarint(v)
		}
	}
	if w.Err() != nil {
		return nil, w.Err()
	}
	return w.B, nil
}

// decodeMessage parses one ChanBlob message from a peer: every length and
// count is bounded before it allocates, nothing trails, and the result
// shares no memory with b.
func decodeMessage(b []byte) (*message, error) {
	if len(b) > maxMessageBytes {
		return nil, fmt.Errorf("%w: message of %d bytes", ErrMalformed, len(b))
	}
	r := codec.NewReader(b, ErrMalformed)
	m := &message{Type: msgType(r.Enum("message type", uint8(numMsgTypes)))}
	if r.Err() == nil && m.Type == 0 {
		r.Failf(codec.ErrMalformed, "message type 0")
	}
	m.ReqID = r.Uvarint()
	if m.Type.response() {
		m.Status = Status(r.Enum("status", uint8(numStatuses)))
	}
	hash := func() (h Hash) {
		copy(h[:], r.Take(HashBytes))
		return h
	}
	bytesOf := func(limit int, what string) []byte {
		p := r.Bytes(codec.PrefixUvarint, limit, what)
		if len(p) == 0 {
			return nil
		}
		return append([]byte(nil), p...)
	}
	switch m.Type {
	case msgManifestReq, msgHaveReq, msgListReq:
		m.Hash = hash()
	case msgChunkReq:
		m.Hash = hash()
		m.Blob = hash()
	case msgChunkResp:
		m.Data = bytesOf(ChunkBytes, "chunk")
	case msgManifestResp:
		m.Data = bytesOf(MaxManifestBytes, "manifest")
		m.Intent = bytesOf(MaxIntentBytes, "intent")
	case msgHaveResp:
		m.Role = Role(r.Enum("role", uint8(numRoles)))
		m.Stored = r.Uvarint()
		m.Total = r.Uvarint()
		m.Heat = r.F64("heat")
		m.Intent = bytesOf(MaxIntentBytes, "intent")
	case msgReplicateReq:
		m.Hash = hash()
		m.Role = Role(r.Enum("role", uint8(numRoles)))
		m.Intent = bytesOf(MaxIntentBytes, "intent")
		if n := r.Count("sources", MaxSources, 8); n > 0 {
			m.Sources = make([]identity.NodeID, n)
			for i := range m.Sources {
				m.Sources[i] = identity.NodeID(r.U64())
			}
		}
	case msgReplicateResp, msgIntentResp:
		m.Reason = r.Text(codec.PrefixUvarint, MaxReasonBytes, "reason")
	case msgIntentReq:
		m.Intent = bytesOf(MaxIntentBytes, "intent")
	case msgListResp:
		m.More = r.Bool()
		if n := r.Count("entries", MaxListEntries, minListEntryBytes); n > 0 {
			m.Entries = make([]listEntry, n)
			for i := range m.Entries {
				e := &m.Entries[i]
				e.Hash = hash()
				e.Role = Role(r.Enum("role", uint8(numRoles)))
				e.StoredAt = time.UnixMilli(r.Varint()).UTC()
				e.Heat = r.F64("heat")
				e.Size = r.Uvarint()
				e.Intent = bytesOf(MaxIntentBytes, "intent")
			}
		}
	case msgGCReq:
	case msgGCResp:
		for _, p := range [...]*uint64{&m.GC.ChunksKept, &m.GC.ChunksCollected, &m.GC.BytesCollected, &m.GC.EdgesRemoved, &m.GC.TombstonesAged} {
			*p = r.Uvarint()
		}
	}
	if err := r.Finish(); err != nil {
		return nil, err
	}
	return m, nil
}
