package blob

import (
	"math"
	"sync"
	"time"

	"github.com/deck-mesh/deck/node/identity"
)

// RateTimeConstant is how fast rates and heat forget: an exponential decay
// with this time constant (a read a minute ago counts 1/e of one now).
const RateTimeConstant = time.Minute

// rate is an exponentially decaying events-per-second estimate.
type rate struct {
	v  float64 // per second, as of at
	at time.Time
}

func (r *rate) value(now time.Time) float64 {
	if r.at.IsZero() {
		return 0
	}
	dt := now.Sub(r.at).Seconds()
	if dt <= 0 {
		return r.v
	}
	return r.v * math.Exp(-dt/RateTimeConstant.Seconds())
}

func (r *rate) add(now time.Time, n float64) {
	r.v = r.value(now) + n/RateTimeConstant.Seconds()
	if now.After(r.at) {
		r.at = now
	}
}

// MaxHeatEntries bounds the heat table (blobs, and blob-reader pairs); the
// coldest entry goes first when it is full.
const MaxHeatEntries = 4096

type heatKey struct {
	blob   Hash
	reader identity.NodeID // 0: the blob's total
}

// heat is the read rate of each blob held here (chunk reads per second,
// served and local) and of each reader of it: what gravity decides on.
type heat struct {
	mu sync.Mutex
	m  map[heatKey]*rate
}

func newHeat() *heat { return &heat{m: map[heatKey]*rate{}} }

func (h *heat) read(now time.Time, blob Hash, reader identity.NodeID, chunks float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range []heatKey{{blob: blob}, {blob: blob, reader: reader}} {
		r := h.m[k]
		if r == nil {
			if len(h.m) >= MaxHeatEntries {
				h.evictLocked(now)
			}
			r = &rate{}
			h.m[k] = r
		}
		r.add(now, chunks)
	}
}

// evictLocked drops the coldest entry.
func (h *heat) evictLocked(now time.Time) {
	var coldK heatKey
	cold := math.Inf(1)
	for k, r := range h.m {
		if v := r.value(now); v < cold {
			cold, coldK = v, k
		}
	}
	delete(h.m, coldK)
}

func (h *heat) of(now time.Time, blob Hash) float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.m[heatKey{blob: blob}]; r != nil {
		return r.value(now)
	}
	return 0
}

// readers lists blob's readers whose rate is at least min, hottest first.
func (h *heat) readers(now time.Time, blob Hash, min float64) []readerHeat {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []readerHeat
	for k, r := range h.m {
		if k.blob == blob && k.reader != 0 {
			if v := r.value(now); v >= min {
				out = append(out, readerHeat{k.reader, v})
			}
		}
	}
	sortReaders(out)
	return out
}

type readerHeat struct {
	node identity.NodeID
	heat float64
}

func sortReaders(rs []readerHeat) {
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && (rs[j].heat > rs[j-1].heat || rs[j].heat == rs[j-1].heat && rs[j].node < rs[j-1].node); j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

// forget drops a blob's entries (it is no longer held).
func (h *heat) forget(blob Hash) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k := range h.m {
		if k.blob == blob {
			delete(h.m, k)
		}
	}
}
