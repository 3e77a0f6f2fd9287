package chain

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/crypto/blake2b"

	"github.com/deck-mesh/deck/node/identity"
)

// EventMeta is what a Validator extracts from an event's bytes: its id and
// its issue time. The ledger orders events by (IssuedAt, ID).
type EventMeta struct {
	ID       [32]byte
	IssuedAt int64 // Unix milliseconds, 0 <= IssuedAt <= MaxIssuedAtMs
	// Decoded is the Validator's parsed form of the bytes, if it returns
	// one (node/command's *Event). The ledger never looks inside; it hands
	// the value on with the event (in Insert's result, OnInsert hooks and
	// the Fold's Apply), so an event is parsed once on ingest. It must be
	// a pure function of the bytes and immutable. Events read back from
	// disk carry none, and neither may a Fold's Apply when the fold lagged
	// more than MaxHandoffEvents: a Folder decodes the bytes then.
	Decoded any
	// Attachment is what an Admitter wants stored beside the event (the
	// receipts that let other nodes accept it after its commit window):
	// at most MaxAttachmentBytes, nil for none. It is written with the
	// event, never changed, and served with it in anti-entropy pulls; it is
	// not part of the event's bytes, id or hash link.
	Attachment []byte
}

// MaxIssuedAtMs is the latest issue time the ledger accepts (the year 9999),
// so every event falls in the digest's top bucket.
const MaxIssuedAtMs = 253402300799999

// Validator decodes and checks one raw event (its signatures, its
// operator…); an error rejects the event. It must be deterministic and safe
// for concurrent use. Event semantics belong to node/command. With an
// error, it may still return what it parsed, so a caller can name the event
// it refused (Insert passes it on).
type Validator func(raw []byte) (EventMeta, error)

// Incoming is one event offered to the ledger: its bytes, what travelled
// beside it (a peer's stored attachment) and who handed it over.
type Incoming struct {
	Raw        []byte
	Attachment []byte
	// From is the authenticated node that sent it (the pushing peer, the
	// anti-entropy peer), or 0 for this node's own commits.
	From identity.NodeID
}

// Admitter judges an event arriving at this node, where a Validator only
// parses one: it may read the local clock, the sender and the attachment,
// and returns the meta to store, EventMeta.Attachment included. Stored
// events are never judged again by it (Verify uses the Validator). It must
// be safe for concurrent use; like a Validator, with an error it may still
// return what it parsed.
type Admitter func(in Incoming) (EventMeta, error)

// Position is an event's place in the fold order.
type Position struct {
	IssuedAtMs int64
	ID         [32]byte
}

// Compare orders positions by issue time, then id.
func (p Position) Compare(q Position) int {
	if c := cmp.Compare(p.IssuedAtMs, q.IssuedAtMs); c != 0 {
		return c
	}
	return bytes.Compare(p.ID[:], q.ID[:])
}

// Pos is the event meta's position.
func (m EventMeta) Pos() Position { return Position{IssuedAtMs: m.IssuedAt, ID: m.ID} }

// Event is one admin event as stored locally.
type Event struct {
	Meta EventMeta
	Raw  []byte
	// Seq is the event's place in this node's local (hash-linked) order;
	// other nodes number it differently.
	Seq uint64
	// RecordedAtNano is when this node stored it.
	RecordedAtNano int64
}

// Head is the ledger's local head: how many events, the last local seq and
// the hash that links the whole local order.
type Head struct {
	Count   uint64
	LastSeq uint64
	Hash    [32]byte
}

type ledgerHead = Head

const headBytes = 8 + 8 + 32

func encodeHead(h Head) []byte {
	b := make([]byte, 0, headBytes)
	b = binary.BigEndian.AppendUint64(b, h.Count)
	b = binary.BigEndian.AppendUint64(b, h.LastSeq)
	return append(b, h.Hash[:]...)
}

func decodeHead(b []byte) (Head, error) {
	if len(b) != headBytes {
		return Head{}, fmt.Errorf("%w: ledger head is %d bytes, want %d", ErrCorrupt, len(b), headBytes)
	}
	var h Head
	h.Count = binary.BigEndian.Uint64(b)
	h.LastSeq = binary.BigEndian.Uint64(b[8:])
	copy(h.Hash[:], b[16:])
	return h, nil
}

