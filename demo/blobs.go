package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/deck-mesh/deck/demo/workloads"
	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/blob"
	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/meshos"
	"github.com/deck-mesh/deck/node/placement"
)

// The demo's dataforts (issue 14). The trainer's checkpoints and the
// forge's rollouts are real blobs (demo/workloads/blobs.go), stored through
// each node's own datafort surface signed by the demo's blob operator; the
// first datafort node runs on a tight budget, so its overflow to peers
// shows within a minute; and two faults act on a node's store:
//   - corrupt-chunk stops the node, flips one byte of one chunk in its
//     Badger through the blob keyspace (chain.BlobSpace, the accessor the
//     node's own repair test edits a closed node's store with), starts it
//     again and reads the blob through it: the read detects the chunk that
//     no longer hashes to its address and repairs it from another replica
//     (the node's Errors and Repaired counters, DATAFORTS). The node gains
//     no fault hook: the rot is made on disk, as bit rot would be, and
//     found by the node's own verification on read.
//   - fill-disk leaves the store no room: its budget drops to what it
//     holds (blob.Store.SetBudget, the runtime budget change a node's
//     operator has), so it overflows its coldest blobs onto peers and
//     takes no new replica, until heal (or a restart) gives it its budget
//     back.

// Blob bounds of the demo.
const (
	// TightBudgetBytes is the first datafort node's budget: two blobs.
	// Checkpoints (512 KiB × 2 replicas every 10 s) and two forks'
	// rollouts (256 KiB × 2 every 15 s) over the nine-node demo's three
	// dataforts land about 512 KiB on each every 10 s, and the workloads
	// keep about 2.75 MiB a datafort, so this one reaches its high-water
	// mark (90 %) within about a minute and stays around it, overflowing
	// its coldest blobs to its peers.
	TightBudgetBytes = 1 << 20
	// readThroughTimeout bounds corrupt-chunk's read after the restart:
	// the node must reach another holder to repair from.
	readThroughTimeout = 20 * time.Second
	readThroughRetry   = 500 * time.Millisecond
	// blobOperator signs the workloads' blob intents (a daemon that keeps
	// blobs needs an operator's word for them, as any putter does).
	blobOperator = "alice"
)

// chunkKeyPrefix and edgeKeyPrefix are node/blob's chunk and reference
// keys in the blob keyspace (ARCHITECTURE.md, Dataforts: `c` chunk bytes,
// `e` chunk‖owner edge).
const (
	chunkKeyPrefix = 'c'
	edgeKeyPrefix  = 'e'
)

// blobBudget is member i of n's datafort budget: tight for the first
// datafort node, the node default for the others (and for non-dataforts,
// whose store only stages their puts).
func blobBudget(i, n int) uint64 {
	for j := 0; j < n; j++ {
		if slices.Contains(workloads.NodeCapabilities(j, n), placement.CapabilityDatafort) {
			if j == i {
				return TightBudgetBytes
			}
			break
		}
	}
	return blob.DefaultBudgetBytes
}

// memberBlobs is a member node's datafort surface, signing as the demo's
// blob operator: what its daemons keep their blobs through. Nil until the
// node is up.
type memberBlobs struct{ b atomic.Pointer[api.Blobs] }

func (m *memberBlobs) get() api.Blobs {
	if p := m.b.Load(); p != nil {
		return *p
	}
	return nil
}

// bind points m at nd's datafort surface, signed by op.
func (m *memberBlobs) bind(nd *node.Node, op *identity.Key) error {
	cl, err := nd.NewClient(identity.KeySigner{K: op}, blobOperator)
	if err != nil {
		return fmt.Errorf("demo: blob client: %w", err)
	}
	b := cl.Blobs()
	m.b.Store(&b)
	return nil
}

// workloadFactories are the demo daemons keeping their blobs through b.
func workloadFactories(b *memberBlobs) map[string]meshos.Factory {
	o := workloads.DefaultOptions()
	o.Blobs = b.get
	f, err := workloads.FactoriesWith(o)
	if err != nil {
		// DefaultOptions are valid: a failure here is a bug in them.
		panic(fmt.Sprintf("demo: workload factories: %v", err))
	}
	return f
}

// loadBlobOperator reads the blob operator's key from the demo's state
// dir (a --procs child).
func loadBlobOperator(stateDir string) (*identity.Key, error) {
	store := &config.OperatorStore{Dir: filepath.Join(stateDir, "operators")}
	return store.Load(blobOperator)
}

// corruptTarget picks a blob m holds that another datafort also holds (so
// the chunk can be repaired), the hottest first.
func (d *Demo) corruptTarget(m *member) (api.BlobHash, error) {
	obs, _ := d.observer()
	if obs == nil {
		return api.BlobHash{}, fmt.Errorf("%w: no node running", api.ErrInvalid)
	}
	var best *api.BlobHash
	bestHeat := -1.0
	for _, b := range obs.Cluster().Blobs {
		if b.Held() >= 2 && slices.Contains(b.Holders, m.key.ID) && b.Heat > bestHeat {
			h := api.BlobHash(b.Hash)
			best, bestHeat = &h, b.Heat
		}
	}
	if best == nil {
		return api.BlobHash{}, fmt.Errorf("%w: %s holds no blob another datafort also holds (wait for the trainer's checkpoints)", api.ErrInvalid, m.label)
	}
	return *best, nil
}

