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

// handle is the Reader of one open file. A read (see read) pins the
// object's version, lets the access pattern decide what it is, and takes
// its bytes from the stream's parts or the block cache.
type handle struct {
	pf     *Prefetcher
	ctx    context.Context // parts and prefetches run on it; Close cancels it
	cancel context.CancelFunc

	mu sync.Mutex
	// obj is the version read. Until pinned, its ETag is empty and its
	// size the catalog's; the first read's GET sets both (see version),
	// and obj is fixed from then on: code that runs after a read saw
	// pinned may read it without mu.
	obj     Object
	pinned  bool          // guarded by mu
	pinning chan struct{} // guarded by mu; closed when the pinning GET answered
	closed  bool          // guarded by mu
	pat     pattern       // guarded by mu
	st      stream        // guarded by mu
	tiles   tileState     // guarded by mu
	failed  failure       // guarded by mu
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
	obj, err := h.version(ctx, off, int64(len(p)))
	if err != nil {
		return 0, nil, noRelease, err
	}
	if off >= obj.Size {
		return 0, nil, noRelease, io.EOF
	}
	end := min(off+int64(len(p)), obj.Size)
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
		segs, err = h.plan(obj, off, end, first)
		if err != nil {
			return 0, nil, noRelease, err
		}
		vecs, err = h.exec(readCtx, obj, segs, buf, off, lend)
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
			err = fmt.Errorf("read %s at %d: %w", obj.Loc, off, err)
			h.mu.Lock()
			h.failed = failure{off: off, end: end, at: time.Now(), err: err}
			h.mu.Unlock()
			return 0, nil, noRelease, err
		}
		break
	}
	h.pf.stats.BytesServed.Add(end - off)
	if off == 0 && h.pf.layouts != nil && segs[0].pt == nil {
		h.pf.layouts.start(h, obj, buf) // a TIFF's header: parse its tile layout
	}
	release := func() { h.unref(segs) }
	if int(end-off) < len(p) {
		return int(end - off), vecs, release, io.EOF
	}
	return len(p), vecs, release, nil
}

// version returns the object version the handle reads, pinning it first
// if it is not pinned yet: the first read's GET (the block cache load the
// read needs anyway, see firstLoad) is sent without If-Match, and its
// answer gives the ETag sent as If-Match from then on and the object's
// true size. Concurrent first reads wait for that answer (not its body).
// A size the catalog got wrong is corrected: the store's Content-Range is
// trusted, so reads end at the object's real end.
func (h *handle) version(ctx context.Context, off, n int64) (Object, error) {
	for {
		h.mu.Lock()
		switch {
		case h.closed:
			h.mu.Unlock()
			return Object{}, errClosed
		case h.pinned:
			obj := h.obj
			h.mu.Unlock()
			return obj, nil
		case h.pinning == nil:
			h.pinning = make(chan struct{})
			obj := h.obj
			h.mu.Unlock()
			obj, pinned, err := h.pin(ctx, obj, off, n)
			h.mu.Lock()
			if pinned {
				h.obj.ETag, h.obj.Size, h.pinned = obj.ETag, obj.Size, true
			}
			close(h.pinning)
			h.pinning = nil // after a failure the next read tries again
			h.mu.Unlock()
			return obj, err
		}
		ch := h.pinning
		h.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Object{}, ctx.Err()
		}
	}
}

