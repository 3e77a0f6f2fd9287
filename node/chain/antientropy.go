package chain

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/ratelimit"
)

// AntiEntropy replicates the admin ledger over a messaging.Messenger: every
// Interval it picks a random peer, compares digests and pulls the events it
// lacks. Pull-only (each node fetches what it misses) keeps the protocol
// stateless on the serving side, and since every node runs rounds against
// every other sooner or later, a healed partition converges everywhere.
//
// A round starts with one bucket covering all time (count and XOR of ids).
// Equal: done, two small messages. Different: the requester asks for that
// bucket split into up to 64 children, compares each with its own, and
// descends, depth first and earliest first, into those that differ until a
// bucket is small enough (AESmallBucketEvents on the peer) or narrow enough
// (4 s) to list ids.
// Then it pulls the missing events, each with what its holder stored beside
// it (its attachment: receipts), in bounded responses and offers them to
// the Ledger's Admitter as coming from that peer. A round is bounded in
// requests, pulled events and refused events; the rest waits for the next
// round. An event refused now (it depends on a registry change this node
// has not folded yet) is not remembered as refused: the digests still
// differ, so a later round offers it again and it is judged afresh.
//
// Newly stored events trigger a Hint (rate-limited) to every peer, and a
// hint whose digest differs from the receiver's makes it sync with the
// sender at once, so changes spread in a round trip rather than a period.
//
// Serving is budgeted per peer (aeserve.go): requests and answer bytes per
// second, a small queue per peer, hints per second. A peer asking beyond its
// budget is refused and counted (Throttled, HintsLimited); an honest one,
// one request in flight, is at most delayed.
//
// It runs over any Messenger: the real UDP transport or an in-process one.
type AntiEntropy struct {
	l     *Ledger
	m     messaging.Messenger
	peers func() []identity.NodeID
	cfg   AntiEntropyConfig

	reqSeq  atomic.Uint64
	pendMu  sync.Mutex
	pending map[uint64]*aePending

	serveQ *aeServeQueue
	hintIn chan aeInbound
	hints  *ratelimit.Table[identity.NodeID]
	hinted chan identity.NodeID
	local  chan struct{}

	stats aeStats
}

// AntiEntropyConfig tunes the service; zero fields take defaults.
type AntiEntropyConfig struct {
	// Interval between background rounds. Default DefaultAntiEntropyInterval.
	Interval time.Duration
	// Logf receives round errors. Default: discarded (counted in Stats).
	Logf func(format string, args ...any)
	// Refused hears every pulled event the ledger refused, with the peer
	// that served it; nil for none. It runs on the round's goroutine and
	// must not block.
	Refused func(r Rejection)
}

type aePending struct {
	peer identity.NodeID
	ch   chan *aeMsg
}

type aeInbound struct {
	from identity.NodeID
	msg  *aeMsg
}

type aeStats struct {
	rounds, converged, pulled, rejected, served, dropped, errors, malformed atomic.Uint64
	throttled, hintsLimited                                                 atomic.Uint64
}

// AntiEntropyStats are the service's counters.
type AntiEntropyStats struct {
	Rounds    uint64 // rounds run
	Converged uint64 // rounds whose top digests were equal
	Pulled    uint64 // events added from peers
	Rejected  uint64 // pulled events the Validator refused
	Served    uint64 // requests answered
	Dropped   uint64 // inbound requests and hints dropped (a shared queue full)
	Errors    uint64 // rounds that failed (timeouts, send errors)
	Malformed uint64 // messages that did not decode
	// Throttled counts requests refused because their peer's own queue was
	// full: it asked faster than its serving budget answers.
	Throttled uint64
	// HintsLimited counts hints ignored by the sender's hint budget.
	HintsLimited uint64
}

