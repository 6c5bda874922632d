package objread

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/prescient/prescientfs/creds"
	"github.com/prescient/prescientfs/stacindex"
)

// ErrTimeout: the store sent nothing (no answer, no body bytes) for the
// I/O timeout, retries included. It maps to EIO.
var ErrTimeout = errors.New("no data from the object store within the I/O timeout")

// Retry bounds how long the read path waits for a store and how it
// retries. Zero fields take the defaults of DefaultRetry.
//
// The bound is on progress, not on the size of a request: a request fails
// once it has received nothing for Timeout (across all its attempts), so a
// read against a dead or hung server fails within Timeout, while a large
// part on a slow link keeps going as long as bytes arrive.
type Retry struct {
	// Timeout is the longest a request may go without progress.
	Timeout time.Duration
	// MaxAttempts bounds the attempts of one request, the first included.
	MaxAttempts int
	// BaseDelay and MaxDelay shape the exponential backoff between
	// attempts (with jitter: each delay is in [d/2, d]). A Retry-After the
	// server sends is honoured when it fits in what is left of Timeout.
	BaseDelay, MaxDelay time.Duration
}

// DefaultRetry: 30 s without progress, at most 20 attempts, backoff from
// 100 ms doubling to 2 s.
func DefaultRetry() Retry {
	return Retry{Timeout: 30 * time.Second, MaxAttempts: 20, BaseDelay: 100 * time.Millisecond, MaxDelay: 2 * time.Second}
}

func (r Retry) withDefaults() Retry {
	d := DefaultRetry()
	if r.Timeout <= 0 {
		r.Timeout = d.Timeout
	}
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = d.MaxAttempts
	}
	if r.BaseDelay <= 0 {
		r.BaseDelay = d.BaseDelay
	}
	if r.MaxDelay <= 0 {
		r.MaxDelay = d.MaxDelay
	}
	r.MaxDelay = max(r.MaxDelay, r.BaseDelay)
	return r
}

// backoff is the delay before retry number n (0-based) of attempts that
// made no progress: BaseDelay·2^n capped at MaxDelay, with full jitter in
// its upper half.
func (r Retry) backoff(n int) time.Duration {
	d := min(r.BaseDelay<<min(n, 20), r.MaxDelay)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1)) // #nosec G404 -- jitter spreads retries; it guards nothing
}

// Retryable reports whether a store error may go away on retry: network
// errors, broken or short bodies, 429 and 5xx. Not found, denied, changed
// and credentials only a person can renew are final.
func Retryable(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrDenied), errors.Is(err, ErrChanged), errors.Is(err, errBeyondEnd),
		errors.Is(err, stacindex.ErrUnsupportedHref), creds.IsAuthError(err):
		return false
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.Temporary()
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		if re.Response == nil || re.Response.Response == nil {
			return true
		}
		// Status 0: no response at all (connection refused or reset).
		c := re.HTTPStatusCode()
		return c == 0 || c == http.StatusTooManyRequests || c >= 500 || c == http.StatusRequestTimeout
	}
	return true
}

// retryAfterOf returns the wait the server asked for, if any.
func retryAfterOf(err error) time.Duration {
	var se *StatusError
	if errors.As(err, &se) {
		return se.RetryAfter
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil && re.Response.Response != nil {
		return retryAfter(re.Response.Header.Get("Retry-After"))
	}
	return 0
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// errStalled is the cause set on an attempt's context when its watchdog
// fires.
var errStalled = errors.New("stalled")

// watchdog cancels an attempt that gets no progress for a while.
type watchdog struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
}

func newWatchdog(parent context.Context, d time.Duration) *watchdog {
	ctx, cancel := context.WithCancelCause(parent)
	w := &watchdog{ctx: ctx, cancel: cancel}
	w.timer = time.AfterFunc(d, func() { cancel(errStalled) })
	return w
}

// kick pushes the deadline d into the future.
func (w *watchdog) kick(d time.Duration) { w.timer.Reset(d) }

// stop ends the attempt and reports whether the watchdog had fired.
func (w *watchdog) stop() (stalled bool) {
	w.timer.Stop()
	stalled = context.Cause(w.ctx) == errStalled && w.ctx.Err() != nil
	w.cancel(nil)
	return stalled
}

// Retrying wraps a Store so that Stat has a deadline and is retried with
// backoff (honouring Retry-After) within Retry.Timeout. GetRange passes
// through: the read path retries ranges itself, resuming at the offset it
// reached.
type Retrying struct {
	Store
	Retry Retry
}

var _ Store = Retrying{}

// Stat implements Store.
func (r Retrying) Stat(ctx context.Context, loc stacindex.Location) (ObjectInfo, error) {
	rp := r.Retry.withDefaults()
	start := time.Now()
	var lastErr error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			d := max(rp.backoff(attempt-1), retryAfterOf(lastErr))
			if attempt >= rp.MaxAttempts || time.Since(start)+d >= rp.Timeout {
				return ObjectInfo{}, giveUp(lastErr, attempt, time.Since(start))
			}
			if err := sleep(ctx, d); err != nil {
				return ObjectInfo{}, err
			}
		}
		w := newWatchdog(ctx, rp.Timeout-time.Since(start))
		info, err := r.Store.Stat(w.ctx, loc)
		stalled := w.stop()
		switch {
		case err == nil:
			return info, nil
		case ctx.Err() != nil:
			return ObjectInfo{}, ctx.Err()
		case stalled:
			err = fmt.Errorf("stat %s: %w", loc, ErrTimeout)
		case !Retryable(err):
			return ObjectInfo{}, err
		}
		lastErr = err
	}
}

// giveUp wraps the last error of a request that ran out of attempts or time.
func giveUp(err error, attempts int, elapsed time.Duration) error {
	if errors.Is(err, ErrTimeout) {
		return err
	}
	return fmt.Errorf("%w (gave up after %d attempts in %v)", err, attempts, elapsed.Round(time.Millisecond))
}

// redactURLs strips query strings and user info from the URLs in s, so
// that signed URLs never reach a log.
func redactURLs(s string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		end := i + 3 + strings.IndexFunc(s[i+3:], func(r rune) bool {
			return r == ' ' || r == '"' || r == '\'' || r == '\n' || r == '>' || r == ')'
		})
		if end < i+3 {
			end = len(s)
		}
		u := s[i+3 : end]
		if at := strings.LastIndexByte(u, '@'); at >= 0 && at < strings.IndexAny(u+"/", "/?#") {
			u = u[at+1:]
		}
		if q := strings.IndexAny(u, "?#"); q >= 0 {
			u = u[:q] + "?REDACTED"
		}
		b.WriteString(s[:i+3])
		b.WriteString(u)
		s = s[end:]
	}
}

// Redact returns err's message without query strings or user info in the
// URLs it names. Use it to log store errors.
func Redact(err error) string {
	if err == nil {
		return ""
	}
	return redactURLs(err.Error())
}
