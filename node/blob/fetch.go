package blob

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/placement"
	"github.com/deck-mesh/deck/node/snapshot"
)

// startFetch begins replicating the blob in into this store from sources
// (and whoever else holds it), unless it is held or being fetched already.
// It returns the status to answer with: OK when held, Fetching when a
// fetch runs (started now or before).
func (s *Service) startFetch(in *Intent, role Role, sources []identity.NodeID) (Status, error) {
	h := in.Blob
	if tomb, err := s.store.Tombstone(h); err != nil {
		return StatusBusy, err
	} else if tomb != nil && tomb.Newer(in) {
		return StatusRemoved, fmt.Errorf("%w (%s)", ErrRemoved, h.Short())
	}
	if rec, err := s.store.Record(h); err == nil {
		if in.Newer(rec.Intent) {
			_, _ = s.store.UpdateIntent(context.Background(), in)
		}
		return StatusOK, nil
	}
	if s.Overflow() != snapshot.OverflowNone {
		return StatusFull, fmt.Errorf("%w: over the high-water mark", ErrFull)
	}
	s.jobMu.Lock()
	if _, ok := s.jobs[h]; ok {
		s.jobMu.Unlock()
		return StatusFetching, nil
	}
	if len(s.jobs) >= MaxConcurrentFetches {
		s.jobMu.Unlock()
		return StatusBusy, fmt.Errorf("%d fetches running", len(s.jobs))
	}
	j := &job{done: make(chan struct{})}
	s.jobs[h] = j
	s.jobMu.Unlock()
	s.fetches.Add(1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), FetchJobTimeout)
		defer cancel()
		err := s.replicate(ctx, in, role, sources, j)
		if err != nil {
			s.fetchFailures.Add(1)
			s.cfg.Logf("blob: fetch %s: %v", h.Short(), err)
		}
		s.jobMu.Lock()
		delete(s.jobs, h)
		s.jobMu.Unlock()
		j.err = err
		close(j.done)
		s.poke()
	}()
	return StatusFetching, nil
}

// replicate fetches blob in.Blob into this store: its manifest, its index
// chunks and its chunks, each verified against its hash and stored as it
// arrives (never the whole blob in memory), then commits the record. A
// holder that fails is left for the others; chunks already held are not
// fetched again, so a fetch that failed resumes where it stopped.
func (s *Service) replicate(ctx context.Context, in *Intent, role Role, sources []identity.NodeID, j *job) error {
	h := in.Blob
	s.store.Begin(h)
	defer s.store.End(h)
	srcs := s.newSources(sources, func() []identity.NodeID {
		hs, _ := s.locate(ctx, h)
		return holdersOf(hs)
	})
	m, held, err := s.fetchManifest(ctx, h, srcs)
	if err != nil {
		return err
	}
	if held != nil && held.Newer(in) {
		if held.Removed {
			_, _ = s.store.UpdateIntent(ctx, held)
			return fmt.Errorf("%w (%s)", ErrRemoved, h.Short())
		}
		in = held
	}
	u := s.store.Usage()
	if u.Used+m.Size > u.Budget {
		return fmt.Errorf("%w: %d bytes to fetch, %d of %d used", ErrFull, m.Size, u.Used, u.Budget)
	}
	j.total.Store(int64(m.Size))
	store := func(i int, want Hash, data []byte) error {
		if _, err := s.store.PutChunk(ctx, h, data, want); err != nil {
			return err
		}
		s.noteWrite(len(data))
		if i >= 0 {
			j.stored.Add(int64(len(data)))
		}
		return nil
	}
	skip := func(c Hash) bool {
		if ok, _ := s.store.HasRef(c, h); ok {
			return true // fetched by an earlier attempt
		}
		if ok, _ := s.store.HasChunk(c); ok {
			// Held for another blob: reference it for this one too.
			_, err := s.store.PutChunkRef(ctx, h, c)
			return err == nil
		}
		return false
	}
	err = s.walkChunks(ctx, h, m, srcs, skip, func(i int, c Hash, data []byte) error { return store(i, c, data) })
	if err != nil {
		return err
	}
	rec := &Record{Hash: h, Manifest: m, Intent: in, Role: role, StoredAt: s.cfg.Now().UTC().Truncate(time.Millisecond)}
	return s.store.Commit(ctx, rec, Hash{})
}

