// Package query is MeshDB: federated queries over the chains the mesh's
// nodes already hold (each node's logs, failures and snapshot history,
// the admin ledger, the workload groups' replicated chains), written in
// node/query/lang.
//
// A query compiles against the cluster view into a plan (plan.go): a tree
// of operators whose leaves are fragments, one per chain instance read,
// each sent to the nearest healthy holder by RTT (this node first when it
// holds one). Filters before any window or aggregate, the window, the
// aggregate (as partial states) and a limit run on the holder, where the
// data is; merges, joins, sorts and the lineage walks (read from the view)
// run on the querying node. Plans are deterministic and keyed by a digest;
// a small cache keeps recent results by that key.
//
// Holders answer over messaging.ChanQuery (wire.go) in pulled batches of
// at most 192 KiB: the coordinator asks for each batch, so a lost datagram
// costs a resend and a slow reader holds the holder's work back. A holder
// that stops answering is replaced by the next (the read resumes after the
// last row delivered); when none is left the result is reported partial.
// Serving (serve.go) is off the read loop, on QueryWorkers goroutines, and
// every peer's share is budgeted (fragments started, records scanned,
// fragments open, memory, lifetime): beyond a bound the work is refused or
// made to wait, and counted.
package query

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Config wires an engine to its node.
type Config struct {
	Self identity.NodeID
	// Messenger carries fragments to other holders and serves this node's
	// chains to its peers; nil: local only.
	Messenger messaging.Messenger
	// Store is what this node holds.
	Store *Store
	// Stores, when set, holds the chains of other nodes in this process:
	// their fragments run in-process on Stores(holder) instead of over a
	// Messenger (the deck's fixture client serves its whole fixture
	// cluster from memory this way). Nil for a mesh node.
	Stores func(holder identity.NodeID) *Store
	// View is the current cluster view (who holds what, health, RTT).
	View func() *snapshot.ClusterSnapshot
	// Now is the clock relative times resolve against; nil: time.Now.
	Now  func() time.Time
	Logf func(format string, args ...any)
	// Serve overrides serving limits (tests); zero fields take limits.go's.
	Serve ServeLimits
}

// ServeLimits are the serving side's budgets.
type ServeLimits struct {
	ScanRecordsPerQuery         uint64
	ScanRecordsPerSecondPerPeer float64
	ScanBurstRecordsPerPeer     float64
	QueriesPerSecondPerPeer     float64
	QueryBurstPerPeer           float64
	MaxQueriesPerPeer           int
	MaxServedQueries            int
	IdleTimeout                 time.Duration
	FragmentMemoryBytes         int64
}

func (l ServeLimits) withDefaults() ServeLimits {
	if l.ScanRecordsPerQuery == 0 {
		l.ScanRecordsPerQuery = MaxScanRecordsPerQuery
	}
	if l.ScanRecordsPerSecondPerPeer == 0 {
		l.ScanRecordsPerSecondPerPeer = ScanRecordsPerSecondPerPeer
	}
	if l.ScanBurstRecordsPerPeer == 0 {
		l.ScanBurstRecordsPerPeer = ScanBurstRecordsPerPeer
	}
	if l.QueriesPerSecondPerPeer == 0 {
		l.QueriesPerSecondPerPeer = QueriesPerSecondPerPeer
	}
	if l.QueryBurstPerPeer == 0 {
		l.QueryBurstPerPeer = QueryBurstPerPeer
	}
	if l.MaxQueriesPerPeer == 0 {
		l.MaxQueriesPerPeer = MaxQueriesPerPeer
	}
	if l.MaxServedQueries == 0 {
		l.MaxServedQueries = MaxServedQueries
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = ServeIdleTimeout
	}
	if l.FragmentMemoryBytes == 0 {
		l.FragmentMemoryBytes = MaxFragmentMemoryBytes
	}
	return l
}

// Engine is MeshDB on one node. Use New, register Handle on
// messaging.ChanQuery, and Run it.
type Engine struct {
	cfg   Config
	srv   *server
	cache *resultCache

	cmu   sync.Mutex
	calls map[uint64]*call

	stats coordStats
}

type coordStats struct {
	queries, failovers, partial, cacheHits, stray, callsRefused atomic.Uint64
	localScanned                                                atomic.Uint64
}

// Stats are the engine's counters: the queries it coordinated and the
// fragments it served.
type Stats struct {
	Queries      uint64 // queries run (explain-only ones not counted)
	Failovers    uint64 // fragments moved to another holder
	Partial      uint64 // queries that ended with a fragment missing
	CacheHits    uint64
	Stray        uint64 // answers for no open call, or from a node that was not asked
	CallsRefused uint64 // fragments not sent: MaxCallsInFlight open
	Serve        ServeStats
}

