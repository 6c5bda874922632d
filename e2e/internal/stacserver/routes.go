package stacserver

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prescient/prescientfs/e2e/internal/fixtures"
)

const (
	catalogPath = "/stac"
	filesPath   = "/files"
)

// ConformsTo is the conformance list of the landing page.
var ConformsTo = []string{
	"https://api.stacspec.org/v1.0.0/core",
	"https://api.stacspec.org/v1.0.0/collections",
	"https://api.stacspec.org/v1.0.0/ogcapi-features",
	"https://api.stacspec.org/v1.0.0/item-search",
	"http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
	"http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
}

// serveCatalog routes rest, the escaped path below /stac.
func (s *Server) serveCatalog(w http.ResponseWriter, r *http.Request, rest string) {
	segs, err := splitPath(rest)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad path: "+err.Error())
		return
	}
	if len(segs) >= 1 && segs[0] == "search" && len(segs) == 1 {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			writeError(w, http.StatusMethodNotAllowed, "use GET or POST")
			return
		}
		if len(s.generated()) > 0 {
			s.searchAll(w, r)
		} else {
			s.search(w, r)
		}
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, http.StatusMethodNotAllowed, "read-only API")
		return
	}
	if s.serveGenerated(w, r, segs) {
		return
	}
	ix := s.cat.Load()
	switch {
	case len(segs) == 0:
		s.landing(w, ix)
	case len(segs) == 1 && segs[0] == "conformance":
		writeJSON(w, "application/json", mustJSON(map[string]any{"conformsTo": ConformsTo}))
	case len(segs) == 1 && segs[0] == "collections":
		s.collections(w, ix)
	case len(segs) == 2 && segs[0] == "collections":
		coll := ix.colls[segs[1]]
		if coll == nil {
			writeError(w, http.StatusNotFound, "no collection "+segs[1])
			return
		}
		writeJSON(w, "application/json", coll.JSON)
	case len(segs) == 3 && segs[0] == "collections" && segs[2] == "items":
		s.items(w, r, ix, segs[1])
	case len(segs) == 4 && segs[0] == "collections" && segs[2] == "items":
		it := ix.items[segs[1]][segs[3]]
		if it == nil {
			writeError(w, http.StatusNotFound, "no item "+segs[3]+" in collection "+segs[1])
			return
		}
		writeJSON(w, "application/geo+json", it.JSON)
	default:
		writeError(w, http.StatusNotFound, "not found")
	}
}

// splitPath splits "/a/b%2Fc" into ["a", "b/c"], decoding each segment.
func splitPath(rest string) ([]string, error) {
	rest = strings.TrimPrefix(rest, "/")
	rest = strings.TrimSuffix(rest, "/")
	if rest == "" {
		return nil, nil
	}
	segs := strings.Split(rest, "/")
	for i, seg := range segs {
		dec, err := url.PathUnescape(seg)
		if err != nil {
			return nil, err
		}
		segs[i] = dec
	}
	return segs, nil
}

func (s *Server) landing(w http.ResponseWriter, ix *catalogIndex) {
	self := s.URL()
	links := []fixtures.Link{
		{Rel: "self", Href: self, Type: "application/json"},
		{Rel: "root", Href: self, Type: "application/json"},
		{Rel: "conformance", Href: self + "/conformance", Type: "application/json"},
		{Rel: "data", Href: self + "/collections", Type: "application/json"},
		{Rel: "search", Href: self + "/search", Type: "application/geo+json", Method: "GET"},
		{Rel: "search", Href: self + "/search", Type: "application/geo+json", Method: "POST"},
	}
	for _, c := range ix.cat.Collections {
		links = append(links, fixtures.Link{Rel: "child", Href: fixtures.CollectionURL(self, c.ID), Type: "application/json"})
	}
	for _, g := range s.generated() {
		links = append(links, fixtures.Link{Rel: "child", Href: fixtures.CollectionURL(self, g.ID), Type: "application/json"})
	}
	writeJSON(w, "application/json", mustJSON(map[string]any{
		"type":         "Catalog",
		"id":           "prescient-e2e",
		"title":        "prescientfs e2e catalog",
		"description":  "STAC API test server",
		"stac_version": fixtures.StacVersion,
		"conformsTo":   ConformsTo,
		"links":        links,
	}))
}

func (s *Server) collections(w http.ResponseWriter, ix *catalogIndex) {
	var buf bytes.Buffer
	buf.WriteString(`{"collections":[`)
	for i, c := range ix.cat.Collections {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(c.JSON)
	}
	for i, g := range s.generated() {
		if i > 0 || len(ix.cat.Collections) > 0 {
			buf.WriteByte(',')
		}
		buf.Write(g.doc)
	}
	buf.WriteString(`],"links":`)
	buf.Write(mustJSON([]fixtures.Link{
		{Rel: "self", Href: s.URL() + "/collections", Type: "application/json"},
		{Rel: "root", Href: s.URL(), Type: "application/json"},
	}))
	buf.WriteByte('}')
	writeJSON(w, "application/json", buf.Bytes())
}

// serveFile serves a static file with Range and conditional requests.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, escaped string) {
	rel, err := url.PathUnescape(escaped)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad path")
		return
	}
	s.mu.Lock()
	data, ok := s.files[rel]
	s.mu.Unlock()
	if !ok {
		data, ok = s.cat.Load().cat.Files[rel]
	}
	if !ok {
		writeError(w, http.StatusNotFound, "no file "+rel)
		return
	}
	w.Header().Set("ETag", `"`+fileETag(data)+`"`)
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", fileModTime, bytes.NewReader(data))
}

// fileModTime is the Last-Modified of every static file.
var fileModTime = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func writeJSON(w http.ResponseWriter, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	body := mustJSON(map[string]string{"code": http.StatusText(status), "description": msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// mustJSON encodes values built by this package, which cannot fail.
func mustJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return []byte(`{}`)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
