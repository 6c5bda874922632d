// Package stacindex reads a STAC API (landing page, collections, items,
// item by ID, search, paging that adapts its page size, retries), maps
// asset hrefs to object locations, names entries from IDs alone, and keeps
// the tree model: collections, streaming listings in the flat, date and
// search layouts, item documents, cached for a metadata TTL in bounded
// memory and in a persistent index on disk (Index). It knows nothing of
// FUSE or of how credentials are obtained: authentication comes in as a
// header source.
package stacindex

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// ErrNotFound: the catalog has no such collection or item (HTTP 404).
var ErrNotFound = errors.New("not found in the catalog")

// ErrNotSTAC: the URL answers, but not as a STAC API.
var ErrNotSTAC = errors.New("not a STAC API")

// ErrUnauthorized: the catalog refused our credentials (401/403) even
// after one renewal.
var ErrUnauthorized = errors.New("the catalog refused the request (unauthorized)")

// Options configure a Client. Zero values mean the defaults.
type Options struct {
	HTTPClient *http.Client
	// Header returns the headers (Authorization, api-key) for a request to
	// the catalog. They are sent only to the catalog's own origin.
	Header func(ctx context.Context) (http.Header, error)
	// OnUnauthorized is called once when the catalog answers 401, before
	// the request is retried; it should force a credential renewal.
	OnUnauthorized func()
	// PageSize is the `limit` asked of item pages (default 250, max 1000).
	PageSize int
	// MaxAttempts per request, including the first (default 5).
	MaxAttempts int
	// RequestTimeout bounds each attempt, and the retries of one request:
	// no attempt starts after it has passed since the first, so a request
	// ends within twice RequestTimeout, and within one when the server
	// does not answer at all (default 30s; the mount's --io-timeout).
	RequestTimeout time.Duration
	// MaxPages bounds one listing (default 10000): paging always ends.
	MaxPages int
	// MaxBodyBytes bounds one response (default 64 MiB).
	MaxBodyBytes int64
	Logger       *slog.Logger
}

// Client reads one STAC API.
type Client struct {
	landing string   // the catalog URL as given: the landing page
	base    *url.URL // catalog root, with a trailing slash, to resolve paths
	opt     Options
	log     *slog.Logger
	// limit is the page size that works: Options.PageSize, lowered when
	// the API fails larger pages (see getPage).
	limit atomic.Int64
}

