package stacindex

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSTAC is an httptest STAC API with generated collections: item i of
// a collection has ID ids(i) and datetime start + i*step. Pages are keyset
// tokens (as pgstac), numberMatched optional, and it logs every request.
type fakeSTAC struct {
	t     *testing.T
	srv   *httptest.Server
	colls map[string]*fakeColl

	numberMatched bool
	failAbove     int // limit above this fails with failStatus (0: never)
	failStatus    int
	capLimit      int  // limits above this are silently capped (0: never)
	overlap       bool // each page repeats the last item of the previous one
	pgstac        bool // items/{id} answers 404 for IDs with "/"

	mu  sync.Mutex
	log []string // guarded by mu
}

type fakeColl struct {
	id    string
	n     int
	start time.Time
	step  time.Duration
	ids   func(i int) string
	end   string // extent end; "" = open
}

func (c *fakeColl) item(i int) string {
	dt := c.start.Add(time.Duration(i) * c.step).UTC().Format(time.RFC3339)
	b, _ := json.Marshal(map[string]any{
		"type": "Feature", "stac_version": "1.0.0", "id": c.ids(i), "collection": c.id,
		"properties": map[string]any{"datetime": dt},
		"assets":     map[string]any{"data": map[string]any{"href": fmt.Sprintf("s3://bucket/%s/%d.tif", c.id, i), "file:size": 100}},
		"links":      []any{},
	})
	return string(b)
}

func (c *fakeColl) find(id string) int {
	for i := 0; i < c.n; i++ {
		if c.ids(i) == id {
			return i
		}
	}
	return -1
}

