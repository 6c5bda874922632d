package objread

import (
	"sync"
	"time"
)

// bufPool holds the stream part buffers of a Prefetcher, mapped outside
// the Go heap (mapBuf): the garbage collector neither zeroes them nor
// counts them, and a buffer the pool drops goes back to the kernel at
// once. Buffers come in size classes, powers of two from minPart.
//
// A buffer given back is kept for the next part of its class while the
// buffers in use (the Budget's bytes) and the kept ones together stay
// within the Budget's limit: the mapped part buffers never exceed it. A
// stream reuses the pages its earlier parts faulted in (a fresh buffer
// costs a page fault per 4 KiB, or per 2 MiB on huge pages, inside the
// socket reads that fill it). Kept buffers are released once no part has
// been given back for idle and none is in use, so a mount between
// streams holds none.
type bufPool struct {
	budget *Budget
	idle   time.Duration

	mu     sync.Mutex
	free   [][][]byte     // guarded by mu; kept buffers by size class
	kept   int64          // guarded by mu; their bytes
	mapped int64          // guarded by mu; bytes of all mapped buffers, in use or kept
	maps   map[*byte]bool // guarded by mu; the mapped buffers, by first byte
	timer  *time.Timer    // guarded by mu; releases the kept buffers after idle
}

// bufIdle is how long kept buffers outlive the last part in use.
const bufIdle = 10 * time.Second

func newBufPool(budget *Budget, largest int64) *bufPool {
	return &bufPool{budget: budget, idle: bufIdle, free: make([][][]byte, bufClass(largest)+1), maps: make(map[*byte]bool)}
}

// get returns a buffer of n bytes (n already taken from the budget): a
// kept one of its class, else a new mapping. Kept buffers of other
// classes are released first as far as the new one would take the
// mapped bytes over the budget's limit.
func (p *bufPool) get(n int64) []byte {
	c := bufClass(n)
	size := n
	if c < len(p.free) {
		size = minPart << c
	}
	p.mu.Lock()
	if c < len(p.free) && len(p.free[c]) > 0 {
		l := p.free[c]
		b := l[len(l)-1]
		l[len(l)-1] = nil
		p.free[c] = l[:len(l)-1]
		p.kept -= size
		p.mu.Unlock()
		return b[:n]
	}
	for i := len(p.free) - 1; i >= 0 && p.kept > 0 && p.mapped+size > p.budget.Limit(); i-- {
		for len(p.free[i]) > 0 && p.mapped+size > p.budget.Limit() {
			p.dropLocked(i)
		}
	}
	b, err := mapBuf(size)
	if err != nil {
		p.mu.Unlock()
		return make([]byte, n) // the kernel refused: the heap's, not the pool's
	}
	p.mapped += size
	p.maps[&b[0]] = true
	p.mu.Unlock()
	return b[:n]
}

// put gives b (from get, no longer used by anyone) back: it is kept if
// it fits, else unmapped.
func (p *bufPool) put(b []byte) {
	b = b[:cap(b)]
	size := int64(len(b))
	c := bufClass(size)
	p.mu.Lock()
	defer p.mu.Unlock()
	if size == 0 || !p.maps[&b[0]] {
		return // a heap buffer (a refused mapping): the collector's
	}
	used := p.budget.Used() // b's bytes are already released
	if c >= len(p.free) || minPart<<c != size || used+p.kept+size > p.budget.Limit() {
		p.unmapLocked(b)
		return
	}
	p.free[c] = append(p.free[c], b)
	p.kept += size
	if p.timer == nil {
		p.timer = time.AfterFunc(p.idle, p.release)
	} else {
		p.timer.Reset(p.idle)
	}
}

// release unmaps the kept buffers once no part is in use (until then it
// looks again every idle).
func (p *bufPool) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.budget.Used() > 0 {
		p.timer.Reset(p.idle)
		return
	}
	for i := range p.free {
		for len(p.free[i]) > 0 {
			p.dropLocked(i)
		}
	}
}

// dropLocked unmaps one kept buffer of class c.
func (p *bufPool) dropLocked(c int) {
	l := p.free[c]
	b := l[len(l)-1]
	l[len(l)-1] = nil
	p.free[c] = l[:len(l)-1]
	p.kept -= int64(len(b))
	p.unmapLocked(b)
}

// unmapLocked unmaps b, a mapped buffer not kept.
func (p *bufPool) unmapLocked(b []byte) {
	delete(p.maps, &b[0])
	p.mapped -= int64(len(b))
	unmapBuf(b)
}

// Mapped returns the bytes of part buffers mapped now (in use or kept).
func (p *bufPool) Mapped() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mapped
}
