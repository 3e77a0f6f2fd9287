package blob

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// IngestWindowChunks is how many chunks a local put hashes and writes at
// once: enough that the database's group commit shares one fsync among
// them, few enough that a put holds at most 2 MiB of the file in memory.
const IngestWindowChunks = 16

// Staged is a blob written to the store whose chunks are referenced by a
// staging id until it is committed under its hash (or abandoned, and the
// GC collects them).
type Staged struct {
	store    *Store
	staging  Hash
	Manifest *Manifest
	Hash     Hash
	done     bool
}

// Ingest reads r to its end into the store, chunk by chunk, and returns the
// staged blob: its manifest and hash. At most IngestWindowChunks chunks
// are in memory at once, whatever the blob's size; progress (may be nil)
// hears the bytes stored so far. The caller commits it under a signed
// intent (Commit) or abandons it (Abort).
func (s *Store) Ingest(ctx context.Context, r io.Reader, progress func(done int64)) (*Staged, error) {
	st := &Staged{store: s}
	if _, err := rand.Read(st.staging[:]); err != nil {
		return nil, fmt.Errorf("blob: staging id: %w", err)
	}
	s.Begin(st.staging)
	m, err := s.ingest(ctx, r, st.staging, progress)
	if err != nil {
		s.End(st.staging)
		return nil, err
	}
	st.Manifest, st.Hash = m, m.Hash()
	return st, nil
}

// Commit records the staged blob under in (signed, naming the blob) with
// role, and releases the staging references.
func (st *Staged) Commit(ctx context.Context, in *Intent, role Role) (*Record, error) {
	if st.done {
		return nil, fmt.Errorf("%w: staged blob already committed or abandoned", ErrInvalid)
	}
	st.done = true
	defer st.store.End(st.staging)
	rec := &Record{Hash: st.Hash, Manifest: st.Manifest, Intent: in, Role: role, StoredAt: st.store.now().UTC().Truncate(time.Millisecond)}
	if err := st.store.Commit(ctx, rec, st.staging); err != nil {
		return nil, err
	}
	return rec, nil
}

// Abort abandons the staged blob: its chunks go at the next GC unless a
// held blob shares them.
func (st *Staged) Abort() {
	if !st.done {
		st.done = true
		st.store.End(st.staging)
	}
}

// ingest is the chunking pipeline: the reader is read in order, each chunk
// hashed and written by a small pool, refs kept in order. Refs are kept
// for at most one index chunk's worth (IndexChunkRefs); once a blob
// outgrows that, each full group is written as an index chunk, so memory
// stays bounded for any size up to MaxBlobBytes.
func (s *Store) ingest(ctx context.Context, r io.Reader, owner Hash, progress func(int64)) (*Manifest, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
		stored   int64
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
		mu.Unlock()
	}
	failed := func() error {
		mu.Lock()
		defer mu.Unlock()
		return firstErr
	}
	pool := make(chan []byte, IngestWindowChunks)
	for range IngestWindowChunks {
		pool <- make([]byte, ChunkBytes)
	}
	group := make([]Hash, 0, IndexChunkRefs)
	var index []Hash
	var size uint64
	flushGroup := func() error {
		wg.Wait()
		if err := failed(); err != nil {
			return err
		}
		h, err := s.PutChunk(ctx, owner, EncodeIndex(group), Hash{})
		if err != nil {
			return err
		}
		index = append(index, h)
		group = group[:0]
		return nil
	}
	for {
		var buf []byte
		select {
		case buf = <-pool:
		case <-ctx.Done():
			wg.Wait()
			if err := failed(); err != nil {
				return nil, err
			}
			return nil, ctx.Err()
		}
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if size+uint64(n) > MaxBlobBytes {
				pool <- buf
				wg.Wait()
				return nil, fmt.Errorf("%w: blob exceeds %d bytes", ErrInvalid, MaxBlobBytes)
			}
			if len(group) == IndexChunkRefs {
				if err := flushGroup(); err != nil {
					return nil, err
				}
			}
			size += uint64(n)
			group = append(group, Hash{})
			// The group's array never grows (it is flushed at capacity),
			// so the slot's address is stable until wg.Wait.
			slot := &group[len(group)-1]
			wg.Add(1)
			go func(data []byte, slot *Hash) {
				defer wg.Done()
				defer func() { pool <- data[:ChunkBytes] }()
				h, err := s.PutChunk(ctx, owner, data, Hash{})
				if err != nil {
					fail(err)
					return
				}
				*slot = h // each slot written once, read after wg.Wait
				mu.Lock()
				stored += int64(len(data))
				done := stored
				mu.Unlock()
				if progress != nil {
					progress(done)
				}
			}(buf[:n], slot)
		} else {
			pool <- buf
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			wg.Wait()
			return nil, fmt.Errorf("blob: read: %w", rerr)
		}
	}
	wg.Wait()
	if err := failed(); err != nil {
		return nil, err
	}
	m := &Manifest{Size: size}
	if len(index) == 0 && len(group) <= InlineChunkRefs {
		m.Refs = append([]Hash(nil), group...)
	} else {
		if len(group) > 0 {
			if err := flushGroup(); err != nil {
				return nil, err
			}
		}
		m.Refs = index
	}
	if err := m.Check(); err != nil {
		return nil, err
	}
	return m, nil
}
