package blob

import (
	"cmp"
	"context"
	"encoding/binary"
	"hash/fnv"
	"slices"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/placement"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Overflow is where the store stands against its budget.
func (s *Service) Overflow() snapshot.OverflowState {
	u := s.store.Usage()
	switch {
	case u.Budget == 0 || u.Used >= u.Budget:
		return snapshot.OverflowFull
	case float64(u.Used) >= HighWaterFraction*float64(u.Budget):
		return snapshot.OverflowHigh
	}
	return snapshot.OverflowNone
}

// policyLoop runs a reconcile round every ReconcileInterval (sooner when
// poked: a corrupt chunk, an intent, a fetch done) and the GC every
// GCInterval.
func (s *Service) policyLoop(ctx context.Context) {
	tick := time.NewTicker(s.tm.ReconcileInterval)
	defer tick.Stop()
	gc := time.NewTicker(s.tm.GCInterval)
	defer gc.Stop()
	var cursor Hash
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.kick:
		case <-gc.C:
			s.runGC(ctx)
			continue
		}
		s.repairCorrupt(ctx)
		cursor = s.reconcile(ctx, cursor)
		if s.gcWanted.Swap(false) {
			s.runGC(ctx) // replicas were shed: free their chunks now
		}
	}
}

// runGC asks for a GC without waiting for it (see requestGC).
func (s *Service) runGC(ctx context.Context) { s.requestGC(ctx, false) }

// gcRun is one run of the store's GC and what it reported.
type gcRun struct {
	done    chan struct{} // closed when rep and err are set
	waiters int           // peers' requests answered by this run
	rep     GCReport
	err     error
}

// requestGC returns the run that will answer a request made now: the next
// run, which starts only when the current one ends. Requests made while a
// run is under way share that next run, so an answer always reflects
// what was removed before it was asked for (a GC that began before a
// removal reached this node would keep the removed blob's chunks), and a
// flood of requests costs one run more, not one each. A waiting peer
// request counts against MaxGCWaiters; past it the request is refused (nil).
func (s *Service) requestGC(ctx context.Context, wait bool) *gcRun {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	if s.gcNext == nil {
		s.gcNext = &gcRun{done: make(chan struct{})}
	}
	r := s.gcNext
	if wait {
		if r.waiters >= MaxGCWaiters {
			return nil
		}
		r.waiters++
	}
	if !s.gcRunning {
		s.gcRunning = true
		go s.gcLoop(ctx)
	}
	return r
}

// gcLoop runs the pending GC, then the one asked for meanwhile, until none
// is pending.
func (s *Service) gcLoop(ctx context.Context) {
	for {
		s.gcMu.Lock()
		r := s.gcNext
		s.gcNext = nil
		if r == nil {
			s.gcRunning = false
			s.gcMu.Unlock()
			return
		}
		s.gcMu.Unlock()
		r.rep, r.err = s.store.GC(ctx)
		if r.err != nil && ctx.Err() == nil {
			s.cfg.Logf("blob: gc: %v", r.err)
		}
		close(r.done)
	}
}

// repairCorrupt replaces chunks found corrupt on this disk with good bytes
// from another holder of a blob that references them.
func (s *Service) repairCorrupt(ctx context.Context) {
	s.corruptMu.Lock()
	var bad []Hash
	for h := range s.corrupt {
		bad = append(bad, h)
		if len(bad) == ReconcileBlobsPerRound {
			break
		}
	}
	s.corruptMu.Unlock()
	for _, c := range bad {
		owners, err := s.store.owners(c, 8)
		if err != nil {
			continue
		}
		for _, o := range owners {
			if _, err := s.store.Record(o); err != nil {
				continue
			}
			var remote *sources
			if _, err := s.repairChunk(ctx, o, c, &remote); err == nil {
				s.cfg.Logf("blob: repaired chunk %s of %s from another holder", c.Short(), o.Short())
				break
			}
		}
	}
}

