package objread

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// errDropped ends a part the handle cancelled (evicted, or the handle
// closed). A reader that meets it plans its read again.
var errDropped = errors.New("prefetch part dropped")

// part is one prefetch GET of a stream: bytes [off, off+len(buf)), filled
// front to back as the body arrives.
type part struct {
	off    int64
	n      int64 // length of the range; buf is nil once freed
	buf    []byte
	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{} // its stream's bound on parts fetching at once

	// Guarded by the handle's mu.
	refs    int   // readers copying from buf
	evicted bool  // out of the stream; buf is freed by the last reader
	served  int64 // bytes copied out, to tell read parts from skipped ones
	entered bool  // a read has reached it (the window grows once per part)

	mu     sync.Mutex
	filled int           // guarded by mu; buf[:filled] is valid
	done   bool          // guarded by mu
	err    error         // guarded by mu; set when done and filled < len(buf)
	wake   chan struct{} // guarded by mu; made by waiters, closed once filled reaches wakeAt or the fetch ends
	wakeAt int           // guarded by mu; the least fill a waiter needs
	// guarded by mu; when bytes last arrived (a waiter's stall clock)
	progressed time.Time
}

func (pt *part) end() int64 { return pt.off + pt.n }

// failed reports whether the fetch ended without filling the part.
func (pt *part) failed() bool {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.done && pt.err != nil
}

// progress records n more bytes written to buf.
func (pt *part) progress(n int) {
	pt.mu.Lock()
	pt.filled += n
	pt.progressed = time.Now()
	if pt.filled >= pt.wakeAt {
		pt.wakeLocked()
	}
	pt.mu.Unlock()
}

// finish records the end of the fetch.
func (pt *part) finish(err error) {
	pt.mu.Lock()
	pt.done = true
	if int64(pt.filled) < pt.n {
		pt.err = err
		if pt.err == nil {
			pt.err = errDropped
		}
	}
	pt.wakeLocked()
	pt.mu.Unlock()
}

func (pt *part) wakeLocked() {
	if pt.wake != nil {
		close(pt.wake)
		pt.wake = nil
	}
}

// wait blocks until buf[:need] is filled, the fetch failed, ctx ends, or
// the part made no progress for stall (then the error wraps ErrTimeout: a
// part queued behind stalled ones does not make its reader wait twice).
// A reader only waits for the bytes it needs, not for the whole part.
func (pt *part) wait(ctx context.Context, need int, stall time.Duration) error {
	start := time.Now()
	timer := time.NewTimer(stall)
	defer timer.Stop()
	for {
		pt.mu.Lock()
		if pt.filled >= need {
			pt.mu.Unlock()
			return nil
		}
		if pt.done {
			err := pt.err
			pt.mu.Unlock()
			return err
		}
		// Wake only when the bytes this reader needs are in: a reader
		// woken by every socket read of the fetch costs a context switch
		// each time.
		if pt.wake == nil {
			pt.wake, pt.wakeAt = make(chan struct{}), need
		} else {
			pt.wakeAt = min(pt.wakeAt, need)
		}
		w := pt.wake
		pt.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			pt.mu.Lock()
			last := pt.progressed
			pt.mu.Unlock()
			if last.Before(start) {
				last = start
			}
			quiet := time.Since(last)
			if quiet < stall {
				timer.Reset(stall - quiet) // bytes came, just not all we need yet
				continue
			}
			return fmt.Errorf("prefetch of bytes %d-%d: %w (nothing for %v)", pt.off, pt.end()-1, ErrTimeout, stall)
		}
	}
}