// orderRecord is one link of the local order: which event sits at a seq,
// the hash of its bytes, and the running link hash.
type orderRecord struct {
	Pos     Position
	RawHash [32]byte
	Link    [32]byte
}

func (o orderRecord) encode() []byte {
	b := make([]byte, 0, ledgerOrderRecordBytes)
	b = binary.BigEndian.AppendUint64(b, uint64(o.Pos.IssuedAtMs))
	b = append(b, o.Pos.ID[:]...)
	b = append(b, o.RawHash[:]...)
	return append(b, o.Link[:]...)
}

// decodeOrderRecord parses a stored order record (untrusted: it is read
// from disk, which Verify assumes may be tampered with).
func decodeOrderRecord(b []byte) (orderRecord, error) {
	if len(b) != ledgerOrderRecordBytes {
		return orderRecord{}, fmt.Errorf("%w: order record is %d bytes, want %d", ErrCorrupt, len(b), ledgerOrderRecordBytes)
	}
	var o orderRecord
	o.Pos.IssuedAtMs = int64(binary.BigEndian.Uint64(b))
	copy(o.Pos.ID[:], b[8:40])
	copy(o.RawHash[:], b[40:72])
	copy(o.Link[:], b[72:104])
	if o.Pos.IssuedAtMs < 0 || o.Pos.IssuedAtMs > MaxIssuedAtMs {
		return orderRecord{}, fmt.Errorf("%w: order record issue time %d out of range", ErrCorrupt, o.Pos.IssuedAtMs)
	}
	return o, nil
}

const linkDomain = "deck-ledger-link-v1:"

// linkHash chains one record to the previous link: a modified, reordered or
// removed record changes every link after it.
func linkHash(prev [32]byte, seq uint64, pos Position, rawHash [32]byte) [32]byte {
	var buf [len(linkDomain) + 32 + 8 + 8 + 32 + 32]byte
	b := append(buf[:0], linkDomain...)
	b = append(b, prev[:]...)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.BigEndian.AppendUint64(b, uint64(pos.IssuedAtMs))
	b = append(b, pos.ID[:]...)
	b = append(b, rawHash[:]...)
	return blake2b.Sum256(b)
}

// ledgerState is the ledger's in-memory head, digest buckets and hooks.
type ledgerState struct {
	mu      sync.RWMutex
	head    Head
	buckets bucketIndex

	hookMu sync.Mutex
	hooks  map[int]func(Event)
	hookID int

	handoff decodedHandoff

	tent Head // committer-only
}

func newLedgerState() *ledgerState {
	return &ledgerState{hooks: map[int]func(Event){}, handoff: decodedHandoff{byID: map[[32]byte]handoffEntry{}}}
}

// decodedHandoff carries each newly stored event's EventMeta.Decoded from
// the insert to the Fold, which follows the ledger through its stored
// bytes: without it the fold would parse every event a second time. Only a
// ledger with a Fold keeps anything (enabled by NewFold), an entry is taken
// once, and the table is bounded by MaxHandoffEvents and MaxHandoffBytes,
// oldest dropped first (a fold that lags that far decodes the bytes).
type decodedHandoff struct {
	mu      sync.Mutex
	enabled bool
	byID    map[[32]byte]handoffEntry
	order   [][32]byte // insertion order; may still list ids already taken
	bytes   int
}

type handoffEntry struct {
	value any
	bytes int
}

func (h *decodedHandoff) enable() {
	h.mu.Lock()
	h.enabled = true
	h.mu.Unlock()
}

func (h *decodedHandoff) put(ev Event) {
	if ev.Meta.Decoded == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.enabled {
		return
	}
	if _, ok := h.byID[ev.Meta.ID]; ok {
		return
	}
	h.byID[ev.Meta.ID] = handoffEntry{value: ev.Meta.Decoded, bytes: len(ev.Raw)}
	h.order = append(h.order, ev.Meta.ID)
	h.bytes += len(ev.Raw)
	for len(h.byID) > MaxHandoffEvents || h.bytes > MaxHandoffBytes {
		id := h.order[0]
		h.order = h.order[1:]
		if e, ok := h.byID[id]; ok {
			delete(h.byID, id)
			h.bytes -= e.bytes
		}
	}
	// Taken ids linger in order until they reach the front; compact when
	// they outnumber the live ones, so order stays O(MaxHandoffEvents).
	if len(h.order) > 2*MaxHandoffEvents {
		live := make([][32]byte, 0, len(h.byID))
		for _, id := range h.order {
			if _, ok := h.byID[id]; ok {
				live = append(live, id)
			}
		}
		h.order = live
	}
}

