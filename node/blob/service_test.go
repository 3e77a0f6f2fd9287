package blob

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/nodetest"
	"github.com/deck-mesh/deck/node/snapshot"
)

func putOpts(replicas int) api.BlobPutOptions {
	return api.BlobPutOptions{Replicas: replicas, Name: "test.bin"}
}

// A put from a node that is no datafort (a console) lands on the datafort
// nodes and leaves nothing behind; any node reads it back, identical.
func TestServicePutFromConsoleGetAnywhere(t *testing.T) {
	r := newRig(t, 4, rigOpts{datafort: []bool{false, true, true, true}})
	data := randomBytes(42, 3*ChunkBytes+1234)
	h := r.put(0, data, 2)
	if got := r.holders(h); len(got) != 2 || slices.Contains(got, r.ids[0]) {
		t.Fatalf("holders %v", got)
	}
	for i := range 4 {
		var out bytes.Buffer
		info, err := r.svc(i).Get(context.Background(), h, &out, nil)
		if err != nil {
			t.Fatalf("get through %d: %v", i, err)
		}
		if !bytes.Equal(out.Bytes(), data) || info.Size != uint64(len(data)) || info.Replicas != 2 || info.Name != "test.bin" {
			t.Fatalf("get through %d: %d bytes, info %+v", i, out.Len(), info)
		}
	}
	st, err := r.svc(0).Stat(context.Background(), h)
	if err != nil || len(st.Holders) != 2 || st.Chunks != 4 {
		t.Fatalf("stat: %+v, %v", st, err)
	}
	if u := r.svc(0).store.Usage(); u.Chunks != 0 {
		t.Fatalf("the console kept %d chunks", u.Chunks)
	}
}

func TestServicePinUnpinRemove(t *testing.T) {
	r := newRig(t, 3, rigOpts{})
	ctx := context.Background()
	h := r.put(0, randomBytes(7, 1000), 2)
	info, err := r.svc(1).SetIntent(ctx, h, r.op, func(in *Intent) error { in.Pinned = true; return nil })
	if err != nil || !info.Pinned {
		t.Fatalf("pin: %+v, %v", info, err)
	}
	nodetest.Eventually(t, "every holder pinned", func() bool {
		for _, id := range r.holders(h) {
			rec, _ := r.svcs[id].store.Record(h)
			if rec == nil || !rec.Intent.Pinned {
				return false
			}
		}
		return true
	})
	list, err := r.svc(2).List(ctx)
	if err != nil || len(list) != 1 || !list[0].Pinned || len(list[0].Holders) != 2 {
		t.Fatalf("list: %+v, %v", list, err)
	}
	if _, err := r.svc(0).SetIntent(ctx, h, r.op, func(in *Intent) error {
		in.Removed, in.Pinned, in.Replicas = true, false, 0
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, "removed everywhere", func() bool { return len(r.holders(h)) == 0 })
	if _, err := r.svc(2).Get(ctx, h, &bytes.Buffer{}, nil); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("get after removal: %v", err)
	}
	gcs, err := r.svc(0).GC(ctx)
	if err != nil || len(gcs) != 3 {
		t.Fatalf("gc: %+v, %v", gcs, err)
	}
	for _, g := range gcs {
		if g.Err != "" {
			t.Fatalf("gc on %s: %s", g.Node, g.Err)
		}
	}
	for _, id := range r.ids {
		if u := r.svcs[id].store.Usage(); u.Chunks != 0 {
			t.Fatalf("%s kept %d chunks after removal and gc", id, u.Chunks)
		}
	}
}

