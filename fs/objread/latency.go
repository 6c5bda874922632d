package objread

import (
	"sync"
	"time"
)

// firstByte tracks how long the store takes to answer a GET (request sent
// to response headers): the least time among its last firstByteWindow
// answers, the store's latency without the load of the reads themselves.
// Under a stream's 16 parallel GETs on a busy machine the average answer
// takes several times the latency (70–150 ms from a store 20 ms away);
// the least stays near it.
type firstByte struct {
	mu   sync.Mutex
	last [firstByteWindow]time.Duration // ring of the last answers
	n    int                            // answers recorded
	min  time.Duration                  // least of last
}

// firstByteWindow is how many recent answers the least is taken over.
const firstByteWindow = 64

// observe records one answer's time.
func (f *firstByte) observe(d time.Duration) {
	d = max(d, 1)
	f.mu.Lock()
	defer f.mu.Unlock()
	i := f.n % firstByteWindow
	old := f.last[i]
	f.last[i] = d
	f.n++
	switch {
	case f.min == 0 || d <= f.min:
		f.min = d
	case old == f.min: // the least left the window
		f.min = d
		for _, v := range f.last[:min(f.n, firstByteWindow)] {
			f.min = min(f.min, v)
		}
	}
}

// get returns the least recent answer time, 0 before any answer.
func (f *firstByte) get() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.min
}
