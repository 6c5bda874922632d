package stacserver_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prescient/prescientfs/e2e/internal/stacserver"
)

// genServer serves the small test catalog plus a 10,000,000-item
// generated collection "big" and a 100-item "small".
func genServer(t *testing.T) (*stacserver.Server, stacserver.GenSpec) {
	s := newServer(t, 5)
	big := stacserver.GenSpec{ID: "big", Items: 10_000_000, FailLimitAbove: 267,
		AssetHref: func(id string) string { return s.FilesURL() + "/x/data.bin" }, AssetSize: 10000}
	s.AddGenerated(big)
	s.AddGenerated(stacserver.GenSpec{ID: "small", Items: 100, NumberMatched: true, MaxLimit: 30})
	return s, big
}

type genPage struct {
	NumberMatched *int              `json:"numberMatched"`
	Features      []json.RawMessage `json:"features"`
	Links         []struct {
		Rel    string         `json:"rel"`
		Href   string         `json:"href"`
		Method string         `json:"method"`
		Body   map[string]any `json:"body"`
	} `json:"links"`
}

func (p genPage) link(rel string) (href, method string, body []byte, ok bool) {
	for _, l := range p.Links {
		if l.Rel == rel {
			if l.Body != nil {
				body, _ = json.Marshal(l.Body)
			}
			return l.Href, l.Method, body, true
		}
	}
	return "", "", nil, false
}

func featureIDs(t *testing.T, p genPage) []string {
	t.Helper()
	var ids []string
	for _, f := range p.Features {
		var it struct {
			ID         string `json:"id"`
			Properties struct {
				Datetime string `json:"datetime"`
			} `json:"properties"`
		}
		if err := json.Unmarshal(f, &it); err != nil {
			t.Fatalf("feature %s: %v", f, err)
		}
		ids = append(ids, it.ID)
	}
	return ids
}

