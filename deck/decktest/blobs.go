package decktest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/blob"
	"github.com/deck-mesh/deck/node/clusterview"
	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/placement"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Byte sizes of the fixture's blobs and stores.
const (
	mib = uint64(1) << 20
	gib = uint64(1) << 30
)

// BlobHash is the fixture hash of a blob named name (the fixture holds no
// bytes for its seeded blobs, so their address is derived from the name).
func BlobHash(name string) api.BlobHash {
	return api.BlobHash(sha256.Sum256([]byte("deck-fixture-blob:" + name)))
}

// Blob names of the fixture: the tracer's checkpoints, each derived from
// the one before, the two tracer forks' rollouts derived from the fork
// point (ckpt-4821), the oracle's weights and an ingest segment.
const (
	BlobCkpt4500   = "tracer/ckpt-4500"
	BlobCkpt4821   = "tracer/ckpt-4821"
	BlobCkpt5100   = "tracer/ckpt-5100"
	BlobRollouts0  = "tracer-forks-0/rollouts-0007"
	BlobRollouts1  = "tracer-forks-1/rollouts-0003"
	BlobWeights    = "oracle/weights-v7"
	BlobSegment    = "ingest/segment-88000"
	fixtureBlobOps = "alice"
)

// fixtureBlob is one seeded blob: its intent and who holds it, in what role.
type fixtureBlob struct {
	name     string
	parent   string
	size     uint64
	replicas int
	pinned   bool
	stored   time.Duration // ago
	holders  []fixtureCopy
}

type fixtureCopy struct {
	node api.NodeID
	role snapshot.BlobRole
	heat float64
}

func fixtureBlobs() []fixtureBlob {
	placed := func(n api.NodeID, heat float64) fixtureCopy { return fixtureCopy{node: n, heat: heat} }
	return []fixtureBlob{
		{name: BlobCkpt4500, size: 2662 * mib, replicas: 2, pinned: true, stored: 3 * time.Hour,
			holders: []fixtureCopy{placed(Gibson, 0), placed(Wintermute, 0.1)}},
		{name: BlobCkpt4821, parent: BlobCkpt4500, size: 2662 * mib, replicas: 2, pinned: true, stored: 2*time.Hour + 10*time.Minute,
			holders: []fixtureCopy{placed(Wintermute, 1.8), placed(Straylight, 0.4)}},
		{name: BlobCkpt5100, parent: BlobCkpt4821, size: 2662 * mib, replicas: 2, stored: 41 * time.Minute,
			holders: []fixtureCopy{placed(Gibson, 0.2), placed(Wintermute, 0)}},
		{name: BlobRollouts0, parent: BlobCkpt4821, size: 310 * mib, replicas: 2, stored: 38 * time.Minute,
			holders: []fixtureCopy{placed(Gibson, 14.2), placed(Villa, 3.1), {node: Wintermute, role: snapshot.BlobGravity, heat: 22.6}}},
		{name: BlobRollouts1, parent: BlobCkpt4821, size: 176 * mib, replicas: 2, stored: 12 * time.Minute,
			holders: []fixtureCopy{placed(Wintermute, 0.6)}},
		{name: BlobWeights, size: 9318 * mib, replicas: 3, pinned: true, stored: 26 * time.Hour,
			holders: []fixtureCopy{placed(Gibson, 2.4), placed(Wintermute, 0.9), {node: Villa, role: snapshot.BlobOverflow, heat: 0.3}}},
		{name: BlobSegment, size: 48 * mib, replicas: 3, stored: 7 * time.Minute,
			holders: []fixtureCopy{placed(Straylight, 0.7), placed(Wintermute, 0.2)}},
	}
}

