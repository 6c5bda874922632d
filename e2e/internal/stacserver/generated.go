package stacserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prescient/prescientfs/e2e/internal/fixtures"
)

// GenSpec describes a collection generated on the fly: item i (0 ≤ i <
// Items) has the ID GenItemID(ID, i) and the datetime Start + i×Step, so
// nothing is held per item and a collection of tens of millions of items
// costs no memory. Items come in index order (= datetime order).
type GenSpec struct {
	// ID is the collection ID; its item IDs are "<ID>-<index, 9 digits>".
	ID string
	// Items is the number of items.
	Items int
	// Start is the datetime of item 0 (UTC); 2020-01-01 when zero.
	Start time.Time
	// Step separates consecutive items; 20 s (4,320 items a day) when 0.
	Step time.Duration
	// OpenEnd leaves the end of the temporal extent open (null).
	OpenEnd bool
	// AssetHref is the href of every item's "visual" asset; no asset when
	// nil.
	AssetHref func(id string) string
	// AssetSize is the asset's file:size (omitted when 0).
	AssetSize int64
	// NumberMatched adds numberMatched to pages (pgstac leaves it out by
	// default, so this server does too).
	NumberMatched bool
	// MaxLimit silently caps the page size; 1,000 when 0.
	MaxLimit int
	// FailLimitAbove, when > 0, answers a limit above it with FailStatus
	// (Earth Search fails limits above ~267 with a 5xx).
	FailLimitAbove int
	// FailStatus is the status of those answers; 500 when 0.
	FailStatus int
}

// DayStep is the GenSpec.Step that puts 4,320 items in each day.
const DayStep = 20 * time.Second

// defaultGenStart is the Start of a GenSpec that has none.
var defaultGenStart = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// genBBox is the footprint of every generated item.
var genBBox = [4]float64{13, 52, 14, 53}

// genColl is a generated collection being served.
type genColl struct {
	GenSpec
	doc []byte // the collection document
}

// GenItemID is the ID of item i of generated collection coll.
func GenItemID(coll string, i int) string { return fmt.Sprintf("%s-%09d", coll, i) }

// GenItemTime is the datetime of item i of spec.
func (g GenSpec) GenItemTime(i int) time.Time {
	g.setDefaults()
	return g.Start.Add(time.Duration(i) * g.Step)
}

// DayItems returns the IDs of the items of g whose datetime falls on the
// UTC day of t, in order.
func (g GenSpec) DayItems(t time.Time) []string {
	g.setDefaults()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	lo, hi := g.indexRange(day, day.AddDate(0, 0, 1).Add(-time.Nanosecond))
	var ids []string
	for i := lo; i <= hi; i++ {
		ids = append(ids, GenItemID(g.ID, i))
	}
	return ids
}

func (g *GenSpec) setDefaults() {
	if g.Start.IsZero() {
		g.Start = defaultGenStart
	}
	g.Start = g.Start.UTC()
	if g.Step <= 0 {
		g.Step = DayStep
	}
	if g.MaxLimit <= 0 {
		g.MaxLimit = 1000
	}
	if g.FailStatus == 0 {
		g.FailStatus = http.StatusInternalServerError
	}
}

// AddGenerated serves a generated collection after the catalog's own
// (replacing one of the same ID). It is listed by /collections, served
// by /collections/{id}, its items pages, items/{id} and /search.
func (s *Server) AddGenerated(spec GenSpec) {
	spec.setDefaults()
	g := &genColl{GenSpec: spec}
	g.doc = g.collectionDoc(s.URL())
	s.genMu.Lock()
	defer s.genMu.Unlock()
	gens := make([]*genColl, 0, len(s.gens)+1)
	for _, x := range s.gens {
		if x.ID != spec.ID {
			gens = append(gens, x)
		}
	}
	s.gens = append(gens, g)
}

// generated returns the generated collections, in the order added.
func (s *Server) generated() []*genColl {
	s.genMu.Lock()
	defer s.genMu.Unlock()
	return s.gens
}

func (s *Server) genColl(id string) *genColl {
	for _, g := range s.generated() {
		if g.ID == id {
			return g
		}
	}
	return nil
}

// end is the datetime of the last item.
func (g *genColl) end() time.Time { return g.GenItemTime(max(g.Items-1, 0)) }

func (g *genColl) collectionDoc(stacURL string) []byte {
	self := fixtures.CollectionURL(stacURL, g.ID)
	var end any = g.end().Format(time.RFC3339)
	if g.OpenEnd {
		end = nil
	}
	return mustJSON(map[string]any{
		"type":            "Collection",
		"stac_version":    fixtures.StacVersion,
		"stac_extensions": []string{},
		"id":              g.ID,
		"title":           "generated: " + g.ID,
		"description":     fmt.Sprintf("%d generated items, one every %s from %s", g.Items, g.Step, g.Start.Format(time.RFC3339)),
		"license":         "proprietary",
		"extent": map[string]any{
			"spatial":  map[string]any{"bbox": [][4]float64{genBBox}},
			"temporal": map[string]any{"interval": [][2]any{{g.Start.Format(time.RFC3339), end}}},
		},
		"links": []fixtures.Link{
			{Rel: "self", Href: self, Type: "application/json"},
			{Rel: "root", Href: stacURL, Type: "application/json"},
			{Rel: "parent", Href: stacURL, Type: "application/json"},
			{Rel: "items", Href: self + "/items", Type: "application/geo+json"},
		},
	})
}

