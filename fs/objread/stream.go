package objread

import "context"

// stream is a handle's prefetch window: parallel ranged GETs (parts) of
// the bytes ahead of a sequential reader. Its methods are called with the
// handle's mu held, except run (a part's GET), which takes it.
//
// A stream starts with Parallel parts in flight at once (enough GETs to
// cover the store's latency times its per-connection rate) and keeps them
// in flight while the reader advances. Its parts start small (FirstPart)
// and double up to PartSize each time the reader has consumed a quarter
// of what is in flight: a run that ends soon (a row of tiles) costs little,
// a long one soon runs at full size. Streams bypass the
// block cache so big files do not churn it, but not its disk tier (see
// BlockCache.fetchThrough). Parts come from the shared Budget: when it
// refuses, the window shrinks, and reads of bytes no part holds go
// straight to the store.
type stream struct {
	h   *handle
	sem chan struct{} // bounds the stream's concurrent part GETs (its shape's parallelism)

	active   bool
	base     int64   // reads at or after base (up to frontier+Slack) are the stream's
	parts    []*part // ascending; a failed part leaves a gap
	frontier int64   // end of the last scheduled part
	pos      int64   // highest end of a stream read
	window   int64   // how far ahead of pos to fetch at most (the budget's say)
	part     int64   // the size of the next parts
	grown    int64   // where the reader was when part last doubled

	// The stream's shape, chosen at start by the store's latency (see
	// shape): parts in flight, and the size the parts grow to.
	par     int
	partMax int64
}

// view is what the access pattern needs to know of the stream.
func (st *stream) view() streamView {
	return streamView{active: st.active, covers: st.covers, frontier: st.frontier}
}

// covers reports whether a read at off belongs to the stream: at or after
// its base and at most Slack beyond what it has scheduled.
func (st *stream) covers(off int64) bool {
	return st.active && off >= st.base && off <= st.frontier+st.h.pf.cfg.Slack
}

// segments splits a read of [off, end) into pieces from the stream's parts
// (taking a reference on each) and gaps between them: inside the stream a
// gap means the budget refused the part (or it failed), so it is read
// straight from the store; elsewhere it is a random read, served by the
// block cache (its load extended to loadEnd).
func (st *stream) segments(off, end, loadEnd int64) []segment {
	gap := func(off, end int64) segment {
		return segment{off: off, end: end, direct: st.covers(off), loadEnd: loadEnd}
	}
	var segs []segment
	cur := off
	for _, pt := range st.parts {
		if pt.end() <= cur || pt.failed() {
			continue // a failed part is a gap until its fetch removes it
		}
		if pt.off >= end {
			break
		}
		if pt.off > cur {
			segs = append(segs, gap(cur, pt.off))
			cur = pt.off
		}
		next := min(end, pt.end())
		pt.refs++
		segs = append(segs, segment{off: cur, end: next, pt: pt})
		cur = next
	}
	if cur < end {
		segs = append(segs, gap(cur, end))
	}
	return segs
}

// start starts the stream fetching from start for a reader at end, with
// Parallel parts at once: a sequential reader is confirmed by then.
func (st *stream) start(start, end int64) {
	st.h.pf.budget.addStream(1)
	st.reset(true, start, end)
	st.par, st.partMax = st.shape()
	st.sem = make(chan struct{}, st.par) // parts of an earlier stream keep theirs
	st.window = st.maxWindow()
	st.part = min(st.h.pf.cfg.FirstPart, st.partMax)
	st.schedule()
	for _, pt := range st.parts {
		pt.entered = pt.off < end
	}
}

// shape is how many parts a new stream keeps in flight and how large
// they grow: FarParallel of FarPartSize once the store answers GETs in
// FarLatency or more, else Parallel of PartSize (see Config.FarLatency).
func (st *stream) shape() (int, int64) {
	pf := st.h.pf
	if pf.stats.FirstByte() >= pf.cfg.FarLatency {
		pf.stats.FarStreams.Add(1)
		return pf.cfg.FarParallel, pf.cfg.FarPartSize
	}
	return pf.cfg.Parallel, pf.cfg.PartSize
}

// advance moves the stream's reader to end: parts far behind are
// released, and parts are scheduled to keep the window full (growing it
// back after the budget shrank it, once the reader enters a new part).
func (st *stream) advance(end int64) {
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
		st.window = min(2*st.window, st.maxWindow())
	}
	if st.part < st.partMax && st.pos-st.grown >= int64(st.par)*st.part/4 {
		st.part, st.grown = min(2*st.part, st.partMax), st.pos
	}
	st.evictBehind()
	st.schedule()
}

