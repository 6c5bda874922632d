package creds

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// fakeFileProxy is GET /fileproxy/credentials that accepts one bearer at a
// time (the newest token the fake identity issued) and hands out
// credentials living `lifetime` on the fake clock.
type fakeFileProxy struct {
	clock    *fakeClock
	lifetime time.Duration
	mu       sync.Mutex
	accept   string // guarded by mu; the bearer accepted
	calls    int    // guarded by mu
	seen     []string
}

func (f *fakeFileProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.seen = append(f.seen, r.Header.Get("Authorization"))
	if r.Header.Get("Authorization") != "Bearer "+f.accept || r.Header.Get("api-key") != "" {
		http.Error(w, `{"detail":"invalid token"}`, http.StatusUnauthorized)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]string{
		"access_key_id": "AK" + f.accept, "secret_access_key": "SK", "session_token": "ST",
		"expiration": f.clock.Now().Add(f.lifetime).UTC().Format("2006-01-02T15:04:05.000000+00:00"),
	})
}

func (f *fakeFileProxy) set(tok string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.accept = tok
}

// TestFileProxyBearer: without a role, bucket credentials come from the
// fileproxy with the bearer; they renew ahead of their expiration; a 401
// (the API no longer takes the token) renews the token and retries once;
// a session that cannot be renewed surfaces as ErrLoginRequired.
func TestFileProxyBearer(t *testing.T) {
	clock := newClock()
	id := &fakeIdentity{clock: clock, lifetime: time.Hour, cachedValid: true}
	b := NewBearer(id, BearerOptions{Now: clock.Now, Log: quietLog()})
	fp := &fakeFileProxy{clock: clock, lifetime: 10 * time.Minute, accept: "token-1"}
	srv := httptest.NewServer(fp)
	defer srv.Close()
	u, _ := URLJoin(srv.URL+"/api/", "fileproxy/credentials")
	p := &FileProxyProvider{URL: u, Tokens: b, Now: clock.Now, Log: quietLog()}
	cache := NewCredentialsCache(p)
	ctx := context.Background()

	c, err := cache.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A fifth of the 10-minute lifetime ahead: 2 minutes.
	if c.AccessKeyID != "AKtoken-1" || !c.Expires.Equal(clock.Now().Add(8*time.Minute)) {
		t.Fatalf("creds %+v", c)
	}
	if fp.seen[0] != "Bearer token-1" {
		t.Errorf("sent %q", fp.seen[0])
	}
	// The cache renews at Expires (the AWS SDK's cache reads the real
	// clock, so the timing itself is not replayed here): a renewal asks again.
	cache.Invalidate()
	if _, err := cache.Retrieve(ctx); err != nil || fp.calls != 2 {
		t.Fatalf("renewal: err %v, %d calls", err, fp.calls)
	}

	// The API stops taking token-1 (revoked server-side): a stale-credential
	// 403 from S3 invalidates the cache; the fileproxy's 401 renews the
	// token and the request is sent again with the new one.
	fp.set("token-2")
	clock.Advance(time.Minute) // past minForceInterval
	cache.Invalidate()
	c, err = cache.Retrieve(ctx)
	if err != nil {
		t.Fatalf("after the API refused the token: %v", err)
	}
	if c.AccessKeyID != "AKtoken-2" || id.forced != 1 {
		t.Errorf("creds %s, %d forced renewals; want token-2 after one", c.AccessKeyID, id.forced)
	}

	// Refused even with a new token: a typed error that names the way out,
	// with no token in it.
	fp.set("nobody")
	clock.Advance(time.Minute)
	cache.Invalidate()
	_, err = cache.Retrieve(ctx)
	if !errors.Is(err, ErrCredentialsRejected) || !strings.Contains(err.Error(), "prescientfs auth login") || strings.Contains(err.Error(), "token-") {
		t.Errorf("refused twice: %v", err)
	}

	// The session is dead: ErrLoginRequired, and no request without a bearer.
	id.mu.Lock()
	id.err = loginRequired("default", "refused (invalid_grant)")
	id.mu.Unlock()
	clock.Advance(2 * time.Hour)
	calls := fp.calls
	cache.Invalidate()
	if _, err := cache.Retrieve(ctx); !errors.Is(err, ErrLoginRequired) {
		t.Errorf("dead session: %v", err)
	}
	if fp.calls != calls {
		t.Error("a request was sent without a token")
	}
	var _ aws.CredentialsProvider = p
}