// fixtureDataforts are the datafort nodes' store telemetry: wintermute
// past its high-water mark, straylight draining (entering maintenance),
// zion drained, villa fetching a replica, freeside's last report before it
// went unreachable.
var fixtureDataforts = map[api.NodeID]snapshot.Datafort{
	Gibson: {Enabled: true, Capacity: 64 * gib, Used: 15*gib + 306*mib, ReadsPerSec: 131.4, WritesPerSec: 2.2,
		BytesInPerSec: 0.3 * float64(mib), BytesOutPerSec: 16.4 * float64(mib)},
	Wintermute: {Enabled: true, Capacity: 24 * gib, Used: 22*gib + 410*mib, ReadsPerSec: 203.9, WritesPerSec: 11.7,
		BytesInPerSec: 1.5 * float64(mib), BytesOutPerSec: 25.5 * float64(mib), Overflow: snapshot.OverflowHigh, Errors: 2, Repaired: 2},
	Straylight: {Enabled: true, Capacity: 32 * gib, Used: 2*gib + 662*mib, ReadsPerSec: 4.1, BytesOutPerSec: 41.2 * float64(mib), DrainLeft: 2},
	Freeside:   {Enabled: true, Capacity: 32 * gib, Used: 6*gib + 100*mib, Blobs: 3, ReadsPerSec: 0.4},
	Zion:       {Enabled: true, Capacity: 64 * gib},
	Villa: {Enabled: true, Capacity: 48 * gib, Used: 9*gib + 730*mib, ReadsPerSec: 43.3, WritesPerSec: 96.0,
		BytesInPerSec: 12.0 * float64(mib), BytesOutPerSec: 5.4 * float64(mib), Incoming: 1, Errors: 1},
}

// fixtureFetching are the replications in flight: villa fetching the
// second copy of tracer-forks-1's rollouts.
var fixtureFetching = map[string][]api.BlobCopy{
	BlobRollouts1: {{Node: Villa, Fetching: true, Stored: 71 * mib, Total: 176 * mib}},
}

// addDataforts gives the datafort nodes their telemetry and holdings, and
// the view its blobs, folded as the node's cluster view folds them.
func addDataforts(cs *snapshot.ClusterSnapshot) {
	for i := range cs.Nodes {
		n := &cs.Nodes[i]
		if d, ok := fixtureDataforts[n.ID]; ok {
			n.Datafort = d
		}
	}
	op := OperatorKey(fixtureBlobOps).ID
	for _, b := range fixtureBlobs() {
		for _, h := range b.holders {
			n := cs.Node(h.node)
			n.Blobs = append(n.Blobs, snapshot.BlobHolding{
				Hash: BlobHash(b.name), Size: b.size, Replicas: b.replicas, Role: h.role, Pinned: b.pinned, Heat: h.heat,
				Name: b.name, Parent: parentHash(b.parent), Operator: op, StoredAt: ago(b.stored),
			})
		}
	}
	for i := range cs.Nodes {
		n := &cs.Nodes[i]
		if n.Datafort.Enabled && n.Datafort.Blobs == 0 {
			n.Datafort.Blobs = uint64(len(n.Blobs))
		}
		if n.Datafort.Chunks == 0 {
			n.Datafort.Chunks = uint64(api.BlobChunks(n.Datafort.Used))
		}
	}
	foldFixtureBlobs(cs)
}

func parentHash(name string) [32]byte {
	if name == "" {
		return [32]byte{}
	}
	return BlobHash(name)
}

// foldFixtureBlobs rebuilds cs.Blobs from the nodes' holdings with the
// node's own fold: only fresh, reachable, non-console reports count.
func foldFixtureBlobs(cs *snapshot.ClusterSnapshot) {
	var holding []*snapshot.NodeSnapshot
	for i := range cs.Nodes {
		n := &cs.Nodes[i]
		if !n.Stale && !n.Observer && n.Health != snapshot.Unreachable {
			holding = append(holding, &n.NodeSnapshot)
		}
	}
	cs.Blobs = clusterview.FoldBlobs(holding)
}

var _ api.BlobClient = (*Client)(nil)

// Blobs is the fixture's datafort surface, shaped as node.Client's: intents
// (pin, unpin, replicas, remove) are "signed" by changing every holder's
// report of the blob and publishing the view again; Commit is the node's
// command.CommitBlob over the fixture's Preview. Put keeps bytes (at most
// MaxFixturePutBytes) in memory, addressed as the mesh addresses them, on
// the nodes placement picks; the seeded blobs have no bytes to Get.
func (c *Client) Blobs() api.Blobs { return blobSurface{c} }

type blobSurface struct{ c *Client }

// MaxFixturePutBytes bounds a Put into the fixture (it keeps the bytes).
const MaxFixturePutBytes = 16 << 20

func (f blobSurface) operator() error {
	if _, ok, why := f.c.Operator(); !ok {
		return fmt.Errorf("%w: %s", api.ErrPermission, why)
	}
	return nil
}