// maxWindow is the window cap: the stream's parallel parts of their full
// size (MaxWindow at most), or the stream's fair share of the budget when
// several streams run, but at least InitialWindow.
//
// The share also pays for what a stream keeps behind its reader (up to
// KeepBehind plus one skipped part), so the window leaves room for it:
// a stream that outgrew its share would be refused parts and fall back to
// slow direct reads.
func (st *stream) maxWindow() int64 {
	cfg := &st.h.pf.cfg
	w := min(cfg.MaxWindow, int64(st.par)*st.partMax)
	return max(min(w, st.h.pf.budget.share()-cfg.KeepBehind-st.partMax), cfg.InitialWindow)
}

// parallel is how many parts the stream keeps in flight: its shape's, split
// between the streams running now (at least minParallel each): several
// streams together need no more connections than one to fill the link,
// and more would only crowd the store and the CPU.
func (st *stream) parallel() int {
	p := st.par
	return max(min(p, minParallel), p/max(st.h.pf.budget.Streams(), 1))
}

// minParallel is the least parallelism of a stream among many.
const minParallel = 4

// minPart is the smallest part a stream under memory pressure fetches
// before it falls back to direct reads.
const minPart = MiB

// schedule starts parts until the window ahead of the reader is covered
// or the budget refuses even a small part; a refusal halves the window.
func (st *stream) schedule() {
	h := st.h
	cfg := &h.pf.cfg
	window := min(st.window, st.maxWindow(), int64(st.parallel())*st.part)
	target := min(st.pos+window, h.obj.Size)
	for st.frontier < target {
		n := st.acquire(min(st.part, h.obj.Size-st.frontier, window))
		if n == 0 {
			h.pf.stats.BudgetDenials.Add(1)
			st.window = max(st.window/2, cfg.InitialWindow)
			return
		}
		pt := &part{off: st.frontier, n: n, refs: 1, buf: h.pf.getBuf(n), sem: st.sem} // the fetch holds a reference
		pt.ctx, pt.cancel = context.WithCancel(h.ctx)
		st.parts = append(st.parts, pt)
		st.frontier += n
		h.pf.stats.Parts.Add(1)
		h.pf.fetches.Add(1)
		go st.run(pt)
	}
}

// acquire takes n bytes from the budget, or the largest of n/2, n/4...
// down to minPart that fits; it returns what it took, or 0.
func (st *stream) acquire(n int64) int64 {
	for ; ; n /= 2 {
		if st.h.pf.budget.TryAcquire(n) {
			return n
		}
		if n/2 < minPart {
			return 0
		}
	}
}

// evictBehind releases parts more than KeepBehind behind the reader. A
// part the reader skipped without reading is kept one part size longer,
// for reads the kernel sends late.
func (st *stream) evictBehind() {
	cfg := &st.h.pf.cfg
	keep := st.pos - cfg.KeepBehind
	i := 0
	for ; i < len(st.parts); i++ {
		pt := st.parts[i]
		if pt.end() > keep || (pt.served < pt.n && pt.end() > keep-st.partMax) {
			break
		}
		st.base = pt.end()
		st.evict(pt)
	}
	st.parts = st.parts[i:]
}

// evict takes pt out of use: its fetch is cancelled and its buffer freed
// once the last reader is done with it.
func (st *stream) evict(pt *part) {
	pt.evicted = true
	pt.cancel()
	if pt.refs == 0 {
		st.free(pt)
	}
}

// free returns pt's buffer to the pool and its bytes to the budget.
func (st *stream) free(pt *part) {
	st.h.pf.budget.Release(pt.n)
	st.h.pf.putBuf(pt.buf)
	pt.buf = nil
}

// drop ends the stream and releases its parts.
func (st *stream) drop() {
	if !st.active {
		return
	}
	for _, pt := range st.parts {
		st.evict(pt)
	}
	st.reset(false, 0, 0)
	st.h.pf.budget.addStream(-1)
}

// reset sets the window's state (h is set once, at Open: run reads it
// without the handle's mu).
func (st *stream) reset(active bool, base, pos int64) {
	st.active, st.base, st.parts, st.frontier, st.pos, st.window, st.part, st.grown = active, base, nil, base, pos, 0, 0, base
}

// run is one part's GET, on the part's own context (tied to the handle,
// not to any reader), at most the stream's parallelism at a time. It
// takes the handle's mu at the end.
func (st *stream) run(pt *part) {
	h := st.h
	defer h.pf.fetches.Done()
	err := errDropped
	select {
	case pt.sem <- struct{}{}:
		err = h.pf.cache.fetchThrough(pt.ctx, h.pf.store, h.obj, pt.off, pt.buf, pt.progress, h.pf.stats, h.pf.cfg.Retry)
		<-pt.sem
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
		st.remove(pt) // later reads of its range fetch again
	case pt.evicted && pt.refs == 0:
		st.free(pt)
	}
}

// remove takes a failed part out of the stream, leaving a gap.
func (st *stream) remove(pt *part) {
	for i, q := range st.parts {
		if q == pt {
			st.parts = append(st.parts[:i:i], st.parts[i+1:]...)
			break
		}
	}
	st.evict(pt)
}