// walkChunks fetches every chunk of m (index chunks first in their group)
// and calls got with each one's index (-1-x for index chunk x), hash and
// verified bytes; skip says which need no fetch. Groups of one index
// chunk's refs are fetched one after another, so at most one group's refs
// are in memory.
func (s *Service) walkChunks(ctx context.Context, blob Hash, m *Manifest, srcs *sources, skip func(Hash) bool, got func(i int, h Hash, data []byte) error) error {
	if !m.Indexed() {
		return s.fetchChunks(ctx, blob, m.Refs, 0, srcs, false, skip, got)
	}
	for x, ih := range m.Refs {
		var idx []byte
		if b, err := s.store.ReadChunk(ih, nil); err == nil {
			idx = b
			if err := got(-1-x, ih, b); err != nil {
				return err
			}
		} else {
			err := s.fetchChunks(ctx, blob, []Hash{ih}, 0, srcs, false, nil, func(_ int, h Hash, data []byte) error {
				idx = data
				return got(-1-x, h, data)
			})
			if err != nil {
				return fmt.Errorf("index chunk %d: %w", x, err)
			}
		}
		refs, err := m.DecodeIndex(x, idx)
		if err != nil {
			return err
		}
		if err := s.fetchChunks(ctx, blob, refs, x*IndexChunkRefs, srcs, false, skip, got); err != nil {
			return err
		}
	}
	return nil
}

// sources are the holders a fetch asks, in preference order (lowest RTT
// first), with how each is doing.
type sources struct {
	mu      sync.Mutex
	list    []*source
	refill  func() []identity.NodeID
	refills int
}

type source struct {
	id       identity.NodeID
	inflight int
	fails    int // in a row
	gone     bool
}

// newSources orders ids (never this node) by the transport's RTT to each,
// unknown ones last; refill (may be nil) finds more holders when every one
// of them failed.
func (s *Service) newSources(ids []identity.NodeID, refill func() []identity.NodeID) *sources {
	rtt := map[identity.NodeID]time.Duration{}
	for _, p := range s.cfg.Messenger.Peers() {
		if p.Health != snapshot.Unreachable {
			rtt[p.ID] = p.RTT
		}
	}
	out := &sources{refill: refill}
	for _, id := range sendersOf(s.cfg.Self, ids) {
		out.list = append(out.list, &source{id: id})
	}
	slices.SortStableFunc(out.list, func(a, b *source) int {
		ra, oka := rtt[a.id]
		rb, okb := rtt[b.id]
		if oka != okb {
			if oka {
				return -1
			}
			return 1
		}
		return cmp.Compare(ra, rb)
	})
	return out
}

// more asks refill for holders not tried yet; false when there are none.
func (ss *sources) more() bool {
	ss.mu.Lock()
	refill := ss.refill
	if refill == nil || ss.refills >= FetchSourceRefills {
		ss.mu.Unlock()
		return false
	}
	ss.refills++
	ss.mu.Unlock()
	before := ss.live()
	ss.add(refill())
	return ss.live() > before
}

func (ss *sources) add(ids []identity.NodeID) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, id := range ids {
		if !slices.ContainsFunc(ss.list, func(x *source) bool { return x.id == id }) {
			ss.list = append(ss.list, &source{id: id})
		}
	}
	// A holder left earlier may be asked again once nothing else is left
	// (it may have been slow, not gone).
	for _, x := range ss.list {
		if x.gone && slices.Contains(ids, x.id) {
			x.gone, x.fails = false, 0
		}
	}
}

// pick takes the least busy live source with room in its window.
func (ss *sources) pick() *source {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var best *source
	for _, x := range ss.list {
		if x.gone || x.inflight >= FetchWindowPerSource {
			continue
		}
		if best == nil || x.inflight < best.inflight {
			best = x
		}
	}
	if best != nil {
		best.inflight++
	}
	return best
}

func (ss *sources) live() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	n := 0
	for _, x := range ss.list {
		if !x.gone {
			n++
		}
	}
	return n
}

// done records one answer from x: ok resets its failures; a failure counts
// and after FetchSourceFailures in a row (or at once when it no longer
// holds the blob) the source is left.
func (ss *sources) done(x *source, ok, gone bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	x.inflight--
	switch {
	case ok:
		x.fails = 0
	case gone:
		x.gone = true
	default:
		x.fails++
		if x.fails >= FetchSourceFailures {
			x.gone = true
		}
	}
}