// take returns and forgets the decoded value held for id, or nil.
func (h *decodedHandoff) take(id [32]byte) any {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.byID[id]
	if !ok {
		return nil
	}
	delete(h.byID, id)
	h.bytes -= e.bytes
	if len(h.byID) == 0 {
		h.order = h.order[:0]
	}
	return e.value
}

type pendingEvent struct {
	meta EventMeta
	raw  []byte
}

// sizeOf is the bytes the event and its attachment put in a write.
func (pe pendingEvent) sizeOf() int { return len(pe.raw) + len(pe.meta.Attachment) }

// InsertReport says what an Insert did with each event.
type InsertReport struct {
	Added      []Event
	Duplicates int
	Rejected   []Rejection
}

// Rejection is an event the Validator (or Admitter) refused.
type Rejection struct {
	Index int
	Err   error
	// Meta is what the Validator parsed before refusing, if anything.
	Meta EventMeta
	// From is the node that offered the event (Incoming.From).
	From identity.NodeID
}

// Ledger is the admin ledger: a grow-only set of opaque signed events,
// ordered for the fold by (issued_at, id), and kept locally in a hash-linked
// append order. It is stored in the database's "admin" log, which retention
// never touches.
type Ledger struct {
	db       *DB
	st       *ledgerState
	validate Validator
	admit    Admitter
}

// Ledger returns the database's ledger, validating events with v, both
// arriving ones and stored ones (Verify); nothing is stored beside them.
func (db *DB) Ledger(v Validator) *Ledger {
	return &Ledger{db: db, st: db.ledger, validate: v, admit: func(in Incoming) (EventMeta, error) {
		meta, err := v(in.Raw)
		meta.Attachment = nil
		return meta, err
	}}
}

// LedgerAdmitting returns the database's ledger judging arriving events
// with a (Insert, InsertMany, Admit, anti-entropy) and stored ones with v
// (Verify: a stored event was judged when it came and is not judged again).
func (db *DB) LedgerAdmitting(v Validator, a Admitter) *Ledger {
	return &Ledger{db: db, st: db.ledger, validate: v, admit: a}
}

// Head is the ledger's current head.
func (l *Ledger) Head() Head {
	l.st.mu.RLock()
	defer l.st.mu.RUnlock()
	return l.st.head
}

// OnInsert registers fn to run after each newly added event is durable, in
// local order, on the committer's goroutine: fn must not block. It is a
// notification, not a stream (a failed commit can skip it); use Tail for
// exactly-once delivery. The returned func unregisters.
func (l *Ledger) OnInsert(fn func(Event)) (remove func()) {
	l.st.hookMu.Lock()
	defer l.st.hookMu.Unlock()
	l.st.hookID++
	id := l.st.hookID
	l.st.hooks[id] = fn
	return func() {
		l.st.hookMu.Lock()
		delete(l.st.hooks, id)
		l.st.hookMu.Unlock()
	}
}

// Insert validates and durably adds one event. added is false for a
// duplicate (same id), which is not an error. ev.Meta is what the
// Validator returned whenever it parsed the event: for an added event, a
// duplicate (then ev.Seq is 0) and an event refused after parsing (err is
// the refusal), so the caller never parses the bytes itself.
func (l *Ledger) Insert(ctx context.Context, raw []byte) (ev Event, added bool, err error) {
	return l.InsertFrom(ctx, Incoming{Raw: raw})
}

// InsertFrom is Insert of an event with its attachment and sender.
func (l *Ledger) InsertFrom(ctx context.Context, in Incoming) (ev Event, added bool, err error) {
	rep, pend, err := l.insertMany(ctx, []Incoming{in})
	var meta EventMeta
	if len(pend) == 1 {
		meta = pend[0].meta
	}
	switch {
	case err != nil:
		return Event{Meta: meta}, false, err
	case len(rep.Rejected) > 0:
		return Event{Meta: rep.Rejected[0].Meta}, false, rep.Rejected[0].Err
	case len(rep.Added) == 1:
		return rep.Added[0], true, nil
	}
	return Event{Meta: meta}, false, nil
}

