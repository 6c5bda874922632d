package objread

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// readAt reads [off, off+n) from r and checks the bytes and the EOF
// contract against the fake object.
func readAt(t testing.TB, f *fakeStore, r Reader, obj Object, off, n int64) {
	t.Helper()
	p := make([]byte, n)
	got, err := r.ReadAt(context.Background(), p, off)
	want := f.want(obj, off, n)
	switch {
	case int64(len(want)) < n && !errors.Is(err, io.EOF):
		t.Fatalf("read %d+%d of %d: err %v, want io.EOF", off, n, obj.Size, err)
	case int64(len(want)) == n && err != nil:
		t.Fatalf("read %d+%d of %d: %v", off, n, obj.Size, err)
	case got != len(want):
		t.Fatalf("read %d+%d of %d: got %d bytes, want %d", off, n, obj.Size, got, len(want))
	case !bytes.Equal(p[:got], want):
		t.Fatalf("read %d+%d of %d: wrong bytes", off, n, obj.Size)
	}
}

func newTest(f *fakeStore, budget *Budget) *Prefetcher {
	return NewPrefetcher(f, Config{}, budget, NewBlockCache(0, 0))
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
	if f.maxInflight < 8 {
		t.Errorf("at most %d requests in flight, want ≥ 8 parallel parts", f.maxInflight)
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

func TestRandomReadsExactRanges(t *testing.T) {
	f := newFakeStore()
	obj := f.put("random", 512*MiB, `"r"`)
	pf := newTest(f, nil)
	r := pf.Open(obj)
	defer r.Close()
	rnd := rand.New(rand.NewPCG(3, 4))
	const reads = 300
	for range reads {
		off := rnd.Int64N(obj.Size/(4*KiB)) * 4 * KiB
		readAt(t, f, r, obj, off, 64*KiB)
	}
	reqs := f.requests()
	var fetched int64
	for i, q := range reqs {
		fetched += q.n
		if i > 0 && q.n > 2*DefaultBlockSize {
			t.Errorf("request %d: %d bytes for a 64 KiB random read", i, q.n)
		}
	}
	if per := fetched / reads; per > 2*MiB {
		t.Errorf("%d bytes fetched per 64 KiB random read, want ≤ 2 MiB", per)
	}
	if s := pf.Stats().Snapshot(); s.Parts != 0 {
		t.Errorf("random reads started %d prefetch parts", s.Parts)
	}
	t.Logf("%d requests, %d KiB per read", len(reqs), fetched/reads/KiB)
}

// TestMatchesObject checks bytes against the object for random workloads:
// reads crossing the end, empty and tiny objects, concurrent readers.
func TestMatchesObject(t *testing.T) {
	sizes := []int64{0, 1, 100, 128*KiB - 1, 128 * KiB, MiB + 5, 3*MiB + 128*KiB + 1, 37*MiB + 3}
	for _, size := range sizes {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			f := newFakeStore()
			f.chunk = 5000
			obj := f.put("obj", size, `"x"`)
			pf := NewPrefetcher(f, Config{}, NewBudget(24*MiB), NewBlockCache(2*MiB, 0))
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					r := pf.Open(obj)
					defer r.Close()
					rnd := rand.New(rand.NewPCG(uint64(size), uint64(g)))
					off := int64(0)
					for range 60 {
						n := rnd.Int64N(300*KiB) + 1
						switch rnd.IntN(4) {
						case 0: // random
							off = rnd.Int64N(size + 2)
						case 1: // near the end
							off = max(0, size-rnd.Int64N(200*KiB))
						}
						readAt(t, f, r, obj, off, n)
						off += n
					}
				})
			}
			wg.Wait()
		})
	}
}

