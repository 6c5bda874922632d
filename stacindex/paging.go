package stacindex

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// minPageSize is the smallest limit getPage shrinks to; below it a failing
// page is an ordinary failure (retried, then an error).
const minPageSize = 10

// pageTooLargeError: the API failed a page request with a status that
// large pages cause (Earth Search answers 5xx above ~267 items).
type pageTooLargeError struct{ status int }

func (e *pageTooLargeError) Error() string { return fmt.Sprintf("HTTP %d", e.status) }

// RejectedError is a request the API refused as invalid (HTTP 400/422),
// with the API's own message: a search it does not accept.
type RejectedError struct{ Message string }

func (e *RejectedError) Error() string {
	if e.Message == "" {
		return "the catalog rejected the request"
	}
	return "the catalog rejected the request: " + e.Message
}

// apiMessage is the message of an error body: the description, detail or
// message field of a JSON error, else the text, shortened.
func apiMessage(body []byte) string {
	var j struct {
		Code        any    `json:"code"`
		Description string `json:"description"`
		Detail      any    `json:"detail"`
		Message     string `json:"message"`
	}
	msg := ""
	if json.Unmarshal(body, &j) == nil {
		switch {
		case j.Description != "":
			msg = j.Description
		case j.Message != "":
			msg = j.Message
		case j.Detail != nil:
			b, _ := json.Marshal(j.Detail)
			if s, ok := j.Detail.(string); ok {
				msg = s
			} else {
				msg = string(b)
			}
		}
	}
	if msg == "" {
		msg = string(bytes.TrimSpace(body))
	}
	msg = strings.Join(strings.Fields(strings.ToValidUTF8(msg, "?")), " ")
	return truncateUTF8(msg, 500)
}

// pageSize is the limit to ask for: the one that last worked.
func (c *Client) pageSize() int { return int(c.limit.Load()) }

// getPage fetches one page. The limit in the request (query parameter or
// JSON body) is lowered to the size that works on this catalog; a page the
// API fails with 500, 502 or 413 is asked again with half the limit, and
// the smaller size is kept for every later page of this client. A limit
// the API caps silently needs nothing: paging follows next links.
func (c *Client) getPage(ctx context.Context, r request) ([]byte, error) {
	for {
		lim, ok := requestLimit(r)
		want := c.pageSize()
		if ok && lim > want {
			r = withLimit(r, want)
			lim = want
		}
		r.shrinkable = ok && lim > minPageSize
		body, err := c.get(ctx, r)
		var tl *pageTooLargeError
		if !errors.As(err, &tl) {
			return body, err
		}
		smaller := max(lim/2, minPageSize)
		for {
			cur := c.limit.Load()
			if cur <= int64(smaller) || c.limit.CompareAndSwap(cur, int64(smaller)) {
				break
			}
		}
		c.log.Info("catalog failed a large page; asking for smaller pages", "url", redact(r.url), "status", tl.status, "limit", smaller)
		r = withLimit(r, smaller)
	}
}

// requestLimit reads the limit of a page request, from its query or its
// JSON body.
func requestLimit(r request) (int, bool) {
	if r.body != nil {
		var b map[string]json.RawMessage
		if json.Unmarshal(r.body, &b) != nil {
			return 0, false
		}
		n, err := strconv.Atoi(string(b["limit"]))
		return n, err == nil && n > 0
	}
	u, err := url.Parse(r.url)
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(u.Query().Get("limit"))
	return n, err == nil && n > 0
}

func withLimit(r request, n int) request {
	if r.body != nil {
		var b map[string]json.RawMessage
		if json.Unmarshal(r.body, &b) == nil {
			b["limit"] = json.RawMessage(strconv.Itoa(n))
			r.body, _ = json.Marshal(b)
		}
		return r
	}
	u, err := url.Parse(r.url)
	if err != nil {
		return r
	}
	q := u.Query()
	q.Set("limit", strconv.Itoa(n))
	u.RawQuery = q.Encode()
	r.url = u.String()
	return r
}

// Search is one STAC item search: the URL query of GET /search, or the
// JSON body of POST /search.
type Search struct {
	Query url.Values // GET /search?Query
	Body  []byte     // POST /search with this JSON body (when non-nil)
}

