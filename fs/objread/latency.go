package objread

import (
	"context"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"
)

// firstByte tracks how long the store takes to answer a GET (request
// written to the first byte of the response, see answerTimer): the least
// time among its last firstByteWindow answers, the store's latency
// without the load of the reads themselves.
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

// answerTimer times one GET's answer for firstByte: from the request
// written on its connection to the response's first byte, as
// net/http/httptrace reports them. So what comes before the request is on
// the wire (a new connection's dial, signing, a wait for a free
// connection) does not count: a fresh mount's first GETs would otherwise
// make a store 20 ms away look far (and its first stream take the far
// shape). Stores that do not speak HTTP report nothing; the call's own
// time counts then.
type answerTimer struct {
	start time.Time
	wrote atomic.Int64 // UnixNano of the last request written; 0: none
	took  atomic.Int64 // nanoseconds from wrote to the first response byte; 0: none
}

// startAnswer returns ctx traced for an answerTimer started now.
func startAnswer(ctx context.Context) (context.Context, *answerTimer) {
	a := &answerTimer{start: time.Now()}
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { a.wrote.Store(time.Now().UnixNano()) },
		GotFirstResponseByte: func() {
			if w := a.wrote.Load(); w != 0 {
				a.took.Store(max(time.Now().UnixNano()-w, 1))
			}
		},
	}), a
}

// answered returns the answer's time: as traced, else since the start.
func (a *answerTimer) answered() time.Duration {
	if d := a.took.Load(); d > 0 {
		return time.Duration(d)
	}
	return time.Since(a.start)
}
