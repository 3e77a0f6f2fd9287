package workloads

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/meshos"
)

// The demo's daemons keep real blobs on the datafort nodes (Options.Blobs):
// the active trainer stores a checkpoint every CheckpointBlobEvery, each
// derived from the one before (its Parent), and keeps the newest
// CheckpointBlobsKept; each forge fork takes the newest checkpoint as its
// policy every PolicyUpdateEvery, its actors load the policy's weights
// every PolicyRefreshEvery (chunk reads of one blob, sustained: its heat,
// which draws a gravity replica near the fork), and it stores its rollouts
// every RolloutBlobEvery, derived from the policy checkpoint (so BLOBS
// shows a checkpoint and the rollouts of the forks started from it),
// keeping the newest RolloutBlobsKept. The I/O runs on each daemon's own
// blob worker, one job at a time, never on the simulation tick.
const (
	CheckpointBlobEvery = 10 * time.Second
	// The sizes are a demo's, not a trainer's: the weights reload is
	// sustained bulk traffic, and a quarter of the earlier 2 MiB kept the
	// idle nine-node demo within its CPU budget (BENCHMARKS.md, issue 12)
	// while four chunks read every 1.5 s still make the policy hot
	// (≥ api.BlobHotReadsPerSecond) and draw a gravity replica.
	CheckpointBlobBytes = 512 << 10
	CheckpointBlobsKept = 8
	PolicyUpdateEvery   = 45 * time.Second
	PolicyRefreshEvery  = 1500 * time.Millisecond
	RolloutBlobEvery    = 15 * time.Second
	RolloutBlobBytes    = 256 << 10
	RolloutBlobsKept    = 3
	// BlobReplicas is how many datafort nodes hold each of them.
	BlobReplicas = 2
	// BlobJobTimeout bounds one blob job (a put of a checkpoint, a read).
	BlobJobTimeout = time.Minute
	// CheckpointBlobPrefix names the trainer's checkpoint blobs
	// ("trainer/ckpt-000500").
	CheckpointBlobPrefix = "trainer/ckpt-"
)

// errBlobWorkerBusy: a job asked for while the daemon's blob worker still
// runs the previous one (kernels wait for their own jobs, so only a
// kernel's restore can do this).
var errBlobWorkerBusy = errors.New("blob worker busy with the previous job")

// blobJob is one piece of blob I/O a kernel asks for: run on the daemon's
// blob worker, then done with the daemon's lock held, as a tick is.
type blobJob struct {
	run  func(ctx context.Context, b api.Blobs) (api.BlobInfo, error)
	done func(e *env, info api.BlobInfo, err error)
}

// blob asks for j; false when the daemon has no blob store (its kernel
// then goes on without one).
func (e *env) blob(j blobJob) bool {
	if e.jobs == nil {
		return false
	}
	*e.jobs = append(*e.jobs, j)
	return true
}

// startBlobWorker starts the daemon's blob worker when it has a blob
// store, and returns its queue (nil: none).
func (d *daemon) startBlobWorker(ctx context.Context, log meshos.Logger) chan blobJob {
	if d.opts.Blobs == nil {
		return nil
	}
	jobs := make(chan blobJob, 1)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	d.mu.Lock()
	d.withBlobs, d.stopWorker = true, func() { cancel(); <-done }
	d.mu.Unlock()
	go func() {
		defer close(done)
		d.blobWorker(wctx, jobs, log)
	}()
	return jobs
}

// stopBlobWorker ends the worker (its job in flight is cancelled) and
// drops the jobs not started.
func (d *daemon) stopBlobWorker() {
	d.mu.Lock()
	stop := d.stopWorker
	d.withBlobs, d.stopWorker, d.pending = false, nil, nil
	d.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// blobWorker runs a daemon's blob jobs one at a time until ctx ends.
func (d *daemon) blobWorker(ctx context.Context, jobs chan blobJob, log meshos.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-jobs:
			var info api.BlobInfo
			err := errors.New("no blob store yet")
			if b := d.opts.Blobs(); b != nil {
				jctx, cancel := context.WithTimeout(ctx, BlobJobTimeout)
				info, err = j.run(jctx, b)
				cancel()
			}
			if ctx.Err() != nil {
				return
			}
			emit(log, d.call(0, func(e *env) { j.done(e, info, err) }))
			emit(log, d.dispatchBlobJobs(jobs)) // what done chained
		}
	}
}

// dispatchBlobJobs hands the jobs the last call asked for to the worker;
// one it cannot take is answered at once with errBlobWorkerBusy.
func (d *daemon) dispatchBlobJobs(jobs chan<- blobJob) []logLine {
	d.mu.Lock()
	pending := d.pending
	d.pending = nil
	d.mu.Unlock()
	var lines []logLine
	for _, j := range pending {
		select {
		case jobs <- j:
		default:
			lines = append(lines, d.call(0, func(e *env) { j.done(e, api.BlobInfo{}, errBlobWorkerBusy) })...)
		}
	}
	return lines
}

