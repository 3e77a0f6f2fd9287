package blob

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"

	"lukechampine.com/blake3"
)

// BenchmarkChunkStoreVerify measures, per MiB, what a datafort spends on a
// chunk beside moving it, side by side with the limit: hashing the same
// bytes. Store is PutChunk (hash, budget check, one atomic write with its
// meta and reference edge, fsynced with the group commit); Read is
// ReadChunk (Badger read and verification); Hash is blake3.Sum256 alone.
func BenchmarkChunkStoreVerify(b *testing.B) {
	data := randomBytes(77, ChunkBytes)
	b.Run("Hash", func(b *testing.B) {
		b.SetBytes(ChunkBytes)
		for range b.N {
			blake3.Sum256(data)
		}
	})
	b.Run("Store", func(b *testing.B) {
		s, _ := testStore(b, 1<<40)
		var owner Hash
		owner[0] = 1
		base := randomBytes(78, ChunkBytes)
		b.SetBytes(ChunkBytes)
		b.ResetTimer()
		// IngestWindowChunks writers, as a put or a fetch runs them.
		sem := make(chan struct{}, IngestWindowChunks)
		done := make(chan error, b.N)
		for i := range b.N {
			sem <- struct{}{}
			go func(i int) {
				c := bytes.Clone(base) // a distinct chunk each time
				binary.BigEndian.PutUint64(c, uint64(i))
				_, err := s.PutChunk(context.Background(), owner, c, Hash{})
				<-sem
				done <- err
			}(i)
		}
		for range b.N {
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Read", func(b *testing.B) {
		s, _ := testStore(b, 1<<40)
		var owner Hash
		const n = 64
		hs := make([]Hash, n)
		for i := range hs {
			h, err := s.PutChunk(context.Background(), owner, randomBytes(uint64(i), ChunkBytes), Hash{})
			if err != nil {
				b.Fatal(err)
			}
			hs[i] = h
		}
		buf := make([]byte, 0, ChunkBytes)
		b.SetBytes(ChunkBytes)
		b.ResetTimer()
		for i := range b.N {
			var err error
			if buf, err = s.ReadChunk(hs[i%n], buf[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