// A fetch whose nearest holder goes away mid-blob carries on from another.
func TestServiceFetchContinuesWhenAHolderGoes(t *testing.T) {
	r := newRig(t, 4, rigOpts{datafort: []bool{true, true, true, false}})
	data := randomBytes(9, 40*ChunkBytes)
	h := r.put(0, data, 3)
	reader := r.svc(3)
	var out bytes.Buffer
	killed := false
	w := writerFunc(func(p []byte) (int, error) {
		if !killed && out.Len() >= 8*ChunkBytes {
			killed = true
			r.hub.SetDown(r.ids[0], true)
			r.hub.SetDown(r.ids[1], true)
		}
		return out.Write(p)
	})
	if _, err := reader.Get(context.Background(), h, w, nil); err != nil {
		t.Fatalf("get: %v", err)
	}
	if !killed || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("killed %v, %d bytes, identical %v", killed, out.Len(), bytes.Equal(out.Bytes(), data))
	}
	if r.svc(0).Stats().BytesOut == 0 && r.svc(1).Stats().BytesOut == 0 {
		t.Fatal("the holders taken down had served nothing: the test proves nothing")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// A chunk that rotted on one holder's disk is found when read, and the
// holder repairs it from another replica.
func TestServiceCorruptChunkRepairedFromAnotherReplica(t *testing.T) {
	r := newRig(t, 2, rigOpts{})
	data := randomBytes(11, 3*ChunkBytes)
	h := r.put(0, data, 2)
	s1 := r.svc(1)
	rec, err := s1.store.Record(h)
	if err != nil {
		t.Fatal(err)
	}
	c := rec.Manifest.Refs[1]
	good, _ := s1.store.ReadChunk(c, nil)
	bad := bytes.Clone(good)
	bad[77] ^= 1
	if err := s1.store.space.Write(context.Background(), []chain.BlobOp{{Key: key1(pfxChunk, c), Value: bad}}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := s1.Get(context.Background(), h, &out, nil); err != nil {
		t.Fatalf("get with a corrupt chunk: %v", err)
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Fatal("read back differs")
	}
	if st := s1.Stats(); st.Repaired != 1 || st.Store.Corrupt != 1 {
		t.Fatalf("repaired %d, corrupt %d", st.Repaired, st.Store.Corrupt)
	}
	if b, err := s1.store.ReadChunk(c, nil); err != nil || !bytes.Equal(b, good) {
		t.Fatalf("chunk after repair: %v", err)
	}
}

// When a holder dies, the remaining one has a third node fetch the blob;
// when a holder drains, its replica moves and it drops it.
func TestServiceReReplicatesAndDrains(t *testing.T) {
	r := newRig(t, 4, rigOpts{timers: Timers{ReconcileInterval: 50 * time.Millisecond}})
	h := r.put(0, randomBytes(13, 5*ChunkBytes), 2)
	first := r.holders(h)
	if len(first) != 2 {
		t.Fatalf("holders %v", first)
	}
	// A holder dies: the view shows it unreachable.
	dead := first[0]
	r.hub.SetDown(dead, true)
	r.setNode(dead, func(v *snapshot.NodeView) { v.Health = snapshot.Unreachable })
	nodetest.Eventually(t, "two live holders again", func() bool {
		n := 0
		for _, id := range r.holders(h) {
			if id != dead {
				n++
			}
		}
		return n == 2
	})
	// A live holder drains.
	live := slices.DeleteFunc(r.holders(h), func(id identity.NodeID) bool { return id == dead })
	r.setNode(live[0], func(v *snapshot.NodeView) { v.Maintenance.State = snapshot.MaintEntering })
	nodetest.Eventually(t, "the drained node's replica moved", func() bool {
		hs := r.holders(h)
		n := 0
		for _, id := range hs {
			if id != dead && id != live[0] {
				n++
			}
		}
		return !slices.Contains(hs, live[0]) && n == 2
	})
}

// A reader reading a blob hot draws a replica to itself (the datafort
// nearest it); once the reads stop and the heat decays, the surplus
// replica goes and the blob is back to its desired count.
func TestServiceGravityDrawsAHotBlobToItsReader(t *testing.T) {
	clk := nodetest.NewClock(time.Now())
	r := newRig(t, 3, rigOpts{timers: Timers{ReconcileInterval: 50 * time.Millisecond}, now: clk.Now})
	data := randomBytes(31, 8*ChunkBytes)
	h := r.put(0, data, 1)
	holder := r.holders(h)[0]
	reader := r.ids[slices.IndexFunc(r.ids, func(id identity.NodeID) bool { return id != holder })]
	for range 20 { // 160 chunk reads: ~2.7 reads/s of heat
		if _, err := r.svcs[reader].Get(context.Background(), h, &bytes.Buffer{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	nodetest.Eventually(t, "a gravity replica on the reader", func() bool {
		rec, err := r.svcs[reader].store.Record(h)
		return err == nil && rec.Role == RoleGravity
	})
	clk.Advance(10 * time.Minute) // the heat decays, the copy ages past GravityMinAge
	nodetest.Eventually(t, "one replica again", func() bool { return len(r.holders(h)) == 1 })
	var out bytes.Buffer
	if _, err := r.svc(2).Get(context.Background(), h, &out, nil); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("get after gravity: %v", err)
	}
}

// A datafort past its high-water mark pushes its coldest unpinned blobs to
// peers with room until it is under the low-water mark, and every blob
// keeps its replicas; a pinned one stays.
func TestServiceOverflowPushesColdestBlobsToPeers(t *testing.T) {
	const budget = 1_000_000 // 7 chunks are 92 %
	r := newRig(t, 3, rigOpts{budget: budget, timers: Timers{ReconcileInterval: 50 * time.Millisecond}})
	full := r.svc(0)
	ctx := context.Background()
	var hs []Hash
	for i := range 7 {
		st, err := full.store.Ingest(ctx, bytes.NewReader(randomBytes(uint64(40+i), ChunkBytes)), nil)
		if err != nil {
			t.Fatal(err)
		}
		in := &Intent{Blob: st.Hash, Replicas: 1, Pinned: i == 0, IssuedAt: time.Now()}
		if err := in.Sign(r.op); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Commit(ctx, in, RolePlaced); err != nil {
			t.Fatal(err)
		}
		hs = append(hs, st.Hash)
	}
	if full.Overflow() == snapshot.OverflowNone {
		t.Fatalf("usage %+v is not past the high-water mark", full.store.Usage())
	}
	r.setNode(r.ids[0], func(v *snapshot.NodeView) { v.Datafort.Overflow = snapshot.OverflowHigh })
	full.poke()
	nodetest.Eventually(t, "under the low-water mark", func() bool {
		u := full.store.Usage()
		return float64(u.Used) <= LowWaterFraction*float64(u.Budget)
	})
	moved := 0
	for i, h := range hs {
		holders := r.holders(h)
		if len(holders) == 0 {
			t.Fatalf("blob %d lost", i)
		}
		if !slices.Contains(holders, r.ids[0]) {
			moved++
			rec, _ := r.svcs[holders[0]].store.Record(h)
			if rec.Role != RoleOverflow {
				t.Fatalf("blob %d moved as %s", i, rec.Role)
			}
		}
	}
	if _, err := full.store.Record(hs[0]); err != nil {
		t.Fatal("the pinned blob was pushed away")
	}
	// 7 chunks are 917,504 bytes; one fewer is under 80 % (800,000).
	if moved != 1 {
		t.Fatalf("%d blobs moved; one brings the store under the low-water mark", moved)
	}
}

// A fully placed blob is not located at every round: its holders stop
// asking once they find it settled. A change of the view (a holder's
// health) brings it back the next round, and it is re-replicated.
func TestServiceSettledBlobSkipsRoundsUntilTheViewChanges(t *testing.T) {
	r := newRig(t, 4, rigOpts{timers: Timers{ReconcileInterval: 20 * time.Millisecond}})
	h := r.put(0, randomBytes(17, 2*ChunkBytes), 2)
	served := func() uint64 {
		var n uint64
		for _, id := range r.ids {
			n += r.svcs[id].Stats().Served
		}
		return n
	}
	nodetest.Eventually(t, "the holders find the blob settled", func() bool {
		for _, id := range r.holders(h) {
			s := r.svcs[id]
			s.settledMu.Lock()
			_, ok := s.settled[h]
			s.settledMu.Unlock()
			if !ok {
				return false
			}
		}
		return true
	})
	before := served()
	time.Sleep(25 * 20 * time.Millisecond) // 25 rounds
	if n := served() - before; n > 2*4 {   // at most a round's locates, in flight when it settled
		t.Fatalf("%d requests served in 25 rounds of a settled blob", n)
	}
	dead := r.holders(h)[0]
	r.hub.SetDown(dead, true)
	r.setNode(dead, func(v *snapshot.NodeView) { v.Health = snapshot.Unreachable })
	nodetest.Eventually(t, "re-replicated after the view changed", func() bool {
		n := 0
		for _, id := range r.holders(h) {
			if id != dead {
				n++
			}
		}
		return n == 2
	})
}