func (f blobSurface) Put(ctx context.Context, r io.Reader, o api.BlobPutOptions) (api.BlobInfo, error) {
	if err := f.operator(); err != nil {
		return api.BlobInfo{}, err
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxFixturePutBytes+1))
	if err != nil {
		return api.BlobInfo{}, err
	}
	if len(data) > MaxFixturePutBytes {
		return api.BlobInfo{}, fmt.Errorf("%w: the fixture keeps blobs in memory, at most %d bytes", api.ErrInvalid, MaxFixturePutBytes)
	}
	h := addressOf(data)
	replicas := o.Replicas
	if replicas == 0 {
		replicas = 2
	}
	f.c.mu.Lock()
	cs := cloneNodes(f.c.nodes)
	targets := placement.PlaceBlob(placement.HostingView(cs), h, uint64(len(data)), replicas, nil)
	for _, id := range targets {
		n := cs.Node(id)
		n.Blobs = append(n.Blobs, snapshot.BlobHolding{Hash: h, Size: uint64(len(data)), Replicas: replicas, Pinned: o.Pin,
			Name: o.Name, Parent: o.Parent, Operator: f.c.opKey.ID, StoredAt: f.c.clock()})
	}
	foldFixtureBlobs(cs)
	if f.c.blobBytes == nil {
		f.c.blobBytes = map[api.BlobHash][]byte{}
	}
	f.c.blobBytes[h] = data
	f.c.nodes = cs
	snap := f.c.publishLocked()
	f.c.mu.Unlock()
	f.c.notify(snap)
	return f.Stat(ctx, h)
}

// addressOf is data's blob hash as the mesh computes it: BLAKE3 of the
// manifest listing its chunks' BLAKE3 (node/blob).
func addressOf(data []byte) api.BlobHash {
	m := blob.Manifest{Size: uint64(len(data))}
	for off := 0; off < len(data); off += blob.ChunkBytes {
		m.Refs = append(m.Refs, blob.Sum(data[off:min(len(data), off+blob.ChunkBytes)]))
	}
	return api.BlobHash(m.Hash())
}

func (f blobSurface) Get(ctx context.Context, h api.BlobHash, w io.Writer, progress func(done, total int64)) (api.BlobInfo, error) {
	bi, err := f.Stat(ctx, h)
	if err != nil {
		return bi, err
	}
	f.c.mu.Lock()
	data, ok := f.c.blobBytes[h]
	f.c.mu.Unlock()
	if !ok {
		return bi, fmt.Errorf("%w: blob %s is fixture metadata without bytes", api.ErrNotFound, h.Short())
	}
	if _, err := io.Copy(w, bytes.NewReader(data)); err != nil {
		return bi, err
	}
	if progress != nil {
		progress(int64(len(data)), int64(len(data)))
	}
	return bi, nil
}

// info is the view's blob h as Stat answers it: each holder's report as a
// copy, and the replications in flight.
func info(cs *snapshot.ClusterSnapshot, b *snapshot.BlobView) api.BlobInfo {
	bi := api.BlobInfo{Hash: b.Hash, Size: b.Size, Chunks: api.BlobChunks(b.Size), Replicas: b.Replicas,
		Holders: slices.Clone(b.Holders), Heat: b.Heat, Pinned: b.Pinned, Name: b.Name, Parent: b.Parent,
		Operator: b.Operator, StoredAt: b.StoredAt}
	for _, id := range b.Holders {
		for _, h := range cs.Node(id).Blobs {
			if h.Hash == b.Hash {
				bi.Copies = append(bi.Copies, api.BlobCopy{Node: id, Role: h.Role.String(), Stored: h.Size, Total: h.Size, Heat: h.Heat})
			}
		}
	}
	for _, fc := range fixtureFetching[b.Name] {
		bi.Fetching = append(bi.Fetching, fc.Node)
		bi.Copies = append(bi.Copies, fc)
	}
	slices.SortFunc(bi.Copies, func(x, y api.BlobCopy) int { return cmp.Compare(x.Node, y.Node) })
	return bi
}

func (f blobSurface) Stat(ctx context.Context, h api.BlobHash) (api.BlobInfo, error) {
	if err := ctx.Err(); err != nil {
		return api.BlobInfo{}, err
	}
	cs := f.c.Snapshot()
	for i := range cs.Blobs {
		if cs.Blobs[i].Hash == h {
			return info(cs, &cs.Blobs[i]), nil
		}
	}
	return api.BlobInfo{}, fmt.Errorf("%w: no node holds blob %s", api.ErrNotFound, h.Short())
}