// InsertMany validates every event (rejections are reported, not fatal)
// and adds the valid ones in one durable group. The error is only for
// storage failures.
func (l *Ledger) InsertMany(ctx context.Context, raws [][]byte) (InsertReport, error) {
	ins := make([]Incoming, len(raws))
	for i, raw := range raws {
		ins[i].Raw = raw
	}
	rep, _, err := l.insertMany(ctx, ins)
	return rep, err
}

// Admit is InsertMany of events with their attachments and senders.
func (l *Ledger) Admit(ctx context.Context, ins []Incoming) (InsertReport, error) {
	rep, _, err := l.insertMany(ctx, ins)
	return rep, err
}

// insertMany is Admit that also returns the validated events.
func (l *Ledger) insertMany(ctx context.Context, ins []Incoming) (InsertReport, []pendingEvent, error) {
	if len(ins) > MaxInsertEvents {
		return InsertReport{}, nil, fmt.Errorf("%w: insert of %d events (max %d)", ErrInvalid, len(ins), MaxInsertEvents)
	}
	var rep InsertReport
	pend := make([]pendingEvent, 0, len(ins))
	for i, in := range ins {
		meta, err := l.check(in)
		if err != nil {
			rep.Rejected = append(rep.Rejected, Rejection{Index: i, Err: err, Meta: meta, From: in.From})
			continue
		}
		meta.Attachment = bytes.Clone(meta.Attachment)
		pend = append(pend, pendingEvent{meta: meta, raw: bytes.Clone(in.Raw)})
	}
	if len(pend) == 0 {
		return rep, pend, nil
	}
	r := &writeReq{kind: reqLedger, log: l.db.logs[logIDAdmin], events: pend}
	if err := l.db.do(ctx, r); err != nil {
		return rep, pend, err
	}
	rep.Added, rep.Duplicates = r.report.Added, r.report.Duplicates
	return rep, pend, nil
}

// check bounds and admits one arriving event. With an error, the meta is
// what the Admitter parsed before refusing (zero if it never ran).
func (l *Ledger) check(in Incoming) (EventMeta, error) {
	if len(in.Raw) == 0 || len(in.Raw) > MaxEventBytes {
		return EventMeta{}, fmt.Errorf("%w: event of %d bytes (1..%d)", ErrInvalid, len(in.Raw), MaxEventBytes)
	}
	if len(in.Attachment) > MaxAttachmentBytes {
		return EventMeta{}, fmt.Errorf("%w: attachment of %d bytes (at most %d)", ErrInvalid, len(in.Attachment), MaxAttachmentBytes)
	}
	meta, err := l.admit(in)
	if err != nil {
		return meta, fmt.Errorf("chain: event rejected: %w", err)
	}
	if meta.IssuedAt < 0 || meta.IssuedAt > MaxIssuedAtMs {
		return meta, fmt.Errorf("%w: event issue time %d ms out of range", ErrInvalid, meta.IssuedAt)
	}
	if len(meta.Attachment) > MaxAttachmentBytes {
		return meta, fmt.Errorf("%w: attachment of %d bytes to store (at most %d)", ErrInvalid, len(meta.Attachment), MaxAttachmentBytes)
	}
	return meta, nil
}