// NewClient returns a client for the STAC API rooted at catalogURL.
func NewClient(catalogURL string, opt Options) (*Client, error) {
	u, err := url.Parse(catalogURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("STAC URL %q: must be an absolute http(s) URL", catalogURL)
	}
	landing := u.String()
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	if opt.HTTPClient == nil {
		opt.HTTPClient = http.DefaultClient
	}
	if opt.PageSize <= 0 {
		opt.PageSize = 250
	}
	opt.PageSize = min(opt.PageSize, 1000)
	if opt.MaxAttempts <= 0 {
		opt.MaxAttempts = 5
	}
	if opt.RequestTimeout <= 0 {
		opt.RequestTimeout = 30 * time.Second
	}
	if opt.MaxPages <= 0 {
		opt.MaxPages = 10000
	}
	if opt.MaxBodyBytes <= 0 {
		opt.MaxBodyBytes = 64 << 20
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{landing: landing, base: u, opt: opt, log: log}
	c.limit.Store(int64(opt.PageSize))
	return c, nil
}

// URL is the catalog root URL.
func (c *Client) URL() string { return strings.TrimSuffix(c.base.String(), "/") }

// Link is a STAC link object.
type Link struct {
	Rel    string          `json:"rel"`
	Href   string          `json:"href"`
	Type   string          `json:"type,omitempty"`
	Method string          `json:"method,omitempty"`
	Body   json.RawMessage `json:"body,omitempty"`
	Merge  bool            `json:"merge,omitempty"`
}

// Landing is the catalog's landing page.
type Landing struct {
	ID         string   `json:"id"`
	Type       string   `json:"type"`
	Title      string   `json:"title"`
	ConformsTo []string `json:"conformsTo"`
	Links      []Link   `json:"links"`
}

// Landing fetches and checks the landing page.
func (c *Client) Landing(ctx context.Context) (*Landing, error) {
	body, err := c.get(ctx, request{method: http.MethodGet, url: c.landing})
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: %s answers 404 (check the URL: it should be the catalog's landing page)", ErrNotSTAC, c.URL())
	}
	if err != nil {
		return nil, err
	}
	var l Landing
	if err := json.Unmarshal(body, &l); err != nil {
		return nil, fmt.Errorf("%w: %s does not answer with JSON: %v", ErrNotSTAC, c.URL(), err)
	}
	if l.Type != "Catalog" && len(l.ConformsTo) == 0 && len(l.Links) == 0 {
		return nil, fmt.Errorf("%w: %s has no type \"Catalog\", conformsTo or links", ErrNotSTAC, c.URL())
	}
	return &l, nil
}

func (c *Client) resolve(ref string) string {
	u, err := url.Parse(ref)
	if err != nil {
		return ref
	}
	return c.base.ResolveReference(u).String()
}

type request struct {
	method string
	url    string
	body   []byte
	// shrinkable: a page request whose limit can be lowered; a 500, 502
	// or 413 is returned at once as a *pageTooLargeError.
	shrinkable bool
}

func (r request) key() string { return r.method + " " + r.url + " " + string(r.body) }

// get performs r with retries and returns the body. Errors name the URL
// (without its query) and what to do.
func (c *Client) get(ctx context.Context, r request) ([]byte, error) {
	renewed := false
	start := time.Now()
	var lastErr error
	for attempt := 0; attempt < c.opt.MaxAttempts; attempt++ {
		body, status, wait, err := c.once(ctx, r)
		msg := body
		switch {
		case err == nil && status == http.StatusOK:
			return body, nil
		case err != nil && ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil && (errors.Is(err, errTooLarge) || errors.As(err, new(*terminalError))):
			return nil, err
		case err != nil:
			lastErr = err
		case status == http.StatusUnauthorized && !renewed && c.opt.OnUnauthorized != nil:
			renewed = true
			c.opt.OnUnauthorized()
			attempt-- // the renewal retry is free
			continue
		case status == http.StatusUnauthorized || status == http.StatusForbidden:
			return nil, fmt.Errorf("GET %s: HTTP %d: %w", redact(r.url), status, ErrUnauthorized)
		case status == http.StatusNotFound || status == http.StatusGone:
			return nil, fmt.Errorf("%s %s: HTTP %d: %w", r.method, redact(r.url), status, ErrNotFound)
		case r.shrinkable && (status == http.StatusRequestEntityTooLarge || status == http.StatusInternalServerError || status == http.StatusBadGateway):
			return nil, &pageTooLargeError{status: status}
		case status == http.StatusTooManyRequests || status >= 500:
			lastErr = fmt.Errorf("%s %s: HTTP %d", r.method, redact(r.url), status)
		case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
			return nil, fmt.Errorf("%s %s: HTTP %d: %w", r.method, redact(r.url), status, &RejectedError{Message: apiMessage(msg)})
		default:
			return nil, fmt.Errorf("%s %s: unexpected HTTP %d", r.method, redact(r.url), status)
		}
		if attempt+1 == c.opt.MaxAttempts {
			break
		}
		d := max(backoff(attempt), wait)
		if elapsed := time.Since(start); elapsed+d >= c.opt.RequestTimeout {
			if wait > 0 {
				return nil, fmt.Errorf("%w (after %d attempts in %v; the server asks to retry after %v)", lastErr, attempt+1, elapsed.Round(time.Millisecond), wait)
			}
			return nil, fmt.Errorf("%w (after %d attempts in %v)", lastErr, attempt+1, elapsed.Round(time.Millisecond))
		}
		c.log.Debug("stac request failed, retrying", "url", redact(r.url), "err", lastErr, "in", d)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	return nil, fmt.Errorf("%w (after %d attempts)", lastErr, c.opt.MaxAttempts)
}

var errTooLarge = errors.New("response too large")

// terminalError is not worth retrying (e.g. no credentials to send).
type terminalError struct{ err error }

func (e *terminalError) Error() string { return e.err.Error() }
func (e *terminalError) Unwrap() error { return e.err }

// backoff is exponential with full jitter: ~[0.5,1] × 200ms·2^attempt, capped at 10s.
func backoff(attempt int) time.Duration {
	d := 200 * time.Millisecond << min(attempt, 6)
	d = min(d, 10*time.Second)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1)) // #nosec G404 -- jitter spreads retries; it guards nothing
}

func (c *Client) once(ctx context.Context, r request) (body []byte, status int, retryAfterD time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.opt.RequestTimeout)
	defer cancel()
	var rd io.Reader
	if r.body != nil {
		rd = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, rd)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%s %s: %w", r.method, redact(r.url), err)
	}
	req.Header.Set("Accept", "application/geo+json, application/json")
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.opt.Header != nil && sameOrigin(req.URL, c.base) {
		h, err := c.opt.Header(ctx)
		if err != nil {
			return nil, 0, 0, &terminalError{err}
		}
		for k, vs := range h {
			req.Header[k] = vs
		}
	}
	resp, err := c.opt.HTTPClient.Do(req)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%s %s: %w", r.method, redact(r.url), unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// The body of an error carries the API's message (a rejected search).
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return msg, resp.StatusCode, parseRetryAfter(resp.Header.Get("Retry-After")), nil
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, c.opt.MaxBodyBytes+1))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%s %s: reading body: %w", r.method, redact(r.url), err)
	}
	if int64(len(body)) > c.opt.MaxBodyBytes {
		return nil, 0, 0, fmt.Errorf("%s %s: %w: over %d bytes", r.method, redact(r.url), errTooLarge, c.opt.MaxBodyBytes)
	}
	if resp.ContentLength >= 0 && int64(len(body)) != resp.ContentLength {
		return nil, 0, 0, fmt.Errorf("%s %s: body cut short (%d of %d bytes)", r.method, redact(r.url), len(body), resp.ContentLength)
	}
	return body, http.StatusOK, 0, nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Host, b.Host)
}

func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}
