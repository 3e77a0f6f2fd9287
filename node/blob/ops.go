package blob

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/placement"
)

// PutPollInterval is how often a put asks its targets how far they got.
const PutPollInterval = 100 * time.Millisecond

// Put stores r as a blob: ingested into this node's store (a datafort's
// replica, or a console's staging copy), then fetched by datafort nodes
// chosen by placement until o.Replicas of them hold it, each fsynced. A
// target that refuses or fails is replaced by the next candidate. A
// console's staging copy is dropped once the datafort nodes hold the blob.
func (s *Service) Put(ctx context.Context, r io.Reader, o api.BlobPutOptions, signer identity.Signer) (api.BlobInfo, error) {
	if signer == nil {
		return api.BlobInfo{}, fmt.Errorf("%w: a put is signed by an operator key (--identity)", ErrPermission)
	}
	replicas := o.Replicas
	if replicas == 0 {
		replicas = DefaultReplicas
	}
	if replicas < 1 || replicas > MaxReplicas {
		return api.BlobInfo{}, fmt.Errorf("%w: %d replicas, want 1..%d", ErrInvalid, replicas, MaxReplicas)
	}
	progress := o.Progress
	if progress == nil {
		progress = func(string, int64, int64) {}
	}
	st, err := s.store.Ingest(ctx, r, func(done int64) { progress("store", done, -1) })
	if err != nil {
		return api.BlobInfo{}, err
	}
	in := &Intent{Blob: st.Hash, Replicas: replicas, Pinned: o.Pin, Name: o.Name, Parent: Hash(o.Parent), IssuedAt: s.cfg.Now()}
	if err := in.Sign(signer); err != nil {
		st.Abort()
		return api.BlobInfo{}, err
	}
	role := RoleStaging
	if s.cfg.Datafort {
		role = RolePlaced
	}
	rec, err := st.Commit(ctx, in, role)
	if err != nil {
		return api.BlobInfo{}, err
	}
	holders, err := s.spread(ctx, rec, replicas, progress)
	if role == RoleStaging && err == nil {
		// The datafort nodes hold it now; the console's copy goes.
		if derr := s.store.Drop(context.WithoutCancel(ctx), rec.Hash); derr == nil {
			_, _ = s.store.GC(context.WithoutCancel(ctx))
		}
	}
	info := s.infoOf(rec, holders)
	return info, err
}

// spread gets rec held by want datafort nodes (counting this one when it
// is a datafort) and returns them.
func (s *Service) spread(ctx context.Context, rec *Record, want int, progress func(string, int64, int64)) ([]identity.NodeID, error) {
	h, size := rec.Hash, rec.Size
	raw, err := rec.Intent.Encode()
	if err != nil {
		return nil, err
	}
	var holders []identity.NodeID
	if s.cfg.Datafort {
		holders = append(holders, s.cfg.Self)
	}
	tried := map[identity.NodeID]bool{s.cfg.Self: true}
	asked := map[identity.NodeID]uint64{} // target → bytes it reported
	for {
		if len(holders) >= want {
			return holders, nil
		}
		// Ask candidates until enough are asked or holding.
		cs := s.cfg.View()
		for _, c := range placement.BlobCandidates(cs, h, size) {
			if len(holders)+len(asked) >= want {
				break
			}
			if !c.Host || tried[c.ID] {
				continue
			}
			tried[c.ID] = true
			resp, err := s.request(ctx, c.ID, &message{Type: msgReplicateReq, Hash: h, Role: RolePlaced, Intent: raw, Sources: []identity.NodeID{s.cfg.Self}}, 0)
			switch {
			case err != nil:
				s.cfg.Logf("blob: put %s: %s: %v", h.Short(), c.ID, err)
			case resp.Status == StatusOK:
				holders = append(holders, c.ID)
			case resp.Status == StatusFetching:
				asked[c.ID] = 0
			default:
				s.cfg.Logf("blob: put %s: %s refused: %s %s", h.Short(), c.ID, resp.Status, resp.Reason)
			}
		}
		if len(holders) >= want {
			return holders, nil
		}
		if len(asked) == 0 {
			return holders, fmt.Errorf("%w: %d of %d datafort nodes hold %s and no other can take it", ErrUnavailable, len(holders), want, h.Short())
		}
		select {
		case <-ctx.Done():
			return holders, fmt.Errorf("%w: %d of %d replicas of %s after %v", ErrTimeout, len(holders), want, h.Short(), ctx.Err())
		case <-time.After(PutPollInterval):
		}
		var done int64
		for id := range asked {
			resp, err := s.request(ctx, id, &message{Type: msgHaveReq, Hash: h}, 0)
			switch {
			case err != nil:
				continue
			case resp.Status == StatusOK:
				holders = append(holders, id)
				delete(asked, id)
			case resp.Status == StatusFetching:
				asked[id] = resp.Stored
			default:
				// It gave up (full, busy, gone): the next candidate is asked.
				delete(asked, id)
			}
		}
		for _, b := range asked {
			done += int64(b)
		}
		progress("replicate", int64(len(holders))*int64(size)+done, int64(want)*int64(size))
	}
}

