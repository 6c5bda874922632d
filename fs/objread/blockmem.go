package objread

// block is the bytes of one cached block, counted: the cache holds one
// reference while the block is in its LRU, each reader one while it
// copies from the block or waits for its load, the disk cache one while
// the block waits in its write queue. A block from the cache's slabs
// (pooled) goes back to them at zero references, for the next load to
// fill: so a loaded block costs no page faults once the slabs are
// touched, and no zeroing by the garbage collector.
type block struct {
	data   []byte
	refs   int  // guarded by BlockCache.mu
	pooled bool // data is a slab's
}

// blockMem is the memory of the block cache's loads: slabs mapped
// outside the Go heap (mapBuf, transparent huge pages where the machine
// gives them on request), cut into blocks that are reused, never
// unmapped. A random read through a fresh heap buffer took a page fault
// per 4 KiB inside the socket read that filled it, and the collector
// returned evicted blocks' pages to the kernel for the next load to fault
// in again: traced on a 2-vCPU VM, a cold 64 KiB read's body took 0.5-0.9
// ms to arrive against 0.05-0.08 ms for the same bytes into a reused
// buffer. The slabs stop at limit bytes; loads past it (more in flight
// than the cache holds) get heap buffers, which the collector takes.
// Guarded by BlockCache.mu.
type blockMem struct {
	blockSize int64
	slab      int64 // bytes mapped at a time, a multiple of blockSize
	limit     int64
	mapped    int64
	free      [][]byte // blocks given back, each blockSize long
}

// slabSize is the most blockMem maps at once: four huge pages.
const slabSize = 8 << 20

// newBlockMem maps at most a quarter more than the cache holds (at least
// two blocks: one cached, one loading).
func newBlockMem(capacity, blockSize int64) blockMem {
	limit := max(capacity+capacity/4, 2*blockSize)
	slab := min(slabSize, limit) / blockSize * blockSize
	return blockMem{blockSize: blockSize, slab: slab, limit: limit}
}

// get returns a block buffer of blockSize bytes (whatever an earlier
// block left in it), or nil when the slabs are at their limit and none is
// free.
func (m *blockMem) get() []byte {
	if n := len(m.free); n > 0 {
		b := m.free[n-1]
		m.free[n-1] = nil
		m.free = m.free[:n-1]
		return b
	}
	if m.mapped+m.slab > m.limit {
		return nil
	}
	s, err := mapBuf(m.slab)
	if err != nil {
		return nil // no mappings here: heap buffers
	}
	m.mapped += m.slab
	for off := m.blockSize; off+m.blockSize <= m.slab; off += m.blockSize {
		m.free = append(m.free, s[off:off+m.blockSize:off+m.blockSize])
	}
	return s[:m.blockSize:m.blockSize]
}

// put gives back a buffer of get.
func (m *blockMem) put(b []byte) { m.free = append(m.free, b[:m.blockSize]) }

// newBlock returns a block of n bytes (at most the block size) for a
// load to fill, with no references: the loader owns it until finish.
func (c *BlockCache) newBlock(n int64) *block {
	c.mu.Lock()
	b := c.mem.get()
	c.mu.Unlock()
	if b == nil {
		return &block{data: make([]byte, n)}
	}
	return &block{data: b[:n], pooled: true}
}

// releaseLocked drops one reference to b; at none, a pooled block's
// memory goes back to the slabs.
func (c *BlockCache) releaseLocked(b *block) {
	b.refs--
	c.recycleLocked(b)
}

// recycleLocked gives b's memory back if nothing refers to it.
func (c *BlockCache) recycleLocked(b *block) {
	if b.refs == 0 && b.pooled {
		b.pooled = false // once: a stale second release must not give it back twice
		c.mem.put(b.data[:cap(b.data)])
		b.data = nil
	}
}

// release drops one reference to b.
func (c *BlockCache) release(b *block) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.releaseLocked(b)
}