func (db *DB) stageLedger(st *stager, r *writeReq, now int64, pub *publication) error {
	ls := r.log
	lg := db.ledger
	for _, pe := range r.events {
		idk := eventIDKey(pe.meta.ID)
		// The transaction sees its own staged writes and everything
		// committed before it, so duplicates inside one batch are caught.
		if _, err := st.txn.Get(idk); err == nil {
			r.report.Duplicates++
			continue
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("chain: ledger lookup: %w", err)
		}
		pos := pe.meta.Pos()
		ek := eventKey(pos.IssuedAtMs, pos.ID)
		var issued [8]byte
		binary.BigEndian.PutUint64(issued[:], uint64(pos.IssuedAtMs))
		rawHash := blake2b.Sum256(pe.raw)
		seq, at := ls.tentLast+1, max(now, ls.tentLastAt)
		link := linkHash(lg.tent.Hash, seq, pos, rawHash)
		order := encodeEntry(at, orderRecord{Pos: pos, RawHash: rawHash, Link: link}.encode())
		next := Head{Count: lg.tent.Count + 1, LastSeq: seq, Hash: link}
		head := encodeHead(next)
		ok := logKey(ls.id, seq)
		kvs := [][2][]byte{{ek, pe.raw}, {idk, issued[:]}, {ok, order}, {metaLedgerHeadKey, head}}
		if len(pe.meta.Attachment) > 0 {
			kvs = append(kvs, [2][]byte{attachmentKey(pe.meta.ID), pe.meta.Attachment})
		}
		var cost int64
		for _, kv := range kvs {
			cost += entryCost(kv[0], kv[1])
		}
		// The event, its id index, its order record, its attachment and
		// the head move together: a crash never leaves an event outside
		// the local order, nor one without the receipts it came with.
		if err := st.reserve(cost, int64(len(kvs))); err != nil {
			return err
		}
		for _, kv := range kvs {
			if err := st.setReserved(kv[0], kv[1]); err != nil {
				return err
			}
		}
		ls.nextEntry(now)
		lg.tent = next
		ev := Event{Meta: pe.meta, Raw: pe.raw, Seq: seq, RecordedAtNano: at}
		r.report.Added = append(r.report.Added, ev)
		pub.entries[ls.id] = append(pub.entries[ls.id], Entry{Seq: seq, AtNano: at, Value: order[entryHeaderBytes:]})
		pub.events = append(pub.events, ev)
		h := next
		pub.head = &h
		db.stats.records.Add(1)
	}
	return nil
}

func (db *DB) publishLedger(pub *publication) {
	lg := db.ledger
	lg.mu.Lock()
	lg.head = *pub.head
	for _, ev := range pub.events {
		lg.buckets.add(ev.Meta.Pos())
	}
	lg.mu.Unlock()
	lg.hookMu.Lock()
	hooks := make([]func(Event), 0, len(lg.hooks))
	for _, h := range lg.hooks {
		hooks = append(hooks, h)
	}
	lg.hookMu.Unlock()
	for _, ev := range pub.events {
		for _, h := range hooks {
			h(ev)
		}
	}
}

// loadLedger rebuilds the ledger's head and digest buckets from disk.
func (db *DB) loadLedger() error {
	var head Head
	var b bucketIndex
	err := db.view(func(txn *badger.Txn) error {
		it, err := txn.Get(metaLedgerHeadKey)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return fmt.Errorf("chain: read ledger head: %w", err)
		default:
			v, err := it.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("chain: read ledger head: %w", err)
			}
			if head, err = decodeHead(v); err != nil {
				return err
			}
		}
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		opt.Prefix = []byte{nsEvent}
		iter := txn.NewIterator(opt)
		defer iter.Close()
		for iter.Rewind(); iter.Valid(); iter.Next() {
			pos, ok := parseEventKey(iter.Item().Key())
			if !ok {
				return fmt.Errorf("%w: bad event key %s", ErrCorrupt, keyString(iter.Item().Key()))
			}
			b.add(pos)
		}
		return nil
	})
	if err != nil {
		return err
	}
	lg := db.ledger
	lg.mu.Lock()
	lg.head, lg.buckets, lg.tent = head, b, head
	lg.mu.Unlock()
	return nil
}

