package objread

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"
)

// streamConcurrently reads n objects of about size bytes at once, front to
// back in 128 KiB reads, under a 32 MiB budget, checking every byte.
func streamConcurrently(t *testing.T, n int, size int64) (*Budget, StatsSnapshot) {
	t.Helper()
	const chunk = 128 * KiB
	f := newFakeStore()
	f.latency = time.Millisecond
	budget := NewBudget(32 * MiB)
	pf := NewPrefetcher(f, Config{}, budget, NewBlockCache(4*MiB, 0))
	var wg sync.WaitGroup
	for i := range n {
		obj := f.put(string(rune('a'+i)), size+int64(i), `"m"`)
		wg.Go(func() {
			r := pf.Open(obj)
			defer r.Close()
			for off := int64(0); off < obj.Size; off += chunk {
				readAt(t, f, r, obj, off, chunk)
			}
		})
	}
	wg.Wait()
	if peak := budget.Peak(); peak > budget.Limit() {
		t.Errorf("peak %d bytes over the %d budget", peak, budget.Limit())
	}
	s := pf.Stats().Snapshot()
	t.Logf("peak %d MiB, %+v", budget.Peak()/MiB, s)
	return budget, s
}

// TestBudgetManyHandles streams many files at once under a small budget:
// the budget is never exceeded, bytes stay right, all is released at close.
func TestBudgetManyHandles(t *testing.T) {
	budget, _ := streamConcurrently(t, 12, 16*MiB)
	waitFor(t, func() bool { return budget.Used() == 0 })
}

// TestFourStreamsShareBudget streams four files on a quarter-size budget
// (as four 1 GiB copies share the default one): the windows shrink to fit
// and no read has to fall back to the store.
func TestFourStreamsShareBudget(t *testing.T) {
	_, s := streamConcurrently(t, 4, 48*MiB)
	if s.DirectReads > 16 || s.Requests > 200 {
		t.Errorf("stats %+v: want windows that shrink, not direct reads", s)
	}
}

// TestBudgetExhaustedFallsBack reads with a budget too small for any part:
// reads go straight to the store and stay correct.
func TestBudgetExhaustedFallsBack(t *testing.T) {
	f := newFakeStore()
	obj := f.put("tiny-budget", 8*MiB, "")
	budget := NewBudget(1)
	pf := NewPrefetcher(f, Config{}, budget, nil)
	r := pf.Open(obj)
	defer r.Close()
	for off := int64(0); off < obj.Size; off += 128 * KiB {
		readAt(t, f, r, obj, off, 128*KiB)
	}
	if s := pf.Stats().Snapshot(); s.DirectReads == 0 || s.Parts != 0 {
		t.Errorf("stats %+v: want direct reads and no parts", s)
	}
}

func TestConcurrentBlockLoadsMerged(t *testing.T) {
	f := newFakeStore()
	f.latency = 20 * time.Millisecond
	obj := f.put("shared", 64*MiB, `"s"`)
	pf := newTest(f, nil)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			r := pf.Open(obj)
			defer r.Close()
			readAt(t, f, r, obj, 0, 16*KiB) // GDAL reading the header
			readAt(t, f, r, obj, 40*MiB, 64*KiB)
		})
	}
	wg.Wait()
	if reqs := f.requests(); len(reqs) != 2 {
		t.Errorf("32 handles reading the same two ranges made %d requests %v, want 2", len(reqs), reqs)
	}
	if s := pf.Stats().Snapshot(); s.CacheMisses+s.CacheHits < 64 {
		t.Errorf("stats %+v", s)
	}
}

func TestETagChanged(t *testing.T) {
	for _, tc := range []struct {
		name   string
		warmup bool // read sequentially first so a stream is running
		off    int64
	}{{"first read", false, 0}, {"random read", true, 20 * MiB}, {"stream", true, 2 * MiB}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeStore()
			obj := f.put("changing", 32*MiB, `"v1"`)
			r := newTest(f, nil).Open(obj)
			defer r.Close()
			if tc.warmup {
				for off := int64(0); off < 2*MiB; off += 128 * KiB {
					readAt(t, f, r, obj, off, 128*KiB)
				}
			}
			f.put("changing", 32*MiB, `"v2"`)
			// Bytes fetched before the change may still be served (they
			// are the pinned version); the first fetch after it must fail.
			var err error
			for off := tc.off; off < obj.Size && err == nil; off += 128 * KiB {
				_, err = r.ReadAt(context.Background(), make([]byte, 128*KiB), off)
			}
			if !errors.Is(err, ErrChanged) {
				t.Fatalf("read after the object changed: %v, want ErrChanged", err)
			}
		})
	}
}

func TestShortBodyRetried(t *testing.T) {
	f := newFakeStore()
	var mu sync.Mutex
	seen := map[int64]bool{}
	f.short = func(off, n int64) int64 { // every range's first answer is cut
		mu.Lock()
		defer mu.Unlock()
		if seen[off+n] || n < 1000 { // a resumed request ends where the first did
			return n
		}
		seen[off+n] = true
		return n / 3
	}
	obj := f.put("short", 20*MiB, `"s"`)
	pf := newTest(f, nil)
	r := pf.Open(obj)
	defer r.Close()
	for off := int64(0); off < obj.Size; off += 128 * KiB {
		readAt(t, f, r, obj, off, 128*KiB)
	}
	readAt(t, f, r, obj, 3*MiB, 64*KiB) // random read through the cache
	if s := pf.Stats().Snapshot(); s.Retries == 0 {
		t.Errorf("stats %+v: want retries", s)
	}
	for _, q := range f.requests() {
		if q.off+q.n > obj.Size {
			t.Errorf("bad request %+v", q)
		}
	}
}