// fetchManifest asks the sources, in order, for the blob's manifest; the
// first answer that hashes to h wins. The intent an answer carries comes
// back too (checked), so a newer pin or a removal travels with the bytes.
func (s *Service) fetchManifest(ctx context.Context, h Hash, srcs *sources) (*Manifest, *Intent, error) {
	var lastErr error = ErrUnavailable
	for {
		x := srcs.pick()
		if x == nil {
			if srcs.more() {
				continue
			}
			return nil, nil, fmt.Errorf("manifest of %s: %w", h.Short(), lastErr)
		}
		resp, err := s.request(ctx, x.id, &message{Type: msgManifestReq, Hash: h}, 0)
		switch {
		case err != nil:
			srcs.done(x, false, false)
			lastErr = err
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			continue
		case resp.Status == StatusRemoved:
			srcs.done(x, false, true)
			if in, err := s.checkIntent(x.id, resp.Intent, h, false); err == nil && in.Removed {
				return nil, in, fmt.Errorf("%w (%s)", ErrRemoved, h.Short())
			}
			continue
		case resp.Status != StatusOK:
			srcs.done(x, false, resp.Status == StatusNotFound)
			lastErr = fmt.Errorf("%s: %s", x.id, resp.Status)
			continue
		}
		if Sum(resp.Data) != h {
			srcs.done(x, false, true)
			s.badChunks.Add(1)
			lastErr = fmt.Errorf("%w: %s served a manifest that is not %s", ErrCorrupt, x.id, h.Short())
			continue
		}
		m, err := DecodeManifest(resp.Data)
		if err != nil {
			srcs.done(x, false, true)
			lastErr = err
			continue
		}
		srcs.done(x, true, false)
		var in *Intent
		if len(resp.Intent) > 0 {
			in, _ = s.checkIntent(x.id, resp.Intent, h, false)
		}
		return m, in, nil
	}
}

type chunkResult struct {
	i    int // index into refs
	src  *source
	data []byte
	err  error
	gone bool
	took time.Duration
}

// fetchChunks fetches refs (chunk indexes base+i) from srcs, at most
// FetchWindowChunks requests in flight and FetchWindowPerSource per
// source, and calls got with each chunk's verified bytes: in order when
// ordered (then no chunk more than FetchWindowChunks ahead of the next one
// owed is asked for, so at most that many wait in memory), else as they
// come. A chunk that fails (timeout, not held, bytes that do not match its
// hash) is asked of another source; a source that keeps failing is left.
// skip (may be nil) says which refs need no fetch.
func (s *Service) fetchChunks(ctx context.Context, blob Hash, refs []Hash, base int, srcs *sources, ordered bool,
	skip func(Hash) bool, got func(i int, h Hash, data []byte) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan chunkResult, FetchWindowChunks)
	done := make([]bool, len(refs))
	attempts := make([]int, len(refs))
	held := map[int][]byte{} // ordered: arrived ahead of the next owed
	var retry []int
	next, owed, inflight, left := 0, 0, 0, len(refs)
	srtt := time.Duration(0)
	timeout := func() time.Duration {
		return min(MaxChunkTimeout, max(s.tm.ChunkTimeoutMin, 8*srtt))
	}
	// deliver hands over what is due; in order when ordered.
	deliver := func(i int, data []byte) error {
		if !ordered {
			left--
			return got(base+i, refs[i], data)
		}
		if data != nil {
			held[i] = data
		}
		for {
			for owed < len(refs) && done[owed] && held[owed] == nil {
				owed++ // skipped
			}
			b, ok := held[owed]
			if !ok || b == nil {
				return nil
			}
			delete(held, owed)
			left--
			if err := got(base+owed, refs[owed], b); err != nil {
				return err
			}
			owed++
		}
	}
	defer func() {
		cancel()
		for inflight > 0 {
			<-results
			inflight--
		}
	}()
	for left > 0 {
		// Issue: retries first, then new indexes within the window.
		for inflight < FetchWindowChunks {
			i := -1
			if len(retry) > 0 {
				i = retry[0]
			} else if next < len(refs) && (!ordered || next < owed+FetchWindowChunks) {
				i = next
				if skip != nil && skip(refs[i]) {
					done[i] = true
					next++
					left--
					if ordered {
						if err := deliver(i, nil); err != nil {
							return err
						}
					}
					continue
				}
			}
			if i < 0 {
				break
			}
			x := srcs.pick()
			if x == nil {
				break
			}
			if len(retry) > 0 && retry[0] == i {
				retry = retry[1:]
			} else {
				next++
			}
			attempts[i]++
			inflight++
			go s.askChunk(ctx, blob, refs[i], i, x, timeout(), results)
		}
		if left == 0 {
			break
		}
		if inflight == 0 {
			// Nothing in flight and nobody to ask: every holder failed.
			// Find others (a holder died: the fetch goes on elsewhere).
			if srcs.more() {
				continue
			}
			return fmt.Errorf("%w: every holder failed", ErrUnavailable)
		}
		var r chunkResult
		select {
		case r = <-results:
		case <-ctx.Done():
			return ctx.Err()
		}
		inflight--
		ok := r.err == nil && Sum(r.data) == refs[r.i]
		if r.err == nil && !ok {
			s.badChunks.Add(1)
			r.gone = true // a holder serving wrong bytes is not asked again
		}
		srcs.done(r.src, ok, r.gone)
		if !ok {
			if !done[r.i] {
				if attempts[r.i] >= FetchChunkAttempts {
					return fmt.Errorf("%w: chunk %d (%s) after %d attempts: %v", ErrUnavailable, base+r.i, refs[r.i].Short(), attempts[r.i], r.err)
				}
				retry = append(retry, r.i)
			}
			continue
		}
		if srtt == 0 {
			srtt = r.took
		} else {
			srtt = (7*srtt + r.took) / 8
		}
		if done[r.i] {
			continue // a late duplicate of a retried chunk
		}
		done[r.i] = true
		if err := deliver(r.i, r.data); err != nil {
			return err
		}
	}
	return nil
}