// flipChunkByte flips one byte of one of blob's chunks in the closed
// store at dataDir, as bit rot would, and says which chunk.
func flipChunkByte(dataDir string, h api.BlobHash) (api.BlobHash, error) {
	db, err := chain.Open(chain.Config{Dir: filepath.Join(dataDir, "chain"), RetentionInterval: -1, ValueLogGCInterval: -1})
	if err != nil {
		return api.BlobHash{}, err
	}
	defer db.Close()
	bs := db.BlobSpace()
	var chunk []byte
	// Edges are 'e' chunk owner: find one whose owner is the blob.
	err = bs.Scan([]byte{edgeKeyPrefix}, nil, false, func(it chain.BlobItem) bool {
		if len(it.Key) == 1+2*len(h) && bytes.Equal(it.Key[1+len(h):], h[:]) {
			chunk = bytes.Clone(it.Key[1 : 1+len(h)])
			return false
		}
		return true
	})
	if err != nil {
		return api.BlobHash{}, err
	}
	if chunk == nil {
		return api.BlobHash{}, fmt.Errorf("%w: blob %s has no chunk on this disk", api.ErrNotFound, h.Short())
	}
	key := append([]byte{chunkKeyPrefix}, chunk...)
	val, err := bs.Get(key, nil)
	if err != nil {
		return api.BlobHash{}, err
	}
	val = bytes.Clone(val)
	val[len(val)/2] ^= 0x10
	if err := bs.Write(context.Background(), []chain.BlobOp{{Key: key, Value: val}}); err != nil {
		return api.BlobHash{}, err
	}
	return api.BlobHash(chunk), nil
}

// corruptChunk is the corrupt-chunk fault on m (see the package comment
// above).
func (d *Demo) corruptChunk(ctx context.Context, m *member) error {
	h, err := d.corruptTarget(m)
	if err != nil {
		return err
	}
	if err := d.stopMember(m); err != nil {
		return err
	}
	chunk, ferr := flipChunkByte(m.dataDir, h)
	// Start it again whatever the flip did: a fault never leaves a node
	// down that was up.
	if err := d.startMember(ctx, m); err != nil {
		return err
	}
	if ferr != nil {
		return fmt.Errorf("demo: corrupt a chunk on %s: %w", m.label, ferr)
	}
	d.opts.Logf("demo: %s: chunk %s of blob %s rotted on disk; reading the blob through it", m.label, chunk.Short(), h.Short())
	return d.readThrough(ctx, m, h)
}

// readThrough reads blob h through member m's own node (its local copy
// first, each chunk verified; a bad one is fetched from another holder and
// rewritten).
func (d *Demo) readThrough(ctx context.Context, m *member, h api.BlobHash) error {
	d.mu.Lock()
	proc := m.proc
	d.mu.Unlock()
	if proc != nil {
		proc.send(memberCommand{Op: "read-blob", Blob: h})
		return nil
	}
	b := m.blobs.get()
	if b == nil {
		return fmt.Errorf("%w: %s has no blob client", api.ErrInvalid, m.label)
	}
	// Just restarted: until it has sessions with the other holders, the
	// repair has nowhere to fetch from. Try again until it has.
	ctx, cancel := context.WithTimeout(ctx, readThroughTimeout)
	defer cancel()
	for {
		_, err := b.Get(ctx, h, io.Discard, nil)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("demo: read blob %s through %s: %w", h.Short(), m.label, err)
		case <-time.After(readThroughRetry):
		}
	}
}

// stopMember closes a running member (cleanly: its database is opened
// next) and marks it down.
func (d *Demo) stopMember(m *member) error {
	d.mu.Lock()
	nd, proc := m.node, m.proc
	m.node, m.faults, m.proc = nil, nil, nil
	d.mu.Unlock()
	m.blobs.b.Store(nil)
	switch {
	case proc != nil:
		return proc.close()
	case nd != nil:
		return nd.Close()
	}
	return fmt.Errorf("%w: %s is not running", api.ErrInvalid, m.label)
}

// fillDisk sets m's datafort budget: what it holds (full) or its own.
func (d *Demo) fillDisk(m *member, full bool) {
	d.mu.Lock()
	nd, proc := m.node, m.proc
	d.mu.Unlock()
	budget := blobBudget(m.idx, len(d.members))
	switch {
	case proc != nil:
		proc.send(memberCommand{Op: "budget", Full: full, Budget: budget})
	case nd != nil:
		setBudget(nd, full, budget)
	}
}

// setBudget gives nd's store budget, or (full) only the room it uses.
func setBudget(nd *node.Node, full bool, budget uint64) {
	st := nd.Blobs().Store()
	if full {
		budget = st.Usage().Used
	}
	st.SetBudget(budget)
}