// NewAntiEntropy makes the service for l over m; peers lists the nodes to
// sync with (self is skipped). Call Run to start it.
func NewAntiEntropy(l *Ledger, m messaging.Messenger, peers func() []identity.NodeID, cfg AntiEntropyConfig) *AntiEntropy {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultAntiEntropyInterval
	}
	return &AntiEntropy{
		l:       l,
		m:       m,
		peers:   peers,
		cfg:     cfg,
		pending: map[uint64]*aePending{},
		serveQ:  newAEServeQueue(l.db.Now),
		hintIn:  make(chan aeInbound, AEHintQueueLen),
		hints:   ratelimit.New[identity.NodeID](AEHintsPerSecondPerPeer, AEHintBurstPerPeer, AEMaxServedPeers),
		hinted:  make(chan identity.NodeID, 16),
		local:   make(chan struct{}, 1),
	}
}

// Stats returns the counters.
func (ae *AntiEntropy) Stats() AntiEntropyStats {
	s := &ae.stats
	return AntiEntropyStats{
		Rounds: s.rounds.Load(), Converged: s.converged.Load(), Pulled: s.pulled.Load(),
		Rejected: s.rejected.Load(), Served: s.served.Load(), Dropped: s.dropped.Load(),
		Errors: s.errors.Load(), Malformed: s.malformed.Load(),
		Throttled: s.throttled.Load(), HintsLimited: s.hintsLimited.Load(),
	}
}

// Run registers the ChanLedger handler, serves peers and runs rounds until
// ctx ends.
func (ae *AntiEntropy) Run(ctx context.Context) error {
	ae.m.Handle(messaging.ChanLedger, ae.Handle)
	remove := ae.l.OnInsert(func(Event) { signal(ae.local) })
	defer remove()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ae.serve(ctx)
	}()
	defer wg.Wait()

	jitter := func() time.Duration {
		// ±25% so nodes started together do not sync in lockstep.
		return ae.cfg.Interval*3/4 + rand.N(ae.cfg.Interval/2+1)
	}
	round := time.NewTimer(jitter())
	defer round.Stop()
	hintTimer := time.NewTimer(time.Hour)
	hintTimer.Stop()
	defer hintTimer.Stop()
	var lastHint time.Time
	hintArmed := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-round.C:
			if peer, ok := ae.pickPeer(); ok {
				ae.round(ctx, peer)
			}
			round.Reset(jitter())
		case peer := <-ae.hinted:
			ae.round(ctx, peer)
		case <-ae.local:
			if wait := AEHintMinInterval - time.Since(lastHint); wait > 0 {
				if !hintArmed {
					hintTimer.Reset(wait)
					hintArmed = true
				}
				continue
			}
			lastHint = time.Now()
			ae.broadcastHint(ctx)
		case <-hintTimer.C:
			hintArmed = false
			lastHint = time.Now()
			ae.broadcastHint(ctx)
		}
	}
}

func (ae *AntiEntropy) round(ctx context.Context, peer identity.NodeID) {
	if _, err := ae.SyncWith(ctx, peer); err != nil && ctx.Err() == nil {
		ae.stats.errors.Add(1)
		if ae.cfg.Logf != nil {
			ae.cfg.Logf("chain: anti-entropy with %s: %v", peer, err)
		}
	}
}

func (ae *AntiEntropy) otherPeers() []identity.NodeID {
	self := ae.m.Self()
	var out []identity.NodeID
	for _, p := range ae.peers() {
		if p != self && p.Valid() {
			out = append(out, p)
		}
	}
	return out
}

func (ae *AntiEntropy) pickPeer() (identity.NodeID, bool) {
	ps := ae.otherPeers()
	if len(ps) == 0 {
		return 0, false
	}
	return ps[rand.N(len(ps))], true
}

func (ae *AntiEntropy) broadcastHint(ctx context.Context) {
	msg := (&aeMsg{Type: aeHint, Total: ae.l.Digest()}).encode()
	for _, p := range ae.otherPeers() {
		// One slow or unreachable peer must not delay the others or the
		// round loop: each send has its own goroutine and deadline.
		go func() {
			sctx, cancel := context.WithTimeout(ctx, AESendTimeout)
			defer cancel()
			_ = ae.m.Send(sctx, p, messaging.ChanLedger, msg)
		}()
	}
}