// New makes an engine.
func New(cfg Config) *Engine {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.View == nil {
		cfg.View = func() *snapshot.ClusterSnapshot { return &snapshot.ClusterSnapshot{Self: cfg.Self} }
	}
	cfg.Serve = cfg.Serve.withDefaults()
	e := &Engine{cfg: cfg, cache: newResultCache(), calls: map[uint64]*call{}}
	e.srv = newServer(e)
	return e
}

// Run serves peers' fragments until ctx ends.
func (e *Engine) Run(ctx context.Context) error { return e.srv.run(ctx) }

// Stats returns the counters.
func (e *Engine) Stats() Stats {
	return Stats{
		Queries: e.stats.queries.Load(), Failovers: e.stats.failovers.Load(), Partial: e.stats.partial.Load(),
		CacheHits: e.stats.cacheHits.Load(), Stray: e.stats.stray.Load(), CallsRefused: e.stats.callsRefused.Load(),
		Serve: e.srv.statsSnapshot(),
	}
}

func (e *Engine) maxScan() uint64 { return e.cfg.Serve.ScanRecordsPerQuery }

// Plan compiles a query against the current view without running it.
func (e *Engine) Plan(src string) (*Plan, error) {
	return Compile(src, &Catalog{View: e.cfg.View(), Self: e.cfg.Self, Now: e.cfg.Now()})
}

// Query compiles and runs a query. Errors in the query (api.QueryError,
// ErrInvalid; ErrNotFound for an unknown chain) come back at once; the
// run's rows stream, and Wait gives the status and the error of the run
// (ErrQueryMemory, ErrTimeout, …).
func (e *Engine) Query(ctx context.Context, src string, opts api.QueryOptions) (*api.QueryRun, error) {
	started := time.Now()
	plan, err := e.Plan(src)
	if err != nil {
		return nil, err
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultQueryTimeout
	}
	opts.Timeout = min(opts.Timeout, MaxQueryTimeout)
	if opts.MemoryLimitBytes <= 0 {
		opts.MemoryLimitBytes = DefaultQueryMemoryBytes
	}
	if opts.MaxRows == 0 {
		opts.MaxRows = DefaultMaxRows
	}
	ap := plan.API()
	if opts.Explain {
		run := api.NewQueryRun(ap, plan.Cols, 1, nil)
		run.Finish(api.QueryStatus{}, nil)
		return run, nil
	}
	e.stats.queries.Add(1)
	if !opts.NoCache {
		if rows, st, ok := e.cache.get(plan.Key, time.Now()); ok {
			e.stats.cacheHits.Add(1)
			run := api.NewQueryRun(ap, plan.Cols, len(rows)/BatchMaxRows+1, nil)
			for len(rows) > 0 {
				_ = run.Send(ctx, takeBatch(&rows))
			}
			st.Cached, st.Elapsed = true, time.Since(started)
			run.Finish(st, nil)
			return run, nil
		}
	}
	qctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	run := api.NewQueryRun(ap, plan.Cols, RunBatchesBuffered, cancel)
	go e.execute(qctx, plan, run, opts, started)
	return run, nil
}

// API is the plan as the Client API shows it.
func (pl *Plan) API() api.QueryPlan {
	out := api.QueryPlan{Key: pl.KeyHex(), Coordinator: pl.cat.Self, Text: pl.Text}
	for _, f := range pl.Frags {
		qf := api.QueryFragment{ID: f.id, Chain: f.chain, Instance: f.instance, Text: pl.fragLine(f)}
		if len(f.holders) > 0 {
			qf.Holder, qf.Alternates = f.holders[0], append([]identity.NodeID(nil), f.holders[1:]...)
		}
		out.Fragments = append(out.Fragments, qf)
	}
	return out
}

// Handle is the messaging.ChanQuery handler. It runs on the transport's
// read loop: it reads the header, and hands the message on, copied, to
// the serving side's queues or to the open call it answers; nothing here
// decodes rows, reads a chain or sends.
func (e *Engine) Handle(from identity.NodeID, msg []byte) {
	h, ok := parseHeader(msg)
	if !ok {
		e.srv.stats.malformed.Add(1)
		return
	}
	switch h.kind {
	case msgRequest, msgPull, msgCancel:
		e.srv.handle(from, h, msg)
	default:
		e.cmu.Lock()
		c := e.calls[h.qid]
		e.cmu.Unlock()
		if c == nil || c.holder != from {
			// An answer to nothing open, or from a node that was not asked:
			// from is authenticated, so a member cannot answer for another.
			e.stats.stray.Add(1)
			return
		}
		select {
		case c.inbox <- append([]byte(nil), msg...):
		default:
			// The call's goroutine is behind; its next pull asks again.
		}
	}
}