// askChunk requests one chunk and reports on results.
func (s *Service) askChunk(ctx context.Context, blob, h Hash, i int, x *source, timeout time.Duration, results chan<- chunkResult) {
	start := time.Now()
	r := chunkResult{i: i, src: x}
	resp, err := s.request(ctx, x.id, &message{Type: msgChunkReq, Hash: h, Blob: blob}, timeout)
	switch {
	case err != nil:
		r.err = err
	case resp.Status != StatusOK:
		r.err = fmt.Errorf("%s: %s", x.id, resp.Status)
		r.gone = resp.Status == StatusNotFound || resp.Status == StatusRemoved
	default:
		r.data = resp.Data
	}
	r.took = time.Since(start)
	results <- r
}

// holder is one node's answer about a blob.
type holder struct {
	id     identity.NodeID
	status Status
	role   Role
	heat   float64
	stored uint64
	total  uint64
	intent *Intent
}

// locate asks the datafort nodes (and this node) about blob h, in
// parallel, bounded by MaxLocateQueries, and returns their answers (nodes
// that do not know it left out) and the newest intent any of them holds.
func (s *Service) locate(ctx context.Context, h Hash) ([]holder, *Intent) {
	cands := s.locateCandidates(h)
	var mu sync.Mutex
	var out []holder
	var newest *Intent
	var wg sync.WaitGroup
	for _, id := range cands {
		wg.Add(1)
		go func(id identity.NodeID) {
			defer wg.Done()
			resp, err := s.request(ctx, id, &message{Type: msgHaveReq, Hash: h}, 0)
			if err != nil || resp.Status == StatusNotFound {
				return
			}
			hd := holder{id: id, status: resp.Status, role: resp.Role, heat: resp.Heat, stored: resp.Stored, total: resp.Total}
			if len(resp.Intent) > 0 {
				if in, err := s.checkIntent(id, resp.Intent, h, false); err == nil {
					hd.intent = in
				}
			}
			mu.Lock()
			out = append(out, hd)
			if hd.intent != nil && hd.intent.Newer(newest) {
				newest = hd.intent
			}
			mu.Unlock()
		}(id)
	}
	wg.Wait()
	slices.SortFunc(out, func(a, b holder) int { return cmp.Compare(a.id, b.id) })
	return out, newest
}

// locateCandidates: this node, then the datafort nodes the view shows as
// reachable, in the blob's rendezvous order (its placed holders first).
func (s *Service) locateCandidates(h Hash) []identity.NodeID {
	out := []identity.NodeID{s.cfg.Self}
	cs := s.cfg.View()
	for _, c := range placement.BlobCandidates(cs, h, 0) {
		if v := cs.Node(c.ID); v != nil && v.Health != snapshot.Unreachable && c.ID != s.cfg.Self {
			out = append(out, c.ID)
		}
		if len(out) >= MaxLocateQueries {
			break
		}
	}
	return out
}

// holdersOf are the ids of the answers with status OK.
func holdersOf(hs []holder) []identity.NodeID {
	var out []identity.NodeID
	for _, h := range hs {
		if h.status == StatusOK {
			out = append(out, h.id)
		}
	}
	return out
}
