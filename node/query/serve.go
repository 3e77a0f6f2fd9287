package query

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/ratelimit"
)

// The serving side: fragments peers ask this node to run. The handler,
// on the transport's read loop, only admits (per-peer start budget,
// per-peer and total caps), bookkeeps pulls and cancels, and queues: one
// job per fragment at most, on a queue as long as the cap, so it never
// waits. QueryWorkers goroutines run the jobs a slice of records at a time
// (ScanSliceRecords), charging each peer's scan budget; a peer in debt
// waits its turn out instead of taking the workers. A fragment lives until
// its coordinator says it is done or cancels it, stops pulling
// (IdleTimeout), or outlives its deadline (MaxServeDuration at most).

type servedKey struct {
	peer identity.NodeID
	qid  uint64
}

// served is one fragment being served.
type served struct {
	key    servedKey
	body   []byte // the request after its header, decoded by a worker
	ctx    context.Context
	cancel context.CancelFunc

	// Under server.mu:
	run          *runner
	nextSeq      uint64 // the seq of the batch being (or to be) made
	last         []byte // batch nextSeq-1, encoded, for resends
	busy         bool   // a job is queued or running
	done         bool   // the last batch was made
	gone         bool   // removed from the table
	lastActive   time.Time
	lastProgress time.Time
	deadline     time.Time
	scanned      uint64
}

type outMsg struct {
	to  identity.NodeID
	msg []byte
}

type server struct {
	e   *Engine
	lim ServeLimits

	mu      sync.Mutex
	frags   map[servedKey]*served
	perPeer map[identity.NodeID]int

	starts *ratelimit.Table[identity.NodeID]
	scans  *ratelimit.Table[identity.NodeID]
	jobs   chan *served
	out    chan outMsg
	stats  serveCounters
	runCtx atomic.Pointer[context.Context]
}

type serveCounters struct {
	started, completed, cancelled, expired                  atomic.Uint64
	refusedRate, refusedBusy, invalid, unknown, malformed   atomic.Uint64
	scanned, batches, resends, bytesSent, throttled, sheds  atomic.Uint64
	truncated, memoryRefused, notHeld, progress, outDropped atomic.Uint64
}

// ServeStats are the serving side's counters.
type ServeStats struct {
	Active        uint64 // fragments open now
	Started       uint64
	Completed     uint64 // ended by the coordinator after the last batch
	Cancelled     uint64 // ended by the coordinator before the end
	Expired       uint64 // dropped: no pull for the idle timeout, or past the deadline
	RefusedRate   uint64 // starts refused by the peer's start budget
	RefusedBusy   uint64 // starts refused by the per-peer or total cap
	Invalid       uint64 // requests that did not decode or fit their chain
	NotHeld       uint64 // fragments of chains this node does not hold
	Unknown       uint64 // pulls for no open fragment
	Malformed     uint64 // messages whose header did not parse
	Scanned       uint64 // records scanned for peers
	Batches       uint64 // batches made
	Resends       uint64 // batches sent again on a repeated pull
	BytesSent     uint64
	Throttled     uint64 // worker turns deferred: the peer's scan budget was in debt
	Truncated     uint64 // fragments stopped by the scan budget
	MemoryRefused uint64 // fragments refused for their memory
	OutDropped    uint64 // answers dropped: the sender's queue was full
}

func newServer(e *Engine) *server {
	lim := e.cfg.Serve
	return &server{
		e: e, lim: lim,
		frags:   map[servedKey]*served{},
		perPeer: map[identity.NodeID]int{},
		starts:  ratelimit.New[identity.NodeID](lim.QueriesPerSecondPerPeer, lim.QueryBurstPerPeer, MaxServedPeers),
		scans:   ratelimit.New[identity.NodeID](lim.ScanRecordsPerSecondPerPeer, lim.ScanBurstRecordsPerPeer, MaxServedPeers),
		jobs:    make(chan *served, lim.MaxServedQueries+1),
		out:     make(chan outMsg, OutboxLen),
	}
}

func (s *server) statsSnapshot() ServeStats {
	s.mu.Lock()
	active := len(s.frags)
	s.mu.Unlock()
	c := &s.stats
	return ServeStats{
		Active: uint64(active), Started: c.started.Load(), Completed: c.completed.Load(), Cancelled: c.cancelled.Load(),
		Expired: c.expired.Load(), RefusedRate: c.refusedRate.Load(), RefusedBusy: c.refusedBusy.Load(),
		Invalid: c.invalid.Load(), NotHeld: c.notHeld.Load(), Unknown: c.unknown.Load(), Malformed: c.malformed.Load(),
		Scanned: c.scanned.Load(), Batches: c.batches.Load(), Resends: c.resends.Load(), BytesSent: c.bytesSent.Load(),
		Throttled: c.throttled.Load(), Truncated: c.truncated.Load(), MemoryRefused: c.memoryRefused.Load(),
		OutDropped: c.outDropped.Load(),
	}
}