func newFakeSTAC(t *testing.T, colls ...*fakeColl) *fakeSTAC {
	f := &fakeSTAC{t: t, colls: map[string]*fakeColl{}, failStatus: http.StatusInternalServerError}
	for _, c := range colls {
		if c.ids == nil {
			c.ids = func(i int) string { return fmt.Sprintf("item-%06d", i) }
		}
		if c.step == 0 {
			c.step = time.Hour
		}
		f.colls[c.id] = c
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSTAC) url() string { return f.srv.URL + "/stac" }

func (f *fakeSTAC) client(t *testing.T) *Client {
	c, err := NewClient(f.url(), Options{PageSize: 100, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// requests returns the log lines containing substr (all with "").
func (f *fakeSTAC) requests(substr string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, l := range f.log {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

func (f *fakeSTAC) resetLog() { f.mu.Lock(); f.log = nil; f.mu.Unlock() }

func (f *fakeSTAC) serve(w http.ResponseWriter, r *http.Request) {
	body := ""
	if r.Method == http.MethodPost {
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := r.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		body = b.String()
	}
	f.mu.Lock()
	f.log = append(f.log, r.Method+" "+r.URL.EscapedPath()+"?"+r.URL.RawQuery+" "+body)
	f.mu.Unlock()
	parts := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/stac"), "/")
	switch {
	case len(parts) <= 1 || parts[1] == "":
		fmt.Fprint(w, `{"type":"Catalog","id":"fake","conformsTo":["https://api.stacspec.org/v1.0.0/core"],"links":[]}`)
	case parts[1] == "collections" && len(parts) == 2:
		var cs []string
		for _, id := range slices.Sorted(func(yield func(string) bool) {
			for k := range f.colls {
				if !yield(k) {
					return
				}
			}
		}) {
			c := f.colls[id]
			end := "null"
			if c.end != "" {
				end = `"` + c.end + `"`
			}
			cs = append(cs, fmt.Sprintf(`{"type":"Collection","id":%q,"extent":{"temporal":{"interval":[[%q,%s]]}}}`, id, c.start.Format(time.RFC3339), end))
		}
		fmt.Fprintf(w, `{"collections":[%s],"links":[]}`, strings.Join(cs, ","))
	case parts[1] == "collections" && len(parts) == 4 && parts[3] == "items":
		c := f.colls[unescape(parts[2])]
		if c == nil {
			http.NotFound(w, r)
			return
		}
		f.page(w, r, r.URL.Query(), []*fakeColl{c}, "")
	case parts[1] == "collections" && len(parts) == 5 && parts[3] == "items":
		c := f.colls[unescape(parts[2])]
		id := unescape(parts[4])
		if c == nil || (f.pgstac && strings.Contains(id, "/")) {
			http.NotFound(w, r)
			return
		}
		i := c.find(id)
		if i < 0 {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, c.item(i))
	case parts[1] == "search":
		q := r.URL.Query()
		if r.Method == http.MethodPost {
			var b map[string]any
			if err := json.Unmarshal([]byte(body), &b); err != nil {
				http.Error(w, `{"code":"BadRequest","description":"body is not JSON"}`, http.StatusBadRequest)
				return
			}
			q = url.Values{}
			for k, v := range b {
				switch v := v.(type) {
				case []any:
					var ss []string
					for _, s := range v {
						ss = append(ss, fmt.Sprint(s))
					}
					q.Set(k, strings.Join(ss, ","))
				case float64:
					q.Set(k, strconv.Itoa(int(v)))
				default:
					q.Set(k, fmt.Sprint(v))
				}
			}
		}
		if q.Get("bbox") == "bad" {
			http.Error(w, `{"code":"BadRequest","description":"Invalid bbox: bad"}`, http.StatusBadRequest)
			return
		}
		var cs []*fakeColl
		for _, id := range strings.Split(q.Get("collections"), ",") {
			if c := f.colls[id]; c != nil {
				cs = append(cs, c)
			}
		}
		f.page(w, r, q, cs, q.Get("ids"))
	default:
		http.NotFound(w, r)
	}
}

func unescape(s string) string {
	u, err := url.PathUnescape(s)
	if err != nil {
		return s
	}
	return u
}

// page serves one page of the items of cs (in order), filtered by
// datetime and ids, from the keyset token.
func (f *fakeSTAC) page(w http.ResponseWriter, r *http.Request, q url.Values, cs []*fakeColl, ids string) {
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 {
		limit = 10
	}
	if f.failAbove > 0 && limit > f.failAbove {
		http.Error(w, "too large", f.failStatus)
		return
	}
	if f.capLimit > 0 {
		limit = min(limit, f.capLimit)
	}
	var from, to time.Time
	if dt := q.Get("datetime"); dt != "" {
		a, b, _ := strings.Cut(dt, "/")
		from, _ = time.Parse(time.RFC3339Nano, a)
		to, _ = time.Parse(time.RFC3339Nano, b)
	}
	type ref struct {
		c *fakeColl
		i int
	}
	var all []ref
	for _, c := range cs {
		if ids != "" {
			for _, id := range strings.Split(ids, ",") {
				if i := c.find(id); i >= 0 {
					all = append(all, ref{c, i})
				}
			}
			continue
		}
		lo, hi := 0, c.n
		if !from.IsZero() {
			lo = max(0, int((from.Sub(c.start)+c.step-1)/c.step))
			hi = min(c.n, int(to.Sub(c.start)/c.step)+1)
		}
		for i := lo; i < hi; i++ {
			all = append(all, ref{c, i})
		}
	}
	tok, _ := strconv.Atoi(q.Get("token"))
	start := tok
	if f.overlap && start > 0 {
		start--
	}
	end := min(tok+limit, len(all))
	var feats []string
	for _, x := range all[start:end] {
		feats = append(feats, x.c.item(x.i))
	}
	var links []string
	if end < len(all) {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("token", strconv.Itoa(end))
		u := *r.URL
		u.Scheme, u.Host, u.RawQuery = "http", r.Host, nq.Encode()
		links = append(links, fmt.Sprintf(`{"rel":"next","href":%q}`, u.String()))
	}
	nm := ""
	if f.numberMatched {
		nm = fmt.Sprintf(`,"numberMatched":%d`, len(all))
	}
	fmt.Fprintf(w, `{"type":"FeatureCollection","features":[%s],"links":[%s]%s}`, strings.Join(feats, ","), strings.Join(links, ","), nm)
}
