package stacindex

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const landingJSON = `{"type":"Catalog","id":"t","conformsTo":["https://api.stacspec.org/v1.0.0/core"],"links":[]}`

// TestRequestDeadline: a catalog that does not answer fails a request
// within RequestTimeout, not MaxAttempts times it.
func TestRequestDeadline(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	c, _ := NewClient(srv.URL+"/stac", Options{RequestTimeout: 300 * time.Millisecond, MaxAttempts: 5})
	start := time.Now()
	_, err := c.Landing(context.Background())
	if err == nil || time.Since(start) > 2*time.Second { // 5 attempts would take > 4 s
		t.Fatalf("landing from a hung catalog: %v after %v", err, time.Since(start))
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not say it timed out", err)
	}
}

// TestRetryAfter: a 429 with Retry-After is retried after the wait asked;
// one asking more than the request's budget fails at once.
func TestRetryAfter(t *testing.T) {
	var calls atomic.Int32
	var retryAfter atomic.Value
	retryAfter.Store("1")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 || retryAfter.Load() == "3600" {
			w.Header().Set("Retry-After", retryAfter.Load().(string))
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		fmt.Fprint(w, landingJSON)
	}))
	t.Cleanup(srv.Close)
	c, _ := NewClient(srv.URL+"/stac", Options{RequestTimeout: 5 * time.Second})
	start := time.Now()
	if _, err := c.Landing(context.Background()); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("retried after %v; the server asked for 1s", took)
	}
	retryAfter.Store("3600")
	start = time.Now()
	_, err := c.Landing(context.Background())
	if err == nil || time.Since(start) > time.Second || !strings.Contains(err.Error(), "retry after 1h0m0s") {
		t.Errorf("Retry-After beyond the budget: %v after %v", err, time.Since(start))
	}
}

// TestTreeStaleWhileSlowOrFailing: once a listing has expired, a catalog
// that hangs or fails does not hold readers for longer than staleGrace:
// they get the cached listing.
func TestTreeStaleWhileSlowOrFailing(t *testing.T) {
	var mode atomic.Int32 // 0 ok, 1 hang, 2 fail
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load() {
		case 1:
			<-r.Context().Done()
			return
		case 2:
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, `{"collections":[{"type":"Collection","id":"c1"}],"links":[]}`)
	}))
	t.Cleanup(srv.Close)
	c, _ := NewClient(srv.URL+"/stac", Options{RequestTimeout: 2 * time.Second})
	tree := NewTree(c, Resolver{}, time.Minute, nil)
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	tree.now = func() time.Time { return time.Unix(0, now.Load()) }
	if cs, err := tree.Collections(context.Background()); err != nil || len(cs) != 1 {
		t.Fatalf("collections: %v %v", cs, err)
	}
	for _, m := range []int32{1, 2} {
		mode.Store(m)
		now.Add(int64(2 * time.Minute)) // expired
		start := time.Now()
		cs, err := tree.Collections(context.Background())
		if err != nil || len(cs) != 1 || time.Since(start) > staleGrace+500*time.Millisecond {
			t.Errorf("mode %d: %v %v after %v, want the cached listing within %v", m, cs, err, time.Since(start), staleGrace)
		}
	}
}
