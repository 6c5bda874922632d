package objread

import "context"

// pattern is what a handle remembers of its recent reads.
type pattern struct {
	reads    int
	runStart int64 // the current run of contiguous (or nearly) reads
	runEnd   int64
	cacheEnd int64 // end of the last range loaded through the block cache
	outside  int   // consecutive reads outside the stream
	// The run expected next, loading into the block cache: after a long
	// run and a jump of d, the bytes d further on (see predictLocked).
	predOff, predEnd int64
}

// stream is a handle's prefetch window.
type stream struct {
	active   bool
	base     int64   // reads at or after base (up to frontier+Slack) are the stream's
	parts    []*part // ascending; a failed part leaves a gap
	frontier int64   // end of the last scheduled part
	pos      int64   // highest end of a stream read
	window   int64   // how far ahead of pos to fetch
}

// plan classifies a read (on its first attempt only) and splits it into
// segments, taking a reference on each part it will copy from.
func (h *handle) plan(off, end int64, first bool) ([]segment, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errClosed
	}
	var loadEnd int64
	if first {
		loadEnd = h.observeLocked(off, end)
	}
	var segs []segment
	cur := off
	for _, pt := range h.st.parts {
		if pt.end() <= cur || pt.failed() {
			continue // a failed part is a gap until its fetch removes it
		}
		if pt.off >= end {
			break
		}
		if pt.off > cur {
			segs = append(segs, h.gapLocked(cur, pt.off, loadEnd))
			cur = pt.off
		}
		next := min(end, pt.end())
		pt.refs++
		segs = append(segs, segment{off: cur, end: next, pt: pt})
		cur = next
	}
	if cur < end {
		segs = append(segs, h.gapLocked(cur, end, loadEnd))
	}
	return segs, nil
}

// gapLocked is a segment no part covers: inside a stream it means the
// budget refused the part (or it failed), so read it straight from the
// store; elsewhere it is a random read, served by the block cache.
func (h *handle) gapLocked(off, end, loadEnd int64) segment {
	return segment{off: off, end: end, direct: h.inStreamLocked(off), loadEnd: loadEnd}
}

// inStreamLocked reports whether a read at off belongs to the stream: at
// or after its base and at most Slack beyond what it has scheduled.
func (h *handle) inStreamLocked(off int64) bool {
	st := &h.st
	return st.active && off >= st.base && off <= st.frontier+h.pf.cfg.Slack
}

// observeLocked updates the access pattern with a read of [off, end) and
// starts, advances or drops the stream. It returns how far a block cache
// load should extend (the first read's readahead), or 0.
func (h *handle) observeLocked(off, end int64) int64 {
	cfg, pat, st := &h.pf.cfg, &h.pat, &h.st
	pat.reads++
	near := pat.reads > 1 && off >= pat.runEnd-cfg.KeepBehind && off <= pat.runEnd+cfg.Slack
	// Bytes loading into the cache for the run this read is in: predicted
	// by an earlier jump, or by this one (predictLocked).
	var runLoad int64
	if off >= pat.predOff && off < pat.predEnd {
		runLoad = pat.predEnd
	}
	if near {
		pat.runStart, pat.runEnd = min(pat.runStart, off), max(pat.runEnd, end)
	} else {
		if pat.reads > 1 {
			runLoad = max(runLoad, h.predictLocked(off))
		}
		pat.runStart, pat.runEnd = off, end
	}
	if h.inStreamLocked(off) {
		pat.outside = 0
		h.advanceLocked(end)
		return 0
	}
	if st.active {
		pat.outside++
		if pat.outside >= cfg.RandomAfter {
			h.dropStreamLocked()
		}
	}
	bs := h.pf.cache.BlockSize()
	if pat.reads == 1 {
		// A first read at the start of the file (a header, or the start of
		// a stream) fetches FirstRead; a first read elsewhere is a random
		// read (a tile) and fetches only its blocks.
		loadEnd := alignUp(end, bs)
		if off < bs {
			loadEnd = off/bs*bs + cfg.FirstRead
		}
		loadEnd = min(loadEnd, h.obj.Size)
		pat.cacheEnd = alignUp(loadEnd, bs)
		return loadEnd
	}
	seq := pat.runEnd-pat.runStart >= cfg.SeqConfirm && end > pat.cacheEnd
	if seq && (!st.active || off > st.frontier+cfg.Slack) {
		h.dropStreamLocked()
		start := off
		if off < pat.cacheEnd {
			start = pat.cacheEnd // the cache holds the bytes before
		} else if h.pf.cache.diskOn(h.obj) {
			// Parts on block boundaries: their blocks go to disk whole.
			start = off / bs * bs
		}
		h.startStreamLocked(start, end)
		return 0
	}
	if near {
		pat.cacheEnd = max(pat.cacheEnd, alignUp(end, bs))
	} else {
		pat.cacheEnd = alignUp(end, bs)
	}
	if runLoad > 0 {
		// A predicted run: its blocks are in the cache or on their way,
		// so a stream starts only past them.
		pat.cacheEnd = max(pat.cacheEnd, alignUp(runLoad, bs))
	}
	return 0
}

