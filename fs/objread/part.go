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
	pooled bool // buf came from the handle's pool and goes back to it
	ctx    context.Context
	cancel context.CancelFunc

	// Guarded by the handle's mu.
	refs    int   // readers copying from buf
	evicted bool  // out of the stream; buf is freed by the last reader
	served  int64 // bytes copied out, to tell read parts from skipped ones
	entered bool  // a read has reached it (the window grows once per part)

	mu     sync.Mutex
	filled int           // guarded by mu; buf[:filled] is valid
	done   bool          // guarded by mu
	err    error         // guarded by mu; set when done and filled < len(buf)
	wake   chan struct{} // guarded by mu; closed on progress, made by waiters
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
	pt.wakeLocked()
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
		if pt.wake == nil {
			pt.wake = make(chan struct{})
		}
		w := pt.wake
		pt.mu.Unlock()
		select {
		case <-w:
			timer.Reset(stall)
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return fmt.Errorf("prefetch of bytes %d-%d: %w (nothing for %v)", pt.off, pt.end()-1, ErrTimeout, stall)
		}
	}
}