// pageAll follows next links from a first request, checking that later
// pages carry a previous link and (for generated collections) no
// numberMatched.
func pageAll(t *testing.T, method, href string, body []byte) (ids []string, pages int) {
	t.Helper()
	for ; href != ""; pages++ {
		if pages > 1000 {
			t.Fatal("more than 1000 pages")
		}
		req, err := http.NewRequest(method, href, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, raw := do(t, req)
		if resp.StatusCode != 200 {
			t.Fatalf("%s %s %s: %d %s", method, href, body, resp.StatusCode, raw)
		}
		var p genPage
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		if _, _, _, ok := p.link("previous"); ok != (pages > 0) {
			t.Fatalf("page %d: previous link present %v", pages, ok)
		}
		ids = append(ids, featureIDs(t, p)...)
		var ok bool
		href, method, body, ok = p.link("next")
		if !ok {
			href = ""
		}
		if method == "" {
			method = http.MethodGet
		}
	}
	return ids, pages
}

func TestGeneratedItemByID(t *testing.T) {
	s, big := genServer(t)
	id := stacserver.GenItemID("big", 9_999_999)
	resp, body := get(t, s.URL()+"/collections/big/items/"+id)
	if resp.StatusCode != 200 {
		t.Fatalf("item %s: %d %s", id, resp.StatusCode, body)
	}
	var it struct {
		ID         string
		Properties map[string]any
		Assets     map[string]struct {
			Href string
			Size int64 `json:"file:size"`
		}
	}
	if err := json.Unmarshal(body, &it); err != nil {
		t.Fatal(err)
	}
	wantTime := big.GenItemTime(9_999_999).Format(time.RFC3339)
	if it.ID != id || it.Properties["datetime"] != wantTime || it.Assets["visual"].Href != s.FilesURL()+"/x/data.bin" || it.Assets["visual"].Size != 10000 {
		t.Fatalf("item %s: %s", id, body)
	}
	for _, bad := range []string{"big-010000000", "big-1", "big-00000001x", "small-000000000", "nope"} {
		if resp, body := get(t, s.URL()+"/collections/big/items/"+bad); resp.StatusCode != 404 {
			t.Errorf("item %s: %d %s, want 404", bad, resp.StatusCode, body)
		}
	}
}

func TestGeneratedCollectionDocAndListing(t *testing.T) {
	s, big := genServer(t)
	_, body := get(t, s.URL()+"/collections")
	var cs struct{ Collections []struct{ ID string } }
	if err := json.Unmarshal(body, &cs); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range cs.Collections {
		ids = append(ids, c.ID)
	}
	if !slices.Equal(ids, []string{"c", "h", "big", "small"}) {
		t.Fatalf("collections %v", ids)
	}
	_, body = get(t, s.URL()+"/collections/big")
	var doc struct {
		Extent struct {
			Temporal struct{ Interval [][2]*string }
		}
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	iv := doc.Extent.Temporal.Interval
	if len(iv) != 1 || iv[0][0] == nil || iv[0][1] == nil || *iv[0][0] != "2020-01-01T00:00:00Z" || *iv[0][1] != big.GenItemTime(9_999_999).Format(time.RFC3339) {
		t.Fatalf("temporal extent %s", body)
	}
}

func TestGeneratedDayPaging(t *testing.T) {
	s, big := genServer(t)
	day := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	want := big.DayItems(day)
	if len(want) != 4320 {
		t.Fatalf("a day has %d items, want 4320", len(want))
	}
	dt := "2024-06-01T00:00:00Z/2024-06-01T23:59:59.999Z"
	q := url.Values{"datetime": {dt}, "limit": {"250"}}
	got, pages := pageAll(t, http.MethodGet, s.URL()+"/collections/big/items?"+q.Encode(), nil)
	if !slices.Equal(got, want) || pages != 18 {
		t.Fatalf("items of a day: %d in %d pages (first %v), want %d in 18", len(got), pages, got[:min(len(got), 2)], len(want))
	}
	q.Set("collections", "big")
	got, _ = pageAll(t, http.MethodGet, s.URL()+"/search?"+q.Encode(), nil)
	if !slices.Equal(got, want) {
		t.Fatalf("GET /search of a day: %d items", len(got))
	}
	body, _ := json.Marshal(map[string]any{"collections": []string{"big"}, "datetime": dt, "limit": 250})
	got, _ = pageAll(t, http.MethodPost, s.URL()+"/search", body)
	if !slices.Equal(got, want) {
		t.Fatalf("POST /search of a day: %d items", len(got))
	}
	// A closed interval includes an item exactly at its end.
	q = url.Values{"datetime": {"2024-06-01T00:00:00Z/2024-06-02T00:00:00Z"}, "limit": {"250"}}
	got, _ = pageAll(t, http.MethodGet, s.URL()+"/collections/big/items?"+q.Encode(), nil)
	if len(got) != 4321 {
		t.Fatalf("closed interval of a day and its end: %d items, want 4321", len(got))
	}
}

func TestGeneratedSearchIDsBBoxAndLimits(t *testing.T) {
	s, _ := genServer(t)
	ids := []string{stacserver.GenItemID("big", 7), stacserver.GenItemID("big", 3), "i002", stacserver.GenItemID("small", 99), "nope"}
	got, _ := pageAll(t, http.MethodGet, s.URL()+"/search?ids="+strings.Join(ids, ","), nil)
	want := []string{"i002", stacserver.GenItemID("big", 3), stacserver.GenItemID("big", 7), stacserver.GenItemID("small", 99)}
	if !slices.Equal(got, want) {
		t.Fatalf("search by ids: %v, want %v", got, want)
	}
	if got, _ := pageAll(t, http.MethodGet, s.URL()+"/search?collections=small&bbox=0,0,1,1", nil); len(got) != 0 {
		t.Fatalf("bbox outside: %d items", len(got))
	}
	if got, pages := pageAll(t, http.MethodGet, s.URL()+"/search?collections=small&bbox=13.5,52.5,20,60&limit=100", nil); len(got) != 100 || pages != 4 {
		t.Fatalf("small with MaxLimit 30: %d items in %d pages, want 100 in 4", len(got), pages)
	}
	resp, body := get(t, s.URL()+"/collections/small/items?limit=5")
	var p genPage
	if err := json.Unmarshal(body, &p); err != nil || p.NumberMatched == nil || *p.NumberMatched != 100 {
		t.Fatalf("small has numberMatched: %d %s", resp.StatusCode, body)
	}
	resp, body = get(t, s.URL()+"/collections/big/items?limit=5")
	p = genPage{}
	if err := json.Unmarshal(body, &p); err != nil || p.NumberMatched != nil || len(p.Features) != 5 {
		t.Fatalf("big pages like pgstac (no numberMatched): %d %s", resp.StatusCode, body)
	}
	for _, u := range []string{"/collections/big/items?limit=268", "/search?collections=big&limit=1000"} {
		if resp, body := get(t, s.URL()+u); resp.StatusCode != 500 || !strings.Contains(string(body), "267") {
			t.Errorf("%s: %d %s, want 500", u, resp.StatusCode, body)
		}
	}
	if resp, body := get(t, s.URL()+"/collections/big/items?limit=267"); resp.StatusCode != 200 {
		t.Errorf("limit 267: %d %s", resp.StatusCode, body)
	}
	if resp, body := get(t, s.URL()+"/search?collections=big&datetime=yesterday"); resp.StatusCode != 400 || !strings.Contains(string(body), "invalid datetime") {
		t.Errorf("bad datetime: %d %s, want 400", resp.StatusCode, body)
	}
	// The last page of 10M items is as cheap as the first.
	_, body = get(t, s.URL()+"/collections/big/items?limit=100&token=next:9999950")
	p = genPage{}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	_, _, _, hasNext := p.link("next")
	if got := featureIDs(t, p); len(got) != 50 || got[49] != stacserver.GenItemID("big", 9_999_999) || hasNext {
		t.Fatalf("last page: %d items, next link %v", len(got), hasNext)
	}
}