// predictLocked is called when a read at off jumps away from the current
// run. After a long run (GDAL reading a row of tiles, QGIS a row of a
// view) such a jump usually starts another run like it, and a jump
// forward of d means the one after starts d further on (the next row of
// tiles). So both are loaded into the block cache now, as many bytes as
// the run just ended (at most PartSize), each with one GET in the
// background: this run then costs one request's latency rather than a
// block load and then a stream's, and the next costs none. A wrong guess
// costs those bytes once. It returns the end of this run's load, or 0.
func (h *handle) predictLocked(off int64) int64 {
	cfg, pat := &h.pf.cfg, &h.pat
	last := pat.runEnd - pat.runStart
	d := off - pat.runStart
	if last < cfg.SeqConfirm || d <= last || h.inStreamLocked(off) {
		return 0 // a short run, a jump back, or a skip within the stream's window
	}
	n := min(last, cfg.PartSize)
	bs := h.pf.cache.BlockSize()
	// This run: from the block after the one the read itself loads.
	cur := min(off+n, h.obj.Size)
	h.pf.cache.Prefetch(h.ctx, h.pf.store, h.obj, off/bs*bs+bs, cur, h.pf.stats, h.pf.cfg.Retry)
	if from, to := (off+d)/bs*bs, min(off+d+n, h.obj.Size); from < to {
		pat.predOff, pat.predEnd = from, to
		h.pf.stats.Predicted.Add(1)
		h.pf.cache.Prefetch(h.ctx, h.pf.store, h.obj, from, to, h.pf.stats, h.pf.cfg.Retry)
	}
	return cur
}

func alignUp(v, a int64) int64 { return (v + a - 1) / a * a }

// startStreamLocked starts a stream fetching from start for a reader at end.
func (h *handle) startStreamLocked(start, end int64) {
	h.pf.budget.addStream(1)
	h.st = stream{active: true, base: start, frontier: start, pos: end, window: h.pf.cfg.InitialWindow}
	h.scheduleLocked()
	for _, pt := range h.st.parts {
		pt.entered = pt.off < end
	}
}

// advanceLocked moves the stream's reader to end: the window doubles when
// the reader enters a new part, parts far behind are released, and parts
// are scheduled to fill the window.
func (h *handle) advanceLocked(end int64) {
	st := &h.st
	st.pos = max(st.pos, end)
	grow := false
	for _, pt := range st.parts {
		if pt.off >= st.pos {
			break
		}
		if !pt.entered {
			pt.entered, grow = true, true
		}
	}
	if grow {
		st.window = min(2*st.window, h.maxWindowLocked())
	}
	h.evictBehindLocked()
	h.scheduleLocked()
}

// maxWindowLocked is the window cap: MaxWindow, or the stream's fair share
// of the budget when several streams run, but at least InitialWindow.
//
// The share also pays for what a stream keeps behind its reader (up to
// KeepBehind plus one skipped part), so the window leaves room for it:
// a stream that outgrew its share would be refused parts and fall back to
// slow direct reads.
func (h *handle) maxWindowLocked() int64 {
	cfg := &h.pf.cfg
	return max(min(cfg.MaxWindow, h.pf.budget.share()-cfg.KeepBehind-cfg.PartSize), cfg.InitialWindow)
}

// minPart is the smallest part a stream under memory pressure fetches
// before it falls back to direct reads.
const minPart = MiB