// Handle is the messaging.ChanLedger handler. It never blocks: answers go to
// their waiting round, requests to their peer's serving queue and hints to
// the serving goroutine, each within the sender's budget (refused and
// counted beyond it, before the message is copied or decoded).
func (ae *AntiEntropy) Handle(from identity.NodeID, msg []byte) {
	if len(msg) == 0 {
		ae.stats.malformed.Add(1)
		return
	}
	switch aeType(msg[0]) {
	case aeDigestReq, aeIDsReq, aePullReq:
		if !ae.countRefusal(ae.serveQ.room(from)) {
			return
		}
	case aeHint:
		if !ae.hints.Allow(from, ae.l.db.Now()) {
			ae.stats.hintsLimited.Add(1)
			return
		}
	}
	m, err := decodeAE(bytes.Clone(msg))
	if err != nil {
		ae.stats.malformed.Add(1)
		return
	}
	switch m.Type {
	case aeDigestResp, aeIDsResp, aePullResp, aePullAttResp:
		ae.pendMu.Lock()
		p := ae.pending[m.ReqID]
		if p != nil && p.peer == from {
			delete(ae.pending, m.ReqID)
		} else {
			p = nil
		}
		ae.pendMu.Unlock()
		if p != nil {
			p.ch <- m // buffered 1, and only one answer is ever delivered
		}
	case aeHint:
		select {
		case ae.hintIn <- aeInbound{from: from, msg: m}:
		default:
			ae.stats.dropped.Add(1)
		}
	default:
		ae.countRefusal(ae.serveQ.push(aeInbound{from: from, msg: m}))
	}
}

// countRefusal counts a request the serving queue refused; true when it
// was (or would be) queued.
func (ae *AntiEntropy) countRefusal(r aeRefusal) bool {
	switch r {
	case aePeerFull:
		ae.stats.throttled.Add(1)
	case aeQueueFull:
		ae.stats.dropped.Add(1)
	}
	return r == aeQueued
}

// serve answers queued requests as their peers' budgets allow, and turns
// hints whose digest differs from ours into rounds.
func (ae *AntiEntropy) serve(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case h := <-ae.hintIn:
			ae.onHint(h)
		default:
		}
		in, wait, ok := ae.serveQ.next()
		if ok {
			ae.serveOne(ctx, in)
			continue
		}
		timer.Stop()
		if wait > 0 {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return
		case h := <-ae.hintIn:
			ae.onHint(h)
		case <-ae.serveQ.wake:
		case <-timer.C:
		}
	}
}

func (ae *AntiEntropy) onHint(in aeInbound) {
	if mine := ae.l.Digest(); mine.Count != in.msg.Total.Count || mine.XOR != in.msg.Total.XOR {
		select {
		case ae.hinted <- in.from:
		default:
		}
	}
}

func (ae *AntiEntropy) serveOne(ctx context.Context, in aeInbound) {
	resp, err := ae.answer(in.msg)
	if err != nil {
		ae.stats.errors.Add(1)
		return
	}
	b := resp.encode()
	ae.serveQ.charge(in.from, len(b))
	ae.stats.served.Add(1)
	sctx, cancel := context.WithTimeout(ctx, AESendTimeout)
	_ = ae.m.Send(sctx, in.from, messaging.ChanLedger, b)
	cancel()
}

// answer serves one request from the local ledger.
func (ae *AntiEntropy) answer(req *aeMsg) (*aeMsg, error) {
	resp := &aeMsg{ReqID: req.ReqID}
	switch req.Type {
	case aeDigestReq:
		// Only a peer asking for a far too fine split gets more than
		// AEMaxBucketsPerMessage; missing buckets read as "peer has none",
		// which only costs it a pull.
		bs, err := ae.l.digestRangeN(req.From, req.To, uint(req.Shift), AEMaxBucketsPerMessage)
		if err != nil {
			return nil, err
		}
		resp.Type, resp.From, resp.To, resp.Shift, resp.Buckets = aeDigestResp, req.From, req.To, req.Shift, bs
	case aeIDsReq:
		ids, more, err := ae.l.IDsRange(req.From, req.To, req.After, AEMaxIDsPerMessage)
		if err != nil {
			return nil, err
		}
		resp.Type, resp.IDs, resp.More = aeIDsResp, ids, more
	case aePullReq, aePullAttReq:
		resp.Type = aePullResp
		withAtt := req.Type == aePullAttReq
		if withAtt {
			resp.Type = aePullAttResp
		}
		size := 0
		for _, p := range req.IDs {
			raw, err := ae.l.Get(p)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			var att []byte
			if withAtt {
				if att, err = ae.l.Attachment(p.ID); err != nil {
					return nil, err
				}
				if len(att) > MaxAttachmentBytes {
					att = nil // a damaged store: the event travels without it
				}
			}
			cost := len(raw) + 4 + len(att) + 2
			if size+cost > AEMaxPullBytes && len(resp.Events) > 0 {
				break // the requester asks again for the rest
			}
			size += cost
			resp.Events = append(resp.Events, raw)
			if withAtt {
				resp.Attachments = append(resp.Attachments, att)
			}
		}
	default:
		return nil, fmt.Errorf("%w: unexpected ledger request type %d", ErrInvalid, req.Type)
	}
	return resp, nil
}

