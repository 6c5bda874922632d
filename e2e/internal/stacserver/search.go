package stacserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prescient/prescientfs/e2e/internal/fixtures"
)

// searchFilter is an item search as this server implements it once
// generated collections are served: collections, ids, a closed datetime
// interval, a bbox (intersection with the item's bbox; generated items
// only), limit and a keyset token ("next:N" / "prev:N", N a position in
// the result sequence), as pgstac pages.
type searchFilter struct {
	Collections []string
	IDs         []string
	From, To    time.Time // zero: open
	hasTime     bool
	BBox        []float64
	Limit       string
	Token       string
	// body is the POST body as sent, echoed (with a new token) in links.
	body map[string]any
}

func (f *searchFilter) parseDatetime(v string) error {
	if v == "" {
		return nil
	}
	parse := func(s string) (time.Time, error) {
		if s == "" || s == ".." {
			return time.Time{}, nil
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return t, errors.New("invalid datetime " + strconv.Quote(v) + ": want RFC 3339 instants or an interval start/end")
		}
		return t.UTC(), nil
	}
	from, to, interval := strings.Cut(v, "/")
	var err error
	if f.From, err = parse(from); err != nil {
		return err
	}
	if !interval {
		if f.From.IsZero() {
			return errors.New("invalid datetime " + strconv.Quote(v))
		}
		f.To = f.From
	} else if f.To, err = parse(to); err != nil {
		return err
	}
	if !f.From.IsZero() && !f.To.IsZero() && f.To.Before(f.From) {
		return errors.New("invalid datetime " + strconv.Quote(v) + ": the end is before the start")
	}
	f.hasTime = true
	return nil
}

func (f *searchFilter) parseBBox(v string) error {
	if v == "" {
		return nil
	}
	var bb []float64
	for _, p := range strings.Split(v, ",") {
		x, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return errors.New("invalid bbox " + strconv.Quote(v))
		}
		bb = append(bb, x)
	}
	return f.setBBox(bb)
}

func (f *searchFilter) setBBox(bb []float64) error {
	if len(bb) == 6 { // 3D: drop the heights
		bb = []float64{bb[0], bb[1], bb[3], bb[4]}
	}
	if len(bb) != 4 {
		return errors.New("invalid bbox: want 4 or 6 numbers")
	}
	f.BBox = bb
	return nil
}

// parseSearchFilter reads a GET query or a POST JSON body.
func parseSearchFilter(r *http.Request) (searchFilter, error) {
	var f searchFilter
	if r.Method == http.MethodGet {
		q := r.URL.Query()
		f.Collections, f.IDs = splitList(q.Get("collections")), splitList(q.Get("ids"))
		f.Limit, f.Token = q.Get("limit"), q.Get("token")
		if err := f.parseDatetime(q.Get("datetime")); err != nil {
			return f, err
		}
		return f, f.parseBBox(q.Get("bbox"))
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return f, err
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = []byte("{}")
	}
	if err := json.Unmarshal(raw, &f.body); err != nil {
		return f, errors.New("body must be a JSON object")
	}
	var typed struct {
		Collections []string        `json:"collections"`
		IDs         []string        `json:"ids"`
		Datetime    string          `json:"datetime"`
		BBox        []float64       `json:"bbox"`
		Limit       json.RawMessage `json:"limit"`
		Token       string          `json:"token"`
	}
	if err := json.Unmarshal(raw, &typed); err != nil {
		return f, errors.New("bad search body: " + err.Error())
	}
	f.Collections, f.IDs, f.Token = typed.Collections, typed.IDs, typed.Token
	if f.Limit = strings.Trim(string(typed.Limit), `"`); f.Limit == "null" {
		f.Limit = ""
	}
	if err := f.parseDatetime(typed.Datetime); err != nil {
		return f, err
	}
	if typed.BBox != nil {
		return f, f.setBBox(typed.BBox)
	}
	return f, nil
}