func TestEmptyObject(t *testing.T) {
	f := newFakeStore()
	obj := f.put("empty", 0, `"z"`)
	r := newTest(f, nil).Open(obj)
	defer r.Close()
	n, err := r.ReadAt(context.Background(), make([]byte, 10), 0)
	if n != 0 || err != io.EOF {
		t.Fatalf("ReadAt on empty object = %d, %v; want 0, EOF", n, err)
	}
	if reqs := f.requests(); len(reqs) != 0 {
		t.Errorf("requests %v for an empty object", reqs)
	}
}

// TestConcurrentReadersOneHandle reads one handle from many goroutines,
// as the kernel does, and checks the bytes.
func TestConcurrentReadersOneHandle(t *testing.T) {
	const chunk = 128 * KiB
	f := newFakeStore()
	f.latency = time.Millisecond
	obj := f.put("par", 48*MiB+77, `"p"`)
	r := newTest(f, nil).Open(obj)
	defer r.Close()
	next := make(chan int64)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for off := range next {
				readAt(t, f, r, obj, off, chunk)
			}
		})
	}
	for off := int64(0); off < obj.Size; off += chunk {
		next <- off
	}
	close(next)
	wg.Wait()
	if n := len(f.requests()); n > 40 {
		t.Errorf("%d requests for a parallel sequential read of 48 MiB", n)
	}
}

// TestReadSlicesLendsPartBuffers: on a stream, ReadSlices hands out the
// parts' own buffers (no copy into scratch), and they stay valid, and
// counted in the budget, until released, even after the handle closed.
func TestReadSlicesLendsPartBuffers(t *testing.T) {
	f := newFakeStore()
	obj := f.put("lend", 32*MiB, `"e1"`)
	budget := NewBudget(64 * MiB)
	pf := newTest(f, budget)
	r := pf.Open(obj).(SliceReader)
	for off := int64(0); off < 4*MiB; off += MiB {
		readAt(t, f, r, obj, off, MiB)
	}
	scratch := make([]byte, MiB)
	off := 5 * MiB
	vecs, release, err := r.ReadSlices(context.Background(), scratch, off)
	if err != nil {
		release()
		t.Fatal(err)
	}
	lent := false
	var got []byte
	for _, v := range vecs {
		if !inside(v, scratch) {
			lent = true
		}
		got = append(got, v...)
	}
	if !bytes.Equal(got, f.want(obj, off, MiB)) {
		t.Fatalf("ReadSlices at %d: wrong bytes", off)
	}
	if !lent {
		t.Errorf("ReadSlices inside a stream copied into scratch; want the part's buffer lent")
	}
	r.Close()
	pf.fetches.Wait()
	if budget.Used() == 0 {
		t.Errorf("budget fully released while a buffer is still lent out")
	}
	var again []byte
	for _, v := range vecs {
		again = append(again, v...)
	}
	if !bytes.Equal(again, f.want(obj, off, MiB)) {
		t.Errorf("lent bytes changed after Close, before release")
	}
	release()
	if u := budget.Used(); u != 0 {
		t.Errorf("budget in use after release and Close: %d, want 0", u)
	}
}

// inside reports whether v lies within buf's memory.
func inside(v, buf []byte) bool {
	if len(v) == 0 || len(buf) == 0 {
		return false
	}
	start := uintptr(unsafe.Pointer(&buf[0]))
	p := uintptr(unsafe.Pointer(&v[0]))
	return p >= start && p < start+uintptr(len(buf))
}

// TestPartWaitSlowProgress: a reader waiting for bytes that arrive slowly
// but steadily is not timed out (the stall clock restarts with every
// arrival, though the reader is only woken when its bytes are in), and
// one whose bytes stop coming is, after about the stall time.
func TestPartWaitSlowProgress(t *testing.T) {
	pt := &part{off: 0, n: 100, buf: make([]byte, 100)}
	const stall = 60 * time.Millisecond
	go func() {
		for range 10 {
			time.Sleep(stall / 3)
			pt.progress(5)
		}
	}()
	start := time.Now()
	if err := pt.wait(context.Background(), 50, stall); err != nil {
		t.Fatalf("wait for 50 bytes arriving 5 every %v: %v", stall/3, err)
	}
	if d := time.Since(start); d < 2*stall {
		t.Errorf("wait returned after %v, before the bytes were in", d)
	}
	start = time.Now()
	err := pt.wait(context.Background(), 100, stall)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("wait for bytes that never come: %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 3*stall {
		t.Errorf("timed out after %v, want about %v", d, stall)
	}
}

