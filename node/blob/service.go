package blob

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/ratelimit"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Config configures a Service.
type Config struct {
	Self      identity.NodeID
	Messenger messaging.Messenger
	// Space is the node's blob keyspace.
	Space *chain.BlobSpace
	// Datafort: the node holds blobs for the mesh (capability "datafort").
	// Other nodes (consoles) keep only what they are putting.
	Datafort bool
	// Budget is the disk budget for chunks in bytes; 0: DefaultBudgetBytes
	// for a datafort, StagingBudgetBytes otherwise.
	Budget uint64
	// View is the node's latest cluster view: placement, who is a datafort,
	// the peers' health and RTT. Required.
	View func() *snapshot.ClusterSnapshot
	// Operator returns a registered operator's key; intents signed by
	// anyone else are refused. Required.
	Operator func(identity.NodeID) (ed25519.PublicKey, bool)
	// Draining reports whether this node is being drained (its blobs must
	// move); nil: never.
	Draining func() bool
	Now      func() time.Time
	Logf     func(format string, args ...any)
	Timers   Timers
}

// Timers override the defaults in limits.go (tests shrink them).
type Timers struct {
	RequestTimeout    time.Duration
	ChunkTimeoutMin   time.Duration
	ReconcileInterval time.Duration
	GCInterval        time.Duration
	// SettledRecheckInterval: how long a settled blob skips the policy's
	// rounds while nothing it depends on changes.
	SettledRecheckInterval time.Duration
}

func (t Timers) withDefaults() Timers {
	d := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	d(&t.RequestTimeout, DefaultRequestTimeout)
	d(&t.ChunkTimeoutMin, DefaultChunkTimeoutMin)
	d(&t.ReconcileInterval, DefaultReconcileInterval)
	d(&t.GCInterval, DefaultGCInterval)
	d(&t.SettledRecheckInterval, DefaultSettledRecheckInterval)
	return t
}

// Stats are the service's honest counters.
type Stats struct {
	Store StoreStats
	// Requests served, by outcome; Throttled were refused before they
	// were queued (a peer over its budget, or a full queue).
	Served, Throttled, Malformed uint64
	// BadChunks counts chunks peers served whose bytes did not match their
	// hash (each refused, the chunk asked of another holder).
	BadChunks uint64
	// Misattributed counts responses from a node the request did not go to.
	Misattributed uint64
	// IntentsRefused counts intents whose signature or operator failed.
	IntentsRefused uint64
	// Repaired counts corrupt local chunks replaced from another holder.
	Repaired uint64
	// Fetches started and failed (replications into this store).
	Fetches, FetchFailures uint64
	BytesIn, BytesOut      uint64
	// Replicated: replicas this node asked others to take (policy);
	// Shed: replicas it dropped once enough others held them.
	Replicated, Shed uint64
}

// Service is a node's datafort: its store, the ChanBlob server and client,
// and the placement policy. Start it with Run.
type Service struct {
	cfg   Config
	tm    Timers
	store *Store
	heat  *heat

	queue   *ratelimit.FairQueue[identity.NodeID, *message]
	intents *ratelimit.Table[identity.NodeID] // intent signature checks per peer

	callMu sync.Mutex
	nextID uint64
	calls  map[uint64]*call

	jobMu sync.Mutex
	jobs  map[Hash]*job

	// verified: intent bytes whose signature checked out, and the key
	// (verifiedBefore).
	// settled: blobs whose last policy step had nothing to do
	// (settledStill).
	settledMu sync.Mutex
	settled   map[Hash]settledBlob

	verifiedMu sync.Mutex
	verified   map[string]ed25519.PublicKey

	gcMu      sync.Mutex
	gcRunning bool        // gcLoop is under way
	gcNext    *gcRun      // the run that starts when the current one ends
	gcWanted  atomic.Bool // a replica was dropped: collect at the round's end

	// corrupt holds chunks found corrupt on this node's disk, for repair.
	corruptMu sync.Mutex
	corrupt   map[Hash]struct{}

	rateMu                           sync.Mutex
	reads, writes, bytesIn, bytesOut rate

	// The blobs last published (Snapshot), recomputed at most every
	// SnapshotBlobsRefresh: listing records is a scan.
	snapMu    sync.Mutex
	snapAt    time.Time
	snapHeld  uint64
	snapBlobs []snapshot.BlobHolding

	served, throttled, malformed, badChunks, misattributed atomic.Uint64
	intentsRefused, repaired, fetches, fetchFailures       atomic.Uint64
	bytesInN, bytesOutN, replicated, shed                  atomic.Uint64

	kick chan struct{} // wakes the policy loop
}

// job is a replication into this store in progress.
type job struct {
	stored, total atomic.Int64
	done          chan struct{}
	err           error // set before done closes
}

type call struct {
	to   identity.NodeID
	want msgType
	ch   chan *message
}

