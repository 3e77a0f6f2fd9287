package node

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/deck-mesh/deck/node/snapshot"
)

// publisher holds the latest ClusterSnapshot behind an atomic pointer
// (readers never lock) and wakes watchers on structural changes only.
type publisher struct {
	latest   atomic.Pointer[snapshot.ClusterSnapshot]
	mu       sync.Mutex
	watchers map[chan *snapshot.ClusterSnapshot]struct{}
}

func newPublisher(initial *snapshot.ClusterSnapshot) *publisher {
	p := &publisher{watchers: make(map[chan *snapshot.ClusterSnapshot]struct{})}
	p.latest.Store(initial)
	return p
}

func (p *publisher) load() *snapshot.ClusterSnapshot { return p.latest.Load() }

// store replaces the latest snapshot; with changed set, every watcher gets
// it. A watcher's channel holds one value: a slow reader sees the newest
// snapshot, never a backlog.
func (p *publisher) store(cs *snapshot.ClusterSnapshot, changed bool) {
	p.latest.Store(cs)
	if !changed {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for ch := range p.watchers {
		select {
		case <-ch: // drop the stale value
		default:
		}
		select {
		case ch <- cs:
		default:
		}
	}
}

func (p *publisher) watch(ctx context.Context) <-chan *snapshot.ClusterSnapshot {
	ch := make(chan *snapshot.ClusterSnapshot, 1)
	p.mu.Lock()
	p.watchers[ch] = struct{}{}
	p.mu.Unlock()
	if cs := p.latest.Load(); cs != nil {
		ch <- cs
	}
	go func() {
		<-ctx.Done()
		p.mu.Lock()
		delete(p.watchers, ch)
		p.mu.Unlock()
	}()
	return ch
}