// Get writes blob h to w in order, every chunk verified: from this node's
// store when it holds it (a corrupt chunk is fetched from another holder
// and repaired here), else from the nearest holders, several chunks in
// flight, continuing with another holder when one fails.
func (s *Service) Get(ctx context.Context, h Hash, w io.Writer, progress func(done, total int64)) (api.BlobInfo, error) {
	if progress == nil {
		progress = func(int64, int64) {}
	}
	if rec, err := s.store.Record(h); err == nil {
		return s.infoOf(rec, []identity.NodeID{s.cfg.Self}), s.getLocal(ctx, rec, w, progress)
	}
	hs, newest := s.locate(ctx, h)
	holders := holdersOf(hs)
	if len(holders) == 0 {
		if newest != nil && newest.Removed {
			return api.BlobInfo{}, fmt.Errorf("%w (%s)", ErrRemoved, h.Short())
		}
		return api.BlobInfo{}, fmt.Errorf("%w: no node holds blob %s", ErrNotFound, h.Short())
	}
	srcs := s.newSources(holders, func() []identity.NodeID {
		hs, _ := s.locate(ctx, h)
		return holdersOf(hs)
	})
	m, in, err := s.fetchManifest(ctx, h, srcs)
	if err != nil {
		return api.BlobInfo{}, err
	}
	if in == nil || in.Newer(newest) == false && newest != nil {
		in = newest
	}
	info := s.infoFrom(h, m, in, holders, hs)
	var done int64
	total := int64(m.Size)
	progress(0, total)
	err = s.walkChunksOrdered(ctx, h, m, srcs, func(i int, data []byte) error {
		if _, err := w.Write(data); err != nil {
			return fmt.Errorf("blob: write: %w", err)
		}
		done += int64(len(data))
		progress(done, total)
		return nil
	})
	return info, err
}

// walkChunksOrdered fetches m's data chunks in order and hands each to
// got; index chunks are fetched (verified) and decoded on the way.
func (s *Service) walkChunksOrdered(ctx context.Context, blob Hash, m *Manifest, srcs *sources, got func(i int, data []byte) error) error {
	deliver := func(i int, _ Hash, data []byte) error { return got(i, data) }
	if !m.Indexed() {
		return s.fetchChunks(ctx, blob, m.Refs, 0, srcs, true, nil, deliver)
	}
	for x, ih := range m.Refs {
		var idx []byte
		if err := s.fetchChunks(ctx, blob, []Hash{ih}, 0, srcs, true, nil, func(_ int, _ Hash, data []byte) error {
			idx = data
			return nil
		}); err != nil {
			return fmt.Errorf("index chunk %d: %w", x, err)
		}
		refs, err := m.DecodeIndex(x, idx)
		if err != nil {
			return err
		}
		if err := s.fetchChunks(ctx, blob, refs, x*IndexChunkRefs, srcs, true, nil, deliver); err != nil {
			return err
		}
	}
	return nil
}

// getLocal streams a held blob from the store; a chunk that fails its hash
// (or went missing) is fetched from another holder, repaired here, and
// streamed.
func (s *Service) getLocal(ctx context.Context, rec *Record, w io.Writer, progress func(done, total int64)) error {
	var done int64
	total := int64(rec.Manifest.Size)
	progress(0, total)
	var buf []byte
	var remote *sources
	now := s.cfg.Now()
	return s.forEachChunkRepairing(ctx, rec, &remote, func(i int, h Hash) error {
		if i < 0 {
			return nil
		}
		b, err := s.store.ReadChunk(h, buf[:0])
		if err != nil {
			if b, err = s.repairChunk(ctx, rec.Hash, h, &remote); err != nil {
				return err
			}
		} else {
			buf = b
		}
		s.noteRead(now, rec.Hash, s.cfg.Self)
		if _, err := w.Write(b); err != nil {
			return fmt.Errorf("blob: write: %w", err)
		}
		done += int64(len(b))
		progress(done, total)
		return nil
	})
}

// forEachChunkRepairing is Store.ForEachChunk that repairs a corrupt index
// chunk first.
func (s *Service) forEachChunkRepairing(ctx context.Context, rec *Record, remote **sources, fn func(i int, h Hash) error) error {
	err := s.store.ForEachChunk(rec.Manifest, fn)
	if err == nil || !rec.Manifest.Indexed() || !(errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotFound)) {
		return err
	}
	for _, ih := range rec.Manifest.Refs {
		if _, rerr := s.store.ReadChunk(ih, nil); rerr != nil {
			if _, rerr = s.repairChunk(ctx, rec.Hash, ih, remote); rerr != nil {
				return rerr
			}
		}
	}
	return s.store.ForEachChunk(rec.Manifest, fn)
}

