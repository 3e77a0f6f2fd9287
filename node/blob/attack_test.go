package blob

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/codec"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/identity/identitytest"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/nodetest"
	"github.com/deck-mesh/deck/node/ratelimit"
)

// TestAttackPeerServingWrongBytesIsRefused: a member holding a blob answers
// chunk requests with bytes that are not the chunk. The reader refuses
// every one (their hash is not the address), counts it, stops asking that
// member and gets the true bytes from another holder.
func TestAttackPeerServingWrongBytesIsRefused(t *testing.T) {
	r := newRig(t, 3, rigOpts{datafort: []bool{true, true, false}})
	data := randomBytes(21, 12*ChunkBytes)
	h := r.put(0, data, 2)
	evil := r.ids[1]
	evilNode := r.hub.Node(evil)
	var asked atomic.Int64
	evilNode.Handle(messaging.ChanBlob, func(from identity.NodeID, msg []byte) {
		m, err := decodeMessage(msg)
		if err != nil || m.Type != msgChunkReq {
			r.svcs[evil].Handle(from, msg) // an honest manifest, so it is asked
			return
		}
		asked.Add(1)
		resp := &message{Type: msgChunkResp, ReqID: m.ReqID, Status: StatusOK, Data: randomBytes(uint64(asked.Load()), ChunkBytes)}
		b, _ := resp.encode()
		go evilNode.Send(context.Background(), from, messaging.ChanBlob, b)
	})
	reader := r.svc(2)
	var out bytes.Buffer
	if _, err := reader.Get(context.Background(), h, &out, nil); err != nil {
		t.Fatalf("get: %v", err)
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Fatal("the reader delivered bytes a lying peer served")
	}
	if asked.Load() == 0 {
		t.Fatal("the lying peer was never asked: the test proves nothing")
	}
	if bad := reader.Stats().BadChunks; bad == 0 || int64(bad) > asked.Load() {
		t.Fatalf("bad chunks counted %d, lying answers %d", bad, asked.Load())
	}
	// Once caught, a liar is left: at most one window of requests went to it.
	if n := asked.Load(); n > FetchWindowPerSource {
		t.Fatalf("the lying peer was asked %d times", n)
	}
}

// TestAttackRequestFloodIsBudgetedPerPeer: a member floods a datafort with
// chunk requests. Its own queue fills and the rest are refused and counted
// on the read loop; an honest peer's request still finds room and is
// answered.
func TestAttackRequestFloodIsBudgetedPerPeer(t *testing.T) {
	r := newRig(t, 3, rigOpts{})
	h := r.put(0, randomBytes(22, 2*ChunkBytes), 1)
	target := r.svc(0)
	rec, err := target.store.Record(h)
	if err != nil {
		t.Fatalf("holder: %v", err)
	}
	flooder := r.ids[1]
	const flood = 5000
	req, _ := (&message{Type: msgChunkReq, ReqID: 1, Hash: rec.Manifest.Refs[0], Blob: h}).encode()
	for range flood {
		target.Handle(flooder, req)
	}
	if got := target.Stats().Throttled; got < flood-ServeMaxQueuedPerPeer-uint64(target.Stats().Served) {
		t.Fatalf("throttled %d of %d flooded requests", got, flood)
	}
	if room := target.queue.Room(flooder); room != ratelimit.KeyFull {
		t.Fatalf("the flooder's queue: %v", room)
	}
	if room := target.queue.Room(r.ids[2]); room != ratelimit.Queued {
		t.Fatalf("an honest peer finds the queue %v", room)
	}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.svc(2).Get(ctx, h, &out, nil); err != nil {
		t.Fatalf("honest get during the flood: %v", err)
	}
}

