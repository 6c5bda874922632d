package stacserver_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prescient/prescientfs/e2e/internal/fixtures"
	"github.com/prescient/prescientfs/e2e/internal/stacserver"
)

// testCatalog makes n items in collection "c" plus hostile-ID items in "h".
func testCatalog(base string, n int) *fixtures.Catalog {
	cat := &fixtures.Catalog{STACURL: base, Files: map[string][]byte{"x/data.bin": bytes.Repeat([]byte("0123456789"), 1000)}}
	c := fixtures.Collection{ID: "c", JSON: []byte(`{"type":"Collection","id":"c"}`)}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("i%03d", i)
		// Deliberately not in Go's canonical encoding: spaces, key order.
		c.Items = append(c.Items, fixtures.Item{ID: id, JSON: []byte(fmt.Sprintf(`{"type": "Feature", "id": %q, "a": "<&>"}`, id))})
	}
	h := fixtures.Collection{ID: "h", JSON: []byte(`{"type":"Collection","id":"h"}`)}
	for _, id := range []string{"..", ".", "a/b", "with\x00nul", "line\nbreak", "caf\u00e9", "cafe\u0301", "100% sure?"} {
		raw, _ := json.Marshal(map[string]string{"type": "Feature", "id": id})
		h.Items = append(h.Items, fixtures.Item{ID: id, JSON: raw})
	}
	cat.Collections = []fixtures.Collection{c, h}
	return cat
}

func newServer(t *testing.T, n int) *stacserver.Server {
	s := stacserver.NewT(t, stacserver.Options{})
	s.SetCatalog(testCatalog(s.URL(), n))
	return s
}

type page struct {
	Features []json.RawMessage `json:"features"`
	Links    []fixtures.Link   `json:"links"`
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: %v", req.URL, err)
	}
	return resp, body
}

func next(p page) *fixtures.Link {
	for i := range p.Links {
		if p.Links[i].Rel == "next" {
			return &p.Links[i]
		}
	}
	return nil
}

func TestItemPagesFollowNextLinksAndKeepBytes(t *testing.T) {
	s := newServer(t, 25)
	s.SetPageSize("c", 7)
	url := s.URL() + "/collections/c/items?limit=50"
	var got [][]byte
	for pages := 0; url != ""; pages++ {
		if pages > 10 {
			t.Fatal("too many pages")
		}
		resp, body := get(t, url)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
		}
		var p page
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		if len(p.Features) > 7 {
			t.Fatalf("page of %d items, SetPageSize was 7", len(p.Features))
		}
		for _, f := range p.Features {
			got = append(got, f)
		}
		url = ""
		if l := next(p); l != nil {
			url = l.Href
		}
	}
	if len(got) != 25 {
		t.Fatalf("got %d items, want 25", len(got))
	}
	want := fmt.Sprintf(`{"type": "Feature", "id": %q, "a": "<&>"}`, "i024")
	if string(got[24]) != want {
		t.Fatalf("item bytes changed in a page:\n got %s\nwant %s", got[24], want)
	}
}

