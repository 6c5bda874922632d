package objread

import (
	"container/list"
	"context"
	"fmt"
	"io"
	"sync"
)

// BlockCache is a size-bounded LRU of fixed-size blocks of objects, shared
// by all handles. Concurrent loads of one block are merged: the first
// reader that misses loads it, later ones wait for that load (like restic's
// bloblru with singleflight). Contiguous missing blocks of one read are
// loaded with one ranged GET. Blocks are keyed by the object's location ID,
// ETag and size, so a changed object never serves stale bytes.
type BlockCache struct {
	blockSize int64
	capacity  int64

	mu      sync.Mutex
	lru     *list.List                 // guarded by mu; of *cacheEntry, most recent first
	items   map[blockKey]*list.Element // guarded by mu
	loading map[blockKey]*blockLoad    // guarded by mu
	size    int64                      // guarded by mu; bytes in lru
	mem     blockMem                   // guarded by mu

	disk *DiskCache // nil: no second tier; set before use
}

type blockKey struct {
	id, etag string
	size     int64 // of the object: a weak validator when there is no ETag
	index    int64
}

type cacheEntry struct {
	key blockKey
	b   *block
}

// blockLoad is one block being loaded; done is closed once b or err is
// set. Each of its waiters gets a reference to b.
type blockLoad struct {
	done    chan struct{}
	b       *block
	err     error
	waiters int  // guarded by BlockCache.mu; readers that will take a reference
	ended   bool // guarded by BlockCache.mu; done is closed
}

// NewBlockCache returns a cache of at most capacity bytes in blocks of
// blockSize bytes (defaults: DefaultCacheSize, DefaultBlockSize).
func NewBlockCache(capacity, blockSize int64) *BlockCache {
	if capacity <= 0 {
		capacity = DefaultCacheSize
	}
	if blockSize <= 0 {
		blockSize = DefaultBlockSize
	}
	return &BlockCache{
		blockSize: blockSize,
		capacity:  capacity,
		lru:       list.New(),
		items:     make(map[blockKey]*list.Element),
		loading:   make(map[blockKey]*blockLoad),
		mem:       newBlockMem(capacity, blockSize),
	}
}

// SetDisk adds an on-disk second tier: blocks of objects with an ETag
// that miss in memory are looked up there before the store, and blocks
// loaded from the store are written there in the background. Call it
// before the cache is used.
func (c *BlockCache) SetDisk(d *DiskCache) { c.disk = d }

// BlockSize returns the cache's block size.
func (c *BlockCache) BlockSize() int64 { return c.blockSize }

// Len returns the number of cached blocks and their total size.
func (c *BlockCache) Len() (blocks int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len(), c.size
}

// ReadAt fills p with obj's bytes at off (the caller clips p to the object's
// end). Blocks missing from the cache are loaded; loadEnd, when beyond the
// read, extends the load with the missing blocks that follow it (the first
// read of a handle uses it to absorb kernel readahead). Loads run detached
// from ctx: a reader that gives up does not fail the others waiting for
// the same blocks; they are bounded by rp (see fetchRange).
func (c *BlockCache) ReadAt(ctx context.Context, store Store, obj Object, p []byte, off, loadEnd int64, stats *Stats, rp Retry) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	end := off + int64(len(p))
	first, last := off/c.blockSize, (end-1)/c.blockSize
	loadEnd = min(max(loadEnd, end), obj.Size)
	lastLoad := (loadEnd - 1) / c.blockSize

	have := make([]*block, last-first+1) // each referenced
	waits := make([]*blockLoad, last-first+1)
	var mine []int64 // blocks this call loads, ascending
	c.mu.Lock()
	for i := first; i <= lastLoad; i++ {
		k := c.key(obj, i)
		if i > last { // readahead extension: only missing blocks right after
			if c.items[k] != nil || c.loading[k] != nil {
				break
			}
			c.loading[k] = &blockLoad{done: make(chan struct{})}
			mine = append(mine, i)
			continue
		}
		if e := c.items[k]; e != nil {
			c.lru.MoveToFront(e)
			b := e.Value.(*cacheEntry).b
			b.refs++
			have[i-first] = b
			stats.CacheHits.Add(1)
			continue
		}
		stats.CacheMisses.Add(1)
		if l := c.loading[k]; l != nil {
			l.waiters++
			waits[i-first] = l
			continue
		}
		l := &blockLoad{done: make(chan struct{}), waiters: 1}
		c.loading[k] = l
		waits[i-first] = l
		mine = append(mine, i)
	}
	c.mu.Unlock()

	c.startLoads(ctx, store, obj, mine, stats, rp, nil)
	defer c.unhold(have, waits)

	var done int
	for i := first; i <= last; i++ {
		b := have[i-first]
		if b == nil {
			l := waits[i-first]
			select {
			case <-l.done:
			case <-ctx.Done():
				return done, ctx.Err()
			}
			if l.err != nil {
				return done, l.err
			}
			b = l.b
		}
		data := b.data
		bstart := i * c.blockSize
		lo := max(off, bstart) - bstart
		hi := min(end, bstart+int64(len(data))) - bstart
		done += copy(p[done:], data[lo:hi])
	}
	return done, nil
}

