package objread

import (
	"bytes"
	"context"
	"sync"
	"time"
)

// Tile prefetch: for a tiled TIFF (a COG), the handle knows where each
// tile lies once the header is read, and loads what GDAL will read next
// (the rest of a row, the window's next rows) into the block cache, as
// concurrent GETs of merged ranges, before GDAL asks.

// TileLayout is a tiled TIFF's layout (package cogtile parses it).
type TileLayout interface {
	// NewPredictor returns a predictor for one open handle.
	NewPredictor() TilePredictor
}

// TilePredictor follows one handle's reads (it need not be safe for
// concurrent use: the handle calls it under its lock).
type TilePredictor interface {
	// Observe records a read of [off, end) and returns the byte ranges
	// expected next, adjacent ones merged, at most maxBytes in total,
	// never ranges it returned before.
	Observe(off, end, maxBytes int64) []TileRange
}

// TileRange is a byte range [Off, End) of a tiled object.
type TileRange struct{ Off, End int64 }

// TileParser parses an object's tile layout, reading it with read. It
// fails for objects that are not tiled TIFFs; they keep the default
// read behaviour.
type TileParser func(ctx context.Context, read func(ctx context.Context, off, n int64) ([]byte, error), size int64) (TileLayout, error)

// tiledSeqConfirm is how long a contiguous run of reads of a tiled object
// must be before it starts a stream: the tiles of a window's row are
// contiguous and predicted, so only a long run (a copy of the file) is
// worth a stream.
const tiledSeqConfirm = 16 * MiB

// layoutParseTimeout bounds the parse of one layout (a few small reads).
const layoutParseTimeout = time.Minute

// layoutCacheLen bounds the layouts kept (a layout is small: two int64s
// per tile).
const layoutCacheLen = 1024

// isTIFF reports whether b starts like a classic or BigTIFF file.
func isTIFF(b []byte) bool {
	return bytes.HasPrefix(b, []byte("II*\x00")) || bytes.HasPrefix(b, []byte("MM\x00*")) ||
		bytes.HasPrefix(b, []byte("II+\x00")) || bytes.HasPrefix(b, []byte("MM\x00+"))
}

// layoutCache holds the tile layouts of object versions, parsed once per
// version whichever handle reads its header first: GDAL opens a scene
// many times.
type layoutCache struct {
	parse TileParser

	mu      sync.Mutex
	entries map[blockKey]*layoutEntry // guarded by mu; by object version (index 0)
	order   []blockKey                // guarded by mu; insertion order, for eviction
}

// layoutEntry is one version's layout; ready is closed once parsed.
type layoutEntry struct {
	ready  chan struct{}
	layout TileLayout // nil: not tiled (or the parse failed)
}

func newLayoutCache(parse TileParser) *layoutCache {
	return &layoutCache{parse: parse, entries: make(map[blockKey]*layoutEntry)}
}

// start parses obj's layout in the background if head, the object's first
// bytes read by h, look like a TIFF and no handle did so yet.
func (lc *layoutCache) start(h *handle, obj Object, head []byte) {
	if obj.ETag == "" || !isTIFF(head) {
		return // without a version the layout cannot be tied to the bytes
	}
	k := h.pf.cache.key(obj, 0)
	lc.mu.Lock()
	if lc.entries[k] != nil {
		lc.mu.Unlock()
		return
	}
	e := &layoutEntry{ready: make(chan struct{})}
	lc.entries[k] = e
	lc.order = append(lc.order, k)
	if len(lc.order) > layoutCacheLen {
		delete(lc.entries, lc.order[0])
		lc.order = lc.order[1:]
	}
	lc.mu.Unlock()
	pf := h.pf
	go func() {
		defer close(e.ready)
		ctx, cancel := context.WithTimeout(context.Background(), layoutParseTimeout)
		defer cancel()
		read := func(ctx context.Context, off, n int64) ([]byte, error) {
			n = max(0, min(n, obj.Size-off))
			p := make([]byte, n)
			_, err := pf.cache.ReadAt(ctx, pf.store, obj, p, off, 0, pf.stats, pf.cfg.Retry)
			return p, err
		}
		if l, err := lc.parse(ctx, read, obj.Size); err == nil {
			e.layout = l
			pf.stats.TiledObjects.Add(1)
		}
	}()
}

// get returns obj's layout if it is parsed, else nil.
func (lc *layoutCache) get(k blockKey) TileLayout {
	lc.mu.Lock()
	e := lc.entries[k]
	lc.mu.Unlock()
	if e == nil {
		return nil
	}
	select {
	case <-e.ready:
		return e.layout
	default:
		return nil
	}
}

// tileState is a handle's tile prediction (guarded by the handle's mu).
type tileState struct {
	pred TilePredictor // nil until the layout is known
	done bool          // the object is not tiled: stop looking
}

// observe feeds a read of [off, end) to the predictor, once the layout is
// known, and loads the predicted ranges into the block cache, as
// concurrent GETs (one per merged range), each reaching past its last tile
// as far as the kernel's READ of that tile will (as much again as the
// range, up to Readahead: that READ asks those bytes too, and would
// otherwise wait for a GET of its own; with DirectIO no READ reaches past
// a tile), each within the memory budget:
// the bytes in flight are taken from it and given back when the load ends
// (then the cache, bounded by its capacity, holds them). A range the
// budget refuses is not prefetched; GDAL's read then loads it.
func (ts *tileState) observe(h *handle, obj Object, off, end int64) {
	pf := h.pf
	if !ts.ready(h, obj) {
		return
	}
	ranges := ts.pred.Observe(off, end, pf.tileMaxBytes())
	for i, r := range ranges {
		// As the kernel's does: a READ reaches past what was asked by as
		// much again, up to its readahead.
		spill := r.End
		if !obj.DirectIO {
			spill += min(pf.cfg.Readahead, r.End-r.Off)
		}
		if i+1 < len(ranges) {
			spill = min(spill, ranges[i+1].Off)
		}
		r.End = min(max(r.End, spill), obj.Size)
		n := r.End - r.Off
		if n <= 0 {
			continue
		}
		if !pf.budget.TryAcquire(n) {
			pf.stats.BudgetDenials.Add(1)
			continue
		}
		pf.stats.TilePrefetches.Add(1)
		pf.stats.TileBytes.Add(n)
		pf.cache.Prefetch(h.ctx, pf.store, obj, r.Off, r.End, pf.stats, pf.cfg.Retry, func() { pf.budget.Release(n) })
	}
}

// ready reports whether the handle has a predictor: once the object's
// layout is parsed, it makes one.
func (ts *tileState) ready(h *handle, obj Object) bool {
	pf := h.pf
	if ts.pred != nil {
		return true
	}
	if ts.done || pf.layouts == nil || obj.ETag == "" {
		return false
	}
	l := pf.layouts.get(pf.cache.key(obj, 0))
	if l == nil {
		if h.pat.reads > tileLayoutPatience {
			ts.done = true // not a TIFF, or its parse failed
		}
		return false
	}
	ts.pred = l.NewPredictor()
	return true
}

// tileLayoutPatience is how many reads a handle waits for its object's
// layout before it stops asking (the parse takes a request or two).
const tileLayoutPatience = 64

// tileMaxBytes bounds one read's tile prefetch: a quarter of the block
// cache (so prefetched tiles do not evict each other before GDAL reads
// them) and of the memory budget.
func (pf *Prefetcher) tileMaxBytes() int64 {
	return min(pf.cache.capacity/4, pf.budget.Limit()/4)
}