// Has reports whether the event id is in the ledger.
func (l *Ledger) Has(id [32]byte) (bool, error) {
	found := false
	err := l.db.view(func(txn *badger.Txn) error {
		_, err := txn.Get(eventIDKey(id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("chain: ledger has: %w", err)
	}
	return found, nil
}

// Attachment returns what was stored beside the event id (nil: nothing, or
// no such event).
func (l *Ledger) Attachment(id [32]byte) ([]byte, error) {
	var att []byte
	err := l.db.view(func(txn *badger.Txn) error {
		it, err := txn.Get(attachmentKey(id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		att, err = it.ValueCopy(nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("chain: ledger attachment: %w", err)
	}
	return att, nil
}

// Get returns the raw bytes of the event at pos.
func (l *Ledger) Get(pos Position) ([]byte, error) {
	var raw []byte
	err := l.db.view(func(txn *badger.Txn) error {
		it, err := txn.Get(eventKey(pos.IssuedAtMs, pos.ID))
		if err != nil {
			return err
		}
		raw, err = it.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: event %x@%d", ErrNotFound, pos.ID[:6], pos.IssuedAtMs)
	}
	if err != nil {
		return nil, fmt.Errorf("chain: ledger get: %w", err)
	}
	return raw, nil
}

// Scan calls fn for every event at or after from, in fold order, until fn
// returns false.
func (l *Ledger) Scan(from Position, fn func(Event) bool) error {
	return l.db.view(func(txn *badger.Txn) error { return scanEvents(txn, from, fn) })
}

func scanEvents(txn *badger.Txn, from Position, fn func(Event) bool) error {
	opt := badger.DefaultIteratorOptions
	opt.Prefix = []byte{nsEvent}
	opt.PrefetchSize = 64
	it := txn.NewIterator(opt)
	defer it.Close()
	for it.Seek(eventKey(from.IssuedAtMs, from.ID)); it.Valid(); it.Next() {
		pos, ok := parseEventKey(it.Item().Key())
		if !ok {
			return fmt.Errorf("%w: bad event key %s", ErrCorrupt, keyString(it.Item().Key()))
		}
		raw, err := it.Item().ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("chain: ledger scan: %w", err)
		}
		if !fn(Event{Meta: EventMeta{ID: pos.ID, IssuedAt: pos.IssuedAtMs}, Raw: raw}) {
			return nil
		}
	}
	return nil
}

// refoldView serves Fold's refold from one consistent snapshot: it finds
// the earliest position among events of local seq > after, lets choose
// pick where to restart (given that position; any is false when there are
// none), then feeds every event from there on to apply. The returned head
// is the snapshot's: exactly local seqs 1..head.LastSeq were covered.
func (l *Ledger) refoldView(after uint64, choose func(earliest Position, any bool) Position, apply func(Event)) (Head, error) {
	var head Head
	err := l.db.view(func(txn *badger.Txn) error {
		item, err := txn.Get(metaLedgerHeadKey)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return fmt.Errorf("chain: refold head: %w", err)
		default:
			v, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("chain: refold head: %w", err)
			}
			if head, err = decodeHead(v); err != nil {
				return err
			}
		}
		var earliest Position
		any := false
		opt := badger.DefaultIteratorOptions
		opt.Prefix = logPrefix(logIDAdmin)
		it := txn.NewIterator(opt)
		for it.Seek(logKey(logIDAdmin, after+1)); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				it.Close()
				return fmt.Errorf("chain: refold order: %w", err)
			}
			_, payload, err := decodeEntryHeader(v)
			if err != nil {
				it.Close()
				return err
			}
			o, err := decodeOrderRecord(payload)
			if err != nil {
				it.Close()
				return err
			}
			if !any || o.Pos.Compare(earliest) < 0 {
				earliest, any = o.Pos, true
			}
		}
		it.Close()
		from := choose(earliest, any)
		return scanEvents(txn, from, func(ev Event) bool { apply(ev); return true })
	})
	return head, err
}

// EventOf turns an admin-log entry (from Tail or the admin Log) into its
// event, reading the event's bytes.
func (l *Ledger) EventOf(e Entry) (Event, error) {
	o, err := decodeOrderRecord(e.Value)
	if err != nil {
		return Event{}, fmt.Errorf("admin seq %d: %w", e.Seq, err)
	}
	raw, err := l.Get(o.Pos)
	if err != nil {
		return Event{}, fmt.Errorf("admin seq %d: %w", e.Seq, err)
	}
	return Event{Meta: EventMeta{ID: o.Pos.ID, IssuedAt: o.Pos.IssuedAtMs}, Raw: raw, Seq: e.Seq, RecordedAtNano: e.AtNano}, nil
}

// Local returns the event at local seq.
func (l *Ledger) Local(seq uint64) (Event, error) {
	e, err := l.db.logByID(logIDAdmin).Get(seq)
	if err != nil {
		return Event{}, err
	}
	return l.EventOf(e)
}

// Log is the admin log (local order records; see EventOf).
func (l *Ledger) Log() *Log { return l.db.logByID(logIDAdmin) }

// Tail follows the local order from fromSeq (see Log.Tail); turn its
// entries into events with EventOf.
func (l *Ledger) Tail(ctx context.Context, fromSeq uint64) *Tail {
	return l.Log().Tail(ctx, fromSeq)
}