// request sends req to peer and waits for the answer of type want.
func (ae *AntiEntropy) request(ctx context.Context, peer identity.NodeID, req *aeMsg, want aeType) (*aeMsg, error) {
	req.ReqID = ae.reqSeq.Add(1)
	p := &aePending{peer: peer, ch: make(chan *aeMsg, 1)}
	ae.pendMu.Lock()
	if len(ae.pending) >= AEMaxPending {
		ae.pendMu.Unlock()
		return nil, fmt.Errorf("chain: anti-entropy: %d requests outstanding", AEMaxPending)
	}
	ae.pending[req.ReqID] = p
	ae.pendMu.Unlock()
	defer func() {
		ae.pendMu.Lock()
		delete(ae.pending, req.ReqID)
		ae.pendMu.Unlock()
	}()
	sctx, cancel := context.WithTimeout(ctx, AESendTimeout)
	err := ae.m.Send(sctx, peer, messaging.ChanLedger, req.encode())
	cancel()
	if err != nil {
		return nil, fmt.Errorf("chain: anti-entropy send to %s: %w", peer, err)
	}
	t := time.NewTimer(AERequestTimeout)
	defer t.Stop()
	select {
	case resp := <-p.ch:
		if resp.Type != want {
			return nil, fmt.Errorf("%w: %s answered type %d, want %d", ErrCorrupt, peer, resp.Type, want)
		}
		return resp, nil
	case <-t.C:
		return nil, fmt.Errorf("chain: anti-entropy: %s did not answer in %v", peer, AERequestTimeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type aeWork struct {
	start     int64
	shift     uint
	peerCount uint32
}

// SyncWith runs one round against peer and returns how many events it
// added.
func (ae *AntiEntropy) SyncWith(ctx context.Context, peer identity.NodeID) (int, error) {
	ae.stats.rounds.Add(1)
	const topShift = DigestMaxWidthShiftBits
	top := int64(1) << topShift
	resp, err := ae.request(ctx, peer, &aeMsg{Type: aeDigestReq, From: 0, To: top, Shift: topShift}, aeDigestResp)
	if err != nil {
		return 0, err
	}
	queue, err := ae.diff(resp, 0, top, topShift)
	if err != nil {
		return 0, err
	}
	if len(queue) == 0 {
		ae.stats.converged.Add(1)
		return 0, nil
	}
	// queue is a stack, earliest bucket on top: the round walks the tree
	// depth first, so it reaches a leaf (and pulls) within a few requests
	// however many buckets differ. Breadth first, more differing buckets on
	// one level than the request budget used it all on that level and
	// pulled nothing, the same way every round: no progress, ever.
	slices.Reverse(queue)
	var want []Position
	requests := 1
	for len(queue) > 0 && requests < AEMaxRoundRequests && len(want) < AEMaxRoundPullEvents {
		w := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		to := w.start + int64(1)<<w.shift
		if w.peerCount <= AESmallBucketEvents || w.shift <= DigestMinWidthShiftBits {
			var after *Position
			for requests < AEMaxRoundRequests && len(want) < AEMaxRoundPullEvents {
				requests++
				r, err := ae.request(ctx, peer, &aeMsg{Type: aeIDsReq, From: w.start, To: to, After: after}, aeIDsResp)
				if err != nil {
					return 0, err
				}
				for _, p := range r.IDs {
					if p.IssuedAtMs < w.start || p.IssuedAtMs >= to {
						return 0, fmt.Errorf("%w: %s listed an id outside [%d,%d)", ErrCorrupt, peer, w.start, to)
					}
					has, err := ae.l.Has(p.ID)
					if err != nil {
						return 0, err
					}
					if !has {
						want = append(want, p)
					}
				}
				if !r.More || len(r.IDs) == 0 {
					break
				}
				last := r.IDs[len(r.IDs)-1]
				after = &last
			}
			continue
		}
		child := max(w.shift-DigestLevelShiftBits, DigestMinWidthShiftBits)
		requests++
		r, err := ae.request(ctx, peer, &aeMsg{Type: aeDigestReq, From: w.start, To: to, Shift: uint8(child)}, aeDigestResp)
		if err != nil {
			return 0, err
		}
		more, err := ae.diff(r, w.start, to, child)
		if err != nil {
			return 0, err
		}
		slices.Reverse(more)
		queue = append(queue, more...)
	}
	if len(want) > AEMaxRoundPullEvents {
		want = want[:AEMaxRoundPullEvents]
	}
	return ae.pull(ctx, peer, want)
}

// diff compares a peer's digest response with the local buckets and returns
// the buckets that differ and that the peer has events in.
func (ae *AntiEntropy) diff(r *aeMsg, from, to int64, shift uint) ([]aeWork, error) {
	if r.From != from || r.To != to || uint(r.Shift) != shift {
		return nil, fmt.Errorf("%w: digest answer for another range", ErrCorrupt)
	}
	mine, err := ae.l.DigestRange(from, to, shift)
	if err != nil {
		return nil, err
	}
	own := make(map[int64]BucketDigest, len(mine))
	for _, d := range mine {
		own[d.Start] = d
	}
	var out []aeWork
	for _, d := range r.Buckets {
		if d.Start < from || d.Start >= to || d.Start != bucketStart(d.Start, shift) {
			return nil, fmt.Errorf("%w: digest bucket %d outside [%d,%d) or misaligned", ErrCorrupt, d.Start, from, to)
		}
		if m, ok := own[d.Start]; ok && m.Count == d.Count && m.XOR == d.XOR {
			continue
		}
		if d.Count > 0 {
			out = append(out, aeWork{start: d.Start, shift: shift, peerCount: d.Count})
		}
	}
	return out, nil
}

func (ae *AntiEntropy) pull(ctx context.Context, peer identity.NodeID, want []Position) (int, error) {
	added, refused := 0, 0
	for len(want) > 0 && refused < AEMaxRoundRefusals {
		chunk := want[:min(len(want), AEMaxPullEvents)]
		r, err := ae.request(ctx, peer, &aeMsg{Type: aePullAttReq, IDs: chunk}, aePullAttResp)
		if err != nil {
			return added, err
		}
		if len(r.Events) == 0 {
			return added, nil // the peer no longer has them; nothing to gain
		}
		ins := make([]Incoming, len(r.Events))
		for i, raw := range r.Events {
			ins[i] = Incoming{Raw: raw, Attachment: r.Attachments[i], From: peer}
		}
		rep, err := ae.l.Admit(ctx, ins)
		if err != nil {
			return added, err
		}
		added += len(rep.Added)
		refused += len(rep.Rejected)
		ae.stats.pulled.Add(uint64(len(rep.Added)))
		ae.stats.rejected.Add(uint64(len(rep.Rejected)))
		if ae.cfg.Refused != nil {
			for _, rj := range rep.Rejected {
				ae.cfg.Refused(rj)
			}
		}
		// The answer may stop short at the byte bound: ask for the rest,
		// as long as the last answer made progress.
		rest := make([]Position, 0, len(want))
		for _, p := range want {
			has, err := ae.l.Has(p.ID)
			if err != nil {
				return added, err
			}
			if !has {
				rest = append(rest, p)
			}
		}
		if len(rest) == len(want) {
			return added, nil
		}
		want = rest
	}
	return added, nil
}
