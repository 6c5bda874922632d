package stacserver

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/prescient/prescientfs/e2e/internal/fixtures"
)

func itoa(n int) string { return strconv.Itoa(n) }

func fileETag(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

// Tokens are opaque to clients; here they encode an offset.
func encodeToken(off int) string { return "off" + strconv.Itoa(off) }

func decodeToken(t string) (int, error) {
	if t == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(strings.TrimPrefix(t, "off"))
	if err != nil || !strings.HasPrefix(t, "off") || n < 0 {
		return 0, errors.New("invalid token")
	}
	return n, nil
}

// limit parses the limit parameter, applying the default and caps.
func (s *Server) limit(raw string, caps ...int) (int, error) {
	n := s.opts.DefaultLimit
	if raw != "" {
		v, err := strconv.Atoi(raw)
		if err != nil || v < 1 {
			return 0, errors.New("limit must be a positive integer")
		}
		n = v
	}
	n = min(n, s.opts.MaxLimit)
	for _, c := range caps {
		if c > 0 {
			n = min(n, c)
		}
	}
	return n, nil
}

func (s *Server) items(w http.ResponseWriter, r *http.Request, ix *catalogIndex, collID string) {
	coll := ix.colls[collID]
	if coll == nil {
		writeError(w, http.StatusNotFound, "no collection "+collID)
		return
	}
	s.mu.Lock()
	pageCap := s.pageSize[collID]
	s.mu.Unlock()
	q := r.URL.Query()
	limit, err := s.limit(q.Get("limit"), pageCap)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	off, err := decodeToken(q.Get("token"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	items := make([]*fixtures.Item, len(coll.Items))
	for i := range coll.Items {
		items[i] = &coll.Items[i]
	}
	page, next := pageOf(items, off, limit)
	collURL := fixtures.CollectionURL(s.URL(), collID)
	self := collURL + "/items"
	if r.URL.RawQuery != "" {
		self += "?" + r.URL.RawQuery
	}
	links := []fixtures.Link{
		{Rel: "self", Href: self, Type: "application/geo+json"},
		{Rel: "root", Href: s.URL(), Type: "application/json"},
		{Rel: "collection", Href: collURL, Type: "application/json"},
	}
	if next >= 0 {
		nq := url.Values{"limit": {itoa(limit)}, "token": {encodeToken(next)}}
		links = append(links, fixtures.Link{Rel: "next", Href: collURL + "/items?" + nq.Encode(), Type: "application/geo+json", Method: "GET"})
	}
	writeJSON(w, "application/geo+json", featureCollection(page, len(items), links))
}

// searchParams are the item-search parameters this server implements.
type searchParams struct {
	Collections []string
	IDs         []string
	Limit       string
	Token       string
	// body is the POST body as sent, echoed (with a new token) in next links.
	body map[string]any
}

func (s *Server) search(w http.ResponseWriter, r *http.Request) {
	p, err := parseSearch(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	limit, err := s.limit(p.Limit)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	off, err := decodeToken(p.Token)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	matched := s.cat.Load().match(p)
	page, next := pageOf(matched, off, limit)
	searchURL := s.URL() + "/search"
	links := []fixtures.Link{{Rel: "root", Href: s.URL(), Type: "application/json"}}
	if next >= 0 {
		if r.Method == http.MethodPost {
			body := map[string]any{}
			for k, v := range p.body {
				body[k] = v
			}
			body["token"] = encodeToken(next)
			body["limit"] = limit
			links = append(links, fixtures.Link{Rel: "next", Href: searchURL, Type: "application/geo+json", Method: "POST", Body: body})
		} else {
			q := r.URL.Query()
			q.Set("token", encodeToken(next))
			q.Set("limit", itoa(limit))
			links = append(links, fixtures.Link{Rel: "next", Href: searchURL + "?" + q.Encode(), Type: "application/geo+json", Method: "GET"})
		}
	}
	writeJSON(w, "application/geo+json", featureCollection(page, len(matched), links))
}

func parseSearch(r *http.Request) (searchParams, error) {
	var p searchParams
	if r.Method == http.MethodGet {
		q := r.URL.Query()
		p.Collections = splitList(q.Get("collections"))
		p.IDs = splitList(q.Get("ids"))
		p.Limit, p.Token = q.Get("limit"), q.Get("token")
		return p, nil
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return p, err
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = []byte("{}")
	}
	if err := json.Unmarshal(raw, &p.body); err != nil {
		return p, errors.New("body must be a JSON object")
	}
	var typed struct {
		Collections []string        `json:"collections"`
		IDs         []string        `json:"ids"`
		Limit       json.RawMessage `json:"limit"`
		Token       string          `json:"token"`
	}
	if err := json.Unmarshal(raw, &typed); err != nil {
		return p, errors.New("bad search body: " + err.Error())
	}
	p.Collections, p.IDs, p.Token = typed.Collections, typed.IDs, typed.Token
	p.Limit = strings.Trim(string(typed.Limit), `"`)
	if p.Limit == "null" {
		p.Limit = ""
	}
	return p, nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// match returns the items of the catalog selected by p, in catalog order.
func (ix *catalogIndex) match(p searchParams) []*fixtures.Item {
	want := func(list []string, v string) bool {
		if len(list) == 0 {
			return true
		}
		for _, x := range list {
			if x == v {
				return true
			}
		}
		return false
	}
	var out []*fixtures.Item
	for ci := range ix.cat.Collections {
		c := &ix.cat.Collections[ci]
		if !want(p.Collections, c.ID) {
			continue
		}
		for i := range c.Items {
			if want(p.IDs, c.Items[i].ID) {
				out = append(out, &c.Items[i])
			}
		}
	}
	return out
}

// pageOf returns items[off:off+limit] and the offset of the next page, or
// -1 when this is the last page.
func pageOf(items []*fixtures.Item, off, limit int) ([]*fixtures.Item, int) {
	if off >= len(items) {
		return nil, -1
	}
	end := min(off+limit, len(items))
	if end == len(items) {
		return items[off:end], -1
	}
	return items[off:end], end
}

// featureCollection writes the page envelope around the items' JSON bytes,
// untouched.
func featureCollection(page []*fixtures.Item, matched int, links []fixtures.Link) []byte {
	var buf bytes.Buffer
	buf.WriteString(`{"type":"FeatureCollection","numberMatched":`)
	buf.WriteString(itoa(matched))
	buf.WriteString(`,"numberReturned":`)
	buf.WriteString(itoa(len(page)))
	buf.WriteString(`,"features":[`)
	for i, it := range page {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(it.JSON)
	}
	buf.WriteString(`],"links":`)
	buf.Write(mustJSON(links))
	buf.WriteByte('}')
	return buf.Bytes()
}
