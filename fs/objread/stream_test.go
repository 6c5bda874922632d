package objread

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// streamStart is the offset of the read that starts the stream of a
// reader reading 128 KiB at a time from 0: the first past both the first
// read's load and SeqConfirm bytes of run.
func streamStart() int64 {
	c := DefaultConfig()
	return max(c.FirstRead, c.SeqConfirm-128*KiB)
}

// TestStreamStartsFullyParallel: the read that confirms a sequential
// reader sends Parallel part GETs at once (not one, then two, then four:
// at 50 ms per request, each doubling would cost a round trip).
func TestStreamStartsFullyParallel(t *testing.T) {
	f := newFakeStore()
	obj := f.put("seq", 512*MiB, `"s"`)
	pf := newTest(f, nil)
	r := pf.Open(obj)
	defer r.Close()
	if n, want := partsAtStart(t, f, r, obj, DefaultConfig().Parallel), DefaultConfig().Parallel; n != want {
		t.Errorf("%d part GETs sent before the first answered, want %d (Parallel)", n, want)
	}
}

// partsAtStart reads r sequentially from 0 until its stream starts and
// returns how many part GETs the stream sent before the first answered,
// once want of them wait and no more come for a moment. Reads before the
// stream pass at once; parts wait to be counted.
func partsAtStart(t *testing.T, f *fakeStore, r Reader, obj Object, want int) int {
	t.Helper()
	var mu sync.Mutex
	release := make(chan struct{})
	waiting, released := 0, false
	f.gate = func(ctx context.Context, off, n int64) error {
		if off < streamStart() {
			return nil // the block loads before the stream
		}
		mu.Lock()
		if released {
			mu.Unlock()
			return nil
		}
		waiting++
		mu.Unlock()
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	off := int64(0)
	for ; off < streamStart(); off += 128 * KiB {
		readAt(t, f, r, obj, off, 128*KiB)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		readAt(t, f, r, obj, off, 128*KiB) // starts the stream, waits for its first part
	}()
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return waiting
	}
	for deadline := time.Now().Add(5 * time.Second); count() < want && time.Now().Before(deadline); {
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // more than want would come now
	mu.Lock()
	n := waiting // none has answered yet
	released = true
	close(release)
	mu.Unlock()
	<-done
	return n
}

// TestStreamKeepsPartsInFlight: once a stream has ramped up, every read
// finds the window ahead of it filled with Parallel full-size parts (less
// the budget's reserve), in flight or waiting for the reader; and the
// memory budget holds.
func TestStreamKeepsPartsInFlight(t *testing.T) {
	f := newFakeStore()
	obj := f.put("seq", 320*MiB, `"s"`)
	budget := NewBudget(0)
	pf := newTest(f, budget)
	r := pf.Open(obj)
	defer r.Close()
	h := r.(*handle)
	cfg := DefaultConfig()
	const rampEnd = 64 * MiB // parts reach PartSize by then (1, 2, 4, 8 MiB)
	minAhead := int64(1 << 62)
	for off := int64(0); off < obj.Size; off += MiB {
		readAt(t, f, r, obj, off, MiB)
		if off < rampEnd || off+MiB+cfg.MaxWindow > obj.Size {
			continue
		}
		h.mu.Lock()
		ahead := h.st.frontier - h.st.pos
		h.mu.Unlock()
		minAhead = min(minAhead, ahead)
	}
	// The window leaves KeepBehind plus one part of the budget's share
	// for what the stream keeps behind the reader.
	want := min(cfg.MaxWindow, budget.Limit()-cfg.KeepBehind-cfg.PartSize) - cfg.PartSize
	if minAhead < want {
		t.Errorf("after the ramp, as little as %d MiB ahead of the reader, want ≥ %d MiB (%d parts of %d MiB)",
			minAhead/MiB, want/MiB, want/cfg.PartSize, cfg.PartSize/MiB)
	}
	if budget.Peak() > budget.Limit() {
		t.Errorf("budget peak %d over its limit %d", budget.Peak(), budget.Limit())
	}
}

func TestSequentialGrowsParallelParts(t *testing.T) {
	f := newFakeStore()
	f.latency = 2 * time.Millisecond
	obj := f.put("seq", 96*MiB+12345, `"e1"`)
	pf := newTest(f, nil)
	r := pf.Open(obj)
	defer r.Close()
	for off := int64(0); off < obj.Size; off += 128 * KiB {
		readAt(t, f, r, obj, off, 128*KiB)
	}
	reqs := f.requests()
	slices.SortFunc(reqs, func(a, b request) int { return cmp.Compare(a.off, b.off) })
	// Parts from 1 MiB doubling to 8 MiB (FirstPart to PartSize).
	if len(reqs) > 48 {
		t.Errorf("%d requests for a sequential read of 96 MiB, want ≤ 48", len(reqs))
	}
	if reqs[0].off != 0 || reqs[0].n != DefaultConfig().FirstRead {
		t.Errorf("first request %+v, want 0+FirstRead", reqs[0])
	}
	var fetched, largest int64
	for i, q := range reqs {
		if q.etag != obj.ETag {
			t.Errorf("request %d sent ETag %q, want the pinned %q", i, q.etag, obj.ETag)
		}
		fetched += q.n
		largest = max(largest, q.n)
		if i > 1 && i < len(reqs)-1 && q.n < reqs[i-1].n {
			t.Errorf("request %d is %d bytes, smaller than the one before (%d)", i, q.n, reqs[i-1].n)
		}
	}
	if largest < DefaultConfig().PartSize/2 {
		t.Errorf("largest request %d, want parts grown to at least %d", largest, DefaultConfig().PartSize/2)
	}
	if fetched != obj.Size {
		t.Errorf("fetched %d bytes for an object of %d", fetched, obj.Size)
	}
	if f.maxInflight < 2 { // TestStreamStartsFullyParallel checks how many, without timing
		t.Errorf("at most %d requests in flight, want parallel parts", f.maxInflight)
	}
	t.Logf("%d requests, max %d in flight, stats %+v", len(reqs), f.maxInflight, pf.Stats().Snapshot())
}

// TestReorderedReadsNoReset sends reads the way the kernel's async
// readahead does: slightly out of order, some backwards, some ahead.
func TestReorderedReadsNoReset(t *testing.T) {
	const chunk = 128 * KiB
	f := newFakeStore()
	obj := f.put("reorder", 40*MiB, `"e"`)
	r := newTest(f, nil).Open(obj)
	defer r.Close()
	n := obj.Size / chunk
	order := make([]int64, 0, n)
	for i := int64(0); i < n; i += 4 {
		// 2 before 1, 0 last, then 3: backwards by up to 256 KiB.
		for _, d := range []int64{2, 1, 0, 3} {
			if i+d < n {
				order = append(order, i+d)
			}
		}
	}
	for _, i := range order {
		readAt(t, f, r, obj, i*chunk, chunk)
	}
	// A 1 MiB forward skip, then a read behind it, then on.
	reqs := f.requests()
	if len(reqs) > 36 { // one stream: FirstRead, then parts doubling from 1 MiB
		t.Errorf("%d requests for 40 MiB read with reordering, want ≤ 36: the stream was reset", len(reqs))
	}
	var fetched int64
	for _, q := range reqs {
		fetched += q.n
	}
	if fetched > obj.Size {
		t.Errorf("fetched %d bytes for %d: data was fetched twice", fetched, obj.Size)
	}
}

// TestForwardSkipKeepsData skips ahead within the window: fetched data
// must be kept, the reads behind still served from it.
func TestForwardSkipKeepsData(t *testing.T) {
	const chunk = 128 * KiB
	f := newFakeStore()
	obj := f.put("skip", 64*MiB, "")
	r := newTest(f, nil).Open(obj)
	defer r.Close()
	off := int64(0)
	for ; off < 12*MiB; off += chunk {
		readAt(t, f, r, obj, off, chunk)
	}
	before := len(f.requests())
	readAt(t, f, r, obj, off+3*MiB, chunk) // ahead, data already fetched
	for ; off < 20*MiB; off += chunk {     // the skipped reads arrive late
		readAt(t, f, r, obj, off, chunk)
	}
	reqs := f.requests()
	for _, q := range reqs[before:] {
		if q.off < 12*MiB+4*MiB {
			t.Errorf("request %+v refetches data the stream had", q)
		}
	}
}

// TestFarStoreStreamShape: once the store's GETs take FarLatency or more
// to answer, a new stream sends FarParallel parts at once and grows them
// to FarPartSize, no larger; a near store's stream sends Parallel parts
// (TestStreamStartsFullyParallel).
func TestFarStoreStreamShape(t *testing.T) {
	f := newFakeStore()
	f.latency = 4 * time.Millisecond // at least: a timer never fires early
	obj := f.put("far", 512*MiB, `"f"`)
	pf := NewPrefetcher(f, Config{FarLatency: 3 * time.Millisecond}, nil, NewBlockCache(0, 0))
	cfg := pf.cfg
	r := pf.Open(obj)
	defer r.Close()
	if n := partsAtStart(t, f, r, obj, cfg.FarParallel); n != cfg.FarParallel {
		t.Errorf("%d part GETs sent before the first answered, want %d (FarParallel)", n, cfg.FarParallel)
	}
	if got := pf.Stats().FirstByte(); got < f.latency {
		t.Errorf("FirstByte %v, want at least the store's %v", got, f.latency)
	}
	for off := streamStart(); off < 160*MiB; off += MiB {
		readAt(t, f, r, obj, off, MiB)
	}
	var largest int64
	for _, q := range f.requests() {
		largest = max(largest, q.n)
	}
	if largest != cfg.FarPartSize {
		t.Errorf("largest GET %d MiB, want parts grown to FarPartSize (%d MiB), no larger", largest/MiB, cfg.FarPartSize/MiB)
	}
}
