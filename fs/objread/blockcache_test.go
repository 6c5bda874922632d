package objread

import (
	"testing"
	"time"
)

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
