package chain

import (
	"context"
	"sync"
)

// Lease setup, the server side's only work that reads the log on a
// client's request before any push: finding the log's bounds and, for a
// filtered logs lease, scanning backwards for its backfill matches (up to
// MaxFilteredBackfillScanRecords records, milliseconds of disk and decode).
// Done in the handler, that ran on the transport's read loop, so a peer
// firing filtered leases stalled every other message to this node. Now the
// handler only admits a lease (the caps, the client's setup budget, room in
// the queue) and LeaseSetupWorkers goroutines do the reading, so the work a
// peer can cause is bounded in rate (per client), in waiting (the queue)
// and in concurrency (the workers), and what exceeds a bound is refused
// and counted, never queued without bound.

// leaseSetup is an admitted lease waiting for a worker.
type leaseSetup struct {
	ctx    context.Context
	l      *lease
	resume uint64
}

// queueSetup hands su to the workers without waiting; false when the
// queue is full. Called with smu held, so Run's shutdown (which sets
// stopped under smu before stopping the workers) never misses a setup.
func (s *SubscriptionService) queueSetup(su leaseSetup) bool {
	select {
	case s.setups <- su:
		return true
	default:
		return false
	}
}

// startSetupWorkers starts the workers; stop ends them once every setup
// still queued has been ended (Run calls it after setting stopped).
func (s *SubscriptionService) startSetupWorkers() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range LeaseSetupWorkers {
		wg.Go(func() { s.setupWorker(ctx) })
	}
	return func() { cancel(); wg.Wait() }
}

func (s *SubscriptionService) setupWorker(ctx context.Context) {
	for {
		select {
		case su := <-s.setups:
			s.setUp(su)
		case <-ctx.Done():
			for {
				select {
				case su := <-s.setups:
					su.l.cancel()
					s.endLease(su.l)
				default:
					return
				}
			}
		}
	}
}

// setUp finds where the lease starts and starts its pushing goroutine. A
// lease cancelled or expired while it waited costs nothing more.
func (s *SubscriptionService) setUp(su leaseSetup) {
	if su.ctx.Err() != nil {
		s.endLease(su.l)
		return
	}
	log := s.db.Logs()
	if su.l.kind == subLeaseFailures {
		log = s.db.Failures()
	}
	start := s.leaseStart(log, su.l, su.resume)
	go s.runLease(su.ctx, su.l, log, start)
}

// leaseStart is the seq a new lease tails from: the client's resume seq,
// or (resume 0) the recent records of the logs log, the last matches of a
// filtered one, or every retained failure.
func (s *SubscriptionService) leaseStart(log *Log, l *lease, resume uint64) uint64 {
	if resume != 0 {
		return resume
	}
	first, last := log.Bounds()
	start := last + 1
	if l.kind == subLeaseLogs {
		start = max(first, (last+1)-min(last, s.cfg.LogBackfillRecords), 1)
	} else if first > 0 {
		start = first
	}
	if l.kind == subLeaseLogs && filtered(l.filter) {
		// A filtered subscription backfills the last matches, not the
		// filter applied to the last records: `deck logs --match X` must
		// find X even when it scrolled out of the newest 256 lines.
		var truncated bool
		start, truncated = backfillStart(log, l, s.cfg.LogBackfillRecords, start)
		if truncated {
			s.stats.backfillTruncated.Add(1)
		}
	}
	return start
}