// ParseSearch reads --search: "@FILE" names a JSON body for POST /search,
// anything else is the URL query of GET /search.
func ParseSearch(arg string, readFile func(string) ([]byte, error)) (*Search, error) {
	if name, ok := strings.CutPrefix(arg, "@"); ok {
		b, err := readFile(name)
		if err != nil {
			return nil, fmt.Errorf("--search @%s: %w", name, err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("--search @%s: not a JSON object: %v", name, err)
		}
		if m == nil { // "null"
			return nil, fmt.Errorf("--search @%s: not a JSON object: null", name)
		}
		return &Search{Body: bytes.TrimSpace(b)}, nil
	}
	q, err := url.ParseQuery(strings.TrimPrefix(arg, "?"))
	if err != nil {
		return nil, fmt.Errorf("--search %q: not a URL query (e.g. collections=c&datetime=2024-06-01/2024-06-30): %v", arg, err)
	}
	return &Search{Query: q}, nil
}

// Key identifies the search, for the index's file name.
func (s *Search) Key() string {
	if s == nil {
		return ""
	}
	if s.Body != nil {
		return "POST " + string(s.Body)
	}
	return "GET " + s.Query.Encode()
}

func (s *Search) request(c *Client) request {
	if s.Body != nil {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(s.Body, &m); err != nil || m == nil {
			// Not a JSON object (ParseSearch refuses those): sent as
			// is, for the API to answer with its own message.
			return request{method: http.MethodPost, url: c.resolve("search"), body: s.Body}
		}
		if _, ok := m["limit"]; !ok {
			m["limit"] = json.RawMessage(strconv.Itoa(c.pageSize()))
		}
		body, _ := json.Marshal(m)
		return request{method: http.MethodPost, url: c.resolve("search"), body: body}
	}
	q := url.Values{}
	for k, v := range s.Query {
		q[k] = v
	}
	if q.Get("limit") == "" {
		q.Set("limit", strconv.Itoa(c.pageSize()))
	}
	return request{method: http.MethodGet, url: c.resolve("search?" + q.Encode())}
}

// itemURL is an item's own URL: the base of its relative links when its
// document has no self link.
func (c *Client) itemURL(collection, id string) string {
	return c.resolve("collections/" + url.PathEscape(collection) + "/items/" + url.PathEscape(id))
}

// ItemByID fetches one item: GET /collections/{c}/items/{id}; when that
// answers 404 (pgstac does for IDs that contain "/"), a search by ID,
// whose answer is checked (an API may ignore the ids filter). At most two
// requests; ErrNotFound when the catalog has no such item.
func (c *Client) ItemByID(ctx context.Context, collection, id string) (Item, error) {
	u := c.itemURL(collection, id)
	body, err := c.get(ctx, request{method: http.MethodGet, url: u})
	if err == nil {
		it, err := ParseItem(body, u)
		if err != nil {
			return Item{}, fmt.Errorf("GET %s: %w", redact(u), err)
		}
		if it.ID == id {
			if it.Collection == "" {
				it.Collection = collection
			}
			return it, nil
		}
	} else if !errors.Is(err, ErrNotFound) {
		return Item{}, err
	}
	var r request
	if strings.Contains(id, ",") {
		b, _ := json.Marshal(map[string]any{"ids": []string{id}, "collections": []string{collection}, "limit": 1})
		r = request{method: http.MethodPost, url: c.resolve("search"), body: b}
	} else {
		q := url.Values{"ids": {id}, "collections": {collection}, "limit": {"1"}}
		r = request{method: http.MethodGet, url: c.resolve("search?" + q.Encode())}
	}
	body, err = c.get(ctx, r)
	if errors.Is(err, ErrNotFound) || errors.As(err, new(*RejectedError)) {
		return Item{}, fmt.Errorf("item %q of %q: %w", id, collection, ErrNotFound)
	}
	if err != nil {
		return Item{}, err
	}
	var p page
	if err := json.Unmarshal(body, &p); err != nil {
		return Item{}, fmt.Errorf("%s %s: malformed page: %v", r.method, redact(r.url), err)
	}
	for _, raw := range p.Features {
		it, err := ParseItem(raw, r.url)
		if err == nil && it.ID == id && (it.Collection == "" || it.Collection == collection) {
			it.Collection = collection
			return it, nil
		}
	}
	return Item{}, fmt.Errorf("item %q of %q: %w", id, collection, ErrNotFound)
}
