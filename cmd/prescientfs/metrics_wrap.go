package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prescient/prescientfs/fs/objread"
	"github.com/prescient/prescientfs/stacindex"
)

// meteredStore counts and times each request to the object store. It sits
// below objread.Retrying, so every attempt is seen.
type meteredStore struct {
	next objread.Store
	m    *mountMetrics
}

var _ objread.Store = meteredStore{}

func (m *mountMetrics) objectStore(next objread.Store) objread.Store {
	return meteredStore{next: next, m: m}
}

// Stat implements objread.Store.
func (s meteredStore) Stat(ctx context.Context, loc stacindex.Location) (objread.ObjectInfo, error) {
	start := time.Now()
	info, err := s.next.Stat(ctx, loc)
	s.m.objRequests.WithLabelValues("head", objectOutcome(err)).Inc()
	s.m.objDuration.WithLabelValues("head").Observe(time.Since(start).Seconds())
	return info, err
}

// GetRange implements objread.Store: the request is complete when its body
// is read to the end or closed.
func (s meteredStore) GetRange(ctx context.Context, loc stacindex.Location, off, n int64, etag string) (*objread.Body, error) {
	start := time.Now()
	body, err := s.next.GetRange(ctx, loc, off, n, etag)
	if err != nil {
		s.m.objRequests.WithLabelValues("get", objectOutcome(err)).Inc()
		s.m.objDuration.WithLabelValues("get").Observe(time.Since(start).Seconds())
		return nil, err
	}
	body.ReadCloser = &meteredBody{ReadCloser: body.ReadCloser, start: start, firstByte: func(d time.Duration) {
		s.m.objFirstByte.WithLabelValues("get").Observe(d.Seconds())
	}, done: func(d time.Duration, err error) {
		s.m.objRequests.WithLabelValues("get", objectOutcome(err)).Inc()
		s.m.objDuration.WithLabelValues("get").Observe(d.Seconds())
	}}
	return body, nil
}

// objectOutcome is the outcome label of an object request's error.
func objectOutcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, objread.ErrNotFound):
		return "not_found"
	case errors.Is(err, objread.ErrDenied):
		return "denied"
	case errors.Is(err, objread.ErrChanged):
		return "changed"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, objread.ErrTimeout):
		return "timeout"
	}
	return "error"
}

// meteredBody reports the first byte of a response body, and its end: the
// first error, EOF, or Close. A body is read by one goroutine at a time,
// but Close may come from another (a prefetch part dropped).
type meteredBody struct {
	io.ReadCloser
	start     time.Time
	firstByte func(time.Duration)
	done      func(time.Duration, error)
	gotFirst  bool // guarded by reads being sequential
	once      sync.Once
}

func (b *meteredBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 && !b.gotFirst {
		b.gotFirst = true
		b.firstByte(time.Since(b.start))
	}
	if err == io.EOF {
		b.finish(nil)
	} else if err != nil {
		b.finish(err)
	}
	return n, err
}

func (b *meteredBody) Close() error {
	b.finish(nil)
	return b.ReadCloser.Close()
}

func (b *meteredBody) finish(err error) {
	b.once.Do(func() { b.done(time.Since(b.start), err) })
}

// meteredTransport counts and times the STAC API's requests.
type meteredTransport struct {
	next http.RoundTripper
	m    *mountMetrics
}

func (m *mountMetrics) catalogTransport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return meteredTransport{next: next, m: m}
}

// RoundTrip implements http.RoundTripper.
func (t meteredTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	kind := catalogKind(req)
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		outcome := "error"
		if errors.Is(err, context.Canceled) {
			outcome = "canceled"
		}
		t.done(kind, outcome, time.Since(start))
		return nil, err
	}
	outcome := statusClass(resp.StatusCode)
	resp.Body = &meteredBody{ReadCloser: resp.Body, start: start, firstByte: func(time.Duration) {},
		done: func(d time.Duration, err error) {
			if err != nil && outcome == "2xx" {
				outcome = "error" // the body broke
			}
			t.done(kind, outcome, d)
		}}
	return resp, nil
}

func (t meteredTransport) done(kind, outcome string, d time.Duration) {
	t.m.catRequests.WithLabelValues(kind, outcome).Inc()
	t.m.catDuration.WithLabelValues(kind).Observe(d.Seconds())
}

func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "error"
	}
	return string(rune('0'+code/100)) + "xx"
}

// catalogKind names a STAC API request by the shape of its path (never the
// path itself: IDs and paging tokens stay out of labels).
func catalogKind(req *http.Request) string {
	p := strings.TrimSuffix(req.URL.Path, "/")
	switch {
	case strings.HasSuffix(p, "/search"):
		return "search"
	case strings.HasSuffix(p, "/items"):
		return "items"
	case strings.Contains(p, "/items/"):
		return "item"
	case strings.HasSuffix(p, "/collections"):
		return "collections"
	case strings.Contains(p, "/collections/"):
		return "collection"
	}
	return "other"
}