// index parses the item index out of an ID of g, or returns -1.
func (g *genColl) index(id string) int {
	rest, ok := strings.CutPrefix(id, g.ID+"-")
	if !ok || len(rest) != 9 {
		return -1
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || n >= g.Items || GenItemID(g.ID, n) != id {
		return -1
	}
	return n
}

// indexRange returns the indexes [lo, hi] of the items whose datetime is
// within [from, to]; lo > hi when there are none.
func (g *GenSpec) indexRange(from, to time.Time) (lo, hi int) {
	lo, hi = 0, g.Items-1
	if !from.IsZero() {
		d := from.Sub(g.Start)
		if d > 0 {
			n := int(d / g.Step)
			if time.Duration(n)*g.Step < d {
				n++
			}
			lo = max(lo, n)
		}
	}
	if !to.IsZero() {
		d := to.Sub(g.Start)
		if d < 0 {
			return 0, -1
		}
		hi = min(hi, int(d/g.Step))
	}
	return lo, hi
}

// appendItem appends the JSON document of item i to buf.
func (g *genColl) appendItem(buf *bytes.Buffer, stacURL string, i int) {
	id := GenItemID(g.ID, i)
	coll := fixtures.CollectionURL(stacURL, g.ID)
	dt := g.GenItemTime(i).Format(time.RFC3339)
	fmt.Fprintf(buf, `{"type":"Feature","stac_version":%q,"stac_extensions":["https://stac-extensions.github.io/file/v2.1.0/schema.json"],"id":%q,"collection":%q,`,
		fixtures.StacVersion, id, g.ID)
	buf.WriteString(`"geometry":{"type":"Polygon","coordinates":[[[13,52],[14,52],[14,53],[13,53],[13,52]]]},"bbox":[13,52,14,53],`)
	fmt.Fprintf(buf, `"properties":{"datetime":%q,"updated":%q,"platform":"generated","gen:index":%d},`, dt, dt, i)
	fmt.Fprintf(buf, `"links":[{"rel":"self","href":"%s/items/%s","type":"application/geo+json"},{"rel":"collection","href":%q,"type":"application/json"},{"rel":"parent","href":%q,"type":"application/json"},{"rel":"root","href":%q,"type":"application/json"}],`,
		coll, id, coll, coll, stacURL)
	buf.WriteString(`"assets":{`)
	if g.AssetHref != nil {
		href, _ := json.Marshal(g.AssetHref(id))
		fmt.Fprintf(buf, `"visual":{"href":%s,"type":%q,"roles":["visual","data"]`, href, fixtures.COGType)
		if g.AssetSize > 0 {
			fmt.Fprintf(buf, `,"file:size":%d`, g.AssetSize)
		}
		buf.WriteByte('}')
	}
	buf.WriteString(`}}`)
}

// serveGenerated answers the routes of generated collections; false when
// segs names none.
func (s *Server) serveGenerated(w http.ResponseWriter, r *http.Request, segs []string) bool {
	if len(segs) < 2 || segs[0] != "collections" {
		return false
	}
	g := s.genColl(segs[1])
	if g == nil {
		return false
	}
	switch {
	case len(segs) == 2:
		writeJSON(w, "application/json", g.doc)
	case len(segs) == 3 && segs[2] == "items":
		s.genItems(w, r, g)
	case len(segs) == 4 && segs[2] == "items":
		i := g.index(segs[3])
		if i < 0 {
			writeError(w, http.StatusNotFound, "no item "+segs[3]+" in collection "+g.ID)
			return true
		}
		var buf bytes.Buffer
		g.appendItem(&buf, s.URL(), i)
		writeJSON(w, "application/geo+json", buf.Bytes())
	default:
		writeError(w, http.StatusNotFound, "not found")
	}
	return true
}

// genItems serves /collections/{c}/items: datetime and bbox filters,
// limit, keyset tokens. An ids parameter is ignored, as pgstac does here.
func (s *Server) genItems(w http.ResponseWriter, r *http.Request, g *genColl) {
	q := r.URL.Query()
	f := searchFilter{Collections: []string{g.ID}, Limit: q.Get("limit"), Token: q.Get("token")}
	if err := f.parseDatetime(q.Get("datetime")); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := f.parseBBox(q.Get("bbox")); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	next := func(tok string, limit int) fixtures.Link {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("token", tok)
		nq.Set("limit", itoa(limit))
		return fixtures.Link{Href: fixtures.CollectionURL(s.URL(), g.ID) + "/items?" + nq.Encode(), Type: "application/geo+json", Method: "GET"}
	}
	s.servePage(w, r, f, []*genColl{g}, next)
}