// unhold drops the references a read took: on the blocks it found
// cached, and on those it waited for (or, for a load still running, its
// place among the waiters).
func (c *BlockCache) unhold(have []*block, waits []*blockLoad) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, b := range have {
		switch l := waits[i]; {
		case b != nil:
			c.releaseLocked(b)
		case l == nil:
		case !l.ended:
			l.waiters--
		case l.err == nil:
			c.releaseLocked(l.b)
		}
	}
}

// startLoads loads blocks (ascending) in the background as runs of
// contiguous blocks, one GET each, detached from ctx's cancellation. done,
// if not nil, is called once they all ended.
func (c *BlockCache) startLoads(ctx context.Context, store Store, obj Object, blocks []int64, stats *Stats, rp Retry, done func()) {
	var wg sync.WaitGroup
	for len(blocks) > 0 {
		n := 1
		for n < len(blocks) && blocks[n] == blocks[n-1]+1 {
			n++
		}
		wg.Add(1)
		go func(from, to int64) {
			defer wg.Done()
			c.load(context.WithoutCancel(ctx), store, obj, from, to, stats, rp)
		}(blocks[0], blocks[0]+int64(n))
		blocks = blocks[n:]
	}
	if done != nil {
		go func() {
			wg.Wait()
			done()
		}()
	}
}

// adopt loads the blocks of [off, end) of obj (off on a block boundary)
// from body, a GET of those bytes already answered (a handle's first, see
// handle.pin), as far as they are neither cached nor loading; the body is
// closed once read or not needed. It does not wait for the bytes.
func (c *BlockCache) adopt(ctx context.Context, store Store, obj Object, off, end int64, body *Body, stats *Stats, rp Retry) {
	from := off / c.blockSize
	to := from
	c.mu.Lock()
	for ; to*c.blockSize < end; to++ {
		k := c.key(obj, to)
		if c.items[k] != nil || c.loading[k] != nil {
			break
		}
		c.loading[k] = &blockLoad{done: make(chan struct{})}
	}
	c.mu.Unlock()
	if to == from {
		_ = body.Close() // another load has these blocks
		return
	}
	go c.fetch(context.WithoutCancel(ctx), store, obj, from, to, stats, rp, body)
}

// alignDown rounds off down to a block boundary.
func (c *BlockCache) alignDown(off int64) int64 { return off / c.blockSize * c.blockSize }

// Prefetch starts loading the blocks of [off, end) of obj that are neither
// cached nor loading, without waiting for them; readers that come for
// them meanwhile wait for these loads. done, if not nil, is called once
// the loads ended (at once when there are none).
func (c *BlockCache) Prefetch(ctx context.Context, store Store, obj Object, off, end int64, stats *Stats, rp Retry, done func()) {
	end = min(end, obj.Size)
	if off >= end {
		if done != nil {
			done()
		}
		return
	}
	var mine []int64
	c.mu.Lock()
	for i := off / c.blockSize; i <= (end-1)/c.blockSize; i++ {
		k := c.key(obj, i)
		if c.items[k] != nil || c.loading[k] != nil {
			continue
		}
		c.loading[k] = &blockLoad{done: make(chan struct{})}
		mine = append(mine, i)
	}
	c.mu.Unlock()
	if len(mine) == 0 && done != nil {
		done()
		return
	}
	c.startLoads(ctx, store, obj, mine, stats, rp, done)
}