// repairChunk fetches chunk h of blob from the other holders (found once
// per call site, *remote) and writes it back here.
func (s *Service) repairChunk(ctx context.Context, blob, h Hash, remote **sources) ([]byte, error) {
	if *remote == nil {
		hs, _ := s.locate(ctx, blob)
		*remote = s.newSources(holdersOf(hs), nil)
	}
	var data []byte
	err := s.fetchChunks(ctx, blob, []Hash{h}, 0, *remote, true, nil, func(_ int, _ Hash, b []byte) error {
		data = b
		return nil
	})
	if err != nil {
		s.fetchFailures.Add(1)
		return nil, fmt.Errorf("blob: repair chunk %s of %s: %w", h.Short(), blob.Short(), err)
	}
	if ok, _ := s.store.HasChunk(h); ok {
		err = s.store.RepairChunk(ctx, h, data)
	} else {
		_, err = s.store.PutChunk(ctx, blob, data, h)
	}
	if err != nil {
		return nil, err
	}
	s.repaired.Add(1)
	s.corruptMu.Lock()
	delete(s.corrupt, h)
	s.corruptMu.Unlock()
	return data, nil
}

// Stat asks the datafort nodes about blob h.
func (s *Service) Stat(ctx context.Context, h Hash) (api.BlobInfo, error) {
	hs, newest := s.locate(ctx, h)
	holders := holdersOf(hs)
	if len(holders) == 0 && (newest == nil || !newest.Removed) {
		if len(hs) > 0 { // being fetched only
			return s.infoFrom(h, nil, newest, nil, hs), nil
		}
		return api.BlobInfo{}, fmt.Errorf("%w: no node holds blob %s", ErrNotFound, h.Short())
	}
	var m *Manifest
	if rec, err := s.store.Record(h); err == nil {
		m = rec.Manifest
	} else if len(holders) > 0 {
		m, _, _ = s.fetchManifest(ctx, h, s.newSources(holders, nil))
	}
	info := s.infoFrom(h, m, newest, holders, hs)
	if rec, err := s.store.Record(h); err == nil {
		info.StoredAt = rec.StoredAt
	}
	return info, nil
}