// pin sends the first GET of obj for a read of n bytes at off and hands its
// body to the block cache (which serves the read). It reports whether it
// learned the version: a read at or past the catalog's size sends nothing.
func (h *handle) pin(ctx context.Context, obj Object, off, n int64) (Object, bool, error) {
	if off >= obj.Size {
		return obj, false, nil
	}
	pf := h.pf
	from, to := pf.cache.alignDown(off), firstLoad(off, off+n, &pf.cfg, pf.cache.BlockSize(), obj.Size)
	body, err := openRange(ctx, pf.store, obj, from, to-from, pf.stats, pf.cfg.Retry)
	if errors.Is(err, errBeyondEnd) {
		// The object is shorter than the catalog says: ask its size.
		info, err := pf.store.Stat(ctx, obj.Loc)
		if err != nil {
			return obj, false, err
		}
		obj.Size, obj.ETag = info.Size, info.ETag
		return obj, true, nil
	}
	if err != nil {
		return obj, false, err
	}
	obj.ETag = body.ETag
	if body.Size >= 0 {
		obj.Size = body.Size
	}
	pf.cache.adopt(h.ctx, pf.store, obj, from, min(to, obj.Size), body, pf.stats, pf.cfg.Retry)
	return obj, true, nil
}

// Version implements Versioned.
func (h *handle) Version() (Object, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.obj, h.pinned
}

// plan lets the access pattern classify a read (on its first attempt
// only), carries out its decision, and splits the read into segments:
// from the stream's parts (each referenced), or from the block cache.
func (h *handle) plan(obj Object, off, end int64, first bool) ([]segment, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errClosed
	}
	var loadEnd int64
	if first {
		loadEnd = h.decideLocked(obj, off, end)
	}
	return h.st.segments(off, end, loadEnd), nil
}

// decideLocked asks the access pattern what a read of [off, end) is and
// carries it out: the stream advances, starts or stops, predicted runs
// and tiles load into the block cache. It returns how far this read's
// block cache load extends (0: its own blocks).
func (h *handle) decideLocked(obj Object, off, end int64) int64 {
	pf := h.pf
	env := patternEnv{cfg: &pf.cfg, blockSize: pf.cache.BlockSize(), size: obj.Size, disk: pf.cache.diskOn(obj),
		seqConfirm: pf.cfg.SeqConfirm}
	if h.tiles.ready(h, obj) {
		env.seqConfirm = max(env.seqConfirm, tiledSeqConfirm) // tiles are predicted, not streamed
	}
	d := h.pat.observe(off, end, h.st.view(), env)
	if d.advance {
		h.st.advance(end)
		return 0
	}
	if d.drop {
		h.st.drop()
	}
	if d.start {
		h.st.start(d.startAt, end)
	}
	for _, r := range d.prefetch {
		pf.cache.Prefetch(h.ctx, pf.store, obj, r.Off, r.End, pf.stats, pf.cfg.Retry, nil)
	}
	if d.predicted {
		pf.stats.Predicted.Add(1)
	}
	if !h.st.active && end > h.pat.firstEnd {
		// Reads within the first load (the header, and the kernel's
		// readahead after it) are not GDAL reading tiles.
		h.tiles.observe(h, obj, off, end)
	}
	return d.loadEnd
}

// exec fills buf (the object's bytes from off) from segs. With lend, the
// bytes of parts are not copied: the returned vecs point into the parts'
// buffers (which stay referenced until unref) and into buf for the rest.
// A part that failed is reported as a *partFailure.
func (h *handle) exec(ctx context.Context, obj Object, segs []segment, buf []byte, off int64, lend bool) ([][]byte, error) {
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
			if err := h.pf.cache.fetchThrough(ctx, h.pf.store, obj, s.off, dst, nil, h.pf.stats, h.pf.cfg.Retry); err != nil {
				return nil, err
			}
		default:
			if _, err := h.pf.cache.ReadAt(ctx, h.pf.store, obj, dst, s.off, s.loadEnd, h.pf.stats, h.pf.cfg.Retry); err != nil {
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
			h.st.free(s.pt)
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
	h.st.drop()
	h.cancel()
	return nil
}

// partFailure is a read's segment whose part fetch failed.
type partFailure struct{ err error }

func (p *partFailure) Error() string { return p.err.Error() }

// errClosed is returned by reads on a closed handle.
var errClosed = fmt.Errorf("read on closed handle: %w", os.ErrClosed)