// reconcile looks at up to ReconcileBlobsPerRound blobs held here, from
// cursor on, and returns where the next round starts.
func (s *Service) reconcile(ctx context.Context, cursor Hash) Hash {
	if !s.cfg.Datafort {
		return Hash{}
	}
	recs, next, err := s.store.Records(cursor, ReconcileBlobsPerRound)
	if err != nil {
		s.cfg.Logf("blob: reconcile: %v", err)
		return Hash{}
	}
	cs := s.cfg.View()
	// Past the high-water mark: the coldest unpinned blobs, enough of them
	// to bring the store under the low-water mark, go to peers with room.
	var toFree int64
	if s.Overflow() != snapshot.OverflowNone {
		u := s.store.Usage()
		toFree = int64(u.Used) - int64(LowWaterFraction*float64(u.Budget))
		now := s.cfg.Now()
		slices.SortStableFunc(recs, func(a, b *Record) int { return cmp.Compare(s.heat.of(now, a.Hash), s.heat.of(now, b.Hash)) })
	}
	draining := s.cfg.Draining()
	now := s.cfg.Now()
	view := placementFingerprint(cs)
	for _, rec := range recs {
		if ctx.Err() != nil {
			return cursor
		}
		evict := toFree > 0 && !rec.Intent.Pinned
		if evict {
			toFree -= int64(rec.Size)
		}
		if !evict && !draining && s.settledStill(rec, now, view) {
			continue
		}
		if s.reconcileBlob(ctx, cs, rec, evict, draining) {
			s.noteSettled(rec, now, view)
		}
	}
	return next
}

// settledBlob is a blob whose last policy step found nothing to do: its
// holders were its targets, none fetching, no hot reader elsewhere.
type settledBlob struct {
	until  time.Time // recheck anyway after this (SettledRecheckInterval)
	view   uint64    // placementFingerprint when it was found settled
	intent string    // the intent's signature then
}

// settledStill says whether rec can skip this round: it was found settled
// under the same placement inputs and the same intent, not long ago, and
// no reader reads it hot. A change of membership, health, drain or
// overflow anywhere changes the fingerprint and brings every blob back; a
// new intent here (a pin) changes the signature. What neither shows (a
// holder losing its copy without its health changing) is found at the
// recheck. Locating every blob at every datafort each round was the idle
// mesh's largest blob cost.
func (s *Service) settledStill(rec *Record, now time.Time, view uint64) bool {
	s.settledMu.Lock()
	defer s.settledMu.Unlock()
	st, ok := s.settled[rec.Hash]
	if !ok {
		return false
	}
	if now.After(st.until) || st.view != view || st.intent != string(rec.Intent.Sig) || s.hotElsewhere(now, rec.Hash) {
		delete(s.settled, rec.Hash)
		return false
	}
	return true
}

// hotElsewhere says whether some reader reads h hot enough for gravity to
// draw it a copy.
func (s *Service) hotElsewhere(now time.Time, h Hash) bool {
	return len(s.heat.readers(now, h, GravityHotReadsPerSecond)) > 0
}

func (s *Service) noteSettled(rec *Record, now time.Time, view uint64) {
	s.settledMu.Lock()
	defer s.settledMu.Unlock()
	if len(s.settled) >= MaxSettledBlobs {
		clear(s.settled)
	}
	s.settled[rec.Hash] = settledBlob{until: now.Add(s.tm.SettledRecheckInterval), view: view, intent: string(rec.Intent.Sig)}
}

// placementFingerprint digests what placement.PlaceBlob reads of the view
// for a blob that is already fully placed: each datafort candidate, whether
// it may keep a copy and whether it may take one.
func placementFingerprint(cs *snapshot.ClusterSnapshot) uint64 {
	f := fnv.New64a()
	var b [10]byte
	for _, c := range placement.BlobCandidates(cs, Hash{}, 0) {
		binary.LittleEndian.PutUint64(b[:8], uint64(c.ID))
		b[8], b[9] = boolByte(c.Keep), boolByte(c.Host)
		f.Write(b[:])
	}
	return f.Sum64()
}