// queue hands a message to the senders without waiting.
func (s *server) queue(to identity.NodeID, msg []byte) {
	select {
	case s.out <- outMsg{to: to, msg: msg}:
	default:
		s.stats.outDropped.Add(1)
	}
}

// handle admits, pulls or cancels (on the read loop: no waiting, no I/O).
func (s *server) handle(from identity.NodeID, h header, msg []byte) {
	if s.e.cfg.Store == nil {
		return
	}
	now := time.Now()
	key := servedKey{from, h.qid}
	body := msg[headerBytes:]
	switch h.kind {
	case msgRequest:
		if len(body) > MaxRequestBytes+binaryMaxVarint {
			s.stats.invalid.Add(1)
			s.queue(from, encodeError(h.qid, codeInvalid, "request too large"))
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if f := s.frags[key]; f != nil {
			// The request again: its first answer was lost, or is coming.
			s.answerRepeat(f, 0, now)
			return
		}
		if !s.starts.Allow(from, now) {
			s.stats.refusedRate.Add(1)
			s.queue(from, encodeError(h.qid, codeRefused, "query rate limit"))
			return
		}
		if s.perPeer[from] >= s.lim.MaxQueriesPerPeer || len(s.frags) >= s.lim.MaxServedQueries {
			s.stats.refusedBusy.Add(1)
			s.queue(from, encodeError(h.qid, codeRefused, fmt.Sprintf("busy: %d fragments open for you, %d in all", s.perPeer[from], len(s.frags))))
			return
		}
		base := context.Background()
		if p := s.runCtx.Load(); p != nil {
			base = *p
		}
		ctx, cancel := context.WithCancel(base)
		f := &served{key: key, body: append([]byte(nil), body...), ctx: ctx, cancel: cancel,
			busy: true, lastActive: now, lastProgress: now, deadline: now.Add(MaxServeDuration)}
		s.frags[key] = f
		s.perPeer[from]++
		s.stats.started.Add(1)
		s.jobs <- f // never blocks: one job per fragment, and fragments ≤ MaxServedQueries
	case msgPull:
		seq, err := decodeSeq(body)
		if err != nil {
			s.stats.malformed.Add(1)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		f := s.frags[key]
		if f == nil {
			s.stats.unknown.Add(1)
			s.queue(from, encodeError(h.qid, codeUnknown, "no such fragment (expired?)"))
			return
		}
		f.lastActive = now
		if seq == f.nextSeq && !f.busy && !f.done {
			f.busy = true
			s.jobs <- f
			return
		}
		s.answerRepeat(f, seq, now)
	case msgCancel:
		done, err := decodeCancel(body)
		if err != nil {
			s.stats.malformed.Add(1)
			return
		}
		s.mu.Lock()
		f := s.frags[key]
		if f != nil {
			s.removeLocked(f)
		}
		s.mu.Unlock()
		if f == nil {
			return
		}
		if done {
			s.stats.completed.Add(1)
		} else {
			s.stats.cancelled.Add(1)
		}
	}
}

const binaryMaxVarint = 10

// answerRepeat answers a request or pull for a batch already asked for:
// the last batch again, or a note that it is being made. s.mu held.
func (s *server) answerRepeat(f *served, seq uint64, now time.Time) {
	switch {
	case f.last != nil && seq+1 == f.nextSeq:
		s.stats.resends.Add(1)
		s.queue(f.key.peer, f.last)
	case f.busy && seq == f.nextSeq && now.Sub(f.lastProgress) >= ProgressEvery:
		f.lastProgress = now
		s.stats.progress.Add(1)
		s.queue(f.key.peer, encodeProgress(f.key.qid, f.nextSeq, f.scanned))
	}
}

func (s *server) removeLocked(f *served) {
	if f.gone {
		return
	}
	f.gone = true
	f.cancel()
	delete(s.frags, f.key)
	if s.perPeer[f.key.peer]--; s.perPeer[f.key.peer] <= 0 {
		delete(s.perPeer, f.key.peer)
	}
}

// run starts the workers, the senders and the expiry sweep.
func (s *server) run(ctx context.Context) error {
	s.runCtx.Store(&ctx)
	var wg sync.WaitGroup
	for range QueryWorkers {
		wg.Go(func() { s.worker(ctx) })
		wg.Go(func() { s.sender(ctx) })
	}
	wg.Go(func() { s.sweep(ctx) })
	<-ctx.Done()
	wg.Wait()
	s.mu.Lock()
	for _, f := range s.frags {
		s.removeLocked(f)
	}
	s.mu.Unlock()
	return ctx.Err()
}

func (s *server) sender(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-s.out:
			s.stats.bytesSent.Add(uint64(len(m.msg)))
			s.e.send(ctx, m.to, m.msg)
		}
	}
}