// blobBytes is deterministic content for a blob: seed's stream of n bytes
// (a checkpoint's weights, a batch of rollouts).
// Every bit of seed is in the key: a key that kept only some (it once
// kept two of its bytes) made every fork's rollouts of a batch, and
// checkpoints 256 steps apart, the same bytes: one blob under two names.
func blobBytes(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:8], seed)
	copy(key[8:], "deck-demo-blob")
	out := make([]byte, n)
	rand.NewChaCha8(key).Read(out)
	return out
}

// parseBlobHash reads a hash kept in a daemon's state ("" is none).
func parseBlobHash(s string) (api.BlobHash, error) {
	var h api.BlobHash
	if s == "" {
		return h, nil
	}
	if b, err := hex.DecodeString(s); err != nil || len(b) != len(h) {
		return h, fmt.Errorf("blob hash %q is not 64 hex digits", s)
	} else {
		copy(h[:], b)
	}
	return h, nil
}

// keepNewest appends h to kept and, past max, returns the oldest to remove.
func keepNewest(kept []string, h string, max int) (next []string, drop string) {
	kept = append(kept, h)
	if len(kept) > max {
		return kept[1:], kept[0]
	}
	return kept, ""
}

// removeBlobJob removes a blob the daemon no longer keeps (a pinned one is
// left alone: an operator pinned it).
func removeBlobJob(hexHash, what string) blobJob {
	return blobJob{
		run: func(ctx context.Context, b api.Blobs) (api.BlobInfo, error) {
			h, err := parseBlobHash(hexHash)
			if err != nil {
				return api.BlobInfo{}, err
			}
			return api.BlobInfo{Hash: h}, b.Remove(ctx, h, false)
		},
		done: func(e *env, info api.BlobInfo, err error) {
			switch {
			case errors.Is(err, api.ErrInvalid):
				e.logf(api.LevelInfo, "%s %s is pinned by an operator: kept", what, info.Hash.Short())
			case err != nil:
				e.logf(api.LevelWarn, "removing %s %s: %v", what, info.Hash.Short(), err)
			default:
				e.logf(api.LevelDebug, "removed %s %s (retention)", what, info.Hash.Short())
			}
		},
	}
}

// newestCheckpoint is the newest trainer checkpoint blob in list.
func newestCheckpoint(list []api.BlobInfo) (api.BlobInfo, bool) {
	var best api.BlobInfo
	ok := false
	for _, bi := range list {
		if !strings.HasPrefix(bi.Name, CheckpointBlobPrefix) || bi.Removed {
			continue
		}
		if !ok || bi.Name > best.Name || (bi.Name == best.Name && bi.StoredAt.After(best.StoredAt)) {
			best, ok = bi, true
		}
	}
	return best, ok
}

// readCheckpointJob loads the newest checkpoint (a policy refresh): every
// chunk read from its holders, verified.
func readCheckpointJob(done func(e *env, info api.BlobInfo, err error)) blobJob {
	return blobJob{
		run: func(ctx context.Context, b api.Blobs) (api.BlobInfo, error) {
			list, err := b.List(ctx)
			if err != nil && len(list) == 0 {
				return api.BlobInfo{}, err
			}
			ck, ok := newestCheckpoint(list)
			if !ok {
				return api.BlobInfo{}, errNoCheckpoint
			}
			return b.Get(ctx, ck.Hash, io.Discard, nil)
		},
		done: done,
	}
}

var errNoCheckpoint = errors.New("no trainer checkpoint on the dataforts yet")

// readBlobJob reads blob h (the actors loading the policy's weights).
func readBlobJob(h api.BlobHash, done func(e *env, info api.BlobInfo, err error)) blobJob {
	return blobJob{
		run: func(ctx context.Context, b api.Blobs) (api.BlobInfo, error) {
			return b.Get(ctx, h, io.Discard, nil)
		},
		done: done,
	}
}

// putJob stores data as a blob.
func putJob(data []byte, o api.BlobPutOptions, done func(e *env, info api.BlobInfo, err error)) blobJob {
	return blobJob{
		run: func(ctx context.Context, b api.Blobs) (api.BlobInfo, error) {
			return b.Put(ctx, bytes.NewReader(data), o)
		},
		done: done,
	}
}

// validKept checks a list of kept blob hashes restored from a state.
func validKept(kept []string, max int) error {
	if len(kept) > max {
		return fmt.Errorf("%d kept blobs, at most %d", len(kept), max)
	}
	for _, h := range kept {
		if _, err := parseBlobHash(h); err != nil {
			return err
		}
	}
	if slices.Contains(kept, "") {
		return errors.New("an empty kept blob hash")
	}
	return nil
}
