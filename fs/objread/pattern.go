package objread

// pattern is what a handle remembers of its recent reads, and observe is
// the one place that decides what a read is: the first read (a header, or
// the start of a stream), a random read (block cache), a jump that
// predicts the next run, or a sequential run that starts, keeps or drops
// the stream. It only decides; the handle carries the decision out.
type pattern struct {
	reads    int
	runStart int64 // the current run of contiguous (or nearly) reads
	runEnd   int64
	cacheEnd int64 // end of the last range loaded through the block cache
	firstEnd int64 // end of the first read's load (a header, with readahead)
	outside  int   // consecutive reads outside the stream
	// The run expected next, loading into the block cache: after a long
	// run and a jump of d, the bytes d further on (see predict).
	predOff, predEnd int64
}

// patternEnv is what observe needs to know of the handle's object and
// setup.
type patternEnv struct {
	cfg        *Config
	blockSize  int64
	size       int64 // of the object
	disk       bool  // its blocks go through the disk cache
	seqConfirm int64 // a run this long is sequential
}

// streamView is what observe needs to know of the handle's stream.
type streamView struct {
	active   bool
	covers   func(off int64) bool // the read at off belongs to the stream
	frontier int64
}

// span is a byte range [Off, End) of an object.
type span struct{ Off, End int64 }

// decision is what a read is, for the handle to carry out.
type decision struct {
	advance   bool  // a stream read: move the stream's reader to the read's end
	drop      bool  // stop the stream (random reads, or a restart)
	start     bool  // start a stream at startAt
	startAt   int64 //
	loadEnd   int64 // block cache: extend this read's load to here (0: its blocks)
	prefetch  []span
	predicted bool // prefetch holds a predicted next run
}

// firstLoad is how far a handle's first read of [off, end) loads through
// the block cache: at least FirstRead from the start of the file (a
// header: the kernel's first readahead after it, and the many opens GDAL
// makes of one file, share it), else the read's own blocks (a tile).
func firstLoad(off, end int64, cfg *Config, bs, size int64) int64 {
	loadEnd := alignUp(end, bs)
	if off < bs {
		loadEnd = max(loadEnd, off/bs*bs+cfg.FirstRead)
	}
	return min(loadEnd, size)
}

// observe records a read of [off, end) and decides what it is.
func (pat *pattern) observe(off, end int64, st streamView, env patternEnv) decision {
	cfg, bs := env.cfg, env.blockSize
	var d decision
	pat.reads++
	near := pat.reads > 1 && off >= pat.runEnd-cfg.KeepBehind && off <= pat.runEnd+cfg.Slack
	inStream := st.active && st.covers(off)
	// Bytes loading into the cache for the run this read is in: predicted
	// by an earlier jump, or by this one (predict).
	var runLoad int64
	if off >= pat.predOff && off < pat.predEnd {
		runLoad = pat.predEnd
	}
	if near {
		pat.runStart, pat.runEnd = min(pat.runStart, off), max(pat.runEnd, end)
	} else {
		if pat.reads > 1 && !inStream {
			runLoad = max(runLoad, pat.predict(off, env, &d))
		}
		pat.runStart, pat.runEnd = off, end
	}
	if inStream {
		pat.outside = 0
		d.advance = true
		return d
	}
	active := st.active
	if active {
		pat.outside++
		if pat.outside >= cfg.RandomAfter {
			d.drop, active = true, false
		}
	}
	if pat.reads == 1 {
		d.loadEnd = firstLoad(off, end, cfg, bs, env.size)
		pat.cacheEnd = alignUp(d.loadEnd, bs)
		pat.firstEnd = d.loadEnd
		return d
	}
	seq := pat.runEnd-pat.runStart >= env.seqConfirm && end > pat.cacheEnd
	if seq && (!active || off > st.frontier+cfg.Slack) {
		d.drop = d.drop || active
		d.start, d.startAt = true, off
		if off < pat.cacheEnd {
			d.startAt = pat.cacheEnd // the cache holds the bytes before
		} else if env.disk {
			d.startAt = off / bs * bs // parts on block boundaries: their blocks go to disk whole
		}
		return d
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
	return d
}

// predict is called when a read at off jumps away from the current run.
// After a long run (GDAL reading a row of tiles, QGIS a row of a view)
// such a jump usually starts another run like it, and a jump forward of d
// means the one after starts d further on (the next row of tiles). So both
// go into d.prefetch, to load into the block cache now, as many bytes as
// the run just ended (at most PartSize), each with one GET in the
// background: this run then costs one request's latency rather than a
// block load and then a stream's, and the next costs none. A wrong guess
// costs those bytes once. It returns the end of this run's load, or 0.
func (pat *pattern) predict(off int64, env patternEnv, d *decision) int64 {
	cfg, bs := env.cfg, env.blockSize
	last := pat.runEnd - pat.runStart
	jump := off - pat.runStart
	if last < cfg.SeqConfirm || jump <= last {
		return 0 // a short run, or a jump back
	}
	n := min(last, cfg.PartSize)
	// This run: from the block after the one the read itself loads.
	cur := min(off+n, env.size)
	d.prefetch = append(d.prefetch, span{off/bs*bs + bs, cur})
	if from, to := (off+jump)/bs*bs, min(off+jump+n, env.size); from < to {
		pat.predOff, pat.predEnd = from, to
		d.prefetch = append(d.prefetch, span{from, to})
		d.predicted = true
	}
	return cur
}

func alignUp(v, a int64) int64 { return (v + a - 1) / a * a }