func (f blobSurface) List(ctx context.Context) ([]api.BlobInfo, error) {
	cs := f.c.Snapshot()
	out := make([]api.BlobInfo, 0, len(cs.Blobs))
	for i := range cs.Blobs {
		bi := info(cs, &cs.Blobs[i])
		bi.Copies = nil
		out = append(out, bi)
	}
	return out, ctx.Err()
}

// intent changes every holder's report of blob h, as a newly signed intent
// reaching them would, and publishes the view.
func (f blobSurface) intent(ctx context.Context, h api.BlobHash, change func(*snapshot.BlobHolding)) (api.BlobInfo, error) {
	if err := f.operator(); err != nil {
		return api.BlobInfo{}, err
	}
	f.c.mu.Lock()
	cs := cloneNodes(f.c.nodes)
	found := false
	for i := range cs.Nodes {
		n := &cs.Nodes[i]
		for j := range n.Blobs {
			if n.Blobs[j].Hash == h {
				change(&n.Blobs[j])
				n.Blobs[j].Operator = f.c.opKey.ID
				found = true
			}
		}
		n.Blobs = slices.DeleteFunc(n.Blobs, func(b snapshot.BlobHolding) bool { return b.Replicas == 0 })
	}
	if !found {
		f.c.mu.Unlock()
		return api.BlobInfo{}, fmt.Errorf("%w: no node holds blob %s", api.ErrNotFound, h.Short())
	}
	foldFixtureBlobs(cs)
	f.c.nodes = cs
	snap := f.c.publishLocked()
	f.c.blobIntents = append(f.c.blobIntents, h)
	f.c.mu.Unlock()
	f.c.notify(snap)
	bi, err := f.Stat(ctx, h)
	if errors.Is(err, api.ErrNotFound) {
		return api.BlobInfo{Hash: h, Removed: true}, nil // removed: no holder is left
	}
	return bi, err
}

func (f blobSurface) Pin(ctx context.Context, h api.BlobHash) (api.BlobInfo, error) {
	return f.intent(ctx, h, func(b *snapshot.BlobHolding) { b.Pinned = true })
}

func (f blobSurface) Unpin(ctx context.Context, h api.BlobHash) (api.BlobInfo, error) {
	return f.intent(ctx, h, func(b *snapshot.BlobHolding) { b.Pinned = false })
}

func (f blobSurface) SetReplicas(ctx context.Context, h api.BlobHash, n int) (api.BlobInfo, error) {
	if n < 1 || n > api.MaxBlobReplicas {
		return api.BlobInfo{}, fmt.Errorf("%w: replicas %d: want 1..%d", api.ErrInvalid, n, api.MaxBlobReplicas)
	}
	return f.intent(ctx, h, func(b *snapshot.BlobHolding) { b.Replicas = n })
}

func (f blobSurface) Remove(ctx context.Context, h api.BlobHash, force bool) error {
	if b := command.FindBlob(f.c.Snapshot(), h); b != nil && b.Pinned && !force {
		return fmt.Errorf("%w: blob %s is pinned: unpin it first, or remove with force", api.ErrInvalid, h.Short())
	}
	_, err := f.intent(ctx, h, func(b *snapshot.BlobHolding) { b.Replicas = 0 })
	return err
}

// GC answers for every datafort node in the view: the fixture keeps no
// unreferenced chunks, so each keeps what it has.
func (f blobSurface) GC(ctx context.Context) ([]api.BlobGC, error) {
	var out []api.BlobGC
	for _, n := range f.c.Snapshot().Nodes {
		if n.Datafort.Enabled && n.Health != snapshot.Unreachable {
			out = append(out, api.BlobGC{Node: n.ID, ChunksKept: n.Datafort.Chunks})
		}
	}
	return out, ctx.Err()
}

func (f blobSurface) Commit(ctx context.Context, confirmed api.BlastRadius) (api.BlobInfo, error) {
	return command.CommitBlob(ctx, confirmed, f.c.Preview, f)
}

// BlobIntents lists the blobs whose intent was changed through this
// client, in order.
func (c *Client) BlobIntents() []api.BlobHash {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.blobIntents)
}

// cloneNodes copies the nodes' side of the view deep enough to change the
// nodes' blob reports (published snapshots are immutable).
func cloneNodes(s *snapshot.ClusterSnapshot) *snapshot.ClusterSnapshot {
	cs := *s
	cs.Nodes = slices.Clone(s.Nodes)
	for i := range cs.Nodes {
		cs.Nodes[i].Blobs = slices.Clone(cs.Nodes[i].Blobs)
	}
	return &cs
}
