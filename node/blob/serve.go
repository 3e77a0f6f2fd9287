package blob

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/deck-mesh/deck/node/identity"
)

// chunkBufs recycles chunk-sized read buffers between answers.
var chunkBufs = sync.Pool{New: func() any { b := make([]byte, 0, ChunkBytes); return &b }}

// serveLoop is one worker: it takes requests from the fair queue (each
// peer in turn, at its budget) and answers them.
func (s *Service) serveLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		_, m, wait, ok := s.queue.Next()
		if ok {
			s.serve(ctx, m)
			continue
		}
		var tc <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-s.queue.Wake():
		case <-tc:
		}
		timer.Stop()
	}
}

func (s *Service) serve(ctx context.Context, m *message) {
	s.served.Add(1)
	switch m.Type {
	case msgChunkReq:
		s.serveChunk(ctx, m)
	case msgManifestReq:
		s.serveManifest(ctx, m)
	case msgHaveReq:
		s.reply(ctx, m, s.have(m.Hash))
	case msgReplicateReq:
		s.serveReplicate(ctx, m)
	case msgIntentReq:
		s.serveIntent(ctx, m)
	case msgListReq:
		s.serveList(ctx, m)
	case msgGCReq:
		s.serveGC(ctx, m)
	}
}

func (s *Service) serveChunk(ctx context.Context, m *message) {
	bp := chunkBufs.Get().(*[]byte)
	defer chunkBufs.Put(bp)
	data, err := s.store.ReadChunk(m.Hash, (*bp)[:0])
	*bp = data[:0]
	resp := &message{Status: StatusOK, Data: data}
	switch {
	case errors.Is(err, ErrNotFound):
		resp = &message{Status: StatusNotFound}
	case errors.Is(err, ErrCorrupt):
		s.noteCorrupt(m.Hash)
		resp = &message{Status: StatusCorrupt}
	case err != nil:
		resp = &message{Status: StatusBusy}
	default:
		// Heat only for a blob this chunk belongs to: a peer cannot warm
		// a blob by naming it beside another's chunk.
		if ok, _ := s.store.space.Has(edgeKey(m.Hash, m.Blob)); ok {
			s.noteRead(s.cfg.Now(), m.Blob, m.from)
		}
	}
	s.reply(ctx, m, resp)
	s.queue.Charge(m.from, float64(len(resp.Data)))
}

func (s *Service) serveManifest(ctx context.Context, m *message) {
	rec, err := s.store.Record(m.Hash)
	if err == nil {
		in, err := rec.Intent.Encode()
		if err == nil {
			s.reply(ctx, m, &message{Status: StatusOK, Data: rec.Manifest.Encode(), Intent: in})
			return
		}
	}
	if tomb, _ := s.store.Tombstone(m.Hash); tomb != nil {
		in, _ := tomb.Encode()
		s.reply(ctx, m, &message{Status: StatusRemoved, Intent: in})
		return
	}
	s.reply(ctx, m, &message{Status: StatusNotFound})
}

// have is what this node knows of blob h: held (with its role, heat and
// intent), being fetched (progress), removed (the tombstone), or not.
func (s *Service) have(h Hash) *message {
	s.jobMu.Lock()
	j := s.jobs[h]
	s.jobMu.Unlock()
	if j != nil {
		return &message{Status: StatusFetching, Stored: uint64(j.stored.Load()), Total: uint64(j.total.Load())}
	}
	if rec, err := s.store.Record(h); err == nil {
		in, _ := rec.Intent.Encode()
		n := rec.Size
		return &message{Status: StatusOK, Role: rec.Role, Stored: n, Total: n, Heat: s.heat.of(s.cfg.Now(), h), Intent: in}
	}
	if tomb, _ := s.store.Tombstone(h); tomb != nil {
		in, _ := tomb.Encode()
		return &message{Status: StatusRemoved, Intent: in}
	}
	return &message{Status: StatusNotFound}
}

