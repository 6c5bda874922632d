package objread

import (
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
		f.rate = 8 * MiB // bytes per second: a 128 KiB block takes 15.6 ms, the 256 KiB first load 31 ms
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
