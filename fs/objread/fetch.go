package objread

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// fetchRange fills bufs, laid end to end, with the object's bytes from
// off. Bytes are written as they arrive and progress is called with each
// count, so readers can use a part before it is complete.
//
// A GET that fails, breaks or ends early is retried, resuming at the
// offset reached: at once after an attempt that brought bytes, else after
// an exponential backoff with jitter (or the server's Retry-After). The
// request fails once nothing has arrived for rp.Timeout, or after
// rp.MaxAttempts attempts; the error then wraps ErrTimeout,
// io.ErrUnexpectedEOF or the last store error, never a silent EOF.
// Final store errors (not found, denied, changed) are returned at once,
// and context errors as is.
func fetchRange(ctx context.Context, store Store, obj Object, off int64, bufs [][]byte, progress func(int), stats *Stats, rp Retry) error {
	return fetchRangeFrom(ctx, store, obj, off, bufs, progress, stats, rp, nil)
}

// fetchRangeFrom is fetchRange whose first attempt reads first, a body
// already opened at off (see openRange), when it is not nil.
func fetchRangeFrom(ctx context.Context, store Store, obj Object, off int64, bufs [][]byte, progress func(int), stats *Stats, rp Retry, first *Body) error {
	rp = rp.withDefaults()
	var total int64
	for _, b := range bufs {
		total += int64(len(b))
	}
	var (
		got      int64        // bytes written so far
		last     = time.Now() // of the last progress
		fails    int          // consecutive attempts without progress
		lastErr  error
		attempts int
	)
	for {
		if attempts > 0 {
			var d time.Duration
			if fails > 0 {
				d = max(rp.backoff(fails-1), retryAfterOf(lastErr))
			}
			if attempts >= rp.MaxAttempts || time.Since(last)+d >= rp.Timeout {
				return fmt.Errorf("read %s bytes %d-%d: got %d bytes: %w", obj.Loc, off, off+total-1, got,
					giveUp(lastErr, attempts, time.Since(last)))
			}
			if err := sleep(ctx, d); err != nil {
				return err
			}
			stats.Retries.Add(1)
		}
		attempts++
		w := newWatchdog(ctx, rp.Timeout-time.Since(last))
		var n int64
		body, err := first, error(nil)
		if first == nil {
			stats.Requests.Add(1)
			actx, answer := startAnswer(w.ctx)
			body, err = store.GetRange(actx, obj.Loc, off+got, total-got, obj.ETag)
			if err == nil {
				stats.firstByte.observe(answer.answered())
			}
		} else {
			// Opened on another context: stop it with this attempt's.
			b := first
			stop := context.AfterFunc(w.ctx, func() { _ = b.Close() }) // unblocks the read; its error is the one that counts
			defer stop()
			first = nil
		}
		if err == nil {
			n, err = readBody(body, bufs, got, func(m int) {
				last = time.Now()
				w.kick(rp.Timeout)
				if progress != nil {
					progress(m)
				}
			})
			_ = body.Close() // the bytes counted are in bufs; a close error changes nothing
		}
		stalled := w.stop()
		got += n
		stats.BytesFetched.Add(n)
		if got == total {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case stalled:
			err = fmt.Errorf("%w (nothing for %v)", ErrTimeout, rp.Timeout)
		case err == nil || errors.Is(err, io.EOF):
			err = fmt.Errorf("body ended early: %w", io.ErrUnexpectedEOF)
		case !Retryable(err):
			return err
		}
		lastErr = err
		if n > 0 {
			fails = 0
		} else {
			fails++
		}
	}
}

// readBody copies body into bufs starting skip bytes in, until bufs are
// full or the body ends. It returns the bytes copied and the error that
// stopped it (nil when bufs were filled).
func readBody(body io.Reader, bufs [][]byte, skip int64, progress func(int)) (int64, error) {
	var n int64
	for _, b := range bufs {
		if skip >= int64(len(b)) {
			skip -= int64(len(b))
			continue
		}
		b = b[skip:]
		skip = 0
		for len(b) > 0 {
			m, err := body.Read(b)
			if m > 0 {
				b = b[m:]
				n += int64(m)
				if progress != nil {
					progress(m)
				}
			}
			if err != nil {
				if len(b) == 0 && errors.Is(err, io.EOF) {
					break
				}
				return n, err
			}
		}
	}
	return n, nil
}

// openRange sends the first GET of an object whose version is not pinned
// (obj.ETag empty): bytes [off, off+n), unconditional, retried like
// fetchRange until a response arrives. The body tells the version (ETag)
// and the object's true size; the caller reads it, with fetchRangeFrom,
// using If-Match for any resumed attempt.
func openRange(ctx context.Context, store Store, obj Object, off, n int64, stats *Stats, rp Retry) (*Body, error) {
	rp = rp.withDefaults()
	start := time.Now()
	var lastErr error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			d := max(rp.backoff(attempt-1), retryAfterOf(lastErr))
			if attempt >= rp.MaxAttempts || time.Since(start)+d >= rp.Timeout {
				return nil, fmt.Errorf("read %s bytes %d-%d: %w", obj.Loc, off, off+n-1, giveUp(lastErr, attempt, time.Since(start)))
			}
			if err := sleep(ctx, d); err != nil {
				return nil, err
			}
			stats.Retries.Add(1)
		}
		stats.Requests.Add(1)
		// The body outlives this call, so its request runs on a context
		// of its own: cancelled with ctx or when no answer comes within
		// the timeout, and after that only when the body is closed.
		bctx, bcancel := context.WithCancelCause(context.WithoutCancel(ctx))
		timer := time.AfterFunc(rp.Timeout-time.Since(start), func() { bcancel(errStalled) })
		unhook := context.AfterFunc(ctx, func() { bcancel(context.Canceled) })
		actx, answer := startAnswer(bctx)
		body, err := store.GetRange(actx, obj.Loc, off, n, "")
		timer.Stop()
		unhook()
		stalled := context.Cause(bctx) == errStalled
		if err == nil && bctx.Err() == nil {
			stats.firstByte.observe(answer.answered())
			body.ReadCloser = &cancelOnClose{ReadCloser: body.ReadCloser, cancel: func() { bcancel(nil) }}
			return body, nil
		}
		if err == nil {
			_ = body.Close() // an answer that came too late: nothing to keep
		}
		bcancel(nil)
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case stalled:
			err = fmt.Errorf("%w (nothing for %v)", ErrTimeout, rp.Timeout)
		case !Retryable(err):
			return nil, err
		}
		lastErr = err
	}
}

// cancelOnClose ends a body's request context when the body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel func()
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}
