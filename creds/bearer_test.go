package creds

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestBearerRenewsAheadOfExpiry(t *testing.T) {
	clock := newClock()
	id := &fakeIdentity{clock: clock, lifetime: time.Hour}
	b := NewBearer(id, BearerOptions{Now: clock.Now, Log: quietLog()})
	ctx := context.Background()

	tok, err := b.Token(ctx)
	if err != nil || tok.Value != "token-1" {
		t.Fatalf("first token %v %v", tok, err)
	}
	clock.Advance(54 * time.Minute) // 6 min left: more than the 5 min margin
	if tok, _ := b.Token(ctx); tok.Value != "token-1" {
		t.Errorf("renewed too early: %s", tok.Value)
	}
	clock.Advance(2 * time.Minute) // 4 min left
	if tok, _ := b.Token(ctx); tok.Value != "token-2" {
		t.Errorf("not renewed inside the margin: %s", tok.Value)
	}
	if s := b.Stats(); s.TokenRenewals != 2 {
		t.Errorf("renewals %d", s.TokenRenewals)
	}
}

func TestBearerShortLivedMargin(t *testing.T) {
	clock := newClock()
	id := &fakeIdentity{clock: clock, lifetime: 5 * time.Second}
	b := NewBearer(id, BearerOptions{Now: clock.Now, Log: quietLog()})
	ctx := context.Background()
	b.Token(ctx)
	clock.Advance(3900 * time.Millisecond) // 1.1 s left; margin is a fifth: 1 s
	if tok, _ := b.Token(ctx); tok.Value != "token-1" {
		t.Errorf("5 s token renewed with 1.1 s left: %s", tok.Value)
	}
	clock.Advance(200 * time.Millisecond)
	if tok, _ := b.Token(ctx); tok.Value != "token-2" {
		t.Errorf("5 s token not renewed with 0.9 s left: %s", tok.Value)
	}
}

// MSAL returns a cached id_token whose own exp is near because the access
// token beside it is still valid: the Bearer must force a refresh.
func TestBearerForcesWhenCachedIDTokenIsStale(t *testing.T) {
	clock := newClock()
	id := &fakeIdentity{clock: clock, lifetime: time.Hour, cachedValid: true}
	b := NewBearer(id, BearerOptions{Now: clock.Now, Log: quietLog()})
	ctx := context.Background()
	b.Token(ctx)
	clock.Advance(61 * time.Minute) // the id_token has expired
	tok, err := b.Token(ctx)
	if err != nil || tok.Value != "token-2" {
		t.Fatalf("got %v %v, want a forced new token", tok, err)
	}
	if id.forced != 1 {
		t.Errorf("forced calls %d, want 1", id.forced)
	}
}

func TestBearerOneRenewalForManyWaiters(t *testing.T) {
	clock := newClock()
	id := &fakeIdentity{clock: clock, lifetime: time.Hour, block: make(chan struct{})}
	b := NewBearer(id, BearerOptions{Now: clock.Now, Log: quietLog()})
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := b.Token(context.Background())
			if err == nil && tok.Value != "token-1" {
				err = fmt.Errorf("got %s", tok.Value)
			}
			errs <- err
		}()
	}
	time.Sleep(20 * time.Millisecond) // let the callers pile up
	close(id.block)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if id.calls != 1 {
		t.Errorf("%d identity calls for 50 concurrent waiters, want 1", id.calls)
	}
}

func TestBearerInvalidateAndLoginRequired(t *testing.T) {
	clock := newClock()
	id := &fakeIdentity{clock: clock, lifetime: time.Hour, cachedValid: true}
	b := NewBearer(id, BearerOptions{Now: clock.Now, Log: quietLog()})
	ctx := context.Background()
	b.Token(ctx)
	b.Invalidate() // right after a renewal: ignored
	if tok, _ := b.Token(ctx); tok.Value != "token-1" {
		t.Errorf("Invalidate right after renewal forced a renewal")
	}
	clock.Advance(time.Minute)
	b.Invalidate() // the API said 401
	if tok, _ := b.Token(ctx); tok.Value != "token-2" || id.forced != 1 {
		t.Errorf("after Invalidate: %s, forced %d", tok.Value, id.forced)
	}

	// The session dies: the error is typed, held briefly, then re-checked.
	id.err = loginRequired("default", "refused (invalid_grant)")
	clock.Advance(2 * time.Hour)
	_, err := b.Token(ctx)
	if !errors.Is(err, ErrLoginRequired) || !IsAuthError(err) {
		t.Fatalf("err = %v", err)
	}
	calls := id.calls
	b.Token(ctx)
	if id.calls != calls {
		t.Error("a dead session was re-checked without waiting")
	}
	// Login elsewhere heals it.
	id.err = nil
	clock.Advance(failureHold)
	if _, err := b.Token(ctx); err != nil {
		t.Errorf("after login: %v", err)
	}
	if s := b.Stats(); s.TokenFailures != 1 {
		t.Errorf("failures %d", s.TokenFailures)
	}
}
