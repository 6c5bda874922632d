package objread

import "sync"

// Budget bounds the memory all handles' prefetch buffers use together.
// Acquisition never blocks: a handle the budget refuses shrinks its window
// or reads straight from the store, so no handle can wait on another.
type Budget struct {
	limit int64

	mu      sync.Mutex
	used    int64 // guarded by mu
	peak    int64 // guarded by mu
	streams int   // guarded by mu; handles with an active prefetch stream
}

// NewBudget returns a budget of limit bytes (DefaultMemoryLimit if limit
// is not positive).
func NewBudget(limit int64) *Budget {
	if limit <= 0 {
		limit = DefaultMemoryLimit
	}
	return &Budget{limit: limit}
}

// TryAcquire takes n bytes if they fit under the limit.
func (b *Budget) TryAcquire(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.limit {
		return false
	}
	b.used += n
	b.peak = max(b.peak, b.used)
	return true
}

// Release returns n bytes taken with TryAcquire.
func (b *Budget) Release(n int64) {
	b.mu.Lock()
	b.used -= n
	if b.used < 0 {
		b.used = 0 // a bookkeeping bug must not take the mount down
	}
	b.mu.Unlock()
}

// Limit returns the budget's size in bytes.
func (b *Budget) Limit() int64 { return b.limit }

// Used returns the bytes held now.
func (b *Budget) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Peak returns the most bytes ever held at once.
func (b *Budget) Peak() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.peak
}

// Streams returns the handles with an active prefetch stream (sequential
// windows) now.
func (b *Budget) Streams() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.streams
}

// share is the fair share of one stream: the limit split between the
// streams active now, so a new stream is not starved by old ones.
func (b *Budget) share() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.limit / int64(max(b.streams, 1))
}

func (b *Budget) addStream(d int) {
	b.mu.Lock()
	b.streams += d
	b.mu.Unlock()
}