func TestSearchPostNextLinkCarriesBody(t *testing.T) {
	s := newServer(t, 15)
	body := `{"collections":["c"],"limit":10}`
	var ids []string
	for pages := 0; body != ""; pages++ {
		if pages > 5 {
			t.Fatal("too many pages")
		}
		req, _ := http.NewRequest(http.MethodPost, s.URL()+"/search", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, raw := do(t, req)
		if resp.StatusCode != 200 {
			t.Fatalf("POST search: %d %s", resp.StatusCode, raw)
		}
		var p page
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		for _, f := range p.Features {
			var it struct{ ID string }
			_ = json.Unmarshal(f, &it)
			ids = append(ids, it.ID)
		}
		body = ""
		if l := next(p); l != nil {
			if l.Method != "POST" || l.Body["collections"] == nil {
				t.Fatalf("next link %+v: want POST with the search body", l)
			}
			b, _ := json.Marshal(l.Body)
			body = string(b)
		}
	}
	if len(ids) != 15 || ids[0] != "i000" || ids[14] != "i014" {
		t.Fatalf("search returned %v", ids)
	}

	resp, raw := get(t, s.URL()+"/search?collections=h&ids=a/b,..&limit=1")
	var p page
	if err := json.Unmarshal(raw, &p); err != nil || resp.StatusCode != 200 || len(p.Features) != 1 || next(p) == nil || next(p).Method != "GET" {
		t.Fatalf("GET search: %d %s", resp.StatusCode, raw)
	}
}

func TestHostileItemIDsRoundTrip(t *testing.T) {
	s := newServer(t, 0)
	cat := testCatalog(s.URL(), 0)
	for _, it := range cat.Collection("h").Items {
		url := fixtures.ItemURL(s.URL(), "h", it.ID)
		resp, body := get(t, url)
		if resp.StatusCode != 200 || !bytes.Equal(body, it.JSON) {
			t.Errorf("GET %s: %d %s, want %s", url, resp.StatusCode, body, it.JSON)
		}
	}
}

func TestFaultsAuthAndRequestLog(t *testing.T) {
	s := newServer(t, 3)
	s.FailNext("/stac/collections", 2, http.StatusServiceUnavailable, "1")
	for i := 0; i < 2; i++ {
		resp, _ := get(t, s.URL()+"/collections")
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" {
			t.Fatalf("request %d: %d Retry-After %q, want 503 with Retry-After 1", i, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	if resp, _ := get(t, s.URL()+"/collections"); resp.StatusCode != 200 {
		t.Fatalf("third request: %d, want 200", resp.StatusCode)
	}

	s.TruncateNext("/stac/collections/c/items", 1, 20)
	resp, err := http.Get(s.URL() + "/collections/c/items")
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated body: err = %v, want unexpected EOF", err)
	}

	s.SetDelay("/stac/conformance", 200*time.Millisecond)
	start := time.Now()
	if resp, _ := get(t, s.URL()+"/conformance"); resp.StatusCode != 200 || time.Since(start) < 200*time.Millisecond {
		t.Fatalf("delayed request: %d after %v", resp.StatusCode, time.Since(start))
	}
	s.ClearFaults()

	s.SetAuth(func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer good" })
	s.ResetRequests()
	if resp, _ := get(t, s.URL()); resp.StatusCode != 401 {
		t.Fatalf("no token: %d, want 401", resp.StatusCode)
	}
	if resp, _ := get(t, s.URL(), "Authorization", "Bearer good"); resp.StatusCode != 200 {
		t.Fatalf("good token: %d, want 200", resp.StatusCode)
	}
	if resp, _ := get(t, s.FilesURL()+"/x/data.bin"); resp.StatusCode != 200 {
		t.Fatalf("files without token: %d, want 200 (SetAuth covers /stac only)", resp.StatusCode)
	}
	reqs := s.Requests()
	if len(reqs) != 3 || reqs[0].Status != 401 || reqs[1].Header.Get("Authorization") != "Bearer good" || reqs[2].Path != "/files/x/data.bin" {
		t.Fatalf("request log: %+v", reqs)
	}
}

func TestFilesRangeAndHandle(t *testing.T) {
	s := newServer(t, 0)
	resp, body := get(t, s.FilesURL()+"/x/data.bin", "Range", "bytes=5-14")
	if resp.StatusCode != http.StatusPartialContent || string(body) != "5678901234" || resp.Header.Get("ETag") == "" {
		t.Fatalf("range: %d %q etag %q", resp.StatusCode, body, resp.Header.Get("ETag"))
	}
	resp, _ = get(t, s.FilesURL()+"/x/data.bin", "If-Match", `"other"`)
	if resp.StatusCode != http.StatusPreconditionFailed {
		t.Fatalf("If-Match with a stale ETag: %d, want 412", resp.StatusCode)
	}
	s.Handle("GET /fileproxy/credentials", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"AccessKeyId":"x"}`)
	}))
	if resp, body := get(t, s.BaseURL()+"/fileproxy/credentials"); resp.StatusCode != 200 || !strings.Contains(string(body), "AccessKeyId") {
		t.Fatalf("registered handler: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, s.BaseURL()+"/nothing"); resp.StatusCode != 404 {
		t.Fatalf("unknown path: %d", resp.StatusCode)
	}
}
