package creds

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Renewal timing.
const (
	// DefaultMargin is the most a token or credential is renewed ahead of
	// its expiry; short-lived ones are renewed a fifth of their lifetime ahead.
	DefaultMargin = 5 * time.Minute
	// renewTimeout bounds one renewal (identity provider or STS round trips).
	renewTimeout = 60 * time.Second
	// failureHold is how long a "log in again" verdict is reused before the
	// store is read again; a login in another terminal is seen after it.
	failureHold = 2 * time.Second
	// minForceInterval stops a stream of 401s from forcing a renewal each.
	minForceInterval = 2 * time.Second
)

// margin is how long before expiry to renew something that lives from
// issued to expires.
func margin(issued, expires time.Time, max time.Duration) time.Duration {
	if issued.IsZero() || !expires.After(issued) {
		return max
	}
	return min(max, expires.Sub(issued)/5)
}

// BearerOptions tune a Bearer.
type BearerOptions struct {
	Now    func() time.Time // time.Now when nil
	Log    *slog.Logger     // slog.Default() when nil
	Margin time.Duration    // DefaultMargin when 0
	stats  *counters
}

// Bearer keeps a current bearer token from an Identity: it renews the
// token a margin ahead of the token's own exp (MSAL only checks the access
// token's), one renewal at a time however many callers wait, and after
// Invalidate (the API answered 401).
type Bearer struct {
	id     Identity
	now    func() time.Time
	log    *slog.Logger
	margin time.Duration
	stats  *counters
	sf     singleflight.Group

	mu          sync.Mutex
	tok         Token     // guarded by mu
	force       bool      // guarded by mu; the next renewal bypasses caches
	renewedAt   time.Time // guarded by mu
	failErr     error     // guarded by mu; an auth error held until failUntil
	failUntil   time.Time // guarded by mu
	warnedLogin bool      // guarded by mu; the login hint was logged for this failure
}

// NewBearer returns a Bearer over id.
func NewBearer(id Identity, o BearerOptions) *Bearer {
	b := &Bearer{id: id, now: nowFunc(o.Now), log: o.Log, margin: o.Margin, stats: o.stats}
	if b.log == nil {
		b.log = slog.Default()
	}
	if b.margin == 0 {
		b.margin = DefaultMargin
	}
	if b.stats == nil {
		b.stats = &counters{}
	}
	return b
}

// fresh reports whether tok can be used without renewing.
func (b *Bearer) fresh(tok Token) bool {
	return tok.Value != "" && b.now().Add(margin(tok.Issued, tok.Expires, b.margin)).Before(tok.Expires)
}

// Token returns a bearer that is not near its expiry.
func (b *Bearer) Token(ctx context.Context) (Token, error) {
	b.mu.Lock()
	tok, force := b.tok, b.force
	if !force && b.fresh(tok) {
		b.mu.Unlock()
		return tok, nil
	}
	if b.failErr != nil && b.now().Before(b.failUntil) {
		err := b.failErr
		b.mu.Unlock()
		return Token{}, err
	}
	b.mu.Unlock()

	// The renewal outlives a caller that gives up: others may be waiting.
	ch := b.sf.DoChan("renew", func() (any, error) {
		// A caller that saw the old token just before a renewal ended
		// starts a flight of its own: the token it wanted is here now.
		b.mu.Lock()
		tok, force := b.tok, b.force
		b.mu.Unlock()
		if !force && b.fresh(tok) {
			return tok, nil
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), renewTimeout)
		defer cancel()
		return b.renew(rctx, force)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return Token{}, r.Err
		}
		return r.Val.(Token), nil
	case <-ctx.Done():
		return Token{}, ctx.Err()
	}
}

func (b *Bearer) renew(ctx context.Context, force bool) (Token, error) {
	tok, err := b.id.Token(ctx, force)
	if err == nil && !force && !b.fresh(tok) {
		// MSAL handed back a cached id_token near (or past) its own exp
		// because the access token beside it is still valid.
		tok, err = b.id.Token(ctx, true)
	}
	if err == nil && !tok.Expires.After(b.now()) {
		err = fmt.Errorf("the identity provider returned a token that expired at %s (is the clock right?)",
			tok.Expires.UTC().Format(time.RFC3339))
	}
	if err != nil {
		b.stats.add(func(s *Stats) { s.TokenFailures++ })
		b.failed(err)
		return Token{}, err
	}
	b.mu.Lock()
	changed := tok.Value != b.tok.Value
	b.tok, b.force, b.renewedAt, b.failErr, b.warnedLogin = tok, false, b.now(), nil, false
	b.mu.Unlock()
	if changed {
		b.stats.add(func(s *Stats) { s.TokenRenewals++ })
		b.log.Info("renewed API token", "user", tok.Username,
			"expires_in", tok.Expires.Sub(b.now()).Round(time.Second), "forced", force)
	}
	return tok, nil
}

func (b *Bearer) failed(err error) {
	if !IsAuthError(err) {
		b.log.Warn("token renewal failed; will retry", "err", err)
		return
	}
	b.mu.Lock()
	b.failErr, b.failUntil = err, b.now().Add(failureHold)
	warn := !b.warnedLogin
	b.warnedLogin = true
	b.mu.Unlock()
	if warn {
		b.log.Error("the session is no longer valid: requests are refused until you sign in again",
			"err", err, "hint", "run `prescientfs auth login`")
	}
}

// Invalidate makes the next Token renew, bypassing caches: call it when the
// API refused the current token (401). Ignored right after a renewal.
func (b *Bearer) Invalidate() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.renewedAt.IsZero() && b.now().Sub(b.renewedAt) < minForceInterval {
		return
	}
	b.force = true
}

// Header returns Authorization: Bearer <token>.
func (b *Bearer) Header(ctx context.Context) (http.Header, error) {
	tok, err := b.Token(ctx)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+tok.Value)
	return h, nil
}

// Stats returns the renewal counters of the session the Bearer belongs to.
func (b *Bearer) Stats() Stats { return b.stats.snapshot() }
