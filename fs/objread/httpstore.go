package objread

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prescient/prescientfs/stacindex"
)

// HTTPStore reads objects served over plain http(s) with Range requests,
// as public catalogs serve them.
type HTTPStore struct {
	Client *http.Client
}

var _ Store = (*HTTPStore)(nil)

// Stat implements Store with a HEAD request, falling back to a one-byte
// ranged GET for servers that refuse HEAD.
func (h *HTTPStore) Stat(ctx context.Context, loc stacindex.Location) (ObjectInfo, error) {
	resp, err := h.do(ctx, http.MethodHead, loc, "", "")
	if err == nil && resp.StatusCode == http.StatusMethodNotAllowed {
		_ = resp.Body.Close()
		resp, err = h.do(ctx, http.MethodGet, loc, "bytes=0-0", "")
	}
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", loc, err)
	}
	defer resp.Body.Close()
	if err := httpStatusError("stat", loc, resp); err != nil {
		return ObjectInfo{}, err
	}
	info := ObjectInfo{Size: resp.ContentLength, ETag: resp.Header.Get("ETag")}
	if resp.StatusCode == http.StatusPartialContent {
		info.Size = totalFromContentRange(resp.Header.Get("Content-Range"))
	}
	if info.Size < 0 {
		return ObjectInfo{}, fmt.Errorf("stat %s: server did not say the object's size", loc)
	}
	if t, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		info.LastModified = t
	}
	return info, nil
}

// GetRange implements Store.
func (h *HTTPStore) GetRange(ctx context.Context, loc stacindex.Location, off, n int64, etag string) (*Body, error) {
	resp, err := h.do(ctx, http.MethodGet, loc, fmt.Sprintf("bytes=%d-%d", off, off+n-1), etag)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", loc, err)
	}
	if err := httpStatusError("read", loc, resp); err != nil {
		_ = resp.Body.Close()
		return nil, err
	}
	b := &Body{ReadCloser: resp.Body, ETag: resp.Header.Get("ETag"), Size: totalFromContentRange(resp.Header.Get("Content-Range"))}
	if resp.StatusCode == http.StatusOK {
		// The server ignored Range: skip to off and stop after n bytes.
		b.Size = resp.ContentLength
		if _, err := io.CopyN(io.Discard, resp.Body, off); err != nil {
			_ = resp.Body.Close()
			return nil, fmt.Errorf("read %s: skipping to offset %d: %w", loc, off, err)
		}
		b.ReadCloser = struct {
			io.Reader
			io.Closer
		}{io.LimitReader(resp.Body, n), resp.Body}
	}
	return b, nil
}

func (h *HTTPStore) do(ctx context.Context, method string, loc stacindex.Location, rng, etag string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, loc.URL, nil)
	if err != nil {
		return nil, err
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	if etag != "" {
		req.Header.Set("If-Match", etag)
	}
	c := h.Client
	if c == nil {
		c = http.DefaultClient
	}
	return c.Do(req)
}

func httpStatusError(op string, loc stacindex.Location, resp *http.Response) error {
	switch {
	case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPartialContent:
		return nil
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return fmt.Errorf("%s %s: %w (HTTP %d)", op, loc, ErrNotFound, resp.StatusCode)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%s %s: %w (HTTP %d)", op, loc, ErrDenied, resp.StatusCode)
	case resp.StatusCode == http.StatusPreconditionFailed:
		return fmt.Errorf("%s %s: %w", op, loc, ErrChanged)
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		return fmt.Errorf("%s %s: %w", op, loc, errBeyondEnd)
	}
	return &StatusError{Op: op, Loc: loc.String(), Code: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
}

// StatusError is an HTTP answer that is neither success nor one of the
// typed errors; 429 and 5xx are worth retrying.
type StatusError struct {
	Op, Loc    string
	Code       int
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d %s", e.Op, e.Loc, e.Code, http.StatusText(e.Code))
}

// Temporary reports whether a retry may succeed.
func (e *StatusError) Temporary() bool { return e.Code == http.StatusTooManyRequests || e.Code >= 500 }

func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}

func totalFromContentRange(v string) int64 {
	i := strings.LastIndexByte(v, '/')
	if i < 0 {
		return -1
	}
	n, err := strconv.ParseInt(v[i+1:], 10, 64)
	if err != nil {
		return -1
	}
	return n
}