// sameMembers says whether a and b hold the same ids, in any order.
func sameMembers(a, b []identity.NodeID) bool {
	if len(a) != len(b) {
		return false
	}
	for _, id := range a {
		if !slices.Contains(b, id) {
			return false
		}
	}
	return true
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// reconcileBlob is one blob's policy step, run by each of its holders:
//
//   - the holders are found (every datafort node asked) and the newest
//     intent any of them holds is taken (a pin, a removal travels so);
//   - placement (placement.PlaceBlob, the same code as daemons and chains)
//     says who should hold it; the coordinator (the first holder in the
//     blob's rendezvous order) asks each missing target to fetch it, from
//     the holders: re-replication after a holder died or drains;
//   - a holder that placement no longer wants (draining, over-replicated,
//     overflowing) drops its copy once every target holds it;
//   - a reader reading it hot draws a gravity replica to the datafort
//     nearest that reader; a gravity replica gone cold is shed.
//
// It reports whether the blob is settled: nothing was to be done.
func (s *Service) reconcileBlob(ctx context.Context, cs *snapshot.ClusterSnapshot, rec *Record, evict, draining bool) bool {
	h := rec.Hash
	hs, newest := s.locate(ctx, h)
	if newest != nil && newest.Newer(rec.Intent) {
		if newer, err := s.store.UpdateIntent(ctx, newest); err == nil && newer {
			if newest.Removed {
				s.heat.forget(h)
				s.gcWanted.Store(true)
				return false
			}
			rec.Intent = newest
		}
	}
	in := rec.Intent
	holders := holdersOf(hs)
	if !slices.Contains(holders, s.cfg.Self) {
		holders = append(holders, s.cfg.Self)
	}
	fetching := map[identity.NodeID]bool{}
	for _, hd := range hs {
		if hd.status == StatusFetching {
			fetching[hd.id] = true
		}
	}
	size := rec.Size
	// An evicting (overflowing) node plans as if it did not hold the blob,
	// so placement finds its replacement.
	planHolders, planView := holders, cs
	if evict {
		planHolders = slices.DeleteFunc(slices.Clone(holders), func(id identity.NodeID) bool { return id == s.cfg.Self })
		planView = overflowing(cs, s.cfg.Self)
	}
	targets := placement.PlaceBlob(planView, h, size, in.Replicas, planHolders)
	raw, err := in.Encode()
	if err != nil {
		return false
	}
	coordinator := s.coordinator(cs, h, holders)
	if coordinator == s.cfg.Self || evict || draining {
		for _, t := range targets {
			if t == s.cfg.Self || slices.Contains(holders, t) || fetching[t] {
				continue
			}
			role := RolePlaced
			if evict {
				role = RoleOverflow
			}
			s.askReplicate(ctx, t, h, role, raw, holders)
		}
	}
	settled := !evict && !draining && len(fetching) == 0 && sameMembers(holders, targets) && !s.hotElsewhere(s.cfg.Now(), h)
	s.gravity(ctx, cs, rec, raw, holders, fetching)
	if slices.Contains(targets, s.cfg.Self) && !evict {
		return settled
	}
	// Not wanted here: drop once every target holds it (and, for a copy
	// placed for its readers, once it went cold). A copy stored moments ago
	// waits ShedGrace: nodes whose views disagree for a moment (a drain
	// seen by one before another) would otherwise pass it back and forth.
	if !draining && !evict && s.cfg.Now().Sub(rec.StoredAt) < ShedGrace {
		return false
	}
	if rec.Role == RoleGravity && !draining && !evict {
		if s.heat.of(s.cfg.Now(), h) >= GravityColdReadsPerSecond || s.cfg.Now().Sub(rec.StoredAt) < GravityMinAge {
			return false
		}
	}
	holdingTargets := 0
	for _, t := range targets {
		if t != s.cfg.Self && slices.Contains(holders, t) {
			holdingTargets++
		}
	}
	if holdingTargets >= in.Replicas || (len(targets) > 0 && holdingTargets == len(targets) && holdingTargets >= in.Replicas) {
		if err := s.store.Drop(ctx, h); err == nil {
			s.heat.forget(h)
			s.shed.Add(1)
			s.gcWanted.Store(true)
			s.cfg.Logf("blob: %s shed (%s): %d holders elsewhere", h.Short(), rec.Role, holdingTargets)
		}
	}
	return false
}

// overflowing is cs with node id past its high-water mark, whatever its
// last snapshot said: an evicting node never places its blobs on itself.
func overflowing(cs *snapshot.ClusterSnapshot, id identity.NodeID) *snapshot.ClusterSnapshot {
	if cs == nil {
		return nil
	}
	cp := *cs
	cp.Nodes = slices.Clone(cs.Nodes)
	for i := range cp.Nodes {
		if cp.Nodes[i].ID == id {
			cp.Nodes[i].Datafort.Overflow = max(cp.Nodes[i].Datafort.Overflow, snapshot.OverflowHigh)
		}
	}
	return &cp
}

// coordinator is the holder that asks for missing replicas of h: the first
// holder, in the blob's rendezvous order, that may keep it; failing that
// the lowest id.
func (s *Service) coordinator(cs *snapshot.ClusterSnapshot, h Hash, holders []identity.NodeID) identity.NodeID {
	for _, c := range placement.BlobCandidates(cs, h, 0) {
		if c.Keep && slices.Contains(holders, c.ID) {
			return c.ID
		}
	}
	return slices.Min(holders)
}

func (s *Service) askReplicate(ctx context.Context, to identity.NodeID, h Hash, role Role, intent []byte, holders []identity.NodeID) {
	srcs := holders
	if len(srcs) > MaxSources {
		srcs = srcs[:MaxSources]
	}
	resp, err := s.request(ctx, to, &message{Type: msgReplicateReq, Hash: h, Role: role, Intent: intent, Sources: srcs}, 0)
	if err != nil {
		return
	}
	if resp.Status == StatusFetching || resp.Status == StatusOK {
		s.replicated.Add(1)
		s.cfg.Logf("blob: %s: %s: %s takes a %s replica (%s)", s.cfg.Self, h.Short(), to, role, resp.Status)
	}
}

// gravity draws a replica of a hot blob to the datafort nearest each hot
// reader that holds none (at most one new copy per blob per round).
func (s *Service) gravity(ctx context.Context, cs *snapshot.ClusterSnapshot, rec *Record, intent []byte, holders []identity.NodeID, fetching map[identity.NodeID]bool) {
	for _, r := range s.heat.readers(s.cfg.Now(), rec.Hash, GravityHotReadsPerSecond) {
		t := nearestDatafort(cs, r.node, rec.Size)
		if t == 0 || slices.Contains(holders, t) || fetching[t] {
			continue
		}
		s.askReplicate(ctx, t, rec.Hash, RoleGravity, intent, holders)
		return
	}
}

// nearestDatafort is reader itself when it is a datafort that may take the
// blob, else the host that reader's own snapshot shows nearest (lowest RTT).
func nearestDatafort(cs *snapshot.ClusterSnapshot, reader identity.NodeID, size uint64) identity.NodeID {
	hosts := map[identity.NodeID]bool{}
	for _, c := range placement.BlobCandidates(cs, [32]byte{}, size) {
		if c.Host {
			hosts[c.ID] = true
		}
	}
	if hosts[reader] {
		return reader
	}
	v := cs.Node(reader)
	if v == nil {
		return 0
	}
	var best identity.NodeID
	var bestRTT time.Duration
	for _, p := range v.Peers {
		if hosts[p.Peer] && p.Health == snapshot.Healthy && (best == 0 || p.RTT < bestRTT) {
			best, bestRTT = p.Peer, p.RTT
		}
	}
	return best
}

// Snapshot is what the node publishes about its datafort: telemetry and
// the blobs it holds (hottest first, then pinned, then newest; at most
// MaxBlobsPerSnapshot).
func (s *Service) Snapshot() (snapshot.Datafort, []snapshot.BlobHolding) {
	now := s.cfg.Now()
	u := s.store.Usage()
	st := s.store.Stats()
	d := snapshot.Datafort{
		Enabled: s.cfg.Datafort, Capacity: u.Budget, Used: u.Used, Chunks: u.Chunks,
		Overflow: s.Overflow(),
		Errors:   st.Corrupt + s.badChunks.Load() + s.fetchFailures.Load(),
		Repaired: s.repaired.Load(),
	}
	s.rateMu.Lock()
	d.ReadsPerSec, d.WritesPerSec = s.reads.value(now), s.writes.value(now)
	d.BytesInPerSec, d.BytesOutPerSec = s.bytesIn.value(now), s.bytesOut.value(now)
	s.rateMu.Unlock()
	s.jobMu.Lock()
	d.Incoming = len(s.jobs)
	s.jobMu.Unlock()
	draining := s.cfg.Draining()
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	if !s.snapAt.IsZero() && now.Sub(s.snapAt) < SnapshotBlobsRefresh && now.After(s.snapAt) {
		d.Blobs = s.snapHeld
		if draining {
			d.DrainLeft = int(d.Blobs)
		}
		return d, s.snapBlobs
	}
	var all []snapshot.BlobHolding
	var after Hash
	for range MaxSnapshotScanPages {
		recs, next, err := s.store.Records(after, MaxListEntries)
		if err != nil {
			break
		}
		for _, rec := range recs {
			all = append(all, snapshot.BlobHolding{
				Hash: rec.Hash, Size: rec.Size, Replicas: rec.Intent.Replicas,
				Role: snapshot.BlobRole(rec.Role), Pinned: rec.Intent.Pinned, Heat: s.heat.of(now, rec.Hash),
				Name: rec.Intent.Name, Parent: rec.Intent.Parent, Operator: rec.Intent.Operator, StoredAt: rec.StoredAt,
			})
		}
		d.Blobs += uint64(len(recs))
		if next.IsZero() {
			break
		}
		after = next
	}
	slices.SortStableFunc(all, func(a, b snapshot.BlobHolding) int {
		if c := cmp.Compare(b.Heat, a.Heat); c != 0 {
			return c
		}
		if a.Pinned != b.Pinned {
			if a.Pinned {
				return -1
			}
			return 1
		}
		return b.StoredAt.Compare(a.StoredAt)
	})
	if len(all) > MaxBlobsPerSnapshot {
		all = all[:MaxBlobsPerSnapshot]
	}
	s.snapAt, s.snapHeld, s.snapBlobs = now, d.Blobs, all
	if draining {
		// Every replica a draining node holds must move.
		d.DrainLeft = int(d.Blobs)
	}
	return d, all
}
