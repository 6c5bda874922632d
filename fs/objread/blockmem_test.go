package objread

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// readBlocks reads n bytes at off of obj through c and checks them.
func readBlocks(t *testing.T, ctx context.Context, c *BlockCache, f *fakeStore, obj Object, off, n int64) {
	t.Helper()
	p := make([]byte, n)
	if _, err := c.ReadAt(ctx, f, obj, p, off, 0, &Stats{}, Retry{}); err != nil {
		t.Fatalf("read %d at %d: %v", n, off, err)
	}
	if want := f.want(obj, off, n); !bytes.Equal(p, want) {
		t.Fatalf("read %d at %d: wrong bytes", n, off)
	}
}

// checkBlockMem waits for c's loads and disk writes to end, then checks
// that every cached block is referenced by the cache alone and that the
// slabs' memory is all either cached or free: no reference was lost
// (memory leaked) and none dropped twice.
func checkBlockMem(t *testing.T, c *BlockCache) {
	t.Helper()
	waitFor(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.loading) == 0
	})
	if c.disk != nil {
		c.disk.flush()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	pooled := 0
	for e := c.lru.Front(); e != nil; e = e.Next() {
		b := e.Value.(*cacheEntry).b
		if b.refs != 1 {
			t.Errorf("cached block %d has %d references, want the cache's only", e.Value.(*cacheEntry).key.index, b.refs)
		}
		if b.pooled {
			pooled++
		}
	}
	if got := int64(len(c.mem.free)+pooled) * c.blockSize; got != c.mem.mapped {
		t.Errorf("slabs: %d bytes mapped, %d blocks free and %d cached (%d bytes): references lost or dropped twice",
			c.mem.mapped, len(c.mem.free), pooled, got)
	}
	if c.mem.mapped > c.mem.limit {
		t.Errorf("slabs: %d bytes mapped, limit %d", c.mem.mapped, c.mem.limit)
	}
}

// A cache that evicts block after block reuses their memory: the slabs
// never pass their limit, and every read still has its own bytes.
func TestBlockMemoryReused(t *testing.T) {
	f := newFakeStore()
	const bs = 64 * KiB
	obj := f.put("random", 64*MiB, `"r"`)
	c := NewBlockCache(4*bs, bs)
	ctx := context.Background()
	for i := range int64(200) {
		readBlocks(t, ctx, c, f, obj, (i*7919%1000)*bs+100, 3000)
	}
	checkBlockMem(t, c)
	if c.mem.mapped == 0 {
		t.Fatal("no slab mapped: blocks came from the heap")
	}
}

// A block still referenced (a reader copying from it after the cache
// evicted it) keeps its bytes while later loads reuse other blocks'
// memory; given back, its memory is reused.
func TestHeldBlockKeepsItsBytes(t *testing.T) {
	f := newFakeStore()
	const bs = 64 * KiB
	obj := f.put("o", 8*MiB, `"o"`)
	c := NewBlockCache(bs, bs) // one block: each load evicts the one before
	ctx := context.Background()
	readBlocks(t, ctx, c, f, obj, 0, bs)

	c.mu.Lock()
	held := c.items[c.key(obj, 0)].Value.(*cacheEntry).b
	held.refs++ // as ReadAt does before it copies outside the lock
	c.mu.Unlock()
	want := f.want(obj, 0, bs)

	for i := int64(1); i < 40; i++ {
		readBlocks(t, ctx, c, f, obj, i*bs, bs)
	}
	if !bytes.Equal(held.data, want) {
		t.Fatal("a held block's bytes were overwritten by a later load: its memory was reused while referenced")
	}
	c.mu.Lock()
	free := len(c.mem.free)
	c.mu.Unlock()
	c.release(held)
	if held.data != nil {
		t.Error("the released block still has its memory")
	}
	c.mu.Lock()
	if len(c.mem.free) != free+1 {
		t.Errorf("%d free blocks after the release, want %d", len(c.mem.free), free+1)
	}
	c.mu.Unlock()
	checkBlockMem(t, c)
}

// Readers racing over a small cache (some giving up mid-wait) get their
// own bytes, and once they are done every reference they took is back:
// in memory only, and with the disk cache holding blocks in its queue.
func TestBlockRefsUnderLoad(t *testing.T) {
	for _, disk := range []bool{false, true} {
		t.Run(fmt.Sprintf("disk=%v", disk), func(t *testing.T) {
			f := newFakeStore()
			f.latency = 200 * time.Microsecond
			const bs = 32 * KiB
			objs := []Object{f.put("a", 4*MiB, `"a"`), f.put("b", 4*MiB+1000, `"b"`), f.put("c", 3*MiB, `"c"`)}
			c := NewBlockCache(6*bs, bs)
			if disk {
				dc, err := OpenDiskCache(t.TempDir(), 256*MiB, nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = dc.Close() })
				c.SetDisk(dc)
			}
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := rand.New(rand.NewPCG(uint64(g), 9))
					for range 150 {
						obj := objs[r.IntN(len(objs))]
						n := 1 + r.Int64N(3*bs)
						off := r.Int64N(obj.Size - n)
						ctx := context.Background()
						if r.IntN(5) == 0 { // gives up, perhaps while waiting
							var cancel context.CancelFunc
							ctx, cancel = context.WithTimeout(ctx, time.Duration(r.IntN(300))*time.Microsecond)
							defer cancel()
						}
						p := make([]byte, n)
						if _, err := c.ReadAt(ctx, f, obj, p, off, 0, &Stats{}, Retry{}); err != nil {
							if ctx.Err() == nil {
								t.Errorf("read %d at %d of %s: %v", n, off, obj.Loc, err)
							}
							continue
						}
						if !bytes.Equal(p, f.want(obj, off, n)) {
							t.Errorf("read %d at %d of %s: wrong bytes", n, off, obj.Loc)
						}
					}
				}()
			}
			wg.Wait()
			checkBlockMem(t, c)
		})
	}
}