// New opens the store and prepares the service.
func New(cfg Config) (*Service, error) {
	if cfg.Messenger == nil || cfg.Space == nil || cfg.View == nil || cfg.Operator == nil {
		return nil, fmt.Errorf("%w: blob service needs a messenger, a keyspace, a view and the operator registry", ErrInvalid)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Draining == nil {
		cfg.Draining = func() bool { return false }
	}
	if cfg.Budget == 0 {
		cfg.Budget = StagingBudgetBytes
		if cfg.Datafort {
			cfg.Budget = DefaultBudgetBytes
		}
	}
	st, err := OpenStore(cfg.Space, cfg.Budget, cfg.Now)
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg: cfg, tm: cfg.Timers.withDefaults(), store: st, heat: newHeat(),
		queue: ratelimit.NewFairQueue[identity.NodeID, *message](ratelimit.FairQueueConfig{
			MaxPerKey: ServeMaxQueuedPerPeer, MaxTotal: ServeQueueLen,
			RequestsPerSecond: ServeRequestsPerSecondPerPeer, Burst: ServeRequestBurstPerPeer,
			CostPerSecond: ServeBytesPerSecondPerPeer, CostBurst: ServeByteBurstPerPeer,
			MaxKeys: ServeMaxPeers,
		}, cfg.Now),
		intents:  ratelimit.New[identity.NodeID](IntentChecksPerSecondPerPeer, IntentCheckBurstPerPeer, ServeMaxPeers),
		calls:    map[uint64]*call{},
		jobs:     map[Hash]*job{},
		verified: map[string]ed25519.PublicKey{},
		settled:  map[Hash]settledBlob{},
		corrupt:  map[Hash]struct{}{},
		kick:     make(chan struct{}, 1),
	}
	return s, nil
}

// Store is the service's store.
func (s *Service) Store() *Store { return s.store }

// Datafort reports whether the node holds blobs for the mesh.
func (s *Service) Datafort() bool { return s.cfg.Datafort }

// Run serves requests and runs the policy until ctx ends.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range ServeWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveLoop(ctx)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.policyLoop(ctx)
	}()
	wg.Wait()
}

// Handle is the ChanBlob handler. It runs on the transport's read loop:
// a response is decoded and handed to the call waiting for it; a request is
// queued for the workers under its sender's budget (refused and counted
// beyond it) — nothing here reads the disk or waits.
func (s *Service) Handle(from identity.NodeID, msg []byte) {
	if len(msg) == 0 {
		s.malformed.Add(1)
		return
	}
	if msgType(msg[0]).response() {
		s.deliver(from, msg)
		return
	}
	if s.queue.Room(from) != ratelimit.Queued {
		s.throttled.Add(1)
		return
	}
	m, err := decodeMessage(msg)
	if err != nil {
		s.malformed.Add(1)
		return
	}
	m.from = from
	if s.queue.Push(from, m) != ratelimit.Queued {
		s.throttled.Add(1)
	}
}

// deliver hands a response to its call: only from the node the request
// went to, only of the type it expects.
func (s *Service) deliver(from identity.NodeID, raw []byte) {
	m, err := decodeMessage(raw)
	if err != nil {
		s.malformed.Add(1)
		return
	}
	s.callMu.Lock()
	c := s.calls[m.ReqID]
	s.callMu.Unlock()
	if c == nil {
		return // late (timed out) or unsolicited: dropped
	}
	if c.to != from || c.want != m.Type {
		s.misattributed.Add(1)
		return
	}
	select {
	case c.ch <- m:
	default: // a duplicate
	}
}

// request sends req to node to and waits for its response (bounded by ctx
// and RequestTimeout).
func (s *Service) request(ctx context.Context, to identity.NodeID, req *message, timeout time.Duration) (*message, error) {
	if timeout <= 0 {
		timeout = s.tm.RequestTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &call{to: to, want: req.Type + 1, ch: make(chan *message, 1)}
	s.callMu.Lock()
	if len(s.calls) >= MaxCalls {
		s.callMu.Unlock()
		return nil, fmt.Errorf("blob: %d requests in flight", MaxCalls)
	}
	s.nextID++
	req.ReqID = s.nextID
	s.calls[req.ReqID] = c
	s.callMu.Unlock()
	defer func() {
		s.callMu.Lock()
		delete(s.calls, req.ReqID)
		s.callMu.Unlock()
	}()
	b, err := req.encode()
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Messenger.Send(ctx, to, messaging.ChanBlob, b); err != nil {
		return nil, err
	}
	select {
	case m := <-c.ch:
		return m, nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w: %s did not answer", ErrTimeout, to)
		}
		return nil, ctx.Err()
	}
}

