package objread

import (
	"context"
	"sync"
)

// Prefetcher is the fast Opener: it holds what its handles share (the
// store, the Budget, the BlockCache, the tile layouts of objects, buffer
// pools and Stats). See the package comment for the way of one read.
type Prefetcher struct {
	store   Store
	cfg     Config
	budget  *Budget
	cache   *BlockCache
	stats   *Stats
	layouts *layoutCache   // tile layouts by object version (nil: no tile prefetch)
	bufs    *bufPool       // stream part buffers
	fetches sync.WaitGroup // part fetches running (tests wait for them)
}

var _ Opener = (*Prefetcher)(nil)

// NewPrefetcher returns an Opener reading from store. A nil budget or
// cache gets a default-sized one of its own; share them between
// Prefetchers to bound the whole process.
func NewPrefetcher(store Store, cfg Config, budget *Budget, cache *BlockCache) *Prefetcher {
	if budget == nil {
		budget = NewBudget(0)
	}
	if cache == nil {
		cache = NewBlockCache(0, 0)
	}
	cfg = cfg.withDefaults()
	pf := &Prefetcher{store: store, cfg: cfg, budget: budget, cache: cache, stats: new(Stats),
		bufs: newBufPool(budget, max(cfg.PartSize, cfg.FarPartSize))}
	if cfg.Tiles != nil {
		pf.layouts = newLayoutCache(cfg.Tiles)
	}
	return pf
}

// Stats returns the live counters of all handles of this Prefetcher.
func (pf *Prefetcher) Stats() *Stats { return pf.stats }

// Open implements Opener. An obj without ETag is pinned by the handle's
// first GET (see handle.version): opening sends no request.
func (pf *Prefetcher) Open(obj Object) Reader {
	ctx, cancel := context.WithCancel(context.Background())
	h := &handle{pf: pf, obj: obj, pinned: obj.ETag != "", ctx: ctx, cancel: cancel}
	h.st.h = h
	return h
}

// getBuf returns a part buffer of n bytes (see bufPool).
func (pf *Prefetcher) getBuf(n int64) []byte { return pf.bufs.get(n) }

// putBuf gives back a buffer of getBuf that nothing uses any more.
func (pf *Prefetcher) putBuf(b []byte) { pf.bufs.put(b) }

// bufClass is the size class of a buffer of n bytes: the least c with
// minPart<<c >= n.
func bufClass(n int64) int {
	c := 0
	for minPart<<c < n {
		c++
	}
	return c
}
