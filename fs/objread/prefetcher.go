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
	pools   []sync.Pool    // of *[]byte, by size class (see getBuf)
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
		pools: make([]sync.Pool, bufClass(cfg.PartSize)+1)}
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
	h.st.sem = make(chan struct{}, pf.cfg.Parallel)
	return h
}

// getBuf returns a buffer of n bytes from the pool of its size class (a
// power of two from 1 MiB to PartSize): a new one costs a page fault per
// 4 KiB on first use, which a stream's first part would otherwise pay
// before its GET is even sent. A new one is advised for transparent huge
// pages (adviseHuge): a page fault per 2 MiB instead.
func (pf *Prefetcher) getBuf(n int64) []byte {
	c := bufClass(n)
	if c < len(pf.pools) {
		if b, ok := pf.pools[c].Get().(*[]byte); ok {
			return (*b)[:n]
		}
		b := make([]byte, n, minPart<<c)
		adviseHuge(b)
		return b
	}
	b := make([]byte, n)
	adviseHuge(b)
	return b
}

// putBuf gives b back to its pool (buffers of odd capacity are left to
// the garbage collector).
func (pf *Prefetcher) putBuf(b []byte) {
	c := bufClass(int64(cap(b)))
	if c < len(pf.pools) && int64(cap(b)) == minPart<<c {
		b = b[:cap(b)]
		pf.pools[c].Put(&b)
	}
}

// bufClass is the size class of a buffer of n bytes: the least c with
// minPart<<c >= n.
func bufClass(n int64) int {
	c := 0
	for minPart<<c < n {
		c++
	}
	return c
}