// call is one fragment open on a remote holder.
type call struct {
	qid    uint64
	holder identity.NodeID
	inbox  chan []byte
}

func newQID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) | 1
}

func (e *Engine) open(holder identity.NodeID) (*call, error) {
	e.cmu.Lock()
	defer e.cmu.Unlock()
	if len(e.calls) >= MaxCallsInFlight {
		e.stats.callsRefused.Add(1)
		return nil, fmt.Errorf("%w: %d fragments already open", api.ErrQueryRefused, MaxCallsInFlight)
	}
	c := &call{qid: newQID(), holder: holder, inbox: make(chan []byte, CallInboxLen)}
	for e.calls[c.qid] != nil {
		c.qid = newQID()
	}
	e.calls[c.qid] = c
	return c, nil
}

func (e *Engine) close(c *call) {
	e.cmu.Lock()
	delete(e.calls, c.qid)
	e.cmu.Unlock()
}

// send is one best-effort message; a lost one is asked again.
func (e *Engine) send(ctx context.Context, to identity.NodeID, msg []byte) {
	sctx, cancel := context.WithTimeout(ctx, SendTimeout)
	defer cancel()
	if err := e.cfg.Messenger.Send(sctx, to, messaging.ChanQuery, msg); err != nil && ctx.Err() == nil {
		e.cfg.Logf("query: send to %v: %v", to, err)
	}
}

// runRemote runs a fragment on holder, pulling its batches one by one.
// It returns nil once the last batch is delivered, errHolderLost when the
// holder stopped answering, a *holderError when it refused.
func (e *Engine) runRemote(ctx context.Context, f *Fragment, holder identity.NodeID, deliver func(*batch) error) error {
	if e.cfg.Messenger == nil {
		return fmt.Errorf("%w: no mesh to reach %v", errNotHeld, holder)
	}
	frag, err := AppendFragment(nil, f)
	if err != nil {
		return err
	}
	c, err := e.open(holder)
	if err != nil {
		return err
	}
	defer e.close(c)
	cols := f.outColumns()
	deadlineMs := uint64(MaxServeDuration / time.Millisecond)
	if dl, ok := ctx.Deadline(); ok {
		deadlineMs = uint64(max(time.Until(dl), time.Millisecond) / time.Millisecond)
	}
	req := encodeRequest(c.qid, deadlineMs, frag)
	finished := false
	defer func() {
		if !finished {
			// Tell the holder to drop the fragment now rather than at its
			// idle timeout: cancellation frees remote work.
			go e.send(context.Background(), holder, encodeCancel(c.qid, false))
		}
	}()
	e.send(ctx, holder, req)
	var seq uint64
	retries := 0
	timer := time.NewTimer(PullTimeout)
	defer timer.Stop()
	ask := func() {
		if seq == 0 {
			e.send(ctx, holder, req)
		} else {
			e.send(ctx, holder, encodeSeq(msgPull, c.qid, seq))
		}
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			retries++
			if retries > PullRetries {
				return fmt.Errorf("%w: %v, after %d asks", errHolderLost, holder, retries)
			}
			ask()
			timer.Reset(PullTimeout)
		case raw := <-c.inbox:
			h, _ := parseHeader(raw)
			body := raw[headerBytes:]
			switch h.kind {
			case msgProgress:
				if s, _, err := decodeProgress(body); err == nil && s == seq {
					retries = 0
					timer.Reset(PullTimeout)
				}
			case msgError:
				code, m, err := decodeError(body)
				if err != nil {
					return fmt.Errorf("%w: %v", errHolderLost, err)
				}
				if code == codeUnknown && seq > 0 {
					return fmt.Errorf("%w: %v forgot the fragment", errHolderLost, holder)
				}
				finished = true // nothing left to cancel there
				return &holderError{code: code, msg: m}
			case msgBatch:
				bt, err := decodeBatch(body, cols)
				if err != nil {
					return fmt.Errorf("%w: %v sent a bad batch: %v", errHolderLost, holder, err)
				}
				if bt.seq != seq {
					continue // a resend of one already taken
				}
				retries = 0
				if err := deliver(bt); err != nil {
					return err
				}
				if bt.last {
					finished = true
					go e.send(context.Background(), holder, encodeCancel(c.qid, true))
					return nil
				}
				seq++
				ask()
				timer.Reset(PullTimeout)
			}
		}
	}
}
