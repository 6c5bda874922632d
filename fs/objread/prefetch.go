package objread

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Prefetcher is the fast Opener. Each handle it opens watches its own
// access pattern:
//
//   - A first read at the file's start fetches FirstRead bytes through the shared block
//     cache, which absorbs the kernel's readahead and lets the many opens
//     GDAL makes of one file share its header.
//   - Random reads go through the block cache, rounded to its blocks.
//   - A run of contiguous reads longer than SeqConfirm starts a stream: a
//     window of parallel ranged GETs (parts) ahead of the reader, doubling
//     up to MaxWindow. Streams bypass the block cache so big files do not
//     churn it, but not its disk tier (see DiskCache): with one, a part
//     takes the blocks the disk has and writes those it fetched. Reads slightly behind, ahead or out of order stay in the
//     stream; only RandomAfter reads in a row elsewhere drop it.
//
// Stream buffers come from the shared Budget. When it is exhausted windows
// shrink, and a read with no buffered data goes straight to the store.
type Prefetcher struct {
	store   Store
	cfg     Config
	budget  *Budget
	cache   *BlockCache
	stats   *Stats
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
	return &Prefetcher{store: store, cfg: cfg, budget: budget, cache: cache, stats: new(Stats),
		pools: make([]sync.Pool, bufClass(cfg.PartSize)+1)}
}

// Stats returns the live counters of all handles of this Prefetcher.
func (pf *Prefetcher) Stats() *Stats { return pf.stats }

// Open implements Opener.
func (pf *Prefetcher) Open(obj Object) Reader {
	ctx, cancel := context.WithCancel(context.Background())
	return &handle{pf: pf, obj: obj, ctx: ctx, cancel: cancel, sem: make(chan struct{}, pf.cfg.Parallel)}
}

// handle is the Reader of one open file.
type handle struct {
	pf     *Prefetcher
	obj    Object
	ctx    context.Context // parts run on it; Close cancels it
	cancel context.CancelFunc
	sem    chan struct{} // bounds this handle's concurrent part GETs

	mu     sync.Mutex
	closed bool // guarded by mu
	pat    pattern
	st     stream
	failed failure // guarded by mu
}

// failure is a handle's last failed read. The kernel retries a failed
// readahead at once with a synchronous read of the same pages; failing
// that one fast keeps a read against a dead store within one I/O timeout
// instead of two.
type failure struct {
	off, end int64
	at       time.Time
	err      error
}

// recentFailure returns the error of a failed read overlapping [off, end)
// that ended less than failFast ago.
func (h *handle) recentFailure(off, end int64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.failed
	if f.err != nil && off < f.end && f.off < end && time.Since(f.at) < h.failFast() {
		return f.err
	}
	return nil
}

func (h *handle) failFast() time.Duration { return min(time.Second, h.pf.cfg.Retry.Timeout/4) }

// segment is a piece of one read: from a part, from the block cache, or
// straight from the store.
type segment struct {
	off, end int64
	pt       *part // nil: cache or direct
	direct   bool
	loadEnd  int64 // for cache segments: extend the load to here
}

// ReadAt implements Reader.
func (h *handle) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	n, _, release, err := h.read(ctx, p, off, false)
	release()
	return n, err
}

// ReadSlices implements SliceReader: the bytes buffered in prefetch parts
// are lent rather than copied into scratch.
func (h *handle) ReadSlices(ctx context.Context, scratch []byte, off int64) ([][]byte, func(), error) {
	_, vecs, release, err := h.read(ctx, scratch, off, true)
	return vecs, release, err
}

func noRelease() {}