func TestShortBodyTwiceIsError(t *testing.T) {
	f := newFakeStore()
	f.short = func(off, n int64) int64 { return n / 2 }
	obj := f.put("broken", 4*MiB, `"s"`)
	// (At offset 0 the first read's load is long and its first blocks,
	// whole after the first short body, are served: they are not partial.)
	for _, off := range []int64{3 * MiB, 4*MiB - 128*KiB} {
		r := newTest(f, nil).Open(obj)
		n, err := r.ReadAt(context.Background(), make([]byte, 128*KiB), off)
		if !errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || n != 0 {
			t.Errorf("read at %d with always-short bodies = %d, %v; want ErrUnexpectedEOF", off, n, err)
		}
		r.Close()
	}
}

// TestCancelDoesNotPoisonPart cancels one reader waiting on a part in
// flight; another reader of the same bytes still gets them, from the same
// GET.
//
// The store holds the GETs back until the cancelled reader has given up
// (with latency alone, a loaded machine let the bytes arrive within the
// reader's deadline, and a shared load end before the second reader came).
func TestCancelDoesNotPoisonPart(t *testing.T) {
	f := newFakeStore()
	first := streamStart()
	const shared = 50 * MiB // the block cache load two handles share
	partGate, cacheGate := make(chan struct{}), make(chan struct{})
	cacheAsked := make(chan struct{}, 1)
	f.gate = func(ctx context.Context, off, n int64) error {
		g := partGate
		switch {
		case off < first:
			return nil
		case off >= shared:
			g = cacheGate
			select {
			case cacheAsked <- struct{}{}:
			default:
			}
		}
		select {
		case <-g:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	obj := f.put("cancel", 64*MiB, `"c"`) // an ETag: handles send no pinning GET of their own
	pf := newTest(f, nil)
	r := pf.Open(obj)
	defer r.Close()
	for off := int64(0); off < first; off += 128 * KiB {
		readAt(t, f, r, obj, off, 128*KiB)
	}
	// This read starts the stream, and gives up before its part arrives.
	off := first
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	if _, err := r.ReadAt(ctx, make([]byte, 128*KiB), off); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read with a short deadline: %v", err)
	}
	close(partGate)
	readAt(t, f, r, obj, off, 128*KiB)
	readAt(t, f, r, obj, off+128*KiB, 128*KiB)
	atPart := 0
	for _, q := range f.requests() {
		if q.off == off {
			atPart++
		}
		if q.off > off && q.off < off+256*KiB || q.off == off && atPart > 1 {
			t.Errorf("request %+v: the cancelled read's part was fetched again", q)
		}
	}
	// Same for a block cache load shared by two handles: r1 starts it and
	// gives up, r2 joins it while it is still held back.
	r1, r2 := pf.Open(obj), pf.Open(obj)
	defer r1.Close()
	defer r2.Close()
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	if _, err := r1.ReadAt(ctx, make([]byte, 64*KiB), shared); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled cache read: %v", err)
	}
	<-cacheAsked // r1's load is in flight
	misses := pf.Stats().Snapshot().CacheMisses
	go func() {
		// Release the load once r2 waits for it.
		for pf.Stats().Snapshot().CacheMisses == misses {
			time.Sleep(time.Millisecond)
		}
		close(cacheGate)
	}()
	readAt(t, f, r2, obj, shared, 64*KiB)
	n := 0
	for _, q := range f.requests() {
		if q.off >= shared {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d requests for the shared block, want 1: the cancelled reader's load was not shared", n)
	}
}

func TestCloseReleasesBudget(t *testing.T) {
	f := newFakeStore()
	f.latency = 5 * time.Millisecond
	obj := f.put("close", 128*MiB, "")
	budget := NewBudget(0)
	pf := NewPrefetcher(f, Config{}, budget, nil)
	r := pf.Open(obj)
	for off := int64(0); off < 6*MiB; off += 128 * KiB {
		readAt(t, f, r, obj, off, 128*KiB)
	}
	if budget.Used() == 0 {
		t.Fatal("no prefetch buffers held while streaming")
	}
	r.Close()
	waitFor(t, func() bool { return budget.Used() == 0 })
	if _, err := r.ReadAt(context.Background(), make([]byte, 10), 0); err == nil {
		t.Error("read after Close succeeded")
	}
}

// TestStoreErrorNotSticky fails one part's GET: the read fails, the next
// read of the same bytes fetches them again.
func TestStoreErrorNotSticky(t *testing.T) {
	f := newFakeStore()
	var mu sync.Mutex
	failed := false
	boom := errors.New("connection reset")
	f.fail = func(off, n int64) error {
		mu.Lock()
		defer mu.Unlock()
		if off > 2*MiB && !failed {
			failed = true
			return boom
		}
		return nil
	}
	obj := f.put("flaky", 32*MiB, "")
	r := newTest(f, nil).Open(obj)
	defer r.Close()
	for off := int64(0); off < obj.Size; off += 128 * KiB {
		p := make([]byte, 128*KiB)
		if _, err := r.ReadAt(context.Background(), p, off); err != nil && !errors.Is(err, boom) {
			t.Fatalf("read at %d: %v", off, err)
		}
		readAt(t, f, r, obj, off, 128*KiB) // the error did not stick
	}
	mu.Lock()
	defer mu.Unlock()
	if !failed {
		t.Error("no request failed")
	}
}

// waitFor polls cond until it holds. The deadline only ends a test whose
// condition never comes: 1 s was within reach of a -race run on a loaded
// machine.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 20 s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}