// searchAll serves /search over the catalog and the generated
// collections: catalog items first (filtered by ids and datetime), then
// each generated collection in the order added.
func (s *Server) searchAll(w http.ResponseWriter, r *http.Request) {
	f, err := parseSearchFilter(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var gens []*genColl
	for _, g := range s.generated() {
		if len(f.Collections) == 0 || slices.Contains(f.Collections, g.ID) {
			gens = append(gens, g)
		}
	}
	searchURL := s.URL() + "/search"
	link := func(tok string, limit int) fixtures.Link {
		if r.Method == http.MethodPost {
			body := map[string]any{}
			for k, v := range f.body {
				body[k] = v
			}
			body["token"], body["limit"] = tok, limit
			return fixtures.Link{Href: searchURL, Type: "application/geo+json", Method: "POST", Body: body}
		}
		q := r.URL.Query()
		q.Set("token", tok)
		q.Set("limit", itoa(limit))
		return fixtures.Link{Href: searchURL + "?" + q.Encode(), Type: "application/geo+json", Method: "GET"}
	}
	s.servePage(w, r, f, gens, link)
}

// segment is a run of results of one collection.
type segment interface {
	count() int
	write(buf *bytes.Buffer, stacURL string, k int) // the k-th result
}

type fixtureSeg []*fixtures.Item

func (f fixtureSeg) count() int                               { return len(f) }
func (f fixtureSeg) write(buf *bytes.Buffer, _ string, k int) { buf.Write(f[k].JSON) }

// genSeg is the items of g with the indexes lo..hi, or those in idx when
// idx is not nil.
type genSeg struct {
	g      *genColl
	lo, hi int
	idx    []int
}

func (s genSeg) count() int {
	if s.idx != nil {
		return len(s.idx)
	}
	return max(s.hi-s.lo+1, 0)
}

func (s genSeg) write(buf *bytes.Buffer, stacURL string, k int) {
	if s.idx != nil {
		s.g.appendItem(buf, stacURL, s.idx[k])
		return
	}
	s.g.appendItem(buf, stacURL, s.lo+k)
}

// segments lists the results of f: catalog items (when withCatalog)
// then those of gens.
func (s *Server) segments(f searchFilter, gens []*genColl, withCatalog bool) []segment {
	var segs []segment
	if withCatalog {
		var items fixtureSeg
		for _, c := range s.cat.Load().cat.Collections {
			if len(f.Collections) > 0 && !slices.Contains(f.Collections, c.ID) {
				continue
			}
			for i := range c.Items {
				it := &c.Items[i]
				if (len(f.IDs) == 0 || slices.Contains(f.IDs, it.ID)) && f.timeMatches(it.JSON) {
					items = append(items, it)
				}
			}
		}
		segs = append(segs, items)
	}
	for _, g := range gens {
		if f.BBox != nil && (f.BBox[0] > genBBox[2] || f.BBox[2] < genBBox[0] || f.BBox[1] > genBBox[3] || f.BBox[3] < genBBox[1]) {
			continue
		}
		lo, hi := g.indexRange(f.From, f.To)
		if f.IDs == nil {
			segs = append(segs, genSeg{g: g, lo: lo, hi: hi})
			continue
		}
		idx := []int{}
		for _, id := range f.IDs {
			if i := g.index(id); i >= lo && i <= hi && !slices.Contains(idx, i) {
				idx = append(idx, i)
			}
		}
		slices.Sort(idx)
		segs = append(segs, genSeg{g: g, idx: idx})
	}
	return segs
}

// timeMatches reports whether a catalog item's datetime (else
// start_datetime) is within the filter's interval.
func (f searchFilter) timeMatches(doc []byte) bool {
	if !f.hasTime {
		return true
	}
	var it struct {
		Properties struct {
			Datetime      *string `json:"datetime"`
			StartDatetime *string `json:"start_datetime"`
		} `json:"properties"`
	}
	if json.Unmarshal(doc, &it) != nil {
		return false
	}
	v := it.Properties.Datetime
	if v == nil {
		v = it.Properties.StartDatetime
	}
	if v == nil {
		return false
	}
	t, err := time.Parse(time.RFC3339Nano, *v)
	if err != nil {
		return false
	}
	return (f.From.IsZero() || !t.Before(f.From)) && (f.To.IsZero() || !t.After(f.To))
}

// servePage answers one page of the results of f over gens (and the
// catalog's items when serving /search). link makes a next or previous
// link from a token and the limit.
func (s *Server) servePage(w http.ResponseWriter, r *http.Request, f searchFilter, gens []*genColl, link func(tok string, limit int) fixtures.Link) {
	limit := s.opts.DefaultLimit
	if f.Limit != "" {
		v, err := strconv.Atoi(f.Limit)
		if err != nil || v < 1 {
			writeError(w, http.StatusBadRequest, "limit must be a positive integer")
			return
		}
		limit = v
	}
	maxLimit, numberMatched := s.opts.MaxLimit, len(gens) == 0
	for i, g := range gens {
		if g.FailLimitAbove > 0 && limit > g.FailLimitAbove {
			writeError(w, g.FailStatus, "limit "+itoa(limit)+" exceeds the maximum result window of "+itoa(g.FailLimitAbove))
			return
		}
		if i == 0 || g.MaxLimit < maxLimit {
			maxLimit = g.MaxLimit
		}
		numberMatched = numberMatched || g.NumberMatched
	}
	limit = min(limit, maxLimit)

	segs := s.segments(f, gens, isSearch(r))
	total := 0
	for _, sg := range segs {
		total += sg.count()
	}
	start := 0
	switch kind, pos, _ := strings.Cut(f.Token, ":"); {
	case f.Token == "":
	case kind == "next" || kind == "prev":
		n, err := strconv.Atoi(pos)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "invalid token")
			return
		}
		start = n
		if kind == "prev" {
			start = max(n-limit, 0)
		}
	default:
		writeError(w, http.StatusBadRequest, "invalid token")
		return
	}
	end := min(start+limit, total)

	var buf bytes.Buffer
	buf.WriteString(`{"type":"FeatureCollection",`)
	if numberMatched {
		buf.WriteString(`"numberMatched":` + itoa(total) + `,`)
	}
	buf.WriteString(`"numberReturned":` + itoa(max(end-start, 0)) + `,"features":[`)
	n, base := 0, 0
	for _, sg := range segs {
		c := sg.count()
		for k := max(start-base, 0); k < c && base+k < end; k++ {
			if n > 0 {
				buf.WriteByte(',')
			}
			sg.write(&buf, s.URL(), k)
			n++
		}
		base += c
	}
	self := *r.URL
	self.Scheme, self.Host = "http", strings.TrimPrefix(s.base, "http://")
	links := []fixtures.Link{
		{Rel: "self", Href: self.String(), Type: "application/geo+json"},
		{Rel: "root", Href: s.URL(), Type: "application/json"},
	}
	if end < total {
		l := link("next:"+itoa(end), limit)
		l.Rel = "next"
		links = append(links, l)
	}
	if start > 0 {
		l := link("prev:"+itoa(start), limit)
		l.Rel = "previous"
		links = append(links, l)
	}
	buf.WriteString(`],"links":`)
	buf.Write(mustJSON(links))
	buf.WriteByte('}')
	writeJSON(w, "application/geo+json", buf.Bytes())
}

func isSearch(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/search") }