func (c *BlockCache) key(obj Object, i int64) blockKey {
	return blockKey{id: obj.Loc.ID(), etag: obj.ETag, size: obj.Size, index: i}
}

// load loads blocks [from, to) of obj, caches them and wakes their
// waiters: from the disk cache when it has them, else with one GET per
// run of contiguous missing blocks.
func (c *BlockCache) load(ctx context.Context, store Store, obj Object, from, to int64, stats *Stats, rp Retry) {
	if !c.diskOn(obj) {
		c.fetch(ctx, store, obj, from, to, stats, rp, nil)
		return
	}
	var runs [][2]int64 // of blocks missing on disk
	for i := from; i < to; i++ {
		if data := c.diskBlock(obj, i, stats); data != nil {
			c.finish(obj, i, []*block{{data: data}}, nil, nil)
			continue
		}
		if k := len(runs) - 1; k >= 0 && runs[k][1] == i {
			runs[k][1]++
		} else {
			runs = append(runs, [2]int64{i, i + 1})
		}
	}
	for k, r := range runs {
		if k < len(runs)-1 {
			go c.fetch(ctx, store, obj, r[0], r[1], stats, rp, nil)
		} else {
			c.fetch(ctx, store, obj, r[0], r[1], stats, rp, nil)
		}
	}
}

// blockLen is the length of block i of obj (the last one may be short).
func (c *BlockCache) blockLen(obj Object, i int64) int64 {
	return min(c.blockSize, obj.Size-i*c.blockSize)
}

// fetch loads blocks [from, to) of obj from the store with one GET (or
// from first, a body of their bytes already answered), caches them (in
// memory now, on disk later) and wakes their waiters.
func (c *BlockCache) fetch(ctx context.Context, store Store, obj Object, from, to int64, stats *Stats, rp Retry, first *Body) {
	blocks := make([]*block, 0, to-from)
	bufs := make([][]byte, 0, to-from)
	for i := from; i < to; i++ {
		b := c.newBlock(c.blockLen(obj, i))
		blocks = append(blocks, b)
		bufs = append(bufs, b.data)
	}
	var disk *Stats // where the disk cache counts its writes; nil: no disk
	if c.diskOn(obj) {
		disk = stats
	}
	// Blocks are published as they fill: a reader waiting for the first
	// block of a long load does not wait for the whole GET.
	done := 0 // blocks published
	var filled, doneEnd int64
	publish := func(m int) {
		filled += int64(m)
		n, end := done, doneEnd
		for n < len(bufs) && filled >= end+int64(len(bufs[n])) {
			end += int64(len(bufs[n]))
			n++
		}
		if n == done {
			return
		}
		c.finish(obj, from+int64(done), blocks[done:n], nil, disk)
		done, doneEnd = n, end
	}
	err := fetchRangeFrom(ctx, store, obj, from*c.blockSize, bufs, publish, stats, rp, first)
	if done < len(bufs) {
		if err == nil {
			err = fmt.Errorf("read %s: blocks %d-%d not filled: %w", obj.Loc, from+int64(done), to-1, io.ErrUnexpectedEOF)
		}
		c.finish(obj, from+int64(done), blocks[done:], err, nil)
	}
}

// finish ends the loads of the blocks from from on (one per block, or as
// many with err), caching them on success and, with disk (the Stats it
// counts in), queueing them for the disk cache, never waited for. The
// blocks of a failed load go back to the slabs.
func (c *BlockCache) finish(obj Object, from int64, blocks []*block, err error, disk *Stats) {
	var queued []int // of blocks
	c.mu.Lock()
	for j, b := range blocks {
		k := c.key(obj, from+int64(j))
		l := c.loading[k]
		delete(c.loading, k)
		l.ended = true
		if err != nil {
			l.err = err
		} else {
			l.b = b
			b.refs += l.waiters
			if disk != nil {
				b.refs++
				queued = append(queued, j)
			}
			c.addLocked(k, b)
		}
		c.recycleLocked(b)
		close(l.done)
	}
	c.mu.Unlock()
	for _, j := range queued {
		b := blocks[j]
		c.disk.put(diskKey(obj, c.blockSize, from+int64(j)), b.data, disk, false, func() { c.release(b) })
	}
}

