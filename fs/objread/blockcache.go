package objread

import (
	"container/list"
	"context"
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
}

type blockKey struct {
	id, etag string
	size     int64 // of the object: a weak validator when there is no ETag
	index    int64
}

type cacheEntry struct {
	key  blockKey
	data []byte
}

// blockLoad is one block being loaded; done is closed once data or err is set.
type blockLoad struct {
	done chan struct{}
	data []byte
	err  error
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
	}
}

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

	have := make([][]byte, last-first+1)
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
			have[i-first] = e.Value.(*cacheEntry).data
			stats.CacheHits.Add(1)
			continue
		}
		stats.CacheMisses.Add(1)
		if l := c.loading[k]; l != nil {
			waits[i-first] = l
			continue
		}
		l := &blockLoad{done: make(chan struct{})}
		c.loading[k] = l
		waits[i-first] = l
		mine = append(mine, i)
	}
	c.mu.Unlock()

	// Load this call's blocks as runs of contiguous blocks, one GET each.
	for len(mine) > 0 {
		n := 1
		for n < len(mine) && mine[n] == mine[n-1]+1 {
			n++
		}
		go c.load(context.WithoutCancel(ctx), store, obj, mine[0], mine[0]+int64(n), stats, rp)
		mine = mine[n:]
	}

	var done int
	for i := first; i <= last; i++ {
		data := have[i-first]
		if data == nil {
			l := waits[i-first]
			select {
			case <-l.done:
			case <-ctx.Done():
				return done, ctx.Err()
			}
			if l.err != nil {
				return done, l.err
			}
			data = l.data
		}
		bstart := i * c.blockSize
		lo := max(off, bstart) - bstart
		hi := min(end, bstart+int64(len(data))) - bstart
		done += copy(p[done:], data[lo:hi])
	}
	return done, nil
}

func (c *BlockCache) key(obj Object, i int64) blockKey {
	return blockKey{id: obj.Loc.ID(), etag: obj.ETag, size: obj.Size, index: i}
}

// load fetches blocks [from, to) of obj with one GET, caches them and wakes
// their waiters.
func (c *BlockCache) load(ctx context.Context, store Store, obj Object, from, to int64, stats *Stats, rp Retry) {
	bufs := make([][]byte, 0, to-from)
	for i := from; i < to; i++ {
		n := min(c.blockSize, obj.Size-i*c.blockSize)
		bufs = append(bufs, make([]byte, n))
	}
	err := fetchRange(ctx, store, obj, from*c.blockSize, bufs, nil, stats, rp)
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := from; i < to; i++ {
		k := c.key(obj, i)
		l := c.loading[k]
		delete(c.loading, k)
		if err != nil {
			l.err = err
		} else {
			l.data = bufs[i-from]
			c.addLocked(k, l.data)
		}
		close(l.done)
	}
}

// addLocked inserts a block and evicts the least recently used ones beyond
// capacity.
func (c *BlockCache) addLocked(k blockKey, data []byte) {
	if e := c.items[k]; e != nil {
		c.lru.MoveToFront(e)
		return
	}
	c.items[k] = c.lru.PushFront(&cacheEntry{key: k, data: data})
	c.size += int64(len(data))
	for c.size > c.capacity && c.lru.Len() > 0 {
		e := c.lru.Back()
		ce := e.Value.(*cacheEntry)
		c.lru.Remove(e)
		delete(c.items, ce.key)
		c.size -= int64(len(ce.data))
	}
}
