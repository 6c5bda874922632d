package objread

import (
	"testing"
	"time"
)

// TestPartBuffersReused: a stream's next part of a size class gets the
// buffer the last one gave back (its pages are already faulted in), and
// a buffer of another size is a mapping of its own.
func TestPartBuffersReused(t *testing.T) {
	pf := NewPrefetcher(newFakeStore(), DefaultConfig(), NewBudget(0), nil)
	a := pf.getBuf(8 * MiB)
	a[0], a[len(a)-1] = 0xab, 0xcd
	pf.putBuf(a)
	if got := pf.bufs.Mapped(); got != 8*MiB {
		t.Errorf("%d bytes mapped after a buffer was given back, want it kept (8 MiB)", got)
	}
	b := pf.getBuf(8 * MiB)
	if b[0] != 0xab || b[len(b)-1] != 0xcd || pf.bufs.Mapped() != 8*MiB {
		t.Errorf("a new 8 MiB part got a new buffer while one of its size was kept")
	}
	c := pf.getBuf(4 * MiB)
	if &c[0] == &b[0] {
		t.Fatalf("two buffers in use share memory")
	}
	if got, want := pf.bufs.Mapped(), 12*MiB; got != want {
		t.Errorf("%d bytes mapped, want %d", got, want)
	}
	pf.putBuf(b)
	pf.putBuf(c)
}

// TestPartBuffersWithinBudget: while a sequential reader streams through
// parts of every size (1 MiB doubling to 8 MiB) and random reads come
// between, the part buffers mapped (in use or kept for reuse) never
// exceed the budget's limit; once the reader is gone and the pool has
// been idle, none is left.
func TestPartBuffersWithinBudget(t *testing.T) {
	f := newFakeStore()
	obj := f.put("seq", 200*MiB, `"s"`)
	budget := NewBudget(24 * MiB)
	pf := NewPrefetcher(f, Config{FarLatency: time.Hour}, budget, NewBlockCache(0, 0))
	pf.bufs.idle = 20 * time.Millisecond
	var peak int64
	for round := range 3 { // each round starts a new stream with small parts
		r := pf.Open(obj)
		for off := int64(round) * MiB; off < 96*MiB; off += 512 * KiB {
			readAt(t, f, r, obj, off, 512*KiB)
			peak = max(peak, pf.bufs.Mapped())
		}
		r.Close()
	}
	pf.fetches.Wait()
	if peak > budget.Limit() {
		t.Errorf("part buffers mapped up to %d MiB, over the budget's %d MiB", peak/MiB, budget.Limit()/MiB)
	}
	if peak == 0 {
		t.Fatalf("no part buffer was mapped: the reads did not stream")
	}
	deadline := time.Now().Add(5 * time.Second)
	for pf.bufs.Mapped() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if m := pf.bufs.Mapped(); m != 0 {
		t.Errorf("%d bytes of part buffers still mapped after the streams ended and the pool was idle", m)
	}
}
