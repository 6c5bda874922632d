package creds

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeIdentity issues tokens that live `lifetime` from the fake clock. Like
// MSAL, a non-forced call returns the cached token while `cachedValid`
// says so, even when the token itself is near its exp.
type fakeIdentity struct {
	clock    *fakeClock
	lifetime time.Duration

	mu          sync.Mutex
	n           int   // tokens issued
	calls       int   // Token calls
	forced      int   // forced Token calls
	err         error // returned by every call when set
	cachedValid bool  // non-forced calls return the current token
	cur         Token
	block       chan struct{} // when set, calls wait on it
}

func (f *fakeIdentity) Token(ctx context.Context, force bool) (Token, error) {
	f.mu.Lock()
	block := f.block
	f.mu.Unlock()
	if block != nil {
		<-block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if force {
		f.forced++
	}
	if f.err != nil {
		return Token{}, f.err
	}
	if !force && f.cachedValid && f.cur.Value != "" {
		return f.cur, nil
	}
	f.n++
	now := f.clock.Now()
	f.cur = Token{Value: fmt.Sprintf("token-%d", f.n), Issued: now, Expires: now.Add(f.lifetime), Username: "alice"}
	return f.cur, nil
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