// List asks every datafort node (and this one) for the blobs it holds,
// page by page, and merges the answers by hash.
func (s *Service) List(ctx context.Context) ([]api.BlobInfo, error) {
	byHash := map[Hash]*api.BlobInfo{}
	intents := map[Hash]*Intent{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, id := range s.locateCandidates(Hash{}) {
		wg.Add(1)
		go func(id identity.NodeID) {
			defer wg.Done()
			var after Hash
			for range MaxListPages {
				resp, err := s.request(ctx, id, &message{Type: msgListReq, Hash: after}, 0)
				if err != nil || resp.Status != StatusOK {
					return
				}
				mu.Lock()
				for _, e := range resp.Entries {
					in, err := s.checkIntent(id, e.Intent, e.Hash, false)
					if err != nil {
						continue
					}
					bi := byHash[e.Hash]
					if bi == nil {
						bi = &api.BlobInfo{Hash: api.BlobHash(e.Hash), Size: e.Size, Chunks: ChunkCount(e.Size), StoredAt: e.StoredAt}
						byHash[e.Hash] = bi
					}
					bi.Holders = append(bi.Holders, id)
					bi.Heat += e.Heat
					if bi.StoredAt.IsZero() || e.StoredAt.Before(bi.StoredAt) {
						bi.StoredAt = e.StoredAt
					}
					if in.Newer(intents[e.Hash]) {
						intents[e.Hash] = in
					}
				}
				mu.Unlock()
				if !resp.More || len(resp.Entries) == 0 {
					return
				}
				after = resp.Entries[len(resp.Entries)-1].Hash
			}
		}(id)
	}
	wg.Wait()
	out := make([]api.BlobInfo, 0, len(byHash))
	for h, bi := range byHash {
		applyIntent(bi, intents[h])
		slices.Sort(bi.Holders)
		out = append(out, *bi)
	}
	slices.SortFunc(out, func(a, b api.BlobInfo) int { return slices.Compare(a.Hash[:], b.Hash[:]) })
	return out, ctx.Err()
}

// SetIntent signs a new intent for blob h (change applied to the newest
// one the holders report) and sends it to every node that holds or is
// fetching the blob. It returns the blob's info under the new intent.
func (s *Service) SetIntent(ctx context.Context, h Hash, signer identity.Signer, change func(*Intent) error) (api.BlobInfo, error) {
	if signer == nil {
		return api.BlobInfo{}, fmt.Errorf("%w: an intent is signed by an operator key (--identity)", ErrPermission)
	}
	hs, newest := s.locate(ctx, h)
	if newest == nil {
		return api.BlobInfo{}, fmt.Errorf("%w: no node holds blob %s", ErrNotFound, h.Short())
	}
	if newest.Removed {
		return api.BlobInfo{}, fmt.Errorf("%w (%s)", ErrRemoved, h.Short())
	}
	next := *newest
	next.Sig = nil
	if err := change(&next); err != nil {
		return api.BlobInfo{}, err
	}
	// Later than every intent held, whatever this node's clock says.
	next.IssuedAt = s.cfg.Now()
	if !next.IssuedAt.After(newest.IssuedAt) {
		next.IssuedAt = newest.IssuedAt.Add(time.Millisecond)
	}
	if err := next.Sign(signer); err != nil {
		return api.BlobInfo{}, err
	}
	raw, err := next.Encode()
	if err != nil {
		return api.BlobInfo{}, err
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var took []identity.NodeID
	for _, hd := range hs {
		wg.Add(1)
		go func(id identity.NodeID) {
			defer wg.Done()
			resp, err := s.request(ctx, id, &message{Type: msgIntentReq, Intent: raw}, 0)
			if err == nil && resp.Status == StatusOK {
				mu.Lock()
				took = append(took, id)
				mu.Unlock()
			}
		}(hd.id)
	}
	wg.Wait()
	if len(took) == 0 {
		return api.BlobInfo{}, fmt.Errorf("%w: no holder of %s took the intent", ErrUnavailable, h.Short())
	}
	slices.Sort(took)
	info := s.infoFrom(h, nil, &next, holdersOf(hs), hs)
	return info, nil
}

// GC asks every datafort node (and this one) to collect garbage.
func (s *Service) GC(ctx context.Context) ([]api.BlobGC, error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var out []api.BlobGC
	for _, id := range s.locateCandidates(Hash{}) {
		wg.Add(1)
		go func(id identity.NodeID) {
			defer wg.Done()
			g := api.BlobGC{Node: id}
			resp, err := s.request(ctx, id, &message{Type: msgGCReq}, GCRequestTimeout)
			switch {
			case err != nil:
				g.Err = err.Error()
			case resp.Status != StatusOK:
				g.Err = resp.Status.String()
			default:
				g.ChunksKept, g.ChunksCollected, g.BytesCollected = resp.GC.ChunksKept, resp.GC.ChunksCollected, resp.GC.BytesCollected
			}
			mu.Lock()
			out = append(out, g)
			mu.Unlock()
		}(id)
	}
	wg.Wait()
	slices.SortFunc(out, func(a, b api.BlobGC) int { return cmp.Compare(a.Node, b.Node) })
	return out, ctx.Err()
}

func (s *Service) infoOf(rec *Record, holders []identity.NodeID) api.BlobInfo {
	bi := s.infoFrom(rec.Hash, rec.Manifest, rec.Intent, holders, nil)
	bi.StoredAt = rec.StoredAt
	return bi
}

func (s *Service) infoFrom(h Hash, m *Manifest, in *Intent, holders []identity.NodeID, hs []holder) api.BlobInfo {
	bi := api.BlobInfo{Hash: api.BlobHash(h), Holders: slices.Clone(holders)}
	slices.Sort(bi.Holders)
	if m != nil {
		bi.Size, bi.Chunks = m.Size, m.Chunks()
	}
	for _, hd := range hs {
		switch hd.status {
		case StatusOK:
			bi.Copies = append(bi.Copies, api.BlobCopy{Node: hd.id, Role: hd.role.String(), Stored: hd.stored, Total: hd.total, Heat: hd.heat})
		case StatusFetching:
			bi.Copies = append(bi.Copies, api.BlobCopy{Node: hd.id, Fetching: true, Stored: hd.stored, Total: hd.total})
		}
		switch hd.status {
		case StatusOK:
			bi.Heat += hd.heat
			if m == nil {
				bi.Size, bi.Chunks = hd.total, ChunkCount(hd.total)
			}
		case StatusFetching:
			bi.Fetching = append(bi.Fetching, hd.id)
		}
	}
	applyIntent(&bi, in)
	return bi
}

func applyIntent(bi *api.BlobInfo, in *Intent) {
	if in == nil {
		return
	}
	bi.Replicas, bi.Pinned, bi.Removed = in.Replicas, in.Pinned, in.Removed
	bi.Name, bi.Parent, bi.Operator, bi.IssuedAt = in.Name, api.BlobHash(in.Parent), in.Operator, in.IssuedAt
}