// gdalRows reads like GDAL taking a window out of a tiled GeoTIFF through
// the kernel: a header, then rows of tiles far apart, each an 8 KiB read
// and then 1 MiB reads to rowLen. It returns the requests each row made.
func gdalRows(t *testing.T, f *fakeStore, r Reader, obj Object, first, stride, rowLen int64, rows int) [][]request {
	t.Helper()
	readAt(t, f, r, obj, 0, 32*KiB)
	var per [][]request
	for row := range rows {
		before := len(f.requests())
		off := first + int64(row)*stride
		readAt(t, f, r, obj, off, 8*KiB)
		for o := off + 8*KiB; o < off+rowLen; o += MiB {
			readAt(t, f, r, obj, o, min(MiB, off+rowLen-o))
		}
		per = append(per, f.requests()[before:])
	}
	return per
}

// TestJumpPredictsNextRow: after two rows, the third row's bytes were
// requested before the reader got there (predicted from the stride), so
// reading it waits on no request of its own; and random first reads of
// fresh handles predict nothing.
func TestJumpPredictsNextRow(t *testing.T) {
	f := newFakeStore()
	f.latency = 3 * time.Millisecond
	obj := f.put("cog", 256*MiB, `"c"`)
	pf := newTest(f, nil)
	r := pf.Open(obj)
	defer r.Close()
	const first, stride, rowLen = 100 * MiB, 30 * MiB, 3*MiB + 512*KiB
	per := gdalRows(t, f, r, obj, first, stride, rowLen, 4)
	covers := func(reqs []request, off, end int64) bool {
		for _, q := range reqs {
			if q.off <= off && q.off+q.n >= end {
				return true
			}
		}
		return false
	}
	row3 := first + 2*stride
	if !covers(per[1], row3, row3+MiB) {
		t.Errorf("row 2's requests %+v do not load row 3 ahead", per[1])
	}
	if len(per[2]) > 1 { // its own prediction of row 4
		t.Errorf("row 3 made requests %+v, want only the prediction of row 4", per[2])
	}
	if got := pf.Stats().Snapshot().Predicted; got < 2 {
		t.Errorf("predicted runs %d, want ≥ 2", got)
	}

	g := newFakeStore()
	obj2 := g.put("rand", 256*MiB, `"r"`)
	pf2 := newTest(g, nil)
	for i := range 20 {
		h := pf2.Open(obj2)
		readAt(t, g, h, obj2, int64(i+1)*7*MiB+12345, 64*KiB)
		h.Close()
	}
	if got := pf2.Stats().Snapshot().Predicted; got != 0 {
		t.Errorf("random reads of fresh handles predicted %d runs, want 0", got)
	}
	for _, q := range g.requests() {
		if q.n > 256*KiB {
			t.Errorf("random 64 KiB read fetched %d bytes", q.n)
		}
	}
}

// TestBlockLoadPublishesEarly: a reader of the first block of a long
// block load gets it when that block has arrived, not when the whole GET
// has.
func TestBlockLoadPublishesEarly(t *testing.T) {
	f := newFakeStore()
	f.rate = 8 * MiB // bytes per second: 1.125 MiB takes ~140 ms
	obj := f.put("slow", 16*MiB, `"s"`)
	r := newTest(f, nil).Open(obj)
	defer r.Close()
	start := time.Now()
	readAt(t, f, r, obj, 0, 32*KiB) // a first read: loads FirstRead
	if d := time.Since(start); d > 80*time.Millisecond {
		t.Errorf("first 32 KiB of a %d-byte load took %v: waited for the whole GET", DefaultConfig().FirstRead, d)
	}
}