// reply answers req's sender.
func (s *Service) reply(ctx context.Context, req *message, resp *message) {
	resp.Type, resp.ReqID = req.Type+1, req.ReqID
	b, err := resp.encode()
	if err != nil {
		s.cfg.Logf("blob: encode %d reply: %v", resp.Type, err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.tm.RequestTimeout)
	defer cancel()
	if err := s.cfg.Messenger.Send(ctx, req.from, messaging.ChanBlob, b); err == nil && resp.Type == msgChunkResp {
		n := uint64(len(resp.Data))
		s.bytesOutN.Add(n)
		s.rateMu.Lock()
		s.bytesOut.add(s.cfg.Now(), float64(n))
		s.rateMu.Unlock()
	}
}

// verifyIntent decodes an intent from a peer and checks it names blob, is
// not from the future, and is signed by a registered operator. from's
// budget of signature checks is spent first (refused beyond it).
func (s *Service) verifyIntent(from identity.NodeID, raw []byte, blob Hash) (*Intent, error) {
	return s.checkIntent(from, raw, blob, true)
}

// checkIntent is verifyIntent; budgeted false skips the per-peer budget
// for intents in answers to this node's own requests (bounded by them).
func (s *Service) checkIntent(from identity.NodeID, raw []byte, blob Hash, budgeted bool) (*Intent, error) {
	if budgeted && from != s.cfg.Self && !s.intents.Allow(from, s.cfg.Now()) {
		return nil, fmt.Errorf("%w: intent checks over budget for %s", ErrPermission, from)
	}
	in, err := DecodeIntent(raw)
	if err != nil {
		s.intentsRefused.Add(1)
		return nil, err
	}
	if in.Blob != blob {
		s.intentsRefused.Add(1)
		return nil, fmt.Errorf("%w: intent for %s, not %s", ErrInvalid, in.Blob.Short(), blob.Short())
	}
	if in.IssuedAt.After(s.cfg.Now().Add(IntentClockSkew)) {
		s.intentsRefused.Add(1)
		return nil, fmt.Errorf("%w: intent issued %v ahead", ErrInvalid, in.IssuedAt.Sub(s.cfg.Now()))
	}
	pub, ok := s.cfg.Operator(in.Operator)
	if !ok {
		s.intentsRefused.Add(1)
		return nil, fmt.Errorf("%w: %s is not a registered operator", ErrPermission, in.Operator)
	}
	if s.verifiedBefore(raw, pub) {
		return in, nil
	}
	if err := in.Verify(pub); err != nil {
		s.intentsRefused.Add(1)
		return nil, err
	}
	s.noteVerified(raw, pub)
	return in, nil
}

// verifiedBefore says whether these exact intent bytes were verified
// against this same operator key. Every holder answers every reconcile
// round's locate with the blob's intent, nearly always the one verified
// the round before: the signature check was the policy loop's largest
// cost. The rest of checkIntent (the blob, the clock, the operator still
// registered) still runs on every call.
func (s *Service) verifiedBefore(raw []byte, pub ed25519.PublicKey) bool {
	s.verifiedMu.Lock()
	defer s.verifiedMu.Unlock()
	k, ok := s.verified[string(raw)]
	return ok && k.Equal(pub)
}

func (s *Service) noteVerified(raw []byte, pub ed25519.PublicKey) {
	s.verifiedMu.Lock()
	defer s.verifiedMu.Unlock()
	if len(s.verified) >= MaxVerifiedIntents {
		clear(s.verified) // a new round refills it with the live ones
	}
	s.verified[string(raw)] = pub
}

func (s *Service) noteRead(now time.Time, blob Hash, reader identity.NodeID) {
	s.heat.read(now, blob, reader, 1)
	s.rateMu.Lock()
	s.reads.add(now, 1)
	s.rateMu.Unlock()
}

func (s *Service) noteWrite(n int) {
	now := s.cfg.Now()
	s.bytesInN.Add(uint64(n))
	s.rateMu.Lock()
	s.writes.add(now, 1)
	s.bytesIn.add(now, float64(n))
	s.rateMu.Unlock()
}

func (s *Service) noteCorrupt(h Hash) {
	s.corruptMu.Lock()
	if len(s.corrupt) < MaxCorruptTracked {
		s.corrupt[h] = struct{}{}
	}
	s.corruptMu.Unlock()
	s.poke()
}

func (s *Service) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Stats are the service's counters.
func (s *Service) Stats() Stats {
	return Stats{
		Store:  s.store.Stats(),
		Served: s.served.Load(), Throttled: s.throttled.Load(), Malformed: s.malformed.Load(),
		BadChunks: s.badChunks.Load(), Misattributed: s.misattributed.Load(),
		IntentsRefused: s.intentsRefused.Load(), Repaired: s.repaired.Load(),
		Fetches: s.fetches.Load(), FetchFailures: s.fetchFailures.Load(),
		BytesIn: s.bytesInN.Load(), BytesOut: s.bytesOutN.Load(),
		Replicated: s.replicated.Load(), Shed: s.shed.Load(),
	}
}