// scheduleLocked starts parts until the window ahead of the reader is
// covered or the budget refuses even a small part; a refusal halves the
// window.
func (h *handle) scheduleLocked() {
	cfg, st := &h.pf.cfg, &h.st
	target := min(st.pos+st.window, h.obj.Size)
	for st.frontier < target {
		n := h.acquireLocked(min(cfg.PartSize, h.obj.Size-st.frontier, st.window))
		if n == 0 {
			h.pf.stats.BudgetDenials.Add(1)
			st.window = max(st.window/2, cfg.InitialWindow)
			return
		}
		pt := &part{off: st.frontier, n: n, refs: 1, buf: h.pf.getBuf(n)} // the fetch holds a reference
		pt.ctx, pt.cancel = context.WithCancel(h.ctx)
		st.parts = append(st.parts, pt)
		st.frontier += n
		h.pf.stats.Parts.Add(1)
		h.pf.fetches.Add(1)
		go h.fetch(pt)
	}
}

// acquireLocked takes n bytes from the budget, or the largest of n/2,
// n/4... down to minPart that fits; it returns what it took, or 0.
func (h *handle) acquireLocked(n int64) int64 {
	for ; ; n /= 2 {
		if h.pf.budget.TryAcquire(n) {
			return n
		}
		if n/2 < minPart {
			return 0
		}
	}
}

// evictBehindLocked releases parts more than KeepBehind behind the reader.
// A part the reader skipped without reading is kept one PartSize longer,
// for reads the kernel sends late.
func (h *handle) evictBehindLocked() {
	cfg, st := &h.pf.cfg, &h.st
	keep := st.pos - cfg.KeepBehind
	i := 0
	for ; i < len(st.parts); i++ {
		pt := st.parts[i]
		if pt.end() > keep || (pt.served < pt.n && pt.end() > keep-cfg.PartSize) {
			break
		}
		st.base = pt.end()
		h.evictLocked(pt)
	}
	st.parts = st.parts[i:]
}

// evictLocked takes pt out of use: its fetch is cancelled and its buffer
// freed once the last reader is done with it.
func (h *handle) evictLocked(pt *part) {
	pt.evicted = true
	pt.cancel()
	if pt.refs == 0 {
		h.freeLocked(pt)
	}
}

// freeLocked returns pt's buffer to the pool and its bytes to the budget.
func (h *handle) freeLocked(pt *part) {
	h.pf.budget.Release(pt.n)
	h.pf.putBuf(pt.buf)
	pt.buf = nil
}

// dropStreamLocked ends the stream and releases its parts.
func (h *handle) dropStreamLocked() {
	if !h.st.active {
		return
	}
	for _, pt := range h.st.parts {
		h.evictLocked(pt)
	}
	h.st = stream{}
	h.pf.budget.addStream(-1)
}

// fetch runs one part's GET on the part's own context (tied to the
// handle, not to any reader), at most cfg.Parallel at a time per handle.
func (h *handle) fetch(pt *part) {
	defer h.pf.fetches.Done()
	err := errDropped
	select {
	case h.sem <- struct{}{}:
		err = h.pf.cache.fetchThrough(pt.ctx, h.pf.store, h.obj, pt.off, pt.buf, pt.progress, h.pf.stats, h.pf.cfg.Retry)
		<-h.sem
	case <-pt.ctx.Done():
	}
	if err != nil && pt.ctx.Err() != nil {
		err = errDropped
	}
	pt.finish(err)
	h.mu.Lock()
	defer h.mu.Unlock()
	pt.refs--
	switch {
	case err != nil && !pt.evicted:
		h.removeLocked(pt) // later reads of its range fetch again
	case pt.evicted && pt.refs == 0:
		h.freeLocked(pt)
	}
}

// removeLocked takes a failed part out of the stream, leaving a gap.
func (h *handle) removeLocked(pt *part) {
	for i, q := range h.st.parts {
		if q == pt {
			h.st.parts = append(h.st.parts[:i:i], h.st.parts[i+1:]...)
			break
		}
	}
	h.evictLocked(pt)
}

// getBuf returns a buffer of n bytes from the pool of its size class (a
// power of two from 1 MiB to PartSize): a new one costs a page fault per
// 4 KiB on first use, which a stream's first part would otherwise pay
// before its GET is even sent.
func (pf *Prefetcher) getBuf(n int64) []byte {
	c := bufClass(n)
	if c < len(pf.pools) {
		if b, ok := pf.pools[c].Get().(*[]byte); ok {
			return (*b)[:n]
		}
		return make([]byte, n, minPart<<c)
	}
	return make([]byte, n)
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
