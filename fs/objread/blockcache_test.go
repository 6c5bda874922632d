package objread

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestBlockLoadPublishesEarly: a reader of the first block of a long
// block load gets it when that block has arrived, not when the whole GET
// has.
//
// It runs on synctest's clock, where the store's pace is exact: on the
// real one a loaded machine stretched the first block's few milliseconds
// past any bound short of the whole GET.
func TestBlockLoadPublishesEarly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeStore()
		f.rate = 8 * MiB // bytes per second: a 128 KiB block takes 15.6 ms, 1.125 MiB 140 ms
		obj := f.put("slow", 16*MiB, `"s"`)
		defer func() { // the load outlives the read and the handle: let it end in the bubble
			for f.bodiesOpen() > 0 {
				time.Sleep(time.Millisecond)
			}
		}()
		r := newTest(f, nil).Open(obj)
		defer r.Close()
		block := time.Duration(DefaultBlockSize * int64(time.Second) / f.rate)
		start := time.Now()
		readAt(t, f, r, obj, 0, 32*KiB) // a first read: loads FirstRead
		if d := time.Since(start); d > block {
			t.Errorf("first 32 KiB of a %d-byte load took %v, its block %v: waited for more than its block", DefaultConfig().FirstRead, d, block)
		}
	})
}

// TestLongLoadGoesParallel: a long run of missing blocks (a row of tiles, a
// predicted run) loads as parallel GETs of at most maxLoad each, exactly
// covering it, not as one GET that one connection's rate would bound.
func TestLongLoadGoesParallel(t *testing.T) {
	f := newFakeStore()
	// Each GET waits until all four are in flight (or fails after 10 s).
	var mu sync.Mutex
	arrived, all := 0, make(chan struct{})
	f.gate = func(ctx context.Context, off, n int64) error {
		mu.Lock()
		if arrived++; arrived == 4 {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
			return nil
		case <-time.After(10 * time.Second):
			return errors.New("the GETs of the run were not all in flight at once")
		}
	}
	obj := f.put("row", 16*MiB, `"r"`)
	c := NewBlockCache(0, 0)
	done := make(chan struct{})
	c.Prefetch(context.Background(), f, obj, 2*MiB+5, 5*MiB+512*KiB, new(Stats), Retry{}, func() { close(done) })
	<-done
	var got [][2]int64
	for _, q := range f.requests() {
		got = append(got, [2]int64{q.off, q.off + q.n})
	}
	slices.SortFunc(got, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	want := [][2]int64{{2 * MiB, 3 * MiB}, {3 * MiB, 4 * MiB}, {4 * MiB, 5 * MiB}, {5 * MiB, 5*MiB + 512*KiB}}
	if !slices.Equal(got, want) {
		t.Errorf("GETs %v, want %v", got, want)
	}
	p := make([]byte, 3*MiB+512*KiB)
	if _, err := c.ReadAt(context.Background(), f, obj, p, 2*MiB, 0, new(Stats), Retry{}); err != nil {
		t.Fatal(err)
	}
	if n := len(f.requests()); n != len(want) {
		t.Errorf("reading the loaded run sent %d more requests", n-len(want))
	}
	if !bytes.Equal(p, f.want(obj, 2*MiB, int64(len(p)))) {
		t.Error("the loaded run's bytes differ from the object's")
	}
}
