package query

import (
	"container/list"
	"sync"
	"time"

	"github.com/deck-mesh/deck/node/api"
)

// resultCache keeps the last few complete results by plan key, for
// ResultCacheTTL: the same question asked again within seconds (a deck
// scrolling back and forth, two consoles on one view) is answered without
// the mesh. A plan's key covers its resolved times, its fragments and
// their holders, so a changed view or a later "now" is a different key;
// the TTL bounds how stale an absolute-time answer may be.
type resultCache struct {
	mu    sync.Mutex
	lru   *list.List // of *cacheEntry, most recent first
	byKey map[[16]byte]*list.Element
}

type cacheEntry struct {
	key     [16]byte
	rows    []api.QueryRow
	status  api.QueryStatus
	expires time.Time
}

func newResultCache() *resultCache {
	return &resultCache{lru: list.New(), byKey: map[[16]byte]*list.Element{}}
}

func (c *resultCache) get(key [16]byte, now time.Time) ([]api.QueryRow, api.QueryStatus, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[key]
	if !ok {
		return nil, api.QueryStatus{}, false
	}
	e := el.Value.(*cacheEntry)
	if now.After(e.expires) {
		c.lru.Remove(el)
		delete(c.byKey, key)
		return nil, api.QueryStatus{}, false
	}
	c.lru.MoveToFront(el)
	return append([]api.QueryRow(nil), e.rows...), e.status, true
}

func (c *resultCache) put(key [16]byte, rows []api.QueryRow, st api.QueryStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[key]; ok {
		c.lru.Remove(el)
	}
	c.byKey[key] = c.lru.PushFront(&cacheEntry{key: key, rows: rows, status: st, expires: time.Now().Add(ResultCacheTTL)})
	for c.lru.Len() > ResultCacheEntries {
		el := c.lru.Back()
		c.lru.Remove(el)
		delete(c.byKey, el.Value.(*cacheEntry).key)
	}
}