// serveReplicate starts a fetch of a blob into this store, asked by a put
// or by another holder's policy. Only a datafort takes replicas, and only
// under an intent a registered operator signed.
func (s *Service) serveReplicate(ctx context.Context, m *message) {
	refuse := func(st Status, why string) { s.reply(ctx, m, &message{Status: st, Reason: why}) }
	if !s.cfg.Datafort {
		refuse(StatusRefused, "not a datafort")
		return
	}
	in, err := s.verifyIntent(m.from, m.Intent, m.Hash)
	if err != nil {
		refuse(StatusRefused, truncate(err.Error(), MaxReasonBytes))
		return
	}
	if in.Removed {
		refuse(StatusInvalid, "a removal is not replicated")
		return
	}
	if m.Role == RoleStaging {
		refuse(StatusInvalid, "staging is a console's role")
		return
	}
	st, err := s.startFetch(in, m.Role, append(m.Sources, m.from))
	if err != nil {
		refuse(st, truncate(err.Error(), MaxReasonBytes))
		return
	}
	s.reply(ctx, m, &message{Status: st})
}

func (s *Service) serveIntent(ctx context.Context, m *message) {
	in, err := DecodeIntent(m.Intent)
	if err == nil {
		in, err = s.verifyIntent(m.from, m.Intent, in.Blob)
	}
	if err != nil {
		s.reply(ctx, m, &message{Status: StatusRefused, Reason: truncate(err.Error(), MaxReasonBytes)})
		return
	}
	newer, err := s.store.UpdateIntent(ctx, in)
	switch {
	case err != nil:
		s.reply(ctx, m, &message{Status: StatusBusy, Reason: truncate(err.Error(), MaxReasonBytes)})
	case in.Removed:
		s.heat.forget(in.Blob)
		s.gcWanted.Store(true)
		s.poke()
		s.reply(ctx, m, &message{Status: StatusOK})
	case !newer:
		if _, err := s.store.Record(in.Blob); err != nil {
			s.reply(ctx, m, &message{Status: StatusNotFound})
			return
		}
		s.reply(ctx, m, &message{Status: StatusOK, Reason: "a newer intent is held"})
	default:
		s.poke()
		s.reply(ctx, m, &message{Status: StatusOK})
	}
}

func (s *Service) serveList(ctx context.Context, m *message) {
	recs, next, err := s.store.Records(m.Hash, MaxListEntries)
	if err != nil {
		s.reply(ctx, m, &message{Status: StatusBusy})
		return
	}
	now := s.cfg.Now()
	resp := &message{Status: StatusOK, More: !next.IsZero()}
	for _, rec := range recs {
		in, err := rec.Intent.Encode()
		if err != nil {
			continue
		}
		resp.Entries = append(resp.Entries, listEntry{Hash: rec.Hash, Role: rec.Role, StoredAt: rec.StoredAt,
			Heat: s.heat.of(now, rec.Hash), Size: rec.Size, Intent: in})
	}
	s.reply(ctx, m, resp)
}

// serveGC answers with the report of a GC run that starts after the
// request arrived (requestGC); past MaxGCWaiters waiting requests it
// answers busy.
func (s *Service) serveGC(ctx context.Context, m *message) {
	r := s.requestGC(ctx, true)
	if r == nil {
		s.reply(ctx, m, &message{Status: StatusBusy})
		return
	}
	go func() {
		select {
		case <-r.done:
		case <-ctx.Done():
			return
		}
		st := StatusOK
		if r.err != nil {
			st = StatusBusy
		}
		s.reply(ctx, m, &message{Status: st, GC: r.rep})
	}()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}

// sendersOf returns ids without duplicates or self.
func sendersOf(self identity.NodeID, ids []identity.NodeID) []identity.NodeID {
	out := make([]identity.NodeID, 0, len(ids))
	for _, id := range ids {
		if id != self && id.Valid() && !containsID(out, id) {
			out = append(out, id)
		}
	}
	return out
}

func containsID(ids []identity.NodeID, id identity.NodeID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