// TestAttackManifestClaimingHugeSizeIsRefused: a manifest claiming more
// than MaxBlobBytes is refused before anything is allocated for it, and a
// well-formed manifest of a blob larger than the node's budget (signed by
// an operator) is refused before a single chunk is asked for.
func TestAttackManifestClaimingHugeSizeIsRefused(t *testing.T) {
	huge := &Manifest{Size: MaxBlobBytes + 1}
	claim := append([]byte(manifestMagic), 0x80, 0x80, 0x08) // chunk size 128 KiB
	claim = appendUvarint(claim, huge.Size)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		if _, err := DecodeManifest(claim); !errors.Is(err, codec.ErrTooLarge) {
			t.Fatalf("a manifest claiming 1 TiB + 1: %v", err)
		}
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Fatalf("refusing a huge claim ten times allocated %d bytes", n)
	}

	r := newRig(t, 2, rigOpts{budget: 64 << 20})
	// A well-formed manifest of 1 TiB: 2048 index chunk refs, 64 KiB.
	m := &Manifest{Size: MaxBlobBytes, Refs: make([]Hash, MaxIndexChunks)}
	for i := range m.Refs {
		m.Refs[i][0], m.Refs[i][1] = byte(i), byte(i>>8)
	}
	h := m.Hash()
	in := &Intent{Blob: h, Replicas: 1, IssuedAt: time.Now()}
	if err := in.Sign(r.op); err != nil {
		t.Fatal(err)
	}
	source := r.ids[1]
	srcNode := r.hub.Node(source)
	var chunkAsks atomic.Int64
	srcNode.Handle(messaging.ChanBlob, func(from identity.NodeID, msg []byte) {
		q, err := decodeMessage(msg)
		if err != nil {
			return
		}
		var resp *message
		switch q.Type {
		case msgManifestReq:
			raw, _ := in.Encode()
			resp = &message{Type: msgManifestResp, ReqID: q.ReqID, Status: StatusOK, Data: m.Encode(), Intent: raw}
		case msgChunkReq:
			chunkAsks.Add(1)
			resp = &message{Type: msgChunkResp, ReqID: q.ReqID, Status: StatusNotFound}
		default:
			r.svcs[source].Handle(from, msg)
			return
		}
		b, _ := resp.encode()
		go srcNode.Send(context.Background(), from, messaging.ChanBlob, b)
	})
	victim := r.svc(0)
	raw, _ := in.Encode()
	resp, err := r.svc(1).request(context.Background(), r.ids[0], &message{Type: msgReplicateReq, Hash: h, Role: RolePlaced, Intent: raw}, 0)
	if err != nil || resp.Status != StatusFetching {
		t.Fatalf("replicate: %v %+v", err, resp)
	}
	waitJobs(t, victim)
	if n := chunkAsks.Load(); n != 0 {
		t.Fatalf("%d chunks asked for a blob beyond the budget", n)
	}
	if u := victim.store.Usage(); u.Chunks != 0 {
		t.Fatalf("victim stored %d chunks", u.Chunks)
	}
	if victim.Stats().FetchFailures != 1 {
		t.Fatal("the refused fetch was not counted")
	}
}

func appendUvarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func waitJobs(t *testing.T, s *Service) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s.jobMu.Lock()
		n := len(s.jobs)
		s.jobMu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("fetch still running")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAttackMemberWithoutOperatorKeyCannotStoreBlobs: a member (no operator
// key) asks a datafort to take a blob under an intent it signed itself, or
// under an operator's intent for another blob. Both are refused before
// anything is fetched.
func TestAttackMemberWithoutOperatorKeyCannotStoreBlobs(t *testing.T) {
	r := newRig(t, 2, rigOpts{})
	victim := r.svc(0)
	attacker := r.svc(1)
	st, err := attacker.store.Ingest(context.Background(), bytes.NewReader(randomBytes(23, 3*ChunkBytes)), nil)
	if err != nil {
		t.Fatal(err)
	}
	own := &Intent{Blob: st.Hash, Replicas: 1, IssuedAt: time.Now()}
	if err := own.Sign(identity.KeySigner{K: identitytest.Key(t, "blob-node-b")}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Commit(context.Background(), own, RolePlaced); err != nil {
		t.Fatal(err)
	}
	other := &Intent{Blob: Sum([]byte("another blob")), Replicas: 1, IssuedAt: time.Now()}
	if err := other.Sign(r.op); err != nil {
		t.Fatal(err)
	}
	for _, in := range []*Intent{own, other} {
		raw, _ := in.Encode()
		resp, err := attacker.request(context.Background(), r.ids[0], &message{Type: msgReplicateReq, Hash: st.Hash, Role: RolePlaced, Intent: raw}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != StatusRefused {
			t.Fatalf("intent of %s by %s: %s", in.Blob.Short(), in.Operator, resp.Status)
		}
	}
	waitJobs(t, victim)
	if victim.Stats().IntentsRefused != 2 || victim.Stats().Fetches != 0 || victim.store.Usage().Chunks != 0 {
		t.Fatalf("victim: %+v, usage %+v", victim.Stats(), victim.store.Usage())
	}
}

// TestAttackResponseFromAnotherPeerIsIgnored: while a node waits for a
// chunk from one peer, another member answers in its place (request ids
// are easy to guess). The forged answers are dropped and counted; the
// request ends with no answer.
func TestAttackResponseFromAnotherPeerIsIgnored(t *testing.T) {
	r := newRig(t, 3, rigOpts{})
	asker := r.svc(0)
	silent := r.ids[1]
	r.hub.Node(silent).Handle(messaging.ChanBlob, func(identity.NodeID, []byte) {})
	forger := r.hub.Node(r.ids[2])
	done := make(chan error, 1)
	go func() {
		_, err := asker.request(context.Background(), silent, &message{Type: msgChunkReq, Hash: Sum([]byte("x"))}, 2*time.Second)
		done <- err
	}()
	nodetest.Eventually(t, "the request is in flight", func() bool {
		asker.callMu.Lock()
		defer asker.callMu.Unlock()
		return len(asker.calls) == 1
	})
	for id := uint64(1); id <= 50; id++ {
		b, _ := (&message{Type: msgChunkResp, ReqID: id, Status: StatusOK, Data: []byte("forged")}).encode()
		asker.Handle(forger.Self(), b)
	}
	if err := <-done; !errors.Is(err, ErrTimeout) {
		t.Fatalf("request answered by a forger: %v", err)
	}
	if asker.Stats().Misattributed == 0 {
		t.Fatal("forged answers not counted")
	}
}

// TestAttackHeatCannotBeDrawnToAnotherBlob: reading a chunk "for" a blob it
// does not belong to warms nothing, so a member cannot fake gravity for a
// blob it never read.
func TestAttackHeatCannotBeDrawnToAnotherBlob(t *testing.T) {
	r := newRig(t, 2, rigOpts{})
	a := r.put(0, randomBytes(24, ChunkBytes), 1)
	b := r.put(0, randomBytes(25, ChunkBytes), 1)
	holder := r.svc(0)
	recA, err := holder.store.Record(a)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if _, err := r.svc(1).request(context.Background(), r.ids[0], &message{Type: msgChunkReq, Hash: recA.Manifest.Refs[0], Blob: b}, 0); err != nil {
			t.Fatal(err)
		}
	}
	now := holder.cfg.Now()
	if hb := holder.heat.of(now, b); hb != 0 {
		t.Fatalf("blob %s warmed to %v by reads of another's chunk", b.Short(), hb)
	}
	if ha := holder.heat.of(now, a); ha != 0 {
		t.Fatalf("blob %s warmed to %v by reads it was not named in", a.Short(), ha)
	}
}

// TestAttackGCRequestFloodCostsOneMoreRun: members flood a datafort with GC
// requests while a GC runs. The requests share the one run that starts
// after the current one (so each answer reflects what was removed before
// it was asked), at most MaxGCWaiters of them wait for it, and the rest
// are refused at once: the flood costs one run more, not one run each.
func TestAttackGCRequestFloodCostsOneMoreRun(t *testing.T) {
	r := newRig(t, 1, rigOpts{})
	target := r.svc(0)
	ctx := context.Background()
	target.store.gcMu.Lock() // the current run blocks inside the store
	first := target.requestGC(ctx, true)
	nodetest.Eventually(t, "the first run under way", func() bool {
		target.gcMu.Lock()
		defer target.gcMu.Unlock()
		return target.gcNext == nil
	})
	const flood = 10 * MaxGCWaiters
	var next *gcRun
	refused := 0
	for range flood {
		switch run := target.requestGC(ctx, true); {
		case run == nil:
			refused++
		case next == nil:
			next = run
		case run != next:
			t.Fatal("two requests made during one run were given different runs")
		}
	}
	if next == nil || next == first || refused != flood-MaxGCWaiters {
		t.Fatalf("refused %d of %d; next run %p, first %p", refused, flood, next, first)
	}
	target.store.gcMu.Unlock()
	for _, run := range []*gcRun{first, next} {
		select {
		case <-run.done:
		case <-time.After(10 * time.Second):
			t.Fatal("a GC run was never answered")
		}
		if run.err != nil {
			t.Fatal(run.err)
		}
	}
	if runs := target.store.Stats().GCRuns; runs != 2 {
		t.Fatalf("%d GC runs for a flood of %d requests, want 2", runs, flood+1)
	}
}

// TestAttackRememberedIntentIsRefusedAfterItsOperatorGoes: an intent whose
// signature was checked is remembered so the next round skips the check,
// but the memory is of (bytes, key): once the operator is removed from the
// registry the very same bytes are refused, and bytes with a flipped
// signature bit are checked afresh and refused.
func TestAttackRememberedIntentIsRefusedAfterItsOperatorGoes(t *testing.T) {
	r := newRig(t, 1, rigOpts{})
	s := r.svc(0)
	h := Sum([]byte("a blob"))
	in := &Intent{Blob: h, Replicas: 2, IssuedAt: time.Now().Add(-time.Second).Truncate(time.Millisecond)}
	if err := in.Sign(r.op); err != nil {
		t.Fatal(err)
	}
	raw, err := in.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // checked, then remembered
		if _, err := s.checkIntent(r.ids[0], raw, h, false); err != nil {
			t.Fatalf("a registered operator's intent: %v", err)
		}
	}
	forged := bytes.Clone(raw)
	forged[len(forged)-1] ^= 1
	if _, err := s.checkIntent(r.ids[0], forged, h, false); !errors.Is(err, ErrPermission) {
		t.Fatalf("an intent with a flipped signature bit: %v", err)
	}
	registered := s.cfg.Operator
	s.cfg.Operator = func(id identity.NodeID) (ed25519.PublicKey, bool) {
		if id == r.op.SignerID() {
			return nil, false // removed from the registry
		}
		return registered(id)
	}
	if _, err := s.checkIntent(r.ids[0], raw, h, false); !errors.Is(err, ErrPermission) {
		t.Fatalf("the remembered intent of a removed operator: %v", err)
	}
	// Re-keyed: the same id under another key does not inherit the memory.
	other := identitytest.Key(t, "another-operator-key")
	s.cfg.Operator = func(identity.NodeID) (ed25519.PublicKey, bool) { return other.Public, true }
	if _, err := s.checkIntent(r.ids[0], raw, h, false); !errors.Is(err, ErrPermission) {
		t.Fatalf("the remembered intent checked against another key: %v", err)
	}
}