// read fills p (or, when lend is set, returns vecs that lend part buffers
// and use p for the rest) with the object's bytes from off. The caller
// calls release, always, once it is done with vecs.
func (h *handle) read(ctx context.Context, p []byte, off int64, lend bool) (int, [][]byte, func(), error) {
	if off < 0 {
		return 0, nil, noRelease, fmt.Errorf("read %s: negative offset %d", h.obj.Loc, off)
	}
	if off >= h.obj.Size {
		return 0, nil, noRelease, io.EOF
	}
	end := min(off+int64(len(p)), h.obj.Size)
	if end == off {
		return 0, nil, noRelease, nil
	}
	buf := p[:end-off]
	if err := h.recentFailure(off, end); err != nil {
		return 0, nil, noRelease, err
	}
	started := time.Now()
	readCtx := ctx
	var partErr error // a failed part this read is fetching again itself
	var vecs [][]byte
	var segs []segment
	for first := true; ; first = false {
		var err error
		segs, err = h.plan(off, end, first)
		if err != nil {
			return 0, nil, noRelease, err
		}
		vecs, err = h.exec(readCtx, segs, buf, off, lend)
		if err != nil {
			h.unref(segs)
		}
		var pf *partFailure
		if errors.As(err, &pf) && partErr == nil && ctx.Err() == nil {
			// The part was started before this read (perhaps during an
			// outage that has ended): fetch the range again, within what
			// is left of this read's own timeout.
			partErr = pf.err
			var cancel context.CancelFunc
			readCtx, cancel = context.WithDeadline(ctx, started.Add(h.pf.cfg.Retry.Timeout))
			defer cancel()
			continue
		}
		if err != nil && partErr != nil && readCtx.Err() != nil && ctx.Err() == nil {
			err = partErr
		} else if pf != nil {
			err = pf.err
		}
		if errors.Is(err, errDropped) && ctx.Err() == nil {
			continue // a part went away under us: plan again
		}
		if err != nil {
			if ctx.Err() != nil {
				return 0, nil, noRelease, ctx.Err()
			}
			err = fmt.Errorf("read %s at %d: %w", h.obj.Loc, off, err)
			h.mu.Lock()
			h.failed = failure{off: off, end: end, at: time.Now(), err: err}
			h.mu.Unlock()
			return 0, nil, noRelease, err
		}
		break
	}
	h.pf.stats.BytesServed.Add(end - off)
	release := func() { h.unref(segs) }
	if int(end-off) < len(p) {
		return int(end - off), vecs, release, io.EOF
	}
	return len(p), vecs, release, nil
}

// exec fills buf (the object's bytes from off) from segs. With lend, the
// bytes of parts are not copied: the returned vecs point into the parts'
// buffers (which stay referenced until unref) and into buf for the rest.
// A part that failed is reported as a *partFailure.
func (h *handle) exec(ctx context.Context, segs []segment, buf []byte, off int64, lend bool) ([][]byte, error) {
	var vecs [][]byte
	for _, s := range segs {
		dst := buf[s.off-off : s.end-off]
		switch {
		case s.pt != nil:
			if err := s.pt.wait(ctx, int(s.end-s.pt.off), h.pf.cfg.Retry.Timeout); err != nil {
				if s.pt.failed() && !errors.Is(err, errDropped) {
					return nil, &partFailure{err}
				}
				return nil, err
			}
			src := s.pt.buf[s.off-s.pt.off : s.end-s.pt.off]
			if lend {
				vecs = append(vecs, src)
				continue
			}
			copy(dst, src)
		case s.direct:
			h.pf.stats.DirectReads.Add(1)
			if err := h.pf.cache.fetchThrough(ctx, h.pf.store, h.obj, s.off, dst, nil, h.pf.stats, h.pf.cfg.Retry); err != nil {
				return nil, err
			}
		default:
			if _, err := h.pf.cache.ReadAt(ctx, h.pf.store, h.obj, dst, s.off, s.loadEnd, h.pf.stats, h.pf.cfg.Retry); err != nil {
				return nil, err
			}
		}
		if lend {
			vecs = append(vecs, dst)
		}
	}
	return vecs, nil
}

// unref drops the references plan took on parts, freeing the buffers of
// parts evicted meanwhile.
func (h *handle) unref(segs []segment) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range segs {
		if s.pt == nil {
			continue
		}
		s.pt.refs--
		s.pt.served += s.end - s.off
		if s.pt.evicted && s.pt.refs == 0 {
			h.freeLocked(s.pt)
		}
	}
}

// Close implements Reader: it cancels the handle's parts and releases
// their buffers.
func (h *handle) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	h.dropStreamLocked()
	h.cancel()
	return nil
}

// partFailure is a read's segment whose part fetch failed.
type partFailure struct{ err error }

func (p *partFailure) Error() string { return p.err.Error() }

// errClosed is returned by reads on a closed handle.
var errClosed = fmt.Errorf("read on closed handle: %w", os.ErrClosed)