// sweep drops fragments whose coordinator went quiet or whose time is up.
func (s *server) sweep(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.mu.Lock()
			for _, f := range s.frags {
				if now.Sub(f.lastActive) > s.lim.IdleTimeout || now.After(f.deadline) {
					s.removeLocked(f)
					s.stats.expired.Add(1)
				}
			}
			s.mu.Unlock()
		}
	}
}

func (s *server) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-s.jobs:
			s.turn(f)
		}
	}
}

// requeue puts f back on the queue (its job is not finished).
func (s *server) requeue(f *served) {
	select {
	case s.jobs <- f:
	default:
		// Cannot happen (one job per fragment); never block a worker on it.
		s.mu.Lock()
		s.removeLocked(f)
		s.mu.Unlock()
		s.stats.sheds.Add(1)
	}
}

// turn runs one slice of f.
func (s *server) turn(f *served) {
	if f.ctx.Err() != nil {
		return // cancelled or expired while it waited
	}
	peer := f.key.peer
	if f.run == nil {
		if err := s.start(f); err != nil {
			return
		}
	}
	now := time.Now()
	if !s.scans.Ready(peer, now, 1) {
		// The peer scanned its budget: this fragment waits for the refill,
		// off the workers.
		s.stats.throttled.Add(1)
		wait := max(s.scans.Wait(peer, now, 1), 10*time.Millisecond)
		time.AfterFunc(wait, func() {
			if f.ctx.Err() == nil {
				s.requeue(f)
			}
		})
		return
	}
	before := f.run.scanned
	bt, err := f.run.step(ScanSliceRecords)
	n := f.run.scanned - before
	s.scans.Charge(peer, now, float64(n))
	s.stats.scanned.Add(n)
	if err != nil {
		s.fail(f, err)
		return
	}
	s.mu.Lock()
	f.scanned = f.run.scanned
	s.mu.Unlock()
	if bt == nil {
		s.requeue(f)
		return
	}
	s.mu.Lock()
	if f.gone {
		s.mu.Unlock()
		return
	}
	bt.seq = f.nextSeq
	msg, err := encodeBatch(f.key.qid, bt)
	if err != nil {
		s.mu.Unlock()
		s.fail(f, err)
		return
	}
	f.last, f.nextSeq, f.busy = msg, f.nextSeq+1, false
	if bt.last {
		f.done = true
		f.run = nil // its state goes; the last batch stays for a resend
		if bt.truncated != "" {
			s.stats.truncated.Add(1)
		}
	}
	s.mu.Unlock()
	s.stats.batches.Add(1)
	s.queue(peer, msg)
}

// start decodes f's request and opens its source.
func (s *server) start(f *served) error {
	deadlineMs, fragBytes, err := decodeRequest(f.body)
	var frag *Fragment
	if err == nil {
		frag, err = DecodeFragment(fragBytes)
	}
	if err != nil {
		s.stats.invalid.Add(1)
		s.fail(f, fmt.Errorf("%w: %v", errWire, err))
		return err
	}
	src, err := s.e.cfg.Store.open(frag)
	if err != nil {
		s.fail(f, err)
		return err
	}
	s.mu.Lock()
	if d := time.Duration(deadlineMs) * time.Millisecond; d > 0 && d < MaxServeDuration {
		f.deadline = time.Now().Add(d)
	}
	f.body = nil
	f.run = newRunner(frag, src, s.lim.FragmentMemoryBytes, s.lim.ScanRecordsPerQuery)
	s.mu.Unlock()
	return nil
}

// fail answers f with an error and drops it.
func (s *server) fail(f *served, err error) {
	code := codeOf(err)
	switch code {
	case codeMemory:
		s.stats.memoryRefused.Add(1)
	case codeNotHeld:
		s.stats.notHeld.Add(1)
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	s.mu.Lock()
	s.removeLocked(f)
	s.mu.Unlock()
	s.queue(f.key.peer, encodeError(f.key.qid, code, err.Error()))
}