// addLocked inserts a block (taking the cache's reference) and evicts the
// least recently used ones beyond capacity.
func (c *BlockCache) addLocked(k blockKey, b *block) {
	if e := c.items[k]; e != nil {
		c.lru.MoveToFront(e)
		return
	}
	b.refs++
	c.items[k] = c.lru.PushFront(&cacheEntry{key: k, b: b})
	c.size += int64(len(b.data))
	for c.size > c.capacity && c.lru.Len() > 0 {
		e := c.lru.Back()
		ce := e.Value.(*cacheEntry)
		c.lru.Remove(e)
		delete(c.items, ce.key)
		c.size -= int64(len(ce.b.data))
		c.releaseLocked(ce.b)
	}
}

// diskOn reports whether obj's blocks go through the disk cache (only
// objects with an ETag: without one, staleness cannot be detected).
func (c *BlockCache) diskOn(obj Object) bool { return c.disk != nil && obj.ETag != "" }

// fetchThrough fills buf, obj's bytes from off, front to back, reporting
// each copy to progress (may be nil): blocks the disk cache has come from
// there, the others from the store, with one GET per run of missing
// blocks. The whole blocks fetched are queued for the disk (copied: buf
// is a stream's reused buffer), even when the fetch fails partway. Without
// a disk cache it is fetchRange. Prefetch streams and direct reads use it:
// they bypass the in-memory cache, not the disk.
func (c *BlockCache) fetchThrough(ctx context.Context, store Store, obj Object, off int64, buf []byte, progress func(int), stats *Stats, rp Retry) error {
	if !c.diskOn(obj) {
		return fetchRange(ctx, store, obj, off, [][]byte{buf}, progress, stats, rp)
	}
	report := func(m int) {
		if progress != nil {
			progress(m)
		}
	}
	end := off + int64(len(buf))
	// fill copies block i's data (which starts at or before pos) from pos.
	fill := func(pos, i int64, data []byte) int64 {
		bstart := i * c.blockSize
		m := copy(buf[pos-off:], data[pos-bstart:min(end, bstart+int64(len(data)))-bstart])
		report(m)
		return pos + int64(m)
	}
	for pos := off; pos < end; {
		if err := ctx.Err(); err != nil {
			return err
		}
		i := pos / c.blockSize
		if data := c.diskBlock(obj, i, stats); data != nil {
			pos = fill(pos, i, data)
			continue
		}
		// Fetch up to the next block the disk has.
		stop, j := end, i+1
		var next []byte
		for ; j*c.blockSize < end; j++ {
			if next = c.diskBlock(obj, j, stats); next != nil {
				stop = j * c.blockSize
				break
			}
		}
		var got int64
		err := fetchRange(ctx, store, obj, pos, [][]byte{buf[pos-off : stop-off]}, func(m int) {
			got += int64(m)
			report(m)
		}, stats, rp)
		c.diskPut(obj, pos, buf[pos-off:pos-off+got], stats)
		if err != nil {
			return err
		}
		pos = stop
		if next != nil {
			pos = fill(pos, j, next)
		}
	}
	return nil
}

// diskBlock returns block i of obj from the disk cache, or nil.
func (c *BlockCache) diskBlock(obj Object, i int64, stats *Stats) []byte {
	n := c.blockLen(obj, i)
	data := c.disk.get(diskKey(obj, c.blockSize, i), n)
	if data == nil {
		stats.DiskMisses.Add(1)
		return nil
	}
	stats.DiskHits.Add(1)
	stats.DiskBytesRead.Add(n)
	return data
}

// diskPut queues the whole blocks within buf, obj's bytes from off, for
// the disk cache, copied.
func (c *BlockCache) diskPut(obj Object, off int64, buf []byte, stats *Stats) {
	end := off + int64(len(buf))
	for i := alignUp(off, c.blockSize) / c.blockSize; ; i++ {
		bstart, n := i*c.blockSize, c.blockLen(obj, i)
		if n <= 0 || bstart+n > end {
			return
		}
		c.disk.put(diskKey(obj, c.blockSize, i), buf[bstart-off:bstart-off+n], stats, true, nil)
	}
}
